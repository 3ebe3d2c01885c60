//! The engine: what its threads share, how it starts, how sources submit, how it shuts down.
//!
//! Shutdown protocol ([`Engine::shutdown`]):
//! 1. `Draining`: submitters stop admitting (new requests end as rejected, `ShuttingDown`);
//!    workers and timers go on.
//! 2. Wait until the ledger shows nothing in flight, or `drain_timeout` passes.
//! 3. If something is still in flight: `Aborting`. Workers end each request they take as timed
//!    out, the timer thread and every worker that keeps timers fire every pending timer (its
//!    request ends as timed out), senders blocked on a full queue give up; wait until nothing
//!    is in flight.
//! 4. `Stopped`: wake every worker; each exits once it finds no work, publishing its stats.
//!    Join the workers, the timer thread and the operations thread.
//! 5. Drop the last metrics sender, so the collector returns the run's totals.

use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_deque::Worker as LocalQueue;

use super::admission::Gate;
use super::context::push_as_room_allows;
use super::control::Controllers;
use super::poller::{admit_by_policy, stamp};
use super::pool_size::PoolSize;
use super::queue::{Batch, StageQueue};
use super::shared::{PoolShared, Shared, ABORTING, RUNNING, STOPPED};
use super::worker::Worker;
use super::{
    Ctx, EngineError, Envelope, Ledger, LedgerCounts, Observer, Origin, OriginId, Outcome, Sleep, Snapshot, WorkerInfo,
};
use crate::clock::now_ns;
use crate::config::{Plan, StageId};
use crate::io::{files, ops, timer, FileMsg};
use crate::metrics::Recording;
use crate::metrics::{collector, EngineSample, IntervalGrid, Publication, Summary};

/// Pollers for the workers of one pool (see [`EngineBuilder::pollers`]).
pub struct WorkerPollers {
    pub pool: usize,
    /// Where the pollers' requests are admitted.
    pub entry: StageId,
    /// Per worker of the pool: the origin its requests are submitted as, and its poller.
    pub pollers: Vec<(OriginId, Box<dyn super::Poller>)>,
}

/// What an engine is started with; [`EngineBuilder::start`] starts it.
pub struct EngineBuilder {
    plan: Plan,
    origins: Vec<Arc<dyn Origin>>,
    record: bool,
    pollers: Option<WorkerPollers>,
}

impl EngineBuilder {
    /// Who is told of each request's end: `origins[i]` of the requests submitted as origin i.
    pub fn origins(mut self, origins: Vec<Arc<dyn Origin>>) -> Self {
        self.origins = origins;
        self
    }

    /// Whether the collector also keeps the run interval by interval (every
    /// `metrics_interval`), for [`Engine::shutdown_recorded`] to return: a run record's data.
    pub fn record(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// A poller in each worker of one pool: worker i of `pollers.pool` turns
    /// `pollers.pollers[i]` between batches and sleeps in it (a source that lives in the
    /// workers: the HTTP reactors, the generator).
    pub fn pollers(mut self, pollers: WorkerPollers) -> Self {
        self.pollers = Some(pollers);
        self
    }

    /// Builds the queues, spawns and pins every pool's workers, the timer thread and the
    /// metrics collector.
    pub fn start(self) -> Result<Engine, EngineError> {
        if let Some(polled) = &self.pollers {
            let pool = &self.plan.pools[polled.pool];
            assert_eq!(polled.pollers.len(), pool.threads.len(), "a poller per worker of the pool");
            if pool.sizing.is_some() {
                return Err(EngineError::SizedPollers { pool: pool.name.clone() });
            }
        }
        Engine::start_with(self.plan, self.origins, self.record, self.pollers)
    }
}

/// A running engine.
pub struct Engine {
    shared: Arc<Shared>,
    workers: Vec<JoinHandle<()>>,
    timer: Option<JoinHandle<()>>,
    /// The thread that completions of the stages' own operations come back to.
    ops: Option<JoinHandle<()>>,
    /// The pool-size and batching controllers' thread, if the plan has any.
    control: Option<JoinHandle<()>>,
    files: Vec<JoinHandle<()>>,
    metrics: Option<flume::Sender<Publication>>,
    collector: Option<JoinHandle<collector::Totals>>,
    info: Vec<WorkerInfo>,
    started_ns: u64,
}

/// How a submitter treats a full entry queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// The entry stage's policy decides (a client-facing source).
    Policy,
    /// Wait for room: a generator running as fast as admission allows.
    WaitForRoom,
}

