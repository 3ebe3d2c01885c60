//! When each request is meant to be sent: the run's phases and the arrival process.
//!
//! A run is a list of [`Phase`]s (a warmup, then one measured phase, or one per sweep step),
//! each with a rate that may rise linearly across it (`--ramp`). `N(t)`, the expected number of
//! requests sent by time `t`, is the integral of that rate; request positions `u` are drawn in
//! that count and mapped back to time by `N⁻¹(u)`:
//!
//! 1. constant arrivals sit at `u = 0, 1, 2, ...`; poisson arrivals at running sums of
//!    exponential gaps of mean 1, so a rate that changes over time stays a Poisson process;
//! 2. with `T` sending threads, thread `k` takes `u = k, k+T, k+2T, ...` (constant) or its own
//!    Poisson stream of rate `1/T` (a sum of independent Poisson streams is one), so together
//!    the threads send exactly the one schedule;
//! 3. a position past the last phase ends the stream.

use seda_stages::splitmix64;

/// How requests are spaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// Evenly: at rate R, one every 1/R seconds.
    Constant,
    /// A Poisson process: exponential gaps of mean 1/R, seeded so runs repeat.
    Poisson { seed: u64 },
}

/// A stretch of the run with its own rate and its own results.
#[derive(Debug, Clone, PartialEq)]
pub struct Phase {
    /// For people: `warmup`, `run`, `step 3`.
    pub label: String,
    pub length_ns: u64,
    /// Requests per second at its start and at its end (equal unless ramping); `None` in a
    /// closed loop, which sends as fast as responses come.
    pub rate: Option<(f64, f64)>,
    /// Whether its requests count in the results (a warmup's do not).
    pub measured: bool,
}

impl Phase {
    /// The requests the schedule holds for this phase: the integral of its rate.
    pub fn expected_requests(&self) -> f64 {
        self.rate.map_or(0.0, |(a, b)| (a + b) / 2.0 * self.length_ns as f64 / 1e9)
    }
}

/// The phases, laid end to end from the run's start.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub phases: Vec<Phase>,
    pub arrival: Arrival,
    /// Per phase: its start (ns since the run's start) and `N` at its start.
    starts: Vec<(u64, f64)>,
}

impl Schedule {
    pub fn new(phases: Vec<Phase>, arrival: Arrival) -> Self {
        let mut starts = Vec::with_capacity(phases.len());
        let (mut t, mut n) = (0u64, 0.0);
        for p in &phases {
            starts.push((t, n));
            t += p.length_ns;
            n += p.expected_requests();
        }
        Schedule { phases, arrival, starts }
    }

    /// The schedule as it ran when cut `at_ns` after its start: phases past the cut keep
    /// their place with no length, the one it falls in ends there (a ramp at the rate it had
    /// reached).
    pub fn cut(&self, at_ns: u64) -> Schedule {
        let phases = self
            .phases
            .iter()
            .zip(&self.starts)
            .map(|(phase, &(start, _))| {
                let length_ns = phase.length_ns.min(at_ns.saturating_sub(start));
                let rate = phase.rate.map(|(a, b)| (a, a + (b - a) * length_ns as f64 / phase.length_ns.max(1) as f64));
                Phase { length_ns, rate, ..phase.clone() }
            })
            .collect();
        Schedule::new(phases, self.arrival)
    }

    pub fn length_ns(&self) -> u64 {
        self.phases.iter().map(|p| p.length_ns).sum()
    }

    pub fn phase_start_ns(&self, phase: usize) -> u64 {
        self.starts[phase].0
    }

    /// The phase running at `t` ns since the start (the last one past the end).
    pub fn phase_at(&self, t: u64) -> usize {
        self.starts.iter().rposition(|&(start, _)| start <= t).unwrap_or(0)
    }

