//! A pool that grows and shrinks: SEDA's thread-pool controller, for stages that block.
//!
//! A pool with `max_threads` starts all of its threads, pinned round its CPUs, but only its
//! least (`threads`) serve; the rest stand by, parked outside the pool's sleep list, so that
//! no producer's wake-up can reach them. The engine's control thread ([`super::control`])
//! samples the pool every [`SAMPLE`] and moves the number serving ([`PoolSize::serving`]):
//!
//! - **grow** by one when the requests waiting in the pool's queues stayed above `grow_queue`
//!   at two samples in a row *and* its serving threads are mostly blocked: the share of them
//!   found in the kernel's sleeping or disk-wait state (`/proc/self/task/TID/stat`) without
//!   being asleep for want of work, smoothed over samples (weight 1/4), is at least
//!   [`BLOCKED`]. (Smoothed, because a thread that computes is now and then caught in a
//!   futex for a moment, handing work over or publishing its stats.) The second condition
//!   is what Sandstorm's controller lacked: a queue that grows because the CPUs are saturated
//!   is not helped by more threads (they only take turns, and a thread waiting for a CPU is
//!   runnable, not blocked), but one that grows because the threads are blocked (a synchronous
//!   read, a sleep in a client library) is. (The state is sampled rather than the kernel's
//!   running and waiting times read: those are brought up to date only at the scheduler's
//!   ticks and switches, too coarse for a 10 ms sample.)
//! - **shrink** by one when a serving thread has been asleep for `shrink_idle`, at most once
//!   per `shrink_idle`: the pool has had a thread more than it needed for that long.
//!
//! A thread told to stand by finishes what its own deque holds first, and a thread told to
//! serve again is woken at once. Which threads serve is always a prefix (indexes below
//! `serving`), so a thread decides for itself with one load.

use std::time::Duration;

use crate::config::PoolSizing;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};

/// How often the control thread samples a sized pool.
pub(crate) const SAMPLE: Duration = Duration::from_millis(10);

/// The smoothed share of the serving threads found blocked from which a long queue is taken
/// to be for want of threads.
const BLOCKED: f64 = 0.5;

/// The weight of each sample in the smoothed blocked share.
const BLOCKED_WEIGHT: f64 = 0.25;

/// What a sized pool's threads and its controller share.
pub(crate) struct PoolSize {
    /// Threads with an index below this serve; the rest stand by.
    serving: AtomicUsize,
    /// Per thread: when it went to sleep for want of work (clock ns), or 0 while awake.
    asleep_since: Vec<AtomicU64>,
    /// Per thread: its kernel thread id, once it has started.
    tids: Vec<AtomicU64>,
    standby: Mutex<()>,
    resumed: Condvar,
}

/// No thread id yet (`tids`).
const NO_TID: u64 = 0;

impl PoolSize {
    pub fn new(threads: usize, sizing: &PoolSizing) -> Self {
        PoolSize {
            serving: AtomicUsize::new(sizing.min_threads),
            asleep_since: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            tids: (0..threads).map(|_| AtomicU64::new(NO_TID)).collect(),
            standby: Mutex::new(()),
            resumed: Condvar::new(),
        }
    }

    /// How many threads serve now.
    #[inline]
    pub fn serving(&self) -> usize {
        self.serving.load(Ordering::Acquire)
    }

    /// Whether thread `index` is to stand by.
    #[inline]
    pub fn stands_by(&self, index: usize) -> bool {
        index >= self.serving()
    }

    /// Thread `index` parks until it is to serve again or `stop()` says so. No wake-up is
    /// lost: the controller changes the count under the lock before it notifies, and shutdown
    /// sets the engine's state before [`PoolSize::resume_all`] takes the lock to notify.
    pub fn stand_by(&self, index: usize, stop: impl Fn() -> bool) {
        let mut guard = self.standby.lock().unwrap();
        while self.stands_by(index) && !stop() {
            // A timeout as a backstop only: the notifications are what resume it.
            guard = self.resumed.wait_timeout(guard, Duration::from_millis(100)).unwrap().0;
        }
    }

    /// Wakes every standing-by thread to look again (a change of count, or shutdown).
    pub fn resume_all(&self) {
        let _guard = self.standby.lock().unwrap();
        self.resumed.notify_all();
    }

    fn set_serving(&self, n: usize) {
        {
            let _guard = self.standby.lock().unwrap();
            self.serving.store(n, Ordering::Release);
        }
        self.resumed.notify_all();
    }

