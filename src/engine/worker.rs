//! A pinned worker thread serving one pool's stages.
//!
//! The loop:
//! 1. take a batch: from the local deque, else a few from one of the pool's stage queues
//!    (rotating which first) into the local deque; else turn its poller, if it has one (its
//!    own work comes first); else take some from a sibling's local deque;
//! 2. run each of its requests through its stage and on through every successor on the same
//!    pool, with no hand-off; a successor on another pool gets it through the outbox (batched),
//!    an I/O step through the completion layer, and an ending through `Ctx::finish`;
//! 3. with nothing to take: hand over the outboxes, spin while the idle policy says the next
//!    work is nearer than a sleep costs (`super::idle`), then sleep on the pool's
//!    [`super::Sleep`] until a producer wakes it.
//!
//! A worker with a [`Poller`] (the HTTP source's reactor or the generator, when they run in the
//! workers) turns it whenever it runs out of work and every few batches, spins polling it as
//! long as the poller asks ([`Poller::keep_spinning`]), and sleeps in it instead of parking.
//!
//! Busy time (for the pool's utilisation) is measured at the edges of idleness: the clock is
//! read when the worker runs out of work and when it finds some again, both off the hot path,
//! and at each publication. Everything between is busy, spinning and sleeping is not.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crossbeam_deque::{Stealer, Worker as LocalQueue};
use seda_stages::{IoOp, Stage, StageError, Step};

use super::idle::{thread_cpu_ns, IdlePolicy};
use super::queue::{steal_from, Batch, StageQueue};
use super::sampler::Sampler;
use super::EngineError;
use super::{panics, Admit, Ctx, Envelope, OriginId, Outcome, Poller, Sleep};
use crate::clock::now_ns;
use crate::config::{Plan, StageId};
use crate::io::timer::{self, TimerEntry, TimerHeap};
use crate::sync::mutant;

/// How long a poller's worker may spin polling (see [`Poller::keep_spinning`]).
pub(crate) const SPIN: Duration = Duration::from_micros(50);
/// A worker that shares its CPU with another engine thread does not spin (spinning would take
/// the CPU from the very thread that could be making its work): it yields for this long instead.
const SHARED_YIELD: Duration = Duration::from_micros(100);

/// A worker that sleeps in its poller publishes its stats at most this often.
const POLLING_PUBLISH: Duration = Duration::from_millis(100);

/// A worker with a poller looks at its I/O at least every this many batches.
const POLL_EVERY: u32 = 4;

/// A worker's own I/O.
struct PolledIo {
    poller: Box<dyn Poller>,
    origin: OriginId,
    entry: StageId,
    batches_since: u32,
    /// The timers its stages asked for, kept here and fired in its turns when the poller's
    /// wait keeps to the microsecond ([`Poller::precise_timeouts`]): the request stays on this
    /// thread. `None`: they go to the timer thread.
    timers: Option<TimerHeap>,
}

/// Where a worker runs, as read back from the OS after pinning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerInfo {
    pub pool: String,
    pub index: usize,
    pub cpu: usize,
    /// The CPUs the OS lets the thread run on (`Cpus_allowed_list`), e.g. `"1"`.
    pub allowed_cpus: String,
}

pub(crate) struct Worker {
    ctx: Ctx,
    pool: usize,
    index: usize,
    local: LocalQueue<Batch>,
    /// By stage id: what it takes to run each stage, looked up once a stage.
    hops: Vec<Hop>,
    /// Which of the pool's stage queues to look at first.
    rotate: usize,
    /// Which requests are timed through their stages.
    sampler: Sampler,
    /// The pipeline has a deadline, checked before each stage.
    deadlines: bool,
    /// Another engine thread is pinned to this worker's CPU.
    shares_cpu: bool,
    io: Option<PolledIo>,
    /// Whether to spin or sleep when out of work, from measured gaps and sleeps.
    idle: IdlePolicy,
    /// The least it spins for work before it may sleep, in nanoseconds (the pool's
    /// `idle_spin_us`): what a pipeline that wants microsecond latency pays in CPU.
    min_spin_ns: u64,
    /// When the worker last found work after being idle (or last published its busy time).
    busy_since: u64,
    /// (class, response time) of each request of the batch in hand, when its stage has an
    /// admission controller, which is told them when the batch is done.
    responses: Vec<(usize, u64)>,
}

