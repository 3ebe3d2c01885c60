//! `latency_target`: SEDA's response-time controller (Sandstorm's
//! `ResponseTimeControllerMulticlass`), driving a token bucket per service class.
//!
//! Per class:
//! 1. a request is admitted when the class's bucket holds a token; the bucket refills at the
//!    class's rate and holds at most [`BURST`] worth of it;
//! 2. the response times of its admitted requests are collected in a window that closes after
//!    `sample_every` of them or `sample_window`, whichever first;
//! 3. when a window closes, its percentile is folded into a smoothed estimate
//!    (`smoothing` old, the rest new) and the error `err = (estimate - target) / target` moves
//!    the rate: above the target (`err > 0`) it is cut, well below it (`err < -0.5`) raised;
//!    in between it holds;
//! 4. when a class misses the target and a lower class still has more than the least rate,
//!    the lower classes are cut tenfold (and their raises held back for a window) instead of
//!    the class itself: the lower classes are shed first.
//!
//! `adjust: sandstorm` moves the rate as Sandstorm did: divide by 1.2, add 2 (-err - 0.1)
//! requests per second. It recovers slowly (a cut of a sixth per window, however far off, and
//! raises of a few requests a second), so `proportional`, the default, changes three things:
//! - a cut divides by (1 + err), between 1.2 and 2: far above the target, fewer admitted;
//! - a cut starts from the stage's throughput in the window (the response times it counted,
//!   per second) when that is lower than the bucket's rate. A rate wound up far above the load
//!   while the bucket was not the limit then bites at the first cut, not after several; and
//!   while a backlog drains, each window's cut starts again from what the stage serves instead
//!   of compounding on the last (the smoothed estimate stays above the target for a few
//!   windows after the wait has fallen, and cuts that compound would take the rate to nothing);
//! - the estimate smooths rises only, and falls at once to a lower window's percentile: a
//!   smoothed estimate trails the wait by several windows once a backlog has drained, and
//!   kept cutting, then kept the rate from rising, for most of a second in our first
//!   measurements;
//! - a raise multiplies the rate by 1 + 0.2 (-err - 0.1) (4% to 18%), up to 1.5 times what
//!   arrived, so it climbs as fast at any scale, never far past the load;
//! - it decides (cut, raise or hold) at most once a window span (100 ms), on what it measured
//!   since its last decision (throughput, arrivals): windows that close on a count come every
//!   few milliseconds at a high rate, faster than a change's effect on the wait is seen, and
//!   deciding on each swung the rate tenfold within a second.
//!   Both bounds come from measurements ([`MOST_CUT`], [`RAISE_GAIN`]).
//!
//! The windows close on time as well as count (Sandstorm's default was 1 s; ours 100 ms), so
//! an estimate is never older than a window even when few requests get through.
//!
//! `proportional` also looks ahead, at the queue as it is now: a request is refused when its
//! predicted response time, the requests ahead of it at the stage times the time a request
//! keeps a worker busy (a mean over recent batches) over the workers, plus its own, is past
//! its class's budget: half its target for the highest class, and for each lower one at most
//! `(classes - k) / (classes - k + 1)` of the budget of the class above (so with one target for
//! all, `target / 2 x (classes - k) / classes` for class k): a lower class is shed while the
//! queue still has room for a higher one, and a lower class with a longer target of its own
//! cannot fill the queue past what a higher class may wait. A rate acts on response times
//! measured a wait ago, and any rate above the capacity fills the queue until they show it; the
//! prediction holds the wait near the target as the load moves, and the rate does the rest (a
//! stage whose response time is not its queue, such as one that waits on I/O). The prediction
//! counts the pool's workers as serving this stage alone: on a pool shared with busy stages it
//! is optimistic, and the rate controller catches what it lets through.

use crate::config::{Adjust, LatencyTargetPlan};

use super::window::{Closed, Window};

/// The bucket holds at most this much of its rate's tokens (and one at least): how large a
/// burst it lets through at once.
pub(crate) const BURST_NS: u64 = 10_000_000;

/// What a lower class's rate is divided by when a higher class misses the target.
const LOWER_CLASS_CUT: f64 = 10.0;

/// `proportional`: the most one cut divides the stage's throughput by. The wait a window
/// sees reflects admissions of a wait ago, so a deeper cut overshoots: with 10, the rate
/// swung between a tenth of the capacity and several times it.
const MOST_CUT: f64 = 2.0;

