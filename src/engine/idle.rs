//! The idle policy of a worker without a poller: spin or sleep, decided by measurement.
//!
//! Spinning for the next work costs the CPU for the whole wait; sleeping costs what the kernel
//! spends putting the thread to sleep and waking it (system calls, a context switch each
//! way), whatever the wait. So a worker spins only while the wait it expects (an exponentially
//! weighted mean of its recent idle gaps, from running out of work to finding some) is shorter
//! than what its recent sleeps cost (the thread's own CPU time across each sleep), and for no
//! longer than that cost: past it, sleeping would have been cheaper whatever comes next.
//! Otherwise it sleeps at once. No fixed spin or yield time.

/// The weight of each new measurement in the means: 1/8.
const SHIFT: u32 = 3;

/// What a sleep is taken to cost before one is measured: a futex wait and wake-up with its two
/// context switches, a few microseconds on current hardware.
const FIRST_SLEEP_COST_NS: u64 = 5_000;

#[derive(Debug, Clone)]
pub(crate) struct IdlePolicy {
    /// The mean idle gap, in nanoseconds.
    gap_ns: u64,
    /// The mean CPU time a sleep cost the thread, in nanoseconds.
    sleep_cost_ns: u64,
}

impl Default for IdlePolicy {
    fn default() -> Self {
        // No gap measured yet: assume one twice a sleep's cost, so that a worker that has never
        // worked sleeps, and a few short gaps are enough to make it spin.
        IdlePolicy { gap_ns: 2 * FIRST_SLEEP_COST_NS, sleep_cost_ns: FIRST_SLEEP_COST_NS }
    }
}

impl IdlePolicy {
    /// How long to spin, having just run out of work: the cost of a sleep when the expected gap
    /// is shorter than it, else nothing.
    pub fn spin_ns(&self) -> u64 {
        if self.gap_ns < self.sleep_cost_ns {
            self.sleep_cost_ns
        } else {
            0
        }
    }

    /// An idle gap ended: the worker found work `ns` after it ran out.
    pub fn gap(&mut self, ns: u64) {
        self.gap_ns = mean(self.gap_ns, ns);
    }

    /// A sleep cost the thread `cpu_ns` of its own CPU time.
    pub fn slept(&mut self, cpu_ns: u64) {
        self.sleep_cost_ns = mean(self.sleep_cost_ns, cpu_ns);
    }
}

fn mean(mean: u64, sample: u64) -> u64 {
    mean - (mean >> SHIFT) + (sample >> SHIFT)
}

/// The CPU time this thread has used, in nanoseconds.
pub(crate) fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes the timespec given and nothing else.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_that_has_never_worked_sleeps_at_once() {
        assert_eq!(IdlePolicy::default().spin_ns(), 0);
    }

    #[test]
    fn short_gaps_spin_for_the_cost_of_a_sleep_and_long_gaps_sleep_at_once() {
        let mut policy = IdlePolicy::default();
        for _ in 0..64 {
            policy.slept(4_000);
            policy.gap(1_000);
        }
        assert!(policy.spin_ns().abs_diff(4_000) <= 8, "{policy:?}");
        // The load falls: gaps of 20 us, longer than a sleep costs.
        for _ in 0..64 {
            policy.gap(20_000);
        }
        assert_eq!(policy.spin_ns(), 0, "{policy:?}");
    }

    #[test]
    fn the_means_follow_their_samples_and_never_overflow() {
        let mut policy = IdlePolicy::default();
        for _ in 0..200 {
            policy.gap(u64::MAX);
            policy.slept(3_000);
        }
        assert_eq!(policy.spin_ns(), 0);
        assert!(policy.sleep_cost_ns.abs_diff(3_000) <= 8, "{policy:?}");
    }

    #[test]
    fn the_threads_cpu_time_moves_forward_with_work() {
        let before = thread_cpu_ns();
        let mut x = 0u64;
        for i in 0..1_000_000u64 {
            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
        }
        assert!(thread_cpu_ns() > before, "{x}");
    }
}
