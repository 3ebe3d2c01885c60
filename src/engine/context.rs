//! A thread's handle on the engine: its ledger shard, its recorder, and its outboxes.
//!
//! Every thread that moves requests (workers, the timer thread, sources) owns a `Ctx`. Requests
//! bound for another pool's queue are buffered per stage and handed over in batches; a full
//! queue applies its stage's policy here; and every ending is counted here, exactly once.

use std::sync::Arc;

use crossbeam_deque::Worker as LocalQueue;
use seda_stages::{IoOp, StageError};

use super::ledger::{Ending, Shard};
use super::queue::{Batch, BATCH};
use super::shared::Shared;
use super::{Envelope, HandBack, Outcome, RejectReason};
use crate::clock::now_ns;
use crate::config::{StageId, WhenFull};
use crate::io::{FileJob, FileMsg, TimerEntry};
use crate::metrics::{Publication, Recorder};

pub(crate) struct Ctx {
    pub shared: Arc<Shared>,
    pub rec: Recorder,
    ledger: Arc<Shard>,
    metrics: flume::Sender<Publication>,
    outbox: Vec<Batch>,
    /// Stages whose outbox may hold requests, each listed once.
    pending: Vec<StageId>,
    listed: Vec<bool>,
    /// Per origin that takes requests back in batches: requests ended and not yet handed
    /// back, with their outcomes ([`HandBack::Batches`]) or alone ([`HandBack::Recycle`]).
    ended: Vec<Vec<(Box<Envelope>, Outcome)>>,
    recycled: Vec<Vec<Box<Envelope>>>,
    /// Requests that did not fit in a queue, on their way to its policy (kept for reuse).
    overflowed: Vec<Box<Envelope>>,
    /// Emptied batch vectors this thread keeps for its next hand-offs, before the queues'
    /// shared reusable: a worker that both admits and runs a stage's batches (a generator in the
    /// workers) recycles them with no atomic operation.
    reusable_items: Vec<Vec<Box<Envelope>>>,
    /// A source's context (a [`super::Submitter`]'s): a `block` wait at the entry ends when the
    /// drain gives up, so that a source blocked on a full entry lets shutdown go on (a worker's
    /// waits end when the engine aborts, which shutdown does at the same time).
    pub(crate) admits: bool,
}

/// Emptied batch vectors a thread keeps at most.
const OWN_SPARES: usize = 8;

impl Ctx {
    pub fn new(shared: Arc<Shared>, metrics: flume::Sender<Publication>) -> Self {
        let stages = shared.plan.stages.len();
        Ctx {
            ledger: shared.ledger.shard(),
            rec: Recorder::new(stages, shared.reusable_counts.clone(), shared.metrics_grid, now_ns()),
            metrics,
            outbox: shared.queues.iter().map(|q| q.reusable()).collect(),
            pending: Vec::with_capacity(stages),
            listed: vec![false; stages],
            ended: batch_vectors(&shared, HandBack::Batches),
            recycled: batch_vectors(&shared, HandBack::Recycle),
            overflowed: Vec::new(),
            reusable_items: Vec::with_capacity(OWN_SPARES),
            admits: false,
            shared,
        }
    }

    #[inline]
    pub fn admit(&self, n: u64) {
        self.ledger.admit(n);
    }

    /// Queues `env` for `stage`, in a batch with others bound there.
    #[inline]
    pub fn send(&mut self, env: Box<Envelope>, stage: StageId) {
        if !self.listed[stage] {
            self.listed[stage] = true;
            self.pending.push(stage);
        }
        let items = &mut self.outbox[stage].items;
        items.push(env);
        if items.len() >= self.shared.queues[stage].batch() {
            self.flush_stage(stage);
        }
    }

    /// Queues every request of `batch` (leaving it empty) for `stage`, queued at `now`: as one
    /// hand-off when nothing else waits in the stage's outbox and the queue has room for all of
    /// them (onto `local`, a worker's own deque, when given: counted in the stage's queue, run
    /// by that worker unless a sibling steals it), else one by one through the outbox, where a
    /// full queue meets its policy.
    pub fn send_all(
        &mut self,
        batch: &mut Vec<Box<Envelope>>,
        stage: StageId,
        now: u64,
        local: Option<&LocalQueue<Batch>>,
    ) {
        let n = batch.len();
        // A stage with an admission controller takes them through the outbox, where it decides.
        let whole = n > 0 && n <= self.shared.queues[stage].batch() && self.outbox[stage].items.is_empty();
        if whole && self.shared.gates[stage].is_none() {
            let queue = &self.shared.queues[stage];
            if queue.reserve_all(n) {
                let whole = self.reusable(stage).fill_from(batch, n, now);
                let queue = &self.shared.queues[stage];
                match local {
                    Some(local) => local.push(whole),
                    None => queue.push_reserved(whole),
                }
                self.shared.wake(stage);
                return;
            }
        }
        for env in batch.drain(..) {
            self.send(env, stage);
        }
    }

