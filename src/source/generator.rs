//! The in-process generator: `requests` synthetic requests, at a fixed rate or as fast as the
//! entry admits them, each stamped with its intended start time so that end-to-end latency
//! counts any delay in sending it.
//!
//! It runs on a thread of its own ([`Generator::send_from_own_thread`]), or (`"placement": "workers"`) inside
//! each worker of the entry stage's pool ([`GeneratorPoller`]): the thread-per-core shape, where
//! a request is made, run through the pool's stages and recycled on one core, and where a
//! worker the kernel stalls holds up only the ids it claimed from the shared [`Schedule`].
//!
//! Requests are recycled: the engine hands them back in batches ([`Origin::recycle`]) and
//! the generator reuses them, so a steady run does not allocate, and a request's return costs
//! one hand-off per batch, not one each. Each sending thread has a [`Lane`] of its own, an
//! origin of its own: what a worker made comes back to it, and two workers never share a queue.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use seda_stages::{splitmix64, Request};

use super::doorbell::{Doorbell, SPIN_NS};
use super::schedule::{Claim, Schedule};
use super::{Opened, RunsOn, Source, SourceError, ThreadBody};
use crate::clock::now_ns;
use crate::config::{Plan, Rate, SourcePlacement, SourcePlan};
use crate::engine::{Admission, Admit, Engine, Envelope, HandBack, Origin, Outcome, Poller, Submitter, SPIN};

/// The longest a waiting generator goes without looking at its stop flag.
const STOP_LOOK_NS: u64 = 10_000_000;

/// Requests handed over per batch.
const BATCH: usize = 32;
/// Batches of requests kept for reuse at most, over all lanes (of up to 32 each; a worker that
/// runs out of work hands back what it has, so many are small).
const RECYCLE_BATCHES: usize = 1 << 14;

pub struct Generator {
    schedule: Schedule,
    payload_bytes: usize,
    cpu: Option<usize>,
    attributes: Vec<Attribute>,
    /// One per sending thread, by origin id.
    lanes: Vec<Arc<Lane>>,
    /// Rung when the last request is submitted.
    finished: Doorbell,
}

/// One sending thread's recycling, and the origin its requests are admitted as.
pub struct Lane {
    bins: Mutex<Bins>,
    /// Batches kept for reuse at most.
    capacity: usize,
}

/// Ended requests in batches, for reuse, and the emptied vectors that go back to carry more.
/// Stacks: the batch that ended last, its requests likely still in this core's cache, is
/// reused first.
#[derive(Default)]
struct Bins {
    full: Vec<Vec<Box<Envelope>>>,
    empty: Vec<Vec<Box<Envelope>>>,
}

impl Lane {
    fn new(capacity: usize) -> Self {
        Lane { bins: Mutex::default(), capacity }
    }

    fn bins(&self) -> MutexGuard<'_, Bins> {
        // Nothing panics while holding the lock; if anything did, the stacks are still whole.
        self.bins.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Refills an empty `reuse` with the batch that ended last, if there is one.
    fn refill(&self, reuse: &mut Vec<Box<Envelope>>) {
        let mut bins = self.bins();
        if let Some(full) = bins.full.pop() {
            let empty = std::mem::replace(reuse, full);
            bins.empty.push(empty);
        }
    }
}

/// An attribute to draw: its name, its values with cumulative weights, the weights' total, and
/// a seed from the name, so that attributes are drawn independently.
type Attribute = (Arc<str>, Vec<(Arc<str>, u64)>, u64, u64);

impl Origin for Lane {
    fn finish(&self, env: Box<Envelope>, _outcome: &Outcome) {
        // The engine hands a recycling origin its requests through `recycle`.
        drop(env);
    }

    fn hand_back(&self) -> HandBack {
        HandBack::Recycle
    }

