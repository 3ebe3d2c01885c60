//! Deterministic per-request randomness.
//!
//! Stages that choose by chance (`route` by weight, `chaos`) decide from a hash of the request
//! id and a seed, not from a stateful generator: the same run makes the same choices on any
//! number of workers, so tests can compute the exact outcome.

/// SplitMix64: a fast, well-mixed 64-bit hash of `x`.
pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A number in `[0, 1)` drawn from request `id` under `seed`.
pub fn unit_interval(id: u64, seed: u64) -> f64 {
    // 53 high bits make an exactly representable double in [0, 1).
    (splitmix64(id ^ splitmix64(seed)) >> 11) as f64 / (1u64 << 53) as f64
}
