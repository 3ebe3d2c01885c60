//! `seda report`: reading run records back ([`crate::record`]), over a time window ([`window`]), as
//! tables ([`table`]), two runs side by side ([`compare`]), `.hgrm` spectra ([`spectra`]) and
//! SVG plots ([`plot`]).
//!
//! Percentiles are recomputed from the interval log, so that a window has the percentiles of
//! its own intervals; over the whole run they are those of the run's summary.

pub mod compare;
pub mod plot;
pub mod spectra;
pub mod table;
pub mod window;

use std::io::{self, Write};
use std::path::{Path, PathBuf};

pub use crate::record::{read_run, ReadError, RecordedRun};
pub use compare::Comparison;
pub use table::RunTable;
pub use window::{EmptyWindow, Slice, Window};

/// What `seda report` was asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Run record directories.
    pub runs: Vec<PathBuf>,
    pub window: Window,
    /// Write `.hgrm` spectra here.
    pub hgrm: Option<PathBuf>,
    /// Write SVG plots here.
    pub svg: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReportError {
    #[error(transparent)]
    Read(#[from] ReadError),
    #[error(transparent)]
    EmptyWindow(#[from] EmptyWindow),
    #[error("write into {}: {source}", dir.display())]
    Write { dir: PathBuf, source: io::Error },
}

/// Reads the runs and writes to `out` a table per run, or with two runs the two side by side;
/// then writes the files asked for, and lists them.
pub fn report(options: &Options, out: &mut dyn Write) -> Result<(), ReportError> {
    let runs = options.runs.iter().map(|dir| read_run(dir)).collect::<Result<Vec<_>, _>>()?;
    let slices = runs.iter().map(|run| Slice::of(run, options.window)).collect::<Result<Vec<_>, _>>()?;
    let tables: Vec<RunTable> = slices.iter().map(RunTable::of).collect();
    let labels = labels(&options.runs);

    // Standard output going away (`seda report ... | head`) is not an error.
    let _ = match tables.as_slice() {
        [a, b] => write!(out, "{}", Comparison { a, b }),
        _ => tables.iter().enumerate().try_for_each(|(i, t)| write!(out, "{}{t}", if i > 0 { "\n" } else { "" })),
    };
    // With several runs, each has a folder of its own under the one asked for.
    let folder = |dir: &Path, i: usize| if runs.len() == 1 { dir.to_owned() } else { dir.join(&labels[i]) };
    let mut written = Vec::new();
    if let Some(dir) = &options.hgrm {
        for (i, slice) in slices.iter().enumerate() {
            written.extend(spectra::write_spectra(slice, &folder(dir, i)).map_err(failed(dir))?);
        }
    }
    if let Some(dir) = &options.svg {
        let plotted: Vec<plot::Plotted<'_>> = (0..runs.len())
            .map(|i| plot::Plotted { slice: &slices[i], table: &tables[i], label: &labels[i], dir: folder(dir, i) })
            .collect();
        written.extend(plot::write_plots(&plotted, dir).map_err(failed(dir))?);
    }
    if !written.is_empty() {
        let _ = writeln!(out, "\nwrote:");
        for path in written {
            let _ = writeln!(out, "  {}", path.display());
        }
    }
    Ok(())
}

fn failed(dir: &Path) -> impl FnOnce(io::Error) -> ReportError + '_ {
    move |source| ReportError::Write { dir: dir.to_owned(), source }
}

/// Each run's label: its folder's name, with `-2`, `-3` ... after a name already taken.
fn labels(dirs: &[PathBuf]) -> Vec<String> {
    let mut labels: Vec<String> = Vec::new();
    for dir in dirs {
        let name = dir.canonicalize().unwrap_or_else(|_| dir.clone());
        let name = name.file_name().map_or_else(|| "run".to_owned(), |n| n.to_string_lossy().into_owned());
        let mut label = name.clone();
        let mut n = 1;
        while labels.contains(&label) {
            n += 1;
            label = format!("{name}-{n}");
        }
        labels.push(label);
    }
    labels
}
