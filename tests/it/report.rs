//! `seda report`: run records read back, over windows, as tables, `.hgrm` spectra and SVG plots,
//! and the errors a damaged record gives.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use seda::metrics::{hlog, Summary};
use seda::record;
use seda::report::{read_run, RunTable, Slice, Window};
use serde_json::{json, Value};

use crate::support::two_cpus;

/// A fresh directory of this test's own under the temporary directory.
fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seda-it-report-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// `requests` at `rate`/s with a 50 ms metrics interval, on two pools, so that two stages have a
/// queue wait (`parse` behind the generator, `work` behind `parse`) and one has none (`done`
/// runs on straight after `work`).
fn config(requests: u64, rate: u64) -> Value {
    json!({
        "name": "reported",
        "metrics_interval_ms": 50,
        "stage_timing_every": 1,
        "source": { "kind": "generator", "requests": requests, "rate": rate, "entry": "parse", "cpu": two_cpus()[0] },
        "pools": { "front": { "cpus": [two_cpus()[0]] }, "back": { "cpus": [two_cpus()[1]] } },
        "stages": {
            "parse": { "kind": "noop", "pool": "front", "next": "work" },
            "work": { "kind": "spin", "pool": "back", "params": { "micros": 2 }, "next": "done",
                      "queue": { "capacity": 4096, "when_full": "block", "block_timeout_ms": 1000 } },
            "done": { "kind": "respond", "pool": "back" }
        }
    })
}

/// Runs `config` with the library, records it into `dir`, and returns its summary as the run
/// produced it (not as read back).
fn record_run(dir: &Path, config: &Value) -> Summary {
    let text = serde_json::to_string_pretty(config).unwrap();
    let plan = seda::config::load_str(&text).unwrap();
    let finished = seda::run::Runner::new(plan).record(true).run_to_end().unwrap();
    let (summary, recording) = (finished.summary, finished.recording.unwrap());
    record::write_run(dir, &text, &summary, &recording).unwrap();
    summary
}

fn seda_report(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_seda"));
    command.arg("report");
    for arg in args {
        command.arg(arg);
    }
    command.output().unwrap()
}

fn stdout(output: &Output) -> String {
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout.clone()).unwrap()
}

/// The latency table of `seda run`'s summary: from its header to its end-to-end row.
fn summary_table(summary: &Summary) -> String {
    let text = summary.to_string();
    text[text.find("latency (us)").unwrap()..].to_owned()
}

#[test]
fn a_report_of_the_whole_run_has_the_percentiles_of_its_summary() {
    let dir = scratch("whole");
    let summary = record_run(&dir, &config(600, 2000));
    assert_eq!(summary.ledger.completed, 600);

    let run = read_run(&dir).unwrap();
    let table = RunTable::of(&Slice::of(&run, Window::ALL).unwrap());
    for (name, stage) in &summary.stages {
        let queue = table.row(name, "queue").unwrap();
        let service = table.row(name, "service").unwrap();
        assert_eq!(queue.latency, stage.queue_wait_us, "{name} queue wait");
        assert_eq!(service.latency, stage.service_us, "{name} service");
        for row in [queue, service] {
            assert_eq!((row.rate, row.rejected, row.failed), (stage.throughput_rps, stage.rejected, stage.failed));
        }
    }
    let e2e = table.row("end to end", "").unwrap();
    assert_eq!(e2e.latency, summary.latency_us);
    assert_eq!((e2e.rate, e2e.rejected, e2e.failed), (summary.throughput_rps, 0, 0));
    assert_eq!(table.rows.len(), 2 * 3 + 1);
    // The stages behind a queue waited in it; `done` never did.
    assert!(summary.stages["parse"].queue_wait_us.count > 0 && summary.stages["work"].queue_wait_us.count > 0);
    assert_eq!(summary.stages["done"].queue_wait_us.count, 0);

    // The binary prints the same table as `seda run` did, row for row, and names the tail.
    let out = stdout(&seda_report(&[&dir]));
    assert!(out.contains(&summary_table(&summary)), "{out}\nshould contain\n{}", summary_table(&summary));
    let tail = table.tail.as_ref().unwrap();
    let largest = summary
        .stages
        .iter()
        .map(|(name, s)| (s.queue_wait_us.p99 + s.service_us.p99, name))
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    assert_eq!(&tail.stage, largest.1);
    assert!(out.contains(&format!("tail: {} (p99 queue wait ", tail.stage)), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The log's histograms by tag and interval start, decoded here on their own.
fn decode_log(dir: &Path) -> BTreeMap<String, Vec<(Duration, Histogram<u64>)>> {
    let log = std::fs::read(dir.join("latency.hlog")).unwrap();
    let mut by_tag: BTreeMap<String, Vec<(Duration, Histogram<u64>)>> = BTreeMap::new();
    for entry in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(i) = entry.unwrap() {
            let bytes = base64::engine::general_purpose::STANDARD.decode(i.encoded_histogram()).unwrap();
            let h: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
            by_tag.entry(i.tag().unwrap().as_str().to_owned()).or_default().push((i.start_timestamp(), h));
        }
    }
    by_tag
}

/// The histograms of `tag` whose interval starts in `from..to`, merged.
fn merged(
    log: &BTreeMap<String, Vec<(Duration, Histogram<u64>)>>,
    tag: &str,
    from: Duration,
    to: Duration,
) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 100_000_000_000, 3).unwrap();
    for (start, interval) in &log[tag] {
        if *start >= from && *start < to {
            h.add(interval).unwrap();
        }
    }
    h
}