impl Worker {
    pub fn new(mut ctx: Ctx, pool: usize, index: usize, local: LocalQueue<Batch>, shares_cpu: bool) -> Self {
        let plan = &ctx.shared.plan;
        let hops = plan
            .stages
            .iter()
            .enumerate()
            .map(|(stage, s)| Hop {
                instance: if s.pool == pool { s.factory.instance(index) } else { Box::new(OtherPools) },
                routes: s.successors.iter().map(|&next| Route::of(plan, stage, next)).collect(),
                calls: 0,
                published: 0,
                sampled: 0,
                last_service_ns: None,
            })
            .collect();
        let sampler = Sampler::new(plan.stage_timing_every);
        let deadlines = plan.deadline.is_some();
        let min_spin_ns = plan.pools[pool].idle_spin.as_nanos() as u64;
        ctx.rec.for_worker_of(pool);
        Worker {
            ctx,
            pool,
            index,
            local,
            hops,
            rotate: 0,
            sampler,
            deadlines,
            shares_cpu,
            io: None,
            idle: IdlePolicy::default(),
            min_spin_ns,
            busy_since: 0,
            responses: Vec::new(),
        }
    }

    /// Gives the worker a poller: it admits what the poller frames as `origin` at `entry`.
    pub fn poll_with(&mut self, poller: Box<dyn Poller>, origin: OriginId, entry: StageId) {
        // A thread of a growing and shrinking pool may stand by, and its timers with it.
        let sized = self.ctx.shared.pools[self.pool].size.is_some();
        let timers = (poller.precise_timeouts() && !sized).then(TimerHeap::default);
        self.io = Some(PolledIo { poller, origin, entry, batches_since: 0, timers });
    }

    /// One turn of the worker's poller, if it has one, waiting no longer than its next timer is
    /// due, then firing the timers due. Returns whether it did anything.
    fn poll(&mut self, mut timeout: Option<Duration>) -> bool {
        let Some(io) = self.io.as_mut() else { return false };
        io.batches_since = 0;
        let due = io.timers.as_ref().and_then(TimerHeap::next_due);
        if let Some(due) = due {
            let until = Duration::from_nanos(due.saturating_sub(now_ns()));
            timeout = Some(timeout.map_or(until, |t| t.min(until)));
        }
        let mut admit = Admit { ctx: &mut self.ctx, origin: io.origin, entry: io.entry, local: &self.local };
        let busy = io.poller.turn(timeout, &mut admit);
        let timing = io.timers.as_ref().is_some_and(|t| !t.is_empty());
        busy | (timing && self.fire_timers())
    }

    /// Fires the timers it keeps that are due, sending their requests on. Returns whether any
    /// fired.
    fn fire_timers(&mut self) -> bool {
        let now = now_ns();
        if self.ctx.rec.past(now) {
            // Recorded in the interval they fire in. (Busy time is the serve loop's to count:
            // this may be the end of a sleep.)
            self.fold_processed();
            self.ctx.roll(now);
        }
        let Some(timers) = self.io.as_mut().and_then(|io| io.timers.as_mut()) else { return false };
        let fired = timers.fire_due(&mut self.ctx, now);
        if fired {
            self.ctx.flush();
        }
        fired
    }

