//! Properties of HTTP/1.1 framing, checked with proptest over generated pipelines: every
//! request frames to what was sent, or to the rejection its first broken limit calls for, the
//! same however the input is split into reads; and any input at all ends cleanly.
//!
//! Each limit is drawn within two bytes (or fields) of the size it bounds in one of the
//! requests, or left at its default, so the properties see requests just under, at and just
//! over every limit: the head (and a chunked body's trailer section), the number of fields, the
//! body (declared or chunked) and a chunk-size line; some values are long enough to cross the
//! default head limit too. A failing case is shrunk to a smallest one.
//!
//! The seed: `SEDA_PROPTEST_SEED=N` replays a run; without it each run draws one from the
//! clock (so CI tries new cases each time), and a failure prints the seed to replay it.

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use seda::net::{BadRequest, Framed, Limits, Reject, RequestReader, Status};

// ---- the framer, fed in reads ----------------------------------------------------------------

/// Feeds `input` in pieces ending at `cuts` (ascending), then the rest, taking every request
/// after each piece; returns what came out in order, ending with the last word (`NeedMore` or
/// `Closed`).
fn frame_split(limits: Limits, input: &[u8], cuts: &[usize]) -> Vec<Framed> {
    let mut reader = RequestReader::new(limits);
    let mut out = Vec::new();
    let mut from = 0;
    let pieces = cuts.iter().map(|&to| (to, false)).chain([(input.len(), true)]);
    for (to, last) in pieces {
        reader.feed(&input[from..to]);
        from = to;
        loop {
            match reader.next_request() {
                word @ (Framed::NeedMore | Framed::Closed) => {
                    if last {
                        out.push(word);
                    }
                    break;
                }
                framed => out.push(framed),
            }
        }
    }
    out
}

/// Cut points in `0..=len` from drawn indexes, ascending (repeats are empty reads).
fn cuts(indexes: &[Index], len: usize) -> Vec<usize> {
    let mut cuts: Vec<usize> = indexes.iter().map(|i| i.index(len + 1)).collect();
    cuts.sort_unstable();
    cuts
}

// ---- generated requests and what they must frame to -----------------------------------------

#[derive(Debug, Clone)]
enum Body {
    /// No body and no framing header.
    None,
    /// `Content-Length` and that many bytes.
    Length(Vec<u8>),
    /// `Transfer-Encoding: chunked`: each chunk's data and the length of the extension on its
    /// size line, then the trailer fields' value lengths.
    Chunked { chunks: Vec<(Vec<u8>, usize)>, trailers: Vec<usize> },
}

#[derive(Debug, Clone)]
struct Req {
    method: &'static str,
    target: String,
    http10: bool,
    /// The value lengths of the fields after `Host`.
    fields: Vec<usize>,
    body: Body,
}

/// The sizes of one request that its limits are drawn near.
#[derive(Debug, Clone, Copy, Default)]
struct Sizes {
    head: usize,
    fields: usize,
    body: usize,
    /// The longest chunk-size line, its CRLF included.
    chunk_line: usize,
    /// The trailer section, its blank line included.
    trailers: usize,
}

/// What one request must frame to under some limits.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Expect {
    /// (method, target, body, keep-alive)
    Request(String, String, Vec<u8>, bool),
    Reject(Reject),
    /// Either 431: a head both too long and with too many fields is refused for whichever the
    /// framer meets first.
    Either431,
}

/// Limits for noise: small ones, or the defaults.
fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        3 => (64usize..=512, 1usize..=8, 0usize..=64, 3usize..=24).prop_map(|(head, headers, body, chunk_line)| {
            Limits { max_head_bytes: head, max_headers: headers, max_body_bytes: body, max_chunk_line_bytes: chunk_line }
        }),
        1 => Just(Limits::default()),
    ]
}

/// Where a limit is drawn: its default, or within 2 of the size it bounds (under, at or over).
fn offset() -> impl Strategy<Value = Option<i64>> {
    prop_oneof![1 => Just(None), 6 => (-2i64..=2).prop_map(Some)]
}