    /// `N⁻¹(u)`: when the request at position `u` is due (ns since the start), and its phase.
    pub fn time_of(&self, u: f64) -> Option<(u64, usize)> {
        let i = self.starts.iter().rposition(|&(_, n)| n <= u)?;
        let phase = &self.phases[i];
        let (a, b) = phase.rate?;
        let (start, n0) = self.starts[i];
        let du = u - n0;
        if du >= phase.expected_requests() {
            return None;
        }
        // Rate a + k·s (s in seconds) gives N = a·s + k·s²/2; this root of it stays exact when
        // k = 0 and when a = 0.
        let k = (b - a) / (phase.length_ns as f64 / 1e9);
        let s = 2.0 * du / (a + (a * a + 2.0 * k * du).sqrt());
        Some((start + (s * 1e9).round() as u64, i))
    }

    /// The send times for thread `thread` of `threads`, in order.
    pub fn arrivals(&self, thread: usize, threads: usize) -> Arrivals<'_> {
        let stride = threads as f64;
        let (position, rng) = match self.arrival {
            Arrival::Constant => (thread as f64, 0),
            Arrival::Poisson { seed } => (0.0, splitmix64(seed ^ splitmix64(thread as u64 + 1))),
        };
        let mut arrivals = Arrivals { schedule: self, position, stride, rng };
        if let Arrival::Poisson { .. } = self.arrival {
            arrivals.position = arrivals.gap();
        }
        arrivals
    }
}

/// One thread's share of the schedule: `(due ns since the start, phase)` in order.
pub struct Arrivals<'s> {
    schedule: &'s Schedule,
    position: f64,
    stride: f64,
    rng: u64,
}

impl Arrivals<'_> {
    /// An exponential gap of mean `stride` (the thread's share of positions).
    fn gap(&mut self) -> f64 {
        self.rng = splitmix64(self.rng);
        // 53 random bits in (0, 1]: never ln(0).
        let unit = ((self.rng >> 11) + 1) as f64 / (1u64 << 53) as f64;
        -unit.ln() * self.stride
    }
}

