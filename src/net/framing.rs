//! Framing requests out of a connection's byte stream, with no socket in sight.
//!
//! A [`RequestReader`] belongs to one connection. The caller gives it bytes as they arrive
//! ([`feed`](RequestReader::feed) or [`read_from`](RequestReader::read_from)) and asks for
//! requests with [`next_request`](RequestReader::next_request) until it answers [`Framed::NeedMore`].
//!
//! 1. Head: the request line and header fields are parsed by httparse from a window of the
//!    buffered bytes: at most [`Limits::max_head_bytes`], cut after the last LF in it. The window
//!    depends only on the bytes, never on how they were split, so a request fed one byte at a
//!    time frames exactly as when fed whole; and the parse is retried only when the window has
//!    grown. No complete head within the bound is 431, or 414 when the request line itself does
//!    not end within it.
//! 2. Framing of the body, from the head (RFC 9112 §6): `Transfer-Encoding: chunked` (chunked
//!    last and alone; with `Content-Length` too it is 400), else `Content-Length` (digits; copies
//!    must agree), else no body. A `Content-Length` over [`Limits::max_body_bytes`] is 413 at
//!    once.
//! 3. Body: copied (or decoded, by `chunked.rs`) into the request as it arrives.
//! 4. The request is handed out. If it keeps the connection alive, the reader starts on the next
//!    head, which may already be buffered (pipelining); else, like after any rejection, it is
//!    [`Framed::Closed`] from then on and drops what it is fed.

use std::io;

use super::chunked::{ChunkedDecoder, Progress};
use super::limits::{Limits, HEADER_SLOTS};
use super::reject::{BadRequest, Reject};
use seda_stages::http::{trim_ows, HttpRequest as Request, Version};

/// A buffer grown past this (the receive buffer, after a large head or a body that came faster
/// than it was framed; a request's body) is freed when the reader is reset for another
/// connection, rather than kept.
const KEEP_BUF: usize = 32 * 1024;

/// What [`RequestReader::next_request`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Framed {
    /// A complete request. More may be buffered behind it: ask again.
    Request(Request),
    /// The buffered bytes end inside a request: feed more.
    NeedMore,
    /// The request cannot be framed: send [`Reject::response`], then close the connection.
    Reject(Reject),
    /// The connection is done (the last request asked to close, or one was rejected): finish
    /// writing what is owed, then close. Nothing more will be framed.
    Closed,
}

#[derive(Clone, Copy, Debug)]
enum State {
    Head,
    Body { remaining: usize },
    Chunked(ChunkedDecoder),
    Closed,
}

enum BodyFraming {
    Length(usize),
    Chunked,
}

/// One connection's request framer. See the [module docs](self) for the protocol.
pub struct RequestReader {
    limits: Limits,
    /// Bytes received; those before `start` are used.
    buf: Vec<u8>,
    start: usize,
    state: State,
    /// The length of the head window last parsed without a result, so it is not parsed again.
    head_tried: usize,
    /// The request being framed.
    request: Request,
    /// A finished request handed back, whose buffers the next one reuses.
    reusable: Option<Request>,
    /// The head being read asked for `100 Continue` before its body (`Expect: 100-continue`).
    continue_owed: bool,
}

impl Default for RequestReader {
    fn default() -> Self {
        RequestReader::new(Limits::default())
    }
}

