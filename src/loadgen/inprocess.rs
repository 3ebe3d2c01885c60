//! Driving a pipeline in-process: requests enter its entry stage through the engine's
//! submitter, with no sockets, and come back through an [`Origin`] that stamps their end.
//!
//! A "connection" here is a slot for a request in flight: `--connections × --pipeline` slots
//! bound how many are in the pipeline at once, as they do over HTTP. In an open loop, requests
//! due while every slot is taken wait in the backlog (and count their wait as send lag).
//! `--timeout` becomes the pipeline's deadline (or shortens it), so the engine ends a request
//! that takes too long as timed out, and every slot comes back.

use std::collections::VecDeque;
use std::iter::Peekable;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use seda_stages::Request;

use super::correction::Timing;
use super::mix::Mix;
use super::options::Checks;
use super::run_end::RunEnd;
use super::schedule::{Arrivals, Schedule};
use super::tally::{ErrorKind, ThreadTally};
use crate::clock::now_ns;
use crate::config::{Plan, SourcePlan};
use crate::engine::{Admission, Envelope, Origin, Outcome, Submitter};
use crate::metrics::Recording;
use crate::metrics::Summary;
use crate::run::{Listening, RunError, Runner};
use crate::source::{Generator, Opened, RunsOn, Source, SourceError, ThreadBody};

/// How a request came back from the pipeline.
enum Ending {
    Status(u16),
    Error(ErrorKind),
}

/// The origin the engine hands ended requests back to. Its queue holds one entry per slot, so
/// it cannot overflow: a request only ends after it took a slot, and the slot is only freed
/// once its entry was taken off.
struct Returns {
    ended: ArrayQueue<(Box<Envelope>, u64, Ending)>,
}

impl Origin for Returns {
    fn finish(&self, env: Box<Envelope>, outcome: &Outcome) {
        let done_ns = now_ns();
        let ending = match outcome {
            Outcome::Completed => Ending::Status(env.req.response.status),
            Outcome::Rejected(_) => Ending::Error(ErrorKind::Rejected),
            Outcome::Failed { .. } => Ending::Error(ErrorKind::Failed),
            Outcome::TimedOut { .. } => Ending::Error(ErrorKind::Timeout),
        };
        let pushed = self.ended.push((env, done_ns, ending));
        debug_assert!(pushed.is_ok(), "one entry per slot");
    }
}

#[derive(Clone, Copy, Default)]
struct Slot {
    intended_ns: u64,
    dispatched_ns: u64,
    sent_ns: u64,
    phase: usize,
    kind: u32,
}

/// A load run against a pipeline in-process: a [`Source`] of the run layer whose thread sends
/// the schedule's requests and counts their endings.
pub struct InProcessJob {
    pub schedule: Schedule,
    pub open: bool,
    pub slots: usize,
    pub backlog: usize,
    pub timeout: Duration,
    pub mix: Option<Mix>,
    /// What a response must be: here, its status (a pipeline's response has no body to
    /// search).
    pub checks: Checks,
    pub cpu: Option<usize>,
    pub start_ns: u64,
    pub run_end: Arc<RunEnd>,
    pub tally: ThreadTally,
    /// Keep the engine's intervals, for a run record.
    pub record: bool,
}

/// Fills requests: the mix's kind (its method and path as attributes, its body as payload) or
/// the config's `payload_bytes`, and the config's attributes.
struct Requests<'a> {
    mix: Option<&'a Mix>,
    /// Per mix kind: method, path (shared strings, so setting them does not allocate), body.
    kinds: Vec<(Arc<str>, Arc<str>, Vec<u8>)>,
    names: (Arc<str>, Arc<str>),
    payload_bytes: usize,
    attributes: Generator,
}

