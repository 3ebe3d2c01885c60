//! Reading a run record (`seda run --record DIR`) back: the summary, the interval log and the
//! counters, joined interval by interval.
//!
//! What is read is checked, so that a damaged record gives an error that names the file, the
//! line and what is wrong rather than a report of wrong numbers:
//! 1. `summary.json` carries the record's format ([`FORMAT`]); another format, or none, is refused.
//! 2. `latency.hlog` starts with the version header of format 1.3; every line parses and every
//!    histogram decodes (a line cut short fails one or the other).
//! 3. Each series of the log adds up to the count the summary has for it (a load record's
//!    generator series to those of its `load`), and the counters to the summary's stage
//!    counters: a log that lost whole lines at its end is caught here.
//! 4. The summary holds together: its ledger adds up, its elapsed time is a time a run can
//!    take, and every stage the log or the counters name is in it.
//!
//! Each file must be a regular file (a FIFO under its name is refused, not waited on) and is
//! read only up to a size bound.

use std::collections::BTreeMap;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry, LogIteratorError};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde::Deserialize;

use super::{ADMISSION_FILE, COUNTERS_FILE, E2E_TAG, HLOG_FILE, SUMMARY_FILE};
use crate::file_input::{read_regular, InputError};
use crate::metrics::{Percentiles, Summary, FORMAT, STAGE_SERIES};

/// The largest `summary.json` read.
pub const MAX_SUMMARY_BYTES: u64 = 16 << 20;
/// The largest interval log or counters file read.
pub const MAX_LOG_BYTES: u64 = 1 << 30;
/// The longest run a record may claim: a year.
pub const MAX_ELAPSED_S: f64 = 365.0 * 24.0 * 3600.0;

const HLOG_VERSION_LINE: &str = "#[Histogram log format version 1.3]";

/// The series name of a log's untagged lines (seda tags every line; other tools may not).
pub const UNTAGGED: &str = "untagged";

/// A run record, read back.
pub struct RecordedRun {
    pub dir: PathBuf,
    pub summary: Summary,
    /// The steps of a sweep, if the summary has them (see [`SweepStep`]).
    pub steps: Vec<SweepStep>,
    /// The log's start time, since the epoch; interval starts are relative to it.
    pub started: Duration,
    /// In order of start.
    pub intervals: Vec<Interval>,
}

/// One metrics interval of a run: its histograms by tag (nanoseconds) and its counters by stage.
pub struct Interval {
    pub start: Duration,
    pub length: Duration,
    pub histograms: BTreeMap<String, Histogram<u64>>,
    pub counters: BTreeMap<String, StageCounters>,
    /// By stage, its admission controller as last read in the interval (`admission.csv`).
    pub admission: BTreeMap<String, AdmissionReading>,
    /// By stage, its pool's threads and its queue's batch size as last read in the interval
    /// (`counters.csv`; empty for a record written before it had them).
    pub levels: BTreeMap<String, StageLevels>,
}

/// A stage's pool threads and batch size in an interval: where the pool-size and batching
/// controllers had put them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StageLevels {
    pub pool_threads: u64,
    pub batch_size: u64,
}

/// A stage's admission controller in an interval (a row of `admission.csv`).
#[derive(Debug, Clone, PartialEq)]
pub struct AdmissionReading {
    pub controller: String,
    /// What it admits at: a rate per second, a limit, or 1 while codel sheds.
    pub level: f64,
    /// Its latency estimate, once it has one.
    pub latency_ms: Option<f64>,
}

