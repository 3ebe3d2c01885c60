//! Run records: `seda run --record DIR`, and the files existing HdrHistogram tools read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use seda::record::{self, RecordError};
use serde_json::{json, Value};

use crate::support::a_cpu;

/// A fresh directory path of this test's own under the temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seda-it-record-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// 600 requests at 2000/s (0.3 s) with a 50 ms metrics interval: several intervals.
fn config() -> Value {
    json!({
        "name": "recorded",
        "metrics_interval_ms": 50,
        "source": { "kind": "generator", "requests": 600, "rate": 2000, "entry": "parse" },
        "pools": { "p": { "cpus": [a_cpu()] } },
        "stages": {
            "parse": { "kind": "noop", "pool": "p", "next": "done" },
            "done": { "kind": "respond", "pool": "p" }
        }
    })
}

fn data_rows(hgrm: &str) -> Vec<&str> {
    hgrm.lines().skip(2).filter(|l| !l.starts_with('#') && !l.is_empty()).collect()
}

#[test]
fn a_recorded_run_writes_an_interval_log_counters_and_spectra() {
    let text = serde_json::to_string_pretty(&config()).unwrap();
    let plan = seda::config::load_str(&text).unwrap();
    let before = SystemTime::now();
    let finished = seda::run::Runner::new(plan).record(true).run_to_end().unwrap();
    let (summary, recording) = (finished.summary, finished.recording.unwrap());
    let after = SystemTime::now();
    let dir = scratch("library");
    record::write_run(&dir, &text, &summary, &recording).unwrap();
    assert_eq!(summary.ledger.completed, 600);

    assert_eq!(std::fs::read_to_string(dir.join("config.json")).unwrap(), text);
    // The same text as `--json` (compared as text: serde_json's float parsing may differ in the
    // last digit).
    let json = serde_json::to_string_pretty(&summary).unwrap() + "\n";
    assert_eq!(std::fs::read_to_string(dir.join("summary.json")).unwrap(), json);

    // The interval log decodes with the hdrhistogram crate.
    let log = std::fs::read(dir.join("latency.hlog")).unwrap();
    let header: Vec<&str> = std::str::from_utf8(&log).unwrap().lines().take(4).collect();
    assert_eq!(header[0], "#[Histogram log format version 1.3]");
    assert!(header[1].starts_with("#[StartTime: "));
    assert_eq!(header[3], "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"");
    let mut start_time = None;
    let mut by_tag: BTreeMap<String, Vec<(Duration, Histogram<u64>)>> = BTreeMap::new();
    for entry in IntervalLogIterator::new(&log) {
        match entry.unwrap() {
            LogEntry::StartTime(t) => start_time = Some(t),
            LogEntry::BaseTime(t) => assert_eq!(Some(t), start_time),
            LogEntry::Interval(i) => {
                let bytes = base64::engine::general_purpose::STANDARD.decode(i.encoded_histogram()).unwrap();
                let h: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
                assert_eq!(i.duration(), Duration::from_millis(50));
                // Interval_Max is in milliseconds.
                assert!((i.max() - h.max() as f64 / 1e6).abs() < 0.001, "{} vs {}", i.max(), h.max());
                by_tag.entry(i.tag().unwrap().as_str().to_owned()).or_default().push((i.start_timestamp(), h));
            }
        }
    }
    // `done` runs on the same pool straight after `parse`: it never waits in its queue, so it
    // has no queue-wait series.
    let tags: BTreeSet<&str> = by_tag.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = ["parse.queue_wait", "parse.service", "done.service", "e2e"].into_iter().collect();
    assert_eq!(tags, expected);
    assert_eq!(summary.stages["done"].queue_wait_us.count, 0);
    // Every interval has every tag.
    let starts: Vec<Vec<Duration>> = by_tag.values().map(|v| v.iter().map(|(s, _)| *s).collect()).collect();
    assert!(starts.windows(2).all(|w| w[0] == w[1]), "{starts:?}");

    // Interval starts increase and lie within the run.
    let start_time = start_time.expect("a StartTime header");
    let since_epoch = |t: SystemTime| t.duration_since(UNIX_EPOCH).unwrap();
    assert!(start_time + Duration::from_millis(1) >= since_epoch(before));
    for intervals in by_tag.values() {
        for pair in intervals.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{:?} then {:?}", pair[0].0, pair[1].0);
        }
        for (start, _) in intervals {
            assert!(start_time + *start <= since_epoch(after), "{start:?} past the run's end");
        }
    }
    assert!(by_tag["e2e"].len() >= 3, "0.3 s in 50 ms intervals: {} intervals", by_tag["e2e"].len());

    // The intervals add up to the run.
    let e2e_count: u64 = by_tag["e2e"].iter().map(|(_, h)| h.len()).sum();
    assert_eq!(e2e_count, summary.ledger.completed);
    let service: u64 = by_tag["parse.service"].iter().map(|(_, h)| h.len()).sum();
    assert_eq!(service, summary.stages["parse"].service_us.count);

    // Counters: per interval and stage, adding up to the summary's.
    let csv = std::fs::read_to_string(dir.join("counters.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some("interval_start_s,stage,processed,rejected,failed,timed_out,queue_depth,pool_utilisation,pool_threads,batch_size")
    );
    let mut processed = BTreeMap::<String, u64>::new();
    // The pool's utilisation by interval start: both stages run on the one pool.
    let mut utilisation = BTreeMap::<String, f64>::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        assert_eq!(fields.len(), 10, "{line}");
        // A fixed pool of one thread, a fixed batch of 32, in every interval.
        assert_eq!(fields[8..], ["1", "32"], "{line}");
        *processed.entry(fields[1].to_owned()).or_default() += fields[2].parse::<u64>().unwrap();
        // 600 requests into a queue of 4096: never more queued than were sent.
        assert!(fields[6].parse::<u64>().unwrap() <= 600, "{line}");
        let u: f64 = fields[7].parse().unwrap();
        assert!(u >= 0.0 && u.is_finite(), "{line}");
        let pool = *utilisation.entry(fields[0].to_owned()).or_insert(u);
        assert_eq!(pool, u, "every stage of a pool shows the pool's one figure: {line}");
    }
    assert_eq!(processed["parse"], summary.stages["parse"].processed);
    assert_eq!(processed["done"], summary.stages["done"].processed);
    // An interval's figure may run over 1 (a worker's busy time is filed with the interval it
    // publishes in), but their sum is the one worker's busy time, which the run's wall time
    // bounds (give or take an interval, and the rounding of each figure to 3 decimals), and
    // which is more than nothing: it ran 600 requests.
    let busy_s = utilisation.values().sum::<f64>() * 0.05;
    let rounding_s = utilisation.len() as f64 * 0.0005 * 0.05;
    assert!(busy_s > 0.0 && busy_s <= summary.elapsed_s + 0.05 + rounding_s, "{busy_s} s busy\n{csv}");

    // Spectra of the whole run: four columns per data row, ending at the total count.
    for name in ["parse.queue_wait", "parse.service", "done.queue_wait", "done.service", "e2e"] {
        let hgrm = std::fs::read_to_string(dir.join(format!("{name}.hgrm"))).unwrap();
        assert!(hgrm.starts_with("       Value     Percentile TotalCount 1/(1-Percentile)\n\n"), "{name}");
        let rows = data_rows(&hgrm);
        // A spectrum with nothing recorded has the header and footer only.
        assert_eq!(rows.is_empty(), name == "done.queue_wait", "{name}");
        for row in &rows {
            assert_eq!(row.split(' ').filter(|c| !c.is_empty()).count(), 4, "{name}: {row}");
        }
        assert!(hgrm.contains("#[Mean    = ") && hgrm.contains("#[Buckets = "), "{name}");
    }
    let e2e = std::fs::read_to_string(dir.join("e2e.hgrm")).unwrap();
    let last: Vec<&str> = data_rows(&e2e).last().unwrap().split_whitespace().collect();
    assert_eq!(last[2], "600");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_non_empty_record_directory_is_refused() {
    let dir = scratch("not-empty");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("keep.txt"), "mine").unwrap();
    let err = record::prepare_dir(&dir).unwrap_err();
    assert!(matches!(err, RecordError::NotEmpty(_)));
    assert!(err.to_string().contains("exists and is not empty"), "{err}");

    // And from the command line: refused before the run, the file left alone.
    let config = dir.with_extension("json");
    std::fs::write(&config, config_text()).unwrap();
    let output = seda().arg("run").arg(&config).arg("--record").arg(&dir).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("exists and is not empty"), "{stderr}");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    assert_eq!(std::fs::read_to_string(dir.join("keep.txt")).unwrap(), "mine");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&config).unwrap();
}

