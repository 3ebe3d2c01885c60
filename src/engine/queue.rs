//! A stage's bounded queue: a crossbeam injector of request batches, plus a count of requests
//! that enforces the capacity.
//!
//! Hand-offs move whole batches (a `Vec` of up to [`BATCH`] requests): one injector push and one
//! steal per batch, not per request. Empty batches go back to the queue's spares, where the next
//! producer picks one up, so a steady stream allocates nothing.
//!
//! Room is counted in requests. Producers reserve room with one `fetch_add` for a whole batch and
//! give back what did not fit; a worker releases a batch's room when it starts on the batch. The
//! count can briefly overshoot while a producer gives back an over-reservation, which can only
//! make a racing producer see the queue full a moment early, never let it grow past capacity.

use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_queue::ArrayQueue;
use crossbeam_utils::CachePadded;

use super::Envelope;
use crate::config::{QueuePlan, StageId};

/// Most requests in one batch.
pub(crate) const BATCH: usize = 32;

/// Requests handed over together, all for one stage. The hop's facts (the stage, when the batch
/// was queued) travel with the batch, not in each envelope, so a request whose stages do not
/// read it crosses cores by pointer alone.
pub(crate) struct Batch {
    pub stage: StageId,
    pub enqueued_ns: u64,
    pub items: Vec<Box<Envelope>>,
}

/// Empty batches a queue keeps for reuse.
const SPARES: usize = 1024;

pub(crate) struct StageQueue {
    injector: Injector<Batch>,
    len: CachePadded<AtomicUsize>,
    spares: ArrayQueue<Vec<Box<Envelope>>>,
    stage: StageId,
    pub plan: QueuePlan,
}

impl StageQueue {
    pub fn new(stage: StageId, plan: QueuePlan) -> Self {
        StageQueue {
            injector: Injector::new(),
            len: CachePadded::new(AtomicUsize::new(0)),
            spares: ArrayQueue::new(SPARES),
            stage,
            plan,
        }
    }

    /// Reserves room for up to `n` requests; returns how many fit.
    #[inline]
    pub fn reserve(&self, n: usize) -> usize {
        let before = self.len.fetch_add(n, Ordering::AcqRel);
        let fit = self.plan.capacity.saturating_sub(before).min(n);
        if fit < n {
            self.len.fetch_sub(n - fit, Ordering::AcqRel);
        }
        fit
    }

    /// Requests there is room for now.
    #[inline]
    pub fn room(&self) -> usize {
        self.plan.capacity.saturating_sub(self.depth())
    }

    /// Reserves room for all `n` requests, or for none: returns whether they fit.
    #[inline]
    pub fn reserve_all(&self, n: usize) -> bool {
        let before = self.len.fetch_add(n, Ordering::AcqRel);
        if before + n <= self.plan.capacity {
            return true;
        }
        self.len.fetch_sub(n, Ordering::AcqRel);
        false
    }

    /// Pushes a batch whose room was reserved.
    #[inline]
    pub fn push_reserved(&self, batch: Batch) {
        debug_assert!(!batch.items.is_empty() && batch.stage == self.stage);
        self.injector.push(batch);
    }

    /// Releases the room of a batch a worker starts on.
    #[inline]
    pub fn release(&self, n: usize) {
        self.len.fetch_sub(n, Ordering::AcqRel);
    }

    /// An empty batch for this stage, to fill.
    #[inline]
    pub fn spare(&self) -> Batch {
        let items = self.spares.pop().unwrap_or_else(|| Vec::with_capacity(BATCH));
        Batch { stage: self.stage, enqueued_ns: 0, items }
    }

    /// Gives back an emptied batch.
    #[inline]
    pub fn give_back(&self, batch: Batch) {
        debug_assert!(batch.items.is_empty());
        let _ = self.spares.push(batch.items);
    }

    /// Moves a few batches into `local` and pops one of them.
    #[inline]
    pub fn steal_into(&self, local: &Worker<Batch>) -> Option<Batch> {
        loop {
            match self.injector.steal_batch_with_limit_and_pop(local, 4) {
                Steal::Success(batch) => return Some(batch),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Takes the oldest queued request (for `drop_oldest`), keeping its room reserved for the
    /// caller's new one. The rest of its batch goes back to the end of the queue.
    pub fn steal_oldest(&self) -> Option<Box<Envelope>> {
        let mut batch = loop {
            match self.injector.steal() {
                Steal::Success(batch) => break batch,
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        };
        let oldest = batch.items.remove(0);
        if batch.items.is_empty() {
            self.give_back(batch);
        } else {
            self.injector.push(batch);
        }
        Some(oldest)
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.injector.is_empty()
    }

    /// Requests queued and not yet started (reserved room included).
    pub fn depth(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

/// Steals batches from a sibling worker's local deque.
#[inline]
pub(crate) fn steal_from(stealer: &Stealer<Batch>, local: &Worker<Batch>) -> Option<Batch> {
    loop {
        match stealer.steal_batch_and_pop(local) {
            Steal::Success(batch) => return Some(batch),
            Steal::Empty => return None,
            Steal::Retry => continue,
        }
    }
}
