//! I/O polled by a pool's own workers: a source (the HTTP reactor) that lives inside a worker
//! thread, so that a request read on a connection runs through the pool's stages and is
//! answered on the same thread, with no hand-off at all.
//!
//! The worker turns its poller without waiting between batches of work (every few batches
//! when the queues never empty), and blocks in it instead of parking when idle: a producer that
//! makes work for the pool wakes it through [`Poller::waker`], the same way it unparks others.

use std::sync::Arc;
use std::time::Duration;

use crossbeam_deque::Worker as LocalQueue;

use super::queue::Batch;
use super::{Ctx, Envelope, OriginId, Outcome, RejectReason};
use crate::clock::now_ns;
use crate::config::StageId;

/// A source of requests that a worker polls.
pub trait Poller: Send {
    /// One round of I/O: waits up to `timeout` for readiness (`None`: as long as the poller's
    /// own deadlines allow), handles it, and admits the requests it framed through `admit`.
    /// Returns whether it did anything.
    fn turn(&mut self, timeout: Option<Duration>, admit: &mut Admit<'_>) -> bool;

    /// What makes a `turn` blocked on another thread return.
    fn waker(&self) -> Arc<dyn Fn() + Send + Sync>;

    /// Whether a worker that has found nothing to do for `idle` should go on spinning, turning
    /// this poller without waiting, rather than sleep in it. Worth it when a turn is cheap and
    /// work is near (a generator's next request due in microseconds), not when a turn is a
    /// system call (the default). A worker that does not sleep also never takes the pool's
    /// sleep lock, so the kernel cannot stall its siblings by preempting it there.
    fn keep_spinning(&self, _idle: Duration) -> bool {
        false
    }

    /// Whether a `turn` keeps its timeout to the microsecond (an io_uring wait, whose timeout
    /// is a ring timeout), rather than rounding it up to a millisecond (epoll). A worker whose
    /// poller does keeps the timers its stages ask for and fires them in its own turns, instead
    /// of handing them to the timer thread.
    fn precise_timeouts(&self) -> bool {
        false
    }
}

/// Admission into the pipeline's entry stage for a poller, on its worker's own context.
pub struct Admit<'a> {
    pub(crate) ctx: &'a mut Ctx,
    pub(crate) origin: OriginId,
    pub(crate) entry: StageId,
    /// The worker's own deque, for [`Admit::submit_here`].
    pub(crate) local: &'a LocalQueue<Batch>,
}

impl Admit<'_> {
    /// Admits every request in `batch` (leaving it empty) into the entry queue, as
    /// `Submitter::submit_batch` does with `Admission::Policy`.
    pub fn submit(&mut self, batch: &mut Vec<Box<Envelope>>) {
        admit_by_policy(self.ctx, batch, self.origin, self.entry, None);
    }

    /// [`Admit::submit`], but a batch that fits whole goes onto the worker's own deque, to be
    /// run by this worker next (a sibling with nothing to do steals it, and is woken to, as
    /// from the entry queue): for a source that makes its requests where they are to run (the
    /// generator), not one whose requests come unevenly (HTTP reactors, which a sibling should
    /// be able to take from the shared queue at once).
    pub fn submit_here(&mut self, batch: &mut Vec<Box<Envelope>>) {
        admit_by_policy(self.ctx, batch, self.origin, self.entry, Some(self.local));
    }

    /// Requests the entry queue has room for now.
    pub fn room(&self) -> usize {
        self.ctx.shared.queues[self.entry].room()
    }
}

/// Counts `batch` as admitted and queues it at `entry` (onto `local` when given, see
/// [`Ctx::send_all`]); what does not fit meets the entry's policy, and once shutdown has begun
/// everything ends as rejected (`ShuttingDown`).
pub(crate) fn admit_by_policy(
    ctx: &mut Ctx,
    batch: &mut Vec<Box<Envelope>>,
    origin: OriginId,
    entry: StageId,
    local: Option<&LocalQueue<Batch>>,
) {
    let now = stamp(ctx, batch, origin);
    if !ctx.shared.admitting() {
        for env in batch.drain(..) {
            ctx.finish(env, Outcome::Rejected(RejectReason::ShuttingDown), now);
        }
        return;
    }
    ctx.send_all(batch, entry, now, local);
    ctx.flush();
}

/// Counts `batch` as admitted and gives each request its origin, deadline and (when it has
/// none) intended start. Returns the time it read.
pub(crate) fn stamp(ctx: &mut Ctx, batch: &mut [Box<Envelope>], origin: OriginId) -> u64 {
    let now = now_ns();
    let deadline = ctx.shared.plan.deadline.map_or(u64::MAX, |d| now + d.as_nanos() as u64);
    ctx.admit(batch.len() as u64);
    for env in batch.iter_mut() {
        env.origin = origin;
        env.deadline_ns = deadline;
        if env.intended_ns == 0 {
            env.intended_ns = now;
        }
    }
    now
}