fn us(ns: u64) -> f64 {
    ns as f64 / 1_000.0
}

#[test]
fn a_window_has_the_percentiles_of_exactly_its_intervals() {
    let dir = scratch("window");
    let summary = record_run(&dir, &config(1_500, 3_000));
    let log = decode_log(&dir);
    let starts: Vec<Duration> = log["e2e"].iter().map(|(s, _)| *s).collect();
    assert!(starts.len() >= 6, "0.5 s in 50 ms intervals: {starts:?}");
    // The second to the fourth interval: `--to` is the start of the fifth, which is left out.
    let (from, to) = (starts[1], starts[4]);

    let run = read_run(&dir).unwrap();
    let window = Window { from: Some(from), to: Some(to) };
    let slice = Slice::of(&run, window).unwrap();
    assert_eq!(slice.intervals.iter().map(|i| i.start).collect::<Vec<_>>(), starts[1..4]);
    let table = RunTable::of(&slice);
    let tags = [
        ("parse", "queue", "parse.queue_wait"),
        ("parse", "service", "parse.service"),
        ("work", "queue", "work.queue_wait"),
        ("work", "service", "work.service"),
        ("done", "service", "done.service"),
        ("end to end", "", "e2e"),
    ];
    for (name, metric, tag) in tags {
        let expected = merged(&log, tag, from, to);
        let row = &table.row(name, metric).unwrap().latency;
        let quantiles = [(0.5, row.p50), (0.9, row.p90), (0.99, row.p99), (0.999, row.p999)];
        for (q, got) in quantiles {
            assert_eq!(got, us(expected.value_at_quantile(q)), "{tag} at {q}");
        }
        assert_eq!((row.count, row.max), (expected.len(), us(expected.max())), "{tag}");
    }
    // A strict part of the run.
    let e2e = merged(&log, "e2e", from, to);
    assert!(!e2e.is_empty() && e2e.len() < summary.latency_us.count, "{} of {}", e2e.len(), summary.latency_us.count);

    // The binary, given the window in seconds, prints those stats.
    let (from_s, to_s) = (format!("{}", from.as_secs_f64()), format!("{}", to.as_secs_f64()));
    let out = stdout(&seda_report(&[&dir, &"--from", &from_s, &"--to", &to_s]));
    let row = out.lines().find(|l| l.starts_with("end to end")).unwrap();
    let columns: Vec<&str> = row.split_whitespace().collect();
    let expected = [e2e.len().to_string()]
        .into_iter()
        .chain([0.5, 0.9, 0.99, 0.999].map(|q| format!("{:.2}", us(e2e.value_at_quantile(q)))))
        .chain([format!("{:.2}", us(e2e.max()))])
        .collect::<Vec<_>>();
    // "end", "to", "end", count, rate, p50, p90, p99, p99.9, max, rejected, failed
    assert_eq!(columns[3], expected[0], "{row}");
    assert_eq!(columns[5..10], expected[1..], "{row}");
    assert!(out.contains("3 intervals of 0.050 s"), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn data_rows(hgrm: &str) -> Vec<&str> {
    hgrm.lines().skip(2).filter(|l| !l.starts_with('#') && !l.is_empty()).collect()
}

fn files(dir: &Path) -> BTreeSet<String> {
    std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect()
}

#[test]
fn hgrm_spectra_have_four_columns_and_match_the_record_over_the_whole_run() {
    let dir = scratch("hgrm");
    let run_dir = dir.join("run");
    let summary = record_run(&run_dir, &config(600, 2000));
    let whole = dir.join("whole");
    stdout(&seda_report(&[&run_dir, &"--hgrm", &whole]));
    let names = [
        "parse.queue_wait",
        "parse.service",
        "work.queue_wait",
        "work.service",
        "done.queue_wait",
        "done.service",
        "e2e",
    ];
    let expected: BTreeSet<String> = names.iter().map(|n| format!("{n}.hgrm")).collect();
    assert_eq!(files(&whole), expected);
    for name in names {
        let text = std::fs::read_to_string(whole.join(format!("{name}.hgrm"))).unwrap();
        // Over the whole run, the same spectrum as the record's own.
        let recorded = std::fs::read_to_string(run_dir.join(format!("{name}.hgrm"))).unwrap();
        assert_eq!(text, recorded, "{name}");
        let rows = data_rows(&text);
        assert_eq!(rows.is_empty(), name == "done.queue_wait", "{name}");
        for row in rows {
            assert_eq!(row.split(' ').filter(|c| !c.is_empty()).count(), 4, "{name}: {row}");
        }
    }

    // Over a window: four columns still, ending at the window's count.
    let log = decode_log(&run_dir);
    let starts: Vec<Duration> = log["e2e"].iter().map(|(s, _)| *s).collect();
    let windowed = dir.join("windowed");
    let from = format!("{}", starts[2].as_secs_f64());
    stdout(&seda_report(&[&run_dir, &"--from", &from, &"--hgrm", &windowed]));
    let text = std::fs::read_to_string(windowed.join("e2e.hgrm")).unwrap();
    let rows = data_rows(&text);
    for row in &rows {
        assert_eq!(row.split(' ').filter(|c| !c.is_empty()).count(), 4, "{row}");
    }
    let total: u64 = rows.last().unwrap().split_whitespace().nth(2).unwrap().parse().unwrap();
    let in_window = merged(&log, "e2e", starts[2], Duration::MAX).len();
    assert_eq!(total, in_window);
    assert!(in_window < summary.latency_us.count);
    std::fs::remove_dir_all(&dir).unwrap();
}

/// The `data-name` of each series group of an SVG, with the number of points of its line
/// (or of its bars), after checking that the file is well-formed XML with an `<svg>` root.
fn svg_series(path: &Path) -> BTreeMap<String, usize> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants()
        .filter(|n| n.has_tag_name("g") && n.attribute("class") == Some("series"))
        .map(|g| {
            let name = g.attribute("data-name").unwrap().to_owned();
            let line = g.children().find(|c| c.has_tag_name("polyline"));
            let points = match line {
                Some(line) => line.attribute("points").unwrap().split_whitespace().count(),
                None => g.children().filter(|c| c.has_tag_name("rect")).count(),
            };
            (name, points)
        })
        .collect()
}

fn texts(path: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(path).unwrap();
    let doc = roxmltree::Document::parse(&text).unwrap();
    doc.descendants().filter(|n| n.has_tag_name("text")).filter_map(|n| n.text().map(str::to_owned)).collect()
}

#[test]
fn svg_plots_are_well_formed_with_the_expected_series() {
    let dir = scratch("svg");
    let (slow, fast) = (dir.join("slow"), dir.join("fast"));
    record_run(&slow, &config(600, 2_000));
    record_run(&fast, &config(1_200, 4_000));
    let plots = dir.join("plots");
    let out = stdout(&seda_report(&[&slow, &fast, &"--svg", &plots]));
    assert_eq!(files(&plots), ["fast", "knee.svg", "slow"].map(String::from).into());

    for run_dir in [&slow, &fast] {
        let label = run_dir.file_name().unwrap().to_str().unwrap();
        let folder = plots.join(label);
        assert_eq!(files(&folder), ["spectrum.svg", "timeline.svg"].map(String::from).into());
        let log = decode_log(run_dir);

        let spectrum = svg_series(&folder.join("spectrum.svg"));
        let names: BTreeSet<&str> = spectrum.keys().map(String::as_str).collect();
        let expected =
            ["parse queue wait", "parse service", "work queue wait", "work service", "done service", "end to end"];
        assert_eq!(names, expected.into(), "{label}");
        // A point per quantile an .hgrm lists, short of 100% (at infinity on this axis).
        let tags = ["parse.queue_wait", "parse.service", "work.queue_wait", "work.service", "done.service", "e2e"];
        for (name, tag) in expected.iter().zip(tags) {
            let whole = merged(&log, tag, Duration::ZERO, Duration::MAX);
            let quantiles = whole.iter_quantiles(5).filter(|v| v.quantile_iterated_to() < 1.0).count();
            assert!(quantiles >= 2, "{label}: {tag}");
            assert_eq!(spectrum[*name], quantiles, "{label}: {name}");
        }

        let timeline = svg_series(&folder.join("timeline.svg"));
        let names: BTreeSet<&str> = timeline.keys().map(String::as_str).collect();
        let expected =
            ["end to end p99", "end to end max", "parse queue wait p99", "work queue wait p99", "completed/s"];
        assert_eq!(names, expected.into(), "{label}");
        // A point per interval with values in it.
        let with_values = |tag: &str| log[tag].iter().filter(|(_, h)| !h.is_empty()).count();
        assert_eq!(timeline["end to end p99"], with_values("e2e"), "{label}");
        assert_eq!(timeline["end to end max"], with_values("e2e"), "{label}");
        assert_eq!(timeline["parse queue wait p99"], with_values("parse.queue_wait"), "{label}");
        assert_eq!(timeline["work queue wait p99"], with_values("work.queue_wait"), "{label}");
        assert_eq!(timeline["completed/s"], log["e2e"].len(), "{label}: a bar per interval");
        assert!(out.contains(&folder.join("timeline.svg").display().to_string()), "{out}");
    }

    // The knee: a point per run, each labelled.
    let knee = plots.join("knee.svg");
    assert_eq!(svg_series(&knee), [("p99 by throughput".to_owned(), 2)].into());
    let labels = texts(&knee);
    assert!(labels.contains(&"slow".to_owned()) && labels.contains(&"fast".to_owned()), "{labels:?}");
    assert!(labels.contains(&"throughput (completed requests/s)".to_owned()), "{labels:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn two_runs_side_by_side_show_the_change() {
    let dir = scratch("compare");
    let (a, b) = (dir.join("a"), dir.join("b"));
    // The expected figures come from the runs' own summaries (the engine's histograms), not
    // from the report's reading of the records, and the changes are worked out here.
    let (sa, sb) = (record_run(&a, &config(600, 2_000)), record_run(&b, &config(900, 3_000)));
    let (ea, eb) = (&sa.latency_us, &sb.latency_us);
    assert_eq!((ea.count, eb.count), (600, 900));
    let out = stdout(&seda_report(&[&a, &b]));
    let lines: Vec<&str> = out.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("end to end")).unwrap();
    let columns = |l: &str| l.split_whitespace().map(str::to_owned).collect::<Vec<_>>();
    // name... which, count, rate, p50, p90, p99, p99.9, max, rejected, failed
    let row_a = columns(lines[at]);
    assert_eq!(row_a[3..5], ["A".to_owned(), "600".to_owned()], "{}", lines[at]);
    assert_eq!(row_a[8], format!("{:.2}", ea.p99), "{}", lines[at]);
    let row_b = columns(lines[at + 1]);
    assert_eq!(row_b[..2], ["B".to_owned(), "900".to_owned()], "{}", lines[at + 1]);
    assert_eq!(row_b[5], format!("{:.2}", eb.p99), "{}", lines[at + 1]);
    let change = columns(lines[at + 2]);
    assert_eq!(change[..2], ["change".to_owned(), "+300".to_owned()], "{}", lines[at + 2]);
    assert_eq!(change[5], format!("{:+.2}", eb.p99 - ea.p99), "{}", lines[at + 2]);
    let percent = columns(lines[at + 3]);
    assert_eq!(percent[..2], ["change".to_owned(), "%".to_owned()]);
    assert_eq!(percent[2], "+50.0%", "900 requests against 600: {}", lines[at + 3]);
    // The change in p99 in per cent, one decimal, signed.
    let p99_percent = 100.0 * (eb.p99 - ea.p99) / ea.p99;
    assert_eq!(percent[6], format!("{p99_percent:+.1}%"), "{}", lines[at + 3]);
    assert!(out.starts_with(&format!("A = run {}", a.display())), "{out}");
    std::fs::remove_dir_all(&dir).unwrap();
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

/// `seda report` on `dir` fails with exit code 1 and a message that contains `expected`.
fn fails_with(args: &[&dyn AsRef<std::ffi::OsStr>], expected: &str) {
    let output = seda_report(args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(expected), "stderr {stderr:?} should contain {expected:?}");
    assert!(output.stdout.is_empty(), "no table for a bad record");
}

#[test]
fn missing_truncated_and_foreign_records_give_clear_errors() {
    let dir = scratch("damaged");
    let good = dir.join("good");
    record_run(&good, &config(300, 2_000));
    let damaged = |name: &str, damage: &dyn Fn(&Path)| {
        let copy = dir.join(name);
        copy_dir(&good, &copy);
        damage(&copy);
        copy
    };

    let nowhere = dir.join("nowhere");
    fails_with(&[&nowhere], &format!("{}: no such run directory", nowhere.display()));

    let no_summary = damaged("no-summary", &|d| std::fs::remove_file(d.join("summary.json")).unwrap());
    fails_with(&[&no_summary], "not a complete run record: summary.json is missing");

    let no_log = damaged("no-log", &|d| std::fs::remove_file(d.join("latency.hlog")).unwrap());
    fails_with(&[&no_log], "latency.hlog is missing");

    // A line cut in the middle of its histogram.
    let hlog = std::fs::read_to_string(good.join("latency.hlog")).unwrap();
    let lines = hlog.lines().count();
    let cut_line = damaged("cut-line", &|d| {
        let cut = hlog.trim_end().len() - 20;
        std::fs::write(d.join("latency.hlog"), &hlog[..cut]).unwrap();
    });
    fails_with(&[&cut_line], &format!("latency.hlog:{lines}: "));
    fails_with(&[&cut_line], "truncated");

    // Whole lines lost at the end: the log no longer adds up to the summary. (Lines up to and
    // including the last that counts something: losing an empty interval loses nothing.)
    let short_log = damaged("short-log", &|d| {
        let mut kept: Vec<&str> = hlog.lines().collect();
        while let Some(line) = kept.pop() {
            let max = line.split(',').nth(3).unwrap_or("0.000");
            if max != "0.000" {
                break;
            }
        }
        std::fs::write(d.join("latency.hlog"), kept.join("\n") + "\n").unwrap();
    });
    fails_with(&[&short_log], "the record is incomplete (truncated?)");

    let cut_summary = damaged("cut-summary", &|d| {
        let text = std::fs::read_to_string(d.join("summary.json")).unwrap();
        std::fs::write(d.join("summary.json"), &text[..text.len() / 2]).unwrap();
    });
    fails_with(&[&cut_summary], "summary.json: not a seda summary");

    let edit_summary = |d: &Path, edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let path = d.join("summary.json");
        let mut summary: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(summary.as_object_mut().unwrap());
        std::fs::write(&path, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
    };
    let future = damaged("future", &|d| edit_summary(d, &|s| drop(s.insert("format".into(), json!("seda-run/2")))));
    fails_with(&[&future], "format `seda-run/2`, but this seda reads `seda-run/1` only");
    let unversioned = damaged("unversioned", &|d| edit_summary(d, &|s| drop(s.remove("format"))));
    fails_with(&[&unversioned], "no `format` field: not a run record this seda reads");

    let old_log = damaged("old-log", &|d| {
        std::fs::write(d.join("latency.hlog"), hlog.replacen("version 1.3", "version 1.2", 1)).unwrap();
    });
    fails_with(&[&old_log], "latency.hlog:1: not an interval log of format 1.3");

    // A window with no interval in it, and a window the wrong way round (bad usage: code 2).
    fails_with(&[&good, &"--from", &"1000"], "no interval in the window (intervals starting from 1000.000 s)");
    let output = seda_report(&[&good, &"--from", &"2", &"--to", &"1"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--from must be before --to"));

    // The good one still reads.
    stdout(&seda_report(&[&good]));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Gives the summary recorded in `run_dir` these sweep `steps`, as `seda load --sweep` writes
/// them.
fn set_steps(run_dir: &Path, steps: Value) {
    let path = run_dir.join("summary.json");
    let mut summary: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    summary["steps"] = steps;
    std::fs::write(&path, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
}

#[test]
fn a_summary_with_sweep_steps_gets_a_knee_of_its_steps() {
    let dir = scratch("steps");
    let run_dir = dir.join("sweep");
    record_run(&run_dir, &config(300, 2_000));
    // A sweep's summary lists its steps (only `throughput_rps` and `latency_us` are read).
    let step = |rps: f64, p99: f64| {
        json!({ "rate": rps, "throughput_rps": rps, "latency_us": {
            "count": 10, "mean": 1.0, "p50": 1.0, "p90": 2.0, "p99": p99, "p999": p99, "max": p99 } })
    };
    set_steps(&run_dir, json!([step(1_000.0, 10.0), step(2_000.0, 12.0), step(2_500.0, 900.0)]));

    let plots = dir.join("plots");
    stdout(&seda_report(&[&run_dir, &"--svg", &plots]));
    assert_eq!(files(&plots), ["knee.svg", "spectrum.svg", "timeline.svg"].map(String::from).into());
    let knee = plots.join("knee.svg");
    assert_eq!(svg_series(&knee), [("p99 by throughput".to_owned(), 3)].into());
    let labels = texts(&knee);
    for label in ["step 1", "step 2", "step 3"] {
        assert!(labels.contains(&label.to_owned()), "{labels:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_summary_that_does_not_hold_together_is_refused() {
    let dir = scratch("implausible");
    let good = dir.join("good");
    record_run(&good, &config(300, 2_000));
    let edited = |name: &str, edit: &dyn Fn(&mut serde_json::Map<String, Value>)| {
        let copy = dir.join(name);
        copy_dir(&good, &copy);
        let path = copy.join("summary.json");
        let mut summary: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        edit(summary.as_object_mut().unwrap());
        std::fs::write(&path, serde_json::to_string_pretty(&summary).unwrap()).unwrap();
        copy
    };
    let summary_of = |d: &Path| d.join("summary.json").display().to_string();

    // One more completed than admitted.
    let more = edited("ledger", &|s| {
        let completed = s["ledger"]["completed"].as_u64().unwrap();
        s["ledger"]["completed"] = json!(completed + 1);
    });
    let l = &read_run(&good).unwrap().summary.ledger;
    fails_with(
        &[&more],
        &format!(
            "{}: the ledger does not add up: admitted {} but completed {} + rejected 0 + failed 0 + timed out 0 + \
             in flight 0: the record is damaged or not seda's",
            summary_of(&more),
            l.admitted,
            l.completed + 1
        ),
    );

    for (name, elapsed) in [("zero", json!(0.0)), ("negative", json!(-1.0)), ("absurd", json!(1e308))] {
        let bad = edited(name, &|s| drop(s.insert("elapsed_s".into(), elapsed.clone())));
        let shown = elapsed.as_f64().unwrap();
        fails_with(
            &[&bad],
            &format!(
                "{}: `elapsed_s` is {shown}, not a run's length (above 0 s, at most a year): the record is \
                 damaged or not seda's",
                summary_of(&bad)
            ),
        );
    }
    // NaN is written as null: not a number at all.
    let nan = edited("nan", &|s| drop(s.insert("elapsed_s".into(), Value::Null)));
    fails_with(&[&nan], "summary.json: not a seda summary (invalid type: null, expected f64");

    // A stage the log and the counters have, missing from the summary.
    let no_stage = edited("no-stage", &|s| drop(s["stages"].as_object_mut().unwrap().remove("done")));
    fails_with(
        &[&no_stage],
        &format!(
            "{}: stage `done` is in {} but not in the summary",
            summary_of(&no_stage),
            no_stage.join("latency.hlog").display()
        ),
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_fifo_named_summary_json_is_refused_at_once() {
    let dir = scratch("fifo");
    let good = dir.join("good");
    record_run(&good, &config(300, 2_000));
    std::fs::remove_file(good.join("summary.json")).unwrap();
    let fifo = std::ffi::CString::new(good.join("summary.json").into_os_string().into_encoded_bytes()).unwrap();
    // SAFETY: the path is a valid NUL-terminated string that outlives the call.
    assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_seda"))
        .arg("report")
        .arg(&good)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Without the check the reader blocks on the FIFO for good: bound the wait, generously.
    let started = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("seda report hangs on a FIFO");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr, format!("seda: {}: not a regular file\n", good.join("summary.json").display()));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Found while writing the `run_record` fuzz target: summing a tag's histograms over a window
/// panicked (`expect("same layout")`) when a later interval's values lay past the first's range,
/// as in a log another tool wrote with a histogram sized to its own values.
#[test]
fn a_window_over_histograms_of_different_ranges_is_summed_without_a_panic() {
    let dir = scratch("ranges");
    let summary = record_run(&dir, &config(2_000, 20_000));
    let run = read_run(&dir).unwrap();
    // The e2e histograms, the one with the smallest maximum first (only their total is checked
    // against the summary, not which interval holds which); then each is cut down to a range that
    // just holds its own values.
    let mut e2e: Vec<Histogram<u64>> = run.intervals.iter().filter_map(|i| i.histograms.get("e2e").cloned()).collect();
    let smallest = (0..e2e.len()).min_by_key(|&i| e2e[i].max()).unwrap();
    e2e.swap(0, smallest);
    assert!(e2e.iter().any(|h| h.max() > e2e[0].max()), "an interval with larger values than the first");
    let mut e2e = e2e.into_iter().map(|h| {
        let mut narrow = Histogram::new_with_bounds(h.low(), h.max().max(2 * h.low()), h.sigfig()).unwrap();
        narrow.add(&h).unwrap();
        narrow
    });
    let mut entries = Vec::new();
    for interval in &run.intervals {
        for (tag, histogram) in &interval.histograms {
            let histogram = if tag == "e2e" { e2e.next().unwrap() } else { histogram.clone() };
            let entry = hlog::Entry { tag: tag.clone(), start: interval.start, length: interval.length, histogram };
            entries.push(entry);
        }
    }
    let started = std::time::UNIX_EPOCH + run.started;
    let mut file = std::fs::File::create(dir.join("latency.hlog")).unwrap();
    hlog::write(&mut file, started, entries).unwrap();
    drop(file);

    let run = read_run(&dir).unwrap();
    let slice = Slice::of(&run, Window::ALL).unwrap();
    assert_eq!(slice.histograms["e2e"].len(), summary.latency_us.count);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_run_with_an_admission_controller_records_its_state_per_interval_and_plots_it() {
    let dir = scratch("admission");
    let run = dir.join("guarded");
    // 2 ms a request on one worker (500/s) under 2000/s for 0.5 s: the controller sheds.
    let config = json!({
        "name": "guarded",
        "metrics_interval_ms": 50,
        "source": { "kind": "generator", "requests": 1000, "rate": 2000, "entry": "work", "cpu": two_cpus()[1] },
        "pools": { "p": { "cpus": [two_cpus()[0]] } },
        "stages": {
            "work": { "kind": "spin", "pool": "p", "params": { "micros": 2000 }, "next": "done",
                      "admission": { "kind": "latency_target", "target_ms": 20 } },
            "done": { "kind": "respond", "pool": "p" }
        }
    });
    let summary = record_run(&run, &config);
    assert!(summary.stages["work"].rejected > 0, "the controller shed nothing: {summary}");

    // A row per interval the controller was read in, for the controlled stage alone.
    let csv = std::fs::read_to_string(run.join("admission.csv")).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("interval_start_s,stage,controller,level,latency_ms"));
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split(',').collect()).collect();
    // The collector reads the controller ten times an interval, at the lowest priority: on a
    // loaded machine it may miss some intervals, never all of a run this long.
    assert!(rows.len() >= 2, "{csv}");
    for row in &rows {
        assert_eq!((row.len(), row[1], row[2]), (5, "work", "latency_target"), "{row:?}");
        let rate: f64 = row[3].parse().unwrap();
        assert!(rate > 0.0 && rate <= 1e6, "{row:?}");
    }
    // Read back, on the intervals of the log and counters.
    let read = seda::record::read_run(&run).unwrap();
    let readings = read.intervals.iter().filter(|i| i.admission.contains_key("work")).count();
    assert_eq!(readings, rows.len());
    assert!(read.intervals.iter().all(|i| i.admission.keys().all(|stage| stage == "work")));

    let plots = dir.join("plots");
    stdout(&seda_report(&[&run, &"--svg", &plots]));
    assert_eq!(files(&plots), ["admission.svg", "spectrum.svg", "timeline.svg"].map(String::from).into());
    let series = svg_series(&plots.join("admission.svg"));
    assert_eq!(series["work (latency_target)"], rows.len(), "a point per reading");
    let estimates = rows.iter().filter(|row| !row[4].is_empty()).count();
    assert_eq!(series["work estimate"], estimates);
    assert_eq!(series["shed/s"], read.intervals.len(), "a bar per interval");

    // A damaged row is refused with its line.
    let damaged = dir.join("damaged");
    copy_dir(&run, &damaged);
    std::fs::write(damaged.join("admission.csv"), csv.replacen(",latency_target,", ",latency_target,-1", 1)).unwrap();
    fails_with(&[&damaged], "admission.csv:2: bad level");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_sweep_with_goodput_gets_goodput_and_served_latency_against_offered_load() {
    let dir = scratch("goodput");
    let run_dir = dir.join("sweep");
    record_run(&run_dir, &config(300, 2_000));
    let percentiles =
        |p90: f64| json!({ "count": 10, "mean": 1.0, "p50": 1.0, "p90": p90, "p99": p90, "p999": p90, "max": p90 });
    let step = |offered: f64, goodput: f64, served_p90: f64| {
        json!({ "target_rate": offered, "throughput_rps": offered, "goodput_rps": goodput,
                "latency_us": percentiles(served_p90), "served_latency_us": percentiles(served_p90) })
    };
    let mut steps =
        json!([step(1_000.0, 1_000.0, 900.0), step(2_000.0, 1_900.0, 1_500.0), step(4_000.0, 1_950.0, 1_600.0)]);
    set_steps(&run_dir, steps.clone());

    let plots = dir.join("plots");
    stdout(&seda_report(&[&run_dir, &"--svg", &plots]));
    assert_eq!(files(&plots), ["goodput.svg", "knee.svg", "spectrum.svg", "timeline.svg"].map(String::from).into());
    let series = svg_series(&plots.join("goodput.svg"));
    let expected: BTreeMap<String, usize> =
        ["goodput/s", "throughput/s", "served p90", "served p99"].map(|name| (name.to_owned(), 3)).into();
    assert_eq!(series, expected);
    assert!(texts(&plots.join("goodput.svg")).contains(&"offered load (requests/s)".to_owned()));

    // A step without its goodput (a sweep without --slo): no goodput plot.
    steps[1]["goodput_rps"] = Value::Null;
    set_steps(&run_dir, steps);
    let again = dir.join("again");
    stdout(&seda_report(&[&run_dir, &"--svg", &again]));
    assert!(!files(&again).contains("goodput.svg"));
    std::fs::remove_dir_all(&dir).unwrap();
}
