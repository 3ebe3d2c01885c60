//! A small SVG writer: the few elements the plots draw, with text escaped.
//!
//! Each series is drawn in a `<g class="series" data-name="...">` group, so that a program (or
//! a test) can find the series of a plot by name.

use std::fmt::Write as _;

pub struct Svg {
    out: String,
}

/// How a line is drawn.
#[derive(Debug, Clone, Copy)]
pub struct Stroke {
    pub color: &'static str,
    pub width: f64,
    /// An SVG `stroke-dasharray`, e.g. `"6 4"`.
    pub dash: Option<&'static str>,
}

impl Stroke {
    pub const fn solid(color: &'static str, width: f64) -> Self {
        Stroke { color, width, dash: None }
    }

    fn attributes(&self) -> String {
        let dash = self.dash.map(|d| format!(r#" stroke-dasharray="{d}""#)).unwrap_or_default();
        format!(r#"stroke="{}" stroke-width="{}"{dash}"#, self.color, self.width)
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Anchor {
    Start,
    Middle,
    End,
}

impl Anchor {
    fn as_str(self) -> &'static str {
        match self {
            Anchor::Start => "start",
            Anchor::Middle => "middle",
            Anchor::End => "end",
        }
    }
}

/// Text's look: size in pixels, anchor, weight and colour.
#[derive(Debug, Clone, Copy)]
pub struct Font {
    pub size: f64,
    pub anchor: Anchor,
    pub bold: bool,
    pub color: &'static str,
}

impl Font {
    pub const fn new(size: f64, anchor: Anchor) -> Self {
        Font { size, anchor, bold: false, color: "#222" }
    }

    pub const fn bold(self) -> Self {
        Font { bold: true, ..self }
    }

    pub const fn anchored(self, anchor: Anchor) -> Self {
        Font { anchor, ..self }
    }

    pub const fn color(self, color: &'static str) -> Self {
        Font { color, ..self }
    }
}

impl Svg {
    pub fn new(width: f64, height: f64) -> Self {
        let mut out = String::new();
        let _ = writeln!(
            out,
            r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif">"#
        );
        let _ = writeln!(out, r#"<rect width="{width}" height="{height}" fill="white"/>"#);
        Svg { out }
    }

    pub fn line(&mut self, (x1, y1): (f64, f64), (x2, y2): (f64, f64), stroke: Stroke) {
        let _ = writeln!(
            self.out,
            r#"<line x1="{x1:.1}" y1="{y1:.1}" x2="{x2:.1}" y2="{y2:.1}" {}/>"#,
            stroke.attributes()
        );
    }

    pub fn polyline(&mut self, points: &[(f64, f64)], stroke: Stroke) {
        let mut list = String::new();
        for (x, y) in points {
            let _ = write!(list, "{x:.1},{y:.1} ");
        }
        let _ = writeln!(
            self.out,
            r#"<polyline points="{}" fill="none" stroke-linejoin="round" {}/>"#,
            list.trim_end(),
            stroke.attributes()
        );
    }

    pub fn circle(&mut self, (x, y): (f64, f64), r: f64, fill: &str) {
        let _ = writeln!(self.out, r#"<circle cx="{x:.1}" cy="{y:.1}" r="{r}" fill="{fill}"/>"#);
    }

    pub fn rect(&mut self, (x, y): (f64, f64), (w, h): (f64, f64), fill: &str, stroke: Option<Stroke>) {
        let stroke = stroke.map(|s| s.attributes()).unwrap_or_default();
        let _ = writeln!(
            self.out,
            r#"<rect x="{x:.1}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{fill}" {stroke}/>"#
        );
    }

    pub fn text(&mut self, (x, y): (f64, f64), text: &str, font: Font) {
        self.text_rotated((x, y), text, font, 0.0);
    }

    /// Text with a white outline under it, legible where it crosses a line.
    pub fn label(&mut self, (x, y): (f64, f64), text: &str, font: Font) {
        let _ = writeln!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{}" text-anchor="{}" fill="{}" stroke="white" stroke-width="4" stroke-linejoin="round" paint-order="stroke">{}</text>"#,
            font.size,
            font.anchor.as_str(),
            font.color,
            escape(text)
        );
    }

    /// Text turned by `degrees` about its anchor point (-90: reading upwards, for a y axis).
    pub fn text_rotated(&mut self, (x, y): (f64, f64), text: &str, font: Font, degrees: f64) {
        let rotate =
            if degrees == 0.0 { String::new() } else { format!(r#" transform="rotate({degrees} {x:.1} {y:.1})""#) };
        let weight = if font.bold { r#" font-weight="bold""# } else { "" };
        let _ = writeln!(
            self.out,
            r#"<text x="{x:.1}" y="{y:.1}" font-size="{}" text-anchor="{}" fill="{}"{weight}{rotate}>{}</text>"#,
            font.size,
            font.anchor.as_str(),
            font.color,
            escape(text)
        );
    }

    /// Starts the group of the series `name`; [`Svg::end_group`] ends it.
    pub fn begin_series(&mut self, name: &str) {
        let _ = writeln!(self.out, r#"<g class="series" data-name="{}">"#, escape(name));
    }

    pub fn end_group(&mut self) {
        self.out.push_str("</g>\n");
    }

    pub fn finish(mut self) -> String {
        self.out.push_str("</svg>\n");
        self.out
    }
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_names_are_escaped() {
        let mut svg = Svg::new(10.0, 10.0);
        svg.begin_series("a\"<b>&");
        svg.text((1.0, 2.0), "p99 < 5 & more", Font::new(12.0, Anchor::Start));
        svg.end_group();
        let text = svg.finish();
        assert!(text.contains(r#"data-name="a&quot;&lt;b&gt;&amp;""#), "{text}");
        assert!(text.contains(">p99 &lt; 5 &amp; more</text>"), "{text}");
    }
}
