//! The request framer against a reference parser no one here wrote: h11 (pure Python, PyPI),
//! run by `h11_frame.py` beside this file.
//!
//! Requests are generated from a fixed seed: valid ones (methods, targets, HTTP/1.0 and 1.1,
//! header fields of all sorts, no body, `Content-Length` and chunked bodies with extensions and
//! trailers, several pipelined in one stream), and each mutated at most once in a way a parser
//! must decide on (see [`MUTATIONS`]: obs-fold, duplicate and conflicting `Content-Length`, both
//! `Content-Length` and `Transfer-Encoding`, bad chunk sizes, bad whitespace, control bytes, bad
//! versions, a stream cut short, ...). Each stream is framed by seda's `RequestReader` and by h11;
//! they must make the same decision (requests framed, then more wanted, closed, or rejected) and
//! frame the same requests: method, target, version, header fields (names compared without case,
//! as h11 lowercases them) and body.
//!
//! Where seda is deliberately stricter (or, for HTTP/1.0 keep-alive, more capable) than h11, the
//! difference is written down in [`DIFFERENCES`], per mutation, with the RFC that allows it, and
//! the exact shape of the difference is checked; every other case must agree exactly.
//!
//! Needs `python3` with h11 (`pip install h11`; `.ci/run` installs it). Without it the test fails
//! and says so; `SEDA_SKIP_H11=1` skips it on purpose.

use std::collections::BTreeMap;
use std::process::Command;

use serde::Deserialize;

use seda::net::{Framed, Limits, Request, RequestReader, Version};
use seda::stages::splitmix64;

const CASES: usize = 3000;

/// How a stream ended, as both sides report it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
enum End {
    /// Every byte was used and the next request (or the rest of this one) is awaited.
    More,
    /// The last request framed ends the connection.
    Closed,
    /// The stream was refused.
    Reject,
}

/// A request as either parser framed it.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
struct FramedRequest {
    method: String,
    target: String,
    version: String,
    /// (lowercased name, hex value)
    headers: Vec<(String, String)>,
    /// hex
    body: String,
}

/// What a parser made of one stream: the requests it framed, and how it stopped.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
struct Outcome {
    requests: Vec<FramedRequest>,
    end: End,
}

/// A difference between seda and h11 that is on purpose.
struct Difference {
    /// The mutation that shows it.
    mutation: &'static str,
    shape: Shape,
    /// Why, with the RFC that allows it.
    reason: &'static str,
}

#[derive(Clone, Copy, Debug)]
enum Shape {
    /// seda rejects a request h11 accepts: both frame the same requests before it, then seda
    /// rejects and h11 frames at least one more.
    SedaRejects,
    /// The other way round: h11 rejects a request seda frames.
    H11Rejects,
    /// h11 closes the connection after a request seda keeps it open for: both frame the same
    /// requests up to h11's close, after which seda goes on.
    H11Closes,
    /// The same requests and end, but h11 rewrites some framing fields: `Content-Length` fields
    /// or list members of one value become one field, and `Transfer-Encoding` is lowercased.
    /// seda hands stages the fields as sent.
    H11RewritesFraming,
    /// The same requests and end, but h11 reports a later minor version of HTTP/1 as sent,
    /// where seda reads it as 1.1, the highest it implements.
    SedaReadsAs11,
}