/// `proportional`: a raise multiplies the rate by 1 + this x (-err - 0.1), 4% to 18% a window.
/// With 1 (up to 90% a window, and windows of 20 ms at 5000/s) the rate rose tenfold before
/// the wait it caused was seen.
const RAISE_GAIN: f64 = 0.2;

#[derive(Debug, Clone)]
pub(crate) struct LatencyTarget {
    smoothing: f64,
    adjust: Adjust,
    min_rate: f64,
    max_rate: f64,
    classes: Vec<Class>,
    /// The workers serving the stage (the pool's threads).
    workers: f64,
    /// The mean time a request keeps a worker busy, ns (over batches, each weighing
    /// [`BUSY_WEIGHT`]); `None` until a batch finished.
    busy_per_request_ns: Option<f64>,
}

/// `proportional`: the share of the target the prediction lets the highest class's queue take.
/// Past the capacity a queue of any length keeps the workers busy, so a short one loses no
/// throughput; the rest of the target is left for what the prediction does not see (the
/// request's other stages, the network, a worker's CPU taken for a while). With the whole
/// target, a stage held its p90 at 19.9 ms of a 20 ms target while the requests' own p90, end
/// to end, was 24.7 ms.
const QUEUE_SHARE: f64 = 0.5;

/// The weight of each finished batch in the mean busy time per request.
const BUSY_WEIGHT: f64 = 0.125;

/// One service class's bucket, window and estimate.
#[derive(Debug, Clone)]
pub(crate) struct Class {
    /// The class's target, ns.
    target_ns: f64,
    /// How long a request of the class may be predicted to wait at most, ns: a share of its
    /// target, and less than any higher class's (see the module doc).
    budget_ns: f64,
    /// Requests per second.
    pub rate: f64,
    tokens: f64,
    refilled_ns: u64,
    window: Window,
    /// The smoothed percentile, ns; `None` until a window with samples closed.
    pub estimate_ns: Option<f64>,
    /// Raises wait until this time (a higher class missed its target).
    held_until_ns: u64,
    /// When `proportional` last decided (0: never): it decides at most once a window span,
    /// on what it measured since: the response times that came back and the requests that
    /// arrived.
    decided_ns: u64,
    completed_since: u64,
    arrived_since: u64,
    /// Requests that arrived, and were admitted, since the window opened.
    arrived: u64,
    admitted: u64,
    /// Since the start.
    pub admitted_total: u64,
    pub shed_total: u64,
}

impl LatencyTarget {
    /// A controller for `classes` service classes (highest first; 1 without classes) at a
    /// stage `workers` serve, every rate starting at `max_rate`, at `now`.
    pub fn new(plan: &LatencyTargetPlan, classes: usize, workers: usize, now: u64) -> Self {
        let window = Window::new(plan.sample_every, plan.sample_window.as_nanos() as u64, plan.percentile, now);
        let class = Class {
            target_ns: plan.target.as_nanos() as f64,
            budget_ns: 0.0,
            rate: plan.max_rate,
            tokens: 0.0,
            refilled_ns: now,
            window,
            estimate_ns: None,
            held_until_ns: 0,
            decided_ns: 0,
            completed_since: 0,
            arrived_since: 0,
            arrived: 0,
            admitted: 0,
            admitted_total: 0,
            shed_total: 0,
        };
        let n = classes.max(1);
        let mut classes = vec![class; n];
        let mut higher_budget = f64::INFINITY;
        for (k, class) in classes.iter_mut().enumerate() {
            class.tokens = burst(class.rate);
            if let Some(target) = plan.class_targets.get(k) {
                class.target_ns = target.as_nanos() as f64;
            }
            // A class's budget is its share of its target, and at most (n - k) / (n - k + 1) of
            // the budget of the class above (none above the highest). With one target for all,
            // class k gets target x share x (n - k) / n.
            let own = QUEUE_SHARE * class.target_ns;
            class.budget_ns = own.min(higher_budget * (n - k) as f64 / (n - k + 1) as f64);
            higher_budget = class.budget_ns;
        }
        LatencyTarget {
            smoothing: plan.smoothing,
            adjust: plan.adjust,
            min_rate: plan.min_rate,
            max_rate: plan.max_rate,
            classes,
            workers: workers.max(1) as f64,
            busy_per_request_ns: None,
        }
    }