impl Interval {
    pub fn end(&self) -> Duration {
        self.start + self.length
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct StageCounters {
    pub processed: u64,
    pub rejected: u64,
    pub failed: u64,
    pub timed_out: u64,
}

impl StageCounters {
    pub fn add(&mut self, other: &StageCounters) {
        self.processed += other.processed;
        self.rejected += other.rejected;
        self.failed += other.failed;
        self.timed_out += other.timed_out;
    }
}

/// One step of a sweep, as a summary's optional `steps` array holds it: a load level and what
/// it gave. Fields other than these are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct SweepStep {
    /// What the step was (`seda load` writes its rate, `20000/s`); optional.
    #[serde(default)]
    pub label: Option<String>,
    /// Completed requests per second during the step.
    pub throughput_rps: f64,
    /// End-to-end latency during the step.
    pub latency_us: Percentiles,
    /// The offered load (`seda load` writes its scheduled rate), requests per second.
    #[serde(default)]
    pub target_rate: Option<f64>,
    /// Answers within the SLO per second (`seda load --slo`).
    #[serde(default)]
    pub goodput_rps: Option<f64>,
    /// The latency of the answers that passed their checks.
    #[serde(default)]
    pub served_latency_us: Option<Percentiles>,
}

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{}: no such run directory", .0.display())]
    NoDir(PathBuf),
    #[error("{}: not a complete run record: {file} is missing (`seda run CONFIG --record DIR` writes it)", dir.display())]
    Missing { dir: PathBuf, file: &'static str },
    #[error("{}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    #[error("{}: not a seda summary ({detail}); the file may be truncated", path.display())]
    Summary { path: PathBuf, detail: String },
    #[error("{}: no `format` field: not a run record this seda reads (it reads `{FORMAT}`)", path.display())]
    NoFormat { path: PathBuf },
    #[error("{}: format `{found}`, but this seda reads `{FORMAT}` only", path.display())]
    Format { path: PathBuf, found: String },
    #[error("{}:{line}: {detail}", path.display())]
    Hlog { path: PathBuf, line: usize, detail: String },
    #[error("{}:{line}: {detail}", path.display())]
    /// A line of `counters.csv` or `admission.csv`.
    Csv { path: PathBuf, line: usize, detail: String },
    #[error("{}: {what} adds up to {found} but {SUMMARY_FILE} counts {expected}: the record is incomplete (truncated?)", path.display())]
    Incomplete { path: PathBuf, what: String, found: u64, expected: u64 },
    #[error("{}: {detail}: the record is damaged or not seda's", path.display())]
    Inconsistent { path: PathBuf, detail: String },
    #[error("{}: {detail}", path.display())]
    NotReadable { path: PathBuf, detail: String },
}

/// Reads the run record in `dir`.
pub fn read_run(dir: &Path) -> Result<RecordedRun, ReadError> {
    if !dir.is_dir() {
        return Err(ReadError::NoDir(dir.to_owned()));
    }
    let read = |file: &'static str, limit: u64| {
        let path = dir.join(file);
        read_regular(&path, limit).map_err(|e| match e {
            InputError::Io(source) if source.kind() == io::ErrorKind::NotFound => {
                ReadError::Missing { dir: dir.to_owned(), file }
            }
            InputError::Io(source) => ReadError::Io { path, source },
            other => ReadError::NotReadable { path, detail: other.to_string() },
        })
    };
    let summary_path = dir.join(SUMMARY_FILE);
    let (summary, steps, load_counts) = parse_summary(&summary_path, &read(SUMMARY_FILE, MAX_SUMMARY_BYTES)?)?;
    check_summary(&summary_path, &summary)?;
    let log = parse_hlog(&dir.join(HLOG_FILE), &read(HLOG_FILE, MAX_LOG_BYTES)?)?;
    let log_started = log.started;
    let counters_bytes = read(COUNTERS_FILE, MAX_LOG_BYTES)?;
    let counters = parse_counters(&dir.join(COUNTERS_FILE), &counters_bytes)?;
    let levels = parse_levels(&dir.join(COUNTERS_FILE), &counters_bytes)?;
    // Only a pipeline with an admission controller has the file.
    let admission = match read(ADMISSION_FILE, MAX_LOG_BYTES) {
        Ok(bytes) => parse_admission(&dir.join(ADMISSION_FILE), &bytes)?,
        Err(ReadError::Missing { .. }) => Admission::new(),
        Err(e) => return Err(e),
    };
    let intervals = join(&dir.join(HLOG_FILE), log, counters, admission, levels)?;
    let run = RecordedRun { dir: dir.to_owned(), summary, steps, started: log_started, intervals };
    check_complete(&run, &load_counts)?;
    Ok(run)
}

