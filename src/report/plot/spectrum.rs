//! The percentile spectrum, as the HdrHistogram plotter draws it: latency against percentile
//! on a log axis of 1/(1-percentile), so that 90%, 99%, 99.9% ... are equally spaced. Every
//! series of the run is overlaid: a colour per stage, dashed for queue wait and solid for
//! service time, end to end in thick black.

use hdrhistogram::Histogram;

use super::chart::{legend, title, Area, Axis, Panel, Scale, Series};
use super::style::{self, series_name};
use super::svg::{Stroke, Svg};
use crate::metrics::hgrm::TICKS_PER_HALF_DISTANCE;
use crate::report::spectra::series_tags;
use crate::report::window::Slice;

const WIDTH: f64 = 980.0;
const HEIGHT: f64 = 560.0;
const AREA: Area = Area { left: 100.0, top: 70.0, width: 600.0, height: 410.0 };

/// The points of a spectrum: (1/(1-q), value in us) at the quantiles an `.hgrm` lists, short of
/// 100% (which lies at infinity).
pub fn spectrum_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    if h.is_empty() {
        return Vec::new();
    }
    h.iter_quantiles(TICKS_PER_HALF_DISTANCE)
        .map(|v| (v.quantile_iterated_to(), v.value_iterated_to() as f64 / 1_000.0))
        .filter(|(q, _)| *q < 1.0)
        .map(|(q, us)| (1.0 / (1.0 - q), us))
        .collect()
}

/// The x axis: decades of 1/(1-q), labelled as percentiles.
fn percentile_axis(max_x: f64) -> Axis {
    let decades = max_x.log10().ceil().max(1.0) as i32;
    let ticks = (0..=decades)
        .map(|d| {
            let label = match d {
                0 => "0%".to_owned(),
                d => format!("{}%", 100.0 - 100.0 / 10f64.powi(d)),
            };
            (10f64.powi(d), label)
        })
        .collect();
    Axis {
        min: 1.0,
        max: 10f64.powi(decades),
        scale: Scale::Log,
        title: "percentile (log scale of 1/(1-percentile))".to_owned(),
        ticks,
    }
}

pub fn draw(slice: &Slice<'_>, label: &str) -> String {
    let stages: Vec<&String> = slice.run.summary.stages_in_order().map(|(name, _)| name).collect();
    let tags = series_tags(slice);
    let series: Vec<Series> = tags
        .iter()
        .zip(style::kinds(&stages, &tags))
        .filter_map(|(tag, kind)| {
            let h = slice.histogram(tag)?;
            Some(Series {
                name: series_name(tag),
                stroke: style::stroke(kind, stages.len()),
                points: spectrum_points(h),
            })
        })
        .collect();
    let all = || series.iter().flat_map(|s| s.points.iter());
    let max_x = all().map(|p| p.0).fold(10.0, f64::max);
    let lo = all().map(|p| p.1).filter(|&v| v > 0.0).fold(f64::INFINITY, f64::min);
    let hi = all().map(|p| p.1).fold(0.0, f64::max);
    let panel = Panel { area: AREA, x: percentile_axis(max_x), y: Axis::latency(lo.min(hi), hi, "latency") };

    let mut svg = Svg::new(WIDTH, HEIGHT);
    let summary = &slice.run.summary;
    title(
        &mut svg,
        AREA.left,
        &format!("Latency by percentile: {label}"),
        &format!("pipeline {}, {}; queue wait dashed, service time solid", summary.pipeline, slice.window),
    );
    panel.draw_axes(&mut svg, true);
    for s in &series {
        panel.draw_series(&mut svg, s);
    }
    let entries: Vec<(&str, Stroke)> = series.iter().map(|s| (s.name.as_str(), s.stroke)).collect();
    legend(&mut svg, (AREA.left + AREA.width + 30.0, AREA.top + 10.0), &entries);
    svg.finish()
}