/// A pipeline of 1 to 3 requests (the last asking to close when `close`), with limits drawn
/// near the sizes of one of them, so that each limit is met just under, at and just over.
fn pipeline() -> impl Strategy<Value = (Limits, Vec<Req>, bool)> {
    (prop::collection::vec(req(), 1..4), any::<bool>(), any::<Index>(), [offset(), offset(), offset(), offset()])
        .prop_map(|(reqs, close, pick, [head, fields, body, chunk_line])| {
            let at = pick.index(reqs.len());
            let (_, _, sizes) = reqs[at].encode(close && at + 1 == reqs.len(), &Limits::default());
            let near = |size: usize, offset: Option<i64>, default: usize, least: i64| {
                offset.map_or(default, |o| (size as i64 + o).max(least) as usize)
            };
            let d = Limits::default();
            // The trailer section shares the head's limit: drawn near one or the other.
            let head_size = if pick.index(2) == 0 || sizes.trailers == 0 { sizes.head } else { sizes.trailers };
            let limits = Limits {
                max_head_bytes: near(head_size, head, d.max_head_bytes, 1),
                max_headers: near(sizes.fields, fields, d.max_headers, 1),
                max_body_bytes: near(sizes.body, body, d.max_body_bytes, 0),
                max_chunk_line_bytes: near(sizes.chunk_line, chunk_line, d.max_chunk_line_bytes, 1),
            };
            (limits, reqs, close)
        })
}

/// A value length: mostly short, sometimes long enough to cross a small head limit, rarely
/// long enough to cross the default one (16 KiB).
fn value_len() -> impl Strategy<Value = usize> {
    prop_oneof![8 => 0usize..40, 3 => 40usize..600, 1 => 16_000usize..16_600]
}

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>(), 0..=max)
}

fn body(http10: bool) -> impl Strategy<Value = Body> {
    let chunked = (
        prop::collection::vec(
            (bytes(40).prop_filter("a data chunk is not empty", |d| !d.is_empty()), 0usize..30),
            0..4,
        ),
        prop::collection::vec(0usize..40, 0..3),
    )
        .prop_map(|(chunks, trailers)| Body::Chunked { chunks, trailers });
    if http10 {
        prop_oneof![Just(Body::None), bytes(100).prop_map(Body::Length)].boxed()
    } else {
        prop_oneof![Just(Body::None), bytes(100).prop_map(Body::Length), chunked].boxed()
    }
}

fn req() -> impl Strategy<Value = Req> {
    (
        prop::sample::select(&["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS"][..]),
        0u32..1000,
        any::<bool>(),
        prop_oneof![4 => prop::collection::vec(value_len(), 0..6), 1 => prop::collection::vec(0usize..4, 60..70)],
    )
        .prop_flat_map(|(method, n, http10, fields)| {
            body(http10).prop_map(move |body| Req {
                method,
                target: format!("/{n}"),
                http10,
                fields: fields.clone(),
                body,
            })
        })
}