impl Engine {
    /// The one way to start an engine: `Engine::builder(plan).origins(...).start()`, with
    /// recording and worker pollers as options.
    pub fn builder(plan: Plan) -> EngineBuilder {
        EngineBuilder { plan, origins: Vec::new(), record: false, pollers: None }
    }

    fn start_with(
        plan: Plan,
        origins: Vec<Arc<dyn Origin>>,
        record: bool,
        mut pollers: Option<WorkerPollers>,
    ) -> Result<Engine, EngineError> {
        let reusable_counts = collector::reusable_counts();
        let (timer_tx, timer_rx) = flume::bounded(plan.io_capacity);
        let (files_tx, files_rx) = flume::bounded(plan.io_capacity);
        let (ops_tx, ops_rx) = flume::unbounded();
        let queues = plan.stages.iter().enumerate().map(|(id, s)| StageQueue::new(id, s.queue)).collect();
        let mut locals: Vec<Vec<LocalQueue<Batch>>> = Vec::new();
        let mut pools = Vec::new();
        for (p, pool) in plan.pools.iter().enumerate() {
            let local: Vec<_> = pool.threads.iter().map(|_| LocalQueue::new_fifo()).collect();
            let sleep = match &pollers {
                Some(polled) if polled.pool == p => {
                    Sleep::with_wakers(polled.pollers.iter().map(|(_, poller)| Some(poller.waker())).collect())
                }
                _ => Sleep::new(pool.threads.len()),
            };
            pools.push(PoolShared {
                stages: pool.stages.clone(),
                stealers: local.iter().map(LocalQueue::stealer).collect(),
                sleep,
                size: pool.sizing.as_ref().map(|sizing| PoolSize::new(pool.threads.len(), sizing)),
            });
            locals.push(local);
        }
        let gates = plan
            .stages
            .iter()
            .map(|s| s.admission.as_ref().map(|a| Gate::new(a, plan.pools[s.pool].threads.len(), now_ns())))
            .collect();
        let shared = Arc::new(Shared {
            queues,
            gates,
            pools,
            ledger: Ledger::default(),
            hand_backs: origins.iter().map(|o| o.hand_back()).collect(),
            origins,
            timers: timer_tx,
            files: files_tx,
            ops: ops_tx,
            ops_in_flight: AtomicUsize::new(0),
            timers_in_flight: AtomicUsize::new(0),
            ops_started: AtomicU64::new(0),
            reusable_counts: reusable_counts.clone(),
            live: Arc::new(collector::Live::new(plan.stages.len(), plan.pools.len())),
            metrics_grid: IntervalGrid::new(now_ns(), plan.metrics_interval),
            state: AtomicU8::new(RUNNING),
            drain_deadline_ns: AtomicU64::new(u64::MAX),
            plan,
        });
        let intervals = record.then_some(shared.metrics_grid);
        let sampled = shared.clone();
        let sample = Box::new(move |sample: &mut EngineSample| {
            for ((depth, batch), queue) in sample.depths.iter_mut().zip(&mut sample.batches).zip(&sampled.queues) {
                *depth = queue.take_high_water() as u64;
                *batch = queue.batch() as u64;
            }
            for (reading, gate) in sample.controllers.iter_mut().zip(&sampled.gates) {
                *reading = gate.as_ref().map(|gate| gate.reading());
            }
            for (threads, pool) in sample.pool_threads.iter_mut().zip(&sampled.pools) {
                *threads = pool.serving() as u64;
            }
        });
        let (metrics, collector) = collector::spawn(shared.live.clone(), reusable_counts, intervals, sample);

        let mut engine = Engine {
            shared: shared.clone(),
            workers: Vec::new(),
            timer: None,
            ops: None,
            control: None,
            files: Vec::new(),
            metrics: Some(metrics.clone()),
            collector: Some(collector),
            info: Vec::new(),
            started_ns: 0,
        };
        let (ready_tx, ready_rx) = flume::unbounded();
        // Engine threads pinned to each CPU: workers, and the generator if it is pinned.
        let mut pinned = std::collections::HashMap::<usize, usize>::new();
        for thread in shared.plan.pools.iter().flat_map(|p| &p.threads) {
            *pinned.entry(thread.cpu).or_default() += 1;
        }
        if let Some(cpu) = shared.plan.source.cpu() {
            *pinned.entry(cpu).or_default() += 1;
        }
        let mut polled = pollers.as_mut().map(|p| (p.pool, p.entry, p.pollers.drain(..)));
        for (p, local) in locals.into_iter().enumerate() {
            for (index, local) in local.into_iter().enumerate() {
                let name = format!("{}{}.{}", super::panics::WORKER_THREAD_PREFIX, shared.plan.pools[p].name, index);
                let shares_cpu = pinned[&shared.plan.pools[p].threads[index].cpu] > 1;
                let mut worker = Worker::new(Ctx::new(shared.clone(), metrics.clone()), p, index, local, shares_cpu);
                if let Some((_, entry, pollers)) = polled.as_mut().filter(|(pool, ..)| *pool == p) {
                    let (origin, poller) = pollers.next().expect("a poller per worker");
                    worker.poll_with(poller, origin, *entry);
                }
                let ready = ready_tx.clone();
                let handle = std::thread::Builder::new()
                    .name(name.clone())
                    .spawn(move || worker.serve(ready))
                    .map_err(|source| EngineError::Spawn { name, source });
                match handle {
                    Ok(h) => engine.workers.push(h),
                    Err(e) => {
                        engine.stop_now();
                        return Err(e);
                    }
                }
            }
        }
        drop(ready_tx);
        for i in 0..shared.plan.file_threads {
            let (ctx, rx, name) =
                (Ctx::new(shared.clone(), metrics.clone()), files_rx.clone(), format!("seda-file.{i}"));
            match std::thread::Builder::new().name(name.clone()).spawn(move || files::file_thread(ctx, rx)) {
                Ok(h) => engine.files.push(h),
                Err(source) => {
                    engine.stop_now();
                    return Err(EngineError::Spawn { name, source });
                }
            }
        }
        let ops_ctx = Ctx::new(shared.clone(), metrics.clone());
        // Named as a worker: the changes operations make to their requests run here, and a
        // panic in one is caught and counted like a handler's.
        let ops_name = format!("{}-ops", super::panics::WORKER_THREAD_PREFIX);
        match std::thread::Builder::new().name(ops_name.clone()).spawn(move || ops::ops_thread(ops_ctx, ops_rx)) {
            Ok(h) => engine.ops = Some(h),
            Err(source) => {
                engine.stop_now();
                return Err(EngineError::Spawn { name: ops_name, source });
            }
        }
        let timer_ctx = Ctx::new(shared.clone(), metrics);
        engine.timer = Some(
            std::thread::Builder::new()
                .name("seda-timer".into())
                .spawn(move || timer::timer_thread(timer_ctx, timer_rx))
                .map_err(|source| EngineError::Spawn { name: "seda-timer".into(), source })?,
        );
        // Every worker reports once it is pinned (or could not be).
        let mut failure = None;
        for report in ready_rx.iter() {
            match report {
                Ok(info) => engine.info.push(info),
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            engine.stop_now();
            return Err(e);
        }
        if let Some(controllers) = Controllers::of(&shared.plan) {
            let shared = shared.clone();
            match std::thread::Builder::new().name("seda-control".into()).spawn(move || controllers.run(shared)) {
                Ok(h) => engine.control = Some(h),
                Err(source) => {
                    engine.stop_now();
                    return Err(EngineError::Spawn { name: "seda-control".into(), source });
                }
            }
        }
        engine.info.sort_by(|a, b| (&a.pool, a.index).cmp(&(&b.pool, b.index)));
        engine.started_ns = now_ns();
        Ok(engine)
    }

    /// A handle for a source to submit requests as `origin`. Borrowing the engine, it is
    /// dropped before shutdown, so its counts are in the summary.
    pub fn submitter(&self, origin: OriginId, entry: StageId) -> Submitter<'_> {
        let metrics = self.metrics.clone().expect("the engine is running");
        let mut ctx = Ctx::new(self.shared.clone(), metrics);
        ctx.admits = true;
        Submitter { ctx, one: Vec::with_capacity(1), origin, entry, _engine: PhantomData }
    }

