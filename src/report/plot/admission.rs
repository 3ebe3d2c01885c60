//! Admission control over time: per interval, what each stage's controller admits at (a
//! `latency_target`'s rate, a `concurrency_limit`'s limit, 1 while `codel` sheds) and, under
//! it on the same time axis, its latency estimate, with the requests shed per second under
//! that: how a controller moved as the load moved.

use super::chart::{count_label, legend, seconds_label, title, Area, Axis, Panel, Series};
use super::style::{self, Kind};
use super::svg::{Stroke, Svg};
use super::timeline::{middle, per_second, time_axis, REJECTED_FILL};
use crate::report::window::Slice;

const WIDTH: f64 = 980.0;
const LEVEL: Area = Area { left: 100.0, top: 70.0, width: 600.0, height: 200.0 };
const LATENCY: Area = Area { left: 100.0, top: 292.0, width: 600.0, height: 160.0 };
const SHED: Area = Area { left: 100.0, top: 474.0, width: 600.0, height: 90.0 };
const FOOTER: f64 = 70.0;

/// Whether the window has any controller reading to plot.
pub fn any(slice: &Slice<'_>) -> bool {
    slice.intervals.iter().any(|i| !i.admission.is_empty())
}

pub fn draw(slice: &Slice<'_>, label: &str) -> String {
    let intervals = &slice.intervals;
    let stages: Vec<&String> = slice.run.summary.stages_in_order().map(|(name, _)| name).collect();
    let controlled: Vec<(usize, &String)> = stages
        .iter()
        .enumerate()
        .filter(|(_, name)| intervals.iter().any(|i| i.admission.contains_key(name.as_str())))
        .map(|(index, name)| (index, *name))
        .collect();
    let stroke = |index: usize| style::stroke(Kind::Stage(index, "service"), stages.len());
    let mut levels = Vec::new();
    let mut latencies = Vec::new();
    for &(index, name) in &controlled {
        let readings = || intervals.iter().filter_map(|i| Some((middle(i), i.admission.get(name.as_str())?)));
        let controller = readings().next().map_or("", |(_, r)| r.controller.as_str()).to_owned();
        levels.push(Series {
            name: format!("{name} ({controller})"),
            stroke: stroke(index),
            points: readings().map(|(t, r)| (t, r.level)).collect(),
        });
        latencies.push(Series {
            name: format!("{name} estimate"),
            stroke: Stroke { dash: Some("7 4"), ..stroke(index) },
            // In microseconds, as every latency axis here.
            points: readings().filter_map(|(t, r)| Some((t, r.latency_ms? * 1_000.0))).collect(),
        });
    }
    let shed: Vec<(f64, f64, f64)> = intervals
        .iter()
        .map(|i| {
            let n: u64 =
                controlled.iter().filter_map(|(_, name)| i.counters.get(name.as_str())).map(|c| c.rejected).sum();
            (i.start.as_secs_f64(), i.end().as_secs_f64(), per_second(n, i))
        })
        .collect();

    let time = time_axis(intervals);
    let highest = |series: &[Series]| series.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let level = Panel {
        area: LEVEL,
        x: time.clone(),
        y: Axis::linear(0.0, highest(&levels), "admits at (rate/s or limit)", count_label),
    };
    let latency = Panel { area: LATENCY, x: time.clone(), y: Axis::latency_linear(highest(&latencies), "estimate") };
    let shed_panel = Panel {
        area: SHED,
        x: time,
        y: Axis::linear(0.0, shed.iter().map(|b| b.2).fold(0.0, f64::max), "shed/s", count_label),
    };

    let mut svg = Svg::new(WIDTH, SHED.top + SHED.height + FOOTER);
    let length = intervals.first().map_or(0.0, |i| i.length.as_secs_f64());
    title(
        &mut svg,
        LEVEL.left,
        &format!("Admission control over time: {label}"),
        &format!(
            "pipeline {}, {}; the controllers as last read in each interval of {} s",
            slice.run.summary.pipeline,
            slice.window,
            seconds_label(length)
        ),
    );
    level.draw_axes(&mut svg, false);
    for s in &levels {
        level.draw_series(&mut svg, s);
    }
    latency.draw_axes(&mut svg, false);
    for s in latencies.iter().filter(|s| !s.points.is_empty()) {
        latency.draw_series(&mut svg, s);
    }
    shed_panel.draw_axes(&mut svg, true);
    shed_panel.draw_bars(&mut svg, "shed/s", REJECTED_FILL, &shed);
    let entries: Vec<(&str, Stroke)> = levels.iter().chain(&latencies).map(|s| (s.name.as_str(), s.stroke)).collect();
    legend(&mut svg, (LEVEL.left + LEVEL.width + 30.0, LEVEL.top + 10.0), &entries);
    svg.finish()
}