/// Where a load record's summary (`seda load --record`: its `load` field, the `--json` results)
/// counts each of the generator's series of the log.
const LOAD_SERIES: [(&str, &str); 4] = [
    ("corrected", "/load/latency_us/corrected/count"),
    ("uncorrected", "/load/latency_us/uncorrected/count"),
    ("send_lag", "/load/send_lag_us/count"),
    ("connection_wait", "/load/connection_wait_us/count"),
];

/// The summary, the steps of a sweep, and a load record's counts of the generator's series.
type SummaryParts = (Summary, Vec<SweepStep>, BTreeMap<&'static str, u64>);

fn parse_summary(path: &Path, bytes: &[u8]) -> Result<SummaryParts, ReadError> {
    let bad = |e: serde_json::Error| ReadError::Summary { path: path.to_owned(), detail: e.to_string() };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(bad)?;
    match value.get("format") {
        None => return Err(ReadError::NoFormat { path: path.to_owned() }),
        Some(serde_json::Value::String(f)) if f == FORMAT => {}
        Some(other) => {
            let found = other.as_str().map_or_else(|| other.to_string(), str::to_owned);
            return Err(ReadError::Format { path: path.to_owned(), found });
        }
    }
    let steps = match value.get("steps") {
        Some(steps) => Vec::<SweepStep>::deserialize(steps).map_err(bad)?,
        None => Vec::new(),
    };
    let load_counts = LOAD_SERIES.iter().filter_map(|&(tag, at)| Some((tag, value.pointer(at)?.as_u64()?))).collect();
    Ok((Summary::deserialize(value).map_err(bad)?, steps, load_counts))
}

/// Checks that the summary holds together on its own: a ledger that adds up and an elapsed
/// time a run can have taken (step 4 of the module doc; the stages are checked with the log).
fn check_summary(path: &Path, s: &Summary) -> Result<(), ReadError> {
    let bad = |detail: String| Err(ReadError::Inconsistent { path: path.to_owned(), detail });
    if !(s.elapsed_s.is_finite() && s.elapsed_s > 0.0 && s.elapsed_s <= MAX_ELAPSED_S) {
        return bad(format!("`elapsed_s` is {}, not a run's length (above 0 s, at most a year)", s.elapsed_s));
    }
    if !(s.throughput_rps.is_finite() && s.throughput_rps >= 0.0) {
        return bad(format!("`throughput_rps` is {}", s.throughput_rps));
    }
    let l = &s.ledger;
    let ended = [l.completed, l.rejected, l.failed, l.timed_out, l.in_flight]
        .iter()
        .try_fold(0u64, |sum, &n| sum.checked_add(n));
    if ended != Some(l.admitted) {
        return bad(format!(
            "the ledger does not add up: admitted {} but completed {} + rejected {} + failed {} + timed out {} + in \
             flight {}",
            l.admitted, l.completed, l.rejected, l.failed, l.timed_out, l.in_flight
        ));
    }
    Ok(())
}

/// The interval log: its start time and, per tag, (start, length, histogram, line) in order.
struct Log {
    started: Duration,
    entries: Vec<(String, Duration, Duration, Histogram<u64>, usize)>,
}

fn parse_hlog(path: &Path, bytes: &[u8]) -> Result<Log, ReadError> {
    let error = |offset: usize, detail: String| {
        let line = bytes[..offset.min(bytes.len())].iter().filter(|&&b| b == b'\n').count() + 1;
        ReadError::Hlog { path: path.to_owned(), line, detail }
    };
    if !bytes.starts_with(HLOG_VERSION_LINE.as_bytes()) {
        return Err(error(
            0,
            format!("not an interval log of format 1.3 (the first line should be `{HLOG_VERSION_LINE}`)"),
        ));
    }
    let mut started = None;
    let mut entries = Vec::new();
    let mut deserializer = Deserializer::new();
    // The line of each histogram, for errors found when they are joined: counted as the
    // entries go, once over the file.
    let (mut counted_to, mut line) = (0, 1);
    for entry in IntervalLogIterator::new(bytes) {
        match entry {
            Err(LogIteratorError::ParseError { offset }) => {
                let complete = bytes[offset..].contains(&b'\n');
                let hint = if complete { "" } else { " (a line cut short: the file is truncated)" };
                return Err(error(offset, format!("not an interval log line{hint}")));
            }
            Ok(LogEntry::StartTime(t)) => started = Some(t),
            Ok(LogEntry::BaseTime(_)) => {}
            Ok(LogEntry::Interval(i)) => {
                // Where the line is, for the error: the encoded histogram is a slice of `bytes`.
                let offset = i.encoded_histogram().as_ptr() as usize - bytes.as_ptr() as usize;
                let undecodable = |what: String| error(offset, format!("{what}; the line may be cut short"));
                // Intervals are joined and windowed by their start and end in milliseconds.
                let end = i.start_timestamp().checked_add(i.duration()).map(|end| end.as_millis());
                if !matches!(end, Some(ms) if ms <= u128::from(u64::MAX)) {
                    return Err(error(offset, "an interval that ends past any representable time".to_owned()));
                }
                let compressed = base64::engine::general_purpose::STANDARD
                    .decode(i.encoded_histogram())
                    .map_err(|e| undecodable(format!("the histogram is not base64 ({e})")))?;
                let encoded = decompressed_histogram(&compressed).map_err(undecodable)?;
                let histogram: Histogram<u64> = deserializer
                    .deserialize(&mut &encoded[..])
                    .map_err(|e| undecodable(format!("the histogram does not decode ({e:?})")))?;
                let tag = i.tag().map_or(UNTAGGED, |t| t.as_str()).to_owned();
                line += bytes[counted_to..offset].iter().filter(|&&b| b == b'\n').count();
                counted_to = offset;
                entries.push((tag, i.start_timestamp(), i.duration(), histogram, line));
            }
        }
    }
    let started = started.ok_or_else(|| error(0, "no `#[StartTime: ...]` header".to_owned()))?;
    Ok(Log { started, entries })
}

/// The most a histogram of the log may decompress to: far above what any histogram's counts
/// take (one of 5 significant figures over the whole u64 range takes under 30 MB).
const MAX_HISTOGRAM_BYTES: usize = 64 << 20;

/// A histogram of the log (hdrhistogram's compressed V2 encoding) decompressed to its plain V2
/// encoding, once checked to hold the payload its header declares: the deserializer sizes a
/// buffer by that declaration before it reads, so a few bytes could make it allocate 4 GiB.
fn decompressed_histogram(compressed: &[u8]) -> Result<Vec<u8>, String> {
    // The cookies of the V2 encodings, plain and compressed, and the plain one's header length
    // (hdrhistogram's `serialization` module).
    const V2_COOKIE: u32 = 0x1c84_9313;
    const V2_COMPRESSED_COOKIE: u32 = 0x1c84_9314;
    const V2_HEADER_BYTES: usize = 40;
    let be32 = |bytes: &[u8], at: usize| bytes.get(at..at + 4).map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let (Some(V2_COMPRESSED_COOKIE), Some(length)) = (be32(compressed, 0), be32(compressed, 4)) else {
        return Err("not a compressed histogram".to_owned());
    };
    let deflated = &compressed[8..];
    let deflated = &deflated[..deflated.len().min(length as usize)];
    let mut encoded = Vec::new();
    flate2::read::ZlibDecoder::new(deflated)
        .take(MAX_HISTOGRAM_BYTES as u64 + 1)
        .read_to_end(&mut encoded)
        .map_err(|e| format!("the histogram does not decompress ({e})"))?;
    if encoded.len() > MAX_HISTOGRAM_BYTES {
        return Err(format!("the histogram decompresses to over {MAX_HISTOGRAM_BYTES} bytes"));
    }
    let (Some(V2_COOKIE), Some(declared)) = (be32(&encoded, 0), be32(&encoded, 4)) else {
        return Err("not a histogram once decompressed".to_owned());
    };
    let held = encoded.len().saturating_sub(V2_HEADER_BYTES);
    if declared as usize > held {
        return Err(format!("the histogram declares a payload of {declared} bytes and holds {held}"));
    }
    Ok(encoded)
}

/// A row of a per-interval, per-stage file (`counters.csv`, `admission.csv`).
struct Row<'t, const N: usize> {
    /// Its line number, for errors.
    line: usize,
    start_ms: u64,
    stage: &'t str,
    /// The asked-for columns, in the order asked.
    fields: [&'t str; N],
}

fn csv_error(path: &Path, line: usize, detail: String) -> ReadError {
    ReadError::Csv { path: path.to_owned(), line, detail }
}

/// Reads a per-interval, per-stage CSV file by its header's column names (so that columns added
/// later are skipped): each row's interval start, stage and `columns`, checked to be whole.
fn interval_rows<'t, const N: usize>(
    path: &Path,
    bytes: &'t [u8],
    columns: [&str; N],
) -> Result<Vec<Row<'t, N>>, ReadError> {
    let error = |line: usize, detail: String| csv_error(path, line, detail);
    let text = std::str::from_utf8(bytes).map_err(|e| error(1, format!("not UTF-8 ({e})")))?;
    if !text.is_empty() && !text.ends_with('\n') {
        return Err(error(text.lines().count(), "the last line is cut short: the file is truncated".to_owned()));
    }
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let column =
        |name: &str| header.iter().position(|h| *h == name).ok_or_else(|| error(1, format!("no `{name}` column")));
    let (start, stage) = (column("interval_start_s")?, column("stage")?);
    let mut indices = [0; N];
    for (index, name) in indices.iter_mut().zip(columns) {
        *index = column(name)?;
    }
    let mut rows = Vec::new();
    for (index, line) in lines.enumerate() {
        let line_no = index + 2;
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != header.len() {
            return Err(error(line_no, format!("{} fields, the header has {}", fields.len(), header.len())));
        }
        let start_ms =
            parse_millis(fields[start]).ok_or_else(|| error(line_no, format!("bad time `{}`", fields[start])))?;
        rows.push(Row { line: line_no, start_ms, stage: fields[stage], fields: indices.map(|i| fields[i]) });
    }
    Ok(rows)
}

