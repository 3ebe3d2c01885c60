//! HTTP as stages see it: the framed request head ([`HttpRequest`]), the extra response headers
//! a stage sets ([`Headers`]), and the date and path helpers the HTTP stages share.
//!
//! A source frames requests (the `seda` crate's `net::RequestReader`) and hands them to the
//! pipeline in [`crate::Request::http`]. The method, target and header names are copied into one
//! string and the header values into one byte buffer, with spans into them, so a request costs a
//! fixed handful of buffers whatever its header count, and a recycled request reuses them.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

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
pub struct HttpRequest {
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

impl Default for HttpRequest {
    fn default() -> Self {
        HttpRequest {
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

impl HttpRequest {
    pub fn method(&self) -> &str {
        &self.text[self.method.range()]
    }

    /// The request target as sent (`/path?query`, or an absolute form).
    pub fn target(&self) -> &str {
        &self.text[self.target.range()]
    }

    /// The target's path: before any `?query`, still percent-encoded. Of an absolute-form
    /// target (`http://host/path`, RFC 9112 §3.2.2, as sent to a proxy), the path part: the
    /// same resource as its origin form, and `/` when it has no path.
    pub fn path(&self) -> &str {
        let target = without_scheme_and_authority(self.target());
        let path = target.split_once('?').map_or(target, |(path, _)| path);
        if path.is_empty() {
            "/"
        } else {
            path
        }
    }

    /// The target's query, after the `?`, if it has one.
    pub fn query(&self) -> Option<&str> {
        self.target().split_once('?').map(|(_, query)| query)
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

    /// The body, decoded from chunks when it was chunked. A source moves it into
    /// [`crate::Request::payload`] when it admits the request, so stages find it there.
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

    // What follows is for sources that frame requests.

    pub fn clear(&mut self) {
        self.text.clear();
        self.values.clear();
        self.headers.clear();
        self.body.clear();
    }

    pub fn set_line(&mut self, method: &str, target: &str, version: Version) {
        self.method = push_str(&mut self.text, method);
        self.target = push_str(&mut self.text, target);
        self.version = version;
    }

    pub fn push_header(&mut self, name: &str, value: &[u8]) {
        let name = push_str(&mut self.text, name);
        let start = self.values.len();
        self.values.extend_from_slice(trim_ows(value));
        self.headers.push((name, span(start, self.values.len())));
    }

    pub fn set_keep_alive(&mut self, keep_alive: bool) {
        self.keep_alive = keep_alive;
    }

    pub fn body_mut(&mut self) -> &mut Vec<u8> {
        &mut self.body
    }
}

impl fmt::Debug for HttpRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<_> = self.headers().map(|(n, v)| (n, String::from_utf8_lossy(v))).collect();
        f.debug_struct("HttpRequest")
            .field("method", &self.method())
            .field("target", &self.target())
            .field("version", &self.version)
            .field("headers", &headers)
            .field("body", &String::from_utf8_lossy(&self.body))
            .field("keep_alive", &self.keep_alive)
            .finish()
    }
}

/// What follows `scheme://authority` in an absolute-form target (`/path?query`, `?query` or
/// nothing); any other target as it is. Only `http` and `https` are taken as schemes: an
/// origin-form target starts with `/`, so it never matches.
fn without_scheme_and_authority(target: &str) -> &str {
    // The origin form, what nearly every request has, at once: searching it for "://" would
    // cost more than the rest of `path` (a substring searcher is built for each search).
    if target.starts_with('/') {
        return target;
    }
    let Some((scheme, rest)) = target.split_once("://") else { return target };
    if !(scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https")) {
        return target;
    }
    rest.find(['/', '?']).map_or("", |at| &rest[at..])
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

/// Whether `name` is an RFC 9110 §5.6.2 `token`: what a method or a header name must be.
pub fn is_token(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(is_token_byte)
}

/// Whether `b` is an RFC 9110 `tchar`.
pub fn is_token_byte(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// `tchar`, by byte: checked per header written, so a table rather than a search.
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`' | b'|' | b'~'
            );
        b += 1;
    }
    table
};

/// Strips optional whitespace (SP, HTAB) from both ends (RFC 9110 §5.5).
pub fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// Extra response headers a stage sets (`Content-Type`, `Last-Modified`, ...). Names are static,
/// values are copied into one buffer, so a recycled response sets headers without allocating.
/// The framing headers (`Content-Length`, `Connection`) belong to the writer, not to stages.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Headers {
    values: Vec<u8>,
    fields: Vec<(&'static str, Span)>,
}

impl Headers {
    /// Adds a field; a field of the same name set earlier is replaced.
    pub fn set(&mut self, name: &'static str, value: &[u8]) {
        self.fields.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        let start = self.values.len();
        self.values.extend_from_slice(value);
        self.fields.push((name, span(start, self.values.len())));
    }

    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v)
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &[u8])> + '_ {
        self.fields.iter().map(|&(name, value)| (name, &self.values[value.range()]))
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    pub fn clear(&mut self) {
        self.values.clear();
        self.fields.clear();
    }
}

impl fmt::Debug for Headers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter().map(|(n, v)| (n, String::from_utf8_lossy(v)))).finish()
    }
}

/// `time` as an HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`).
pub fn http_date(time: SystemTime) -> String {
    httpdate::fmt_http_date(time)
}

/// Whether a conditional GET may be answered `304 Not Modified`: the request's
/// `If-Modified-Since` is a valid date, not in the future (RFC 9110 §13.1.3: such a date is
/// invalid, and ignored), and exactly the file's modification time to the second (the
/// resolution of HTTP dates), as nginx's default `if_modified_since exact` has it.
///
/// Exact rather than "no earlier than": a date later than the file's time is not one this
/// server sent, and a file put back to an older version (a restore, `cp -p`) has an older time
/// that a later date would wrongly call not modified. A `200` is always a correct answer.
pub fn not_modified(request: &HttpRequest, modified: SystemTime) -> bool {
    not_modified_at(request, modified, SystemTime::now())
}

/// [`not_modified`] with the current time given.
pub fn not_modified_at(request: &HttpRequest, modified: SystemTime, now: SystemTime) -> bool {
    let Some(since) = request.header("if-modified-since") else { return false };
    let Some(since) = std::str::from_utf8(since).ok().and_then(|s| httpdate::parse_http_date(s).ok()) else {
        return false;
    };
    let seconds = |t: SystemTime| t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    seconds(since) <= seconds(now) && seconds(modified) == seconds(since)
}

/// The `Content-Type` for a file name, by extension.
pub fn content_type(name: &str) -> &'static str {
    let extension = name.rsplit_once('.').map_or("", |(_, e)| e);
    match extension.to_ascii_lowercase().as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "pdf" => "application/pdf",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

/// Why a request path does not name a file under a root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathError {
    /// Not an origin-form path, bad percent-encoding, or a NUL.
    Malformed,
    /// A `..` segment (also percent-encoded): it would climb out of the root.
    Traversal,
}

/// The relative file path a request path names, percent-decoded, checked segment by segment:
/// `..` anywhere is refused (never resolved), `.` and empty segments are dropped, and a path
/// ending in `/` names its `index.html`. Symlinks are checked where the file is opened.
pub fn file_path(path: &str) -> Result<PathBuf, PathError> {
    let rest = path.strip_prefix('/').ok_or(PathError::Malformed)?;
    let mut relative = PathBuf::new();
    for segment in rest.split('/') {
        let segment = percent_decode(segment)?;
        match segment.as_str() {
            "" | "." => {}
            ".." => return Err(PathError::Traversal),
            s if s.contains(['/', '\\', '\0']) => return Err(PathError::Traversal),
            s => relative.push(s),
        }
    }
    if path.ends_with('/') || relative.as_os_str().is_empty() {
        relative.push("index.html");
    }
    Ok(relative)
}

fn percent_decode(segment: &str) -> Result<String, PathError> {
    if !segment.contains('%') {
        return Ok(segment.to_string());
    }
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
            let byte = hex.and_then(|h| u8::from_str_radix(h, 16).ok()).ok_or(PathError::Malformed)?;
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| PathError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_paths_stay_under_the_root() {
        assert_eq!(file_path("/a/b.txt"), Ok(PathBuf::from("a/b.txt")));
        assert_eq!(file_path("/"), Ok(PathBuf::from("index.html")));
        assert_eq!(file_path("/docs/"), Ok(PathBuf::from("docs/index.html")));
        assert_eq!(file_path("/a//./b"), Ok(PathBuf::from("a/b")));
        assert_eq!(file_path("/a%20b"), Ok(PathBuf::from("a b")));
        assert_eq!(file_path("/../etc/passwd"), Err(PathError::Traversal));
        assert_eq!(file_path("/a/%2e%2e/%2e%2e/etc"), Err(PathError::Traversal));
        assert_eq!(file_path("/a%2f..%2fb"), Err(PathError::Traversal));
        assert_eq!(file_path("/a%00"), Err(PathError::Traversal));
        assert_eq!(file_path("/a%zz"), Err(PathError::Malformed));
        assert_eq!(file_path("http://x/"), Err(PathError::Malformed));
    }

    #[test]
    fn headers_replace_by_name_and_reuse_their_buffer() {
        let mut h = Headers::default();
        h.set("Content-Type", b"text/plain");
        h.set("content-type", b"text/html");
        h.set("X-A", b"1");
        assert_eq!(h.get("CONTENT-TYPE"), Some(&b"text/html"[..]));
        assert_eq!(h.len(), 2);
        h.clear();
        assert!(h.is_empty());
    }

    #[test]
    fn if_modified_since_compares_whole_seconds() {
        let modified = UNIX_EPOCH + std::time::Duration::from_millis(784_111_777_500);
        let mut req = HttpRequest::default();
        req.set_line("GET", "/", Version::Http11);
        assert!(!not_modified(&req, modified));
        req.push_header("If-Modified-Since", b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert!(not_modified(&req, modified));
        req.clear();
        req.set_line("GET", "/", Version::Http11);
        req.push_header("If-Modified-Since", b"Sun, 06 Nov 1994 08:49:36 GMT");
        assert!(!not_modified(&req, modified));
        req.clear();
        req.push_header("If-Modified-Since", b"yesterday");
        assert!(!not_modified(&req, modified));
    }

    #[test]
    fn if_modified_since_later_than_the_file_or_in_the_future_is_ignored() {
        let modified = UNIX_EPOCH + std::time::Duration::from_secs(784_111_777);
        let now = modified + std::time::Duration::from_secs(3600);
        let with = |date: &[u8]| {
            let mut req = HttpRequest::default();
            req.set_line("GET", "/", Version::Http11);
            req.push_header("If-Modified-Since", date);
            req
        };
        assert!(not_modified_at(&with(b"Sun, 06 Nov 1994 08:49:37 GMT"), modified, now));
        // Later than the file's time, and still in the past.
        assert!(!not_modified_at(&with(b"Sun, 06 Nov 1994 09:00:00 GMT"), modified, now));
        // The file's own time, but the server's clock says that is in the future.
        assert!(!not_modified_at(
            &with(b"Sun, 06 Nov 1994 08:49:37 GMT"),
            modified,
            modified - std::time::Duration::from_secs(1)
        ));
    }

    #[test]
    fn an_absolute_form_target_is_routed_by_its_path() {
        let mut req = HttpRequest::default();
        for (target, path, query) in [
            ("http://example.com/a/b.txt?x=1", "/a/b.txt", Some("x=1")),
            ("HTTPS://example.com:8443/", "/", None),
            ("http://example.com", "/", None),
            ("http://example.com?q", "/", Some("q")),
            ("/plain?y", "/plain", Some("y")),
            ("/a/http://b/c", "/a/http://b/c", None),
            ("ftp://example.com/x", "ftp://example.com/x", None),
        ] {
            req.clear();
            req.set_line("GET", target, Version::Http11);
            assert_eq!((req.path(), req.query()), (path, query), "{target}");
        }
    }
}