    /// Wakes every sleeping worker of `pool`, so that each looks at its poller again.
    pub fn wake_pool(&self, pool: usize) {
        self.shared.pools[pool].sleep.wake_all();
    }

    pub fn ledger(&self) -> LedgerCounts {
        self.shared.ledger.counts()
    }

    /// A reading of the live stats: ledger, queues, per-stage counts and latency, pools.
    pub fn snapshot(&self) -> Snapshot {
        self.observer().snapshot()
    }

    /// A handle that takes [`Snapshot`]s from another thread, during and after the run.
    pub fn observer(&self) -> Observer {
        Observer { shared: self.shared.clone(), started_ns: self.started_ns, source: None }
    }

    pub fn plan(&self) -> &Plan {
        &self.shared.plan
    }

    /// Every worker, with the CPUs it was read back to run on.
    pub fn workers(&self) -> &[WorkerInfo] {
        &self.info
    }

    /// Requests waiting in `stage`'s queue.
    pub fn queue_depth(&self, stage: StageId) -> usize {
        self.shared.queues[stage].depth()
    }

    /// Step 1 of shutdown on its own: from now on, submitted requests end at once as rejected
    /// (`ShuttingDown`). Work already admitted goes on.
    pub fn stop_admitting(&self) {
        self.shared.start_draining();
    }