    pub fn classes(&self) -> &[Class] {
        &self.classes
    }

    /// Whether a request of `class` arriving at `now`, with `ahead` requests before it at the
    /// stage (queued or in service), is admitted: `proportional` predicts it in time (see the
    /// module doc), and its class's bucket holds a token.
    pub fn admit(&mut self, class: usize, ahead: usize, now: u64) -> bool {
        if let Some(closed) = self.classes[class].window.tick(now) {
            self.adjust(class, closed, now);
        }
        let in_time = match self.busy_per_request_ns {
            Some(busy) if self.adjust == Adjust::Proportional => {
                (ahead as f64 / self.workers + 1.0) * busy <= self.classes[class].budget_ns
            }
            _ => true,
        };
        let c = &mut self.classes[class];
        if !in_time {
            c.arrived += 1;
            c.shed_total += 1;
            return false;
        }
        let elapsed = now.saturating_sub(c.refilled_ns);
        c.refilled_ns = c.refilled_ns.max(now);
        c.tokens = (c.tokens + c.rate * elapsed as f64 / 1e9).min(burst(c.rate));
        c.arrived += 1;
        if c.tokens >= 1.0 {
            c.tokens -= 1.0;
            c.admitted += 1;
            c.admitted_total += 1;
            true
        } else {
            c.shed_total += 1;
            false
        }
    }

    /// A worker was busy `ns` with a batch of `n` requests of the stage.
    pub fn busy(&mut self, n: usize, ns: u64) {
        if n == 0 {
            return;
        }
        let per_request = ns as f64 / n as f64;
        self.busy_per_request_ns = Some(match self.busy_per_request_ns {
            Some(mean) => mean + BUSY_WEIGHT * (per_request - mean),
            None => per_request,
        });
    }

    /// The response time of a request of `class` that the stage has finished with, at `now`.
    pub fn observe(&mut self, class: usize, latency_ns: u64, now: u64) {
        if let Some(closed) = self.classes[class].window.add(latency_ns, now) {
            self.adjust(class, closed, now);
        }
    }

    /// Step 3 and 4 of the module doc, for `class`'s window just closed.
    fn adjust(&mut self, class: usize, closed: Closed, now: u64) {
        let c = &mut self.classes[class];
        let (arrived, admitted) = (std::mem::take(&mut c.arrived), std::mem::take(&mut c.admitted));
        let sample = match closed.percentile_ns {
            Some(p) => p as f64,
            // Nothing admitted came back: with nothing admitted either, the rate is too low to
            // measure anything (a response time of nothing, so it is raised); with requests
            // admitted but still on their way, there is no news yet.
            None if admitted == 0 => 0.0,
            None => return,
        };
        let estimate = match c.estimate_ns {
            // A smoothed estimate trails the wait by several windows once a backlog has
            // drained: `proportional`'s follows a fall at once, and smooths only rises.
            Some(old) if self.adjust == Adjust::Proportional && sample < old => sample,
            Some(old) => self.smoothing * old + (1.0 - self.smoothing) * sample,
            None => sample,
        };
        c.estimate_ns = Some(estimate);
        let err = (estimate - c.target_ns) / c.target_ns;
        // Per second, since the last decision (`proportional`) or over the window.
        let (mut per_second, mut completed) = (1e9 / closed.span_ns as f64, closed.count as u64);
        let mut arrived = arrived;
        if self.adjust == Adjust::Proportional {
            // Windows close on a count as well as on time, so at a high rate they come every few
            // milliseconds, faster than a change's effect on the wait can be seen: it decides
            // once a span at most, on what it measured since the last decision.
            c.completed_since += completed;
            c.arrived_since += arrived;
            let span = c.window.span_ns();
            if c.decided_ns != 0 && now < c.decided_ns + span {
                return;
            }
            if c.decided_ns != 0 {
                per_second = 1e9 / (now - c.decided_ns) as f64;
            }
            completed = std::mem::take(&mut c.completed_since);
            arrived = std::mem::take(&mut c.arrived_since);
            c.decided_ns = now;
        }
        let throughput = completed as f64 * per_second;
        if err > 0.0 {
            let lower = class + 1..self.classes.len();
            if self.classes[lower.clone()].iter().any(|l| l.rate > self.min_rate) {
                let hold_until = now + self.classes[class].window.span_ns();
                for l in &mut self.classes[lower] {
                    l.rate = (l.rate / LOWER_CLASS_CUT).max(self.min_rate);
                    l.tokens = l.tokens.min(burst(l.rate));
                    l.held_until_ns = hold_until;
                }
                return;
            }
            let c = &mut self.classes[class];
            c.rate = match self.adjust {
                Adjust::Sandstorm => c.rate / 1.2,
                Adjust::Proportional => c.rate.min(throughput / (1.0 + err).clamp(1.2, MOST_CUT)),
            };
            c.rate = c.rate.clamp(self.min_rate, self.max_rate);
            c.tokens = c.tokens.min(burst(c.rate));
        } else if err < -0.5 && now >= c.held_until_ns {
            let raised = match self.adjust {
                Adjust::Sandstorm => c.rate + 2.0 * (-err - 0.1),
                Adjust::Proportional => {
                    let ceiling = c.rate.max(1.5 * arrived as f64 * per_second);
                    (c.rate * (1.0 + RAISE_GAIN * (-err - 0.1))).min(ceiling)
                }
            };
            c.rate = raised.clamp(self.min_rate, self.max_rate);
        }
    }
}