    pub fn serve(mut self, ready: flume::Sender<Result<WorkerInfo, EngineError>>) {
        let _ = ready.send(self.pin());
        drop(ready);
        self.busy_since = now_ns();
        self.ctx.rec.skip_to(self.busy_since);
        let sized = self.ctx.shared.pools[self.pool].size.is_some();
        if let Some(size) = &self.ctx.shared.pools[self.pool].size {
            size.note_thread(self.index);
        }
        loop {
            // A thread of a growing and shrinking pool past the serving count stands by, once
            // its own deque is done.
            if sized && self.local.is_empty() && self.stands_by() {
                self.stand_by();
                if self.ctx.shared.stopped() {
                    break;
                }
                continue;
            }
            if let Some(batch) = self.take_own() {
                self.process_batch(batch);
                if let Some(io) = self.io.as_mut() {
                    io.batches_since += 1;
                    if io.batches_since >= POLL_EVERY {
                        self.ctx.flush();
                        self.poll(Some(Duration::ZERO));
                    }
                }
                continue;
            }
            self.ctx.flush();
            let idle_from = now_ns();
            // Its own I/O before a sibling's work: stealing moves requests another core made
            // and has in cache, so it is for when this one has nothing of its own to do.
            if self.poll(Some(Duration::ZERO)) {
                continue;
            }
            if let Some(batch) = self.steal() {
                self.process_batch(batch);
                continue;
            }
            self.ctx.rec.busy(idle_from.saturating_sub(self.busy_since));
            if let Some(batch) = self.wait_for_work(idle_from) {
                self.busy_since = now_ns();
                self.process_batch(batch);
                continue;
            }
            if self.ctx.shared.stopped() {
                break;
            }
            // A sleeping worker's stats would wait for its waking: it publishes first. One
            // that sleeps in its poller sleeps often and briefly (until a socket is ready, a
            // generator's next request is due), so it publishes at most every
            // `POLLING_PUBLISH`, and sleeps no longer than that with stats unpublished.
            let now = now_ns();
            self.fold_processed();
            let mut unpublished = self.ctx.rec.is_dirty();
            if unpublished
                && (self.io.is_none() || now - self.ctx.rec.published_ns >= POLLING_PUBLISH.as_nanos() as u64)
            {
                self.ctx.publish(now);
                unpublished = false;
            }
            let shared = self.ctx.shared.clone();
            let (pool, index) = (self.pool, self.index);
            let pool_shared = &shared.pools[pool];
            let has_work =
                || shared.stopped() || pool_has_work(&shared.queues, &pool_shared.stages, &pool_shared.stealers);
            if self.io.is_some() {
                // Its I/O is its sleep: blocked there, a producer's wake or a socket wakes it.
                let timeout = |woken: bool| match (woken, unpublished) {
                    (true, _) => Some(Duration::ZERO),
                    (false, true) => Some(POLLING_PUBLISH),
                    (false, false) => None,
                };
                shared.pools[pool].sleep.sleep_polling(index, has_work, |woken| {
                    self.poll(timeout(woken));
                });
            } else {
                let cpu = thread_cpu_ns();
                let size = shared.pools[pool].size.as_ref();
                size.inspect(|size| size.note_asleep(index, Some(now)));
                shared.pools[pool].sleep.sleep(index, has_work);
                size.inspect(|size| size.note_asleep(index, None));
                self.idle.slept(thread_cpu_ns().saturating_sub(cpu));
            }
            self.busy_since = now_ns();
            self.idle.gap(self.busy_since.saturating_sub(idle_from));
            // What it does next belongs to the interval it woke in; a worker that slept in its
            // poller with stats unpublished publishes them first, into theirs.
            self.roll(self.busy_since);
        }
        self.ctx.flush();
        self.fold_processed();
        self.ctx.publish(now_ns());
    }

    /// Whether it keeps the timers its stages ask for (see [`PolledIo::timers`]).
    fn keeps_timers(&self) -> bool {
        self.io.as_ref().is_some_and(|io| io.timers.is_some())
    }

    fn stands_by(&self) -> bool {
        self.ctx.shared.pools[self.pool].size.as_ref().is_some_and(|size| size.stands_by(self.index))
    }

    /// Parks until the pool's controller has this thread serve again (or the engine stops),
    /// with its stats published and its busy time counted up to now, as before a sleep.
    #[cold]
    fn stand_by(&mut self) {
        self.ctx.flush();
        let now = now_ns();
        self.ctx.rec.busy(now.saturating_sub(self.busy_since));
        self.fold_processed();
        self.ctx.publish(now);
        let shared = self.ctx.shared.clone();
        if let Some(size) = &shared.pools[self.pool].size {
            size.stand_by(self.index, || shared.stopped());
        }
        self.busy_since = now_ns();
        self.roll(self.busy_since);
    }