    fn recycle(&self, ended: &mut Vec<Box<Envelope>>) {
        let mut bins = self.bins();
        if bins.full.len() >= self.capacity {
            // A full bin frees them: only when far more are in flight than it holds.
            ended.clear();
            return;
        }
        let empty = bins.empty.pop().unwrap_or_else(|| Vec::with_capacity(BATCH));
        bins.full.push(std::mem::replace(ended, empty));
    }
}

impl Generator {
    /// A generator sending from `lanes` threads (at least one).
    pub fn new(source: &SourcePlan, lanes: usize) -> Self {
        let SourcePlan::Generator { requests, rate, payload_bytes, cpu, attributes, .. } = source else {
            panic!("Generator::new takes a generator source");
        };
        let attributes = attributes
            .iter()
            .map(|(name, values)| {
                let mut total = 0;
                let values = values
                    .iter()
                    .map(|(v, w)| {
                        total += u64::from(*w);
                        (Arc::from(v.as_str()), total)
                    })
                    .collect();
                let seed = name.bytes().fold(0, |h, b| splitmix64(h ^ u64::from(b)));
                (Arc::from(name.as_str()), values, total, seed)
            })
            .collect();
        Generator {
            schedule: Schedule::new(*requests, *rate),
            payload_bytes: *payload_bytes,
            cpu: *cpu,
            attributes,
            lanes: (0..lanes.max(1))
                .map(|_| Arc::new(Lane::new((RECYCLE_BATCHES / lanes.max(1)).max(BATCH))))
                .collect(),
            finished: Doorbell::default(),
        }
    }

    /// Sends every request (or until `stop`) from the calling thread.
    pub fn send_from_own_thread(&self, mut submitter: Submitter<'_>, stop: &AtomicBool) {
        if let Some(cpu) = self.cpu {
            core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
        }
        let admission = if self.schedule.rate() == Rate::Max { Admission::WaitForRoom } else { Admission::Policy };
        let mut batch = Vec::with_capacity(BATCH);
        let mut reuse = Vec::with_capacity(BATCH);
        self.begin();
        while !stop.load(Ordering::Relaxed) && submitter.admitting() {
            match self.schedule.claim(now_ns(), BATCH as u64) {
                Claim::Ids(ids) => {
                    let n = ids.end - ids.start;
                    self.make_batch(&self.lanes[0], &mut batch, &mut reuse, ids);
                    submitter.submit_batch(&mut batch, admission);
                    self.schedule.submitted(n);
                }
                // Nothing rings `finished` while the generator has a thread of its own, and a
                // signal handler cannot ring it: the wait is cut into slices, each ending with
                // a look at `stop`, so that a slow rate (one request in 100 s, or never) does
                // not hold up shutdown.
                Claim::NotBefore(due) => {
                    self.finished.wait_until(due.min(now_ns().saturating_add(STOP_LOOK_NS)));
                }
                Claim::Nothing | Claim::Over => break,
            }
        }
    }

    /// Starts the schedule: the first request is due now.
    pub fn begin(&self) {
        self.schedule.begin(now_ns());
    }

    /// The origins requests are admitted as: lane `i` is origin `i`.
    pub fn origins(&self) -> Vec<Arc<dyn Origin>> {
        self.lanes.iter().map(|lane| lane.clone() as Arc<dyn Origin>).collect()
    }

    /// A poller that sends this generator's requests from a worker through lane `lane` (see
    /// [`GeneratorPoller`]); it must be admitted as origin `lane`.
    pub fn poller(self: &Arc<Self>, lane: usize) -> GeneratorPoller {
        GeneratorPoller {
            lane: self.lanes[lane].clone(),
            generator: self.clone(),
            doorbell: Arc::new(Doorbell::default()),
            batch: Vec::with_capacity(BATCH),
            reuse: Vec::with_capacity(BATCH),
        }
    }

    /// Stops further sending and returns once every request already claimed is submitted
    /// (by the workers that claimed them), so that none meets an engine shutting down.
    pub fn close(&self) {
        let claimed = self.schedule.close();
        while self.schedule.sent() < claimed {
            self.finished.wait_until(now_ns() + 100_000);
        }
    }

