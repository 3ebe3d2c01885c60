//! Writing a run record: the files of the table in [`super`], from an engine's [`Recording`]
//! and, for a load run, the generator's series beside them.

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use hdrhistogram::Histogram;

use super::{
    hgrm_file, ADMISSION_FILE, ADMISSION_HEADER, CONFIG_FILE, COUNTERS_FILE, COUNTERS_HEADER, E2E_TAG, HLOG_FILE,
    SUMMARY_FILE,
};
use crate::metrics::{hgrm, hlog, Intervals, Recording, Summary, STAGE_SERIES};

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("record directory {} exists and is not empty; choose a new or empty one", .0.display())]
    NotEmpty(PathBuf),
    #[error("record directory {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

fn io_at(path: &Path) -> impl FnOnce(io::Error) -> RecordError + '_ {
    move |source| RecordError::Io { path: path.to_owned(), source }
}

/// Makes `dir` ready for a record: creates it (and its parents), or accepts it if it exists
/// and is empty. Call it before the run, so that a bad directory fails at once.
pub fn prepare_dir(dir: &Path) -> Result<(), RecordError> {
    match fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                return Err(RecordError::NotEmpty(dir.to_owned()));
            }
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => fs::create_dir_all(dir).map_err(io_at(dir)),
        Err(e) => Err(io_at(dir)(e)),
    }
}

/// Writes the record of a run into `dir` (see the module's table). `config` is the config
/// file's text. `dir` must be new or empty.
pub fn write_run(dir: &Path, config: &str, summary: &Summary, recording: &Recording) -> Result<(), RecordError> {
    write_run_with(dir, config, summary, Some(recording), Extra::default())
}

/// What a record holds besides an engine's stats: a load generator's, when it drove the run.
#[derive(Default)]
pub struct Extra {
    /// When the entries' times start (their `start` is since then).
    pub started: Option<SystemTime>,
    /// More tagged series for the interval log.
    pub entries: Vec<hlog::Entry>,
    /// More spectra: (file name without `.hgrm`, histogram in nanoseconds).
    pub spectra: Vec<(String, Histogram<u64>)>,
    /// More fields for `summary.json`.
    pub summary_fields: serde_json::Map<String, serde_json::Value>,
}

/// [`write_run`] with `extra` besides, and with or without an engine's recording (a load of an
/// HTTP server has none: its record is the generator's alone).
pub fn write_run_with(
    dir: &Path,
    config: &str,
    summary: &Summary,
    recording: Option<&Recording>,
    extra: Extra,
) -> Result<(), RecordError> {
    prepare_dir(dir)?;
    let file = |name: &str, write: &dyn Fn(&mut dyn Write) -> io::Result<()>| {
        let path = dir.join(name);
        let mut out = BufWriter::new(fs::File::create(&path).map_err(io_at(&path))?);
        write(&mut out).and_then(|()| out.flush()).map_err(io_at(&path))
    };
    file(CONFIG_FILE, &|out| out.write_all(config.as_bytes()))?;
    // The summary's own fields in their order, then the extra ones.
    #[derive(serde::Serialize)]
    struct WithExtra<'a> {
        #[serde(flatten)]
        summary: &'a Summary,
        #[serde(flatten)]
        extra: &'a serde_json::Map<String, serde_json::Value>,
    }
    let json = WithExtra { summary, extra: &extra.summary_fields };
    file(SUMMARY_FILE, &|out| {
        serde_json::to_writer_pretty(&mut *out, &json)?;
        writeln!(out)
    })?;
    let intervals = recording.and_then(|r| r.totals.intervals.as_ref());
    let started = intervals.map(|i| i.started).or(extra.started);
    if let Some(started) = started {
        let mut entries = match (recording, intervals) {
            (Some(recording), Some(intervals)) => engine_entries(recording, intervals).collect(),
            _ => Vec::new(),
        };
        // The extra series on the log's own time base.
        let shift = |at: Duration| match extra.started.map(|s| s.duration_since(started)) {
            Some(Ok(later)) => at + later,
            Some(Err(earlier)) => at.saturating_sub(earlier.duration()),
            None => at,
        };
        entries.extend(extra.entries.iter().map(|e| hlog::Entry {
            tag: e.tag.clone(),
            start: shift(e.start),
            length: e.length,
            histogram: e.histogram.clone(),
        }));
        entries.sort_by_key(|e| e.start);
        let path = dir.join(HLOG_FILE);
        let mut out = BufWriter::new(fs::File::create(&path).map_err(io_at(&path))?);
        hlog::write(&mut out, started, entries).and_then(|()| out.flush()).map_err(io_at(&path))?;
    }
    file(COUNTERS_FILE, &|out| match (recording, intervals) {
        (Some(recording), Some(intervals)) => write_counters(out, recording, intervals),
        _ => writeln!(out, "{COUNTERS_HEADER}"),
    })?;
    if let (Some(recording), Some(intervals)) = (recording, intervals) {
        let controlled = intervals.list.iter().any(|i| i.stages.iter().any(|s| s.controller.is_some()));
        if controlled {
            file(ADMISSION_FILE, &|out| write_admission(out, recording, intervals))?;
        }
    }
    let empty = crate::metrics::new_histogram();
    let or_empty = |h: &Option<Histogram<u64>>| h.as_ref().unwrap_or(&empty).clone();
    if let Some(recording) = recording {
        for (name, stats) in recording.stages.iter().zip(&recording.totals.stages) {
            for ((metric, _), h) in STAGE_SERIES.iter().zip(stats.series()) {
                // Every stage has a queue and a handler; only some ask for I/O.
                if *metric == "io_wait" && h.is_none() {
                    continue;
                }
                let h = or_empty(h);
                file(&hgrm_file(&format!("{name}.{metric}")), &|out| hgrm::write(out, &h, hgrm::NS_PER_US))?;
            }
        }
        let e2e = or_empty(&recording.totals.e2e);
        file(&hgrm_file(E2E_TAG), &|out| hgrm::write(out, &e2e, hgrm::NS_PER_US))?;
    }
    for (name, h) in &extra.spectra {
        file(&hgrm_file(name), &|out| hgrm::write(out, h, hgrm::NS_PER_US))?;
    }
    Ok(())
}

