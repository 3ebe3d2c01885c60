//! Reading HTTP/1.1 responses off a connection, sans I/O: fed the bytes received so far, it
//! says how many it consumed and whether a response is complete. The head is parsed by
//! httparse; bodies are skipped, not kept: by `Content-Length`, `chunked` coding, or to the
//! end of the connection.

/// The longest response head accepted, and the longest chunk-size or trailer line.
pub const MAX_HEAD: usize = 64 * 1024;
const MAX_LINE: usize = 4 * 1024;
const MAX_HEADERS: usize = 64;

/// A complete response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    /// The server will close the connection after it.
    pub close: bool,
    /// Its body held the text looked for (true when none is).
    pub text_found: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum State {
    #[default]
    Head,
    Body {
        left: u64,
        done: Response,
    },
    ChunkSize {
        done: Response,
    },
    /// Chunk data and its CRLF.
    ChunkData {
        left: u64,
        done: Response,
    },
    Trailers {
        done: Response,
    },
    UntilClose {
        done: Response,
    },
}

#[derive(Debug, Default)]
pub struct ResponseParser {
    state: State,
    finder: TextFinder,
}

/// Looks for a text in a body that comes in pieces, keeping only the last `len - 1` bytes seen,
/// so a text split between two reads is found and a long body costs no memory.
#[derive(Debug, Default, Clone)]
struct TextFinder {
    text: Option<std::sync::Arc<[u8]>>,
    found: bool,
    tail: Vec<u8>,
}

impl TextFinder {
    fn scan(&mut self, bytes: &[u8]) {
        let Some(text) = &self.text else { return };
        if self.found || bytes.is_empty() {
            return;
        }
        let keep = text.len() - 1;
        let mut joined = std::mem::take(&mut self.tail);
        joined.extend_from_slice(&bytes[..bytes.len().min(keep)]);
        if contains(&joined, text) || contains(bytes, text) {
            self.found = true;
            return;
        }
        if bytes.len() >= keep {
            joined.clear();
            joined.extend_from_slice(&bytes[bytes.len() - keep..]);
        } else {
            let cut = joined.len().saturating_sub(keep);
            joined.drain(..cut);
        }
        self.tail = joined;
    }

    /// Whether the body just ended held the text; ready for the next body.
    fn finish(&mut self) -> bool {
        let found = self.text.is_none() || self.found;
        self.found = false;
        self.tail.clear();
        found
    }
}

fn contains(haystack: &[u8], text: &[u8]) -> bool {
    haystack.windows(text.len()).any(|w| w == text)
}

impl ResponseParser {
    /// A parser that looks for `text` in each body (see [`Response::text_found`]).
    pub fn looking_for(text: Option<std::sync::Arc<[u8]>>) -> Self {
        let text = text.filter(|t| !t.is_empty());
        ResponseParser { state: State::Head, finder: TextFinder { text, ..TextFinder::default() } }
    }

    /// Ready for a new connection: the same text looked for, nothing else kept.
    pub fn reset(&mut self) {
        self.state = State::Head;
        self.finder.finish();
    }

    fn complete(&mut self, done: Response) -> Response {
        Response { text_found: self.finder.finish(), ..done }
    }

    /// Reads from `buf` (the bytes received and not yet consumed) for a request sent with
    /// method HEAD when `head` is set. Returns the bytes consumed and the response, if it is
    /// complete; (0, None) means more bytes are needed. Call again while it consumes.
    pub fn feed(&mut self, buf: &[u8], head: bool) -> Result<(usize, Option<Response>), String> {
        match self.state {
            State::Head => self.head(buf, head),
            State::Body { left, done } => {
                let n = left.min(buf.len() as u64);
                self.finder.scan(&buf[..n as usize]);
                if n == left {
                    self.state = State::Head;
                    return Ok((n as usize, Some(self.complete(done))));
                }
                self.state = State::Body { left: left - n, done };
                Ok((n as usize, None))
            }
            State::ChunkSize { done } => {
                let Some((line, used)) = line(buf)? else { return Ok((0, None)) };
                let hex = line.split(|&b| b == b';').next().unwrap_or(b"");
                let hex = std::str::from_utf8(hex).map_err(|_| "chunk size is not text")?.trim();
                let size = u64::from_str_radix(hex, 16).map_err(|_| format!("bad chunk size `{hex}`"))?;
                self.state =
                    if size == 0 { State::Trailers { done } } else { State::ChunkData { left: size + 2, done } };
                Ok((used, None))
            }
            State::ChunkData { left, done } => {
                let n = left.min(buf.len() as u64);
                // The chunk's data, not the CRLF after it.
                self.finder.scan(&buf[..n.min(left.saturating_sub(2)) as usize]);
                self.state =
                    if n == left { State::ChunkSize { done } } else { State::ChunkData { left: left - n, done } };
                Ok((n as usize, None))
            }
            State::Trailers { done } => {
                let Some((line, used)) = line(buf)? else { return Ok((0, None)) };
                if line.is_empty() {
                    self.state = State::Head;
                    return Ok((used, Some(self.complete(done))));
                }
                Ok((used, None))
            }
            State::UntilClose { .. } => {
                self.finder.scan(buf);
                Ok((buf.len(), None))
            }
        }
    }

    /// The connection ended: the response read to the end of it, if that is how it is framed.
    pub fn eof(&mut self) -> Option<Response> {
        match std::mem::replace(&mut self.state, State::Head) {
            State::UntilClose { done } => Some(self.complete(done)),
            _ => None,
        }
    }

