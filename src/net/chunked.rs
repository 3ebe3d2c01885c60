//! Decoding a chunked request body (RFC 9112 §7.1) as its bytes arrive.
//!
//! 1. `Size`: a chunk-size line, hex digits then extensions (ignored), ended by CRLF. It must fit
//!    in [`Limits::max_chunk_line_bytes`]; a size that would take the body over
//!    [`Limits::max_body_bytes`] is refused before its data is read. Size 0 goes to `Trailers`.
//! 2. `Data`: that many bytes, appended to the body; then `DataEnd`: exactly CRLF.
//! 3. `Trailers`: field lines up to an empty line, skipped, within
//!    [`Limits::max_head_bytes`] in all.
//!
//! Every decision looks only at bytes within the bound of its state, so where the input was
//! split never changes the outcome.

use super::limits::Limits;
use super::reject::{BadRequest, Reject};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size,
    Data { remaining: u64 },
    DataEnd,
    Trailers { seen: usize },
}

/// Where decoding got to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Progress {
    NeedMore,
    /// The last chunk and the trailers are in; the body is complete.
    Done,
    Reject(Reject),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ChunkedDecoder {
    state: State,
}

const INVALID: Progress = Progress::Reject(Reject::BadRequest(BadRequest::InvalidChunk));

impl ChunkedDecoder {
    pub(crate) fn new() -> Self {
        ChunkedDecoder { state: State::Size }
    }

    /// Decodes what it can of `input` into `body`; returns how many bytes of `input` it used.
    pub(crate) fn decode(&mut self, input: &[u8], body: &mut Vec<u8>, limits: &Limits) -> (usize, Progress) {
        let mut used = 0;
        loop {
            let rest = &input[used..];
            match self.state {
                State::Size => {
                    let window = &rest[..rest.len().min(limits.max_chunk_line_bytes)];
                    match window.first() {
                        None => return (used, Progress::NeedMore),
                        // httparse takes an empty size as 0; the grammar wants a digit.
                        Some(b) if !b.is_ascii_hexdigit() => return (used, INVALID),
                        Some(_) => {}
                    }
                    match httparse::parse_chunk_size(window) {
                        Ok(httparse::Status::Complete((line, size))) => {
                            used += line;
                            let room = (limits.max_body_bytes - body.len()) as u64;
                            self.state = match size {
                                0 => State::Trailers { seen: 0 },
                                size if size > room => return (used, Progress::Reject(Reject::BodyTooLarge)),
                                size => State::Data { remaining: size },
                            };
                        }
                        Ok(httparse::Status::Partial) if window.len() == limits.max_chunk_line_bytes => {
                            return (used, INVALID)
                        }
                        Ok(httparse::Status::Partial) => return (used, Progress::NeedMore),
                        Err(httparse::InvalidChunkSize) => return (used, INVALID),
                    }
                }
                State::Data { remaining } => {
                    let take = rest.len().min(usize::try_from(remaining).unwrap_or(usize::MAX));
                    body.extend_from_slice(&rest[..take]);
                    used += take;
                    let remaining = remaining - take as u64;
                    if remaining > 0 {
                        self.state = State::Data { remaining };
                        return (used, Progress::NeedMore);
                    }
                    self.state = State::DataEnd;
                }
                State::DataEnd => match rest {
                    [b'\r', b'\n', ..] => {
                        used += 2;
                        self.state = State::Size;
                    }
                    [] | [b'\r'] => return (used, Progress::NeedMore),
                    _ => return (used, INVALID),
                },
                State::Trailers { seen } => {
                    let budget = limits.max_head_bytes.saturating_sub(seen);
                    let window = &rest[..rest.len().min(budget)];
                    match window.iter().position(|&b| b == b'\n') {
                        Some(end) => {
                            used += end + 1;
                            let line = &window[..end];
                            if line.is_empty() || line == b"\r" {
                                self.state = State::Size;
                                return (used, Progress::Done);
                            }
                            self.state = State::Trailers { seen: seen + end + 1 };
                        }
                        None if window.len() == budget => return (used, Progress::Reject(Reject::HeadTooLarge)),
                        None => return (used, Progress::NeedMore),
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], limits: &Limits) -> (usize, Progress, Vec<u8>) {
        let mut body = Vec::new();
        let (used, progress) = ChunkedDecoder::new().decode(input, &mut body, limits);
        (used, progress, body)
    }

    #[test]
    fn stops_right_after_the_empty_line_ending_the_trailers() {
        let input = b"3;e=1\r\nabc\r\n0\r\nT: x\r\n\r\nNEXT";
        assert_eq!(decode_all(input, &Limits::default()), (input.len() - 4, Progress::Done, b"abc".to_vec()));
    }

    #[test]
    fn byte_at_a_time_decodes_the_same() {
        let input = b"a\r\n0123456789\r\n1 ; x\r\nZ\r\n0\r\n\r\n";
        let (limits, mut decoder, mut body, mut used) = (Limits::default(), ChunkedDecoder::new(), Vec::new(), 0);
        for end in 1..=input.len() {
            let (n, progress) = decoder.decode(&input[used..end], &mut body, &limits);
            used += n;
            assert_eq!(progress == Progress::Done, end == input.len(), "at {end}");
        }
        assert_eq!((used, body), (input.len(), b"0123456789Z".to_vec()));
    }

    #[test]
    fn an_empty_chunk_size_is_invalid() {
        assert_eq!(decode_all(b"\r\n", &Limits::default()).1, INVALID);
        assert_eq!(decode_all(b";ext\r\n", &Limits::default()).1, INVALID);
    }

    #[test]
    fn an_overlong_chunk_line_is_invalid_even_unfinished() {
        let limits = Limits { max_chunk_line_bytes: 8, ..Limits::default() };
        assert_eq!(decode_all(b"1;aaaaaa", &limits).1, INVALID);
        assert_eq!(decode_all(b"1;aaaaa", &limits).1, Progress::NeedMore);
    }
}
