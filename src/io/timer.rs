//! Timers: a min-heap of deadlines ([`TimerHeap`]); when a timer fires, the request goes on to
//! its next stage's queue, or ends as timed out if its own deadline came first.
//!
//! Where the heap lives: a worker whose poller waits to the microsecond (an io_uring reactor in
//! the worker: its wait is a ring timeout) keeps the timers its stages ask for itself and fires
//! them in its own turns, so the request never leaves its thread; every other worker hands them
//! to the timer thread here through a channel. Either way at most `io_capacity` are in flight
//! at once ([`start`]): past that a request asking for one is rejected (`IoFull`).

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::sync::atomic::Ordering as AtomicOrdering;
use std::time::Duration;

use crate::clock::now_ns;
use crate::config::StageId;
use crate::engine::{Ctx, Envelope, Outcome, RejectReason};

/// What the timer thread is sent.
pub(crate) enum TimerMsg {
    Start(TimerEntry),
    /// The engine's state changed: look at it (shutdown fires or ends every timer).
    Wake,
}

pub(crate) struct TimerEntry {
    pub fire_ns: u64,
    /// The stage that asked for the wait, and when: its I/O wait is recorded when it fires.
    pub from: StageId,
    pub started_ns: u64,
    /// Where the request continues.
    pub next: StageId,
    pub env: Box<Envelope>,
}

impl TimerEntry {
    /// A wait of `wait` that `from` asked for at `now`, continuing at `next`: due then, or at
    /// the request's own deadline if that comes first.
    pub fn new(env: Box<Envelope>, wait: Duration, from: StageId, next: StageId, now: u64) -> TimerEntry {
        let fire_ns = now.saturating_add(wait.as_nanos() as u64).min(env.deadline_ns);
        TimerEntry { fire_ns, from, started_ns: now, next, env }
    }
}

/// Heap order: the earliest deadline first, then first come.
struct Pending {
    fire_ns: u64,
    seq: u64,
    entry: TimerEntry,
}

impl PartialEq for Pending {
    fn eq(&self, other: &Self) -> bool {
        (self.fire_ns, self.seq) == (other.fire_ns, other.seq)
    }
}
impl Eq for Pending {}
impl PartialOrd for Pending {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Pending {
    fn cmp(&self, other: &Self) -> Ordering {
        (other.fire_ns, other.seq).cmp(&(self.fire_ns, self.seq))
    }
}

/// Timers waiting to fire: the timer thread's, or a worker's own.
#[derive(Default)]
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Pending>,
    /// Timers pushed so far, to fire those with the same deadline first come, first fired.
    seq: u64,
}

impl TimerHeap {
    pub fn push(&mut self, entry: TimerEntry) {
        self.seq += 1;
        self.heap.push(Pending { fire_ns: entry.fire_ns, seq: self.seq, entry });
    }

    pub fn is_empty(&self) -> bool {
        self.heap.is_empty()
    }

    /// When the earliest timer is due (clock ns).
    pub fn next_due(&self) -> Option<u64> {
        self.heap.peek().map(|p| p.fire_ns)
    }

    /// Fires every timer due by `now`, and every one when the engine aborts (its request ends
    /// as timed out). Returns whether any fired; what they sent on waits in `ctx`'s outbox.
    pub fn fire_due(&mut self, ctx: &mut Ctx, now: u64) -> bool {
        let aborting = ctx.shared.aborting();
        let mut fired = false;
        while self.heap.peek().is_some_and(|p| p.fire_ns <= now || aborting) {
            let TimerEntry { from, started_ns, next, env, .. } = self.heap.pop().unwrap().entry;
            ctx.shared.timers_in_flight.fetch_sub(1, AtomicOrdering::AcqRel);
            ctx.rec.io_wait(from, now.saturating_sub(started_ns));
            if aborting || now >= env.deadline_ns {
                ctx.finish(env, Outcome::TimedOut { stage: next }, now);
            } else {
                ctx.send(env, next);
            }
            fired = true;
        }
        fired
    }
}

/// Starts the timer `entry`: into `own` (a worker's heap) when given, else to the timer
/// thread; or, with `io_capacity` timers in flight already, ends its request as rejected.
pub(crate) fn start(ctx: &mut Ctx, entry: TimerEntry, own: Option<&mut TimerHeap>, now: u64) {
    let room = ctx.shared.timers_in_flight.fetch_add(1, AtomicOrdering::AcqRel) < ctx.shared.plan.io_capacity;
    let refused = match own {
        _ if !room => Some(entry),
        Some(own) => {
            own.push(entry);
            None
        }
        None => match ctx.shared.timers.try_send(TimerMsg::Start(entry)) {
            Ok(()) => None,
            // A full channel gives back the start it was sent.
            Err(e) => match e.into_inner() {
                TimerMsg::Start(entry) => Some(entry),
                TimerMsg::Wake => None,
            },
        },
    };
    if let Some(entry) = refused {
        ctx.shared.timers_in_flight.fetch_sub(1, AtomicOrdering::AcqRel);
        let stage = entry.from;
        ctx.finish(entry.env, Outcome::Rejected(RejectReason::IoFull { stage }), now);
    }
}

pub(crate) fn timer_thread(mut ctx: Ctx, rx: flume::Receiver<TimerMsg>) {
    let mut heap = TimerHeap::default();
    let interval = ctx.shared.plan.metrics_interval.as_nanos() as u64;
    loop {
        let now = now_ns();
        ctx.roll(now);
        heap.fire_due(&mut ctx, now);
        ctx.flush();
        if ctx.rec.is_dirty() && now - ctx.rec.published_ns >= interval {
            ctx.publish(now);
        }
        if heap.is_empty() && ctx.shared.stopped() {
            break;
        }
        // Sleeps until the next timer is due or a message comes, with no polling, so that the
        // thread stays off the workers' CPUs while nothing is due.
        let received = match heap.next_due() {
            Some(due) => match rx.recv_timeout(Duration::from_nanos(due.saturating_sub(now))) {
                Ok(msg) => Some(msg),
                Err(flume::RecvTimeoutError::Timeout) => None,
                Err(flume::RecvTimeoutError::Disconnected) => break,
            },
            None => match rx.recv() {
                Ok(msg) => Some(msg),
                Err(flume::RecvError::Disconnected) => break,
            },
        };
        let mut push = |msg: TimerMsg| {
            if let TimerMsg::Start(entry) = msg {
                heap.push(entry);
            }
        };
        if let Some(msg) = received {
            push(msg);
            while let Ok(msg) = rx.try_recv() {
                push(msg);
            }
        }
    }
}