/// Counters by interval start (milliseconds, as the file has them) and stage.
type Counters = BTreeMap<u64, BTreeMap<String, StageCounters>>;

/// Reads `counters.csv`.
fn parse_counters(path: &Path, bytes: &[u8]) -> Result<Counters, ReadError> {
    let mut counters = Counters::new();
    for row in interval_rows(path, bytes, ["processed", "rejected", "failed", "timed_out"])? {
        let [processed, rejected, failed, timed_out] = row.fields.map(str::parse::<u64>);
        let bad = |_| csv_error(path, row.line, format!("bad count in `{}`", row.fields.join(",")));
        let counts = StageCounters {
            processed: processed.map_err(bad)?,
            rejected: rejected.map_err(bad)?,
            failed: failed.map_err(bad)?,
            timed_out: timed_out.map_err(bad)?,
        };
        counters.entry(row.start_ms).or_default().insert(row.stage.to_owned(), counts);
    }
    Ok(counters)
}

/// Pool threads and batch sizes by interval start (milliseconds) and stage.
type Levels = BTreeMap<u64, BTreeMap<String, StageLevels>>;

/// Reads the `pool_threads` and `batch_size` columns of `counters.csv`, if it has them (a
/// record written before them has not).
fn parse_levels(path: &Path, bytes: &[u8]) -> Result<Levels, ReadError> {
    let mut levels = Levels::new();
    let header = bytes.split(|&b| b == b'\n').next().unwrap_or_default();
    if !header.split(|&b| b == b',').any(|column| column == b"batch_size") {
        return Ok(levels);
    }
    for row in interval_rows(path, bytes, ["pool_threads", "batch_size"])? {
        let [threads, batch] = row.fields.map(str::parse::<u64>);
        let bad = |_| csv_error(path, row.line, format!("bad level in `{}`", row.fields.join(",")));
        let level = StageLevels { pool_threads: threads.map_err(bad)?, batch_size: batch.map_err(bad)? };
        levels.entry(row.start_ms).or_default().insert(row.stage.to_owned(), level);
    }
    Ok(levels)
}