    /// An empty batch for `stage`: one of this thread's own vectors, else the queue's reusable.
    #[inline]
    fn reusable(&mut self, stage: StageId) -> Batch {
        match self.reusable_items.pop() {
            Some(items) => Batch { stage, enqueued_ns: 0, items },
            None => self.shared.queues[stage].reusable(),
        }
    }

    /// Takes back a batch a worker has emptied: kept for this thread's next hand-off, or
    /// given to the queue's reusable.
    #[inline]
    pub fn give_back(&mut self, batch: Batch) {
        debug_assert!(batch.items.is_empty());
        if self.reusable_items.len() < OWN_SPARES {
            self.reusable_items.push(batch.items);
        } else {
            self.shared.queues[batch.stage].give_back(batch);
        }
    }

    /// Hands every buffered request to its queue, and every collected ending to its origin.
    pub fn flush(&mut self) {
        while let Some(stage) = self.pending.pop() {
            self.listed[stage] = false;
            self.flush_stage(stage);
        }
        self.flush_ended();
    }

    fn flush_stage(&mut self, stage: StageId) {
        if self.shared.gates[stage].is_some() {
            let mut items = std::mem::take(&mut self.outbox[stage].items);
            self.shed_at_entry(&mut items, stage, now_ns());
            self.outbox[stage].items = items;
        }
        let n = self.outbox[stage].items.len();
        if n == 0 {
            return;
        }
        let fit = self.shared.queues[stage].reserve(n);
        if fit > 0 {
            let reusable = self.reusable(stage);
            let batch = reusable.fill_from(&mut self.outbox[stage].items, fit, now_ns());
            self.shared.queues[stage].push_reserved(batch);
            self.shared.wake(stage);
        }
        if fit == n {
            return;
        }
        // What did not fit meets the stage's policy; what that ends, ends like any request.
        let mut rest = std::mem::take(&mut self.overflowed);
        rest.append(&mut self.outbox[stage].items);
        if self.shared.queues[stage].plan.when_full == WhenFull::Block {
            self.block(stage, &mut rest);
        }
        for env in rest.drain(..) {
            if let Some((env, outcome, now)) = overflow(&self.shared, stage, env) {
                self.finish(env, outcome, now);
            }
        }
        self.overflowed = rest;
    }

    /// Ends at once what `stage`'s admission controller sheds of `items` as they are queued
    /// there, if it has a controller that decides then.
    #[inline]
    pub fn shed_at_entry(&mut self, items: &mut Vec<Box<Envelope>>, stage: StageId, now: u64) {
        if matches!(&self.shared.gates[stage], Some(gate) if gate.at_entry()) {
            self.shed_by_gate(items, stage, now, None);
        }
    }

    /// Ends what `stage`'s controller sheds of `items`: as they are queued, or (`sojourn_ns`
    /// given) as a worker takes them, after waiting that long.
    #[cold]
    pub fn shed_by_gate(&mut self, items: &mut Vec<Box<Envelope>>, stage: StageId, now: u64, sojourn_ns: Option<u64>) {
        let shared = self.shared.clone();
        let Some(gate) = &shared.gates[stage] else { return };
        let mut shed = std::mem::take(&mut self.overflowed);
        match sojourn_ns {
            None => gate.admit(items, shared.queues[stage].depth(), now, &mut shed),
            Some(sojourn) => gate.dequeue(items, sojourn, now, &mut shed),
        }
        let reason = RejectReason::Overload { stage, controller: gate.kind() };
        for env in shed.drain(..) {
            self.finish(env, Outcome::Rejected(reason), now);
        }
        self.overflowed = shed;
    }

    /// `block`: queues `rest` at `stage` as room appears, waiting up to the stage's block
    /// timeout; what is left then ends as rejected (or, if the engine aborts, timed out).
    #[cold]
    fn block(&mut self, stage: StageId, rest: &mut Vec<Box<Envelope>>) {
        let shared = self.shared.clone();
        let until = now_ns().saturating_add(shared.queues[stage].plan.block_timeout.as_nanos() as u64);
        let admits = self.admits;
        let drain_over = || admits && now_ns() >= shared.drain_deadline();
        push_as_room_allows(&shared, stage, rest, until, || shared.aborting() || drain_over());
        let outcome = if shared.aborting() || drain_over() {
            Outcome::TimedOut { stage }
        } else {
            Outcome::Rejected(RejectReason::BlockTimeout { stage })
        };
        for env in rest.drain(..) {
            self.finish(env, outcome.clone(), now_ns());
        }
    }

