//! The engine's clock: monotonic nanoseconds since the first reading in this process. Every
//! timestamp a request carries is on this clock, so differences are plain subtraction.
//!
//! It reads the CPU's time-stamp counter through `quanta` (a few nanoseconds, against some
//! twenty-five for `Instant::now`, which the hot path would pay several times per request);
//! quanta falls back to the OS monotonic clock where the counter is not invariant.

use std::sync::OnceLock;

struct Clock {
    clock: quanta::Clock,
    epoch: u64,
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(|| {
        let clock = quanta::Clock::new();
        let epoch = clock.raw();
        Clock { clock, epoch }
    })
}

/// Nanoseconds since the process epoch.
#[inline]
pub fn now_ns() -> u64 {
    let c = clock();
    c.clock.delta_as_nanos(c.epoch, c.clock.raw())
}

/// What one [`now_ns`] costs on this machine, in nanoseconds (at least 1): measured once, so
/// that code that reads the clock for its figures can keep the cost in proportion. (A
/// time-stamp counter read is some 5-15 ns, and not the same on every CPU.) The least of a few
/// short runs of readings: a preemption can lengthen one run, not all of them.
pub fn reading_cost_ns() -> u64 {
    static COST: OnceLock<u64> = OnceLock::new();
    *COST.get_or_init(|| {
        const RUNS: usize = 8;
        const READINGS: u64 = 128;
        let run = || {
            let first = now_ns();
            let last = (0..READINGS).fold(first, |_, _| now_ns());
            (last - first) / READINGS
        };
        (0..RUNS).map(|_| run()).min().unwrap_or(0).max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readings_advance_with_real_time() {
        use std::time::{Duration, Instant};
        // Bracket both readings with the OS clock, so that a preemption anywhere widens the
        // bounds instead of failing the test.
        let t0 = Instant::now();
        let a = now_ns();
        let t1 = Instant::now();
        std::thread::sleep(Duration::from_millis(20));
        let t2 = Instant::now();
        let b = now_ns();
        let t3 = Instant::now();
        let (inner, outer) = ((t2 - t1).as_nanos() as u64, (t3 - t0).as_nanos() as u64);
        let measured = b - a;
        // The counter is calibrated against the OS clock: within 5% of the bracket.
        assert!(measured >= inner * 95 / 100 && measured <= outer * 105 / 100, "{measured} not in [{inner}, {outer}]");
    }

    #[test]
    fn a_reading_costs_something_and_not_a_microsecond() {
        // Measured once per process, the least of 8 runs: every run would have to be preempted
        // for a millisecond to reach a microsecond a reading.
        let cost = reading_cost_ns();
        assert!((1..1_000).contains(&cost), "{cost} ns a reading");
        assert_eq!(reading_cost_ns(), cost, "measured once");
    }
}
