//! A time window of a run (`--from`/`--to`) and the stats of its intervals, merged.
//!
//! An interval belongs to the window if it *starts* in it: `from <= start < to`. Intervals are
//! the unit the log has (one `metrics_interval_ms`), so a window's percentiles are exactly those
//! of the merged histograms of its intervals, never of parts of them.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::record::{Interval, RecordedRun, StageCounters};

/// Seconds from the start of the run; `None` is open-ended.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Window {
    pub from: Option<Duration>,
    pub to: Option<Duration>,
}

impl Window {
    /// The whole run.
    pub const ALL: Window = Window { from: None, to: None };

    pub fn is_whole_run(&self) -> bool {
        self.from.is_none() && self.to.is_none()
    }

    pub fn contains(&self, interval: &Interval) -> bool {
        self.from.is_none_or(|from| interval.start >= from) && self.to.is_none_or(|to| interval.start < to)
    }
}

impl fmt::Display for Window {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.from, self.to) {
            (None, None) => write!(f, "the whole run"),
            (Some(from), None) => write!(f, "intervals starting from {:.3} s", from.as_secs_f64()),
            (None, Some(to)) => write!(f, "intervals starting before {:.3} s", to.as_secs_f64()),
            (Some(from), Some(to)) => {
                let (from, to) = (from.as_secs_f64(), to.as_secs_f64());
                write!(f, "intervals starting from {from:.3} s to before {to:.3} s")
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("{}: no interval in the window ({window}); the run's intervals start from {first:.3} s to {last:.3} s", dir.display())]
pub struct EmptyWindow {
    pub dir: std::path::PathBuf,
    pub window: Window,
    pub first: f64,
    pub last: f64,
}

/// A run's stats over a window: each series' histograms and each stage's counters, merged.
pub struct Slice<'a> {
    pub run: &'a RecordedRun,
    pub window: Window,
    pub intervals: Vec<&'a Interval>,
    /// By tag, in nanoseconds.
    pub histograms: BTreeMap<String, Histogram<u64>>,
    pub counters: BTreeMap<String, StageCounters>,
    /// How long the window lasted, for rates: the run's elapsed time for the whole run; else
    /// from the first interval's start to the last one's end (cut at the run's end).
    pub seconds: f64,
}

impl<'a> Slice<'a> {
    pub fn of(run: &'a RecordedRun, window: Window) -> Result<Self, EmptyWindow> {
        let intervals: Vec<&Interval> = run.intervals.iter().filter(|i| window.contains(i)).collect();
        let (Some(first), Some(last)) = (intervals.first(), intervals.last()) else {
            let start = |i: Option<&Interval>| i.map_or(0.0, |i| i.start.as_secs_f64());
            return Err(EmptyWindow {
                dir: run.dir.clone(),
                window,
                first: start(run.intervals.first()),
                last: start(run.intervals.last()),
            });
        };
        let seconds = if window.is_whole_run() {
            run.summary.elapsed_s
        } else {
            let end = last.end().as_secs_f64().min(run.summary.elapsed_s);
            let seconds = end - first.start.as_secs_f64();
            if seconds > 0.0 {
                seconds
            } else {
                last.end().as_secs_f64() - first.start.as_secs_f64()
            }
        };
        let mut histograms: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
        let mut counters: BTreeMap<String, StageCounters> = BTreeMap::new();
        for interval in &intervals {
            for (tag, h) in &interval.histograms {
                match histograms.get_mut(tag) {
                    // Growing, it takes values past its range: the intervals of a log need not
                    // share one range (another tool may size each to its values).
                    Some(into) => into.add(h).expect("an auto-resizing histogram adds any other"),
                    None => {
                        let mut first = h.clone();
                        first.auto(true);
                        histograms.insert(tag.clone(), first);
                    }
                }
            }
            for (stage, c) in &interval.counters {
                counters.entry(stage.clone()).or_default().add(c);
            }
        }
        Ok(Slice { run, window, intervals, histograms, counters, seconds })
    }

    /// The merged histogram of `tag`, if it has any value in the window.
    pub fn histogram(&self, tag: &str) -> Option<&Histogram<u64>> {
        self.histograms.get(tag).filter(|h| !h.is_empty())
    }

    /// Per second of the window.
    pub fn rate(&self, n: u64) -> f64 {
        if self.seconds > 0.0 {
            n as f64 / self.seconds
        } else {
            0.0
        }
    }
}