    /// Thread `index` goes to sleep for want of work (`now`), or wakes (`None`).
    #[inline]
    pub fn note_asleep(&self, index: usize, since: Option<u64>) {
        // Zero means awake, so a sleep from clock reading 0 is kept as 1.
        self.asleep_since[index].store(since.map_or(0, |ns| ns.max(1)), Ordering::Relaxed);
    }

    /// Thread `index`, as it starts: its thread id, for the controller to read its times.
    pub fn note_thread(&self, index: usize) {
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::gettid() };
        self.tids[index].store(tid as u64, Ordering::Release);
    }

    /// How many of the first `n` threads are blocked now: sleeping or in a disk wait, as the
    /// kernel says (`/proc/self/task/TID/stat`), and not asleep for want of work.
    fn blocked(&self, n: usize) -> usize {
        (0..n)
            .filter(|&i| self.asleep_since[i].load(Ordering::Relaxed) == 0)
            .filter(|&i| match self.tids[i].load(Ordering::Acquire) {
                NO_TID => false,
                tid => std::fs::read_to_string(format!("/proc/self/task/{tid}/stat")).is_ok_and(|stat| {
                    // The state follows the command name, which is in parentheses.
                    let state = stat.rsplit_once(')').and_then(|(_, rest)| rest.split_whitespace().next());
                    matches!(state, Some("S" | "D"))
                }),
            })
            .count()
    }
}

/// What the controller reads of a pool at a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PoolReading {
    pub now_ns: u64,
    /// Requests waiting in the pool's queues.
    pub queued: usize,
    /// Serving threads found blocked (not running, not ready to run, not asleep for want of work).
    pub blocked: usize,
    /// How many threads serve.
    pub serving: usize,
    /// The longest any serving thread has been asleep for want of work (ns), if one is.
    pub longest_asleep_ns: Option<u64>,
}

/// The controller's arithmetic, on readings: deterministic, so a test can drive it.
#[derive(Debug, Clone)]
pub(crate) struct PoolSizer {
    sizing: PoolSizing,
    max: usize,
    serving: usize,
    /// Samples in a row with the queue above `grow_queue`.
    long_queue: u32,
    /// The share of serving threads found blocked, smoothed over samples.
    blocked: f64,
    /// When the pool last shrank (clock ns).
    shrunk_ns: u64,
}

impl PoolSizer {
    pub fn new(sizing: PoolSizing, max: usize) -> Self {
        PoolSizer { sizing, max, serving: sizing.min_threads, long_queue: 0, blocked: 0.0, shrunk_ns: 0 }
    }

    #[cfg(test)]
    pub fn serving(&self) -> usize {
        self.serving
    }

    /// Takes a sample; returns the new number of serving threads.
    pub fn sample(&mut self, reading: PoolReading) -> usize {
        let share = reading.blocked as f64 / reading.serving.max(1) as f64;
        self.blocked += BLOCKED_WEIGHT * (share - self.blocked);
        self.long_queue = if reading.queued > self.sizing.grow_queue { self.long_queue + 1 } else { 0 };
        let idle_enough = reading.longest_asleep_ns.is_some_and(|ns| ns >= self.sizing.shrink_idle.as_nanos() as u64);
        let since_shrink = reading.now_ns.saturating_sub(self.shrunk_ns);
        if idle_enough
            && self.serving > self.sizing.min_threads
            && since_shrink >= self.sizing.shrink_idle.as_nanos() as u64
        {
            self.serving -= 1;
            self.shrunk_ns = reading.now_ns;
            self.long_queue = 0;
            return self.serving;
        }
        if self.long_queue >= 2 && self.blocked >= BLOCKED && self.serving < self.max {
            self.serving += 1;
            self.long_queue = 0;
        }
        self.serving
    }
}

/// Reads a sized pool for its controller: `queued` in its queues, its serving threads' times.
pub(crate) fn read(size: &PoolSize, queued: usize, now_ns: u64) -> PoolReading {
    let n = size.serving();
    let longest_asleep_ns = size.asleep_since[..n]
        .iter()
        .map(|since| since.load(Ordering::Relaxed))
        .filter(|&since| since != 0)
        .map(|since| now_ns.saturating_sub(since))
        .max();
    PoolReading { now_ns, queued, blocked: size.blocked(n), serving: n, longest_asleep_ns }
}

