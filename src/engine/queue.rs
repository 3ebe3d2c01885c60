//! A stage's bounded queue: a crossbeam injector plus a count that enforces the capacity.
//!
//! Producers reserve room with one `fetch_add` for a whole batch and give back what did not
//! fit; consumers release room when they move requests out of the injector into a worker's
//! local deque. The count can briefly overshoot while a producer gives back an over-reservation,
//! which can only make a racing producer see the queue full a moment early, never let the queue
//! grow past its capacity.

use std::sync::atomic::{AtomicUsize, Ordering};

use crossbeam_deque::{Injector, Steal, Stealer, Worker};
use crossbeam_utils::CachePadded;

use super::Envelope;
use crate::config::QueuePlan;

pub(crate) struct StageQueue {
    injector: Injector<Box<Envelope>>,
    len: CachePadded<AtomicUsize>,
    pub plan: QueuePlan,
}

impl StageQueue {
    pub fn new(plan: QueuePlan) -> Self {
        StageQueue { injector: Injector::new(), len: CachePadded::new(AtomicUsize::new(0)), plan }
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

    /// Pushes a request whose room was reserved.
    #[inline]
    pub fn push_reserved(&self, env: Box<Envelope>) {
        self.injector.push(env);
    }

    /// Moves a batch into `local` and pops one of it, releasing the room they took.
    #[inline]
    pub fn steal_into(&self, local: &Worker<Box<Envelope>>) -> Option<Box<Envelope>> {
        loop {
            let before = local.len();
            match self.injector.steal_batch_and_pop(local) {
                Steal::Success(env) => {
                    self.len.fetch_sub(local.len() - before + 1, Ordering::AcqRel);
                    return Some(env);
                }
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Takes the oldest queued request (for `drop_oldest`), keeping its room reserved for the
    /// caller's new request.
    pub fn steal_oldest(&self) -> Option<Box<Envelope>> {
        loop {
            match self.injector.steal() {
                Steal::Success(env) => return Some(env),
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    #[inline]
    pub fn is_empty(&self) -> bool {
        self.injector.is_empty()
    }

    /// Requests waiting (reserved room included).
    pub fn depth(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }
}

/// Steals a batch from a sibling worker's local deque.
#[inline]
pub(crate) fn steal_from(stealer: &Stealer<Box<Envelope>>, local: &Worker<Box<Envelope>>) -> Option<Box<Envelope>> {
    loop {
        match stealer.steal_batch_and_pop(local) {
            Steal::Success(env) => return Some(env),
            Steal::Empty => return None,
            Steal::Retry => continue,
        }
    }
}
