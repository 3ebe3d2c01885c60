//! The correction for coordinated omission: each request's latency measured two ways.
//!
//! A request has three instants: when the schedule meant it to be sent (`intended`), when the
//! generator actually sent it (`sent`), and when its response was complete (`done`).
//!
//! - corrected latency = done − intended: what a user arriving on schedule waited, including
//!   any time the request spent waiting to be sent behind a stalled server or a busy generator;
//! - uncorrected latency = done − sent: what most load tools report; a stall only shows in the
//!   few requests caught in it, because the generator stopped sending while it lasted;
//! - send lag = sent − intended: how far behind its schedule the generator was.
//!
//! corrected = send lag + uncorrected, exactly. In a closed loop a request is intended when it
//! is sent, so the two latencies agree and the lag is zero.

use hdrhistogram::Histogram;

use crate::metrics::{new_histogram, HIGHEST_NS};

/// One request's instants, in nanoseconds on [`crate::clock`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    pub intended_ns: u64,
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
        self.sent_ns.saturating_sub(self.intended_ns)
    }
}

/// The three histograms of a set of requests, in nanoseconds.
#[derive(Clone)]
pub struct Latencies {
    pub corrected: Histogram<u64>,
    pub uncorrected: Histogram<u64>,
    pub send_lag: Histogram<u64>,
}

impl Default for Latencies {
    fn default() -> Self {
        Latencies { corrected: new_histogram(), uncorrected: new_histogram(), send_lag: new_histogram() }
    }
}

impl Latencies {
    pub fn record(&mut self, t: &Timing) {
        // Past HIGHEST_NS (100 s) a value is recorded as the highest.
        self.corrected.saturating_record(t.corrected_ns().min(HIGHEST_NS));
        self.uncorrected.saturating_record(t.uncorrected_ns().min(HIGHEST_NS));
        self.send_lag.saturating_record(t.send_lag_ns().min(HIGHEST_NS));
    }

    /// Records the send lag of a request that got no response (an error): it was still sent
    /// late or on time, and the lag says so.
    pub fn record_lag_only(&mut self, t: &Timing) {
        self.send_lag.saturating_record(t.send_lag_ns().min(HIGHEST_NS));
    }

    pub fn add(&mut self, other: &Latencies) {
        // Same bounds on both sides: adding cannot fail.
        let _ = self.corrected.add(&other.corrected);
        let _ = self.uncorrected.add(&other.uncorrected);
        let _ = self.send_lag.add(&other.send_lag);
    }

    pub fn reset(&mut self) {
        self.corrected.reset();
        self.uncorrected.reset();
        self.send_lag.reset();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// One connection, one request at a time, a request due every `interval`; the server takes
    /// `service[i]` for request i. Returns each request's timing: it is sent when it is due, or
    /// when the previous response arrives if that is later (what a real client does).
    fn one_connection(interval: u64, service: &[u64]) -> Vec<Timing> {
        let mut free_at = 0;
        service
            .iter()
            .enumerate()
            .map(|(i, &took)| {
                let intended_ns = i as u64 * interval;
                let sent_ns = intended_ns.max(free_at);
                free_at = sent_ns + took;
                Timing { intended_ns, sent_ns, done_ns: free_at }
            })
            .collect()
    }

    #[test]
    fn a_request_on_time_has_equal_latencies_and_no_lag() {
        let t = Timing { intended_ns: 5 * MS, sent_ns: 5 * MS, done_ns: 7 * MS };
        assert_eq!((t.corrected_ns(), t.uncorrected_ns(), t.send_lag_ns()), (2 * MS, 2 * MS, 0));
    }

    #[test]
    fn a_late_request_adds_its_lag_to_the_corrected_latency_only() {
        let t = Timing { intended_ns: 10 * MS, sent_ns: 13 * MS, done_ns: 14 * MS };
        assert_eq!((t.corrected_ns(), t.uncorrected_ns(), t.send_lag_ns()), (4 * MS, MS, 3 * MS));
        assert_eq!(t.corrected_ns(), t.send_lag_ns() + t.uncorrected_ns());
    }

    #[test]
    fn a_stall_delays_every_request_scheduled_during_it() {
        // Every 1 ms a request that takes 0.1 ms, except request 2, which takes 5.1 ms (a 5 ms
        // stall). By hand: request 2 is sent at 2 ms, done at 7.1 ms. Requests 3..7 are due at
        // 3..7 ms but go out at 7.1, 7.2, ... as each answer arrives: each waits behind the one
        // before and takes 0.1 ms.
        let mut service = vec![MS / 10; 10];
        service[2] = 51 * MS / 10;
        let timings = one_connection(MS, &service);
        let corrected: Vec<u64> = timings.iter().map(Timing::corrected_ns).collect();
        let uncorrected: Vec<u64> = timings.iter().map(Timing::uncorrected_ns).collect();
        let lag: Vec<u64> = timings.iter().map(Timing::send_lag_ns).collect();
        let us = |v: &[u64]| v.iter().map(|&ns| ns / 1_000).collect::<Vec<_>>();
        assert_eq!(us(&corrected), [100, 100, 5_100, 4_200, 3_300, 2_400, 1_500, 600, 100, 100]);
        assert_eq!(us(&uncorrected), [100, 100, 5_100, 100, 100, 100, 100, 100, 100, 100]);
        assert_eq!(us(&lag), [0, 0, 0, 4_100, 3_200, 2_300, 1_400, 500, 0, 0]);

        // In the histograms: the uncorrected p50 and p90 show nothing; the corrected ones do.
        let mut l = Latencies::default();
        timings.iter().for_each(|t| l.record(t));
        // Sorted, corrected: 100 100 100 100 600 1500 2400 3300 4200 5100 (us): p50 is the 5th
        // value, p80 the 8th.
        let at = |h: &Histogram<u64>, q: f64, us: u64| h.equivalent(h.value_at_quantile(q), us * 1_000);
        assert!(at(&l.uncorrected, 0.5, 100) && at(&l.uncorrected, 0.8, 100));
        assert!(at(&l.corrected, 0.5, 600) && at(&l.corrected, 0.8, 3_300));
        assert!(l.corrected.equivalent(l.corrected.max(), 5_100_000));
        assert!(l.send_lag.equivalent(l.send_lag.max(), 4_100_000));
        assert_eq!(l.send_lag.len(), 10);
    }

    #[test]
    fn latencies_add_up_and_reset() {
        let mut a = Latencies::default();
        let mut b = Latencies::default();
        a.record(&Timing { intended_ns: 0, sent_ns: 0, done_ns: MS });
        b.record(&Timing { intended_ns: 0, sent_ns: MS, done_ns: 3 * MS });
        b.record_lag_only(&Timing { intended_ns: 0, sent_ns: 2 * MS, done_ns: 0 });
        a.add(&b);
        assert_eq!((a.corrected.len(), a.uncorrected.len(), a.send_lag.len()), (2, 2, 3));
        assert!(a.corrected.equivalent(a.corrected.max(), 3 * MS));
        a.reset();
        assert!(a.corrected.is_empty() && a.send_lag.is_empty());
    }

    #[test]
    fn clock_readings_out_of_order_do_not_wrap() {
        let t = Timing { intended_ns: 10, sent_ns: 5, done_ns: 4 };
        assert_eq!((t.corrected_ns(), t.uncorrected_ns(), t.send_lag_ns()), (0, 0, 0));
    }
}
