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
}
