//! A pool that grows and shrinks: SEDA's thread-pool controller, for stages that block.
//!
//! A pool with `max_threads` starts all of its threads, pinned round its CPUs, but only its
//! least (`threads`) serve; the rest stand by, parked outside the pool's sleep list, so that
//! no producer's wake-up can reach them. The engine's control thread ([`super::control`])
//! samples the pool every [`SAMPLE`] and moves the number serving ([`PoolSize::serving`]):
//!
//! - **grow** by one when the requests waiting in the pool's queues stayed above `grow_queue`
//!   at two samples in a row *and* the serving threads used less than [`BUSY_CPU`] of the
//!   CPUs they run on. The second condition is what Sandstorm's controller lacked: a queue
//!   that grows because the CPUs are saturated is not helped by more threads (they only take
//!   turns), but one that grows because the threads are blocked (a synchronous read, a sleep
//!   in a client library) is;
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

/// The share of its CPUs' time above which a pool is taken to be CPU-bound, and not grown.
const BUSY_CPU: f64 = 0.9;

/// What a sized pool's threads and its controller share.
pub(crate) struct PoolSize {
    /// Threads with an index below this serve; the rest stand by.
    serving: AtomicUsize,
    /// Per thread: when it went to sleep for want of work (clock ns), or 0 while awake.
    asleep_since: Vec<AtomicU64>,
    /// Per thread: its CPU-time clock (`pthread_getcpuclockid`), once it has started.
    cpu_clocks: Vec<AtomicU64>,
    standby: Mutex<()>,
    resumed: Condvar,
}

/// No clock read yet (`cpu_clocks`).
const NO_CLOCK: u64 = u64::MAX;

impl PoolSize {
    pub fn new(threads: usize, sizing: &PoolSizing) -> Self {
        PoolSize {
            serving: AtomicUsize::new(sizing.min_threads),
            asleep_since: (0..threads).map(|_| AtomicU64::new(0)).collect(),
            cpu_clocks: (0..threads).map(|_| AtomicU64::new(NO_CLOCK)).collect(),
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

    /// Thread `index` parks until it is to serve again or `stop()` says so. (The controller
    /// and shutdown change the count under the lock, then notify: no wake-up is lost.)
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

    /// Thread `index`, as it starts: its CPU-time clock, for the controller to read.
    pub fn note_cpu_clock(&self, index: usize) {
        let mut clock: libc::clockid_t = 0;
        // SAFETY: pthread_self is the calling thread; the call writes only `clock`.
        if unsafe { libc::pthread_getcpuclockid(libc::pthread_self(), &mut clock) } == 0 {
            self.cpu_clocks[index].store(clock as u32 as u64, Ordering::Release);
        }
    }

    /// The CPU time the first `n` threads have used (ns), as far as their clocks can be read.
    fn cpu_ns(&self, n: usize) -> u64 {
        self.cpu_clocks[..n]
            .iter()
            .map(|clock| match clock.load(Ordering::Acquire) {
                NO_CLOCK => 0,
                clock => {
                    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
                    // SAFETY: clock_gettime writes only the timespec. A clock of a thread that
                    // has exited is an error, read as nothing.
                    match unsafe { libc::clock_gettime(clock as u32 as libc::clockid_t, &mut ts) } {
                        0 => ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64,
                        _ => 0,
                    }
                }
            })
            .sum()
    }
}

/// What the controller reads of a pool at a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct PoolReading {
    pub now_ns: u64,
    /// Requests waiting in the pool's queues.
    pub queued: usize,
    /// CPU time the serving threads have used, in all (ns).
    pub cpu_ns: u64,
    /// How many distinct CPUs the serving threads are pinned to.
    pub cpus: usize,
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
    /// The last sample's reading, to tell CPU use over the interval.
    last: Option<PoolReading>,
    /// When the pool last shrank (clock ns).
    shrunk_ns: u64,
}

impl PoolSizer {
    pub fn new(sizing: PoolSizing, max: usize) -> Self {
        PoolSizer { sizing, max, serving: sizing.min_threads, long_queue: 0, last: None, shrunk_ns: 0 }
    }

    #[cfg(test)]
    pub fn serving(&self) -> usize {
        self.serving
    }

