//! `gzip`: compresses the response body when the client accepts it. Real CPU work for a
//! compute stage. `{"min_bytes": 256, "max_bytes": 1048576, "level": 6, "cache_bytes": 16777216}`
//!
//! A `200` whose body is at least `min_bytes` long and not already encoded gets
//! `Vary: Accept-Encoding` (its form depends on that header, whichever it takes); when the
//! request's `Accept-Encoding` allows gzip (`gzip` or `*` with a non-zero `q`), the body is
//! replaced by its gzip form and `Content-Encoding: gzip` is set. Anything else passes as it is.
//!
//! What is not compressed per request, so that a worker is not held for seconds (four requests
//! for a 16 MiB file once held one for 2.15 s):
//! 1. A body over `max_bytes`, and a body streamed from a file (a large static file: it is not
//!    in memory), is sent as it is (identity): compressing it would cost the worker in
//!    proportion to its size, per request.
//! 2. A shared body (a cached file, a fixed answer) is compressed once per version: its gzip
//!    form is kept, keyed by the shared body itself (the same `Arc`, held weakly), and every
//!    later answer shares it. A new version of a file is a new body, so it is compressed anew;
//!    the old form goes when its body has gone or it is evicted (oldest first, past
//!    `cache_bytes`, which counts both forms: a kept form holds its original's memory too).
//!
//! What is left (bodies of one request between `min_bytes` and `max_bytes`) is compressed on
//! the pool the stage runs on: put it on a pool of its own to keep it off the one that answers
//! small requests.
//!
//! Each instance keeps its deflate state and an output buffer: the finished body is swapped
//! into the response, and the response's old buffer becomes the next output buffer, so a
//! steady stream compresses without allocating.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, Weak};

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use schemars::JsonSchema;
use serde::Deserialize;

use crate::http::trim_ows;
use crate::{BuildError, Output, Outputs, Request, Stage, StageError, StageFactory, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "default_min_bytes")]
    min_bytes: usize,
    #[serde(default = "default_max_bytes")]
    max_bytes: usize,
    #[serde(default = "default_level")]
    level: u32,
    #[serde(default = "default_cache_bytes")]
    cache_bytes: usize,
}

/// Below this, the gzip framing (18 bytes) and the CPU spent outweigh the bytes saved.
fn default_min_bytes() -> usize {
    256
}

/// About 10 ms of one core at level 6: what a request may cost its worker.
fn default_max_bytes() -> usize {
    1 << 20
}

fn default_level() -> u32 {
    6
}

fn default_cache_bytes() -> usize {
    16 << 20
}

/// The gzip member header (RFC 1952): deflate, no flags, no time, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

pub struct Gzip {
    min_bytes: usize,
    max_bytes: usize,
    level: u32,
    shared: Arc<Shared>,
}

/// What the instances share: the kept gzip forms and the counts.
struct Shared {
    forms: Mutex<Forms>,
    /// Bodies compressed (each a deflate pass over a whole body).
    compressed: AtomicU64,
    /// Answers that shared a kept gzip form instead.
    reused: AtomicU64,
    /// Bodies over `max_bytes` (or streamed) sent as they are to a client that accepts gzip.
    declined: AtomicU64,
}

impl Gzip {
    pub fn new(params: Params) -> Result<Self, BuildError> {
        if params.level > 9 {
            return Err(BuildError::bad("level", format!("level {} is not a gzip level (0-9)", params.level)));
        }
        if params.max_bytes < params.min_bytes {
            let message = format!("`max_bytes` ({}) is below `min_bytes` ({})", params.max_bytes, params.min_bytes);
            return Err(BuildError::bad("max_bytes", message));
        }
        let shared = Shared {
            forms: Mutex::new(Forms::new(params.cache_bytes)),
            compressed: AtomicU64::new(0),
            reused: AtomicU64::new(0),
            declined: AtomicU64::new(0),
        };
        Ok(Gzip {
            min_bytes: params.min_bytes,
            max_bytes: params.max_bytes,
            level: params.level,
            shared: Arc::new(shared),
        })
    }
}

