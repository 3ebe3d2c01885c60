//! Which requests a worker times through their stages, for the per-stage service-time stats.
//!
//! Timing a request reads the clock after each of its stages; on a no-op stage that reading
//! costs more than the stage. So a worker times a sample of requests: as often as every request
//! while the readings cost under [`BUDGET_PERCENT`] of the time the timed stages took, and at
//! least every `max_gap`-th request (the config's `stage_timing_every`) however cheap the stages
//! are. Each stage's sample stands for that stage's calls since its previous one (the worker
//! counts them per stage: requests take different paths), so the weights add up to the calls.

use crate::clock::reading_cost_ns;

/// The clock's share of a sampled request's stage time that the sampler aims at.
pub(crate) const BUDGET_PERCENT: u64 = 1;

pub(crate) struct Sampler {
    max_gap: u32,
    /// What one clock reading costs, in nanoseconds.
    reading_ns: u64,
    /// Requests from one timed request to the next: the weight of the next sample.
    gap: u32,
    /// Untimed requests before the next timed one.
    left: u32,
    /// Clock readings the current timed request took.
    readings: u32,
}

impl Sampler {
    /// A sampler timing at least every `max_gap`-th request (at least 1); the first is timed.
    pub fn new(max_gap: u32) -> Self {
        Sampler::with_reading_cost(max_gap, reading_cost_ns())
    }

    fn with_reading_cost(max_gap: u32, reading_ns: u64) -> Self {
        Sampler { max_gap: max_gap.max(1), reading_ns, gap: 1, left: 0, readings: 0 }
    }

    /// Whether to time the next request.
    #[inline]
    pub fn next_is_timed(&mut self) -> bool {
        if self.left == 0 {
            return true;
        }
        self.left -= 1;
        false
    }

    /// Requests from one timed request to the next (how many a sample stands for, on a path
    /// every request takes).
    #[cfg(test)]
    fn weight(&self) -> u32 {
        self.gap
    }

    /// One clock reading for the timed request.
    #[inline]
    pub fn reading(&mut self) {
        self.readings += 1;
    }

    /// The timed request is done: its stages took `ns` in all. Sets the gap to the next one, so
    /// that its readings cost [`BUDGET_PERCENT`] of the stage time the gap stands for.
    pub fn timed(&mut self, ns: u64) {
        let cost = u64::from(self.readings) * self.reading_ns * (100 / BUDGET_PERCENT);
        self.readings = 0;
        self.gap = cost.div_ceil(ns.max(1)).clamp(1, u64::from(self.max_gap)) as u32;
        self.left = self.gap - 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Times one request of `stages` stages that took `ns`; returns the gap to the next.
    fn time(s: &mut Sampler, stages: u32, ns: u64) -> u32 {
        assert!(s.next_is_timed());
        (0..stages).for_each(|_| s.reading());
        s.timed(ns);
        s.weight()
    }

    #[test]
    fn slow_stages_are_timed_on_every_request() {
        let mut s = Sampler::with_reading_cost(64, 20);
        // 4 readings of 20 ns against 10 us of stages: 0.8%.
        assert_eq!(time(&mut s, 4, 10_000), 1);
        assert_eq!(time(&mut s, 4, 10_000), 1);
    }

    #[test]
    fn cheap_stages_are_sampled_with_weights_that_count_every_request() {
        let mut s = Sampler::with_reading_cost(64, 20);
        assert_eq!(s.weight(), 1, "the first sample stands for itself");
        // 4 readings of 20 ns = 80 ns against 400 ns of stages: 1% needs a gap of 20.
        assert_eq!(time(&mut s, 4, 400), 20);
        let untimed = (0..100).take_while(|_| !s.next_is_timed()).count();
        assert_eq!(untimed, 19, "the next timed request is the 20th");
        assert_eq!(s.weight(), 20, "and it stands for all 20");
    }

    #[test]
    fn the_gap_never_exceeds_the_configured_one() {
        let mut s = Sampler::with_reading_cost(8, 20);
        assert_eq!(time(&mut s, 4, 10), 8);
        let mut every = Sampler::with_reading_cost(1, 20);
        assert_eq!(time(&mut every, 4, 10), 1, "1 times every request");
        assert!(every.next_is_timed());
    }
}
