//! Timers: a thread with a min-heap of deadlines. Workers hand it requests through a bounded
//! channel (`io_capacity`); when a timer fires, the request goes on to its next stage's queue,
//! or ends as timed out if its own deadline came first.

use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::time::Duration;

use crate::clock::now_ns;
use crate::config::StageId;
use crate::engine::{Envelope, Outcome};

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

pub(crate) fn timer_thread(mut ctx: crate::engine::Ctx, rx: flume::Receiver<TimerMsg>) {
    let mut heap: BinaryHeap<Pending> = BinaryHeap::new();
    let mut seq = 0u64;
    let interval = ctx.shared.plan.metrics_interval.as_nanos() as u64;
    loop {
        let now = now_ns();
        ctx.roll(now);
        let aborting = ctx.shared.aborting();
        while heap.peek().is_some_and(|p| p.fire_ns <= now || aborting) {
            let TimerEntry { from, started_ns, next, env, .. } = heap.pop().unwrap().entry;
            ctx.rec.io_wait(from, now.saturating_sub(started_ns));
            if aborting || now >= env.deadline_ns {
                ctx.finish(env, Outcome::TimedOut { stage: next }, now);
            } else {
                ctx.send(env, next);
            }
        }
        ctx.flush();
        if ctx.rec.is_dirty() && now - ctx.rec.published_ns >= interval {
            ctx.publish(now);
        }
        if heap.is_empty() && ctx.shared.stopped() {
            break;
        }
        // Sleeps until the next timer is due or a message comes, with no polling, so that the
        // thread stays off the workers' CPUs while nothing is due.
        let received = match heap.peek() {
            Some(p) => match rx.recv_timeout(Duration::from_nanos(p.fire_ns.saturating_sub(now))) {
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
                seq += 1;
                heap.push(Pending { fire_ns: entry.fire_ns, seq, entry });
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
