//! The correction for coordinated omission: each request's latency measured two ways.
//!
//! A request has four instants: when the schedule meant it to be sent (`intended`), when the
//! generator's loop took it off the schedule (`dispatched`), when it was written to a
//! connection (`sent`: it may wait for a free one in between), and when its response was
//! complete (`done`).
//!
//! - corrected latency = done − intended: what a user arriving on schedule waited, including
//!   any time the request spent waiting to be sent behind a stalled server or a busy generator;
//! - uncorrected latency = done − sent: what most load tools report; a stall only shows in the
//!   few requests caught in it, because the generator stopped sending while it lasted;
//! - send lag = dispatched − intended: how far behind its schedule the generator itself was
//!   (a generator that cannot keep up says so here);
//! - connection wait = sent − dispatched: how long it waited for a free connection, which is
//!   the server's doing (every connection busy) unless there are too few connections.
//!
//! corrected = send lag + connection wait + uncorrected, exactly. In a closed loop a request
//! is intended when it is sent, so the two latencies agree and the lag and wait are zero.

use hdrhistogram::Histogram;

use crate::metrics::{new_histogram, HIGHEST_NS};

/// One request's instants, in nanoseconds on [`crate::clock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub intended_ns: u64,
    pub dispatched_ns: u64,
    pub sent_ns: u64,
    pub done_ns: u64,
}

impl Timing {
    pub fn corrected_ns(&self) -> u64 {
        self.done_ns.saturating_sub(self.intended_ns)
    }

    pub fn uncorrected_ns(&self) -> u64 {
        self.done_ns.saturating_sub(self.sent_ns)
    }

    pub fn send_lag_ns(&self) -> u64 {
        self.dispatched_ns.saturating_sub(self.intended_ns)
    }

    pub fn connection_wait_ns(&self) -> u64 {
        self.sent_ns.saturating_sub(self.dispatched_ns)
    }
}

/// The histograms of a set of requests, in nanoseconds.
#[derive(Clone)]
pub struct Latencies {
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    pub send_lag: Histogram<u64>,
    pub connection_wait: Histogram<u64>,
    /// Corrected latency of the responses that passed their checks: goodput's numerator, for
    /// any SLO.
    pub good: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies {
            corrected: new_histogram(),
            uncorrected: new_histogram(),
            send_lag: new_histogram(),
            connection_wait: new_histogram(),
            good: new_histogram(),
        }
    }
}

impl Latencies {
    pub fn record(&mut self, t: &Timing) {
        // Past HIGHEST_NS (100 s) a value is recorded as the highest.
        self.corrected.saturating_record(t.corrected_ns().min(HIGHEST_NS));
        self.uncorrected.saturating_record(t.uncorrected_ns().min(HIGHEST_NS));
        self.record_sending(t);
    }

    /// Records how a request was sent (lag and wait) without a latency: for a request that got
    /// no response (an error), which was still sent late or on time.
    pub fn record_sending(&mut self, t: &Timing) {
        self.send_lag.saturating_record(t.send_lag_ns().min(HIGHEST_NS));
        self.connection_wait.saturating_record(t.connection_wait_ns().min(HIGHEST_NS));
    }

