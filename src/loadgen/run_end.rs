//! When a run ends: at the schedule's end, or earlier when the user stops it (Ctrl-C). Every
//! sending thread reads the end from here each turn, so a stop ends them all at the same
//! instant, and the results are those of the schedule cut there ([`Schedule::cut`]).
//!
//! [`Schedule::cut`]: super::schedule::Schedule::cut

use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::now_ns;

pub struct RunEnd {
    start_ns: u64,
    scheduled_ns: u64,
    /// Where the run was cut, in ns since the start; `u64::MAX` while it was not.
    cut_ns: AtomicU64,
}

impl RunEnd {
    pub fn new(start_ns: u64, scheduled_ns: u64) -> Self {
        RunEnd { start_ns, scheduled_ns, cut_ns: AtomicU64::new(u64::MAX) }
    }

    /// When sending ends (clock ns).
    pub fn end_ns(&self) -> u64 {
        self.start_ns + self.scheduled_ns.min(self.cut_ns.load(Ordering::Relaxed))
    }

    /// Ends the run now: no request due from now on is sent.
    pub fn stop_now(&self) {
        let at = now_ns().saturating_sub(self.start_ns).min(self.scheduled_ns);
        self.cut_ns.fetch_min(at, Ordering::Relaxed);
    }

    /// Where the run was cut short, in ns since its start, if it was.
    pub fn cut(&self) -> Option<u64> {
        let cut = self.cut_ns.load(Ordering::Relaxed);
        (cut < self.scheduled_ns).then_some(cut)
    }
}
