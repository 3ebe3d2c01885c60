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
        LedgerCounts { admitted, completed, rejected, failed, timed_out, in_flight: admitted - ended }
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
