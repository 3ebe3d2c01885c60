//! `gzip`: compresses the response body when the client accepts it. Real CPU work for a
//! compute stage. `{"min_bytes": 256, "level": 6}`
//!
//! A `200` whose body is at least `min_bytes` long and not already encoded gets
//! `Vary: Accept-Encoding` (its form depends on that header, whichever it takes); when the
//! request's `Accept-Encoding` allows gzip (`gzip` or `*` with a non-zero `q`), the body is
//! replaced by its gzip form and `Content-Encoding: gzip` is set. Anything else passes as it is.
//!
//! Each instance keeps its deflate state and an output buffer: the finished body is swapped
//! into the response, and the response's old buffer becomes the next output buffer, so a
//! steady stream compresses without allocating.

use flate2::{Compress, Compression, Crc, FlushCompress, Status};
use serde::Deserialize;

use crate::http::trim_ows;
use crate::{BuildError, Output, Outputs, Request, Stage, StageError, StageFactory, Step};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "default_min_bytes")]
    min_bytes: usize,
    #[serde(default = "default_level")]
    level: u32,
}

/// Below this, the gzip framing (18 bytes) and the CPU spent outweigh the bytes saved.
fn default_min_bytes() -> usize {
    256
}

fn default_level() -> u32 {
    6
}

/// The gzip member header (RFC 1952): deflate, no flags, no time, unknown OS.
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 255];

pub struct Gzip {
    min_bytes: usize,
    level: u32,
}

impl Gzip {
    pub fn new(params: Params) -> Result<Self, BuildError> {
        if params.level > 9 {
            return Err(BuildError::bad("level", format!("level {} is not a gzip level (0-9)", params.level)));
        }
        Ok(Gzip { min_bytes: params.min_bytes, level: params.level })
    }
}

impl StageFactory for Gzip {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(Compressor {
            min_bytes: self.min_bytes,
            deflate: Compress::new(Compression::new(self.level), false),
            crc: Crc::new(),
            out: Vec::new(),
        })
    }
}

struct Compressor {
    min_bytes: usize,
    deflate: Compress,
    crc: Crc,
    out: Vec<u8>,
}

impl Compressor {
    /// `input` in gzip form into `self.out`.
    fn compress(&mut self, input: &[u8]) -> Result<(), flate2::CompressError> {
        self.out.clear();
        self.out.extend_from_slice(&HEADER);
        self.deflate.reset();
        loop {
            // compress_vec writes only into spare capacity.
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
}

impl Stage for Compressor {
    fn handle(&mut self, req: &mut Request) -> Step {
        let response = &req.response;
        if response.status != 200
            || response.bytes().len() < self.min_bytes
            || response.headers.get("Content-Encoding").is_some()
        {
            return Step::Next(Output::NEXT);
        }
        req.response.headers.set("Vary", b"Accept-Encoding");
        if !req.http.header("accept-encoding").is_some_and(accepts_gzip) {
            return Step::Next(Output::NEXT);
        }
        if let Err(e) = self.compress(req.response.bytes()) {
            return Step::Fail(StageError::new(format!("gzip: {e}")));
        }
        std::mem::swap(&mut req.response.body, &mut self.out);
        req.response.shared = None;
        req.response.headers.set("Content-Encoding", b"gzip");
        Step::Next(Output::NEXT)
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
    fn compresses_a_shared_body_into_its_own() {
        let mut s = stage(json!({"level": 1, "min_bytes": 0}));
        let mut req = ok_request(Some("*"), Vec::new());
        req.response.shared = Some(Arc::from(text(5000)));
        s.handle(&mut req);
        assert!(req.response.shared.is_none());
        assert_eq!(gunzip(&req.response.body), text(5000));
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
        let mut s = Compressor {
            min_bytes: 0,
            deflate: Compress::new(Compression::new(6), false),
            crc: Crc::new(),
            out: Vec::new(),
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
    fn level_over_9_is_refused() {
        let err = crate::build("gzip", &json!({"level": 10})).err().unwrap();
        assert_eq!(err, BuildError::bad("level", "level 10 is not a gzip level (0-9)"));
    }
}