    fn pin(&self) -> Result<WorkerInfo, EngineError> {
        let plan = &self.ctx.shared.plan;
        let pool = &plan.pools[self.pool];
        let cpu = pool.threads[self.index].cpu;
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            return Err(EngineError::Pin { pool: pool.name.clone(), index: self.index, cpu });
        }
        Ok(WorkerInfo { pool: pool.name.clone(), index: self.index, cpu, allowed_cpus: allowed_cpus() })
    }

    /// Step 1 of the loop: the worker's own work, else a sibling's.
    #[inline]
    fn take(&mut self) -> Option<Batch> {
        self.take_own().or_else(|| self.steal())
    }

    /// A batch from the local deque, else from the pool's stage queues.
    #[inline]
    fn take_own(&mut self) -> Option<Batch> {
        let shared = &self.ctx.shared;
        let pool = &shared.pools[self.pool];
        take_own(&self.local, &shared.queues, &pool.stages, &mut self.rotate, &pool.sleep)
    }

    /// Some of a sibling's local deque.
    fn steal(&mut self) -> Option<Batch> {
        steal_from_siblings(&self.ctx.shared.pools[self.pool].stealers, self.index, &self.local)
    }

    /// Step 2 for a whole batch (all bound for one stage).
    fn process_batch(&mut self, mut batch: Batch) {
        let stage = batch.stage;
        let n = batch.items.len();
        self.ctx.shared.queues[stage].release(n);
        // Queue wait: from the batch's hand-off until a worker took it, the same for all of it.
        let mut now = now_ns();
        if self.ctx.rec.past(now) {
            self.roll(now);
        }
        self.ctx.rec.queue_wait_n(stage, now.saturating_sub(batch.enqueued_ns), n as u32);
        // A stage with an admission controller: it may shed some now, and hears how long each
        // of the rest took.
        let gated = self.ctx.shared.gates[stage].is_some().then_some(batch.enqueued_ns);
        let started = if gated.is_some() { self.gate_start(&mut batch, now) } else { 0 };
        let batch_start = now;
        // Taken from the back, so reversed: requests run in the order they were queued.
        batch.items.reverse();
        // One `catch_unwind` for the batch, not one per request. The request a handler runs is
        // kept outside it, with the stage it is at, so a panic fails that request; the rest of
        // the batch then goes on under a fresh one.
        let mut in_hand = None;
        let mut at = stage;
        loop {
            let items = &mut batch.items;
            let run =
                catch_unwind(AssertUnwindSafe(|| self.run_batch(items, stage, gated, &mut in_hand, &mut at, &mut now)));
            let Err(payload) = run else { break };
            let Some(env) = in_hand.take() else {
                // The engine's own code panicked, not a handler: that is a bug, not a failure.
                std::panic::resume_unwind(payload)
            };
            now = now_ns();
            self.hops[at].calls += 1;
            // The instance may be left half-updated: replace it before its next call.
            self.hops[at].instance = self.ctx.shared.plan.stages[at].factory.instance(self.index);
            let error = StageError::new(panics::message(&*payload));
            self.ctx.finish(env, Outcome::Failed { stage: at, error }, now);
        }
        if gated.is_some() {
            self.gate_finish(stage, started, batch_start);
        }
        self.ctx.give_back(batch);
    }

    /// A batch of a stage with an admission controller: what a controller deciding at dequeue
    /// sheds ends now; the rest are counted in service. Returns how many are left.
    #[cold]
    fn gate_start(&mut self, batch: &mut Batch, now: u64) -> usize {
        let shared = self.ctx.shared.clone();
        let Some(gate) = &shared.gates[batch.stage] else { return 0 };
        if !gate.at_entry() {
            let sojourn = now.saturating_sub(batch.enqueued_ns);
            self.ctx.shed_by_gate(&mut batch.items, batch.stage, now, Some(sojourn));
        }
        gate.started(batch.items.len());
        batch.items.len()
    }

    /// Tells the stage's controller the batch is done, with its requests' response times and
    /// how long the worker was busy with it since `batch_start`.
    #[cold]
    fn gate_finish(&mut self, stage: StageId, started: usize, batch_start: u64) {
        let shared = self.ctx.shared.clone();
        if let Some(gate) = &shared.gates[stage] {
            let now = now_ns();
            gate.finished(started, &self.responses, now.saturating_sub(batch_start), now);
        }
        self.responses.clear();
    }

    /// Keeps a request's response time at a stage with an admission controller.
    #[inline(never)]
    fn note_response(&mut self, stage: StageId, env: &Envelope, response_ns: u64) {
        let class = self.ctx.shared.gates[stage].as_ref().map_or(0, |gate| gate.class_of(&env.req));
        self.responses.push((class, response_ns));
    }

    /// Step 2, for the requests of `items` (last first), queued at `stage`: runs each through
    /// its stage and every same-pool successor, then sends it on, starts its I/O or ends it.
    /// `gated`: when the stage has an admission controller, when the batch was queued (each
    /// request's response time is kept for it). `in_hand` and `at`: see
    /// [`Worker::process_batch`]. `now` is a fresh clock reading (the end of the previous
    /// request), and is kept one.
    fn run_batch(
        &mut self,
        items: &mut Vec<Box<Envelope>>,
        stage: StageId,
        gated: Option<u64>,
        in_hand: &mut Option<Box<Envelope>>,
        at: &mut StageId,
        now: &mut u64,
    ) {
        while let Some(env) = items.pop() {
            *at = stage;
            let timed = self.sampler.next_is_timed();
            let start = *now;
            let next = self.run_inline(in_hand.insert(env), at, now, timed);
            if timed {
                self.sampler.timed(*now - start);
            }
            let env = in_hand.take().expect("put in hand above");
            // A request that only moves on to another pool needs no clock reading of its own
            // (unless an admission controller is to hear its response time).
            let end = if timed || (matches!(next, Next::Send(_)) && gated.is_none()) { *now } else { now_ns() };
            if let Some(queued_ns) = gated {
                self.note_response(stage, &env, end.saturating_sub(queued_ns));
            }
            match next {
                Next::Send(next) => self.ctx.send(env, next),
                Next::Io(IoOp::Timer(wait), next) if self.keeps_timers() => {
                    let entry = TimerEntry::new(env, wait, *at, next, end);
                    let own = self.io.as_mut().and_then(|io| io.timers.as_mut());
                    timer::start(&mut self.ctx, entry, own, end);
                }
                Next::Io(op, next) => self.ctx.start_io(env, op, *at, next, end),
                Next::Complete => self.ctx.complete(env, end),
                Next::End(outcome) => self.ctx.finish(env, outcome, end),
            }
            if self.ctx.rec.past(end) {
                self.roll(end);
            }
            *now = end;
        }
    }

    /// Looks for work before the worker sleeps, spinning as long as the idle policy says, and
    /// at least the pool's `idle_spin_us` (a worker alone on its CPU), or yielding (one that
    /// shares it). `start`: when it ran out. A worker with a poller spins, polling it, as long
    /// as its poller asks ([`Poller::keep_spinning`]) or the pool's spin lasts, and does not
    /// yield: its poll is where it waits.
    #[cold]
    fn wait_for_work(&mut self, start: u64) -> Option<Batch> {
        let (spin, yield_) = if self.shares_cpu {
            (0, SHARED_YIELD.as_nanos() as u64)
        } else {
            (self.idle.spin_ns().max(self.min_spin_ns), 0)
        };
        loop {
            if let Some(batch) = self.take() {
                let now = now_ns();
                self.idle.gap(now - start);
                self.ctx.rec.idle_spin((now - start).min(spin));
                return Some(batch);
            }
            if self.ctx.shared.stopped() {
                return None;
            }
            let idle = now_ns() - start;
            if let Some(io) = self.io.as_mut() {
                let spinning = idle < self.min_spin_ns || io.poller.keep_spinning(Duration::from_nanos(idle));
                if self.shares_cpu || !spinning {
                    return None;
                }
                self.poll(Some(Duration::ZERO));
                continue;
            }
            if idle < spin {
                for _ in 0..16 {
                    std::hint::spin_loop();
                }
            } else if idle < spin + yield_ {
                std::thread::yield_now();
            } else {
                self.ctx.rec.idle_spin(spin);
                return None;
            }
        }
    }

    /// Past a boundary of the metrics interval (`now` is past it): publishes what the worker
    /// recorded in the interval that ended, with its busy time up to `now`, so a worker that
    /// never runs out of work still shows it, interval by interval.
    #[cold]
    fn roll(&mut self, now: u64) {
        self.ctx.rec.busy(now.saturating_sub(self.busy_since));
        self.busy_since = now;
        self.fold_processed();
        self.ctx.roll(now);
    }

    /// Moves the handler calls counted in the hops into the recorder, before it is looked at;
    /// the calls since a stage's last timed one are recorded at that call's time, so the
    /// service-time samples published stand for exactly the calls published.
    fn fold_processed(&mut self) {
        for (stage, hop) in self.hops.iter_mut().enumerate().filter(|(_, h)| h.calls != h.published) {
            self.ctx.rec.processed_n(stage, hop.calls - hop.published);
            hop.published = hop.calls;
            if let Some(ns) = hop.last_service_ns.filter(|_| hop.calls != hop.sampled) {
                self.ctx.rec.service(stage, ns, hop.unsampled());
                hop.sampled = hop.calls;
            }
        }
    }

    /// Handles `env` at `stage` and on through same-pool successors, until it leaves the pool
    /// or ends. Keeps `stage` current for the caller; when `timed`, reads the clock after each
    /// stage (and keeps `now` current), otherwise only where a deadline needs checking.
    #[inline]
    fn run_inline(&mut self, env: &mut Envelope, stage: &mut StageId, now: &mut u64, timed: bool) -> Next {
        let shared = &*self.ctx.shared;
        let deadlines = self.deadlines;
        // An aborting engine ends each request it takes as timed out (see `Engine::shutdown`).
        if shared.aborting() {
            return Next::End(Outcome::TimedOut { stage: *stage });
        }
        // Stages run in a row on this worker: a request that loops within the pool (a `route`
        // back to an earlier stage) never goes back to a queue, so this is where an aborting
        // engine must still reach it: a look every `INLINE_HOPS_PER_LOOK` hops on the edges
        // of such a loop, and none on a straight path.
        let mut hops = 0u32;
        loop {
            if deadlines && *now >= env.deadline_ns {
                return Next::End(Outcome::TimedOut { stage: *stage });
            }
            let hop = &mut self.hops[*stage];
            let step = hop.instance.handle(&mut env.req);
            hop.calls += 1;
            if timed {
                let end = now_ns();
                self.sampler.reading();
                // The sample stands for this stage's calls since its last one: the same request
                // may be timed here and not at a stage it skips, so a count kept per stage, not
                // the sampler's gap, makes the weights add up to the calls.
                let weight = hop.unsampled();
                hop.sampled = hop.calls;
                hop.last_service_ns = Some(end - *now);
                self.ctx.rec.service(*stage, end - *now, weight);
                *now = end;
            } else if deadlines {
                *now = now_ns();
            }
            let route = |out: seda_stages::Output| hop.routes.get(out.0 as usize).copied();
            match step {
                Step::Next(out) => match route(out) {
                    Some(Route::Inline(next)) => *stage = next,
                    Some(Route::InlineLoop(next)) => {
                        *stage = next;
                        hops += 1;
                        if hops == INLINE_HOPS_PER_LOOK {
                            hops = 0;
                            if shared.aborting() {
                                return Next::End(Outcome::TimedOut { stage: next });
                            }
                        }
                    }
                    Some(Route::Queue(next)) => return Next::Send(next),
                    None => return no_such_output(*stage, out.0),
                },
                Step::Io(op, seda_stages::Output::SELF) => return Next::Io(op, *stage),
                Step::Io(op, out) => match route(out) {
                    Some(route) => return Next::Io(op, route.stage()),
                    None => return no_such_output(*stage, out.0),
                },
                Step::Respond => return Next::Complete,
                Step::Fail(error) => return Next::End(Outcome::Failed { stage: *stage, error }),
            }
        }
    }
}

