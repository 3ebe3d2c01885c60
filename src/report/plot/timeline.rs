//! Latency over time: per interval, the end-to-end p99 and max (and those of any other
//! end-to-end series of the log, such as a load generator's) and each stage's p99 queue wait
//! (where SEDA's time goes when a stage falls behind), with the throughput of each interval
//! under it on the same time axis, and the rejections under that if there were any (in a panel
//! of their own: a burst of rejections would flatten the throughput).

use super::chart::{count_label, legend, seconds_label, title, Area, Axis, Panel, Series};
use super::style::{self, series_name, Kind};
use super::svg::{Stroke, Svg};
use crate::record::{Interval, E2E_TAG};
use crate::report::spectra::series_tags;
use crate::report::window::Slice;

const WIDTH: f64 = 980.0;
const LATENCY: Area = Area { left: 100.0, top: 70.0, width: 600.0, height: 300.0 };
const THROUGHPUT: Area = Area { left: 100.0, top: 392.0, width: 600.0, height: 140.0 };
const REJECTIONS: Area = Area { left: 100.0, top: 552.0, width: 600.0, height: 90.0 };
/// Below the last panel: its tick labels and the time axis title.
const FOOTER: f64 = 70.0;

pub const COMPLETED: &str = "completed/s";
pub const REJECTED: &str = "rejected/s";
const COMPLETED_FILL: &str = "#9bb7d4";
pub(super) const REJECTED_FILL: &str = "#e15759";

/// Where an interval is drawn on a time axis: its middle.
pub(super) fn middle(i: &Interval) -> f64 {
    (i.start + i.length / 2).as_secs_f64()
}

/// `n` over the interval's length, per second.
pub(super) fn per_second(n: u64, i: &Interval) -> f64 {
    let s = i.length.as_secs_f64();
    if s > 0.0 {
        n as f64 / s
    } else {
        0.0
    }
}

/// The time axis of `intervals`, from the first one's start to the last one's end.
pub(super) fn time_axis(intervals: &[&Interval]) -> Axis {
    let start = intervals.first().map_or(0.0, |i| i.start.as_secs_f64());
    let end = intervals.last().map_or(1.0, |i| i.end().as_secs_f64());
    Axis::linear(start, end, "time since the start of the run (s)", seconds_label)
}

pub fn draw(slice: &Slice<'_>, label: &str) -> String {
    let intervals = &slice.intervals;
    let stages: Vec<&String> = slice.run.summary.stages_in_order().map(|(name, _)| name).collect();
    let tags = series_tags(slice);
    let over_time = |tag: &str, q: Option<f64>| {
        intervals
            .iter()
            .filter_map(|i| {
                let h = i.histograms.get(tag).filter(|h| !h.is_empty())?;
                let ns = q.map_or_else(|| h.max(), |q| h.value_at_quantile(q));
                Some((middle(i), ns as f64 / 1_000.0))
            })
            .collect::<Vec<_>>()
    };
    // Drawn in this order: stages' queue waits under end to end, each max under its p99.
    let mut latency = Vec::new();
    for (tag, kind) in tags.iter().zip(style::kinds(&stages, &tags)) {
        if slice.histogram(tag).is_none() {
            continue;
        }
        let name = series_name(tag);
        match kind {
            Kind::Stage(_, "queue_wait") => latency.insert(
                0,
                Series {
                    name: format!("{name} p99"),
                    stroke: style::thin_stroke(kind, stages.len()),
                    points: over_time(tag, Some(0.99)),
                },
            ),
            Kind::Stage(..) => {}
            Kind::EndToEnd | Kind::Other(_) => {
                let max = Series {
                    name: format!("{name} max"),
                    stroke: style::thin_stroke(kind, stages.len()),
                    points: over_time(tag, None),
                };
                let p99 = Series {
                    name: format!("{name} p99"),
                    stroke: style::stroke(kind, stages.len()),
                    points: over_time(tag, Some(0.99)),
                };
                latency.extend([max, p99]);
            }
        }
    }
    let e2e_count = |i: &Interval| i.histograms.get(E2E_TAG).map_or(0, |h| h.len());
    let rejected = |i: &Interval| i.counters.values().map(|c| c.rejected).sum::<u64>();
    let completed: Vec<(f64, f64, f64)> =
        intervals.iter().map(|i| (i.start.as_secs_f64(), i.end().as_secs_f64(), per_second(e2e_count(i), i))).collect();
    let rejections: Vec<(f64, f64, f64)> =
        intervals.iter().map(|i| (i.start.as_secs_f64(), i.end().as_secs_f64(), per_second(rejected(i), i))).collect();
    let any_rejected = intervals.iter().any(|i| rejected(i) > 0);

    let time = time_axis(intervals);
    let all_latency = || latency.iter().flat_map(|s| s.points.iter().map(|p| p.1));
    let lo = all_latency().filter(|&v| v > 0.0).fold(f64::INFINITY, f64::min);
    let hi = all_latency().fold(0.0, f64::max);
    let top = Panel { area: LATENCY, x: time.clone(), y: Axis::latency(lo.min(hi), hi, "latency") };
    let rate = |bars: &[(f64, f64, f64)], title| {
        Axis::linear(0.0, bars.iter().map(|b| b.2).fold(0.0, f64::max), title, count_label)
    };
    let throughput = Panel { area: THROUGHPUT, x: time.clone(), y: rate(&completed, "completed/s") };
    let rejected_panel = Panel { area: REJECTIONS, x: time, y: rate(&rejections, "rejected/s") };
    let last = if any_rejected { REJECTIONS } else { THROUGHPUT };

    let mut svg = Svg::new(WIDTH, last.top + last.height + FOOTER);
    let summary = &slice.run.summary;
    let length = intervals.first().map_or(0.0, |i| i.length.as_secs_f64());
    title(
        &mut svg,
        LATENCY.left,
        &format!("Latency over time: {label}"),
        &format!("pipeline {}, {}; per interval of {} s", summary.pipeline, slice.window, seconds_label(length)),
    );
    top.draw_axes(&mut svg, false);
    for s in &latency {
        top.draw_series(&mut svg, s);
    }
    throughput.draw_axes(&mut svg, !any_rejected);
    throughput.draw_bars(&mut svg, COMPLETED, COMPLETED_FILL, &completed);
    if any_rejected {
        rejected_panel.draw_axes(&mut svg, true);
        rejected_panel.draw_bars(&mut svg, REJECTED, REJECTED_FILL, &rejections);
    }
    let legend_left = LATENCY.left + LATENCY.width + 30.0;
    let entries: Vec<(&str, Stroke)> = latency.iter().rev().map(|s| (s.name.as_str(), s.stroke)).collect();
    legend(&mut svg, (legend_left, LATENCY.top + 10.0), &entries);
    svg.finish()
}