    /// Starts the drain timeout now, for a source that was told to stop, without stopping
    /// admission: the source finishes what it is submitting, and if that still waits for room
    /// in the entry queue when the timeout passes, it ends as timed out. Shutdown, when it
    /// comes, drains until the same deadline.
    pub fn start_drain_timeout(&self) {
        self.shared.start_drain_clock();
    }

    /// Drains in-flight work, stops and joins every thread, and returns the run's summary
    /// (see the module's shutdown protocol).
    pub fn shutdown(self) -> Summary {
        self.shutdown_recorded().0
    }

    /// [`Engine::shutdown`], also returning the run's totals, with its intervals if the engine
    /// was started with [`EngineBuilder::record`].
    pub fn shutdown_recorded(mut self) -> (Summary, Recording) {
        self.shared.start_draining();
        let give_up = self.shared.drain_deadline();
        while self.ledger().in_flight > 0 && now_ns() < give_up {
            std::thread::sleep(Duration::from_micros(200));
        }
        if self.ledger().in_flight > 0 {
            self.shared.set_state(ABORTING);
            while self.ledger().in_flight > 0 {
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        let elapsed_s = (now_ns() - self.started_ns) as f64 / 1e9;
        let totals = self.stop_now();
        let ledger = self.ledger();
        let plan = &self.shared.plan;
        let summary = Summary::new(plan, &totals, ledger, elapsed_s);
        let recording = Recording {
            stages: plan.stages.iter().map(|s| s.name.clone()).collect(),
            stage_pools: plan.stages.iter().map(|s| s.pool).collect(),
            pool_threads: plan.pools.iter().map(|p| p.threads.len()).collect(),
            totals,
        };
        (summary, recording)
    }

    /// Steps 4 and 5 of the shutdown protocol.
    fn stop_now(&mut self) -> collector::Totals {
        self.shared.set_state(STOPPED);
        if let Some(c) = self.control.take() {
            let _ = c.join();
        }
        for w in self.workers.drain(..) {
            // A worker catches handler panics; one that still panicked has already lost its
            // requests to the ledger's in-flight count, which the summary shows.
            let _ = w.join();
        }
        if let Some(t) = self.timer.take() {
            let _ = t.join();
        }
        if let Some(t) = self.ops.take() {
            let _ = t.join();
        }
        // Each file thread exits at the first `Stop` it takes, after what was queued before it.
        for _ in &self.files {
            let _ = self.shared.files.send(FileMsg::Stop);
        }
        for f in self.files.drain(..) {
            let _ = f.join();
        }
        drop(self.metrics.take());
        self.collector.take().and_then(|c| c.join().ok()).unwrap_or_default()
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if self.collector.is_some() {
            self.stop_now();
        }
    }
}

/// A source's handle for admitting requests into the pipeline's entry stage.
pub struct Submitter<'e> {
    ctx: Ctx,
    /// Kept for `submit`, so that submitting one at a time does not allocate.
    one: Vec<Box<Envelope>>,
    origin: OriginId,
    entry: StageId,
    _engine: PhantomData<&'e Engine>,
}

impl Submitter<'_> {
    /// Admits one request. See [`Submitter::submit_batch`].
    pub fn submit(&mut self, env: Box<Envelope>, admission: Admission) {
        let mut one = std::mem::take(&mut self.one);
        one.push(env);
        self.submit_batch(&mut one, admission);
        self.one = one;
    }