/// Applies the controller's decision: resumes threads to serve, or marks the last ones to
/// stand by (each finishes its own deque first; `wake` wakes those asleep so they see it).
pub(crate) fn apply(size: &PoolSize, serving: usize, wake: impl Fn()) {
    let was = size.serving();
    if serving == was {
        return;
    }
    size.set_serving(serving);
    if serving < was {
        wake();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    fn sizer() -> PoolSizer {
        let sizing = PoolSizing { min_threads: 1, grow_queue: 32, shrink_idle: Duration::from_millis(1_000) };
        PoolSizer::new(sizing, 4)
    }

    /// A sample at `ms`, with `queued` waiting and one thread serving, `blocked` or not.
    fn at(ms: u64, queued: usize, blocked: bool, asleep_ms: Option<u64>) -> PoolReading {
        let asleep = asleep_ms.map(|a| a * MS);
        PoolReading { now_ns: ms * MS, queued, blocked: blocked.into(), serving: 1, longest_asleep_ns: asleep }
    }

    #[test]
    fn a_blocked_pool_with_a_long_queue_grows_a_thread_per_two_samples_up_to_its_most() {
        let mut s = sizer();
        // Blocked threads: the queue is long, and every thread found blocked.
        let mut serving = Vec::new();
        for i in 0..12u64 {
            let n = s.serving;
            serving.push(s.sample(PoolReading { serving: n, blocked: n, ..at(i * 10, 100, true, None) }));
        }
        // The smoothed share passes a half at the third sample; then a thread per two samples.
        assert_eq!(serving, [1, 1, 2, 2, 3, 3, 4, 4, 4, 4, 4, 4]);
    }

    #[test]
    fn a_pool_whose_threads_run_or_wait_for_a_cpu_does_not_grow_however_long_its_queue() {
        let mut s = sizer();
        for i in 0..10u64 {
            assert_eq!(s.sample(at(i * 10, 1_000, false, None)), 1);
        }
        // Caught blocked at one sample in three: the smoothed share stays under a half.
        let mut s = sizer();
        for i in 0..30u64 {
            assert_eq!(s.sample(at(i * 10, 1_000, i % 3 == 0, None)), 1, "sample {i}");
        }
        // Four threads, three of them blocked at every sample: the share passes a half at the
        // third sample (0.19, 0.33, 0.44, 0.52).
        let sizing = PoolSizing { min_threads: 4, grow_queue: 32, shrink_idle: Duration::from_millis(1_000) };
        let mut s = PoolSizer::new(sizing, 8);
        let four = |ms| PoolReading { serving: 4, blocked: 3, ..at(ms, 1_000, false, None) };
        assert_eq!([0, 10, 20, 30].map(|ms| s.sample(four(ms))), [4, 4, 4, 5]);
    }

    #[test]
    fn a_short_queue_or_one_long_sample_is_not_a_reason_to_grow() {
        let mut s = sizer();
        assert_eq!(s.sample(at(0, 0, true, None)), 1);
        assert_eq!(s.sample(at(10, 33, true, None)), 1);
        assert_eq!(s.sample(at(20, 32, true, None)), 1);
        assert_eq!(s.sample(at(30, 33, true, None)), 1);
        assert_eq!(s.sample(at(40, 33, true, None)), 2);
    }

    #[test]
    fn a_pool_shrinks_by_one_per_idle_period_down_to_its_least() {
        let mut s = sizer();
        for i in 0..8u64 {
            s.sample(at(i * 10, 100, true, None));
        }
        assert_eq!(s.serving(), 4);
        // A thread asleep for 999 ms: not yet.
        assert_eq!(s.sample(at(2_000, 0, false, Some(999))), 4);
        assert_eq!(s.sample(at(2_010, 0, false, Some(1_000))), 3);
        // Still a thread asleep that long, but the last shrink was only 990 ms ago.
        assert_eq!(s.sample(at(3_000, 0, false, Some(1_990))), 3);
        assert_eq!(s.sample(at(3_010, 0, false, Some(2_000))), 2);
        assert_eq!(s.sample(at(4_010, 0, false, Some(3_000))), 1);
        assert_eq!(s.sample(at(9_000, 0, false, Some(8_000))), 1);
    }

    #[test]
    fn standing_by_is_the_threads_past_the_serving_count_and_resumes_on_growth() {
        let sizing = PoolSizing { min_threads: 1, grow_queue: 32, shrink_idle: Duration::from_millis(1_000) };
        let size = std::sync::Arc::new(PoolSize::new(3, &sizing));
        assert!(!size.stands_by(0) && size.stands_by(1) && size.stands_by(2));
        let waiting = size.clone();
        let t = std::thread::spawn(move || waiting.stand_by(2, || false));
        apply(&size, 3, || panic!("growing wakes no sleeper"));
        t.join().unwrap();
        assert_eq!(size.serving(), 3);
        let woken = std::cell::Cell::new(0);
        apply(&size, 2, || woken.set(woken.get() + 1));
        assert_eq!((size.serving(), woken.get()), (2, 1));
    }
}
