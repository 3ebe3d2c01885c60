//! Latency histograms: nanoseconds, three significant digits, up to [`HIGHEST_NS`].
//!
//! The hot path records into a [`Counts`]: HdrHistogram's bucket layout in a flat array, where
//! a record is a shift, a count of leading zeros and an increment. The metrics thread turns
//! counts into `hdrhistogram::Histogram`s, which everything else (summaries, logs) reads.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// The largest value recorded exactly; larger ones are recorded as this.
pub const HIGHEST_NS: u64 = 100_000_000_000;

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_NS, 3).expect("static histogram bounds are valid")
}

/// Three significant digits: 2048 sub-buckets per power of two, the upper half of each bucket
/// past the first being distinct (HdrHistogram's layout with a unit of 1 ns).
const SUB_BUCKET_BITS: u32 = 11;
const HALF_BITS: u32 = SUB_BUCKET_BITS - 1;
const HALF: u64 = 1 << HALF_BITS;
const SUB_BUCKET_MASK: u64 = (1 << SUB_BUCKET_BITS) - 1;
/// Buckets until 2048 << buckets exceeds HIGHEST_NS.
const BUCKETS: u32 = {
    let mut buckets = 1;
    while (1u64 << (SUB_BUCKET_BITS + buckets - 1)) <= HIGHEST_NS {
        buckets += 1;
    }
    buckets
};
const LEN: usize = ((BUCKETS + 1) as usize) << HALF_BITS;

/// Counts of recorded values, for one thread to record into on the hot path.
pub struct Counts {
    counts: Box<[u32]>,
    /// Which blocks of 64 buckets hold a count, so that reading and clearing touch only those
    /// (the metrics thread shares CPUs with the workers: its work must stay short).
    touched: [u64; BLOCK_WORDS],
    total: u64,
}

const BLOCK_WORDS: usize = LEN.div_ceil(64 * 64);

impl Default for Counts {
    fn default() -> Self {
        Counts { counts: vec![0; LEN].into_boxed_slice(), touched: [0; BLOCK_WORDS], total: 0 }
    }
}

impl Counts {
    #[inline]
    pub fn record(&mut self, ns: u64) {
        self.record_n(ns, 1);
    }

    /// Records `ns` as `n` observations: a sample standing for `n` requests.
    #[inline]
    pub fn record_n(&mut self, ns: u64, n: u32) {
        let i = index_of(ns.min(HIGHEST_NS));
        // u32 per bucket: a publication interval would need 4 billion records in one bucket.
        self.counts[i] = self.counts[i].wrapping_add(n);
        self.touched[i >> 12] |= 1 << ((i >> 6) & 63);
        self.total += u64::from(n);
    }

    /// The index ranges of the touched blocks.
    fn touched_blocks(&self) -> impl Iterator<Item = std::ops::Range<usize>> {
        blocks_of(self.touched)
    }

    /// Empties the counts, for reuse.
    pub fn clear(&mut self) {
        for block in blocks_of(self.touched) {
            self.counts[block].fill(0);
        }
        self.touched = [0; BLOCK_WORDS];
        self.total = 0;
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// Adds these counts to `h`, each at the lowest value of its bucket, which `h` (with the
    /// same precision) puts in the same bucket.
    pub fn add_to(&self, h: &mut Histogram<u64>) {
        for block in self.touched_blocks() {
            for i in block.filter(|&i| self.counts[i] != 0) {
                h.saturating_record_n(value_of(i), u64::from(self.counts[i]));
            }
        }
    }
}

/// The bucket ranges of the blocks marked in `touched`.
fn blocks_of(touched: [u64; BLOCK_WORDS]) -> impl Iterator<Item = std::ops::Range<usize>> {
    touched.into_iter().enumerate().flat_map(|(w, bits)| {
        (0..64).filter(move |b| bits & (1 << b) != 0).map(move |b| {
            let start = (w * 64 + b) * 64;
            start..(start + 64).min(LEN)
        })
    })
}

#[inline]
fn index_of(v: u64) -> usize {
    // Bucket: which power of two past the first 2048 values.
    let bucket = (64 - SUB_BUCKET_BITS) - (v | SUB_BUCKET_MASK).leading_zeros();
    let sub = v >> bucket;
    (((bucket as u64 + 1) << HALF_BITS) + sub - HALF) as usize
}

fn value_of(i: usize) -> u64 {
    let i = i as u64;
    let bucket = (i >> HALF_BITS) as i64 - 1;
    let sub = (i & (HALF - 1)) + HALF;
    if bucket < 0 {
        sub - HALF
    } else {
        sub << bucket
    }
}

/// The percentiles a summary shows, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Percentiles {
    pub count: u64,
    pub mean: f64,
    pub p50: f64,
    pub p90: f64,
    pub p99: f64,
    pub p999: f64,
    pub max: f64,
}

impl Percentiles {
    pub fn of(h: Option<&Histogram<u64>>) -> Self {
        let Some(h) = h.filter(|h| !h.is_empty()) else { return Percentiles::default() };
        let us = |ns: u64| ns as f64 / 1_000.0;
        Percentiles {
            count: h.len(),
            mean: h.mean() / 1_000.0,
            p50: us(h.value_at_quantile(0.50)),
            p90: us(h.value_at_quantile(0.90)),
            p99: us(h.value_at_quantile(0.99)),
            p999: us(h.value_at_quantile(0.999)),
            max: us(h.max()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values() -> impl Iterator<Item = u64> {
        // Every small value, then a spread over the whole range.
        (0..5_000).chain((0..200_000u64).map(|i| seda_stages::splitmix64(i) % (1 << (i % 38))))
    }

    #[test]
    fn counts_land_in_the_buckets_hdrhistogram_uses() {
        let mut counts = Counts::default();
        let mut direct = new_histogram();
        for v in values() {
            counts.record(v);
            direct.record(v.min(HIGHEST_NS)).unwrap();
        }
        let mut converted = new_histogram();
        counts.add_to(&mut converted);
        assert_eq!(converted.len(), direct.len());
        let a: Vec<(u64, u64)> =
            converted.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
        let b: Vec<(u64, u64)> = direct.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
        assert_eq!(a, b);
    }

    #[test]
    fn cleared_counts_are_empty_and_record_afresh() {
        let mut counts = Counts::default();
        for v in values() {
            counts.record(v);
        }
        counts.clear();
        assert!(counts.is_empty());
        assert!(counts.counts.iter().all(|&n| n == 0));
        counts.record(1234);
        let mut h = new_histogram();
        counts.add_to(&mut h);
        assert_eq!((h.len(), h.min()), (1, 1234));
    }

    #[test]
    fn values_past_the_highest_are_recorded_as_the_highest() {
        let mut counts = Counts::default();
        counts.record(u64::MAX);
        let mut h = new_histogram();
        counts.add_to(&mut h);
        assert!(h.equivalent(h.max(), HIGHEST_NS));
    }

    #[test]
    fn layout_covers_the_range() {
        assert_eq!(LEN, new_histogram().distinct_values());
        assert!(index_of(HIGHEST_NS) < LEN);
    }
}
