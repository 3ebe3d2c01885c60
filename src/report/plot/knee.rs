//! The knee of a sweep: end-to-end p99 against throughput, one point per run (or per step of a
//! run whose summary has steps), joined in the order given, which is the sweep's: where the
//! line turns up is the load the pipeline can take before its tail grows, and where it bends
//! back, an offered load it could not carry.

use super::chart::{count_label, title, Area, Axis, Panel, Series, TEXT};
use super::svg::{Stroke, Svg};

const WIDTH: f64 = 860.0;
const HEIGHT: f64 = 540.0;
const AREA: Area = Area { left: 100.0, top: 70.0, width: 700.0, height: 380.0 };

/// The series' name in the SVG.
pub const SERIES: &str = "p99 by throughput";

/// One load level: what it is called, its throughput and its end-to-end p99.
#[derive(Debug, Clone, PartialEq)]
pub struct KneePoint {
    pub label: String,
    pub throughput_rps: f64,
    pub p99_us: f64,
}

pub fn draw(points: &[KneePoint], subtitle: &str) -> String {
    let max_x = points.iter().map(|p| p.throughput_rps).fold(0.0, f64::max);
    let max_y = points.iter().map(|p| p.p99_us).fold(0.0, f64::max);
    let panel = Panel {
        area: AREA,
        // Room on the right for the last point's label.
        x: Axis::linear(0.0, max_x * 1.08, "throughput (completed requests/s)", count_label),
        y: Axis::latency_linear(max_y * 1.05, "end-to-end p99"),
    };
    let mut svg = Svg::new(WIDTH, HEIGHT);
    title(&mut svg, AREA.left, "Throughput against p99 latency", subtitle);
    panel.draw_axes(&mut svg, true);
    let series = Series {
        name: SERIES.to_owned(),
        stroke: Stroke::solid("#4e79a7", 2.5),
        points: points.iter().map(|p| (p.throughput_rps, p.p99_us)).collect(),
    };
    panel.draw_series(&mut svg, &series);
    for p in points {
        let (x, y) = panel.at((p.throughput_rps, p.p99_us));
        svg.label((x + 8.0, y - 8.0), &p.label, TEXT);
    }
    svg.finish()
}
