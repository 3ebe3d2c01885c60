//! `concurrency_limit`: an adaptive limit on the requests at a stage (queued, or in the batch a
//! worker is on), moved additive-increase, multiplicative-decrease by the stage's response
//! time against a target.
//!
//! 1. A request is admitted while the requests at the stage are fewer than the limit.
//! 2. Response times are collected in a window closing after `sample_every` of them or
//!    `sample_window`, whichever first.
//! 3. When a window closes: above the target, the limit is multiplied by `backoff`; at or
//!    below it, and if the stage held at least half the limit at some point in the window (the
//!    limit was what held the load back, not the load itself), it grows by its square root, so
//!    it finds a limit of a hundred in a few dozen windows, not a hundred.
//!
//! Why a limit on requests at the stage rather than a rate: by Little's law, the wait a
//! request meets is the requests ahead of it times the service time, so a limit bounds the
//! wait directly, and it follows changes in service time without measuring them.

use crate::config::ConcurrencyLimitPlan;

use super::window::Window;

#[derive(Debug, Clone)]
pub(crate) struct ConcurrencyLimit {
    target_ns: u64,
    min_limit: f64,
    max_limit: f64,
    backoff: f64,
    window: Window,
    /// The limit, fractional so that small cuts add up.
    limit: f64,
    /// The most requests at the stage seen by an admission in this window.
    busiest: usize,
    /// The last window's percentile, ns.
    pub last_ns: Option<u64>,
    pub admitted_total: u64,
    pub shed_total: u64,
}

impl ConcurrencyLimit {
    pub fn new(plan: &ConcurrencyLimitPlan, now: u64) -> Self {
        ConcurrencyLimit {
            target_ns: plan.target.as_nanos() as u64,
            min_limit: plan.min_limit as f64,
            max_limit: plan.max_limit as f64,
            backoff: plan.backoff,
            window: Window::new(plan.sample_every, plan.sample_window.as_nanos() as u64, plan.percentile, now),
            limit: plan.initial_limit as f64,
            busiest: 0,
            last_ns: None,
            admitted_total: 0,
            shed_total: 0,
        }
    }

    /// The whole requests the stage may hold.
    pub fn limit(&self) -> usize {
        self.limit as usize
    }

    /// Whether one more request is admitted when `at_stage` are at the stage already.
    pub fn admit(&mut self, at_stage: usize, now: u64) -> bool {
        if let Some(closed) = self.window.tick(now) {
            self.adjust(closed.percentile_ns);
        }
        self.busiest = self.busiest.max(at_stage + 1);
        if at_stage < self.limit() {
            self.admitted_total += 1;
            true
        } else {
            self.shed_total += 1;
            false
        }
    }

    /// The response time of a request the stage has finished with, at `now`.
    pub fn observe(&mut self, latency_ns: u64, now: u64) {
        if let Some(closed) = self.window.add(latency_ns, now) {
            self.adjust(closed.percentile_ns);
        }
    }

    fn adjust(&mut self, percentile_ns: Option<u64>) {
        let busiest = std::mem::take(&mut self.busiest);
        let Some(p) = percentile_ns else { return };
        self.last_ns = Some(p);
        if p > self.target_ns {
            self.limit = (self.limit * self.backoff).max(self.min_limit);
        } else if 2 * busiest >= self.limit() {
            self.limit = (self.limit + self.limit.sqrt()).min(self.max_limit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: u64 = 1_000_000;

    fn plan() -> ConcurrencyLimitPlan {
        ConcurrencyLimitPlan {
            target: Duration::from_millis(20),
            percentile: 90.0,
            sample_every: 10,
            sample_window: Duration::from_millis(100),
            initial_limit: 16,
            min_limit: 2,
            max_limit: 30,
            backoff: 0.5,
        }
    }

    fn window(c: &mut ConcurrencyLimit, at_stage: usize, latency_ms: u64, now: &mut u64) {
        *now += MS;
        c.admit(at_stage, *now);
        for _ in 0..10 {
            *now += MS;
            c.observe(latency_ms * MS, *now);
        }
    }

    #[test]
    fn admits_below_the_limit_and_sheds_at_it() {
        let mut c = ConcurrencyLimit::new(&plan(), 0);
        assert!(c.admit(15, 1));
        assert!(!c.admit(16, 2));
        assert_eq!((c.admitted_total, c.shed_total), (1, 1));
    }

    #[test]
    fn the_limit_backs_off_above_the_target_and_grows_by_its_square_root_when_used_below_it() {
        let mut c = ConcurrencyLimit::new(&plan(), 0);
        let mut now = 0;
        let mut limits = Vec::new();
        for (at_stage, latency_ms) in [(16, 30), (8, 30), (4, 30), (1, 30), (1, 5), (2, 5), (0, 5), (4, 5), (30, 5)] {
            window(&mut c, at_stage, latency_ms, &mut now);
            limits.push(c.limit);
        }
        // 16 halves to 8, 4, 2, then stays at the least, 2; grows by sqrt: 2 + 1.414 = 3.414,
        // (busiest 3 of 3.4); not when the stage held fewer than half (1 of 3.4 after
        // `at_stage` 0); 3.414 + 1.848 = 5.262; 5.262 + 2.294 = 7.556.
        let expected = [8.0, 4.0, 2.0, 2.0, 2.0 + 2f64.sqrt(), 0.0, 0.0, 0.0, 0.0];
        assert_eq!(limits[..5], expected[..5]);
        let l4 = 2.0 + 2f64.sqrt();
        assert_eq!(limits[5], l4 + l4.sqrt());
        assert_eq!(limits[6], limits[5], "the stage held too few for the limit to matter");
        assert_eq!(limits[7], limits[6] + limits[6].sqrt());
        assert_eq!(limits[8], limits[7] + limits[7].sqrt());
    }

    #[test]
    fn the_limit_stays_within_its_bounds() {
        let mut c = ConcurrencyLimit::new(&plan(), 0);
        let mut now = 0;
        for _ in 0..20 {
            window(&mut c, 29, 1, &mut now);
        }
        assert_eq!(c.limit(), 30);
        for _ in 0..20 {
            window(&mut c, 29, 100, &mut now);
        }
        assert_eq!(c.limit(), 2);
    }
}