impl Requests<'_> {
    /// The kind of request number `id`.
    fn kind(&self, id: u64) -> u32 {
        self.mix.map_or(0, |mix| mix.pick(id) as u32)
    }

    fn fill(&self, req: &mut Request, id: u64, kind: u32) {
        req.reset(id);
        match self.mix {
            Some(_) => {
                let (method, path, body) = &self.kinds[kind as usize];
                req.attrs.set(self.names.0.clone(), method.clone());
                req.attrs.set(self.names.1.clone(), path.clone());
                self.attributes.set_attributes(req);
                if req.payload != *body {
                    req.payload.clear();
                    req.payload.extend_from_slice(body);
                }
            }
            None => {
                self.attributes.set_attributes(req);
                if req.payload.len() != self.payload_bytes {
                    req.payload.resize(self.payload_bytes, 0xa5);
                }
            }
        }
    }
}

/// The state of a running [`InProcessJob`].
// Envelopes stay boxed: the engine moves them between threads by pointer.
#[allow(clippy::vec_box)]
struct Driver<'a> {
    schedule: &'a Schedule,
    open: bool,
    tally: ThreadTally,
    requests: Requests<'a>,
    arrivals: Peekable<Arrivals<'a>>,
    /// (intended, dispatched, phase, kind) of each request waiting for a free slot.
    backlog: VecDeque<(u64, u64, usize, u32)>,
    checks: Checks,
    /// Count each kind of request apart too.
    per_kind: bool,
    backlog_cap: usize,
    /// Per slot, the request in it; and the free slots.
    table: Vec<Slot>,
    free: Vec<usize>,
    /// Ended requests, for reuse.
    reusable: Vec<Box<Envelope>>,
    batch: Vec<Box<Envelope>>,
    next_id: u64,
    /// Number of the next request drawn from the mix.
    next_draw: u64,
    start_ns: u64,
}

impl InProcessJob {
    /// Runs the schedule against `plan`'s pipeline; returns the engine's own summary, and its
    /// recording when asked to record.
    pub fn run_against(self, mut plan: Plan) -> Result<(Summary, Option<Recording>), RunError> {
        // The load's timeout becomes the pipeline's deadline (or shortens it), so the engine
        // ends a request that takes too long as timed out, and its slot comes back.
        plan.deadline = Some(plan.deadline.map_or(self.timeout, |d| d.min(self.timeout)));
        let record = self.record;
        let source = InProcessSource { job: Some(self), done: Arc::new(AtomicBool::new(false)) };
        // The config's admin listener runs as under `seda run` (the run layer starts it), so
        // `seda top` watches the pipeline under load; its address is told as `seda run` tells it,
        // for a config that asks for port 0.
        let finished = Runner::new(plan)
            .source(source)
            .record(record)
            .on_listening(|at| {
                if let Listening::Admin(addr) = at {
                    eprintln!("admin listening on {addr}");
                }
            })
            .run_to_end()?;
        Ok((finished.summary, finished.recording))
    }
}

/// The job as the run layer drives it.
struct InProcessSource {
    job: Option<InProcessJob>,
    /// Set when the sending thread has sent its schedule and seen every request back.
    done: Arc<AtomicBool>,
}

impl Source for InProcessSource {
    fn open(&mut self, plan: &Plan) -> Result<Opened, SourceError> {
        let job = self.job.take().ok_or_else(|| SourceError::new("an in-process load job runs once"))?;
        let SourcePlan::Generator { payload_bytes, .. } = plan.source else {
            return Err(SourceError::new("an in-process load drives a pipeline whose source is `generator`"));
        };
        let attributes = Generator::new(&plan.source, 1);
        let give_up_after = (job.timeout + plan.drain_timeout).as_nanos() as u64;
        let returns = Arc::new(Returns { ended: ArrayQueue::new(job.slots) });
        let origins = vec![returns.clone() as Arc<dyn Origin>];
        let (cpu, done) = (job.cpu, self.done.clone());
        let body: ThreadBody = Box::new(move |mut submitter| {
            drive(job, payload_bytes, attributes, give_up_after, &returns, &mut submitter);
            done.store(true, Ordering::SeqCst);
        });
        Ok(Opened { origins, runs_on: RunsOn::Thread { name: "seda-load", cpu, body } })
    }

