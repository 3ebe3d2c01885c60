//! The collector, on the main thread: merges the sending threads' interval reports into per
//! phase totals and, interval by interval, into the run's log, and drives the progress line.
//!
//! Protocol:
//! 1. each sending thread reports every interval it passes (empty ones too), saying which
//!    interval it counts into next;
//! 2. an interval is final once every thread has moved past it (or is done); final intervals
//!    are kept compactly (their non-empty buckets only), so a long run holds little;
//! 3. the run ends when every thread has said it is done. While it waits, it watches the stop
//!    flag (Ctrl-C), and cuts the run short when it is set.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;

use super::correction::Latencies;
use super::progress::Progress;
use super::run_end::RunEnd;
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

/// Receives until every one of `threads` is done; `stop` set ends the run at once.
pub fn collect(
    reports: flume::Receiver<Report>,
    threads: usize,
    schedule: &Schedule,
    interval_ns: u64,
    mut progress: Option<Progress>,
    (stop, run_end): (&AtomicBool, &RunEnd),
) -> Collected {
    let mut phases = vec![Tally::default(); schedule.phases.len()];
    let mut intervals = Vec::new();
    let mut open: BTreeMap<u64, Open> = BTreeMap::new();
    let mut watermark = vec![0u64; threads];
    let mut done = 0;
    while done < threads {
        if stop.load(Ordering::Relaxed) {
            run_end.stop_now();
        }
        let report = match reports.recv_timeout(Duration::from_millis(50)) {
            Ok(report) => report,
            Err(flume::RecvTimeoutError::Timeout) => continue,
            Err(flume::RecvTimeoutError::Disconnected) => break,
        };
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loadgen::correction::Timing;
    use crate::loadgen::schedule::{Arrival, Phase};
    use crate::loadgen::tally::ThreadTally;

    const S: u64 = 1_000_000_000;

    fn schedule() -> Schedule {
        let phase = |label: &str, measured| Phase { label: label.into(), length_ns: 2 * S, rate: None, measured };
        Schedule::new(vec![phase("warmup", false), phase("run", true)], Arrival::Constant)
    }

    fn response(tally: &mut ThreadTally, phase: usize, latency_ns: u64) {
        let t = Timing { intended_ns: 0, dispatched_ns: 0, sent_ns: 0, done_ns: latency_ns };
        tally.phase(phase).response(&t, 200);
    }

    #[test]
    fn intervals_from_every_thread_merge_into_phases_and_a_log_of_the_measured_ones() {
        let (tx, rx) = flume::bounded(64);
        let schedule = schedule();
        let mut a = ThreadTally::new(0, 0, S, tx.clone());
        let mut b = ThreadTally::new(1, 0, S, tx);
        // Interval 0: warmup only. Interval 1: a warmup request ending late and two measured.
        // Thread b skips interval 2 (nothing happened) and ends in interval 3.
        response(&mut a, 0, 1_000);
        response(&mut b, 0, 2_000);
        a.tick(S);
        b.tick(S);
        response(&mut a, 0, 3_000);
        response(&mut a, 1, 4_000);
        response(&mut b, 1, 5_000);
        a.tick(2 * S);
        b.tick(3 * S);
        response(&mut b, 1, 6_000);
        a.finish();
        b.finish();

        let end = RunEnd::new(0, 4 * S);
        let collected = collect(rx, 2, &schedule, S, None, (&AtomicBool::new(false), &end));
        let lens: Vec<(u64, u64)> =
            collected.phases.iter().map(|t| (t.responses, t.latencies.corrected.len())).collect();
        assert_eq!(lens, [(3, 3), (3, 3)]);
        let log: Vec<(u64, u64)> = collected.intervals.iter().map(|r| (r.index, r.histogram(0).len())).collect();
        // Interval 0 held no measured request; interval 1 two; interval 3 one.
        assert_eq!(log, [(1, 2), (3, 1)]);
        assert_eq!(collected.intervals[1].histogram(0).max(), collected.phases[1].latencies.corrected.max());
    }
}