    /// Ends `env` with `outcome`: counted once in the ledger and the stage's stats, then
    /// handed back to its origin, at once or (for an origin that batches) with others.
    #[inline]
    pub fn finish(&mut self, env: Box<Envelope>, outcome: Outcome, now: u64) {
        count(&self.ledger, &mut self.rec, &env, &outcome, now);
        self.hand_back(env, outcome);
    }

    /// [`Ctx::finish`] as completed: what most requests end as, so it has a path of its own.
    #[inline]
    pub fn complete(&mut self, env: Box<Envelope>, now: u64) {
        count_completed(&self.ledger, &mut self.rec, &env, now);
        self.hand_back(env, Outcome::Completed);
    }

    /// Hands an ended request back to its origin, at once or (for an origin that takes them
    /// in batches) with others.
    #[inline(always)]
    fn hand_back(&mut self, env: Box<Envelope>, outcome: Outcome) {
        let origin = env.origin as usize;
        match self.shared.hand_backs[origin] {
            HandBack::Recycle => {
                let recycled = &mut self.recycled[origin];
                recycled.push(env);
                if recycled.len() >= BATCH {
                    self.shared.origins[origin].recycle(recycled);
                }
            }
            HandBack::Batches => {
                let ended = &mut self.ended[origin];
                ended.push((env, outcome));
                if ended.len() >= BATCH {
                    self.shared.origins[origin].finish_batch(ended);
                }
            }
            HandBack::Each => self.shared.origins[origin].finish(env, &outcome),
        }
    }

    /// Hands every collected ending to its origin.
    fn flush_ended(&mut self) {
        let origins = &self.shared.origins;
        for (origin, ended) in self.ended.iter_mut().enumerate().filter(|(_, e)| !e.is_empty()) {
            origins[origin].finish_batch(ended);
        }
        for (origin, recycled) in self.recycled.iter_mut().enumerate().filter(|(_, r)| !r.is_empty()) {
            origins[origin].recycle(recycled);
        }
    }

    /// Starts `op` for `env`, which `stage` asked for; on completion it continues at `next`.
    pub fn start_io(&mut self, env: Box<Envelope>, op: IoOp, stage: StageId, next: StageId, now: u64) {
        match op {
            IoOp::Timer(wait) => crate::io::timer::start(self, TimerEntry::new(env, wait, stage, next, now), None, now),
            IoOp::ReadFile(op) => {
                let job = FileJob { op, from: stage, started_ns: now, next, env };
                if let Err(e) = self.shared.files.try_send(FileMsg::Read(job)) {
                    if let FileMsg::Read(job) = e.into_inner() {
                        self.finish(job.env, Outcome::Rejected(RejectReason::IoFull { stage }), now);
                    }
                }
            }
            IoOp::Custom(op) => crate::io::ops::start(self, env, op, stage, next, now),
            #[allow(unreachable_patterns)]
            other => {
                let error = StageError::new(format!("unsupported I/O operation {other:?}"));
                self.finish(env, Outcome::Failed { stage, error }, now);
            }
        }
    }

    /// Sends what was recorded to the collector, filed in the interval it was recorded in.
    pub fn publish(&mut self, now: u64) {
        let publication = self.rec.take(now);
        // The collector only goes away after every thread is joined.
        let _ = self.metrics.send(publication);
    }

    /// Before recording anything of `now`: if `now` is past the metrics interval being
    /// recorded, publishes what was recorded in it, so no publication mixes two intervals.
    #[inline]
    pub fn roll(&mut self, now: u64) {
        if self.rec.past(now) {
            self.roll_over(now);
        }
    }

    #[cold]
    fn roll_over(&mut self, now: u64) {
        if self.rec.is_dirty() {
            self.publish(now);
        } else {
            self.rec.skip_to(now);
        }
    }
}

/// Per origin, a vector for a batch of its ended requests if it takes them back as `hand_back`
/// says (else an empty one, which never allocates).
fn batch_vectors<T>(shared: &Shared, hand_back: HandBack) -> Vec<Vec<T>> {
    let capacity = |h| if h == hand_back { BATCH } else { 0 };
    shared.hand_backs.iter().map(|&h| Vec::with_capacity(capacity(h))).collect()
}

