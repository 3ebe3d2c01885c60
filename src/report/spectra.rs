//! `--hgrm DIR`: a window's percentile spectra as `.hgrm` files, one per stage and metric and
//! end to end, named as in a run record (`<stage>.queue_wait.hgrm`, `<stage>.service.hgrm`,
//! `<stage>.io_wait.hgrm` for a stage that asks for I/O, `e2e.hgrm`, and `<tag>.hgrm` for any
//! other series of the log). A series with nothing in the
//! window gets the header and footer only, as in a run record.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::metrics::{hgrm, new_histogram, STAGE_SERIES};

use super::window::Slice;
use crate::record::E2E_TAG;

/// The series of a slice by tag, stages first (in the summary's order), then end to end, then
/// the log's other tags.
pub fn series_tags(slice: &Slice<'_>) -> Vec<String> {
    let mut tags: Vec<String> = slice
        .run
        .summary
        .stages
        .iter()
        .flat_map(|(name, stage)| {
            // An I/O wait spectrum only for a stage that asked for I/O.
            let series = STAGE_SERIES.iter().filter(|(tag, _)| *tag != "io_wait" || stage.io_wait_us.count > 0);
            series.map(move |(metric, _)| format!("{name}.{metric}"))
        })
        .collect();
    tags.push(E2E_TAG.to_owned());
    let others: Vec<String> = slice.histograms.keys().filter(|t| !tags.contains(t)).cloned().collect();
    tags.extend(others);
    tags
}

/// Writes the spectra into `dir` (made if need be); returns the files written.
pub fn write_spectra(slice: &Slice<'_>, dir: &Path) -> io::Result<Vec<PathBuf>> {
    fs::create_dir_all(dir)?;
    let empty = new_histogram();
    let mut written = Vec::new();
    for tag in series_tags(slice) {
        let path = dir.join(crate::record::hgrm_file(&tag));
        let h = slice.histograms.get(&tag).unwrap_or(&empty);
        let mut out = BufWriter::new(fs::File::create(&path)?);
        hgrm::write(&mut out, h, hgrm::NS_PER_US)?;
        out.flush()?;
        written.push(path);
    }
    Ok(written)
}
