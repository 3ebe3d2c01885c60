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
        let a = now_ns();
        let start = std::time::Instant::now();
        std::thread::sleep(std::time::Duration::from_millis(20));
        let b = now_ns();
        let real = start.elapsed().as_nanos() as u64;
        assert!(b > a);
        // The counter is calibrated against the OS clock: within 10% over 20 ms.
        let measured = b - a;
        assert!(measured >= real * 9 / 10 && measured <= real * 11 / 10 + 1_000_000, "{measured} vs {real}");
    }
}