const DIFFERENCES: &[Difference] = &[
    Difference {
        mutation: "obs_fold",
        shape: Shape::SedaRejects,
        reason: "RFC 9112 §5.2: a server that receives obs-fold in a request MUST either reject it (400) or \
                 replace each fold with SP; seda rejects, h11 unfolds",
    },
    Difference {
        mutation: "ctl_in_value",
        shape: Shape::SedaRejects,
        reason: "RFC 9110 §5.5: a field value is VCHAR, obs-text, SP and HTAB; a control byte makes the \
                 message invalid, and seda (httparse) rejects it (400) where h11 lets it through",
    },
    Difference {
        mutation: "content_length_and_transfer_encoding",
        shape: Shape::SedaRejects,
        reason: "RFC 9112 §6.1: a server MAY reject a request with both Content-Length and \
                 Transfer-Encoding, a smuggling vector; seda rejects it (400), h11 lets Transfer-Encoding win",
    },
    Difference {
        mutation: "http10_chunked",
        shape: Shape::SedaRejects,
        reason: "RFC 9112 §6.1: a server that receives an HTTP/1.0 message with Transfer-Encoding MUST treat \
                 the framing as faulty and close; seda rejects it (400), h11 decodes the chunks",
    },
    Difference {
        mutation: "version_2_0",
        shape: Shape::SedaRejects,
        reason: "RFC 9110 §15.6.6: 505 is for a major version the server does not support; seda answers \
                 HTTP/2.0 on an HTTP/1.1 connection with 505, h11 reads it as HTTP/1.x",
    },
    Difference {
        mutation: "version_1_2",
        shape: Shape::SedaReadsAs11,
        reason: "RFC 9110 §2.5: a recipient SHOULD process a higher minor version (HTTP/1.2) as the \
                 highest minor version it implements; seda frames it as HTTP/1.1, h11 frames it too and \
                 reports 1.2",
    },
    Difference {
        mutation: "chunk_extension_bws",
        shape: Shape::H11Rejects,
        reason: "RFC 9112 §7.1.1: chunk-ext = *( BWS \";\" BWS chunk-ext-name ... ), whitespace before the \
                 `;` is allowed; seda (httparse) accepts it, h11 rejects it",
    },
    Difference {
        mutation: "leading_empty_line",
        shape: Shape::H11Rejects,
        reason: "RFC 9112 §2.2: a server SHOULD ignore at least one empty line received before the \
                 request-line; seda does, h11 rejects one between pipelined requests",
    },
    Difference {
        mutation: "http10_keep_alive",
        shape: Shape::H11Closes,
        reason: "RFC 9112 Appendix C.2.2: HTTP/1.0 persistent connections (`Connection: keep-alive`) are \
                 allowed and seda keeps them; h11 always closes after an HTTP/1.0 request",
    },
    Difference {
        mutation: "duplicate_content_length_same",
        shape: Shape::H11RewritesFraming,
        reason: "RFC 9110 §8.6: a recipient MAY replace repeated identical Content-Length values with one; \
                 h11 does, seda frames by the value and passes the fields on as sent",
    },
    Difference {
        mutation: "content_length_list_same",
        shape: Shape::H11RewritesFraming,
        reason: "RFC 9110 §8.6, as for duplicate_content_length_same, for a list in one field (`5, 5`)",
    },
    Difference {
        mutation: "transfer_encoding_uppercase",
        shape: Shape::H11RewritesFraming,
        reason: "RFC 9112 §7: transfer-coding names are case-insensitive; both accept `Chunked`, h11 \
                 lowercases the field, seda passes it on as sent",
    },
];