impl RequestReader {
    pub fn new(limits: Limits) -> Self {
        RequestReader {
            limits,
            buf: Vec::new(),
            start: 0,
            state: State::Head,
            head_tried: 0,
            request: Request::default(),
            reusable: None,
            continue_owed: false,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Whether it is between requests: nothing of the next one received, and still reading.
    pub fn between_requests(&self) -> bool {
        matches!(self.state, State::Head) && self.buffered() == 0 && !self.continue_owed
    }

    /// Starts again as a new connection's reader, keeping its buffers for it (but not large
    /// ones): whatever it held is dropped.
    pub fn reset(&mut self) {
        self.buf.clear();
        if self.buf.capacity() > KEEP_BUF {
            self.buf = Vec::new();
        }
        // A body left half read (its client went away) may have grown to `max_body_bytes`.
        for request in std::iter::once(&mut self.request).chain(&mut self.reusable) {
            if request.body_mut().capacity() > KEEP_BUF {
                *request.body_mut() = Vec::new();
            }
        }
        self.start = 0;
        self.state = State::Head;
        self.head_tried = 0;
        self.continue_owed = false;
    }

    /// Appends bytes received on the connection. Dropped once the reader is closed.
    pub fn feed(&mut self, input: &[u8]) {
        if matches!(self.state, State::Closed) {
            return;
        }
        self.compact();
        self.buf.extend_from_slice(input);
    }

    /// Reads once from `source` into the buffer, at most `max` bytes, and returns how many were
    /// read (0 at end of stream). Saves the copy `feed` makes when the bytes come from a socket.
    pub fn read_from(&mut self, source: &mut impl io::Read, max: usize) -> io::Result<usize> {
        self.compact();
        let filled = self.buf.len();
        self.buf.resize(filled + max, 0);
        let read = source.read(&mut self.buf[filled..]);
        let n = *read.as_ref().unwrap_or(&0);
        self.buf.truncate(filled + n);
        if matches!(self.state, State::Closed) {
            self.buf.truncate(filled);
        }
        read
    }

    /// Bytes received and not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len() - self.start
    }

    /// Whether the head of the request being framed is in and its body is not yet.
    pub fn in_body(&self) -> bool {
        matches!(self.state, State::Body { .. } | State::Chunked(_))
    }

    /// Gives a request back once it is answered, so the next one reuses its buffers.
    pub fn recycle(&mut self, request: Request) {
        self.reusable = Some(request);
    }

    /// Whether the client waits for `100 Continue` before it sends the body of the request
    /// being framed: true once per such request, when its head is in and its body is not.
    pub fn take_continue(&mut self) -> bool {
        let owed = std::mem::take(&mut self.continue_owed);
        owed && !matches!(self.state, State::Head | State::Closed)
    }

    /// Frames the next request from the buffered bytes.
    pub fn next_request(&mut self) -> Framed {
        loop {
            match self.state {
                State::Closed => return Framed::Closed,
                State::Head => match self.parse_head() {
                    Ok(Some(framing)) => {
                        self.continue_owed = !matches!(framing, BodyFraming::Length(0))
                            && self.request.version() == Version::Http11
                            && self.request.header("expect").is_some_and(|v| v.eq_ignore_ascii_case(b"100-continue"));
                        self.state = match framing {
                            BodyFraming::Length(0) => return self.finish(),
                            BodyFraming::Length(remaining) => State::Body { remaining },
                            BodyFraming::Chunked => State::Chunked(ChunkedDecoder::new()),
                        }
                    }
                    Ok(None) => return Framed::NeedMore,
                    Err(reject) => return self.reject(reject),
                },
                State::Body { remaining } => {
                    let input = &self.buf[self.start..];
                    let take = input.len().min(remaining);
                    self.request.body_mut().extend_from_slice(&input[..take]);
                    self.start += take;
                    if take < remaining {
                        self.state = State::Body { remaining: remaining - take };
                        return Framed::NeedMore;
                    }
                    return self.finish();
                }
                State::Chunked(mut decoder) => {
                    let input = &self.buf[self.start..];
                    let (used, progress) = decoder.decode(input, self.request.body_mut(), &self.limits);
                    self.start += used;
                    self.state = State::Chunked(decoder);
                    return match progress {
                        Progress::NeedMore => Framed::NeedMore,
                        Progress::Done => self.finish(),
                        Progress::Reject(reject) => self.reject(reject),
                    };
                }
            }
        }
    }

    /// Parses the head if it is all in; `Ok(None)` when it is not yet.
    fn parse_head(&mut self) -> Result<Option<BodyFraming>, Reject> {
        let input = &self.buf[self.start..];
        let bounded = &input[..input.len().min(self.limits.max_head_bytes)];
        let full = bounded.len() == self.limits.max_head_bytes;
        let window = match bounded.iter().rposition(|&b| b == b'\n') {
            Some(last_lf) => &bounded[..=last_lf],
            None if full => return Err(head_too_large(bounded)),
            None => return Ok(None),
        };
        if window.len() == self.head_tried {
            return if full { Err(head_too_large(bounded)) } else { Ok(None) };
        }

        let head_len = match read_head(window, self.limits.header_slots(), &mut self.request)? {
            Some(len) => len,
            None if full => return Err(head_too_large(bounded)),
            None => {
                self.head_tried = window.len();
                return Ok(None);
            }
        };
        self.start += head_len;
        self.head_tried = 0;
        body_framing(&mut self.request, &self.limits).map(Some)
    }

    fn finish(&mut self) -> Framed {
        self.continue_owed = false;
        let next = self.reusable.take().unwrap_or_default();
        let request = std::mem::replace(&mut self.request, next);
        if request.keep_alive() {
            self.state = State::Head;
        } else {
            self.close();
        }
        Framed::Request(request)
    }

    #[cold]
    fn reject(&mut self, reject: Reject) -> Framed {
        self.close();
        Framed::Reject(reject)
    }

    fn close(&mut self) {
        self.state = State::Closed;
        self.buf = Vec::new();
        self.start = 0;
    }

    /// Drops the used bytes before more are appended.
    fn compact(&mut self) {
        if self.start == self.buf.len() {
            self.buf.clear();
        } else if self.start > 0 {
            self.buf.drain(..self.start);
        }
        self.start = 0;
    }
}

/// Which bound a head that does not fit in `max_head_bytes` broke: a request line that does not
/// end within it (a method, a space, then no end of line) has a target too long, `414`; anything
/// else is a header section too large, `431`. Empty lines before the request line are skipped,
/// as the parser skips them.
#[cold]
fn head_too_large(bounded: &[u8]) -> Reject {
    let line_start = bounded.iter().position(|&b| b != b'\r' && b != b'\n').unwrap_or(bounded.len());
    let line = &bounded[line_start..];
    if !line.contains(&b'\n') && line.contains(&b' ') {
        Reject::UriTooLong
    } else {
        Reject::HeadTooLarge
    }
}

/// Parses a complete head in `window` into `request`: its length, or `None` if it is not all
/// there yet.
fn read_head(window: &[u8], header_slots: usize, request: &mut Request) -> Result<Option<usize>, Reject> {
    // Uninitialised slots: zeroing 128 of them would cost more than parsing a small head.
    let mut slots = [const { std::mem::MaybeUninit::<httparse::Header<'_>>::uninit() }; HEADER_SLOTS];
    let mut head = httparse::Request::new(&mut []);
    let head_len = match head.parse_with_uninit_headers(window, &mut slots[..header_slots]) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Ok(None),
        Err(httparse::Error::TooManyHeaders) => return Err(Reject::TooManyHeaders),
        Err(httparse::Error::Version) => {
            // A later minor version of HTTP/1 is read as 1.1, the highest this server
            // implements (RFC 9110 §2.5): the same head with the version rewritten, parsed
            // from a copy (only such a client pays for it).
            let Some(minor) = later_minor_version(window) else { return Err(version_reject(window)) };
            let mut as_11 = window.to_vec();
            as_11[minor] = b'1';
            return read_head(&as_11, header_slots, request);
        }
        Err(_) => return Err(Reject::BadRequest(BadRequest::Malformed)),
    };
    let version = match head.version {
        Some(0) => Version::Http10,
        _ => Version::Http11,
    };
    request.clear();
    request.set_line(head.method.unwrap_or_default(), head.path.unwrap_or_default(), version);
    for header in head.headers.iter() {
        request.push_header(header.name, header.value);
    }
    Ok(Some(head_len))
}

/// Where the minor version digit of the request line is, if the line says `HTTP/1.N` with N
/// from 2 to 9 (the grammar allows one digit each side of the dot).
fn later_minor_version(window: &[u8]) -> Option<usize> {
    // httparse skips empty lines before the request line (RFC 9112 §2.2).
    let start = window.iter().position(|&b| b != b'\r' && b != b'\n')?;
    let end = start + window[start..].iter().position(|&b| b == b'\n')?;
    let line = &window[start..end];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let version_at = line.iter().rposition(|&b| b == b' ')? + 1;
    match &line[version_at..] {
        [b'H', b'T', b'T', b'P', b'/', b'1', b'.', minor] if (b'2'..=b'9').contains(minor) => {
            Some(start + version_at + 7)
        }
        _ => None,
    }
}

/// httparse says "invalid version" for anything but HTTP/1.0 and 1.1: a version that is well
/// formed but of another major version (`HTTP/2.0`) is 505, anything else 400. The window holds
/// the whole line.
#[cold]
fn version_reject(window: &[u8]) -> Reject {
    let line = window.split(|&b| b == b'\n').find(|line| !line.is_empty() && *line != b"\r").unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.split(|&b| b == b' ');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some([_, ..]), Some([_, ..]), Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor]), None)
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            Reject::VersionNotSupported
        }
        _ => Reject::BadRequest(BadRequest::Malformed),
    }
}