    fn finished(&self) -> bool {
        self.done.load(Ordering::SeqCst)
    }

    /// The sending thread ends by itself: at the schedule's end, or where the run was cut.
    fn stop(&mut self, _drain_timeout: Duration) {}
}

/// The sending thread: sends the schedule's requests into the pipeline and counts how each
/// ended, until every one is back (or the drain timeout is out).
fn drive(
    job: InProcessJob,
    payload_bytes: usize,
    attributes: Generator,
    give_up_after: u64,
    returns: &Returns,
    submitter: &mut Submitter<'_>,
) {
    let InProcessJob { schedule, open, slots, backlog, mix, checks, start_ns, run_end, tally, .. } = job;
    let per_kind = mix.as_ref().is_some_and(|m| m.per_kind);
    let requests = Requests {
        mix: mix.as_ref(),
        kinds: mix.as_ref().map_or(Vec::new(), |m| {
            let kinds = m.kinds.iter();
            kinds.map(|k| (Arc::from(k.method.as_str()), Arc::from(k.path.as_str()), k.body.clone())).collect()
        }),
        names: (Arc::from("method"), Arc::from("path")),
        payload_bytes,
        attributes,
    };
    let mut driver = Driver {
        schedule: &schedule,
        open,
        tally,
        requests,
        arrivals: schedule.arrivals(0, 1).peekable(),
        backlog: VecDeque::with_capacity(backlog.min(1 << 16)),
        backlog_cap: backlog,
        checks,
        per_kind,
        table: vec![Slot::default(); slots],
        free: (0..slots).rev().collect(),
        reusable: Vec::new(),
        batch: Vec::with_capacity(64),
        next_id: 0,
        next_draw: 0,
        start_ns,
    };
    let mut idle = 0u32;
    loop {
        let now = now_ns();
        driver.tally.tick(now);
        let end_ns = run_end.end_ns();
        let running = now < end_ns;
        let mut progressed = driver.take_returns(returns);
        if open {
            driver.take_due(now, end_ns);
        }
        if driver.fill_slots(now, running) {
            driver.submit(submitter);
            progressed = true;
        }
        if !running && driver.finished(now >= end_ns + give_up_after, end_ns) {
            break;
        }
        if progressed {
            idle = 0;
        } else {
            idle += 1;
            // Spin while the next send is near; yield the CPU while it is not.
            let next_due = driver.arrivals.peek().map_or(u64::MAX, |&(due, _)| start_ns + due);
            if idle > 64 && next_due.saturating_sub(now_ns()) > 50_000 {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }
    driver.tally.finish();
}

impl Driver<'_> {
    /// The kind of the next request due, drawn in the order of the schedule.
    fn next_kind(&mut self) -> u32 {
        let kind = self.requests.kind(self.next_draw);
        self.next_draw += 1;
        kind
    }

    /// Counts the requests the pipeline ended and frees their slots. True if there were any.
    fn take_returns(&mut self, returns: &Returns) -> bool {
        let mut any = false;
        while let Some((env, done_ns, ending)) = returns.ended.pop() {
            let slot = env.tag as usize;
            let s = self.table[slot];
            let timing =
                Timing { intended_ns: s.intended_ns, dispatched_ns: s.dispatched_ns, sent_ns: s.sent_ns, done_ns };
            let kind = self.per_kind.then_some(s.kind);
            match ending {
                Ending::Status(status) => {
                    let failed_check = self.checks.failed(status, true);
                    self.tally.phase(s.phase).and_kind(kind, |t| t.checked_response(&timing, status, failed_check))
                }
                Ending::Error(error) => self.tally.phase(s.phase).and_kind(kind, |t| t.failed(&timing, error)),
            }
            self.free.push(slot);
            self.reusable.push(env);
            any = true;
        }
        any
    }

    /// Whether a request of the schedule is due before `end_ns`.
    fn more_due(&mut self, end_ns: u64) -> bool {
        let start_ns = self.start_ns;
        self.arrivals.peek().is_some_and(|&(due, _)| start_ns + due < end_ns)
    }

    /// Open loop: every request now due joins the backlog, or is unsent if it is full.
    fn take_due(&mut self, now: u64, end_ns: u64) {
        while self.more_due(end_ns) {
            let &(due, phase) = self.arrivals.peek().expect("more are due");
            if self.start_ns + due > now {
                break;
            }
            self.arrivals.next();
            let kind = self.next_kind();
            if self.backlog.len() < self.backlog_cap {
                self.backlog.push_back((self.start_ns + due, now, phase, kind));
            } else {
                let kind = self.per_kind.then_some(kind);
                self.tally.phase(phase).and_kind(kind, |t| t.error(ErrorKind::Unsent));
            }
        }
    }

    /// Puts a request in every free slot that has one to take: from the backlog (open loop)
    /// or a new one (closed loop, while running). True if the batch has any.
    fn fill_slots(&mut self, now: u64, running: bool) -> bool {
        let closed_phase = (running && now >= self.start_ns).then(|| self.schedule.phase_at(now - self.start_ns));
        while let Some(&slot) = self.free.last() {
            let (intended_ns, dispatched_ns, phase, kind) = match (self.open, closed_phase) {
                (true, _) => match self.backlog.pop_front() {
                    Some(due) => due,
                    None => break,
                },
                (false, Some(phase)) => (0, 0, phase, self.next_kind()),
                (false, None) => break,
            };
            self.free.pop();
            let mut env = self.reusable.pop().unwrap_or_else(|| Envelope::new(Request::default()));
            self.requests.fill(&mut env.req, self.next_id, kind);
            self.next_id += 1;
            env.tag = slot as u64;
            env.intended_ns = intended_ns;
            self.table[slot] = Slot { intended_ns, dispatched_ns, sent_ns: 0, phase, kind };
            self.batch.push(env);
        }
        !self.batch.is_empty()
    }

    /// Hands the batch to the pipeline, stamping its requests as sent now (and, in a closed
    /// loop, as intended and dispatched now).
    fn submit(&mut self, submitter: &mut Submitter<'_>) {
        let sent_ns = now_ns();
        for env in self.batch.iter_mut() {
            let slot = &mut self.table[env.tag as usize];
            slot.sent_ns = sent_ns;
            if slot.intended_ns == 0 {
                slot.intended_ns = sent_ns;
                slot.dispatched_ns = sent_ns;
                env.intended_ns = sent_ns;
            }
        }
        submitter.submit_batch(&mut self.batch, Admission::Policy);
    }

    /// After the schedule's end: true once nothing is left to send or in flight, or when
    /// `out_of_time`, counting what is left (timed out if sent, unsent if not). The deadline
    /// ends every request, so only a stuck stage keeps one past the drain timeout.
    fn finished(&mut self, out_of_time: bool, end_ns: u64) -> bool {
        let exhausted = !self.open || !self.more_due(end_ns);
        let idle = self.backlog.is_empty() && self.free.len() == self.table.len();
        if exhausted && idle {
            return true;
        }
        if !out_of_time {
            return false;
        }
        let mut in_use = vec![true; self.table.len()];
        for &slot in &self.free {
            in_use[slot] = false;
        }
        for (slot, _) in self.table.iter().zip(in_use).filter(|(_, used)| *used) {
            let timing = Timing {
                intended_ns: slot.intended_ns,
                dispatched_ns: slot.dispatched_ns,
                sent_ns: slot.sent_ns,
                done_ns: 0,
            };
            let kind = self.per_kind.then_some(slot.kind);
            self.tally.phase(slot.phase).and_kind(kind, |t| t.failed(&timing, ErrorKind::Timeout));
        }
        for (_, _, phase, kind) in self.backlog.drain(..) {
            let kind = self.per_kind.then_some(kind);
            self.tally.phase(phase).and_kind(kind, |t| t.error(ErrorKind::Unsent));
        }
        true
    }
}
