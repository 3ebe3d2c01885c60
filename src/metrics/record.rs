//! Run records (`seda run CONFIG --record DIR`): a directory of files that existing tools read.
//!
//! | file | what |
//! | --- | --- |
//! | `config.json` | the pipeline config, as read |
//! | `summary.json` | the run's summary, as `seda run --json` writes it |
//! | `latency.hlog` | HdrHistogram interval log: per interval, `Tag=<stage>.queue_wait`, `Tag=<stage>.service`, `Tag=e2e` (see [`super::hlog`]) |
//! | `counters.csv` | per interval and stage: `interval_start_s,stage,processed,rejected,failed,timed_out,queue_depth,pool_utilisation` (the most requests seen queued, of ten samples an interval; the share of the interval the stage's pool's workers had work) |
//! | `<stage>.queue_wait.hgrm`, `<stage>.service.hgrm`, `e2e.hgrm` | percentile spectra of the whole run, in microseconds (see [`super::hgrm`]) |

use std::fs;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use hdrhistogram::Histogram;

use super::collector::Totals;
use super::{hgrm, hlog, Intervals, Summary};

/// What a recorded run hands to [`write_run`]: the stage names (by id) and the run's totals,
/// with its intervals.
pub struct Recording {
    pub stages: Vec<String>,
    /// Each stage's pool, by stage id.
    pub stage_pools: Vec<usize>,
    /// Each pool's worker count, by pool id.
    pub pool_threads: Vec<usize>,
    pub totals: Totals,
}

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
    prepare_dir(dir)?;
    let file = |name: &str, write: &dyn Fn(&mut dyn Write) -> io::Result<()>| {
        let path = dir.join(name);
        let mut out = BufWriter::new(fs::File::create(&path).map_err(io_at(&path))?);
        write(&mut out).and_then(|()| out.flush()).map_err(io_at(&path))
    };
    file("config.json", &|out| out.write_all(config.as_bytes()))?;
    file("summary.json", &|out| {
        serde_json::to_writer_pretty(&mut *out, summary)?;
        writeln!(out)
    })?;
    if let Some(intervals) = &recording.totals.intervals {
        file("latency.hlog", &|mut out| write_hlog(&mut out, recording, intervals))?;
        file("counters.csv", &|out| write_counters(out, recording, intervals))?;
    }
    let empty = super::new_histogram();
    let or_empty = |h: &Option<Histogram<u64>>| h.as_ref().unwrap_or(&empty).clone();
    for (name, stats) in recording.stages.iter().zip(&recording.totals.stages) {
        for (metric, h) in [("queue_wait", &stats.queue_wait), ("service", &stats.service)] {
            let h = or_empty(h);
            file(&format!("{name}.{metric}.hgrm"), &|out| hgrm::write(out, &h, hgrm::NS_PER_US))?;
        }
    }
    let e2e = or_empty(&recording.totals.e2e);
    file("e2e.hgrm", &|out| hgrm::write(out, &e2e, hgrm::NS_PER_US))
}

/// The interval log: per interval, each stage's queue wait and service time, then end to end.
/// The tags are those with anything recorded in the run (a stage only ever reached on the same
/// pool has no queue wait); each interval has every tag, empty where nothing was recorded in it,
/// so that every tag's series is complete. Histograms are decoded one at a time.
fn write_hlog<W: Write>(out: &mut W, recording: &Recording, intervals: &Intervals) -> io::Result<()> {
    let recorded = |h: &Option<Histogram<u64>>| h.as_ref().is_some_and(|h| !h.is_empty());
    let totals = &recording.totals;
    let stages: Vec<(&String, bool, bool)> = recording
        .stages
        .iter()
        .zip(&totals.stages)
        .map(|(name, t)| (name, recorded(&t.queue_wait), recorded(&t.service)))
        .collect();
    let e2e = recorded(&totals.e2e);
    let entries = intervals.list.iter().flat_map(|interval| {
        let per_stage = stages.iter().zip(&interval.stages).flat_map(|(&(name, queued, served), stage)| {
            [("queue_wait", queued, &stage.queue_wait), ("service", served, &stage.service)]
                .into_iter()
                .filter(|(_, wanted, _)| *wanted)
                .map(move |(metric, _, h)| (format!("{name}.{metric}"), h.as_ref()))
        });
        let e2e = e2e.then(|| ("e2e".to_owned(), interval.e2e.as_ref()));
        per_stage.chain(e2e).map(|(tag, h)| hlog::Entry {
            tag,
            start: interval.start,
            length: interval.length,
            histogram: h.map_or_else(super::new_histogram, |h| h.decode()),
        })
    });
    hlog::write(out, intervals.started, entries)
}

fn write_counters(out: &mut dyn Write, recording: &Recording, intervals: &Intervals) -> io::Result<()> {
    writeln!(out, "interval_start_s,stage,processed,rejected,failed,timed_out,queue_depth,pool_utilisation")?;
    for interval in &intervals.list {
        let stages = recording.stages.iter().zip(&recording.stage_pools).zip(&interval.stages);
        for ((name, &pool), s) in stages {
            let capacity_ns = recording.pool_threads[pool] as f64 * interval.length.as_nanos() as f64;
            let utilisation = interval.pool_busy_ns[pool] as f64 / capacity_ns;
            writeln!(
                out,
                "{:.3},{name},{},{},{},{},{},{utilisation:.3}",
                interval.start.as_secs_f64(),
                s.processed,
                s.rejected,
                s.failed,
                s.timed_out,
                s.queue_depth,
            )?;
        }
    }
    Ok(())
}