impl StageFactory for Gzip {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(Compressor {
            min_bytes: self.min_bytes,
            max_bytes: self.max_bytes,
            deflate: Compress::new(Compression::new(self.level), false),
            crc: Crc::new(),
            out: Vec::new(),
            shared: self.shared.clone(),
        })
    }

    fn counters(&self) -> Vec<(&'static str, u64)> {
        let s = &self.shared;
        vec![
            ("compressed", s.compressed.load(Relaxed)),
            ("reused", s.reused.load(Relaxed)),
            ("declined", s.declined.load(Relaxed)),
        ]
    }
}

struct Compressor {
    min_bytes: usize,
    max_bytes: usize,
    deflate: Compress,
    crc: Crc,
    out: Vec<u8>,
    shared: Arc<Shared>,
}

impl Compressor {
    /// `input` in gzip form into `self.out`.
    fn compress(&mut self, input: &[u8]) -> Result<(), flate2::CompressError> {
        self.shared.compressed.fetch_add(1, Relaxed);
        self.out.clear();
        self.out.extend_from_slice(&HEADER);
        self.deflate.reset();
        loop {
            // compress_vec writes only into reusable capacity.
            if self.out.capacity() - self.out.len() < 1024 {
                self.out.reserve(input.len() / 4 + 1024);
            }
            let consumed = self.deflate.total_in() as usize;
            if self.deflate.compress_vec(&input[consumed..], &mut self.out, FlushCompress::Finish)? == Status::StreamEnd
            {
                break;
            }
        }
        self.crc.reset();
        self.crc.update(input);
        self.out.extend_from_slice(&self.crc.sum().to_le_bytes());
        // ISIZE is the length modulo 2^32.
        self.out.extend_from_slice(&(input.len() as u32).to_le_bytes());
        Ok(())
    }

    /// The gzip form of a shared body: the kept one, or one made now and kept.
    fn shared_form(&mut self, body: &Arc<[u8]>) -> Result<Arc<[u8]>, flate2::CompressError> {
        if let Some(form) = self.shared.lock().get(body) {
            self.shared.reused.fetch_add(1, Relaxed);
            return Ok(form);
        }
        // Compressed outside the lock; two instances that miss at once both compress, and
        // the later insert replaces the earlier.
        self.compress(body)?;
        let form: Arc<[u8]> = self.out.as_slice().into();
        let evicted = self.shared.lock().insert(body, form.clone());
        drop(evicted);
        Ok(form)
    }
}

impl Shared {
    /// Nothing under the lock panics, so a poisoned lock is taken over.
    fn lock(&self) -> std::sync::MutexGuard<'_, Forms> {
        self.forms.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Stage for Compressor {
    fn handle(&mut self, req: &mut Request) -> Step {
        let response = &req.response;
        let len = response.body_len();
        if response.status != 200 || len < self.min_bytes as u64 || response.headers.get("Content-Encoding").is_some() {
            return Step::Next(Output::NEXT);
        }
        req.response.headers.set("Vary", b"Accept-Encoding");
        if !req.http.header("accept-encoding").is_some_and(accepts_gzip) {
            return Step::Next(Output::NEXT);
        }
        if len > self.max_bytes as u64 || req.response.file.is_some() {
            self.shared.declined.fetch_add(1, Relaxed);
            return Step::Next(Output::NEXT);
        }
        if let Some(body) = req.response.shared.take() {
            match self.shared_form(&body) {
                Ok(form) => req.response.shared = Some(form),
                Err(e) => return Step::Fail(StageError::new(format!("gzip: {e}"))),
            }
        } else {
            if let Err(e) = self.compress(req.response.bytes()) {
                return Step::Fail(StageError::new(format!("gzip: {e}")));
            }
            std::mem::swap(&mut req.response.body, &mut self.out);
        }
        req.response.headers.set("Content-Encoding", b"gzip");
        Step::Next(Output::NEXT)
    }
}

/// The gzip forms kept, keyed by the address of the shared body they were made from. Each
/// holds that body weakly: the address cannot be reused while a `Weak` holds its allocation,
/// and a body still alive (`upgrade`) is the very one compressed. Evicted oldest first.
struct Forms {
    map: HashMap<usize, Form>,
    order: VecDeque<usize>,
    bytes: usize,
    capacity: usize,
}

struct Form {
    original: Weak<[u8]>,
    gzipped: Arc<[u8]>,
    /// The gzip form and its original: a `Weak` keeps the original's allocation (its bytes
    /// with it) until the form is dropped.
    cost: usize,
}

fn key(body: &Arc<[u8]>) -> usize {
    Arc::as_ptr(body) as *const u8 as usize
}

impl Forms {
    fn new(capacity: usize) -> Self {
        Forms { map: HashMap::new(), order: VecDeque::new(), bytes: 0, capacity }
    }

