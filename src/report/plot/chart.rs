//! Axes, panels and legends: what every plot is drawn on.
//!
//! An [`Axis`] maps values to a fraction of its length, on a linear or a log scale, and carries
//! its ticks with their labels; a [`Panel`] is a rectangle of the picture with an x and a y axis,
//! which draws its grid, ticks, axis titles and series.

use super::svg::{Anchor, Font, Stroke, Svg};

/// Colours that stay apart from each other on white (Tableau 10, yellow left out).
pub const PALETTE: [&str; 9] =
    ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1", "#9c755f", "#ff9da7", "#bab0ac"];

pub const TEXT: Font = Font::new(13.0, Anchor::Start);
const GRID: Stroke = Stroke::solid("#e4e4e4", 1.0);
const FRAME: Stroke = Stroke::solid("#888", 1.0);
/// Pixels between two y tick labels at least.
const MIN_LABEL_SPACING: f64 = 24.0;

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scale {
    Linear,
    /// Base 10.
    Log,
}

#[derive(Debug, Clone)]
pub struct Axis {
    pub min: f64,
    pub max: f64,
    pub scale: Scale,
    /// The axis title, with its unit.
    pub title: String,
    /// Values and their labels.
    pub ticks: Vec<(f64, String)>,
}

impl Axis {
    /// From a round number at or below `lo` to one at or above `hi`, with round ticks.
    pub fn linear(lo: f64, hi: f64, title: &str, label: fn(f64) -> String) -> Axis {
        let hi = if hi > lo { hi } else { lo + 1.0 };
        let step = nice_step((hi - lo) / 5.0);
        let min = (lo / step).floor() * step;
        let max = (hi / step).ceil() * step;
        let count = ((max - min) / step).round() as usize;
        let ticks = (0..=count).map(|i| min + i as f64 * step).map(|v| (v, label(v))).collect();
        Axis { min, max, scale: Scale::Linear, title: title.to_owned(), ticks }
    }

    /// Whole decades around `lo..hi` (both above 0).
    pub fn log(lo: f64, hi: f64, title: &str, label: fn(f64) -> String) -> Axis {
        let (min_exp, max_exp) = decades(lo, hi);
        let ticks = (min_exp..=max_exp).map(|e| 10f64.powi(e)).map(|v| (v, label(v))).collect();
        Axis { min: 10f64.powi(min_exp), max: 10f64.powi(max_exp), scale: Scale::Log, title: title.to_owned(), ticks }
    }

    /// Latency in microseconds, on a log scale when the values span more than [`LOG_SPAN`]
    /// (so that a fast stage is not flattened against the axis by a slow one), labelled in ms
    /// where every label would be past [`MS_FROM_US`] on a linear scale, or past 1 ms on a log
    /// one, else in us.
    pub fn latency(lo: f64, hi: f64, what: &str) -> Axis {
        let lo_positive = lo.max(0.001);
        if hi / lo_positive > LOG_SPAN {
            let (unit, label) = latency_unit(if lo_positive >= 1_000.0 { f64::INFINITY } else { 0.0 });
            Axis::log(lo_positive, hi, &format!("{what} ({unit}, log scale)"), label)
        } else {
            Axis::latency_linear(hi, what)
        }
    }

    /// Latency in microseconds on a linear scale from 0, labelled as [`Axis::latency`].
    pub fn latency_linear(hi: f64, what: &str) -> Axis {
        let (unit, label) = latency_unit(hi);
        Axis::linear(0.0, hi, &format!("{what} ({unit})"), label)
    }

    /// Where `v` falls, from 0 (at `min`) to 1 (at `max`); values outside are clamped.
    pub fn fraction(&self, v: f64) -> f64 {
        let f = match self.scale {
            Scale::Linear => (v - self.min) / (self.max - self.min),
            Scale::Log => (v.max(self.min).log10() - self.min.log10()) / (self.max.log10() - self.min.log10()),
        };
        if f.is_finite() {
            f.clamp(0.0, 1.0)
        } else {
            0.0
        }
    }
}

/// Values spanning more than this many times are drawn on a log scale.
pub const LOG_SPAN: f64 = 50.0;

/// Latencies up to this many microseconds are labelled in us, longer ones in ms.
pub const MS_FROM_US: f64 = 20_000.0;

fn latency_unit(hi: f64) -> (&'static str, fn(f64) -> String) {
    if hi > MS_FROM_US {
        ("ms", |us| micros_label(us / 1_000.0))
    } else {
        ("us", micros_label)
    }
}

