//! Single byte ranges (RFC 9110 §14): `Range: bytes=a-b`, `bytes=a-` and `bytes=-n` on a GET of
//! a file get `206 Partial Content` with `Content-Range`, or `416 Range Not Satisfiable` with
//! `Content-Range: bytes */LEN` when no byte of the file is in the range; that is what lets a
//! client resume a download. Anything else is answered whole, `200`, as RFC 9110 allows: a
//! list of ranges (`bytes=0-1,5-6`), a unit other than bytes, a malformed range, and any range
//! with `If-Range` (this server does not compare validators, and whole is always correct).

use crate::Request;

/// What a `Range` header asks of a body of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ranged {
    /// The whole body, `200`.
    Whole,
    /// Bytes `first..=last`, both within the body.
    Part { first: u64, last: u64 },
    /// No byte of the body is in the range.
    Unsatisfiable,
}

/// Reads a `Range` value against a body of `len` bytes.
pub fn parse(value: &[u8], len: u64) -> Ranged {
    let Some(spec) = value.get(..6).filter(|unit| unit.eq_ignore_ascii_case(b"bytes=")).map(|_| &value[6..]) else {
        return Ranged::Whole;
    };
    let spec = crate::http::trim_ows(spec);
    if spec.contains(&b',') {
        return Ranged::Whole;
    }
    let Some(dash) = spec.iter().position(|&b| b == b'-') else { return Ranged::Whole };
    let (first, last) = (&spec[..dash], &spec[dash + 1..]);
    match (number(first), number(last)) {
        // `-n`: the last n bytes.
        (None, Some(n)) if first.is_empty() => {
            if n == 0 || len == 0 {
                Ranged::Unsatisfiable
            } else {
                Ranged::Part { first: len - n.min(len), last: len - 1 }
            }
        }
        // `a-`: from a to the end.
        (Some(a), None) if last.is_empty() => within(a, u64::MAX, len),
        (Some(a), Some(b)) if a <= b => within(a, b, len),
        _ => Ranged::Whole,
    }
}

fn within(first: u64, last: u64, len: u64) -> Ranged {
    if first >= len {
        Ranged::Unsatisfiable
    } else {
        Ranged::Part { first, last: last.min(len - 1) }
    }
}

/// `1*DIGIT`, saturating: a number too long for u64 is past any file's end all the same.
fn number(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(digits.iter().fold(0u64, |n, &d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))))
}

/// Turns the `200` answer of a file into the answer its request's `Range` asks for, and says
/// `Accept-Ranges: bytes` on it either way.
pub fn apply(req: &mut Request) {
    req.response.headers.set("Accept-Ranges", b"bytes");
    if req.http.method() != "GET" || req.http.header("if-range").is_some() {
        return;
    }
    let Some(value) = req.http.header("range") else { return };
    let len = req.response.body_len();
    match parse(value, len) {
        Ranged::Whole => {}
        Ranged::Part { first, last } => {
            let response = &mut req.response;
            response.status = 206;
            response.headers.set("Content-Range", format!("bytes {first}-{last}/{len}").as_bytes());
            if let Some(file) = &mut response.file {
                file.offset += first;
                file.len = last - first + 1;
            } else if let Some(shared) = response.shared.take() {
                response.body.clear();
                response.body.extend_from_slice(&shared[first as usize..=last as usize]);
            } else {
                response.body.truncate(last as usize + 1);
                response.body.drain(..first as usize);
            }
        }
        Ranged::Unsatisfiable => {
            let response = &mut req.response;
            response.set_text(416, "Range Not Satisfiable\n");
            response.headers.set("Content-Range", format!("bytes */{len}").as_bytes());
            response.headers.set("Accept-Ranges", b"bytes");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::test_support::{header, http_request};

    #[test]
    fn single_ranges_are_read_against_the_length() {
        let part = |first, last| Ranged::Part { first, last };
        let cases: [(&str, u64, Ranged); 17] = [
            ("bytes=0-4", 10, part(0, 4)),
            ("bytes=5-", 10, part(5, 9)),
            ("bytes=-3", 10, part(7, 9)),
            ("bytes=-30", 10, part(0, 9)),
            ("bytes=2-99", 10, part(2, 9)),
            ("BYTES=9-9", 10, part(9, 9)),
            ("bytes=99999999999999999999999-", 10, Ranged::Unsatisfiable),
            ("bytes=0-99999999999999999999999", 10, part(0, 9)),
            ("bytes=10-", 10, Ranged::Unsatisfiable),
            ("bytes=10-20", 10, Ranged::Unsatisfiable),
            ("bytes=-0", 10, Ranged::Unsatisfiable),
            ("bytes=0-", 0, Ranged::Unsatisfiable),
            ("bytes=5-4", 10, Ranged::Whole),
            ("bytes=0-1,4-5", 10, Ranged::Whole),
            ("items=0-4", 10, Ranged::Whole),
            ("bytes=a-b", 10, Ranged::Whole),
            ("bytes=-", 10, Ranged::Whole),
        ];
        for (value, len, expected) in cases {
            assert_eq!(parse(value.as_bytes(), len), expected, "{value} of {len}");
        }
    }

    fn ok_file(range: Option<&str>) -> Request {
        let headers: Vec<_> = range.map(|r| ("Range", r)).into_iter().collect();
        let mut req = http_request("GET", "/f", &headers);
        req.response.status = 200;
        req.response.shared = Some(std::sync::Arc::from(&b"0123456789"[..]));
        req
    }

    #[test]
    fn a_part_is_206_with_its_content_range() {
        let mut req = ok_file(Some("bytes=2-4"));
        apply(&mut req);
        assert_eq!((req.response.status, req.response.bytes()), (206, &b"234"[..]));
        assert_eq!(header(&req, "Content-Range").as_deref(), Some("bytes 2-4/10"));
        assert_eq!(header(&req, "Accept-Ranges").as_deref(), Some("bytes"));
    }

    #[test]
    fn an_unsatisfiable_range_is_416_with_the_length() {
        let mut req = ok_file(Some("bytes=10-"));
        apply(&mut req);
        assert_eq!(req.response.status, 416);
        assert_eq!(header(&req, "Content-Range").as_deref(), Some("bytes */10"));
    }

    #[test]
    fn without_a_range_or_with_if_range_the_whole_is_sent() {
        for mut req in [ok_file(None), {
            let mut r = ok_file(Some("bytes=0-1"));
            r.http.push_header("If-Range", b"\"x\"");
            r
        }] {
            apply(&mut req);
            assert_eq!((req.response.status, req.response.bytes()), (200, &b"0123456789"[..]));
            assert_eq!(header(&req, "Accept-Ranges").as_deref(), Some("bytes"));
        }
    }
}
