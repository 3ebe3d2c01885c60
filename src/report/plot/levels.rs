//! The pool-size and batching controllers over time: per interval, the threads serving in each
//! stage's pool and, under it on the same time axis, each stage's batch size, as last read in
//! the interval. Drawn when either moved during the run (a plot of flat lines says nothing the
//! config does not).

use super::chart::{count_label, legend, seconds_label, title, Area, Axis, Panel, Series};
use super::style::{self, Kind};
use super::svg::{Stroke, Svg};
use super::timeline::{middle, time_axis};
use crate::record::StageLevels;
use crate::report::window::Slice;

const WIDTH: f64 = 980.0;
const THREADS: Area = Area { left: 100.0, top: 70.0, width: 600.0, height: 200.0 };
const BATCH: Area = Area { left: 100.0, top: 292.0, width: 600.0, height: 160.0 };
const FOOTER: f64 = 70.0;

/// Whether a stage's pool threads or batch size moved within the window.
pub fn any(slice: &Slice<'_>) -> bool {
    let moved = |field: fn(&StageLevels) -> u64| {
        slice.run.summary.stages_in_order().any(|(name, _)| {
            let mut values = slice.intervals.iter().filter_map(|i| i.levels.get(name.as_str())).map(field);
            values.next().is_some_and(|first| values.any(|v| v != first))
        })
    };
    moved(|l| l.pool_threads) || moved(|l| l.batch_size)
}

pub fn draw(slice: &Slice<'_>, label: &str) -> String {
    let intervals = &slice.intervals;
    let stages: Vec<&String> = slice.run.summary.stages_in_order().map(|(name, _)| name).collect();
    let stroke = |index: usize| style::stroke(Kind::Stage(index, "service"), stages.len());
    let series = |field: fn(&StageLevels) -> u64, dash: Option<&'static str>| -> Vec<Series> {
        stages
            .iter()
            .enumerate()
            .map(|(index, name)| Series {
                name: name.to_string(),
                stroke: Stroke { dash, ..stroke(index) },
                points: intervals
                    .iter()
                    .filter_map(|i| Some((middle(i), field(i.levels.get(name.as_str())?) as f64)))
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    let threads = series(|l| l.pool_threads, None);
    let batches = series(|l| l.batch_size, Some("7 4"));

    let time = time_axis(intervals);
    let highest = |series: &[Series]| series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(1.0, f64::max);
    let threads_panel = Panel {
        area: THREADS,
        x: time.clone(),
        y: Axis::linear(0.0, highest(&threads), "threads serving in its pool", count_label),
    };
    let batch_panel =
        Panel { area: BATCH, x: time, y: Axis::linear(0.0, highest(&batches), "batch size", count_label) };

    let mut svg = Svg::new(WIDTH, BATCH.top + BATCH.height + FOOTER);
    let length = intervals.first().map_or(0.0, |i| i.length.as_secs_f64());
    title(
        &mut svg,
        THREADS.left,
        &format!("Pool threads and batch sizes over time: {label}"),
        &format!(
            "pipeline {}, {}; as last read in each interval of {} s",
            slice.run.summary.pipeline,
            slice.window,
            seconds_label(length)
        ),
    );
    threads_panel.draw_axes(&mut svg, false);
    for s in &threads {
        threads_panel.draw_series(&mut svg, s);
    }
    batch_panel.draw_axes(&mut svg, true);
    for s in &batches {
        batch_panel.draw_series(&mut svg, s);
    }
    let entries: Vec<(&str, Stroke)> = threads.iter().map(|s| (s.name.as_str(), s.stroke)).collect();
    legend(&mut svg, (THREADS.left + THREADS.width + 30.0, THREADS.top + 10.0), &entries);
    svg.finish()
}