/// How a request ended, and when, if it did.
type Ended = Option<(Box<Envelope>, Outcome, u64)>;

/// One request that did not fit in `stage`'s queue, whose policy is `reject` or `drop_oldest`
/// (`block` waits in [`Ctx::block`]): returns the request that ended because of it (the new
/// one, or for `drop_oldest` the oldest), if any.
#[cold]
fn overflow(shared: &Shared, stage: StageId, env: Box<Envelope>) -> Ended {
    let queue = &shared.queues[stage];
    let now = now_ns();
    if queue.plan.when_full == WhenFull::DropOldest {
        if let Some(oldest) = queue.steal_oldest() {
            // The oldest one's room goes to the new one.
            queue.push_reserved(single(queue, env, now));
            shared.wake(stage);
            return Some((oldest, Outcome::Rejected(RejectReason::DroppedOldest { stage }), now));
        }
        // Nothing queued to drop: its room was released a moment ago.
        if queue.reserve(1) == 1 {
            queue.push_reserved(single(queue, env, now));
            shared.wake(stage);
            return None;
        }
    }
    Some((env, Outcome::Rejected(RejectReason::QueueFull { stage }), now))
}

/// A producer waiting for room spins this many times, then yields for up to [`ROOM_YIELD_NS`],
/// then sleeps until a worker releases room. Yielding costs the waiter a system call a try;
/// a sleep costs the worker that makes room one to wake it, and that worker is the bottleneck.
const ROOM_SPINS: u32 = 32;
const ROOM_YIELD_NS: u64 = 500_000;
/// Longest sleep before a waiter looks at `give_up` again (shutdown wakes no one here).
const ROOM_SLEEP_NS: u64 = 1_000_000;

/// Queues `rest` at `stage` in order, each part as soon as there is room for it, until it is
/// all queued, the clock reads `until`, or `give_up` says so; what is left stays in `rest`.
/// The wait spins, then yields (the consumer may share this CPU), then sleeps until a release.
pub(crate) fn push_as_room_allows(
    shared: &Shared,
    stage: StageId,
    rest: &mut Vec<Box<Envelope>>,
    until: u64,
    give_up: impl Fn() -> bool,
) {
    let queue = &shared.queues[stage];
    let mut tries = 0u32;
    let mut waiting_since = 0;
    while !rest.is_empty() {
        let n = rest.len().min(queue.batch());
        let fit = queue.reserve(n);
        if fit > 0 {
            queue.push_reserved(queue.batch_from(rest, fit, now_ns()));
            shared.wake(stage);
            tries = 0;
            continue;
        }
        let now = now_ns();
        if give_up() || now >= until {
            return;
        }
        if tries == 0 {
            waiting_since = now;
        }
        tries += 1;
        if tries <= ROOM_SPINS {
            std::hint::spin_loop();
        } else if now - waiting_since < ROOM_YIELD_NS {
            std::thread::yield_now();
        } else {
            queue.wait_for_room(until.min(now + ROOM_SLEEP_NS));
        }
    }
}

/// A batch of one, queued at `now`.
fn single(queue: &super::queue::StageQueue, env: Box<Envelope>, now: u64) -> Batch {
    let mut batch = queue.reusable();
    batch.items.push(env);
    batch.enqueued_ns = now;
    batch
}

/// Counts an ending, exactly once, in the ledger and the stats.
#[inline]
fn count(ledger: &Shard, rec: &mut Recorder, env: &Envelope, outcome: &Outcome, now: u64) {
    match outcome {
        Outcome::Completed => count_completed(ledger, rec, env, now),
        Outcome::Rejected(reason) => {
            ledger.end(Ending::Rejected);
            if let Some(stage) = reason.stage() {
                rec.rejected(stage);
            }
        }
        Outcome::Failed { stage, error } => {
            ledger.end(Ending::Failed);
            rec.failed(*stage, &error.0);
        }
        Outcome::TimedOut { stage } => {
            ledger.end(Ending::TimedOut);
            rec.timed_out(*stage);
        }
    }
}

#[inline]
fn count_completed(ledger: &Shard, rec: &mut Recorder, env: &Envelope, now: u64) {
    ledger.end(Ending::Completed);
    rec.e2e(now.saturating_sub(env.intended_ns));
}

impl Drop for Ctx {
    fn drop(&mut self) {
        self.flush();
        if self.rec.is_dirty() {
            self.publish(now_ns());
        }
    }
}
