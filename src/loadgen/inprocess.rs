//! Driving a pipeline in-process: requests enter its entry stage through the engine's
//! submitter, with no sockets, and come back through an [`Origin`] that stamps their end.
//!
//! A "connection" here is a slot for a request in flight: `--connections × --pipeline` slots
//! bound how many are in the pipeline at once, as they do over HTTP. In an open loop, requests
//! due while every slot is taken wait in the backlog (and count their wait as send lag).
//! `--timeout` becomes the pipeline's deadline (or shortens it), so the engine ends a request
//! that takes too long as timed out, and every slot comes back.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use crossbeam_queue::ArrayQueue;
use seda_stages::Request;

use super::correction::Timing;
use super::mix::Mix;
use super::schedule::Schedule;
use super::tally::{ErrorKind, ThreadTally};
use crate::clock::now_ns;
use crate::config::Plan;
use crate::engine::{Admission, Engine, EngineError, Envelope, Origin, Outcome};
use crate::metrics::Summary;
use crate::source::Generator;

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
}

pub struct InProcessJob<'a> {
    pub schedule: &'a Schedule,
    pub open: bool,
    pub plan: Plan,
    pub slots: usize,
    pub backlog: usize,
    pub timeout: Duration,
    pub mix: Option<&'a Mix>,
    pub cpu: Option<usize>,
    pub start_ns: u64,
    pub tally: ThreadTally,
}