/// The powers of ten at or below `lo` and at or above `hi`, at least one decade apart.
fn decades(lo: f64, hi: f64) -> (i32, i32) {
    let min_exp = lo.log10().floor() as i32;
    let max_exp = (hi.log10().ceil() as i32).max(min_exp + 1);
    (min_exp, max_exp)
}

/// 1, 2 or 5 times a power of ten, at or above `rough`.
pub fn nice_step(rough: f64) -> f64 {
    if !(rough > 0.0 && rough.is_finite()) {
        return 1.0;
    }
    let power = 10f64.powf(rough.log10().floor());
    let mantissa = rough / power;
    let nice = if mantissa <= 1.0 {
        1.0
    } else if mantissa <= 2.0 {
        2.0
    } else if mantissa <= 5.0 {
        5.0
    } else {
        10.0
    };
    nice * power
}

/// Microseconds, with thousands separated: `0.005`, `0.05`, `2.5`, `250`, `12,000`.
pub fn micros_label(us: f64) -> String {
    if us == 0.0 {
        "0".to_owned()
    } else if us.abs() < 1.0 {
        // Two significant digits, however small.
        let decimals = ((-us.abs().log10()).ceil() as usize + 1).min(9);
        trim(format!("{us:.decimals$}"))
    } else if us.abs() < 10.0 {
        trim(format!("{us:.1}"))
    } else {
        thousands(us.round() as i64)
    }
}

/// Counts and rates: `0`, `500`, `20k`, `1.5M`.
pub fn count_label(n: f64) -> String {
    let (value, suffix) = if n.abs() >= 1e6 {
        (n / 1e6, "M")
    } else if n.abs() >= 1e3 {
        (n / 1e3, "k")
    } else {
        (n, "")
    };
    format!("{}{suffix}", trim(format!("{value:.2}")))
}

/// Seconds: `0`, `0.25`, `10`.
pub fn seconds_label(s: f64) -> String {
    trim(format!("{s:.3}"))
}

/// Drops trailing zeros after a decimal point, and the point.
fn trim(s: String) -> String {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_owned()
    } else {
        s
    }
}

fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 {
        format!("-{out}")
    } else {
        out
    }
}

/// A rectangle of the picture: left, top, width, height.
#[derive(Debug, Clone, Copy)]
pub struct Area {
    pub left: f64,
    pub top: f64,
    pub width: f64,
    pub height: f64,
}

/// One series: a line through points (and dots on them when there are few).
pub struct Series {
    pub name: String,
    pub stroke: Stroke,
    pub points: Vec<(f64, f64)>,
}

pub struct Panel {
    pub area: Area,
    pub x: Axis,
    pub y: Axis,
}

impl Panel {
    /// The picture's coordinates of the value `(x, y)`.
    pub fn at(&self, (x, y): (f64, f64)) -> (f64, f64) {
        let a = &self.area;
        (a.left + self.x.fraction(x) * a.width, a.top + (1.0 - self.y.fraction(y)) * a.height)
    }

    /// Grid, frame, ticks and axis titles; the x tick labels and title only if `x_labels`
    /// (panels stacked on one time axis label it once, at the bottom).
    pub fn draw_axes(&self, svg: &mut Svg, x_labels: bool) {
        let a = self.area;
        let bottom = a.top + a.height;
        // In a short panel, a label on every other tick (or fewer), so that labels never touch.
        let spacing = a.height / (self.y.ticks.len().max(2) - 1) as f64;
        let every = (MIN_LABEL_SPACING / spacing).ceil().max(1.0) as usize;
        for (i, (v, label)) in self.y.ticks.iter().enumerate() {
            let (_, y) = self.at((self.x.min, *v));
            svg.line((a.left, y), (a.left + a.width, y), GRID);
            svg.line((a.left - 5.0, y), (a.left, y), FRAME);
            if i % every == 0 {
                svg.text((a.left - 8.0, y + 4.5), label, Font::new(12.0, Anchor::End));
            }
        }
        for (v, label) in &self.x.ticks {
            let (x, _) = self.at((*v, self.y.min));
            svg.line((x, a.top), (x, bottom), GRID);
            svg.line((x, bottom), (x, bottom + 5.0), FRAME);
            if x_labels {
                svg.text((x, bottom + 19.0), label, Font::new(12.0, Anchor::Middle));
            }
        }
        svg.rect((a.left, a.top), (a.width, a.height), "none", Some(FRAME));
        if x_labels {
            svg.text((a.left + a.width / 2.0, bottom + 42.0), &self.x.title, TEXT.bold().anchored(Anchor::Middle));
        }
        // Clear of the widest tick label (about 7 px a character at 12 px).
        let widest = self.y.ticks.iter().map(|(_, l)| l.chars().count()).max().unwrap_or(0) as f64;
        let (x, y) = (a.left - 20.0 - 7.0 * widest, a.top + a.height / 2.0);
        svg.text_rotated((x, y), &self.y.title, TEXT.bold().anchored(Anchor::Middle), -90.0);
    }