    /// Whether a response has begun and is not complete.
    pub fn mid_response(&self) -> bool {
        self.state != State::Head
    }

    fn head(&mut self, buf: &[u8], head: bool) -> Result<(usize, Option<Response>), String> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut response = httparse::Response::new(&mut headers);
        let used = match response.parse(buf) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => return Ok((0, None)),
            Ok(httparse::Status::Partial) => return Err(format!("response head longer than {MAX_HEAD} bytes")),
            Err(e) => return Err(format!("malformed response: {e}")),
        };
        let status = response.code.unwrap_or(0);
        let mut close = response.version == Some(0);
        let (mut length, mut chunked) = (None, false);
        for h in response.headers.iter() {
            let value = std::str::from_utf8(h.value).unwrap_or("").trim();
            if h.name.eq_ignore_ascii_case("content-length") {
                length = Some(value.parse::<u64>().map_err(|_| format!("bad Content-Length `{value}`"))?);
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.rsplit(',').next().is_some_and(|c| c.trim().eq_ignore_ascii_case("chunked"));
            } else if h.name.eq_ignore_ascii_case("connection") {
                for token in value.split(',').map(str::trim) {
                    if token.eq_ignore_ascii_case("close") {
                        close = true;
                    } else if token.eq_ignore_ascii_case("keep-alive") {
                        close = false;
                    }
                }
            }
        }
        // An interim response (100 Continue): the real one follows.
        if (100..200).contains(&status) && status != 101 {
            return Ok((used, None));
        }
        let done = Response { status, close, text_found: false };
        if head || status == 204 || status == 304 {
            return Ok((used, Some(self.complete(done))));
        }
        self.state = match (chunked, length) {
            (true, _) => State::ChunkSize { done },
            (false, Some(0)) => return Ok((used, Some(self.complete(done)))),
            (false, Some(left)) => State::Body { left, done },
            (false, None) => State::UntilClose { done: Response { close: true, ..done } },
        };
        Ok((used, None))
    }
}

/// A CRLF-terminated line at the start of `buf`, without its CRLF, and the bytes it took.
fn line(buf: &[u8]) -> Result<Option<(&[u8], usize)>, String> {
    match buf.windows(2).position(|w| w == b"\r\n") {
        Some(end) => Ok(Some((&buf[..end], end + 2))),
        None if buf.len() < MAX_LINE => Ok(None),
        None => Err(format!("chunk line longer than {MAX_LINE} bytes")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `bytes` in pieces of `split`, returning every response and the bytes left over.
    fn read_all(bytes: &[u8], split: usize, head: bool) -> Vec<Response> {
        read_all_looking_for(bytes, split, head, None)
    }

    fn read_all_looking_for(bytes: &[u8], split: usize, head: bool, text: Option<&str>) -> Vec<Response> {
        let mut p = ResponseParser::looking_for(text.map(|t| t.as_bytes().into()));
        let (mut buf, mut out) = (Vec::new(), Vec::new());
        for piece in bytes.chunks(split) {
            buf.extend_from_slice(piece);
            loop {
                let (used, done) = p.feed(&buf, head).unwrap();
                buf.drain(..used);
                out.extend(done);
                if used == 0 && done.is_none() {
                    break;
                }
            }
        }
        assert!(buf.is_empty(), "left over: {:?}", String::from_utf8_lossy(&buf));
        out.extend(p.eof());
        out
    }

    const OK: Response = Response { status: 200, close: false, text_found: true };

    #[test]
    fn length_and_chunked_bodies_at_every_split() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: 1\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let expected = [
            OK,
            Response { status: 404, ..OK },
            Response { status: 204, ..OK },
            Response { status: 503, close: true, ..OK },
        ];
        for split in [1, 2, 3, 7, 64, bytes.len()] {
            assert_eq!(read_all(bytes, split, false), expected, "split {split}");
        }
    }

    #[test]
    fn a_head_response_has_no_body_and_an_unframed_one_ends_with_the_connection() {
        assert_eq!(read_all(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 5, true), [OK]);
        let until_close = read_all(b"HTTP/1.0 200 OK\r\n\r\nall of it", 4, false);
        assert_eq!(until_close, [Response { status: 200, close: true, ..OK }]);
    }

    #[test]
    fn a_text_is_found_in_a_body_at_every_split_and_not_in_the_framing() {
        // Found in a length body, in a chunked body across chunks, to the end of a connection;
        // not in a body without it, nor in the head or the chunk framing around a body.
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nsay needle!HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nxnee\r\n3\r\ndle\r\n0\r\n\r\nHTTP/1.1 200 OK\r\nX-Needle: needle\r\nContent-Length: 4\r\n\r\nneedHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nnee\r\n3\r\ndl\r\r\n0\r\n\r\nHTTP/1.0 200 OK\r\n\r\n..needle";
        let found: Vec<bool> = [true, true, false, false, true].to_vec();
        for split in [1, 2, 3, 5, 8, bytes.len()] {
            let got: Vec<bool> =
                read_all_looking_for(bytes, split, false, Some("needle")).iter().map(|r| r.text_found).collect();
            assert_eq!(got, found, "split {split}");
        }
    }

    #[test]
    fn malformed_responses_are_errors() {
        let mut p = ResponseParser::default();
        assert!(p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n", false).unwrap_err().contains("Content-Length"));
        let mut p = ResponseParser::default();
        assert!(p.feed(b"HTTX/1.1 200 OK\r\n\r\n", false).is_err());
        let mut p = ResponseParser::default();
        assert!(p.feed(&vec![b'a'; MAX_HEAD], false).is_err());
    }
}
