//! The load generator's response parser (`seda::loadgen::http::response::ResponseParser`) fed
//! arbitrary bytes, as a server could send them.
//!
//! The first byte says whether the request was a HEAD; the rest is the connection's byte stream.
//! Checked: it never panics or loops; it never says it consumed more than it was given; and
//! where the stream is split does not matter: fed whole, byte by byte, or in pieces, it reads the
//! same responses and stops at the same error.

#![no_main]

use libfuzzer_sys::fuzz_target;
use seda::loadgen::http::response::{Response, ResponseParser};

/// What the parser read from a stream: the responses, then an error if it stopped at one, and
/// what the end of the stream completed.
type Read = (Vec<Response>, Option<String>, Option<Response>);

fuzz_target!(|data: &[u8]| {
    let Some((&flags, stream)) = data.split_first() else { return };
    let head = flags & 1 != 0;
    let whole = read(stream, head, stream.len().max(1));
    if stream.len() <= 2048 {
        assert_eq!(read(stream, head, 1), whole, "fed one byte at a time");
    }
    let piece = 1 + usize::from(flags >> 1);
    assert_eq!(read(stream, head, piece), whole, "fed in pieces of {piece}");
});

fn read(stream: &[u8], head: bool, piece: usize) -> Read {
    let mut parser = ResponseParser::default();
    let (mut buf, mut responses) = (Vec::new(), Vec::new());
    for bytes in stream.chunks(piece) {
        buf.extend_from_slice(bytes);
        loop {
            match parser.feed(&buf, head) {
                Ok((used, done)) => {
                    assert!(used <= buf.len(), "consumed {used} of {}", buf.len());
                    buf.drain(..used);
                    responses.extend(done);
                    if used == 0 && done.is_none() {
                        break;
                    }
                }
                Err(e) => return (responses, Some(e), None),
            }
        }
    }
    (responses, None, parser.eof())
}
