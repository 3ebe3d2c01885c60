//! A sweep under overload: per step, against the load offered, the goodput (answers within the
//! SLO per second) beside the throughput, and under it the latency of what was served (the
//! answers that passed their checks: a server that sheds answers its rejections fast). Where
//! goodput holds past the capacity while served latency stays flat, admission control works;
//! where goodput falls to nothing, every answer waits through a backlog.

use super::chart::{count_label, legend, title, Area, Axis, Panel, Series};
use super::svg::{Stroke, Svg};
use crate::record::SweepStep;

const WIDTH: f64 = 980.0;
const RATES: Area = Area { left: 100.0, top: 70.0, width: 600.0, height: 260.0 };
const LATENCY: Area = Area { left: 100.0, top: 352.0, width: 600.0, height: 200.0 };
const FOOTER: f64 = 70.0;

pub const GOODPUT: &str = "goodput/s";
pub const THROUGHPUT: &str = "throughput/s";
pub const SERVED_P90: &str = "served p90";
pub const SERVED_P99: &str = "served p99";

/// The plot, when every step has its offered load, goodput and served latency (a sweep of
/// `seda load --slo`); else `None`.
pub fn draw(steps: &[SweepStep], label: &str) -> Option<String> {
    let points: Vec<(f64, f64, f64, f64, f64)> = steps
        .iter()
        .map(|s| {
            let served = s.served_latency_us.as_ref()?;
            Some((s.target_rate?, s.goodput_rps?, s.throughput_rps, served.p90, served.p99))
        })
        .collect::<Option<_>>()?;
    if points.is_empty() {
        return None;
    }
    let series = |name: &str, stroke: Stroke, at: fn(&(f64, f64, f64, f64, f64)) -> f64| Series {
        name: name.to_owned(),
        stroke,
        points: points.iter().map(|p| (p.0, at(p))).collect(),
    };
    let rates = [
        series(THROUGHPUT, Stroke::solid("#9a9a9a", 2.0), |p| p.2),
        series(GOODPUT, Stroke::solid("#4e79a7", 3.0), |p| p.1),
    ];
    let latencies = [
        series(SERVED_P99, Stroke { dash: Some("7 4"), ..Stroke::solid("#e15759", 2.0) }, |p| p.4),
        series(SERVED_P90, Stroke::solid("#e15759", 2.5), |p| p.3),
    ];
    let highest = |s: &[Series]| s.iter().flat_map(|s| s.points.iter().map(|p| p.1)).fold(0.0, f64::max);
    let offered = points.iter().map(|p| p.0).fold(0.0, f64::max);
    let x = Axis::linear(0.0, offered * 1.05, "offered load (requests/s)", count_label);
    let top = Panel { area: RATES, x: x.clone(), y: Axis::linear(0.0, highest(&rates), "requests/s", count_label) };
    let bottom = Panel { area: LATENCY, x, y: Axis::latency_linear(highest(&latencies), "served latency") };

    let mut svg = Svg::new(WIDTH, LATENCY.top + LATENCY.height + FOOTER);
    title(&mut svg, RATES.left, &format!("Goodput against offered load: {label}"), "one point per step of the sweep");
    top.draw_axes(&mut svg, false);
    rates.iter().for_each(|s| top.draw_series(&mut svg, s));
    bottom.draw_axes(&mut svg, true);
    latencies.iter().for_each(|s| bottom.draw_series(&mut svg, s));
    let entries: Vec<(&str, Stroke)> = rates.iter().chain(&latencies).map(|s| (s.name.as_str(), s.stroke)).collect();
    legend(&mut svg, (RATES.left + RATES.width + 30.0, RATES.top + 10.0), &entries);
    Some(svg.finish())
}
