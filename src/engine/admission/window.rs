//! A window of response-time samples that closes after a count or a span of time, whichever
//! comes first, and reports a percentile of what it held.

/// What a closed window held.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Closed {
    /// The chosen percentile of the samples (nearest rank), or `None` when none came in.
    pub percentile_ns: Option<u64>,
    /// How long the window was open.
    pub span_ns: u64,
    /// How many samples it held.
    pub count: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Window {
    every: usize,
    span_ns: u64,
    percentile: f64,
    started_ns: u64,
    samples: Vec<u64>,
}

impl Window {
    /// A window closing after `every` samples or `span_ns`, opened at `now`.
    pub fn new(every: u32, span_ns: u64, percentile: f64, now: u64) -> Self {
        let every = every.max(1) as usize;
        Window { every, span_ns: span_ns.max(1), percentile, started_ns: now, samples: Vec::with_capacity(every) }
    }

    /// Adds one response time; returns the window if this closed it.
    pub fn add(&mut self, latency_ns: u64, now: u64) -> Option<Closed> {
        self.samples.push(latency_ns);
        if self.samples.len() >= self.every {
            return Some(self.close(now));
        }
        self.tick(now)
    }

    /// Closes the window if its span is over; returns it if so.
    pub fn tick(&mut self, now: u64) -> Option<Closed> {
        (now.saturating_sub(self.started_ns) >= self.span_ns).then(|| self.close(now))
    }

    fn close(&mut self, now: u64) -> Closed {
        let percentile_ns = percentile(&mut self.samples, self.percentile);
        let span_ns = now.saturating_sub(self.started_ns).max(1);
        let count = self.samples.len();
        self.samples.clear();
        self.started_ns = now;
        Closed { percentile_ns, span_ns, count }
    }

    /// The window's span when it closes on time.
    pub fn span_ns(&self) -> u64 {
        self.span_ns
    }
}

/// The `p`th percentile of `samples` by nearest rank (the smallest sample at or above `p`% of
/// them); reorders `samples`.
pub(crate) fn percentile(samples: &mut [u64], p: f64) -> Option<u64> {
    if samples.is_empty() {
        return None;
    }
    let rank = ((p / 100.0) * samples.len() as f64).ceil() as usize;
    let index = rank.clamp(1, samples.len()) - 1;
    Some(*samples.select_nth_unstable(index).1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_percentile_is_the_nearest_rank() {
        let mut ten: Vec<u64> = (1..=10).rev().collect();
        assert_eq!(percentile(&mut ten, 90.0), Some(9));
        assert_eq!(percentile(&mut ten, 50.0), Some(5));
        assert_eq!(percentile(&mut ten, 100.0), Some(10));
        assert_eq!(percentile(&mut ten, 0.0), Some(1));
        assert_eq!(percentile(&mut [], 90.0), None);
    }

    #[test]
    fn a_window_closes_on_its_count_or_its_span_whichever_first() {
        let mut w = Window::new(3, 1_000, 50.0, 0);
        assert_eq!(w.add(10, 1), None);
        assert_eq!(w.add(30, 2), None);
        assert_eq!(w.add(20, 3), Some(Closed { percentile_ns: Some(20), span_ns: 3, count: 3 }));
        assert_eq!(w.add(5, 500), None);
        assert_eq!(w.tick(1_002), None);
        assert_eq!(w.tick(1_003), Some(Closed { percentile_ns: Some(5), span_ns: 1_000, count: 1 }));
        assert_eq!(w.tick(2_003), Some(Closed { percentile_ns: None, span_ns: 1_000, count: 0 }));
    }
}