/// Decides how the body is framed and whether the connection stays open (RFC 9112 §6.3, §9.3),
/// and sets keep-alive on the request.
fn body_framing(request: &mut Request, limits: &Limits) -> Result<BodyFraming, Reject> {
    let mut content_length: Option<u64> = None;
    let mut codings = 0usize;
    let mut last_coding_chunked = false;
    let mut hosts = 0usize;
    let (mut close, mut keep_alive) = (false, false);

    for (name, value) in request.headers() {
        if name.eq_ignore_ascii_case("content-length") {
            for element in value.split(|&b| b == b',') {
                let length = parse_length(trim_ows(element))?;
                if content_length.is_some_and(|seen| seen != length) {
                    return Err(Reject::BadRequest(BadRequest::InvalidContentLength));
                }
                content_length = Some(length);
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            for coding in value.split(|&b| b == b',').map(trim_ows).filter(|c| !c.is_empty()) {
                codings += 1;
                last_coding_chunked = coding.eq_ignore_ascii_case(b"chunked");
            }
            if codings == 0 {
                return Err(Reject::BadRequest(BadRequest::InvalidTransferEncoding));
            }
        } else if name.eq_ignore_ascii_case("connection") {
            for option in value.split(|&b| b == b',').map(trim_ows) {
                close |= option.eq_ignore_ascii_case(b"close");
                keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case("host") {
            hosts += 1;
        }
    }

    let version = request.version();
    request.set_keep_alive(match version {
        Version::Http11 => !close,
        Version::Http10 => keep_alive && !close,
    });
    if version == Version::Http11 && hosts != 1 {
        return Err(Reject::BadRequest(BadRequest::InvalidHost));
    }
    if codings > 0 {
        if content_length.is_some() {
            return Err(Reject::BadRequest(BadRequest::ContentLengthWithTransferEncoding));
        }
        if version == Version::Http10 || !last_coding_chunked {
            return Err(Reject::BadRequest(BadRequest::InvalidTransferEncoding));
        }
        if codings > 1 {
            return Err(Reject::TransferCodingNotImplemented);
        }
        return Ok(BodyFraming::Chunked);
    }
    match content_length {
        None => Ok(BodyFraming::Length(0)),
        Some(length) if length > limits.max_body_bytes as u64 => Err(Reject::BodyTooLarge),
        Some(length) => Ok(BodyFraming::Length(length as usize)),
    }
}

/// `1*DIGIT`; a number too long for u64 is still a length, just one over any limit.
fn parse_length(digits: &[u8]) -> Result<u64, Reject> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(Reject::BadRequest(BadRequest::InvalidContentLength));
    }
    Ok(digits.iter().fold(0u64, |n, &d| n.saturating_mul(10).saturating_add(u64::from(d - b'0'))))
}