/// The interval log: per interval, each stage's queue wait, service time and I/O wait, then end
/// to end. The tags are those with anything recorded in the run (a stage only ever reached on
/// the same pool has no queue wait); each interval has every tag, empty where nothing was
/// recorded in it, so that every tag's series is complete. Histograms are decoded one at a time.
fn engine_entries<'a>(recording: &'a Recording, intervals: &'a Intervals) -> impl Iterator<Item = hlog::Entry> + 'a {
    let recorded = |h: &Option<Histogram<u64>>| h.as_ref().is_some_and(|h| !h.is_empty());
    let totals = &recording.totals;
    let stages: Vec<(&String, [bool; 3])> =
        recording.stages.iter().zip(&totals.stages).map(|(name, t)| (name, t.series().map(recorded))).collect();
    let e2e = recorded(&totals.e2e);
    intervals.list.iter().flat_map(move |interval| {
        let per_stage = stages.clone().into_iter().zip(&interval.stages).flat_map(|((name, wanted), stage)| {
            STAGE_SERIES
                .iter()
                .zip(wanted)
                .zip(stage.series())
                .filter(|((_, wanted), _)| *wanted)
                .map(move |(((metric, _), _), h)| (format!("{name}.{metric}"), h.as_ref()))
        });
        let e2e = e2e.then(|| (E2E_TAG.to_owned(), interval.e2e.as_ref()));
        per_stage.chain(e2e).map(|(tag, h)| hlog::Entry {
            tag,
            start: interval.start,
            length: interval.length,
            histogram: h.map_or_else(crate::metrics::new_histogram, |h| h.decode()),
        })
    })
}

fn write_admission(out: &mut dyn Write, recording: &Recording, intervals: &Intervals) -> io::Result<()> {
    writeln!(out, "{ADMISSION_HEADER}")?;
    for interval in &intervals.list {
        for (name, s) in recording.stages.iter().zip(&interval.stages) {
            let Some(c) = s.controller else { continue };
            let latency = c.latency_ms.map(|ms| format!("{ms:.3}")).unwrap_or_default();
            writeln!(out, "{:.3},{name},{},{:.3},{latency}", interval.start.as_secs_f64(), c.controller, c.level)?;
        }
    }
    Ok(())
}

fn write_counters(out: &mut dyn Write, recording: &Recording, intervals: &Intervals) -> io::Result<()> {
    writeln!(out, "{COUNTERS_HEADER}")?;
    for interval in &intervals.list {
        let stages = recording.stages.iter().zip(&recording.stage_pools).zip(&interval.stages);
        for ((name, &pool), s) in stages {
            let capacity_ns = recording.pool_threads[pool] as f64 * interval.length.as_nanos() as f64;
            let utilisation = interval.pool_busy_ns[pool] as f64 / capacity_ns;
            writeln!(
                out,
                "{:.3},{name},{},{},{},{},{},{utilisation:.3},{},{}",
                interval.start.as_secs_f64(),
                s.processed,
                s.rejected,
                s.failed,
                s.timed_out,
                s.queue_depth,
                interval.pool_threads[pool],
                s.batch_size,
            )?;
        }
    }
    Ok(())
}
