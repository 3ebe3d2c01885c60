//! The collector, on the main thread: merges the sending threads' interval reports into per
//! phase totals and, interval by interval, into the run's log, and drives the progress line.
//!
//! Protocol:
//! 1. each sending thread reports every interval it passes (empty ones too), saying which
//!    interval it counts into next;
//! 2. an interval is final once every thread has moved past it (or is done); final intervals
//!    are kept compactly (their non-empty buckets only), so a long run holds little;
//! 3. the run ends when every thread has said it is done.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;

use super::correction::Latencies;
use super::progress::Progress;
use super::schedule::Schedule;
use super::tally::{Report, Tally};
use crate::metrics::new_histogram;

/// One final interval of the measured phases, for the `.hlog`.
pub struct IntervalRecord {
    pub index: u64,
    /// (value, count) pairs of the corrected, uncorrected, send-lag and connection-wait
    /// histograms.
    pub buckets: [Vec<(u64, u64)>; 4],
}

impl IntervalRecord {
    fn of(index: u64, l: &Latencies) -> Self {
        let compact =
            |h: &Histogram<u64>| h.iter_recorded().map(|v| (v.value_iterated_to(), v.count_at_value())).collect();
        IntervalRecord {
            index,
            buckets: [
                compact(&l.corrected),
                compact(&l.uncorrected),
                compact(&l.send_lag),
                compact(&l.connection_wait),
            ],
        }
    }

    /// The histogram `which` (0 corrected, 1 uncorrected, 2 send lag, 3 connection wait).
    pub fn histogram(&self, which: usize) -> Histogram<u64> {
        let mut h = new_histogram();
        for &(v, n) in &self.buckets[which] {
            h.saturating_record_n(v, n);
        }
        h
    }
}

/// What the run measured.
pub struct Collected {
    /// Per phase of the schedule.
    pub phases: Vec<Tally>,
    /// The measured phases' responses, interval by interval (intervals without any left out).
    pub intervals: Vec<IntervalRecord>,
}

#[derive(Default)]
struct Open {
    measured: Latencies,
    responses: u64,
    /// The phase most of its requests belong to, for the progress line.
    phase: usize,
}

/// Receives until every one of `threads` is done.
pub fn collect(
    reports: flume::Receiver<Report>,
    threads: usize,
    schedule: &Schedule,
    interval_ns: u64,
    mut progress: Option<Progress>,
) -> Collected {
    let mut phases = vec![Tally::default(); schedule.phases.len()];
    let mut intervals = Vec::new();
    let mut open: BTreeMap<u64, Open> = BTreeMap::new();
    let mut watermark = vec![0u64; threads];
    let mut done = 0;
    while done < threads {
        let Ok(report) = reports.recv() else { break };
        match report {
            Report::Interval { thread, index, next, phases: counts } => {
                let slot = open.entry(index).or_default();
                for (p, tally) in counts {
                    if schedule.phases[p].measured {
                        slot.measured.add(&tally.latencies);
                    }
                    slot.responses += tally.responses;
                    slot.phase = slot.phase.max(p);
                    phases[p].add(&tally);
                }
                watermark[thread] = next;
            }
            Report::Done { thread } => {
                watermark[thread] = u64::MAX;
                done += 1;
            }
        }
        let final_below = watermark.iter().copied().min().unwrap_or(u64::MAX);
        while let Some(entry) = open.first_entry() {
            if *entry.key() >= final_below {
                break;
            }
            let (index, interval) = entry.remove_entry();
            if let Some(progress) = progress.as_mut() {
                let mut so_far = new_histogram();
                let mut errors = 0;
                for (tally, phase) in phases.iter().zip(&schedule.phases) {
                    errors += tally.error_count();
                    if phase.measured {
                        let _ = so_far.add(&tally.latencies.corrected);
                    }
                }
                let elapsed_s = ((index + 1) * interval_ns) as f64 / 1e9;
                let rate = interval.responses as f64 / (interval_ns as f64 / 1e9);
                progress.show(elapsed_s, &schedule.phases[interval.phase].label, rate, errors, &so_far);
            }
            if !interval.measured.corrected.is_empty() || !interval.measured.send_lag.is_empty() {
                intervals.push(IntervalRecord::of(index, &interval.measured));
            }
        }
    }
    if let Some(progress) = progress.as_mut() {
        progress.clear();
    }
    Collected { phases, intervals }
}