fn config_text() -> String {
    serde_json::to_string_pretty(&config()).unwrap()
}

fn seda() -> std::process::Command {
    std::process::Command::new(env!("CARGO_BIN_EXE_seda"))
}

fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
}

#[test]
fn seda_run_record_writes_the_run_directory() {
    let dir = scratch("cli");
    let config = dir.with_extension("json");
    std::fs::write(&config, config_text()).unwrap();
    // The directory is made, parents included.
    let record_dir = dir.join("run1");
    let output = seda().arg("run").arg(&config).arg("--record").arg(&record_dir).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let expected: BTreeSet<String> = [
        "config.json",
        "summary.json",
        "latency.hlog",
        "counters.csv",
        "parse.queue_wait.hgrm",
        "parse.service.hgrm",
        "done.queue_wait.hgrm",
        "done.service.hgrm",
        "e2e.hgrm",
    ]
    .into_iter()
    .map(String::from)
    .collect();
    assert_eq!(files(&record_dir), expected);
    assert_eq!(std::fs::read_to_string(record_dir.join("config.json")).unwrap(), config_text());
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(record_dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["ledger"]["completed"], 600);
    let log = std::fs::read(record_dir.join("latency.hlog")).unwrap();
    let intervals = IntervalLogIterator::new(&log).filter(|e| matches!(e, Ok(LogEntry::Interval(_)))).count();
    assert!(intervals >= 5, "{intervals}");
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::remove_file(&config).unwrap();
}
