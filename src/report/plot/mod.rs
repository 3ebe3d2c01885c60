//! `--svg DIR`: plots as plain SVG, drawn by our own small code ([`svg`], [`chart`]): the
//! percentile [`spectrum`], latency over time ([`timeline`]), the admission controllers over
//! time ([`admission`]) when the run had any, and, for a sweep, throughput against p99
//! ([`knee`]) and, with `--slo`, goodput and the served latency against the offered load
//! ([`goodput`]).

pub mod admission;
pub mod chart;
pub mod goodput;
pub mod knee;
pub mod levels;
pub mod spectrum;
pub mod style;
pub mod svg;
pub mod timeline;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use knee::KneePoint;

use super::table::{RunTable, END_TO_END};
use super::window::Slice;

pub const SPECTRUM_FILE: &str = "spectrum.svg";
pub const TIMELINE_FILE: &str = "timeline.svg";
pub const KNEE_FILE: &str = "knee.svg";
pub const ADMISSION_FILE: &str = "admission.svg";
/// Pool threads and batch sizes over time, when a controller moved them.
pub const LEVELS_FILE: &str = "levels.svg";
pub const GOODPUT_FILE: &str = "goodput.svg";

/// A run to plot: its stats over the window, its table and its label (the record's folder
/// name, unique among the runs).
pub struct Plotted<'a> {
    pub slice: &'a Slice<'a>,
    pub table: &'a RunTable,
    pub label: &'a str,
    /// Where its own plots go.
    pub dir: PathBuf,
}

/// Writes each run's spectrum and timeline into its folder, its admission controllers over time
/// if it had any, a knee of its steps (and their goodput, with `--slo`) if its summary has
/// steps, and with several runs a knee of one point per run into `dir`. Returns the files
/// written.
pub fn write_plots(runs: &[Plotted<'_>], dir: &Path) -> io::Result<Vec<PathBuf>> {
    let mut written = Vec::new();
    let mut write = |path: PathBuf, text: String| -> io::Result<()> {
        fs::create_dir_all(path.parent().expect("a file in a folder"))?;
        fs::write(&path, text)?;
        written.push(path);
        Ok(())
    };
    for run in runs {
        write(run.dir.join(SPECTRUM_FILE), spectrum::draw(run.slice, run.label))?;
        write(run.dir.join(TIMELINE_FILE), timeline::draw(run.slice, run.label))?;
        if admission::any(run.slice) {
            write(run.dir.join(ADMISSION_FILE), admission::draw(run.slice, run.label))?;
        }
        if levels::any(run.slice) {
            write(run.dir.join(LEVELS_FILE), levels::draw(run.slice, run.label))?;
        }
        let steps = &run.slice.run.steps;
        if !steps.is_empty() {
            let points: Vec<KneePoint> = steps
                .iter()
                .enumerate()
                .map(|(i, s)| KneePoint {
                    label: s.label.clone().unwrap_or_else(|| format!("step {}", i + 1)),
                    throughput_rps: s.throughput_rps,
                    p99_us: s.latency_us.p99,
                })
                .collect();
            let subtitle = format!("{}: one point per step of the run's summary", run.label);
            write(run.dir.join(KNEE_FILE), knee::draw(&points, &subtitle))?;
            if let Some(text) = goodput::draw(steps, run.label) {
                write(run.dir.join(GOODPUT_FILE), text)?;
            }
        }
    }
    if runs.len() > 1 {
        let points: Vec<KneePoint> = runs
            .iter()
            .filter_map(|run| {
                let e2e = run.table.row(END_TO_END, "")?;
                Some(KneePoint { label: run.label.to_owned(), throughput_rps: e2e.rate, p99_us: e2e.latency.p99 })
            })
            .collect();
        let subtitle = format!("one point per run, {}", runs[0].slice.window);
        write(dir.join(KNEE_FILE), knee::draw(&points, &subtitle))?;
    }
    Ok(written)
}