/// Admission controller readings by interval start (milliseconds) and stage.
type Admission = BTreeMap<u64, BTreeMap<String, AdmissionReading>>;

/// Reads `admission.csv`.
fn parse_admission(path: &Path, bytes: &[u8]) -> Result<Admission, ReadError> {
    let mut admission = Admission::new();
    for row in interval_rows(path, bytes, ["controller", "level", "latency_ms"])? {
        let [controller, level, latency] = row.fields;
        let number = |text: &str| text.parse::<f64>().ok().filter(|v| v.is_finite() && *v >= 0.0);
        let bad = |what: &str, text: &str| csv_error(path, row.line, format!("bad {what} `{text}`"));
        let reading = AdmissionReading {
            controller: controller.to_owned(),
            level: number(level).ok_or_else(|| bad("level", level))?,
            latency_ms: match latency {
                "" => None,
                text => Some(number(text).ok_or_else(|| bad("latency", text))?),
            },
        };
        admission.entry(row.start_ms).or_default().insert(row.stage.to_owned(), reading);
    }
    Ok(admission)
}

/// `"1.250"` (seconds, three decimals) as 1250 milliseconds.
fn parse_millis(secs: &str) -> Option<u64> {
    let secs: f64 = secs.parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| (secs * 1_000.0).round() as u64)
}