/// The most tokens a bucket at `rate` holds.
fn burst(rate: f64) -> f64 {
    (rate * BURST_NS as f64 / 1e9).max(1.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: u64 = 1_000_000;

    fn plan(adjust: Adjust, max_rate: f64) -> LatencyTargetPlan {
        LatencyTargetPlan {
            target: Duration::from_millis(20),
            percentile: 90.0,
            sample_every: 10,
            sample_window: Duration::from_millis(100),
            smoothing: 0.7,
            adjust,
            min_rate: 10.0,
            max_rate,
            classes: None,
            class_targets: Vec::new(),
        }
    }

    /// Feeds `n` response times of `latency_ms` to `class`, 1 ms apart from `*now`.
    fn feed(c: &mut LatencyTarget, class: usize, n: usize, latency_ms: u64, now: &mut u64) {
        feed_every(c, class, n, latency_ms, 1, now);
    }

    /// The same, `step_ms` apart: 10 at 10 ms make a window of its whole span (100 ms).
    fn feed_every(c: &mut LatencyTarget, class: usize, n: usize, latency_ms: u64, step_ms: u64, now: &mut u64) {
        for _ in 0..n {
            *now += step_ms * MS;
            c.observe(class, latency_ms * MS, *now);
        }
    }

    #[test]
    fn proportional_refuses_a_request_predicted_past_half_the_target_and_admits_the_rest() {
        let mut c = LatencyTarget::new(&plan(Adjust::Proportional, 1e6), 1, 2, 0);
        // Before a batch has finished there is nothing to predict from.
        assert!(c.admit(0, 1_000_000, 0));
        // 1 ms a request, two workers: (ahead / 2 + 1) ms against 10 ms, half the 20 ms target.
        c.busy(4, 4 * MS);
        assert!(c.admit(0, 18, 0));
        assert!(!c.admit(0, 19, 0));
        assert_eq!((c.classes()[0].admitted_total, c.classes()[0].shed_total), (2, 1));
        // A batch of nothing moves nothing.
        c.busy(0, 0);
        assert!(c.admit(0, 18, 0));
    }

    #[test]
    fn the_busy_time_per_request_is_a_mean_over_batches_each_weighing_an_eighth() {
        let mut c = LatencyTarget::new(&plan(Adjust::Proportional, 1e6), 1, 1, 0);
        c.busy(1, MS);
        c.busy(3, 27 * MS);
        // 1 + (9 - 1) / 8 = 2 ms a request: 5 x 2 ms is the 10 ms budget, 6 x 2 past it.
        assert!(c.admit(0, 4, 0));
        assert!(!c.admit(0, 5, 0));
    }

    #[test]
    fn a_lower_class_gets_a_smaller_share_of_the_queue_than_a_higher_one() {
        let mut c = LatencyTarget::new(&plan(Adjust::Proportional, 1e6), 2, 1, 0);
        c.busy(1, MS);
        // The high class: 10 ms of queue; the low one: 5 ms.
        assert!(c.admit(0, 9, 0));
        assert!(!c.admit(0, 10, 0));
        assert!(c.admit(1, 4, 0));
        assert!(!c.admit(1, 5, 0));
    }

    #[test]
    fn a_lower_class_never_waits_longer_than_a_higher_whatever_its_own_target() {
        let mut p = plan(Adjust::Proportional, 1e6);
        // Gold 10 ms, silver 40 ms, bronze 8 ms.
        p.class_targets = [10, 40, 8].map(Duration::from_millis).to_vec();
        let mut c = LatencyTarget::new(&p, 3, 1, 0);
        c.busy(1, MS);
        // Budgets: gold 5 ms; silver min(20, 5 x 2/3) = 3.33 ms; bronze min(4, 3.33 x 1/2) = 1.67.
        assert!(c.admit(0, 4, 0) && !c.admit(0, 5, 0));
        assert!(c.admit(1, 2, 0) && !c.admit(1, 3, 0));
        assert!(c.admit(2, 0, 0) && !c.admit(2, 1, 0));
    }

    #[test]
    fn each_class_moves_its_rate_by_its_own_target() {
        let mut p = plan(Adjust::Proportional, 1e6);
        p.class_targets = [10, 40].map(Duration::from_millis).to_vec();
        let mut c = LatencyTarget::new(&p, 2, 1, 0);
        let mut now = 0;
        // 30 ms is within the low class's 40 ms (under the shared 20 ms it would be cut) ...
        feed_every(&mut c, 1, 10, 30, 10, &mut now);
        assert_eq!(c.classes()[1].rate, 1e6);
        // ... and 50 ms past it, once the smoothed estimate (36 ms after one window, 40.2 after
        // two) is.
        feed_every(&mut c, 1, 10, 50, 10, &mut now);
        assert_eq!(c.classes()[1].rate, 1e6);
        feed_every(&mut c, 1, 10, 50, 10, &mut now);
        assert!(c.classes()[1].rate < 1e6, "{:?}", c.classes()[1]);
    }

    #[test]
    fn sandstorm_does_not_predict() {
        let mut c = LatencyTarget::new(&plan(Adjust::Sandstorm, 1e6), 1, 1, 0);
        c.busy(1, MS);
        assert!(c.admit(0, 1_000_000, 0));
    }

    #[test]
    fn sandstorm_divides_by_1_2_above_the_target_and_adds_2_times_minus_err_less_0_1_well_below() {
        let mut c = LatencyTarget::new(&plan(Adjust::Sandstorm, 1_000.0), 1, 1, 0);
        let mut now = 0;
        // 30 ms: err = 0.5, the first estimate is the sample itself.
        feed(&mut c, 0, 10, 30, &mut now);
        assert_eq!(c.classes()[0].estimate_ns, Some(30.0 * MS as f64));
        assert_eq!(c.classes()[0].rate, 1_000.0 / 1.2);
        // 2 ms: estimate 0.7 * 30 + 0.3 * 2 = 21.6 ms, still above: cut again.
        feed(&mut c, 0, 10, 2, &mut now);
        assert!((c.classes()[0].estimate_ns.unwrap() - 21.6 * MS as f64).abs() < 1.0);
        assert_eq!(c.classes()[0].rate, 1_000.0 / 1.2 / 1.2);
        // 2 ms again: 15.72 ms, err = -0.214: in the dead zone, held.
        feed(&mut c, 0, 10, 2, &mut now);
        assert_eq!(c.classes()[0].rate, 1_000.0 / 1.2 / 1.2);
        // 11.604 ms: -0.42, held; then 8.7228 ms: err = -0.56386, + 2 * 0.46386.
        feed(&mut c, 0, 10, 2, &mut now);
        assert_eq!(c.classes()[0].rate, 1_000.0 / 1.2 / 1.2);
        feed(&mut c, 0, 10, 2, &mut now);
        let err = (0.7 * (0.7 * (0.7 * 21.6 + 0.6) + 0.6) + 0.6 - 20.0) / 20.0;
        let expected = 1_000.0 / 1.2 / 1.2 + 2.0 * (-err - 0.1);
        assert!((c.classes()[0].rate - expected).abs() < 1e-9, "{} vs {expected}", c.classes()[0].rate);
    }

    #[test]
    fn proportional_cuts_from_the_throughput_by_the_error_between_1_2_and_2_once_a_span() {
        let mut c = LatencyTarget::new(&plan(Adjust::Proportional, 1e6), 1, 1, 0);
        let mut now = 0;
        // Ten response times of 60 ms (err = 2), 10 ms apart: the window closes by count at
        // 100 ms, the stage having served 100/s; the bucket's rate is far above that, so the
        // cut starts from the throughput: 100 / (1 + 2), but by 2 at most.
        feed_every(&mut c, 0, 10, 60, 10, &mut now);
        assert!((c.classes()[0].rate - 50.0).abs() < 1e-9);
        // A window closing sooner than a span after that decision decides nothing.
        c.classes[0].rate = 5_000.0;
        feed(&mut c, 0, 10, 1000, &mut now);
        assert_eq!(c.classes()[0].rate, 5_000.0);
        // A span on (20 response times in 100 ms, 200/s): estimate 0.7 x 342 + 0.3 x 1000,
        // far above: cut to 200 / 2.
        feed_every(&mut c, 0, 10, 1000, 9, &mut now);
        assert!((c.classes()[0].rate - 100.0).abs() < 1e-9, "{}", c.classes()[0].rate);
        // Still above, 100/s served: cut from the throughput again, not from the last rate.
        feed_every(&mut c, 0, 10, 1000, 10, &mut now);
        assert!((c.classes()[0].rate - 50.0).abs() < 1e-9);
        c.classes[0].rate = 5_000.0;
        feed_every(&mut c, 0, 10, 1000, 10, &mut now);
        assert!((c.classes()[0].rate - 50.0).abs() < 1e-9, "it does not compound");
    }

    #[test]
    fn proportional_follows_a_fall_at_once_and_raises_by_up_to_18_percent_once_a_span() {
        let mut c = LatencyTarget::new(&plan(Adjust::Proportional, 1e6), 1, 1, 0);
        let mut now = 0;
        // A first window at 60 ms, 100/s served: cut to 100 / 2, at 100 ms.
        feed_every(&mut c, 0, 10, 60, 10, &mut now);
        let cut = 50.0;
        assert!((c.classes()[0].rate - cut).abs() < 1e-9);
        // Then windows of 0 ms, 10 ms each, while requests arrive at 1000/s: the estimate falls
        // to 0 at once (err -1), and the rate is raised by 1 + 0.2 x 0.9 (up to 1.5 x the
        // arrivals), once a span (100 ms) at most: at 200 ms, 300 ms, ...
        let mut rates = Vec::new();
        for _ in 0..90 {
            for _ in 0..10 {
                now += MS;
                c.admit(0, 0, now);
                c.observe(0, 0, now);
            }
            assert_eq!(c.classes()[0].estimate_ns, Some(0.0));
            rates.push(c.classes()[0].rate);
        }
        for (window, rate) in rates.iter().enumerate() {
            let raises = (window as i32 + 1) / 10;
            let expected = cut * 1.18f64.powi(raises);
            assert!((rate - expected).abs() < 1e-6, "window {window}: {rate} vs {expected}");
        }
    }

    #[test]
    fn proportional_smooths_rises_of_the_estimate_only() {
        let mut c = LatencyTarget::new(&plan(Adjust::Proportional, 1e6), 1, 1, 0);
        let mut now = 0;
        feed(&mut c, 0, 10, 10, &mut now);
        feed(&mut c, 0, 10, 30, &mut now);
        assert!((c.classes()[0].estimate_ns.unwrap() - 16.0 * MS as f64).abs() < 1.0);
        feed(&mut c, 0, 10, 4, &mut now);
        assert_eq!(c.classes()[0].estimate_ns, Some(4.0 * MS as f64));
    }

    #[test]
    fn a_raise_never_passes_1_5_times_what_arrived() {
        let raised = |arrivals: usize| {
            let mut c = LatencyTarget::new(&plan(Adjust::Proportional, 1e6), 1, 1, 0);
            c.classes[0].rate = 1_000.0;
            c.classes[0].estimate_ns = Some(0.0);
            let mut now = 0;
            for _ in 0..arrivals {
                now += 500_000;
                c.admit(0, 0, now);
            }
            now = 5 * MS;
            feed(&mut c, 0, 10, 0, &mut now);
            c.classes()[0].rate
        };
        // 5 in a 15 ms window: 333/s, 1.5 x that is below the rate: not raised.
        assert_eq!(raised(5), 1_000.0);
        // 10 in 15 ms: 667/s, 1.5 x is 1000: still not (but for rounding).
        assert!((raised(10) - 1_000.0).abs() < 1e-9);
        // 40 in 15 ms: 2667/s: the full raise, 1000 x (1 + 0.2 x 0.9).
        let mut c = LatencyTarget::new(&plan(Adjust::Proportional, 1e6), 1, 1, 0);
        c.classes[0].rate = 1_000.0;
        c.classes[0].estimate_ns = Some(0.0);
        let mut now = 0;
        for _ in 0..40 {
            now += 100_000;
            c.admit(0, 0, now);
        }
        now = 5 * MS;
        feed(&mut c, 0, 10, 0, &mut now);
        assert!((c.classes()[0].rate - 1_180.0).abs() < 1e-9);
    }

    #[test]
    fn a_bucket_admits_its_burst_then_its_rate() {
        let mut c = LatencyTarget::new(&plan(Adjust::Proportional, 1_000.0), 1, 1, 0);
        // 1000/s: a burst of 10 tokens, then one a millisecond.
        let admitted = (0..20).filter(|_| c.admit(0, 0, 0)).count();
        assert_eq!(admitted, 10);
        assert!(!c.admit(0, 0, 500_000));
        assert!(c.admit(0, 0, 1_000_000));
        assert_eq!(c.classes()[0].admitted_total, 11);
        assert_eq!(c.classes()[0].shed_total, 11);
    }

    #[test]
    fn a_higher_class_missing_the_target_cuts_the_lower_classes_tenfold_first_and_holds_their_raises() {
        let mut c = LatencyTarget::new(&plan(Adjust::Proportional, 1_000.0), 3, 1, 0);
        let mut now = 0;
        // The highest class misses: both lower classes are cut tenfold, it keeps its rate.
        feed_every(&mut c, 0, 10, 30, 10, &mut now);
        let rates: Vec<f64> = c.classes().iter().map(|c| c.rate).collect();
        assert_eq!(rates, [1_000.0, 100.0, 100.0]);
        // Again: 10 each, the least rate.
        feed_every(&mut c, 0, 10, 30, 10, &mut now);
        let rates: Vec<f64> = c.classes().iter().map(|c| c.rate).collect();
        assert_eq!(rates, [1_000.0, 10.0, 10.0]);
        // The lower classes are at the least rate: now the class itself is cut, by err + 1
        // (estimate 30 ms, err 0.5) from its throughput (100/s).
        feed_every(&mut c, 0, 10, 30, 10, &mut now);
        let rates: Vec<f64> = c.classes().iter().map(|c| c.rate).collect();
        assert!((rates[0] - 100.0 / 1.5).abs() < 1e-6);
        assert_eq!(rates[1..], [10.0, 10.0]);
        // The middle class missing cuts only the lowest.
        let mut c = LatencyTarget::new(&plan(Adjust::Proportional, 1_000.0), 3, 1, 0);
        let mut now = 0;
        feed(&mut c, 1, 10, 30, &mut now);
        let rates: Vec<f64> = c.classes().iter().map(|c| c.rate).collect();
        assert_eq!(rates, [1_000.0, 1_000.0, 100.0]);
        // Within the hold, the lowest class's good windows do not raise it.
        c.classes[2].estimate_ns = Some(0.0);
        feed(&mut c, 2, 10, 0, &mut now);
        assert_eq!(c.classes()[2].rate, 100.0, "held");
    }

    #[test]
    fn a_window_that_closes_with_nothing_admitted_counts_as_no_wait_and_with_requests_on_their_way_as_no_news() {
        let mut c = LatencyTarget::new(&plan(Adjust::Sandstorm, 1_000.0), 1, 1, 0);
        c.classes[0].estimate_ns = Some(4.0 * MS as f64);
        // Nothing arrived in the window: estimate 0.7 * 4 ms = 2.8 ms, err = -0.86, raised.
        assert!(c.admit(0, 0, 100 * MS));
        assert_eq!(c.classes()[0].estimate_ns, Some(0.7 * 4.0 * MS as f64));
        assert_eq!(c.classes()[0].rate, 1_000.0);
        // Admitted one above, and it has not come back when the next window closes: no change.
        let before = c.classes()[0].estimate_ns;
        c.admit(0, 0, 200 * MS);
        assert_eq!(c.classes()[0].estimate_ns, before);
    }
}