/// Same-pool hops round a loop a request makes in a row before the worker looks whether the
/// engine is aborting (see [`Worker::run_inline`]).
const INLINE_HOPS_PER_LOOK: u32 = 64;

/// Where one of a stage's outputs leads, as a worker runs it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Route {
    /// A stage of the same pool: the worker runs it at once, with no hand-off.
    Inline(StageId),
    /// The same, on an edge of a loop within the pool (the next stage can lead back to this
    /// one without leaving it): a request may go round for ever without meeting a queue, so
    /// the worker counts these hops and looks whether the engine is aborting.
    InlineLoop(StageId),
    /// A stage of another pool, or one with an admission controller: through its queue.
    Queue(StageId),
}

impl Route {
    fn of(plan: &Plan, from: StageId, to: StageId) -> Route {
        let pool = plan.stages[from].pool;
        // A stage with an admission controller is always entered through its queue, where its
        // controller decides, even from its own pool.
        let inline = |stage: StageId| plan.stages[stage].pool == pool && plan.stages[stage].admission.is_none();
        if !inline(to) {
            return Route::Queue(to);
        }
        // Whether `from` can be reached from `to` along same-pool edges: a search of at most
        // every stage, once per edge, when the worker starts.
        let mut seen = vec![false; plan.stages.len()];
        let mut todo = vec![to];
        while let Some(at) = todo.pop() {
            if at == from {
                return Route::InlineLoop(to);
            }
            if std::mem::replace(&mut seen[at], true) {
                continue;
            }
            todo.extend(plan.stages[at].successors.iter().filter(|&&n| inline(n)));
        }
        Route::Inline(to)
    }

