//! The engine's clock: monotonic nanoseconds since the first reading in this process. Every
//! timestamp a request carries is on this clock, so differences are plain subtraction.
//!
//! `quanta` decides whether the CPU's time-stamp counter can be trusted (invariant, so it ticks
//! at one rate in every power state) and calibrates it against the OS clock; else it reads the
//! OS monotonic clock. On the counter, a reading here is the counter itself and one multiply
//! by the calibrated scale: the hot path reads the clock about once a request, and quanta's own
//! reading (which checks its kind of clock twice and its scale's sign) costs some 15
//! instructions more. `Instant::now` would cost twenty-five nanoseconds or so.

use std::sync::OnceLock;

struct Clock {
    clock: quanta::Clock,
    epoch: u64,
    /// On the counter: nanoseconds per 2^32 ticks.
    ns_per_2_32_ticks: Option<u64>,
}

fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(|| {
        let clock = quanta::Clock::new();
        let epoch = clock.raw();
        Clock { ns_per_2_32_ticks: counter_scale(&clock), clock, epoch }
    })
}

/// The counter's scale, if `clock` reads the time-stamp counter. quanta scales only counter
/// ticks; a clock that leaves 2^32 raw units unscaled reads nanoseconds already (the OS clock,
/// or a counter of exactly 1 GHz, which the OS path then serves just as well).
#[cfg(target_arch = "x86_64")]
fn counter_scale(clock: &quanta::Clock) -> Option<u64> {
    const TICKS: u64 = 1 << 32;
    let ns = clock.delta_as_nanos(0, TICKS);
    (ns != TICKS).then_some(ns)
}

#[cfg(not(target_arch = "x86_64"))]
fn counter_scale(_clock: &quanta::Clock) -> Option<u64> {
    None
}

/// Nanoseconds since the process epoch.
#[inline]
pub fn now_ns() -> u64 {
    let c = clock();
    match c.ns_per_2_32_ticks {
        Some(scale) => {
            let ticks = read_counter().saturating_sub(c.epoch);
            ((u128::from(ticks) * u128::from(scale)) >> 32) as u64
        }
        None => c.clock.delta_as_nanos(c.epoch, c.clock.raw()),
    }
}

#[cfg(target_arch = "x86_64")]
#[inline]
fn read_counter() -> u64 {
    // SAFETY: RDTSC reads a counter and has no preconditions; a clock with a counter scale
    // exists only where quanta found the counter usable.
    unsafe { std::arch::x86_64::_rdtsc() }
}

#[cfg(not(target_arch = "x86_64"))]
fn read_counter() -> u64 {
    unreachable!("a counter scale is only taken on x86_64")
}

/// What one [`now_ns`] costs on this machine, in nanoseconds (at least 1): measured once, so
/// that code that reads the clock for its stats can keep the cost in proportion. (A
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
    fn readings_agree_with_quantas_own_scaling() {
        let c = clock();
        let ours = now_ns();
        let theirs = c.clock.delta_as_nanos(c.epoch, c.clock.raw());
        let after = now_ns();
        // Read in this order, quanta's reading lies between ours, give or take a nanosecond of
        // rounding.
        assert!(ours <= theirs + 1 && theirs <= after + 1, "{ours} <= {theirs} <= {after}");
    }

    #[test]
    fn readings_advance_with_real_time() {
        use std::time::{Duration, Instant};
        // Bracket both readings with the OS clock, so that a preemption anywhere widens the
        // bounds instead of failing the test.
        let t0 = Instant::now();
        let a = now_ns();
        let t1 = Instant::now();
        // The time to measure: the test's input, not a wait for an event.
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
