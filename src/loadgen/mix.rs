//! The request mix: which requests are sent, in what proportions.
//!
//! A mix file has one kind of request a line, `METHOD PATH BODY_BYTES WEIGHT`, with `#`
//! comments:
//!
//! ```text
//! # method path          body  weight
//! GET      /index.html      0       8
//! POST     /api/orders    512       2
//! ```
//!
//! Request `n` is of the kind a hash of `n` and the seed falls on, by weight, so a run repeats
//! (or, in order, kind `n mod kinds`). A request file ([`super::request_file`]) makes a mix
//! too, with headers, bodies and names.

use seda_stages::splitmix64;

/// One kind of request: what is sent for it, and how often.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestKind {
    /// Its name in the results (a request file's `name`; else `METHOD PATH`).
    pub name: String,
    pub method: String,
    /// The request target: path and query.
    pub path: String,
    /// Sent after `Host`, in this order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub weight: u32,
}

impl RequestKind {
    /// A request named `METHOD PATH`, with no headers.
    pub fn new(method: &str, path: &str, body: Vec<u8>, weight: u32) -> Self {
        RequestKind {
            name: format!("{method} {path}"),
            method: method.into(),
            path: path.into(),
            headers: Vec::new(),
            body,
            weight,
        }
    }
}

/// The largest body a mix may ask for.
pub const MAX_BODY_BYTES: usize = 16 << 20;

#[derive(Debug, Clone)]
pub struct Mix {
    pub kinds: Vec<RequestKind>,
    /// Cumulative weights, by kind.
    bounds: Vec<u64>,
    seed: u64,
    /// Request `n` is kind `n mod kinds` instead of a weighted draw.
    in_order: bool,
    /// Results per kind too (a request file, or more than one kind).
    pub per_kind: bool,
}

impl Mix {
    /// Every request a `GET` of `path`.
    pub fn single(path: &str) -> Self {
        Mix::of(vec![RequestKind::new("GET", path, Vec::new(), 1)], 0)
    }

    /// A mix of `kinds`, drawn by weight from a hash of each request's number and `seed`.
    pub fn of(kinds: Vec<RequestKind>, seed: u64) -> Self {
        let bounds = kinds
            .iter()
            .scan(0u64, |total, k| {
                *total += u64::from(k.weight);
                Some(*total)
            })
            .collect();
        let per_kind = kinds.len() > 1;
        Mix { kinds, bounds, seed, in_order: false, per_kind }
    }

    /// Request `n` is kind `n mod kinds`: each in turn, in the order given, weights aside.
    pub fn in_order(mut self, in_order: bool) -> Self {
        self.in_order = in_order;
        self
    }

    /// Parses a mix file's text; an error names the line.
    pub fn parse(text: &str, seed: u64) -> Result<Self, String> {
        let mut kinds = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let bad = |why: String| format!("line {}: {why} (expected METHOD PATH BODY_BYTES WEIGHT)", i + 1);
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [method, path, body, weight] = fields[..] else {
                return Err(bad(format!("{} fields", fields.len())));
            };
            if !method.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(bad(format!("`{method}` is not a method")));
            }
            if !path.starts_with('/') {
                return Err(bad(format!("path `{path}` does not start with /")));
            }
            let body_bytes = body
                .parse::<usize>()
                .ok()
                .filter(|&b| b <= MAX_BODY_BYTES)
                .ok_or_else(|| bad(format!("body size `{body}` is not a byte count up to {MAX_BODY_BYTES}")))?;
            let weight = weight
                .parse::<u32>()
                .ok()
                .filter(|&w| w > 0)
                .ok_or_else(|| bad(format!("weight `{weight}` is not a positive integer")))?;
            kinds.push(RequestKind::new(method, path, vec![b'x'; body_bytes], weight));
        }
        if kinds.is_empty() {
            return Err("the mix has no requests".into());
        }
        Ok(Mix::of(kinds, seed))
    }

    /// The kind of request number `n`.
    pub fn pick(&self, n: u64) -> usize {
        if self.kinds.len() == 1 {
            return 0;
        }
        if self.in_order {
            return (n % self.kinds.len() as u64) as usize;
        }
        let draw = splitmix64(n ^ self.seed) % self.bounds.last().expect("a mix has a kind");
        self.bounds.iter().position(|&b| draw < b).expect("the draw is below the total")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_file_parses_and_draws_by_weight() {
        let mix = Mix::parse("# comment\nGET /a 0 3\n\nPOST /b 512 1 # writes\n", 9).unwrap();
        assert_eq!(mix.kinds.len(), 2);
        assert_eq!(mix.kinds[1], RequestKind::new("POST", "/b", vec![b'x'; 512], 1));
        assert_eq!(mix.kinds[1].name, "POST /b");
        let posts = (0..100_000).filter(|&n| mix.pick(n) == 1).count();
        assert!((24_000..26_000).contains(&posts), "{posts}");
        assert_eq!(mix.pick(12345), mix.pick(12345));
        let in_order = mix.in_order(true);
        assert_eq!((0..5).map(|n| in_order.pick(n)).collect::<Vec<_>>(), [0, 1, 0, 1, 0]);
    }

    #[test]
    fn bad_lines_are_named() {
        assert_eq!(
            Mix::parse("GET /a 0\n", 0).unwrap_err(),
            "line 1: 3 fields (expected METHOD PATH BODY_BYTES WEIGHT)"
        );
        assert!(Mix::parse("GET /a 0 1\nget /b 0 1", 0).unwrap_err().starts_with("line 2: `get` is not a method"));
        assert!(Mix::parse("GET a 0 1", 0).unwrap_err().contains("does not start with /"));
        assert!(Mix::parse("GET /a x 1", 0).unwrap_err().contains("body size `x`"));
        assert!(Mix::parse("GET /a 0 0", 0).unwrap_err().contains("weight `0`"));
        assert_eq!(Mix::parse("# nothing\n", 0).unwrap_err(), "the mix has no requests");
    }
}