#[test]
fn the_request_framer_agrees_with_h11() {
    if std::env::var_os("SEDA_SKIP_H11").is_some() {
        eprintln!("skipped: SEDA_SKIP_H11 is set");
        return;
    }
    let cases: Vec<Case> = (0..CASES as u64).map(generate).collect();
    let theirs = h11_outcomes(&cases);
    let (mut agreed, mut agreed_rejects, mut agreed_requests) = (0, 0, 0);
    let mut explained: BTreeMap<&str, usize> = BTreeMap::new();
    let mut unexplained = Vec::new();
    let mut by_mutation: BTreeMap<&str, usize> = BTreeMap::new();
    for (case, theirs) in cases.iter().zip(&theirs) {
        *by_mutation.entry(case.mutation).or_default() += 1;
        let ours = seda_outcome(&case.bytes);
        if ours == *theirs {
            agreed += 1;
            agreed_rejects += usize::from(ours.end == End::Reject);
            agreed_requests += ours.requests.len();
            continue;
        }
        let difference = DIFFERENCES.iter().find(|d| d.mutation == case.mutation);
        match difference {
            Some(d) if d.shape.fits(&ours, theirs) => *explained.entry(d.mutation).or_default() += 1,
            _ => unexplained.push((case, ours, theirs)),
        }
    }
    eprintln!("{} cases by mutation: {by_mutation:?}", cases.len());
    eprintln!(
        "{agreed} agree exactly ({agreed_requests} requests framed alike, {agreed_rejects} streams rejected by both); \
         deliberate differences: {explained:?}"
    );
    let mut shown = std::collections::BTreeSet::new();
    for (case, ours, theirs) in &unexplained {
        if !shown.insert(case.mutation) {
            continue;
        }
        let count = unexplained.iter().filter(|u| u.0.mutation == case.mutation).count();
        eprintln!(
            "\nDISAGREE on {} cases with {}, e.g. case {}: {:?}\n  seda: {:?} after {} requests\n  h11:  {:?} after {} requests",
            count,
            case.mutation,
            case.id,
            String::from_utf8_lossy(&case.bytes),
            ours.end,
            ours.requests.len(),
            theirs.end,
            theirs.requests.len(),
        );
    }
    assert!(unexplained.is_empty(), "{} of {} cases disagree with h11 unexplained", unexplained.len(), cases.len());
    // Every deliberate difference is still seen, so that none is kept after it stopped being true.
    for d in DIFFERENCES {
        assert!(explained.contains_key(d.mutation), "no case shows the difference `{}`: {}", d.mutation, d.reason);
    }
}

impl Shape {
    fn fits(self, ours: &Outcome, theirs: &Outcome) -> bool {
        let (stops, goes_on, stop) = match self {
            Shape::SedaRejects => (ours, theirs, End::Reject),
            Shape::H11Rejects => (theirs, ours, End::Reject),
            Shape::H11Closes => (theirs, ours, End::Closed),
            Shape::H11RewritesFraming => {
                let rewritten = ours.requests.iter().map(rewrite_framing_fields).collect::<Vec<_>>();
                return ours.end == theirs.end && rewritten == theirs.requests;
            }
            Shape::SedaReadsAs11 => {
                let as_11 = theirs.requests.iter().map(|r| {
                    let later = r.version.strip_prefix("1.").is_some_and(|minor| minor.as_bytes() >= b"2".as_slice());
                    FramedRequest { version: if later { "1.1".to_owned() } else { r.version.clone() }, ..r.clone() }
                });
                return ours.end == theirs.end && ours.requests.iter().cloned().eq(as_11);
            }
        };
        stops.end == stop
            && goes_on.requests.len() > stops.requests.len()
            && goes_on.requests[..stops.requests.len()] == stops.requests[..]
    }
}

/// A request's fields as h11 hands them on: `Content-Length` once, in the place of the first,
/// with its one value; `Transfer-Encoding` lowercased.
fn rewrite_framing_fields(request: &FramedRequest) -> FramedRequest {
    let mut rewritten = request.clone();
    let mut seen_length = false;
    rewritten.headers.retain_mut(|(name, value)| match name.as_str() {
        "content-length" if seen_length => false,
        "content-length" => {
            seen_length = true;
            let text = String::from_utf8(unhex(value)).unwrap();
            *value = hex(text.split(',').next().unwrap_or_default().trim().as_bytes());
            true
        }
        "transfer-encoding" => {
            let text = String::from_utf8(unhex(value)).unwrap();
            *value = hex(text.to_ascii_lowercase().as_bytes());
            true
        }
        _ => true,
    });
    rewritten
}

fn unhex(text: &str) -> Vec<u8> {
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(&text[i..i + 2], 16).unwrap()).collect()
}

/// What seda's framer makes of `bytes`, fed whole, with the default limits.
fn seda_outcome(bytes: &[u8]) -> Outcome {
    let mut reader = RequestReader::new(Limits::default());
    reader.feed(bytes);
    let mut requests = Vec::new();
    loop {
        match reader.next_request() {
            Framed::Request(request) => requests.push(described(&request)),
            Framed::NeedMore => return Outcome { requests, end: End::More },
            Framed::Closed => return Outcome { requests, end: End::Closed },
            Framed::Reject(_) => return Outcome { requests, end: End::Reject },
        }
    }
}