    /// Fills `batch` with the requests of `ids`, each meant to start when it is due (at
    /// `"rate": "max"`, when it is admitted).
    fn make_batch(
        &self,
        lane: &Lane,
        batch: &mut Vec<Box<Envelope>>,
        reuse: &mut Vec<Box<Envelope>>,
        ids: std::ops::Range<u64>,
    ) {
        for id in ids {
            let intended_ns = self.schedule.due(id).unwrap_or(0);
            batch.push(self.make(lane, reuse, id, intended_ns));
        }
    }

    /// Request `id`, meant to start at `intended_ns`, reusing a finished one when there is one
    /// (`reuse` holds the batch of them being drawn from).
    fn make(&self, lane: &Lane, reuse: &mut Vec<Box<Envelope>>, id: u64, intended_ns: u64) -> Box<Envelope> {
        if reuse.is_empty() {
            lane.refill(reuse);
        }
        let mut env = reuse.pop().unwrap_or_else(|| Envelope::new(Request::default()));
        env.req.reset(id);
        if env.req.payload.len() != self.payload_bytes {
            env.req.payload.resize(self.payload_bytes, 0xa5);
        }
        self.set_attributes(&mut env.req);
        env.intended_ns = intended_ns;
        env
    }

    /// Sets the configured attributes on `req`, drawn by weight from a hash of its id.
    #[inline]
    pub fn set_attributes(&self, req: &mut Request) {
        if self.attributes.is_empty() {
            return;
        }
        for (name, values, total, seed) in &self.attributes {
            let draw = splitmix64(req.id ^ seed) % total;
            let value = &values.iter().find(|(_, bound)| draw < *bound).expect("draw is below the total").0;
            req.attrs.set(name.clone(), value.clone());
        }
    }
}

/// Sends a generator's requests from a worker of the entry stage's pool: each turn claims what
/// is due (at `"rate": "max"`, as much as the entry queue has room for, so that a worker never
/// waits on its own queue) and admits it, to be run on this worker or a sibling. Idle, it waits
/// for the next due time in [`Doorbell::wait_until`], which the pool's producers ring.
pub struct GeneratorPoller {
    generator: Arc<Generator>,
    lane: Arc<Lane>,
    doorbell: Arc<Doorbell>,
    batch: Vec<Box<Envelope>>,
    reuse: Vec<Box<Envelope>>,
}

impl Poller for GeneratorPoller {
    fn turn(&mut self, timeout: Option<Duration>, admit: &mut Admit<'_>) -> bool {
        let generator = &*self.generator;
        let mut now = now_ns();
        let give_up = timeout.map_or(u64::MAX, |t| now.saturating_add(t.as_nanos() as u64));
        loop {
            let most = match generator.schedule.rate() {
                Rate::Max => admit.room().min(BATCH),
                Rate::PerSecond(_) => BATCH,
            };
            let next_due = match generator.schedule.claim(now, most as u64) {
                Claim::Ids(ids) => {
                    let n = ids.end - ids.start;
                    generator.make_batch(&self.lane, &mut self.batch, &mut self.reuse, ids);
                    admit.submit_here(&mut self.batch);
                    if generator.schedule.submitted(n) {
                        generator.finished.ring();
                    }
                    return true;
                }
                // No room: the pool has queued work to do first.
                Claim::Nothing => return false,
                Claim::NotBefore(due) => due,
                Claim::Over => u64::MAX,
            };
            let until = next_due.min(give_up);
            if until <= now || self.doorbell.wait_until(until) {
                return false;
            }
            now = now_ns();
            if now >= give_up {
                return false;
            }
        }
    }

    fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let doorbell = self.doorbell.clone();
        Arc::new(move || doorbell.ring())
    }

    fn keep_spinning(&self, idle: Duration) -> bool {
        // A turn is a look at an atomic: spin as an idle worker without a poller does, and
        // for as long as the next request is due within a spin.
        idle < SPIN || self.generator.schedule.due_within(now_ns(), SPIN_NS)
    }
}