/// Joins the log's histograms and the counters by interval start (both written to the
/// millisecond). Histograms of one tag and interval are added up; one whose values do not fit
/// the first's range (a log seda did not write, or a damaged one) is an error naming its line.
fn join(
    hlog: &Path,
    log: Log,
    counters: Counters,
    admission: Admission,
    levels: Levels,
) -> Result<Vec<Interval>, ReadError> {
    let typical_length = log.entries.first().map_or(Duration::ZERO, |e| e.2);
    let mut by_start: BTreeMap<u64, Interval> = BTreeMap::new();
    let new = |start_ms: u64, length: Duration| Interval {
        start: Duration::from_millis(start_ms),
        length,
        histograms: BTreeMap::new(),
        counters: BTreeMap::new(),
        admission: BTreeMap::new(),
        levels: BTreeMap::new(),
    };
    for (tag, start, length, histogram, line) in log.entries {
        let start_ms = start.as_millis() as u64;
        let interval = by_start.entry(start_ms).or_insert_with(|| new(start_ms, length));
        match interval.histograms.get_mut(&tag) {
            Some(h) => {
                h.auto(true);
                h.add(&histogram).map_err(|e| ReadError::Hlog {
                    path: hlog.to_owned(),
                    line,
                    detail: format!("a second `{tag}` histogram of the interval does not add to the first ({e:?})"),
                })?;
            }
            None => {
                interval.histograms.insert(tag, histogram);
            }
        }
    }
    for (start_ms, stages) in counters {
        by_start.entry(start_ms).or_insert_with(|| new(start_ms, typical_length)).counters = stages;
    }
    for (start_ms, stages) in admission {
        by_start.entry(start_ms).or_insert_with(|| new(start_ms, typical_length)).admission = stages;
    }
    for (start_ms, stages) in levels {
        by_start.entry(start_ms).or_insert_with(|| new(start_ms, typical_length)).levels = stages;
    }
    Ok(by_start.into_values().collect())
}