    fn get(&self, body: &Arc<[u8]>) -> Option<Arc<[u8]>> {
        let form = self.map.get(&key(body))?;
        let alive = form.original.upgrade().is_some_and(|original| Arc::ptr_eq(&original, body));
        alive.then(|| form.gzipped.clone())
    }

    /// Keeps `gzipped` as the form of `body`, first dropping the forms whose bodies are gone
    /// (and an earlier form of this one), then the oldest until it fits. Gives back what it
    /// removed, to be freed once the lock is released.
    fn insert(&mut self, body: &Arc<[u8]>, gzipped: Arc<[u8]>) -> Vec<Form> {
        let cost = gzipped.len() + body.len();
        let mut removed = Vec::new();
        if cost > self.capacity {
            return removed;
        }
        let k = key(body);
        let (map, bytes) = (&mut self.map, &mut self.bytes);
        self.order.retain(|old| {
            let body_alive = map.get(old).is_some_and(|f| f.original.strong_count() > 0);
            let gone = *old == k || !body_alive;
            if gone {
                if let Some(form) = map.remove(old) {
                    *bytes -= form.cost;
                    removed.push(form);
                }
            }
            !gone
        });
        while self.bytes + cost > self.capacity {
            let Some(oldest) = self.order.pop_front() else { break };
            if let Some(form) = self.map.remove(&oldest) {
                self.bytes -= form.cost;
                removed.push(form);
            }
        }
        self.order.push_back(k);
        self.map.insert(k, Form { original: Arc::downgrade(body), gzipped, cost });
        self.bytes += cost;
        removed
    }
}

/// Whether an `Accept-Encoding` value allows gzip: `gzip` (or `x-gzip`) listed with a non-zero
/// `q`, or else `*` with one (RFC 9110 §12.5.3). An unreadable `q` counts as 0.
pub fn accepts_gzip(value: &[u8]) -> bool {
    let (mut gzip, mut any) = (None, None);
    for item in value.split(|&b| b == b',') {
        let mut parts = item.split(|&b| b == b';');
        let coding = trim_ows(parts.next().unwrap_or_default());
        let q = parts.map(trim_ows).find_map(|p| p.strip_prefix(b"q=").or_else(|| p.strip_prefix(b"Q=")));
        let q = q.map_or(Some(1.0), |q| std::str::from_utf8(q).ok().and_then(|q| q.parse::<f32>().ok())).unwrap_or(0.0);
        if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip") {
            gzip = Some(q);
        } else if coding == b"*" {
            any = Some(q);
        }
    }
    gzip.or(any).is_some_and(|q| q > 0.0)
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::sync::Arc;

    use serde_json::json;

    use super::*;
    use crate::kinds::test_support::{header, http_request};

    fn stage(params: serde_json::Value) -> Box<dyn Stage> {
        Gzip::new(serde_json::from_value(params).unwrap()).unwrap().instance(0)
    }

    fn gunzip(bytes: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(bytes).read_to_end(&mut out).unwrap();
        out
    }

    /// A text that compresses, `n` bytes long.
    fn text(n: usize) -> Vec<u8> {
        b"the quick brown fox jumps over the lazy dog. ".iter().copied().cycle().take(n).collect()
    }

