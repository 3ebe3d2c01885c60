//! The ledger: the exact count of how admitted requests ended.
//!
//! Each thread that admits or ends requests owns a shard (its own cache line), so counting
//! takes no shared lock and no contended cache line. A reading sums the shards:
//!
//! 1. only the shard's owner writes it, so an increment is a plain load and a `Release` store
//!    (no locked instruction);
//! 2. a reading loads all the *ending* counters first, then all the `admitted` counters, each
//!    with `Acquire`;
//! 3. a request's admission happens before its ending (the queues hand it over with
//!    release/acquire), so any ending seen in step 2's first half has its admission visible in
//!    the second half: `in_flight = admitted - ended` is never negative, and
//!    `admitted = completed + rejected + failed + timed_out + in_flight` holds for every reading.
//!
//! That argument is what the ledger checks, not what it assumes: a reading with more endings
//! than admissions (a request ended twice, or never counted as admitted) is a fault, kept in
//! [`LedgerCounts::ended_beyond_admitted`] and reported by the summary in every build, never a
//! subtraction that panics in debug and wraps to some 18 quintillion in flight in release.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crossbeam_utils::CachePadded;
use serde::Serialize;

#[derive(Default)]
pub struct Ledger {
    shards: Mutex<Vec<Arc<Shard>>>,
}

/// One thread's counters. Each shard has one writer: the `Ctx` it was made for.
#[derive(Default)]
pub struct Shard(CachePadded<Counters>);

#[derive(Default)]
pub struct Counters {
    admitted: AtomicU64,
    completed: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
}

/// Which counter an ending goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    Completed,
    Rejected,
    Failed,
    TimedOut,
}

/// One reading of the ledger.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct LedgerCounts {
    pub admitted: u64,
    pub completed: u64,
    pub rejected: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub in_flight: u64,
    /// Endings counted beyond the admissions: always zero unless the engine has a bug (a
    /// request ended twice, or ended without being admitted). Not zero: see [`LedgerCounts::fault`].
    #[serde(default, skip_serializing_if = "is_zero")]
    pub ended_beyond_admitted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl LedgerCounts {
    /// Requests that have ended, however.
    pub fn ended(&self) -> u64 {
        self.completed + self.rejected + self.failed + self.timed_out
    }

    /// What is wrong with this reading, if anything: more endings than admissions.
    pub fn fault(&self) -> Option<LedgerFault> {
        (self.ended_beyond_admitted != 0)
            .then_some(LedgerFault { admitted: self.admitted, ended: self.admitted + self.ended_beyond_admitted })
    }
}

/// A ledger reading that breaks its identity: more requests ended than were admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error(
    "ledger fault: {ended} requests ended but only {admitted} were admitted ({} ended twice or were never admitted)",
    ended - admitted
)]
pub struct LedgerFault {
    pub admitted: u64,
    pub ended: u64,
}

impl Ledger {
    /// A new shard for the calling thread to count in.
    pub fn shard(&self) -> Arc<Shard> {
        let shard = Arc::new(Shard::default());
        self.shards.lock().unwrap().push(shard.clone());
        shard
    }

    pub fn counts(&self) -> LedgerCounts {
        let shards = self.shards.lock().unwrap();
        let sum = |f: fn(&Counters) -> &AtomicU64| shards.iter().map(|s| f(&s.0).load(Ordering::Acquire)).sum::<u64>();
        // Endings first, admissions last: see the module's protocol.
        let completed = sum(|c| &c.completed);
        let rejected = sum(|c| &c.rejected);
        let failed = sum(|c| &c.failed);
        let timed_out = sum(|c| &c.timed_out);
        let admitted = sum(|c| &c.admitted);
        let ended = completed + rejected + failed + timed_out;
        LedgerCounts {
            admitted,
            completed,
            rejected,
            failed,
            timed_out,
            in_flight: admitted.saturating_sub(ended),
            ended_beyond_admitted: ended.saturating_sub(admitted),
        }
    }
}

impl Shard {
    #[inline]
    pub fn admit(&self, n: u64) {
        bump(&self.0.admitted, n);
    }

    #[inline]
    pub fn end(&self, ending: Ending) {
        let counter = match ending {
            Ending::Completed => &self.0.completed,
            Ending::Rejected => &self.0.rejected,
            Ending::Failed => &self.0.failed,
            Ending::TimedOut => &self.0.timed_out,
        };
        bump(counter, 1);
    }
}

/// Adds `n` to a counter only the calling thread writes.
#[inline]
fn bump(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Release);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reading_balances_admissions_against_endings() {
        let ledger = Ledger::default();
        let (a, b) = (ledger.shard(), ledger.shard());
        a.admit(5);
        a.end(Ending::Completed);
        b.end(Ending::Rejected);
        b.end(Ending::TimedOut);
        let counts = ledger.counts();
        assert_eq!((counts.admitted, counts.ended(), counts.in_flight), (5, 3, 2));
        assert_eq!(counts.fault(), None);
    }

    #[test]
    fn more_endings_than_admissions_is_a_reported_fault_not_a_wrap() {
        let ledger = Ledger::default();
        let shard = ledger.shard();
        shard.admit(2);
        for _ in 0..3 {
            // The third ends a request that was never admitted (or ends one twice).
            shard.end(Ending::Completed);
        }
        let counts = ledger.counts();
        assert_eq!((counts.in_flight, counts.ended_beyond_admitted), (0, 1));
        assert_eq!(counts.fault(), Some(LedgerFault { admitted: 2, ended: 3 }));
        assert_eq!(
            counts.fault().unwrap().to_string(),
            "ledger fault: 3 requests ended but only 2 were admitted (1 ended twice or were never admitted)"
        );
    }
}