    /// Admits every request in `batch` (leaving it empty): each is counted as admitted and
    /// then either queued at the entry stage or, if the entry is full and `admission` is
    /// `Policy`, ended by the entry's policy. Once shutdown has begun, requests end at once as
    /// rejected (`ShuttingDown`). A request without an intended start time gets now.
    pub fn submit_batch(&mut self, batch: &mut Vec<Box<Envelope>>, admission: Admission) {
        let now = now_ns();
        self.ctx.roll(now);
        if admission == Admission::Policy || !self.ctx.shared.admitting() {
            admit_by_policy(&mut self.ctx, batch, self.origin, self.entry, None);
        } else {
            let now = stamp(&mut self.ctx, batch, self.origin);
            self.ctx.shed_at_entry(batch, self.entry, now);
            self.push_waiting(batch);
        }
        // What the entry's policy rejected shows in the live stats within an interval.
        if now - self.ctx.rec.published_ns >= self.ctx.shared.plan.metrics_interval.as_nanos() as u64 {
            self.publish(now);
        }
    }

    #[cold]
    fn publish(&mut self, now: u64) {
        if self.ctx.rec.is_dirty() {
            self.ctx.publish(now);
        } else {
            self.ctx.rec.published_ns = now;
        }
    }

    /// Pushes the whole batch into the entry queue, waiting as long as it takes for room. The
    /// batch is admitted already, so once admission stops it is drained like the rest: the
    /// wait goes on until the drain gives up, and what is left then ends as timed out.
    fn push_waiting(&mut self, batch: &mut Vec<Box<Envelope>>) {
        let shared = &*self.ctx.shared;
        push_as_room_allows(shared, self.entry, batch, u64::MAX, || {
            shared.aborting() || now_ns() >= shared.drain_deadline()
        });
        let entry = self.entry;
        for env in batch.drain(..) {
            self.ctx.finish(env, Outcome::TimedOut { stage: entry }, now_ns());
        }
    }

    /// Whether the engine still admits requests.
    pub fn admitting(&self) -> bool {
        self.ctx.shared.admitting()
    }
}