/// The generator as a [`Source`]: on a thread of its own, or polled in the entry pool's workers.
pub struct GeneratorSource {
    generator: Option<Arc<Generator>>,
    /// Tells the generator's own thread to stop sending.
    stop: Arc<AtomicBool>,
    in_workers: bool,
    pool: usize,
}

impl GeneratorSource {
    /// A generator source: it reads what to send from the pipeline's `source` when opened.
    pub fn new() -> Self {
        GeneratorSource { generator: None, stop: Arc::new(AtomicBool::new(false)), in_workers: false, pool: 0 }
    }
}

impl Default for GeneratorSource {
    fn default() -> Self {
        GeneratorSource::new()
    }
}

impl Source for GeneratorSource {
    fn open(&mut self, plan: &Plan) -> Result<Opened, SourceError> {
        let SourcePlan::Generator { placement, .. } = plan.source else {
            return Err(SourceError::new("the generator runs a pipeline whose source is `generator`"));
        };
        self.in_workers = placement == SourcePlacement::Workers;
        self.pool = plan.stages[plan.source.entry()].pool;
        // A lane per sending thread: every worker of the entry stage's pool, or the one thread.
        let lanes = if self.in_workers { plan.pools[self.pool].threads.len() } else { 1 };
        let generator = Arc::new(Generator::new(&plan.source, lanes));
        let origins = generator.origins();
        let runs_on = if self.in_workers {
            RunsOn::Workers((0..lanes).map(|lane| Box::new(generator.poller(lane)) as Box<dyn Poller>).collect())
        } else {
            let (sender, stop) = (generator.clone(), self.stop.clone());
            let body: ThreadBody = Box::new(move |submitter| sender.send_from_own_thread(submitter, &stop));
            RunsOn::Thread { name: "seda-generator", cpu: generator.cpu, body }
        };
        self.generator = Some(generator);
        Ok(Opened { origins, runs_on })
    }

    fn started(&mut self, engine: &Engine) {
        // Its own thread begins the schedule itself; the workers are woken to begin sending.
        if let (true, Some(generator)) = (self.in_workers, &self.generator) {
            generator.begin();
            engine.wake_pool(self.pool);
        }
    }

    fn finished(&self) -> bool {
        self.generator.as_ref().is_some_and(|g| g.schedule.all_submitted())
    }

    fn stop(&mut self, _drain_timeout: Duration) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(generator) = &self.generator {
            generator.close();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(ids: std::ops::Range<u64>) -> Vec<Box<Envelope>> {
        ids.map(|id| {
            let mut env = Envelope::new(Request::default());
            env.req.id = id;
            env
        })
        .collect()
    }

    fn ids(envs: &[Box<Envelope>]) -> Vec<u64> {
        envs.iter().map(|e| e.req.id).collect()
    }

    #[test]
    fn a_lane_reuses_the_batch_that_ended_last_first() {
        let lane = Lane::new(4);
        for first in [0, 10, 20] {
            let mut ended = batch(first..first + 3);
            lane.recycle(&mut ended);
            assert!(ended.is_empty(), "the lane takes the whole batch");
        }
        let mut reuse = Vec::new();
        for expected in [20, 10, 0] {
            lane.refill(&mut reuse);
            assert_eq!(ids(&reuse), [expected, expected + 1, expected + 2]);
            reuse.clear();
        }
        lane.refill(&mut reuse);
        assert!(reuse.is_empty(), "nothing left to reuse");
    }

    #[test]
    fn a_full_lane_frees_what_it_cannot_keep() {
        let lane = Lane::new(1);
        let mut ended = batch(0..2);
        lane.recycle(&mut ended);
        let mut more = batch(5..7);
        lane.recycle(&mut more);
        assert!(more.is_empty(), "freed, not handed back");
        let mut reuse = Vec::new();
        lane.refill(&mut reuse);
        assert_eq!(ids(&reuse), [0, 1], "the batch kept is the first");
    }
}
