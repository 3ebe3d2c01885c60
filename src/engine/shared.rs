//! What every engine thread shares: the plan, the queues, the pools' sleep and wake-up, the
//! ledger, the channels to the completion layer, and the engine's state (running, draining,
//! aborting, stopped) with the drain's deadline.

use std::sync::atomic::{AtomicU64, AtomicU8, AtomicUsize, Ordering};
use std::sync::Arc;

use crossbeam_deque::Stealer;

use super::admission::Gate;
use super::pool_size::PoolSize;
use super::queue::{Batch, StageQueue};
use super::{HandBack, Ledger, Origin, Sleep};
use crate::clock::now_ns;
use crate::config::{Plan, StageId};
use crate::io::{FileMsg, OpMsg, TimerMsg};
use crate::metrics::{collector, IntervalGrid};

pub(super) const RUNNING: u8 = 0;
pub(super) const DRAINING: u8 = 1;
pub(super) const ABORTING: u8 = 2;
pub(super) const STOPPED: u8 = 3;

/// What every engine thread shares.
pub(crate) struct Shared {
    pub plan: Plan,
    pub queues: Vec<StageQueue>,
    /// By stage: its admission controller, if it has one.
    pub gates: Vec<Option<Gate>>,
    pub pools: Vec<PoolShared>,
    pub ledger: Ledger,
    pub origins: Vec<Arc<dyn Origin>>,
    /// `origins[i].hand_back()`, read once.
    pub hand_backs: Vec<HandBack>,
    pub timers: flume::Sender<TimerMsg>,
    pub files: flume::Sender<FileMsg>,
    /// To the thread that the stages' own operations complete to (`crate::io::ops`).
    pub ops: flume::Sender<OpMsg>,
    /// Those operations in flight, at most `io_capacity`.
    pub ops_in_flight: AtomicUsize,
    /// Timers started and not yet fired, wherever they wait (`io_capacity` at most).
    pub timers_in_flight: AtomicUsize,
    /// Those operations started, to tell apart two with the same deadline.
    pub ops_started: AtomicU64,
    /// Emptied latency counts for recorders to reuse.
    pub reusable_counts: crate::metrics::ReusableCounts,
    /// The metrics merged so far, for snapshots.
    pub live: Arc<collector::Live>,
    /// The metrics intervals, from the engine's start: every thread that records rolls its
    /// recorder over at their boundaries, and the collector files by them.
    pub metrics_grid: IntervalGrid,
    pub(super) state: AtomicU8,
    /// When the drain gives up (clock ns): `drain_timeout` after admission stopped, whoever
    /// stopped it first (a source told to stop, or shutdown); `u64::MAX` until then.
    pub(super) drain_deadline_ns: AtomicU64,
}

pub(crate) struct PoolShared {
    pub stages: Vec<StageId>,
    pub stealers: Vec<Stealer<Batch>>,
    pub sleep: Sleep,
    /// With `max_threads`: how many of its threads serve, and what its controller reads.
    pub size: Option<PoolSize>,
}

impl PoolShared {
    /// How many of its threads serve now.
    pub fn serving(&self) -> usize {
        self.size.as_ref().map_or(self.stealers.len(), PoolSize::serving)
    }
}

impl Shared {
    /// Wakes a worker of the pool serving `stage`, after its queue was made non-empty.
    #[inline]
    pub fn wake(&self, stage: StageId) {
        self.pools[self.plan.stages[stage].pool].sleep.wake_one();
    }

    #[inline]
    pub fn aborting(&self) -> bool {
        self.state.load(Ordering::Acquire) >= ABORTING
    }

    #[inline]
    pub fn stopped(&self) -> bool {
        self.state.load(Ordering::Acquire) == STOPPED
    }

    pub(crate) fn admitting(&self) -> bool {
        self.state.load(Ordering::Acquire) == RUNNING
    }

    /// Starts the drain timeout's clock, if it is not running already.
    pub(super) fn start_drain_clock(&self) {
        let deadline = now_ns().saturating_add(self.plan.drain_timeout.as_nanos() as u64);
        let _ = self.drain_deadline_ns.compare_exchange(u64::MAX, deadline, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Step 1 of shutdown: stops admitting, and starts the drain's clock if a source's stop
    /// has not already.
    pub(super) fn start_draining(&self) {
        self.start_drain_clock();
        if self.state.load(Ordering::Acquire) == RUNNING {
            self.set_state(DRAINING);
        }
    }

    /// When the drain gives up (clock ns); `u64::MAX` while the engine admits.
    pub(crate) fn drain_deadline(&self) -> u64 {
        self.drain_deadline_ns.load(Ordering::Acquire)
    }

    pub(super) fn set_state(&self, state: u8) {
        self.state.store(state, Ordering::Release);
        // A full channel means the timer thread is busy and will look at the state anyway.
        let _ = self.timers.try_send(TimerMsg::Wake);
        let _ = self.ops.send(OpMsg::Wake);
        for pool in &self.pools {
            pool.sleep.wake_all();
            if let Some(size) = &pool.size {
                size.resume_all();
            }
        }
    }
}
