//! The request framer (`seda::net::RequestReader`) fed arbitrary bytes.
//!
//! The first four bytes choose the limits (small ones, so every limit is reached often; 255 in
//! the first picks the defaults); the rest is the connection's byte stream. Checked:
//! 1. It never panics, and never loops: each `next_request` call returns.
//! 2. Where the stream is split does not matter: the requests and the reject framed from the
//!    stream fed in pieces (byte by byte, and in pieces of pseudo-random sizes) are exactly those
//!    framed from it fed whole.
//! 3. Limits hold: no request has a body over `max_body_bytes`, more header fields than
//!    `max_headers` or a head over `max_head_bytes`; and whenever the reader waits for more,
//!    what it holds buffered is under the larger of `max_head_bytes` and
//!    `max_chunk_line_bytes`, so a client cannot make it hold more.

#![no_main]

use libfuzzer_sys::fuzz_target;
use seda::net::{Framed, Limits, Request, RequestReader};

#[derive(Debug, PartialEq)]
enum Outcome {
    Request(Request),
    Reject(seda::net::Reject),
    /// The reader said it is done (after a request that closes the connection, or a reject).
    Closed,
}

fuzz_target!(|data: &[u8]| {
    let Some((control, stream)) = data.split_first_chunk::<4>() else { return };
    let limits = limits_from(*control);

    let whole = frame(limits, stream, &mut std::iter::repeat(stream.len().max(1)));
    if stream.len() <= 2048 {
        let by_byte = frame(limits, stream, &mut std::iter::repeat(1));
        assert_eq!(by_byte, whole, "fed one byte at a time");
    }
    let mut state = seed(stream);
    let mut sizes = std::iter::from_fn(|| {
        state = splitmix64(state);
        Some(1 + (state % 97) as usize)
    });
    assert_eq!(frame(limits, stream, &mut sizes), whole, "fed in pieces");
});

fn limits_from(control: [u8; 4]) -> Limits {
    if control[0] == 255 {
        return Limits::default();
    }
    Limits {
        max_head_bytes: 16 + usize::from(control[0]) * 4,
        max_headers: usize::from(control[1] % 24),
        max_body_bytes: usize::from(control[2]) * 2,
        max_chunk_line_bytes: 1 + usize::from(control[3] % 48),
    }
}

/// Feeds `stream` in pieces of the sizes given, framing after each, and returns what was framed.
fn frame(limits: Limits, stream: &[u8], sizes: &mut dyn Iterator<Item = usize>) -> (Vec<Outcome>, bool) {
    let bound = limits.max_head_bytes.max(limits.max_chunk_line_bytes);
    let mut reader = RequestReader::new(limits);
    let mut outcomes = Vec::new();
    let mut rest = stream;
    while !rest.is_empty() {
        let (piece, after) = rest.split_at(sizes.next().unwrap().min(rest.len()));
        rest = after;
        reader.feed(piece);
        loop {
            match reader.next_request() {
                Framed::NeedMore => {
                    assert!(reader.buffered() < bound, "holds {} bytes waiting for more", reader.buffered());
                    break;
                }
                Framed::Request(request) => {
                    assert!(request.body().len() <= limits.max_body_bytes, "body over the limit");
                    assert!(request.headers().count() <= limits.max_headers, "more header fields than the limit");
                    let head: usize = request.headers().map(|(name, value)| name.len() + value.len()).sum();
                    let head = head + request.method().len() + request.target().len();
                    assert!(head <= limits.max_head_bytes, "a head of {head} bytes framed");
                    outcomes.push(Outcome::Request(request));
                }
                Framed::Reject(reject) => outcomes.push(Outcome::Reject(reject)),
                Framed::Closed => {
                    outcomes.push(Outcome::Closed);
                    // Whatever comes later is dropped: there is nothing more to frame.
                    reader.feed(rest);
                    assert_eq!(reader.next_request(), Framed::Closed);
                    return (outcomes, true);
                }
            }
        }
    }
    (outcomes, false)
}

/// A seed for the piece sizes that depends on the stream, so a crash reproduces from its input.
fn seed(stream: &[u8]) -> u64 {
    stream.iter().fold(0x5eda, |h, &b| splitmix64(h ^ u64::from(b)))
}

/// SplitMix64, for the piece sizes.
fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