    fn stage(self) -> StageId {
        match self {
            Route::Inline(stage) | Route::InlineLoop(stage) | Route::Queue(stage) => stage,
        }
    }
}

/// One stage, as a worker runs it.
struct Hop {
    /// The worker's own instance of the stage's handler ([`OtherPools`] for the stages of
    /// other pools, which it never runs).
    instance: Box<dyn Stage>,
    /// Per output: where it leads.
    routes: Box<[Route]>,
    /// Handler calls since the worker started: counted here, where the handler was just
    /// looked up, and moved into the recorder ([`Worker::fold_processed`]) before it publishes.
    calls: u64,
    /// `calls` when the worker last published.
    published: u64,
    /// `calls` at the last timed call: the calls after it are not yet in any sample's weight.
    sampled: u64,
    /// The last timed call's service time, which the calls after it are recorded at when the
    /// worker publishes before the next timed one.
    last_service_ns: Option<u64>,
}

impl Hop {
    /// Calls not yet counted in a service-time sample's weight.
    fn unsampled(&self) -> u32 {
        u32::try_from(self.calls - self.sampled).unwrap_or(u32::MAX)
    }
}

/// What a worker holds for a stage of another pool: never called, since requests bound there go
/// to its queue. (A placeholder rather than an `Option`: no check on every call.)
struct OtherPools;