fn described(request: &Request) -> FramedRequest {
    FramedRequest {
        method: request.method().to_owned(),
        target: request.target().to_owned(),
        version: match request.version() {
            Version::Http10 => "1.0".into(),
            Version::Http11 => "1.1".into(),
        },
        headers: request.headers().map(|(name, value)| (name.to_ascii_lowercase(), hex(value))).collect(),
        body: hex(request.body()),
    }
}

/// Runs every case through h11 in one python3 process.
fn h11_outcomes(cases: &[Case]) -> Vec<Outcome> {
    let dir = tempfile_dir();
    let (input, output) = (dir.join("cases.jsonl"), dir.join("h11.jsonl"));
    let lines: String = cases.iter().map(|c| format!("{{\"hex\": \"{}\"}}\n", hex(&c.bytes))).collect();
    std::fs::write(&input, lines).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/it/h11_frame.py");
    let run = Command::new("python3").arg(script).arg(&input).arg(&output).output();
    let run = run.unwrap_or_else(|e| panic!("cannot run python3 ({e}): the differential test needs python3 and h11"));
    assert!(
        run.status.success(),
        "h11_frame.py failed (is h11 installed? `pip install h11`, or SEDA_SKIP_H11=1 to skip):\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let text = std::fs::read_to_string(&output).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let outcomes: Vec<Outcome> = text.lines().map(|line| serde_json::from_str(line).unwrap()).collect();
    assert_eq!(outcomes.len(), cases.len());
    outcomes
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("seda-h11-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---- generating the cases ----

struct Case {
    id: u64,
    /// The mutation applied, or "none".
    mutation: &'static str,
    bytes: Vec<u8>,
}

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = splitmix64(self.0);
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// A request before it is written out: the mutations edit it here, or its bytes after.
struct Draft {
    method: &'static str,
    target: &'static str,
    version: &'static str,
    headers: Vec<(String, Vec<u8>)>,
    body: Body,
}

enum Body {
    None,
    Length(Vec<u8>),
    /// Chunks, each with its extension text, then trailer fields.
    Chunked(Vec<(Vec<u8>, &'static str)>, Vec<(&'static str, &'static str)>),
}

const METHODS: &[&str] = &["GET", "GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "M-SEARCH"];
const TARGETS: &[&str] = &[
    "/",
    "/index.html",
    "/a/b/c?x=1&y=%20z",
    "/%7Euser/",
    "/path;params?q",
    "/search?q=a+b#frag",
    "http://example.com/abs",
    "/~!$&'()*+,;=:@",
];
const FIELDS: &[(&str, &str)] = &[
    ("User-Agent", "curl/8.5.0"),
    ("Accept", "*/*"),
    ("Accept-Encoding", "gzip, deflate;q=0.5"),
    ("X-Empty", ""),
    ("X-Spaces", "  padded value \t "),
    ("X-Tab", "a\tb"),
    ("Cookie", "a=1; b=\"two\""),
    ("If-Modified-Since", "Sun, 06 Nov 1994 08:49:37 GMT"),
    ("x-lower", "v"),
    ("X-Quoted", "\"a,b\""),
    ("Cache-Control", "no-cache"),
];

fn draft(rng: &mut Rng) -> Draft {
    let version = if rng.chance(15) { "HTTP/1.0" } else { "HTTP/1.1" };
    let mut headers = Vec::new();
    if version == "HTTP/1.1" || rng.chance(50) {
        headers.push(("Host".to_string(), b"example.com".to_vec()));
    }
    for _ in 0..rng.below(5) {
        let (name, value) = rng.pick(FIELDS);
        headers.push((name.to_string(), value.as_bytes().to_vec()));
    }
    let body = match rng.below(3) {
        0 => Body::None,
        1 => Body::Length((0..rng.below(40)).map(|i| b'a' + (i % 26) as u8).collect()),
        _ if version == "HTTP/1.0" => Body::Length(b"ten bytes!".to_vec()),
        _ => {
            let chunks = (0..1 + rng.below(3))
                .map(|i| {
                    let data = (0..1 + rng.below(20)).map(|j| b'A' + ((i + j) % 26) as u8).collect();
                    (data, rng.pick(&["", ";ext", ";name=value", ";q=\"quoted\""]))
                })
                .collect();
            let trailers = if rng.chance(20) { vec![("X-Trailer", "t")] } else { vec![] };
            Body::Chunked(chunks, trailers)
        }
    };
    Draft { method: rng.pick(METHODS), target: rng.pick(TARGETS), version, headers, body }
}

impl Draft {
    /// The framing headers for the body, then the bytes.
    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(format!("{} {} {}\r\n", self.method, self.target, self.version).as_bytes());
        let framing = match &self.body {
            Body::None => None,
            Body::Length(body) => Some(("Content-Length", body.len().to_string())),
            Body::Chunked(..) => Some(("Transfer-Encoding", "chunked".to_string())),
        };
        for (name, value) in &self.headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        }
        if let Some((name, value)) = framing {
            out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        match &self.body {
            Body::None => {}
            Body::Length(body) => out.extend_from_slice(body),
            Body::Chunked(chunks, trailers) => {
                for (data, extension) in chunks {
                    out.extend_from_slice(format!("{:x}{extension}\r\n", data.len()).as_bytes());
                    out.extend_from_slice(data);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(b"0\r\n");
                for (name, value) in trailers {
                    out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
                }
                out.extend_from_slice(b"\r\n");
            }
        }
    }

    fn set(&mut self, name: &str, value: &[u8]) {
        self.headers.push((name.to_string(), value.to_vec()));
    }

    /// Makes it a valid HTTP/1.1 request: the version, and a `Host`.
    fn http11(&mut self) {
        self.version = "HTTP/1.1";
        if !self.headers.iter().any(|(name, _)| name == "Host") {
            self.set("Host", b"example.com");
        }
    }
}

/// The mutations, by name. Each edits the last request of a stream (so the ones before it show
/// that both parsers framed them alike before the decision), as a draft or as bytes.
const MUTATIONS: &[&str] = &[
    "none",
    "obs_fold",
    "duplicate_content_length_same",
    "duplicate_content_length_different",
    "content_length_list_same",
    "content_length_list_different",
    "content_length_and_transfer_encoding",
    "transfer_encoding_gzip",
    "transfer_encoding_gzip_chunked",
    "transfer_encoding_chunked_twice",
    "transfer_encoding_uppercase",
    "chunk_size_not_hex",
    "chunk_size_negative",
    "chunk_size_0x",
    "chunk_size_overflow",
    "chunk_size_leading_space",
    "chunk_size_leading_zeros",
    "chunk_data_without_crlf",
    "chunk_extension_bws",
    "space_before_colon",
    "space_in_field_name",
    "first_field_line_starts_with_space",
    "empty_field_name",
    "non_token_field_name",
    "nul_in_value",
    "ctl_in_value",
    "bare_cr_in_value",
    "obs_text_in_value",
    "bare_lf_line_ends",
    "no_host",
    "two_hosts",
    "version_1_2",
    "version_2_0",
    "version_lowercase",
    "version_missing",
    "method_not_token",
    "method_lowercase",
    "target_with_space",
    "target_with_del",
    "target_with_obs_text",
    "double_space_in_request_line",
    "tab_in_request_line",
    "leading_empty_line",
    "truncated",
    "content_length_negative",
    "content_length_plus",
    "content_length_leading_zeros",
    "content_length_not_digits",
    "content_length_huge",
    "http10_chunked",
    "http10_keep_alive",
    "connection_close",
    "expect_continue",
];

fn generate(id: u64) -> Case {
    let mut rng = Rng(splitmix64(id ^ SEED));
    let mutation = if rng.chance(20) { "none" } else { rng.pick(MUTATIONS) };
    let count = 1 + rng.below(3);
    let mut bytes = Vec::new();
    let mut drafts: Vec<Draft> = (0..count).map(|_| draft(&mut rng)).collect();
    // Requests before the last that would end the connection would hide the mutation.
    for d in &mut drafts[..count - 1] {
        d.version = "HTTP/1.1";
        d.http11();
        if matches!(d.body, Body::Chunked(..)) && rng.chance(50) {
            d.body = Body::Length(b"xyz".to_vec());
        }
    }
    let last = drafts.pop().unwrap();
    for d in &drafts {
        d.write(&mut bytes);
    }
    mutate(mutation, last, &mut bytes, &mut rng);
    Case { id, mutation, bytes }
}

/// The cases' seed: fixed, so that every run checks the same cases.
const SEED: u64 = 0x5eda_0011;

/// Writes the last request of a stream, from `draft`, mutated as `mutation` says.
fn mutate(mutation: &str, mut d: Draft, out: &mut Vec<u8>, rng: &mut Rng) {
    let start = out.len();
    // Raw bytes sent after the head, for mutations that frame the body themselves.
    let mut body: &[u8] = b"";
    let mut field_line: Option<&[u8]> = None;
    let mut request_line: Option<Vec<u8>> = None;
    let chunked_hello = b"5\r\nhello\r\n0\r\n\r\n".as_slice();
    match mutation {
        "none" => {}
        "obs_fold" => field_line = Some(b"X-Folded: first\r\n second part\r\n"),
        "duplicate_content_length_same" | "duplicate_content_length_different" => {
            d.body = Body::Length(b"hello".to_vec());
            d.set("Content-Length", if mutation.ends_with("same") { b"5" } else { b"6" });
        }
        "content_length_list_same" | "content_length_list_different" => {
            d.body = Body::None;
            d.set("Content-Length", if mutation.ends_with("same") { b"5, 5" } else { b"5, 6" });
            body = b"hello";
        }
        "content_length_and_transfer_encoding" => {
            d.http11();
            d.body = Body::Chunked(vec![(b"hello".to_vec(), "")], vec![]);
            d.set("Content-Length", b"3");
        }
        "transfer_encoding_gzip"
        | "transfer_encoding_gzip_chunked"
        | "transfer_encoding_chunked_twice"
        | "transfer_encoding_uppercase" => {
            d.http11();
            d.body = Body::None;
            let coding: &[u8] = match mutation {
                "transfer_encoding_gzip" => b"gzip",
                "transfer_encoding_gzip_chunked" => b"gzip, chunked",
                "transfer_encoding_chunked_twice" => b"chunked, chunked",
                _ => b"Chunked",
            };
            d.set("Transfer-Encoding", coding);
            body = chunked_hello;
        }
        m if m.starts_with("chunk_") => {
            d.http11();
            d.body = Body::None;
            d.set("Transfer-Encoding", b"chunked");
            body = match m {
                "chunk_size_not_hex" => b"zz\r\nhello\r\n0\r\n\r\n",
                "chunk_size_negative" => b"-5\r\nhello\r\n0\r\n\r\n",
                "chunk_size_0x" => b"0x5\r\nhello\r\n0\r\n\r\n",
                "chunk_size_overflow" => b"fffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
                "chunk_size_leading_space" => b" 5\r\nhello\r\n0\r\n\r\n",
                "chunk_size_leading_zeros" => b"0005\r\nhello\r\n0\r\n\r\n",
                "chunk_data_without_crlf" => b"5\r\nhelloXX0\r\n\r\n",
                "chunk_extension_bws" => b"5 ;x=1\r\nhello\r\n0\r\n\r\n",
                other => unreachable!("{other}"),
            };
        }
        "space_before_colon" => field_line = Some(b"X-Space : v\r\n"),
        "space_in_field_name" => field_line = Some(b"X Space: v\r\n"),
        "first_field_line_starts_with_space" => field_line = Some(b" X-First: v\r\n"),
        "empty_field_name" => field_line = Some(b": v\r\n"),
        "non_token_field_name" => field_line = Some(b"X(Bad): v\r\n"),
        "nul_in_value" => field_line = Some(b"X-Nul: a\0b\r\n"),
        "ctl_in_value" => field_line = Some(b"X-Ctl: a\x01b\r\n"),
        "bare_cr_in_value" => field_line = Some(b"X-Cr: a\rb\r\n"),
        "obs_text_in_value" => field_line = Some(b"X-Latin: caf\xe9\r\n"),
        "bare_lf_line_ends" => d.body = Body::None,
        "no_host" => {
            d.version = "HTTP/1.1";
            d.headers.retain(|(name, _)| name != "Host");
        }
        "two_hosts" => {
            d.http11();
            d.set("Host", b"other.example");
        }
        // With a Host: read as 1.1, it needs one (and without one seda answers 400, where h11,
        // which keeps 1.1's rules for 1.1 alone, takes it).
        "version_1_2" => {
            d.http11();
            d.version = "HTTP/1.2";
        }
        "version_2_0" => d.version = "HTTP/2.0",
        "version_lowercase" => d.version = "http/1.1",
        "version_missing" => request_line = Some(format!("{} {}", d.method, d.target).into_bytes()),
        "method_not_token" => d.method = "GE(T",
        "method_lowercase" => d.method = "get",
        "target_with_space" => request_line = Some(format!("GET /a b {}", d.version).into_bytes()),
        "target_with_del" => request_line = Some(format!("GET /a\x7f {}", d.version).into_bytes()),
        "target_with_obs_text" => request_line = Some([b"GET /caf\xe9 ", d.version.as_bytes()].concat()),
        "double_space_in_request_line" => request_line = Some(format!("GET  / {}", d.version).into_bytes()),
        "tab_in_request_line" => request_line = Some(format!("GET\t/ {}", d.version).into_bytes()),
        "leading_empty_line" => out.extend_from_slice(b"\r\n"),
        "truncated" => {}
        m if m.starts_with("content_length_") => {
            d.body = Body::None;
            let value: &[u8] = match m {
                "content_length_negative" => b"-5",
                "content_length_plus" => b"+5",
                "content_length_leading_zeros" => b"005",
                "content_length_not_digits" => b"5x",
                "content_length_huge" => b"99999999999999999999999",
                other => unreachable!("{other}"),
            };
            d.set("Content-Length", value);
            body = b"hello";
        }
        "http10_chunked" => {
            d.version = "HTTP/1.0";
            d.body = Body::Chunked(vec![(b"hello".to_vec(), "")], vec![]);
        }
        "http10_keep_alive" | "connection_close" => {
            if mutation == "http10_keep_alive" {
                d.version = "HTTP/1.0";
                if matches!(d.body, Body::Chunked(..)) {
                    d.body = Body::Length(b"ten bytes!".to_vec());
                }
                d.set("Connection", b"keep-alive");
            } else {
                d.set("Connection", b"close");
            }
        }
        "expect_continue" => {
            d.http11();
            d.body = Body::Length(b"hello".to_vec());
            d.set("Expect", b"100-continue");
        }
        other => unreachable!("mutation {other}"),
    }

    let head_start = out.len();
    d.write(out);
    out.extend_from_slice(body);
    if let Some(line) = field_line {
        let at = head_start + find(&out[head_start..], b"\r\n") + 2;
        out.splice(at..at, line.iter().copied());
    }
    if let Some(line) = request_line {
        let end = head_start + find(&out[head_start..], b"\r\n");
        out.splice(head_start..end, line);
    }
    match mutation {
        "bare_lf_line_ends" => {
            let head: Vec<u8> = out[head_start..].iter().copied().filter(|&b| b != b'\r').collect();
            out.truncate(head_start);
            out.extend_from_slice(&head);
        }
        "truncated" => {
            let cut = start + 1 + rng.below(out.len() - start - 1);
            out.truncate(cut);
        }
        // A request after the one that asked to close (or not to), to see who reads it.
        "http10_keep_alive" | "connection_close" => {
            out.extend_from_slice(b"GET /next HTTP/1.1\r\nHost: example.com\r\n\r\n")
        }
        _ => {}
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).position(|w| w == needle).expect("written by this file")
}
