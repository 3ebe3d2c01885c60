//! The batching controller of a queue with `"batch": "adaptive"`: how many requests are handed
//! to the stage at a time, and so taken by a worker at a time, moved by measured throughput.
//!
//! Bigger batches cost less per request (one hand-off, one steal, one wake-up for many) but let
//! one worker hold work its siblings could be doing, and keep requests waiting for a batch to
//! fill. Sandstorm's `AggThrottle` searched for the smallest batch that keeps throughput: every
//! window ([`WINDOW`], once at least [`MIN_REQUESTS`] have been taken) it compares the requests
//! taken per second with the window before and with the best seen:
//! - better than or as good as the window before: shrink the batch by a quarter;
//! - below 0.9 of the best: double it (and take this window as the best to beat from now on,
//!   so that a best from a busier time does not hold it at the top for ever);
//! - otherwise hold.
//!
//! The batch moves between 1 and [`MAX_BATCH`]. The arithmetic is here, on counts and
//! clock readings, so that a test drives it; the control thread ([`super::control`]) feeds it
//! each window and sets the queue's batch.

use std::time::Duration;

use crate::config::ranges::MAX_BATCH;

/// How often the batch is reconsidered.
pub(crate) const WINDOW: Duration = Duration::from_millis(100);

/// Fewer requests than this in a window say nothing about throughput: the window goes on.
const MIN_REQUESTS: u64 = 200;

/// Throughput below this share of the best seen grows the batch.
const FALLEN: f64 = 0.9;

#[derive(Debug, Clone)]
pub(crate) struct BatchSizer {
    size: usize,
    /// The best throughput seen since the batch last grew (requests per second).
    best: f64,
    /// The last window's throughput.
    last: Option<f64>,
    /// Requests taken and the clock at the start of the window.
    from: (u64, u64),
}

impl BatchSizer {
    /// Starts at the largest batch, with a window from `taken` requests at `now_ns`.
    pub fn new(taken: u64, now_ns: u64) -> Self {
        BatchSizer { size: MAX_BATCH, best: 0.0, last: None, from: (taken, now_ns) }
    }

    /// The stage's queue has had `taken` requests taken from it in all, at `now_ns`: closes the
    /// window if it has enough of them, and returns the batch size.
    pub fn sample(&mut self, taken: u64, now_ns: u64) -> usize {
        let (from_taken, from_ns) = self.from;
        let requests = taken.saturating_sub(from_taken);
        let elapsed_ns = now_ns.saturating_sub(from_ns);
        if requests < MIN_REQUESTS || elapsed_ns == 0 {
            return self.size;
        }
        self.from = (taken, now_ns);
        let throughput = requests as f64 * 1e9 / elapsed_ns as f64;
        if throughput < FALLEN * self.best {
            self.size = (self.size * 2).min(MAX_BATCH);
            self.best = throughput;
        } else if self.last.is_some_and(|last| throughput >= last) {
            self.size -= (self.size / 4).max(1).min(self.size - 1);
        }
        self.best = self.best.max(throughput);
        self.last = Some(throughput);
        self.size
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    /// Feeds a window a second long at each of `rates` (requests per second); the sizes after each.
    fn run(rates: &[u64]) -> Vec<usize> {
        let mut sizer = BatchSizer::new(0, 0);
        let mut taken = 0;
        rates
            .iter()
            .enumerate()
            .map(|(i, rate)| {
                taken += rate;
                sizer.sample(taken, (i as u64 + 1) * S)
            })
            .collect()
    }

    #[test]
    fn it_shrinks_by_a_quarter_while_throughput_holds_or_improves_down_to_one() {
        // The first window has nothing to compare with; then each as good as the one before.
        assert_eq!(run(&[1_000; 13]), [32, 24, 18, 14, 11, 9, 7, 6, 5, 4, 3, 2, 1]);
        assert_eq!(run(&[1_000; 15])[13..], [1, 1]);
    }

    #[test]
    fn a_fall_below_nine_tenths_of_the_best_doubles_it_and_resets_the_best() {
        // 1000, 1000 (shrink to 24), 1010 (18), 950 (hold: below the last, above 0.9 of 1010),
        // 900 (908 is 0.9 of the best: double to 32, best is now 900), 890 (hold), 900 (24).
        assert_eq!(run(&[1_000, 1_000, 1_010, 950, 900, 890, 900]), [32, 24, 18, 18, 32, 32, 24]);
    }

    #[test]
    fn a_window_with_too_few_requests_goes_on_until_it_has_enough() {
        let mut sizer = BatchSizer::new(0, 0);
        assert_eq!(sizer.sample(150, S), 32);
        assert_eq!(sizer.sample(300, 2 * S), 32);
        // The window ran 2 s for 300: 150/s. Then 200 in 1 s is better: shrink.
        assert_eq!(sizer.sample(500, 3 * S), 24);
    }
}
