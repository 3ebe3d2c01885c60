//! A wait with a deadline that another thread can cut short: how a generator waits for its
//! next due request, spinning when it is near (a condition variable's wake-up is tens of
//! microseconds late), sleeping when it is far.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use crate::clock::now_ns;

/// Closer than this, a wait spins.
pub(crate) const SPIN_NS: u64 = 200_000;

#[derive(Default)]
pub(crate) struct Doorbell {
    rung: AtomicBool,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Doorbell {
    /// Cuts short the current or next wait.
    pub fn ring(&self) {
        self.rung.store(true, Ordering::Release);
        // Taking the lock orders this after a waiter's look at `rung`, or before it.
        let _guard = self.lock.lock().unwrap();
        self.cond.notify_all();
    }

    /// Waits until the clock reads `until` or the bell rings; returns whether it rang (and
    /// clears it).
    pub fn wait_until(&self, until: u64) -> bool {
        loop {
            if self.rung.swap(false, Ordering::AcqRel) {
                return true;
            }
            let now = now_ns();
            if now >= until {
                return false;
            }
            let left = until - now;
            if left <= SPIN_NS {
                std::hint::spin_loop();
                continue;
            }
            let guard = self.lock.lock().unwrap();
            if self.rung.load(Ordering::Acquire) {
                continue;
            }
            // Wake a little early, and spin the rest.
            let _ = self.cond.wait_timeout(guard, Duration::from_nanos(left - SPIN_NS / 2)).unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn a_wait_ends_at_its_deadline_without_a_ring() {
        let bell = Doorbell::default();
        let until = now_ns() + 2_000_000;
        assert!(!bell.wait_until(until));
        assert!(now_ns() >= until);
    }

    #[test]
    fn a_ring_before_the_wait_ends_it_at_once_and_is_used_up() {
        let bell = Doorbell::default();
        bell.ring();
        assert!(bell.wait_until(u64::MAX));
        assert!(!bell.wait_until(now_ns()));
    }

    #[test]
    fn a_ring_from_another_thread_ends_a_long_wait() {
        let bell = Arc::new(Doorbell::default());
        let ringer = bell.clone();
        let t = std::thread::spawn(move || {
            // The pause is the test's input: the ring most likely comes while the wait is under
            // way (the case it is about); rung before the wait, the wait must end at once all
            // the same, so either order passes only if the ring is not lost.
            std::thread::sleep(Duration::from_millis(20));
            ringer.ring();
        });
        assert!(bell.wait_until(u64::MAX));
        t.join().unwrap();
    }
}