    fn ok_request(accept: Option<&str>, body: Vec<u8>) -> Request {
        let headers: Vec<_> = accept.map(|a| ("Accept-Encoding", a)).into_iter().collect();
        let mut req = http_request("GET", "/", &headers);
        req.response.status = 200;
        req.response.body = body;
        req
    }

    #[test]
    fn compresses_and_round_trips() {
        let mut s = stage(json!({}));
        for n in [256, 10_000, 1 << 20] {
            let mut req = ok_request(Some("deflate, gzip;q=0.8, br"), text(n));
            assert!(matches!(s.handle(&mut req), Step::Next(Output::NEXT)));
            assert_eq!(header(&req, "Content-Encoding").as_deref(), Some("gzip"));
            assert_eq!(header(&req, "Vary").as_deref(), Some("Accept-Encoding"));
            assert!(req.response.bytes().len() < n / 2, "{n}: {}", req.response.bytes().len());
            assert_eq!(gunzip(req.response.bytes()), text(n));
        }
    }

    #[test]
    fn a_shared_body_is_compressed_once_and_its_form_shared() {
        let gzip = Gzip::new(serde_json::from_value(json!({"level": 1, "min_bytes": 0})).unwrap()).unwrap();
        let mut instances = [gzip.instance(0), gzip.instance(1)];
        let body: Arc<[u8]> = Arc::from(text(5000));
        let mut forms = Vec::new();
        for i in [0, 1, 0] {
            let mut req = ok_request(Some("*"), Vec::new());
            req.response.shared = Some(body.clone());
            instances[i].handle(&mut req);
            assert_eq!(gunzip(req.response.bytes()), text(5000));
            forms.push(req.response.shared.expect("the kept form, shared"));
        }
        assert!(Arc::ptr_eq(&forms[0], &forms[1]) && Arc::ptr_eq(&forms[0], &forms[2]));
        assert_eq!(gzip.counters(), [("compressed", 1), ("reused", 2), ("declined", 0)]);

        // Another version (another body with the same bytes): compressed anew; the old form
        // goes once its body has gone.
        drop(body);
        let mut req = ok_request(Some("gzip"), Vec::new());
        req.response.shared = Some(Arc::from(text(5000)));
        instances[0].handle(&mut req);
        assert_eq!(gzip.counters()[0], ("compressed", 2));
        assert_eq!(gzip.shared.lock().map.len(), 1);
    }

    #[test]
    fn bodies_over_max_bytes_or_streamed_are_sent_as_they_are() {
        let gzip = Gzip::new(serde_json::from_value(json!({"max_bytes": 1000})).unwrap()).unwrap();
        let mut s = gzip.instance(0);
        let mut over = ok_request(Some("gzip"), text(1001));
        s.handle(&mut over);
        assert_eq!(over.response.body, text(1001));
        assert_eq!(header(&over, "Content-Encoding"), None);
        assert_eq!(header(&over, "Vary").as_deref(), Some("Accept-Encoding"));
        let mut at = ok_request(Some("gzip"), text(1000));
        s.handle(&mut at);
        assert_eq!(header(&at, "Content-Encoding").as_deref(), Some("gzip"));

        let path = crate::kinds::test_support::temp_dir("gzip-streamed").join("f");
        std::fs::write(&path, text(500)).unwrap();
        let mut streamed = ok_request(Some("gzip"), Vec::new());
        let file = Arc::new(std::fs::File::open(&path).unwrap());
        streamed.response.file = Some(crate::FileBody { file, offset: 0, len: 500 });
        s.handle(&mut streamed);
        assert_eq!(header(&streamed, "Content-Encoding"), None);
        assert_eq!(gzip.counters(), [("compressed", 1), ("reused", 0), ("declined", 2)]);
    }