impl Iterator for Arrivals<'_> {
    type Item = (u64, usize);

    fn next(&mut self) -> Option<(u64, usize)> {
        let due = self.schedule.time_of(self.position)?;
        self.position += match self.schedule.arrival {
            Arrival::Constant => self.stride,
            Arrival::Poisson { .. } => self.gap(),
        };
        Some(due)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(label: &str, ms: u64, rate: (f64, f64), measured: bool) -> Phase {
        Phase { label: label.into(), length_ns: ms * 1_000_000, rate: Some(rate), measured }
    }

    #[test]
    fn constant_arrivals_are_evenly_spaced_and_cover_each_phase_exactly() {
        // 1000/s for 10 ms, then 2000/s for 5 ms: 10 requests 1 ms apart, then 10 at 0.5 ms.
        let s = Schedule::new(
            vec![phase("warmup", 10, (1000.0, 1000.0), false), phase("run", 5, (2000.0, 2000.0), true)],
            Arrival::Constant,
        );
        let all: Vec<(u64, usize)> = s.arrivals(0, 1).collect();
        assert_eq!(all.len(), 20);
        assert_eq!(&all[..3], &[(0, 0), (1_000_000, 0), (2_000_000, 0)]);
        assert_eq!(all[9], (9_000_000, 0));
        assert_eq!(&all[10..12], &[(10_000_000, 1), (10_500_000, 1)]);
        assert_eq!(all[19], (14_500_000, 1));
    }

    #[test]
    fn threads_share_one_schedule_between_them() {
        let s = Schedule::new(vec![phase("run", 10, (1000.0, 1000.0), true)], Arrival::Constant);
        let mut merged: Vec<u64> = (0..3).flat_map(|k| s.arrivals(k, 3).map(|(t, _)| t)).collect();
        merged.sort_unstable();
        let one: Vec<u64> = s.arrivals(0, 1).map(|(t, _)| t).collect();
        assert_eq!(merged, one);
    }

    #[test]
    fn a_ramp_from_zero_sends_request_n_at_the_root_of_its_count() {
        // Rate rising 0 -> 2000/s over 1 s: N(t) = 1000 t², so request n is due at sqrt(n/1000) s.
        let s = Schedule::new(vec![phase("run", 1000, (0.0, 2000.0), true)], Arrival::Constant);
        let all: Vec<(u64, usize)> = s.arrivals(0, 1).collect();
        assert_eq!(all.len(), 1000);
        assert_eq!(all[0].0, 0);
        assert_eq!(all[10].0, 100_000_000); // sqrt(10/1000) s = 0.1 s
        assert_eq!(all[250].0, 500_000_000); // sqrt(0.25) s
        assert_eq!(all[999].0, (0.999f64.sqrt() * 1e9).round() as u64);
    }

    #[test]
    fn a_ramp_between_rates_holds_the_average_count() {
        // 1000 -> 3000/s over 1 s: 2000 requests; the first half second holds 1000·0.5 + 1000·0.25.
        let s = Schedule::new(vec![phase("run", 1000, (1000.0, 3000.0), true)], Arrival::Constant);
        let times: Vec<u64> = s.arrivals(0, 1).map(|(t, _)| t).collect();
        assert_eq!(times.len(), 2000);
        assert_eq!(times.iter().filter(|&&t| t < 500_000_000).count(), 750);
    }

    #[test]
    fn poisson_arrivals_average_the_rate_and_repeat_with_the_seed() {
        let s = Schedule::new(vec![phase("run", 10_000, (10_000.0, 10_000.0), true)], Arrival::Poisson { seed: 7 });
        let a: Vec<u64> = s.arrivals(0, 1).map(|(t, _)| t).collect();
        let b: Vec<u64> = s.arrivals(0, 1).map(|(t, _)| t).collect();
        assert_eq!(a, b);
        // 100,000 expected; a Poisson count's standard deviation is sqrt(100,000) = 316.
        assert!((a.len() as i64 - 100_000).abs() < 2_000, "{}", a.len());
        assert!(a.windows(2).all(|w| w[0] <= w[1]));
        // Exponential gaps: about 1/e of them are longer than the mean (100 us).
        let long = a.windows(2).filter(|w| w[1] - w[0] > 100_000).count() as f64 / a.len() as f64;
        assert!((long - (-1f64).exp()).abs() < 0.01, "{long}");
        // Two threads: independent streams at half the rate each.
        let halves = s.arrivals(0, 2).count() + s.arrivals(1, 2).count();
        assert!((halves as i64 - 100_000).abs() < 2_000, "{halves}");
    }

    #[test]
    fn a_cut_schedule_ends_at_the_cut_with_the_rate_it_had() {
        let s = Schedule::new(
            vec![
                phase("warmup", 10, (1000.0, 1000.0), false),
                phase("run", 20, (0.0, 2000.0), true),
                phase("after", 5, (1.0, 1.0), true),
            ],
            Arrival::Constant,
        );
        let cut = s.cut(20_000_000);
        let shape: Vec<(u64, Option<(f64, f64)>)> = cut.phases.iter().map(|p| (p.length_ns, p.rate)).collect();
        assert_eq!(
            shape,
            [(10_000_000, Some((1000.0, 1000.0))), (10_000_000, Some((0.0, 1000.0))), (0, Some((1.0, 1.0)))]
        );
        // The cut schedule holds exactly the requests of the full one due before the cut.
        let before: Vec<(u64, usize)> = s.arrivals(0, 1).take_while(|&(t, _)| t < 20_000_000).collect();
        assert_eq!(cut.arrivals(0, 1).collect::<Vec<_>>(), before);
    }

    #[test]
    fn phases_are_found_by_time() {
        let s = Schedule::new(
            vec![phase("warmup", 10, (1.0, 1.0), false), phase("run", 5, (1.0, 1.0), true)],
            Arrival::Constant,
        );
        assert_eq!((s.phase_at(0), s.phase_at(9_999_999), s.phase_at(10_000_000)), (0, 0, 1));
        assert_eq!((s.phase_at(99_000_000), s.length_ns(), s.phase_start_ns(1)), (1, 15_000_000, 10_000_000));
    }
}