    pub fn add(&mut self, other: &Latencies) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.corrected.add(&other.corrected);
        let _ = self.uncorrected.add(&other.uncorrected);
        let _ = self.send_lag.add(&other.send_lag);
        let _ = self.connection_wait.add(&other.connection_wait);
        let _ = self.good.add(&other.good);
    }

    pub fn reset(&mut self) {
        self.corrected.reset();
        self.uncorrected.reset();
        self.send_lag.reset();
        self.connection_wait.reset();
        self.good.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// One connection, one request at a time, a request due every `interval` and taken off the
    /// schedule `lag` late; the server takes `service[i]` for request i. Returns each request's
    /// timing: it is sent when it is dispatched, or when the previous response arrives if that
    /// is later (what a real client does).
    fn one_connection(interval: u64, lag: u64, service: &[u64]) -> Vec<Timing> {
        let mut free_at = 0;
        service
            .iter()
            .enumerate()
            .map(|(i, &took)| {
                let intended_ns = i as u64 * interval;
                let dispatched_ns = intended_ns + lag;
                let sent_ns = dispatched_ns.max(free_at);
                free_at = sent_ns + took;
                Timing { intended_ns, dispatched_ns, sent_ns, done_ns: free_at }
            })
            .collect()
    }

    #[test]
    fn a_request_on_time_has_equal_latencies_and_no_lag() {
        let t = Timing { intended_ns: 5 * MS, dispatched_ns: 5 * MS, sent_ns: 5 * MS, done_ns: 7 * MS };
        assert_eq!(
            (t.corrected_ns(), t.uncorrected_ns(), t.send_lag_ns(), t.connection_wait_ns()),
            (2 * MS, 2 * MS, 0, 0)
        );
    }

    #[test]
    fn a_late_request_adds_its_lag_and_wait_to_the_corrected_latency_only() {
        let t = Timing { intended_ns: 10 * MS, dispatched_ns: 11 * MS, sent_ns: 13 * MS, done_ns: 14 * MS };
        assert_eq!(
            (t.corrected_ns(), t.uncorrected_ns(), t.send_lag_ns(), t.connection_wait_ns()),
            (4 * MS, MS, MS, 2 * MS)
        );
        assert_eq!(t.corrected_ns(), t.send_lag_ns() + t.connection_wait_ns() + t.uncorrected_ns());
    }

    #[test]
    fn a_stall_delays_every_request_scheduled_during_it() {
        // Every 1 ms a request that takes 0.1 ms, except request 2, which takes 5.1 ms (a 5 ms
        // stall); the generator is on time. By hand: request 2 is sent at 2 ms, done at 7.1 ms.
        // Requests 3..7 are due at 3..7 ms but go out at 7.1, 7.2, ... as each answer arrives:
        // each waits behind the one before and takes 0.1 ms.
        let mut service = vec![MS / 10; 10];
        service[2] = 51 * MS / 10;
        let timings = one_connection(MS, 0, &service);
        let us = |f: fn(&Timing) -> u64| timings.iter().map(|t| f(t) / 1_000).collect::<Vec<_>>();
        assert_eq!(us(Timing::corrected_ns), [100, 100, 5_100, 4_200, 3_300, 2_400, 1_500, 600, 100, 100]);
        assert_eq!(us(Timing::uncorrected_ns), [100, 100, 5_100, 100, 100, 100, 100, 100, 100, 100]);
        assert_eq!(us(Timing::connection_wait_ns), [0, 0, 0, 4_100, 3_200, 2_300, 1_400, 500, 0, 0]);
        assert_eq!(us(Timing::send_lag_ns), [0; 10]);

        // In the histograms: the uncorrected p50 and p90 show nothing; the corrected ones do.
        let mut l = Latencies::default();
        timings.iter().for_each(|t| l.record(t));
        // Sorted, corrected: 100 100 100 100 600 1500 2400 3300 4200 5100 (us): p50 is the 5th
        // value, p80 the 8th.
        let at = |h: &Histogram<u64>, q: f64, us: u64| h.equivalent(h.value_at_quantile(q), us * 1_000);
        assert!(at(&l.uncorrected, 0.5, 100) && at(&l.uncorrected, 0.8, 100));
        assert!(at(&l.corrected, 0.5, 600) && at(&l.corrected, 0.8, 3_300));
        assert!(l.corrected.equivalent(l.corrected.max(), 5_100_000));
        assert!(l.connection_wait.equivalent(l.connection_wait.max(), 4_100_000));
        assert_eq!((l.send_lag.len(), l.send_lag.max()), (10, 0));
    }

    #[test]
    fn a_generator_running_late_shows_as_lag_not_as_wait() {
        // The same 0.1 ms requests every 1 ms, each taken off the schedule 0.3 ms late: the
        // connection is always free, so the lag is all there is between corrected and not.
        let timings = one_connection(MS, 3 * MS / 10, &[MS / 10; 5]);
        for t in &timings {
            assert_eq!((t.send_lag_ns(), t.connection_wait_ns()), (300_000, 0));
            assert_eq!((t.corrected_ns(), t.uncorrected_ns()), (400_000, 100_000));
        }
    }

    #[test]
    fn latencies_add_up_and_reset() {
        let mut a = Latencies::default();
        let mut b = Latencies::default();
        a.record(&Timing { intended_ns: 0, dispatched_ns: 0, sent_ns: 0, done_ns: MS });
        b.record(&Timing { intended_ns: 0, dispatched_ns: 0, sent_ns: MS, done_ns: 3 * MS });
        b.record_sending(&Timing { intended_ns: 0, dispatched_ns: MS, sent_ns: 2 * MS, done_ns: 0 });
        a.add(&b);
        assert_eq!((a.corrected.len(), a.uncorrected.len(), a.send_lag.len(), a.connection_wait.len()), (2, 2, 3, 3));
        assert!(a.corrected.equivalent(a.corrected.max(), 3 * MS));
        a.reset();
        assert!(a.corrected.is_empty() && a.send_lag.is_empty());
    }

    #[test]
    fn clock_readings_out_of_order_do_not_wrap() {
        let t = Timing { intended_ns: 10, dispatched_ns: 6, sent_ns: 5, done_ns: 4 };
        assert_eq!((t.corrected_ns(), t.uncorrected_ns(), t.send_lag_ns(), t.connection_wait_ns()), (0, 0, 0, 0));
    }
}
