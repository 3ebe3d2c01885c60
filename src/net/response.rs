//! Serialising a response into a caller's reusable buffer.
//!
//! The writer owns the framing headers: it writes `Content-Length` from the body (none for 1xx
//! and 204), `Connection: close` when the connection ends after this response, and
//! `Connection: keep-alive` when an HTTP/1.0 client's connection stays open (an HTTP/1.0 client
//! assumes close otherwise). Extra headers by those names, or `Transfer-Encoding`, are left out,
//! so a handler cannot make the framing lie. For HEAD the headers are those of the GET, with no
//! body. The server's `Date`, when given, is written after the status line.

use seda_stages::http::is_token;

use super::status::Status;
use super::{Request, Version};

/// A response to write: status, extra headers (`Content-Type`, `Retry-After`, ...) and body.
#[derive(Clone, Copy, Debug)]
pub struct Response<'a> {
    pub status: Status,
    pub headers: &'a [(&'a str, &'a [u8])],
    pub body: &'a [u8],
}

impl<'a> Response<'a> {
    /// A response with no extra headers.
    pub const fn new(status: Status, body: &'a [u8]) -> Self {
        Response { status, headers: &[], body }
    }
}

/// What the request being answered asks of the response's framing.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Reply {
    /// The request was HEAD: headers only.
    pub head_only: bool,
    /// The connection closes after this response.
    pub close: bool,
    /// The client speaks HTTP/1.0, so an open connection must be said to stay open.
    pub http10: bool,
}

impl Reply {
    /// The framing `request` asks for.
    pub fn to(request: &Request) -> Reply {
        Reply {
            head_only: request.is_head(),
            close: !request.keep_alive(),
            http10: request.version() == Version::Http10,
        }
    }
}

/// Appends `response` to `out` (several responses to pipelined requests can share one buffer).
///
/// A header whose name is not a token, or whose value holds CR, LF or NUL, is left out: a value
/// copied from a request cannot split the response.
pub fn write_response(out: &mut Vec<u8>, response: &Response<'_>, reply: Reply) {
    write_parts(out, response.status, None, response.headers.iter().copied(), response.body, reply);
}

/// [`write_response`] from its parts, for a caller whose headers are not in a slice, with the
/// server's `Date` if given (an HTTP date it made, written as it is).
pub fn write_parts<'n, 'v>(
    out: &mut Vec<u8>,
    status: Status,
    date: Option<&[u8]>,
    headers: impl IntoIterator<Item = (&'n str, &'v [u8])>,
    body: &[u8],
    reply: Reply,
) {
    write_head(out, status, date, headers, body.len() as u64, reply);
    if !reply.head_only && !status.forbids_body() {
        out.extend_from_slice(body);
    }
}

/// The head of a response whose body of `body_len` bytes the caller sends from elsewhere (a
/// shared buffer, a file), or none of it for a HEAD; with the server's `Date` if given.
pub fn write_head<'n, 'v>(
    out: &mut Vec<u8>,
    status: Status,
    date: Option<&[u8]>,
    headers: impl IntoIterator<Item = (&'n str, &'v [u8])>,
    body_len: u64,
    reply: Reply,
) {
    match status.line() {
        Some(line) => out.extend_from_slice(line.as_bytes()),
        None => {
            out.extend_from_slice(b"HTTP/1.1 ");
            push_decimal(out, u64::from(status.code()));
            out.extend_from_slice(b" \r\n");
        }
    }
    if let Some(date) = date {
        // The server's own, not a stage's: not checked per response.
        debug_assert!(is_field_value(date));
        out.extend_from_slice(b"Date: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in headers {
        if is_framing_header(name) || !is_token(name) || !is_field_value(value) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value);
        out.extend_from_slice(b"\r\n");
    }
    if !status.forbids_content_length() {
        let length = if status.forbids_body() { 0 } else { body_len };
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, length);
        out.extend_from_slice(b"\r\n");
    }
    if reply.close {
        out.extend_from_slice(b"Connection: close\r\n");
    } else if reply.http10 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

fn is_framing_header(name: &str) -> bool {
    ["content-length", "connection", "transfer-encoding"].iter().any(|framing| name.eq_ignore_ascii_case(framing))
}

fn is_field_value(value: &[u8]) -> bool {
    memchr::memchr3(b'\r', b'\n', 0, value).is_none()
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Byte by byte: a copy of one to twenty bytes is a call to memcpy, which cost more than
    // the digits (profiled under pipelining).
    out.reserve(digits.len() - at);
    for &digit in &digits[at..] {
        out.push(digit);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(date: Option<&[u8]>, headers: &[(&str, &[u8])]) -> String {
        let mut out = Vec::new();
        write_head(&mut out, Status::OK, date, headers.iter().copied(), 3, Reply::default());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn the_date_comes_first_and_every_value_with_cr_lf_or_nul_is_left_out_wherever_it_is() {
        // Values longer than a vector register too: the search goes a vector at a time.
        let long = "v".repeat(100);
        let with = |at: usize, b: u8| {
            let mut v = long.clone().into_bytes();
            v[at] = b;
            v
        };
        let (cr, lf, nul) = (with(40, b'\r'), with(99, b'\n'), with(0, 0));
        let text = head(
            Some(b"Thu, 01 Jan 1970 00:00:00 GMT"),
            &[("X-Long", long.as_bytes()), ("X-Cr", &cr), ("X-Lf", &lf), ("X-Nul", &nul), ("Content-Length", b"9")],
        );
        assert_eq!(
            text,
            format!(
                "HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nX-Long: {long}\r\nContent-Length: 3\r\n\r\n"
            )
        );
        assert_eq!(head(None, &[]), "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n");
    }

    #[test]
    fn a_status_line_is_the_code_and_its_reason_whether_named_or_not() {
        let line = |code| {
            let mut out = Vec::new();
            write_head(&mut out, Status::new(code).unwrap(), None, [], 0, Reply::default());
            String::from_utf8(out).unwrap().lines().next().unwrap().to_string()
        };
        assert_eq!(line(200), "HTTP/1.1 200 OK");
        assert_eq!(line(431), "HTTP/1.1 431 Request Header Fields Too Large");
        assert_eq!(line(505), "HTTP/1.1 505 HTTP Version Not Supported");
        // A code without a phrase: the status line allows an empty one.
        assert_eq!(line(299), "HTTP/1.1 299 ");
        assert_eq!(Status::new(299).unwrap().line(), None);
        assert_eq!(Status::OK.line(), Some("HTTP/1.1 200 OK\r\n"));
    }
}