    #[test]
    fn kept_forms_are_bounded_in_bytes_oldest_evicted_first() {
        let mut forms = Forms::new(100);
        let bodies: Vec<Arc<[u8]>> = (0..3).map(|i| Arc::from(vec![i as u8; 30])).collect();
        for body in &bodies {
            forms.insert(body, Arc::from(vec![0u8; 10]));
        }
        // 40 each: the third pushed the first out.
        assert_eq!((forms.bytes, forms.map.len()), (80, 2));
        assert!(forms.get(&bodies[0]).is_none() && forms.get(&bodies[2]).is_some());
        assert!(forms.insert(&Arc::from(vec![0u8; 95]), Arc::from(vec![0u8; 10])).is_empty(), "too large to keep");
        assert_eq!(forms.map.len(), 2);
    }

    #[test]
    fn skipped_without_accept_encoding_but_still_varies() {
        let mut s = stage(json!({}));
        for accept in [None, Some("identity"), Some("gzip;q=0"), Some("br, *;q=0"), Some("gzip;q=zero")] {
            let mut req = ok_request(accept, text(1000));
            s.handle(&mut req);
            assert_eq!(req.response.body, text(1000), "{accept:?}");
            assert_eq!(header(&req, "Content-Encoding"), None, "{accept:?}");
            assert_eq!(header(&req, "Vary").as_deref(), Some("Accept-Encoding"), "{accept:?}");
        }
    }

    #[test]
    fn skipped_for_small_bodies_other_statuses_and_encoded_bodies() {
        let mut s = stage(json!({"min_bytes": 100}));
        let mut small = ok_request(Some("gzip"), text(99));
        s.handle(&mut small);
        let mut not_found = ok_request(Some("gzip"), text(1000));
        not_found.response.status = 404;
        s.handle(&mut not_found);
        let mut encoded = ok_request(Some("gzip"), text(1000));
        encoded.response.headers.set("Content-Encoding", b"br");
        s.handle(&mut encoded);
        for (req, n) in [(small, 99), (not_found, 1000), (encoded, 1000)] {
            assert_eq!(req.response.body, text(n));
            assert_eq!(header(&req, "Vary"), None);
        }
    }

    #[test]
    fn the_output_buffer_is_reused() {
        let gzip = Gzip::new(serde_json::from_value(json!({"min_bytes": 0})).unwrap()).unwrap();
        let mut s = Compressor {
            min_bytes: 0,
            max_bytes: 1 << 20,
            deflate: Compress::new(Compression::new(6), false),
            crc: Crc::new(),
            out: Vec::new(),
            shared: gzip.shared.clone(),
        };
        let mut first = ok_request(Some("gzip"), text(10_000));
        let first_body = first.response.body.as_ptr();
        s.handle(&mut first);
        assert_eq!(s.out.as_ptr(), first_body, "the request's old body is the next output buffer");
        let mut second = ok_request(Some("gzip"), text(10_000));
        s.handle(&mut second);
        assert_eq!(second.response.body.as_ptr(), first_body, "compressed into it, no new buffer");
        assert_eq!(gunzip(&second.response.body), text(10_000));
    }

    #[test]
    fn accept_encoding_follows_q_values() {
        assert!(accepts_gzip(b"gzip"));
        assert!(accepts_gzip(b"GZip ; q=0.5"));
        assert!(accepts_gzip(b"x-gzip"));
        assert!(accepts_gzip(b"br, *"));
        assert!(!accepts_gzip(b"gzip;q=0, *"));
        assert!(!accepts_gzip(b"br, deflate"));
        assert!(!accepts_gzip(b""));
    }

    #[test]
    fn max_bytes_below_min_bytes_is_refused() {
        let err = crate::build("gzip", &json!({"min_bytes": 100, "max_bytes": 99})).err().unwrap();
        assert_eq!(err, BuildError::bad("max_bytes", "`max_bytes` (99) is below `min_bytes` (100)"));
    }

    #[test]
    fn level_over_9_is_refused() {
        let err = crate::build("gzip", &json!({"level": 10})).err().unwrap();
        assert_eq!(err, BuildError::bad("level", "level 10 is not a gzip level (0-9)"));
    }
}