    pub fn draw_series(&self, svg: &mut Svg, series: &Series) {
        svg.begin_series(&series.name);
        let points: Vec<(f64, f64)> = series.points.iter().map(|&p| self.at(p)).collect();
        svg.polyline(&points, series.stroke);
        if points.len() <= 40 {
            for &p in &points {
                svg.circle(p, series.stroke.width + 1.5, series.stroke.color);
            }
        }
        svg.end_group();
    }

    /// Bars from `x0` to `x1` and from the x axis up to `y`, for each `(x0, x1, y)`.
    pub fn draw_bars(&self, svg: &mut Svg, name: &str, fill: &str, bars: &[(f64, f64, f64)]) {
        svg.begin_series(name);
        for &(x0, x1, y) in bars {
            let (left, top) = self.at((x0, y));
            let (right, bottom) = self.at((x1, self.y.min));
            // A hair of white between neighbours keeps the bars apart.
            let gap = if right - left > 4.0 { 1.0 } else { 0.0 };
            svg.rect((left + gap, top), ((right - left - 2.0 * gap).max(0.5), bottom - top), fill, None);
        }
        svg.end_group();
    }
}

/// The title and a smaller line under it, at the top left.
pub fn title(svg: &mut Svg, left: f64, title: &str, subtitle: &str) {
    svg.text((left, 26.0), title, Font::new(17.0, Anchor::Start).bold());
    svg.text((left, 45.0), subtitle, Font::new(12.5, Anchor::Start).color("#555"));
}

/// A legend: a line sample and the name of each series, one under the other from `(left, top)`.
pub fn legend(svg: &mut Svg, (left, top): (f64, f64), entries: &[(&str, Stroke)]) {
    for (i, (name, stroke)) in entries.iter().enumerate() {
        let y = top + i as f64 * 20.0;
        svg.line((left, y), (left + 28.0, y), *stroke);
        svg.text((left + 36.0, y + 4.5), name, TEXT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_round() {
        assert_eq!(nice_step(0.7), 1.0);
        assert_eq!(nice_step(1.3), 2.0);
        assert_eq!(nice_step(3.0), 5.0);
        assert_eq!(nice_step(7.0), 10.0);
        assert_eq!(nice_step(230.0), 500.0);
    }

    #[test]
    fn linear_ticks_cover_the_range_in_round_steps() {
        let axis = Axis::linear(0.0, 243.0, "t", micros_label);
        let values: Vec<f64> = axis.ticks.iter().map(|t| t.0).collect();
        assert_eq!(values, [0.0, 50.0, 100.0, 150.0, 200.0, 250.0]);
        assert_eq!((axis.min, axis.max), (0.0, 250.0));
    }

    #[test]
    fn log_ticks_are_decades() {
        let axis = Axis::log(0.02, 390.0, "t", micros_label);
        let labels: Vec<&str> = axis.ticks.iter().map(|t| t.1.as_str()).collect();
        assert_eq!(labels, ["0.01", "0.1", "1", "10", "100", "1,000"]);
        assert_eq!(axis.fraction(0.01), 0.0);
        assert_eq!(axis.fraction(1_000.0), 1.0);
        assert!((axis.fraction(1.0) - 0.4).abs() < 1e-12);
    }

    #[test]
    fn labels_are_short() {
        assert_eq!(micros_label(12_000.0), "12,000");
        assert_eq!(micros_label(0.05), "0.05");
        assert_eq!(micros_label(0.0001), "0.0001");
        assert_eq!(micros_label(0.25), "0.25");
        assert_eq!(count_label(1_500_000.0), "1.5M");
        assert_eq!(count_label(20_000.0), "20k");
        assert_eq!(seconds_label(0.25), "0.25");
    }
}
