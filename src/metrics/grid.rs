//! The metrics intervals' boundaries, shared by every thread that records and the collector:
//! one home, so that what records and what files agree on where an interval ends.

use std::time::Duration;

/// The metrics intervals: steps of `every_ns` from `origin_ns` (clock ns), the same for every
/// thread that records and for the collector.
#[derive(Debug, Clone, Copy)]
pub struct IntervalGrid {
    pub origin_ns: u64,
    pub every_ns: u64,
}

impl IntervalGrid {
    pub fn new(origin_ns: u64, every: Duration) -> Self {
        IntervalGrid { origin_ns, every_ns: (every.as_nanos() as u64).max(1) }
    }

    /// The interval holding `ns`, counted from 0.
    pub fn index_of(&self, ns: u64) -> u64 {
        ns.saturating_sub(self.origin_ns) / self.every_ns
    }

    /// The end of the interval holding `ns`: the first boundary after it.
    pub fn end_of(&self, ns: u64) -> u64 {
        self.origin_ns + (self.index_of(ns) + 1) * self.every_ns
    }
}