impl InProcessJob<'_> {
    /// Runs the schedule against the pipeline; returns the engine's own summary.
    pub fn run(self) -> Result<Summary, EngineError> {
        let InProcessJob {
            schedule,
            open,
            mut plan,
            slots,
            backlog: backlog_cap,
            timeout,
            mix,
            cpu,
            start_ns,
            mut tally,
        } = self;
        if let Some(cpu) = cpu {
            core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
        }
        plan.deadline = Some(plan.deadline.map_or(timeout, |d| d.min(timeout)));
        let attributes = Generator::new(&plan.source);
        let payload_bytes = match &plan.source {
            crate::config::SourcePlan::Generator { payload_bytes, .. } => *payload_bytes,
        };
        let entry = plan.source.entry();
        let give_up_after = timeout + plan.drain_timeout;
        let returns = Arc::new(Returns { ended: ArrayQueue::new(slots) });
        let engine = Engine::start(plan, vec![returns.clone() as Arc<dyn Origin>])?;
        let mut submitter = engine.submitter(0, entry);
        // Shared strings for the mix's attributes, so setting them does not allocate.
        let kinds: Vec<(Arc<str>, Arc<str>, usize)> = mix.map_or(Vec::new(), |m| {
            m.kinds.iter().map(|k| (Arc::from(k.method.as_str()), Arc::from(k.path.as_str()), k.body_bytes)).collect()
        });
        let (method, path): (Arc<str>, Arc<str>) = (Arc::from("method"), Arc::from("path"));

        let mut table = vec![Slot::default(); slots];
        let mut free: Vec<usize> = (0..slots).rev().collect();
        let mut spare: Vec<Box<Envelope>> = Vec::new();
        let mut batch: Vec<Box<Envelope>> = Vec::with_capacity(64);
        let mut arrivals = schedule.arrivals(0, 1).peekable();
        // (intended, dispatched, phase) of each request waiting for a free slot.
        let mut backlog: VecDeque<(u64, u64, usize)> = VecDeque::with_capacity(backlog_cap.min(1 << 16));
        let end_ns = start_ns + schedule.length_ns();
        let give_up_ns = end_ns + give_up_after.as_nanos() as u64;
        let mut id = 0u64;
        let mut idle = 0u32;
        loop {
            let now = now_ns();
            tally.tick(now);
            let running = now < end_ns;
            let started = now >= start_ns;
            let mut progressed = false;

            while let Some((env, done_ns, ending)) = returns.ended.pop() {
                let slot = env.tag as usize;
                let s = table[slot];
                let timing =
                    Timing { intended_ns: s.intended_ns, dispatched_ns: s.dispatched_ns, sent_ns: s.sent_ns, done_ns };
                match ending {
                    Ending::Status(status) => tally.phase(s.phase).response(&timing, status),
                    Ending::Error(kind) => tally.phase(s.phase).failed(&timing, kind),
                }
                free.push(slot);
                spare.push(env);
                progressed = true;
            }

            if open {
                while let Some(&(due, phase)) = arrivals.peek() {
                    if start_ns + due > now {
                        break;
                    }
                    arrivals.next();
                    if backlog.len() < backlog_cap {
                        backlog.push_back((start_ns + due, now, phase));
                    } else {
                        tally.phase(phase).error(ErrorKind::Unsent);
                    }
                }
            }

            let closed_phase = schedule.phase_at(now.saturating_sub(start_ns));
            while let Some(slot) = free.last().copied() {
                let (intended_ns, dispatched_ns, phase) = match (open, backlog.pop_front()) {
                    (true, Some(due)) => due,
                    (false, _) if started && running => (0, 0, closed_phase),
                    _ => break,
                };
                free.pop();
                let mut env = spare.pop().unwrap_or_else(|| Envelope::new(Request::default()));
                env.req.reset(id);
                let body = match mix {
                    Some(m) => {
                        let (m_method, m_path, body) = &kinds[m.pick(id)];
                        env.req.attrs.set(method.clone(), m_method.clone());
                        env.req.attrs.set(path.clone(), m_path.clone());
                        *body
                    }
                    None => payload_bytes,
                };
                attributes.set_attributes(&mut env.req);
                if env.req.payload.len() != body {
                    env.req.payload.resize(body, 0xa5);
                }
                env.tag = slot as u64;
                env.intended_ns = intended_ns;
                table[slot] = Slot { intended_ns, dispatched_ns, sent_ns: 0, phase };
                batch.push(env);
                id += 1;
            }
            if !batch.is_empty() {
                let sent_ns = now_ns();
                for env in batch.iter_mut() {
                    let slot = &mut table[env.tag as usize];
                    slot.sent_ns = sent_ns;
                    if slot.intended_ns == 0 {
                        slot.intended_ns = sent_ns;
                        slot.dispatched_ns = sent_ns;
                        env.intended_ns = sent_ns;
                    }
                }
                submitter.submit_batch(&mut batch, Admission::Policy);
                progressed = true;
            }

            let exhausted = !open || arrivals.peek().is_none();
            let in_flight = slots - free.len();
            if !running && exhausted && backlog.is_empty() && in_flight == 0 {
                break;
            }
            if now >= give_up_ns {
                // The deadline ends every request; only a stuck stage keeps one this long.
                for slot in table.iter().enumerate().filter(|(i, _)| !free.contains(i)).map(|(_, s)| *s) {
                    tally.phase(slot.phase).failed(
                        &Timing {
                            intended_ns: slot.intended_ns,
                            dispatched_ns: slot.dispatched_ns,
                            sent_ns: slot.sent_ns,
                            done_ns: 0,
                        },
                        ErrorKind::Timeout,
                    );
                }
                for (_, _, phase) in backlog.drain(..) {
                    tally.phase(phase).error(ErrorKind::Unsent);
                }
                break;
            }

            if progressed {
                idle = 0;
            } else {
                idle += 1;
                // Spin while the next send is near; yield the CPU while it is not.
                let next_due = arrivals.peek().map_or(u64::MAX, |&(due, _)| start_ns + due);
                if idle > 64 && next_due.saturating_sub(now_ns()) > 50_000 {
                    std::thread::yield_now();
                } else {
                    std::hint::spin_loop();
                }
            }
        }
        tally.finish();
        drop(submitter);
        Ok(engine.shutdown())
    }
}