impl Req {
    /// The request's bytes, whether it asks to close (`last` and `close`), and what it must
    /// frame to under `limits`.
    fn encode(&self, close: bool, limits: &Limits) -> (Vec<u8>, Expect, Sizes) {
        let mut head = format!("{} {} HTTP/1.{}\r\n", self.method, self.target, if self.http10 { 0 } else { 1 });
        let mut fields = self.fields.len();
        if !self.http10 {
            head.push_str("Host: example.com\r\n");
            fields += 1;
        }
        for (i, &len) in self.fields.iter().enumerate() {
            head.push_str(&format!("X-F{i}: {}\r\n", "v".repeat(len)));
        }
        match (self.http10, close) {
            (true, false) => head.push_str("Connection: keep-alive\r\n"),
            (false, true) => head.push_str("Connection: close\r\n"),
            _ => {}
        }
        if !matches!(self.body, Body::None) {
            fields += 1;
        }
        if matches!((self.http10, close), (true, false) | (false, true)) {
            fields += 1;
        }
        match &self.body {
            Body::None => {}
            Body::Length(data) => head.push_str(&format!("Content-Length: {}\r\n", data.len())),
            Body::Chunked { .. } => head.push_str("Transfer-Encoding: chunked\r\n"),
        }
        head.push_str("\r\n");
        let mut sizes = Sizes { head: head.len(), fields, ..Sizes::default() };
        let head_over = head.len() > limits.max_head_bytes;
        let fields_over = fields > limits.max_headers;
        // A request line that does not end within the bound (and has its method's space in
        // it) is a target too long, 414, whatever follows it.
        let bounded = &head.as_bytes()[..limits.max_head_bytes.min(head.len())];
        let line_over = head_over && !bounded.contains(&b'\n') && bounded.contains(&b' ');
        let head_reject = match (head_over, fields_over) {
            _ if line_over => Some(Expect::Reject(Reject::UriTooLong)),
            (true, true) => Some(Expect::Either431),
            (true, false) => Some(Expect::Reject(Reject::HeadTooLarge)),
            (false, true) => Some(Expect::Reject(Reject::TooManyHeaders)),
            (false, false) => None,
        };
        let mut bytes = head.into_bytes();
        let mut reject = head_reject;
        let body = match &self.body {
            Body::None => Vec::new(),
            Body::Length(data) => {
                if data.len() > limits.max_body_bytes {
                    reject = reject.or(Some(Expect::Reject(Reject::BodyTooLarge)));
                }
                bytes.extend_from_slice(data);
                data.clone()
            }
            Body::Chunked { chunks, trailers } => {
                let mut body = Vec::new();
                for (data, ext) in chunks {
                    let line = format!(
                        "{:x}{}\r\n",
                        data.len(),
                        if *ext == 0 { String::new() } else { format!(";e={}", "x".repeat(ext - 1)) }
                    );
                    sizes.chunk_line = sizes.chunk_line.max(line.len());
                    if line.len() > limits.max_chunk_line_bytes {
                        reject = reject.or(Some(Expect::Reject(Reject::BadRequest(BadRequest::InvalidChunk))));
                    } else if body.len() + data.len() > limits.max_body_bytes {
                        reject = reject.or(Some(Expect::Reject(Reject::BodyTooLarge)));
                    }
                    bytes.extend_from_slice(line.as_bytes());
                    bytes.extend_from_slice(data);
                    bytes.extend_from_slice(b"\r\n");
                    body.extend_from_slice(data);
                }
                // The last chunk's size line, `0` and its CRLF.
                if 3 > limits.max_chunk_line_bytes {
                    reject = reject.or(Some(Expect::Reject(Reject::BadRequest(BadRequest::InvalidChunk))));
                }
                bytes.extend_from_slice(b"0\r\n");
                let mut trailer_section = 2;
                for (i, &len) in trailers.iter().enumerate() {
                    let field = format!("T-{i}: {}\r\n", "t".repeat(len));
                    trailer_section += field.len();
                    bytes.extend_from_slice(field.as_bytes());
                }
                bytes.extend_from_slice(b"\r\n");
                sizes.trailers = trailer_section;
                if trailer_section > limits.max_head_bytes {
                    reject = reject.or(Some(Expect::Reject(Reject::HeadTooLarge)));
                }
                body
            }
        };
        sizes.body = body.len();
        let expect = reject.unwrap_or(Expect::Request(self.method.to_owned(), self.target.clone(), body, !close));
        (bytes, expect, sizes)
    }
}

/// Whether `framed` is what `expect` says.
fn matches(framed: &Framed, expect: &Expect) -> bool {
    match (framed, expect) {
        (Framed::Request(r), Expect::Request(method, target, body, keep_alive)) => {
            (r.method(), r.target(), r.body(), r.keep_alive()) == (method, target, body, *keep_alive)
        }
        (Framed::Reject(r), Expect::Reject(want)) => r == want,
        (Framed::Reject(r), Expect::Either431) => r.status() == Status::HEADER_FIELDS_TOO_LARGE,
        _ => false,
    }
}

// ---- the runner: a varied seed, printed on failure -------------------------------------------

fn seed() -> u64 {
    match std::env::var("SEDA_PROPTEST_SEED") {
        Ok(seed) => seed.parse().expect("SEDA_PROPTEST_SEED is a number"),
        Err(_) => std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64,
    }
}

/// Runs `test` on `cases` values of `strategy`, from a seed that a failure prints.
fn check<S: Strategy>(name: &str, cases: u32, strategy: S, test: impl Fn(S::Value) -> Result<(), TestCaseError>) {
    let seed = seed();
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    // No failure file: a failure is replayed from its seed, not from a file in the tree.
    let config = Config { cases, failure_persistence: None, ..Config::default() };
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    if let Err(failure) = runner.run(&strategy, test) {
        panic!("{name} failed; replay with SEDA_PROPTEST_SEED={seed}\n{failure}");
    }
}