/// Checks that the log and the counters add up to the summary (step 3 of the module doc).
fn check_complete(run: &RecordedRun, load_counts: &BTreeMap<&str, u64>) -> Result<(), ReadError> {
    let hlog = run.dir.join(HLOG_FILE);
    let counters = run.dir.join(COUNTERS_FILE);
    let logged = |tag: &str| run.intervals.iter().filter_map(|i| i.histograms.get(tag)).map(|h| h.len()).sum::<u64>();
    let check = |path: &Path, what: String, found: u64, expected: u64| {
        if found == expected {
            Ok(())
        } else {
            Err(ReadError::Incomplete { path: path.to_owned(), what, found, expected })
        }
    };
    let s = &run.summary;
    // Every stage the log or the counters name is one of the summary's.
    let summary_path = run.dir.join(SUMMARY_FILE);
    let missing = |path: &Path, stage: &str| ReadError::Inconsistent {
        path: summary_path.clone(),
        detail: format!("stage `{stage}` is in {} but not in the summary", path.display()),
    };
    for interval in &run.intervals {
        for tag in interval.histograms.keys() {
            let stage = STAGE_SERIES.iter().find_map(|(metric, _)| tag.strip_suffix(metric)?.strip_suffix('.'));
            if let Some(stage) = stage.filter(|stage| !s.stages.contains_key(*stage)) {
                return Err(missing(&hlog, stage));
            }
        }
        if let Some(stage) = interval.counters.keys().find(|stage| !s.stages.contains_key(*stage)) {
            return Err(missing(&counters, stage));
        }
        if let Some(stage) = interval.admission.keys().find(|stage| !s.stages.contains_key(*stage)) {
            return Err(missing(&run.dir.join(ADMISSION_FILE), stage));
        }
    }
    check(&hlog, format!("`{E2E_TAG}`"), logged(E2E_TAG), s.latency_us.count)?;
    for (&tag, &count) in load_counts {
        check(&hlog, format!("`{tag}`"), logged(tag), count)?;
    }
    for (name, stage) in &s.stages {
        for ((metric, _), p) in STAGE_SERIES.iter().zip(stage.series()) {
            let tag = format!("{name}.{metric}");
            check(&hlog, format!("`{tag}`"), logged(&tag), p.count)?;
        }
        let mut total = StageCounters::default();
        for interval in &run.intervals {
            if let Some(c) = interval.counters.get(name) {
                total.add(c);
            }
        }
        check(&counters, format!("`{name}` processed"), total.processed, stage.processed)?;
        check(&counters, format!("`{name}` rejected"), total.rejected, stage.rejected)?;
        check(&counters, format!("`{name}` failed"), total.failed, stage.failed)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_by_column_name() {
        let csv = "interval_start_s,stage,queue_depth,processed,rejected,failed,timed_out\n0.050,a,7,10,1,2,3\n";
        let counters = parse_counters(Path::new("c.csv"), csv.as_bytes()).unwrap();
        let row = StageCounters { processed: 10, rejected: 1, failed: 2, timed_out: 3 };
        assert_eq!(counters[&50]["a"], row);
    }

    #[test]
    fn a_cut_counters_line_names_its_line() {
        let csv = "interval_start_s,stage,processed,rejected,failed,timed_out\n0.050,a,10,0,0,0\n0.100,a,1";
        let err = parse_counters(Path::new("c.csv"), csv.as_bytes()).unwrap_err();
        assert_eq!(err.to_string(), "c.csv:3: the last line is cut short: the file is truncated");
    }

    #[test]
    fn a_log_without_its_version_header_is_refused() {
        let err = parse_hlog(Path::new("l.hlog"), b"#[StartTime: 1.000 (seconds since epoch)]\n").err().unwrap();
        assert!(err.to_string().starts_with("l.hlog:1: not an interval log of format 1.3"), "{err}");
    }

    #[test]
    fn histograms_of_one_interval_and_tag_with_different_ranges_add_up_without_a_panic() {
        use crate::metrics::hlog::{write, Entry};
        // Two lines of one tag and start: the second's values are past the first's range. Found
        // while writing the `run_record` fuzz target: `seda report` panicked on such a log.
        let histogram = |high: u64, value: u64| {
            let mut h = Histogram::<u64>::new_with_bounds(1, high, 3).unwrap();
            h.record(value).unwrap();
            h
        };
        let entry =
            |h| Entry { tag: "e2e".into(), start: Duration::ZERO, length: Duration::from_secs(1), histogram: h };
        let mut bytes = Vec::new();
        let entries = [entry(histogram(1_000, 5)), entry(histogram(10_000_000, 5_000_000))];
        write(&mut bytes, std::time::UNIX_EPOCH, entries).unwrap();
        let log = parse_hlog(Path::new("l.hlog"), &bytes).unwrap();
        let intervals = join(Path::new("l.hlog"), log, Counters::new(), Admission::new(), Levels::new()).unwrap();
        let e2e = &intervals[0].histograms["e2e"];
        assert_eq!((e2e.len(), e2e.min(), e2e.max()), (2, 5, e2e.highest_equivalent(5_000_000)));
    }

    #[test]
    fn an_interval_ending_past_the_representable_time_is_an_error_not_a_panic() {
        use crate::metrics::hlog::{write, Entry};
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 1_000, 3).unwrap();
        histogram.record(5).unwrap();
        let second = Duration::from_secs(1);
        let mut bytes = Vec::new();
        let entry = Entry { tag: "e2e".into(), start: second, length: second, histogram };
        write(&mut bytes, std::time::UNIX_EPOCH, [entry]).unwrap();
        // 1 s from the log's start, for u64::MAX s: the end is past what a Duration holds.
        let text = String::from_utf8(bytes).unwrap();
        let text = text.replace("Tag=e2e,1.000,1.000,", "Tag=e2e,1.000,18446744073709551615.000,");
        match parse_hlog(Path::new("l.hlog"), text.as_bytes()) {
            Ok(log) => {
                // What the report then does with each interval: its end.
                let ends: Vec<Duration> =
                    join(Path::new("l.hlog"), log, Counters::new(), Admission::new(), Levels::new())
                        .unwrap()
                        .iter()
                        .map(Interval::end)
                        .collect();
                panic!("accepted, ending at {ends:?}");
            }
            Err(e) => {
                assert_eq!(e.to_string(), "l.hlog:6: an interval that ends past any representable time", "{text}")
            }
        }
    }

    #[test]
    fn a_histogram_declaring_more_payload_than_it_holds_is_refused_before_any_allocation() {
        use std::io::Write;

        use hdrhistogram::serialization::{Serializer, V2Serializer};
        // Found by the `run_record` fuzz target: a changed byte in a histogram's header declared
        // a payload of 3.75 GiB, which the deserializer allocated before it read. Here, 256 MiB
        // in a well-formed zlib stream (the fuzz build skips zlib's checksum; seda does not).
        let mut histogram = Histogram::<u64>::new_with_bounds(1, 1_000, 3).unwrap();
        histogram.record(5).unwrap();
        let mut encoded = Vec::new();
        V2Serializer::new().serialize(&histogram, &mut encoded).unwrap();
        let held = encoded.len() - 40;
        encoded[4..8].copy_from_slice(&(256u32 << 20).to_be_bytes());
        let mut zlib = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
        zlib.write_all(&encoded).unwrap();
        let deflated = zlib.finish().unwrap();
        let mut compressed = 0x1c84_9314u32.to_be_bytes().to_vec();
        compressed.extend_from_slice(&(deflated.len() as u32).to_be_bytes());
        compressed.extend_from_slice(&deflated);
        let log = format!(
            "{HLOG_VERSION_LINE}\n#[StartTime: 1.000 (seconds since epoch)]\nTag=e2e,0.100,0.100,0.005,{}\n",
            base64::engine::general_purpose::STANDARD.encode(&compressed)
        );
        let err = parse_hlog(Path::new("l.hlog"), log.as_bytes()).err().expect("an error");
        let expected = format!(
            "l.hlog:3: the histogram declares a payload of 268435456 bytes and holds {held}; the line may be cut short"
        );
        assert_eq!(err.to_string(), expected);
    }
}