impl Stage for OtherPools {
    fn handle(&mut self, _req: &mut seda_stages::Request) -> Step {
        unreachable!("a pool runs only its own stages")
    }
}

/// Where a request goes once it leaves the worker's hands. (One-byte tag, as `Step`.)
#[repr(u8)]
enum Next {
    /// To the queue of this stage, on another pool.
    Send(StageId),
    /// Into the completion layer, continuing at the stage given.
    Io(IoOp, StageId),
    /// Completed: the common ending, with no outcome to carry (moving one costs a copy).
    Complete,
    End(Outcome),
}

#[cold]
fn no_such_output(stage: StageId, out: u16) -> Next {
    let error = StageError::new(format!("the handler chose output {out}, which the stage does not have"));
    Next::End(Outcome::Failed { stage, error })
}

// The worker's decisions about where work is, as free functions of the queues, deques and
// sleep they look at, so that the loom model of the idle path (`super::idle_model`) runs this
// very code.

/// A batch from `local`, else a few from one of the pool's stage queues (`stages`, indexes into
/// `queues`, looked at from `rotate` on) moved into `local`, waking a sibling (on `sleep`) when
/// more is left than the batch taken.
#[inline]
pub(crate) fn take_own(
    local: &LocalQueue<Batch>,
    queues: &[StageQueue],
    stages: &[StageId],
    rotate: &mut usize,
    sleep: &Sleep,
) -> Option<Batch> {
    if let Some(batch) = local.pop() {
        return Some(batch);
    }
    let n = stages.len();
    for i in 0..n {
        let queue = &queues[stages[(*rotate + i) % n]];
        if queue.is_empty() {
            continue;
        }
        if let Some(batch) = queue.steal_into(local) {
            *rotate = rotate.wrapping_add(1);
            // More left for a sibling: make sure one is awake to take it.
            if !local.is_empty() || !queue.is_empty() {
                sleep.wake_one();
            }
            return Some(batch);
        }
    }
    None
}

/// Some of the local deque of a sibling of worker `me` (`stealers`: the pool's, by worker).
pub(crate) fn steal_from_siblings(stealers: &[Stealer<Batch>], me: usize, local: &LocalQueue<Batch>) -> Option<Batch> {
    stealers.iter().enumerate().filter(|&(i, s)| i != me && !s.is_empty()).find_map(|(_, s)| steal_from(s, local))
}

/// Whether any of the pool's stage queues (`stages`, indexes into `queues`) or workers' local
/// deques holds work: a worker's last look before it sleeps (step 2 of [`Sleep`]'s protocol).
pub(crate) fn pool_has_work(queues: &[StageQueue], stages: &[StageId], stealers: &[Stealer<Batch>]) -> bool {
    let queued = !mutant("idle_misses_queues") && stages.iter().any(|&s| !queues[s].is_empty());
    queued || stealers.iter().any(|s| !s.is_empty())
}

/// The CPUs the calling thread may run on, as the kernel reports them.
fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| s.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:").map(|v| v.trim().to_string())))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::Route;

    /// `a` and `b` on pool p loop through `r`; `c` is after the loop; `x` on pool q leads
    /// back to `a` through a queue.
    fn plan() -> crate::config::Plan {
        crate::config::load_str(
            r#"{
              "name": "loops",
              "source": { "kind": "generator", "requests": 1, "entry": "a" },
              "pools": { "p": { "threads": 1 }, "q": { "threads": 1 } },
              "stages": {
                "a": { "kind": "noop", "pool": "p", "next": "b" },
                "b": { "kind": "noop", "pool": "p", "next": "r" },
                "r": { "kind": "route", "pool": "p", "params": { "weights": { "again": 1, "on": 1 } },
                       "next": { "again": "a", "on": "c" } },
                "c": { "kind": "noop", "pool": "p", "next": "x" },
                "x": { "kind": "route", "pool": "q", "params": { "weights": { "again": 1, "done": 1 } },
                       "next": { "again": "a", "done": "d" } },
                "d": { "kind": "respond", "pool": "q" }
              }
            }"#,
        )
        .unwrap()
    }

    #[test]
    fn only_the_edges_of_a_loop_within_a_pool_count_their_hops() {
        let plan = plan();
        let id = |name| plan.stage(name).unwrap();
        let route = |from, to| Route::of(&plan, id(from), id(to));
        assert_eq!(route("a", "b"), Route::InlineLoop(id("b")));
        assert_eq!(route("b", "r"), Route::InlineLoop(id("r")));
        assert_eq!(route("r", "a"), Route::InlineLoop(id("a")));
        // Out of the loop, and a loop that crosses a queue, need no count.
        assert_eq!(route("r", "c"), Route::Inline(id("c")));
        assert_eq!(route("c", "x"), Route::Queue(id("x")));
        assert_eq!(route("x", "a"), Route::Queue(id("a")));
        assert_eq!(route("x", "d"), Route::Inline(id("d")));
    }
}

