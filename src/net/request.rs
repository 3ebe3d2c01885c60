//! A framed request: what the reader hands on once the head and the whole body have arrived.
//!
//! The method, target and header names are copied into one string and the header values into one
//! byte buffer, with spans into them, so a request costs a fixed handful of buffers whatever its
//! header count; handing it back with [`RequestReader::recycle`](super::RequestReader::recycle)
//! lets the next request reuse them.

use std::fmt;
use std::ops::Range;

/// The protocol version on the request line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    end: u32,
}

impl Span {
    fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }
}

/// One request, framed.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    /// Method, target and header names, back to back.
    text: String,
    /// Header values, back to back.
    values: Vec<u8>,
    method: Span,
    target: Span,
    /// (name in `text`, value in `values`) per header field, in arrival order.
    headers: Vec<(Span, Span)>,
    body: Vec<u8>,
    version: Version,
    keep_alive: bool,
}

impl Default for Request {
    fn default() -> Self {
        Request {
            text: String::new(),
            values: Vec::new(),
            method: Span::default(),
            target: Span::default(),
            headers: Vec::new(),
            body: Vec::new(),
            version: Version::Http11,
            keep_alive: true,
        }
    }
}

impl Request {
    pub fn method(&self) -> &str {
        &self.text[self.method.range()]
    }

    /// The request target as sent (`/path?query`, or an absolute form).
    pub fn target(&self) -> &str {
        &self.text[self.target.range()]
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// The header fields in arrival order; names as sent, values without surrounding whitespace.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + '_ {
        self.headers.iter().map(|&(name, value)| (&self.text[name.range()], &self.values[value.range()]))
    }

    /// The first value of the header `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, value)| value)
    }

    /// The body, decoded from chunks when it was chunked.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Whether the connection stays open after this request's response: HTTP/1.1 unless
    /// `Connection: close`; HTTP/1.0 only with `Connection: keep-alive`.
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// A HEAD request: its response is headers only.
    pub fn is_head(&self) -> bool {
        self.method() == "HEAD"
    }

    pub(crate) fn clear(&mut self) {
        self.text.clear();
        self.values.clear();
        self.headers.clear();
        self.body.clear();
    }

    pub(crate) fn set_line(&mut self, method: &str, target: &str, version: Version) {
        self.method = push_str(&mut self.text, method);
        self.target = push_str(&mut self.text, target);
        self.version = version;
    }

    pub(crate) fn push_header(&mut self, name: &str, value: &[u8]) {
        let name = push_str(&mut self.text, name);
        let start = self.values.len();
        self.values.extend_from_slice(trim_ows(value));
        self.headers.push((name, span(start, self.values.len())));
    }

    pub(crate) fn set_keep_alive(&mut self, keep_alive: bool) {
        self.keep_alive = keep_alive;
    }

    pub(crate) fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }
}

impl fmt::Debug for Request {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<_> = self.headers().map(|(n, v)| (n, String::from_utf8_lossy(v))).collect();
        f.debug_struct("Request")
            .field("method", &self.method())
            .field("target", &self.target())
            .field("version", &self.version)
            .field("headers", &headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}

/// Spans are u32: a head is bounded by `Limits::max_head_bytes`, far below 4 GiB.
fn span(start: usize, end: usize) -> Span {
    Span { start: start as u32, end: end as u32 }
}

fn push_str(text: &mut String, s: &str) -> Span {
    let start = text.len();
    text.push_str(s);
    span(start, text.len())
}

/// Strips optional whitespace (SP, HTAB) from both ends (RFC 9110 §5.5).
pub(crate) fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}