    /// Takes a sample; returns the new number of serving threads.
    pub fn sample(&mut self, reading: PoolReading) -> usize {
        let last = self.last.replace(reading);
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
        let Some(last) = last else { return self.serving };
        let wall = reading.now_ns.saturating_sub(last.now_ns) as f64 * reading.cpus.max(1) as f64;
        let busy = if wall > 0.0 { reading.cpu_ns.saturating_sub(last.cpu_ns) as f64 / wall } else { 1.0 };
        if self.long_queue >= 2 && busy < BUSY_CPU && self.serving < self.max {
            self.serving += 1;
            self.long_queue = 0;
        }
        self.serving
    }
}

/// Reads a sized pool for its controller: `queued` in its queues, its serving threads' clocks.
pub(crate) fn read(size: &PoolSize, cpus_of: &[usize], queued: usize, now_ns: u64) -> PoolReading {
    let n = size.serving();
    let mut cpus: Vec<usize> = cpus_of[..n].to_vec();
    cpus.sort_unstable();
    cpus.dedup();
    let longest_asleep_ns = size.asleep_since[..n]
        .iter()
        .map(|since| since.load(Ordering::Relaxed))
        .filter(|&since| since != 0)
        .map(|since| now_ns.saturating_sub(since))
        .max();
    PoolReading { now_ns, queued, cpu_ns: size.cpu_ns(n), cpus: cpus.len(), longest_asleep_ns }
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

    /// A sample at `ms`, with `queued` waiting, `cpu_ms` of CPU used so far on one CPU.
    fn at(ms: u64, queued: usize, cpu_ms: u64, asleep_ms: Option<u64>) -> PoolReading {
        PoolReading {
            now_ns: ms * MS,
            queued,
            cpu_ns: cpu_ms * MS,
            cpus: 1,
            longest_asleep_ns: asleep_ms.map(|a| a * MS),
        }
    }

    #[test]
    fn a_blocked_pool_with_a_long_queue_grows_a_thread_per_two_samples_up_to_its_most() {
        let mut s = sizer();
        // Blocked threads: the queue is long, the CPU nearly idle (1 ms in 10).
        let mut serving = Vec::new();
        for i in 0..12u64 {
            serving.push(s.sample(at(i * 10, 100, i, None)));
        }
        assert_eq!(serving, [1, 2, 2, 3, 3, 4, 4, 4, 4, 4, 4, 4]);
    }

    #[test]
    fn a_cpu_bound_pool_does_not_grow_however_long_its_queue() {
        let mut s = sizer();
        // 9.5 ms of CPU in each 10 ms: 95% busy.
        for i in 0..10u64 {
            assert_eq!(s.sample(PoolReading { cpu_ns: i * 9_500_000, ..at(i * 10, 1_000, 0, None) }), 1);
        }
    }

    #[test]
    fn a_short_queue_or_one_long_sample_is_not_a_reason_to_grow() {
        let mut s = sizer();
        assert_eq!(s.sample(at(0, 0, 0, None)), 1);
        assert_eq!(s.sample(at(10, 33, 0, None)), 1);
        assert_eq!(s.sample(at(20, 32, 0, None)), 1);
        assert_eq!(s.sample(at(30, 33, 0, None)), 1);
        assert_eq!(s.sample(at(40, 33, 0, None)), 2);
    }

    #[test]
    fn a_pool_shrinks_by_one_per_idle_period_down_to_its_least() {
        let mut s = sizer();
        for i in 0..6u64 {
            s.sample(at(i * 10, 100, 0, None));
        }
        assert_eq!(s.serving(), 4);
        // A thread asleep for 999 ms: not yet.
        assert_eq!(s.sample(at(2_000, 0, 0, Some(999))), 4);
        assert_eq!(s.sample(at(2_010, 0, 0, Some(1_000))), 3);
        // Still a thread asleep that long, but the last shrink was only 990 ms ago.
        assert_eq!(s.sample(at(3_000, 0, 0, Some(1_990))), 3);
        assert_eq!(s.sample(at(3_010, 0, 0, Some(2_000))), 2);
        assert_eq!(s.sample(at(4_010, 0, 0, Some(3_000))), 1);
        assert_eq!(s.sample(at(9_000, 0, 0, Some(8_000))), 1);
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