// ---- the properties --------------------------------------------------------------------------

#[test]
fn pipelined_requests_frame_to_what_was_sent_or_to_the_first_limit_they_cross_at_any_split() {
    let strategy = (pipeline(), prop::collection::vec(any::<Index>(), 0..12));
    check("framing of generated pipelines", 1024, strategy, |((limits, reqs, close), cut_at)| {
        let mut input = Vec::new();
        let mut expected = Vec::new();
        for (i, req) in reqs.iter().enumerate() {
            let (bytes, expect, _) = req.encode(close && i + 1 == reqs.len(), &limits);
            input.extend(bytes);
            let rejected = !matches!(expect, Expect::Request(..));
            expected.push(expect);
            if rejected {
                break;
            }
        }
        let cuts = cuts(&cut_at, input.len());
        let framed = frame_split(limits, &input, &cuts);
        let (last, got) = framed.split_last().unwrap();
        prop_assert_eq!(got.len(), expected.len(), "framed {:?}, expected {:?}", got, expected);
        for (framed, expect) in got.iter().zip(&expected) {
            prop_assert!(matches(framed, expect), "framed {:?}, expected {:?}", framed, expect);
        }
        let closes = match expected.last().unwrap() {
            Expect::Request(_, _, _, keep_alive) => !keep_alive,
            _ => true,
        };
        prop_assert_eq!(last, &if closes { Framed::Closed } else { Framed::NeedMore });
        prop_assert_eq!(frame_split(limits, &input, &[]), framed, "the same whole as cut at {:?}", cuts);
        Ok(())
    });
}

/// Bytes that look like HTTP in places: valid requests spliced with pieces of framing and
/// noise.
fn noisy() -> impl Strategy<Value = Vec<u8>> {
    const PIECES: &[&[u8]] = &[
        b"GET / HTTP/1.1\r\n",
        b"POST /x HTTP/1.0\r\n",
        b"Host: a\r\n",
        b"\r\n",
        b"\n",
        b"\r",
        b" ",
        b":",
        b";",
        b"0\r\n",
        b"5\r\nabcde\r\n",
        b"ffffffffffffffffff",
        b"Content-Length: 5\r\n",
        b"Content-Length: x\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Connection: close\r\n",
        b"HTTP/2.0",
        b"\x00",
        b"\xff",
    ];
    let piece = prop_oneof![
        3 => prop::sample::select(PIECES).prop_map(|p| p.to_vec()),
        1 => bytes(20),
        1 => value_len().prop_map(|n| vec![b'a'; n]),
    ];
    prop::collection::vec(piece, 0..24).prop_map(|pieces| pieces.concat())
}

#[test]
fn any_input_at_any_split_ends_cleanly_and_the_same() {
    let strategy = (limits(), noisy(), prop::collection::vec(any::<Index>(), 0..12));
    check("framing of noise", 2048, strategy, |(limits, input, cut_at)| {
        let cuts = cuts(&cut_at, input.len());
        let whole = frame_split(limits, &input, &[]);
        // Requests, then exactly one last word: NeedMore, or Closed after a rejection or a
        // request that closes.
        let (last, rest) = whole.split_last().unwrap();
        match last {
            Framed::NeedMore => {
                prop_assert!(rest.iter().all(|f| matches!(f, Framed::Request(r) if r.keep_alive())), "{:?}", whole)
            }
            Framed::Closed => {
                let (end, requests) = rest.split_last().expect("something came before Closed");
                prop_assert!(requests.iter().all(|f| matches!(f, Framed::Request(r) if r.keep_alive())), "{:?}", whole);
                match end {
                    Framed::Reject(_) => {}
                    Framed::Request(r) => prop_assert!(!r.keep_alive()),
                    other => prop_assert!(false, "ended in {:?} then Closed", other),
                }
            }
            other => prop_assert!(false, "ended in {:?}", other),
        }
        prop_assert_eq!(frame_split(limits, &input, &cuts), whole, "cut at {:?}", cuts);
        Ok(())
    });
}
