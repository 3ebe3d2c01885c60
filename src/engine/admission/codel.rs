//! `codel`: controlled delay (Nichols and Jacobson, RFC 8289), deciding at dequeue.
//!
//! A request's sojourn is how long it waited in the stage's queue. As a worker takes each
//! request:
//! 1. a sojourn under the target clears the watch: the queue is draining;
//! 2. the first sojourn at or above the target starts a watch of one interval; if every
//!    request taken until it ends waited at least the target, the least delay over that
//!    interval stayed above the target: a standing queue, not a burst;
//! 3. then the controller sheds the request in hand and enters the dropping state, scheduling
//!    the next shedding interval / sqrt(count) later: the longer the standing queue stays, the
//!    faster it sheds; it leaves the state at the first request under the target;
//! 4. re-entering soon after leaving (within 16 intervals) starts from the count it had
//!    reached, less the count it entered with, rather than from one.

use crate::config::CodelPlan;

#[derive(Debug, Clone)]
pub(crate) struct Codel {
    target_ns: u64,
    interval_ns: u64,
    /// When the watch (step 2) ends; 0 for no watch.
    first_above_ns: u64,
    pub dropping: bool,
    drop_next_ns: u64,
    pub count: u32,
    last_count: u32,
    pub kept_total: u64,
    pub shed_total: u64,
    /// The last sojourn seen, ns.
    pub last_sojourn_ns: u64,
}

impl Codel {
    pub fn new(plan: &CodelPlan) -> Self {
        Codel {
            target_ns: plan.target.as_nanos() as u64,
            interval_ns: plan.interval.as_nanos() as u64,
            first_above_ns: 0,
            dropping: false,
            drop_next_ns: 0,
            count: 0,
            last_count: 0,
            kept_total: 0,
            shed_total: 0,
            last_sojourn_ns: 0,
        }
    }

    /// Whether the request taken at `now` after waiting `sojourn_ns` is shed.
    pub fn shed(&mut self, sojourn_ns: u64, now: u64) -> bool {
        self.last_sojourn_ns = sojourn_ns;
        let shed = self.decide(sojourn_ns, now);
        if shed {
            self.shed_total += 1;
        } else {
            self.kept_total += 1;
        }
        shed
    }

    fn decide(&mut self, sojourn_ns: u64, now: u64) -> bool {
        let ok_to_drop = self.ok_to_drop(sojourn_ns, now);
        if self.dropping {
            if !ok_to_drop {
                self.dropping = false;
                return false;
            }
            if now >= self.drop_next_ns {
                self.count += 1;
                self.drop_next_ns = self.control_law(self.drop_next_ns);
                return true;
            }
            return false;
        }
        if !ok_to_drop {
            return false;
        }
        self.dropping = true;
        let delta = self.count.saturating_sub(self.last_count);
        let recently = now.saturating_sub(self.drop_next_ns) < 16 * self.interval_ns;
        self.count = if delta > 1 && recently { delta } else { 1 };
        self.drop_next_ns = self.control_law(now);
        self.last_count = self.count;
        true
    }

    /// Steps 1 and 2: whether the least sojourn has stayed above the target for an interval.
    fn ok_to_drop(&mut self, sojourn_ns: u64, now: u64) -> bool {
        if sojourn_ns < self.target_ns {
            self.first_above_ns = 0;
            return false;
        }
        if self.first_above_ns == 0 {
            self.first_above_ns = now + self.interval_ns;
            return false;
        }
        now >= self.first_above_ns
    }

    /// The next shedding time after `t`: interval / sqrt(count) later.
    fn control_law(&self, t: u64) -> u64 {
        t + (self.interval_ns as f64 / (self.count.max(1) as f64).sqrt()) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const MS: u64 = 1_000_000;

    fn codel() -> Codel {
        Codel::new(&CodelPlan { target: Duration::from_millis(5), interval: Duration::from_millis(100) })
    }

    /// The times (ms from 1) at which requests taken every millisecond, each having waited
    /// `sojourn_ms(t)`, are shed, up to `until_ms`.
    fn shed_at(c: &mut Codel, until_ms: u64, sojourn_ms: impl Fn(u64) -> u64) -> Vec<u64> {
        (1..=until_ms).filter(|&t| c.shed(sojourn_ms(t) * MS, t * MS)).collect()
    }

    #[test]
    fn a_burst_shorter_than_the_interval_is_never_shed() {
        let mut c = codel();
        // 99 ms above the target, then one under it: the watch is cleared.
        assert_eq!(shed_at(&mut c, 200, |t| if t < 100 { 50 } else { 1 }), Vec::<u64>::new());
        assert!(!c.dropping);
    }

    #[test]
    fn a_standing_queue_is_shed_at_intervals_shrinking_as_one_over_sqrt_count() {
        let mut c = codel();
        // Always 10 ms: the watch starts at 1 ms, ends at 101 ms; the first shed is there,
        // the next 100 ms later (count 1), then after 100/sqrt(2) = 70.71 ms (271.71),
        // 100/sqrt(3) = 57.74 ms (329.45), 50 ms (379.45), 44.72 ms (424.17), 40.82 ms
        // (464.99), each at the first request taken at or past it.
        let shed = shed_at(&mut c, 500, |_| 10);
        assert_eq!(shed, [101, 201, 272, 330, 380, 425, 465]);
        assert_eq!(c.count, 7);
        assert!(c.dropping);
    }

    #[test]
    fn the_dropping_state_ends_at_the_first_request_under_the_target_and_resumes_from_its_count() {
        let mut c = codel();
        let shed = shed_at(&mut c, 330, |_| 10);
        assert_eq!(shed, [101, 201, 272, 330]);
        assert_eq!((c.count, c.last_count), (4, 1));
        // One request under the target ends the state.
        assert!(!c.shed(MS, 331 * MS));
        assert!(!c.dropping);
        // Above again: a new watch of an interval (332 to 432 ms), then dropping again, with
        // count 4 - 1 = 3 (it left less than 16 intervals ago), so the next shed comes
        // 100 / sqrt(3) = 57.73 ms later.
        let shed: Vec<u64> = (332..=500).filter(|&t| c.shed(10 * MS, t * MS)).collect();
        assert_eq!(shed, [432, 490]);
        assert_eq!(c.count, 4);
    }
}
