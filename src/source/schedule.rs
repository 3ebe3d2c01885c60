//! The generator's schedule: which request ids are due, claimed by whoever sends them.
//!
//! One schedule is shared by every thread that generates (the generator thread, or each worker
//! of the entry pool when the generator runs in the workers). A sender claims a run of due ids
//! with one compare-and-swap; so a worker stalled by the kernel holds up only the few ids it
//! claimed, and the others go on sending the rest on time.

use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};

use crossbeam_utils::CachePadded;

use crate::config::Rate;

const NOT_BEGUN: u64 = u64::MAX;
/// Set in `next` when the schedule closes: in the same word as the claims, so that a claim
/// either lands before the close (and is counted by it) or fails.
const CLOSED: u64 = 1 << 63;

pub(crate) struct Schedule {
    requests: u64,
    rate: Rate,
    /// Clock reading that id 0 is due at; [`NOT_BEGUN`] until the run begins.
    start_ns: AtomicU64,
    /// The first id not yet claimed, with [`CLOSED`] set once no more may be. Each of the two
    /// counters every sender writes has a cache line of its own, away from the fields they
    /// only read.
    next: CachePadded<AtomicU64>,
    /// Claimed ids whose requests were submitted.
    submitted: CachePadded<AtomicU64>,
}

/// What a sender may do now.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Send these ids.
    Ids(Range<u64>),
    /// Nothing is due before this clock reading.
    NotBefore(u64),
    /// The sender asked for none (no room at the entry).
    Nothing,
    /// Every id is claimed, or the schedule is closed.
    Over,
}

impl Schedule {
    pub fn new(requests: u64, rate: Rate) -> Self {
        Schedule {
            requests,
            rate,
            start_ns: AtomicU64::new(NOT_BEGUN),
            next: CachePadded::new(AtomicU64::new(0)),
            submitted: CachePadded::new(AtomicU64::new(0)),
        }
    }

    pub fn rate(&self) -> Rate {
        self.rate
    }

    /// Starts the clock: id 0 is due at `now`. Nothing is claimed before.
    pub fn begin(&self, now: u64) {
        self.start_ns.store(now, Ordering::Release);
    }

    /// When request `id` is meant to start (`None` at `"rate": "max"`: when it is sent).
    #[inline]
    pub fn due(&self, id: u64) -> Option<u64> {
        match self.rate {
            Rate::Max => None,
            Rate::PerSecond(rate) => {
                Some(self.start_ns.load(Ordering::Relaxed).saturating_add((id as f64 * 1e9 / rate) as u64))
            }
        }
    }

    /// Claims up to `most` ids due by `now`, in order.
    pub fn claim(&self, now: u64, most: u64) -> Claim {
        if self.start_ns.load(Ordering::Acquire) == NOT_BEGUN {
            return Claim::NotBefore(NOT_BEGUN);
        }
        let mut next = self.next.load(Ordering::Relaxed);
        loop {
            if next >= self.requests {
                // Closed ids read as past the end.
                return Claim::Over;
            }
            let most = most.min(self.requests - next);
            let n = match self.due(next) {
                None => most,
                Some(due) if due > now => return Claim::NotBefore(due),
                // At most `most` clock comparisons: the run of due ids is short unless late.
                Some(_) => (1..most).find(|&k| self.due(next + k).is_some_and(|d| d > now)).unwrap_or(most),
            };
            if n == 0 {
                return Claim::Nothing;
            }
            match self.next.compare_exchange_weak(next, next + n, Ordering::AcqRel, Ordering::Relaxed) {
                Ok(_) => return Claim::Ids(next..next + n),
                Err(current) => next = current,
            }
        }
    }

    /// Whether a request is due within `ns` of `now` (at `"rate": "max"`: whether any is left
    /// to send).
    pub fn due_within(&self, now: u64, ns: u64) -> bool {
        let next = self.next.load(Ordering::Relaxed);
        let begun = self.start_ns.load(Ordering::Relaxed) != NOT_BEGUN;
        if !begun || next >= self.requests {
            return false;
        }
        self.due(next).is_none_or(|due| due <= now.saturating_add(ns))
    }

    /// Counts `n` claimed requests as submitted; returns whether they were the last ones.
    pub fn submitted(&self, n: u64) -> bool {
        self.submitted.fetch_add(n, Ordering::AcqRel) + n == self.requests
    }

    /// Requests submitted so far.
    pub fn sent(&self) -> u64 {
        self.submitted.load(Ordering::Acquire)
    }

    /// Whether every request was submitted.
    pub fn all_submitted(&self) -> bool {
        self.sent() >= self.requests
    }

    /// Stops further claims and returns how many ids were claimed: their requests are still
    /// to be submitted, by whoever claimed them.
    pub fn close(&self) -> u64 {
        self.next.fetch_or(CLOSED, Ordering::AcqRel) & !CLOSED
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_rate_claims_in_runs_up_to_the_end() {
        let s = Schedule::new(70, Rate::Max);
        assert_eq!(s.claim(0, 32), Claim::NotBefore(NOT_BEGUN));
        s.begin(0);
        assert_eq!(s.claim(0, 32), Claim::Ids(0..32));
        assert_eq!(s.claim(0, 0), Claim::Nothing);
        assert_eq!(s.claim(0, 32), Claim::Ids(32..64));
        assert_eq!(s.claim(0, 32), Claim::Ids(64..70));
        assert_eq!(s.claim(0, 32), Claim::Over);
    }

    #[test]
    fn a_rate_claims_only_what_is_due() {
        // 1,000 per second from 1 s: id k is due at 1 s + k ms.
        let s = Schedule::new(10, Rate::PerSecond(1000.0));
        s.begin(1_000_000_000);
        assert_eq!(s.claim(999_999_999, 32), Claim::NotBefore(1_000_000_000));
        assert_eq!(s.claim(1_002_500_000, 32), Claim::Ids(0..3));
        assert_eq!(s.claim(1_002_500_000, 32), Claim::NotBefore(1_003_000_000));
        assert_eq!(s.claim(2_000_000_000, 4), Claim::Ids(3..7));
        assert_eq!(s.due(7), Some(1_007_000_000));
    }

    #[test]
    fn closing_ends_the_claims_and_the_last_submission_is_told() {
        let s = Schedule::new(64, Rate::Max);
        s.begin(0);
        assert_eq!(s.claim(0, 32), Claim::Ids(0..32));
        assert!(!s.submitted(32));
        assert_eq!(s.claim(0, 32), Claim::Ids(32..64));
        assert!(s.submitted(32));
        assert_eq!(s.sent(), 64);
        let s = Schedule::new(64, Rate::Max);
        assert!(!s.due_within(0, 1), "nothing is due before the run begins");
        s.begin(0);
        assert!(s.due_within(0, 1));
        assert_eq!(s.claim(0, 10), Claim::Ids(0..10));
        assert_eq!(s.close(), 10, "the close counts every id claimed before it");
        assert!(!s.due_within(0, 1));
        assert_eq!(s.claim(0, 32), Claim::Over);
        assert_eq!(s.close(), 10);
    }
}
