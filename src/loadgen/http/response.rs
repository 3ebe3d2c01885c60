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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
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

#[derive(Debug)]
pub struct ResponseParser {
    state: State,
}

impl Default for ResponseParser {
    fn default() -> Self {
        ResponseParser { state: State::Head }
    }
}

impl ResponseParser {
    /// Reads from `buf` (the bytes received and not yet consumed) for a request sent with
    /// method HEAD when `head` is set. Returns the bytes consumed and the response, if it is
    /// complete; (0, None) means more bytes are needed. Call again while it consumes.
    pub fn feed(&mut self, buf: &[u8], head: bool) -> Result<(usize, Option<Response>), String> {
        match self.state {
            State::Head => self.head(buf, head),
            State::Body { left, done } => {
                let n = left.min(buf.len() as u64);
                if n == left {
                    self.state = State::Head;
                    return Ok((n as usize, Some(done)));
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
                self.state =
                    if n == left { State::ChunkSize { done } } else { State::ChunkData { left: left - n, done } };
                Ok((n as usize, None))
            }
            State::Trailers { done } => {
                let Some((line, used)) = line(buf)? else { return Ok((0, None)) };
                if line.is_empty() {
                    self.state = State::Head;
                    return Ok((used, Some(done)));
                }
                Ok((used, None))
            }
            State::UntilClose { .. } => Ok((buf.len(), None)),
        }
    }

    /// The connection ended: the response read to the end of it, if that is how it is framed.
    pub fn eof(&mut self) -> Option<Response> {
        match std::mem::replace(&mut self.state, State::Head) {
            State::UntilClose { done } => Some(done),
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
        let done = Response { status, close };
        if head || status == 204 || status == 304 {
            return Ok((used, Some(done)));
        }
        self.state = match (chunked, length) {
            (true, _) => State::ChunkSize { done },
            (false, Some(0)) => return Ok((used, Some(done))),
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
        let mut p = ResponseParser::default();
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

    const OK: Response = Response { status: 200, close: false };

    #[test]
    fn length_and_chunked_bodies_at_every_split() {
        let bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhelloHTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nabc\r\n10\r\n0123456789abcdef\r\n0\r\nTrailer: 1\r\n\r\nHTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 503 Busy\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        let expected = [
            OK,
            Response { status: 404, close: false },
            Response { status: 204, close: false },
            Response { status: 503, close: true },
        ];
        for split in [1, 2, 3, 7, 64, bytes.len()] {
            assert_eq!(read_all(bytes, split, false), expected, "split {split}");
        }
    }

    #[test]
    fn a_head_response_has_no_body_and_an_unframed_one_ends_with_the_connection() {
        assert_eq!(read_all(b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\n\r\n", 5, true), [OK]);
        let until_close = read_all(b"HTTP/1.0 200 OK\r\n\r\nall of it", 4, false);
        assert_eq!(until_close, [Response { status: 200, close: true }]);
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