#[cfg(all(test, seda_loom))]
mod loom_model {
    //! The idle path of a pool's workers with the real code: producers hand batches in as
    //! `Ctx` does (reserve, push, wake one), and each worker takes work with [`take_own`] and
    //! [`steal_from_siblings`], starts each batch by releasing its room, and sleeps on the
    //! real [`Sleep`] after the last look [`pool_has_work`] makes. What is not the real code:
    //! the loop around them (the real one also spins, yields, polls and publishes, none of
    //! which decides whether it sleeps) and running the requests. The crossbeam queues and
    //! deques are the real ones, but loom does not see inside them: it explores how the
    //! engine's own steps interleave around each queue operation, not the queues' own
    //! memory orderings (crossbeam's, trusted and tested by crossbeam).

    use super::*;
    use crate::config::{QueuePlan, WhenFull};
    use crate::sync::{AtomicUsize, Ordering};
    use loom::sync::Arc;
    use loom::thread;
    use seda_stages::Request;

    struct Pool {
        queues: Vec<StageQueue>,
        stages: Vec<StageId>,
        stealers: Vec<Stealer<Batch>>,
        sleep: Sleep,
        done: AtomicUsize,
    }

    /// A pool of `workers` serving one stage, and each worker's own deque.
    fn pool(workers: usize) -> (Arc<Pool>, Vec<LocalQueue<Batch>>) {
        let plan = QueuePlan {
            capacity: 64,
            when_full: WhenFull::Reject,
            block_timeout: Duration::ZERO,
            batch: crate::config::BatchPlan::Fixed(crate::config::ranges::MAX_BATCH),
        };
        let locals: Vec<_> = (0..workers).map(|_| LocalQueue::new_fifo()).collect();
        let pool = Pool {
            queues: vec![StageQueue::new(0, plan)],
            stages: vec![0],
            stealers: locals.iter().map(|l| l.stealer()).collect(),
            sleep: Sleep::new(workers),
            done: AtomicUsize::new(0),
        };
        (Arc::new(pool), locals)
    }

    /// Hands in a batch of one request, as `Ctx::flush_stage` does.
    fn send_one(pool: &Pool) {
        let queue = &pool.queues[0];
        assert_eq!(queue.reserve(1), 1);
        let mut batch = queue.reusable();
        batch.items.push(Envelope::new(Request::default()));
        queue.push_reserved(batch);
        pool.sleep.wake_one();
    }

    /// A worker until `items` requests are done, then it wakes the others to see it.
    fn worker(pool: &Pool, me: usize, local: LocalQueue<Batch>, items: usize) {
        let mut rotate = 0;
        loop {
            let taken = take_own(&local, &pool.queues, &pool.stages, &mut rotate, &pool.sleep)
                .or_else(|| steal_from_siblings(&pool.stealers, me, &local));
            if let Some(mut batch) = taken {
                pool.queues[batch.stage].release(batch.items.len());
                pool.done.fetch_add(batch.items.len(), Ordering::AcqRel);
                batch.items.clear();
                continue;
            }
            let finished = || pool.done.load(Ordering::Acquire) >= items;
            if finished() {
                break;
            }
            pool.sleep.sleep(me, || finished() || pool_has_work(&pool.queues, &pool.stages, &pool.stealers));
        }
        pool.sleep.wake_all();
    }

    fn run(workers: usize, items: usize) {
        let (pool, locals) = pool(workers);
        let threads: Vec<_> = locals
            .into_iter()
            .enumerate()
            .map(|(me, local)| {
                let pool = pool.clone();
                thread::spawn(move || worker(&pool, me, local, items))
            })
            .collect();
        for _ in 0..items {
            send_one(&pool);
        }
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(pool.done.load(Ordering::Acquire), items);
        assert_eq!(pool.queues[0].depth(), 0);
    }

    #[test]
    fn an_idle_worker_never_sleeps_through_a_batch_handed_in() {
        loom::model(|| run(1, 1));
    }

    #[test]
    fn two_idle_workers_never_sleep_through_two_batches_handed_in() {
        loom::model(|| run(2, 2));
    }
}
