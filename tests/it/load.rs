//! `seda load`, the real binary, against a test HTTP server on 127.0.0.1 (a thread per
//! connection) and against a pipeline in-process: exact counts, the output files read back,
//! and every bad argument's error. The correction for a server stall, checked against the
//! answer computed from the schedule, is in `tests/timing.rs`, which runs alone.
//!
//! Timing is asserted only where a stall of hundreds of milliseconds stands far above what a
//! loaded machine adds; everything else is an exact count.

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine as _;
use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
use hdrhistogram::serialization::Deserializer;
use hdrhistogram::Histogram;
use serde_json::Value;

#[path = "../common/load_server.rs"]
pub(crate) mod load_server;

use load_server::*;

use crate::support::example_config;

/// Under both of the generator's I/O backends.
mod achieved_rate_is_within_one_percent_of_the_target {
    #[test]
    fn epoll() {
        super::achieved_rate_is_within_one_percent_of_the_target("epoll")
    }

    #[test]
    fn uring() {
        super::achieved_rate_is_within_one_percent_of_the_target("uring")
    }
}

fn achieved_rate_is_within_one_percent_of_the_target(io: &str) {
    let server = TestServer::start(Behaviour::Answer);
    // The achieved rate counts until the last answer: over 4 s, 1% leaves that answer 40 ms,
    // what a loaded machine can take from it (over 2 s, one full-suite run here took more).
    let (r, _) = load_io(io, "rate", &[&server.url("/"), "--rate", "2000", "--duration", "4s", "--connections", "8"]);
    assert_eq!((count(&r, "requests"), count(&r, "responses"), count(&r, "errors")), (8000, 8000, 0));
    assert_eq!(r["target_rate"].as_f64(), Some(2000.0));
    let achieved = r["achieved_rate"].as_f64().unwrap();
    assert!((achieved - 2000.0).abs() <= 20.0, "achieved {achieved}/s of 2000/s");
    assert_eq!(r["status"]["2xx"], 8000);
}

/// Under both of the generator's I/O backends.
mod a_closed_loop_has_no_lag_and_both_latencies_agree {
    #[test]
    fn epoll() {
        super::a_closed_loop_has_no_lag_and_both_latencies_agree("epoll")
    }

    #[test]
    fn uring() {
        super::a_closed_loop_has_no_lag_and_both_latencies_agree("uring")
    }
}

fn a_closed_loop_has_no_lag_and_both_latencies_agree(io: &str) {
    let server = TestServer::start(Behaviour::Answer);
    let (r, _) = load_io(
        io,
        "closed",
        &[&server.url("/x"), "--connections", "4", "--pipeline", "4", "--duration", "500ms", "--warmup", "200ms"],
    );
    assert_eq!(r["mode"], "closed");
    assert_eq!(r["target_rate"], Value::Null);
    let responses = count(&r, "responses");
    assert!(responses > 0);
    assert_eq!((count(&r, "requests"), count(&r, "errors")), (responses, 0));
    assert_eq!(r["latency_us"]["corrected"], r["latency_us"]["uncorrected"]);
    assert_eq!((micros(&r, "send_lag_us.max"), micros(&r, "connection_wait_us.max")), (0.0, 0.0));
    // The warmup's requests are shown apart; the server saw both.
    let warmup = count(&r, "warmup.responses");
    assert!(warmup > 0);
    assert_eq!(server.received.load(Ordering::SeqCst), responses + warmup);
}

/// SplitMix64's output function (Steele, Lea and Flood, 2014), written out here so that the
/// test's expectations do not come from the code under test; checked against the published
/// first output from state 0.
fn splitmix64_reference(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn a_request_mix_is_sent_in_its_drawn_proportions() {
    let mix_text = "# method path body weight\nGET /a 0 3\nPOST /b 100 1\n";
    let mix_file = scratch("mix.txt");
    std::fs::write(&mix_file, mix_text).unwrap();
    let server = TestServer::start(Behaviour::Answer);
    let args =
        [&server.url("/"), "--rate", "1000", "--duration", "1s", "--mix", mix_file.to_str().unwrap(), "--seed", "5"];
    let (r, _) = load("mix", &args);
    assert_eq!((count(&r, "requests"), count(&r, "errors")), (1000, 0));
    // Request n is of the line that splitmix64(n ^ seed) mod the total weight (4) falls on:
    // GET below 3, POST at 3. Worked out here from the documented rule, not by the load
    // generator's own `Mix::pick`, and pinned as a number: 255 POSTs among requests 0..1000.
    assert_eq!(splitmix64_reference(0), 0xe220_a839_7b1d_cdaf, "SplitMix64's published first output");
    let posts = (0..1000u64).filter(|&n| splitmix64_reference(n ^ 5) % 4 >= 3).count() as u64;
    assert_eq!(posts, 255);
    let seen = server.seen.lock().unwrap().clone();
    assert_eq!(seen[&("POST".to_string(), "/b".to_string())], (posts, posts * 100));
    assert_eq!(seen[&("GET".to_string(), "/a".to_string())], (1000 - posts, 0));
    let _ = std::fs::remove_file(mix_file);
}

/// Under both of the generator's I/O backends.
mod requests_without_answers_time_out_and_are_all_counted {
    #[test]
    fn epoll() {
        super::requests_without_answers_time_out_and_are_all_counted("epoll")
    }

    #[test]
    fn uring() {
        super::requests_without_answers_time_out_and_are_all_counted("uring")
    }
}

fn requests_without_answers_time_out_and_are_all_counted(io: &str) {
    // 50/s for 1 s on 2 connections, a server that never answers, a 200 ms timeout: every
    // request ends as timed out or, if no connection was free before the end, unsent.
    let server = TestServer::start(Behaviour::Silent);
    let (r, _) = load_io(
        io,
        "silent",
        &[&server.url("/"), "--rate", "50", "--duration", "1s", "--connections", "2", "--timeout", "200ms"],
    );
    let kinds = &r["errors_by_kind"];
    let (timeouts, unsent) = (kinds["timeout"].as_u64().unwrap(), kinds["unsent"].as_u64().unwrap());
    assert_eq!((count(&r, "requests"), count(&r, "responses")), (50, 0));
    assert_eq!(timeouts + unsent, 50, "{kinds}");
    assert_eq!(count(&r, "errors"), 50);
    assert_eq!(count(&r, "sent"), timeouts);
    // The server read every request sent, but for those written in the last moment before the
    // run gave up on them (one per connection at most).
    let received = server.received.load(Ordering::SeqCst);
    assert!(received <= timeouts && received + 2 >= timeouts, "received {received}, sent {timeouts}");
}

#[test]
fn a_pipeline_runs_in_process_with_an_exact_ledger() {
    let config = example_config("noop4.json");
    let (r, output) = load("inprocess", &[config.to_str().unwrap(), "--rate", "2000", "--duration", "1s"]);
    assert_eq!((count(&r, "requests"), count(&r, "responses"), count(&r, "errors")), (2000, 2000, 0));
    assert_eq!(r["status"]["2xx"], 2000);
    let ledger = &r["engine"]["ledger"];
    assert_eq!((count(ledger, "admitted"), count(ledger, "completed")), (2000, 2000));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("pipeline noop4:"), "the engine's own table follows: {stdout}");
    // In-process there are no connections: the header says what `--connections` means there.
    let header = stdout.lines().next().unwrap();
    assert!(header.ends_with(": open loop, constant arrivals, 64 slots for requests in flight, 1 thread"), "{header}");
    assert_eq!(r["slots"], 64);
}

#[test]
fn an_in_process_load_serves_the_configs_admin_listener() {
    let mut config: Value = serde_json::from_str(&std::fs::read_to_string("configs/noop4.json").unwrap()).unwrap();
    crate::support::on_allowed_cpus(&mut config);
    config["admin"] = serde_json::json!({ "listen": "127.0.0.1:0" });
    let file = scratch("admin-config.json");
    std::fs::write(&file, config.to_string()).unwrap();
    let mut child = seda()
        .args(["load", file.to_str().unwrap(), "--rate", "1000", "--duration", "3s"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The address is told on stderr, as `seda run` tells it (the config asks for any free port).
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    let admin = loop {
        line.clear();
        assert_ne!(std::io::BufRead::read_line(&mut stderr, &mut line).unwrap(), 0, "no admin address told");
        if let Some(addr) = line.trim().strip_prefix("admin listening on ") {
            break addr.to_string();
        }
    };
    let mut stream = std::net::TcpStream::connect(&admin).unwrap();
    std::io::Write::write_all(&mut stream, b"GET /stats HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    std::io::Read::read_to_string(&mut stream, &mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"s1\""), "the pipeline's stages: {answer}");
    assert!(child.wait().unwrap().success());
    let _ = std::fs::remove_file(file);
}

#[test]
fn a_target_without_a_scheme_is_http_and_durations_compound() {
    let server = TestServer::start(Behaviour::Answer);
    let url = server.url("/x");
    let bare = url.strip_prefix("http://").unwrap();
    let (r, _) = load("bare", &[bare, "--rate", "1000", "--duration", "0m1s", "-c", "2"]);
    assert_eq!(r["target"], url.as_str());
    assert_eq!((count(&r, "requests"), count(&r, "responses")), (1000, 1000));
    assert_eq!(server.seen.lock().unwrap()[&("GET".to_string(), "/x".to_string())], (1000, 0));
}

#[test]
fn hgrm_and_hlog_read_back() {
    let server = TestServer::start(Behaviour::Answer);
    let (hgrm, hlog) = (scratch("out.hgrm"), scratch("out.hlog"));
    let args = [
        &server.url("/"),
        "--rate",
        "1000",
        "--duration",
        "2500ms",
        "--hgrm",
        hgrm.to_str().unwrap(),
        "--hlog",
        hlog.to_str().unwrap(),
    ];
    let (r, _) = load("files", &args);
    let responses = count(&r, "responses");
    assert_eq!(responses, 2500);

    for file in
        [hgrm.clone(), hgrm.with_file_name(format!("{}.uncorrected.hgrm", hgrm.file_stem().unwrap().to_str().unwrap()))]
    {
        let text = std::fs::read_to_string(&file).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0].split_whitespace().collect::<Vec<_>>(),
            ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
        );
        let rows: Vec<Vec<&str>> =
            lines[2..].iter().filter(|l| !l.starts_with('#')).map(|l| l.split_whitespace().collect()).collect();
        assert!(rows.iter().all(|row| row.len() == 4), "{text}");
        let last = rows.last().unwrap();
        assert_eq!((last[1], last[2].parse::<u64>().unwrap()), ("1.000000000000", responses));
        assert!(text.contains(&format!("Total count    = {responses:>12}]")));
    }

    let log = std::fs::read(&hlog).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(text.starts_with("#[Histogram log format version 1.3]\n"));
    assert!(
        text.contains("\n\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\"\n")
    );
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    let mut starts = Vec::new();
    for entry in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(i) = entry.unwrap() {
            let bytes = base64::engine::general_purpose::STANDARD.decode(i.encoded_histogram()).unwrap();
            let h: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
            let tag = i.tag().unwrap().as_str().to_string();
            *totals.entry(tag.clone()).or_default() += h.len();
            if tag == "corrected" {
                starts.push(i.start_timestamp());
                assert_eq!(i.duration(), Duration::from_secs(1));
            }
        }
    }
    // Every response in exactly one interval; intervals a second apart from the start.
    let expected: BTreeMap<String, u64> = ["connection_wait", "corrected", "send_lag", "uncorrected"]
        .iter()
        .map(|t| (t.to_string(), responses))
        .collect();
    assert_eq!(totals, expected);
    assert!(starts.len() >= 3, "{starts:?}");
    for (k, start) in starts.iter().enumerate() {
        assert_eq!(*start, Duration::from_secs(k as u64));
    }
    for file in [&hgrm, &hlog] {
        let _ = std::fs::remove_file(file);
    }
}

#[test]
fn a_failed_threshold_exits_4_and_says_which() {
    let server = TestServer::start(Behaviour::Answer);
    let json = scratch("threshold.json");
    let output = seda()
        .args(["load", &server.url("/"), "-c", "2", "-d", "300ms", "--fail-if", "p99<1ns", "--fail-if", "errors<1%"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(4), "{}", String::from_utf8_lossy(&output.stderr));
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("threshold p99<1ns: FAILED"), "{stdout}");
    assert!(stdout.contains("threshold errors<1%: passed"), "{stdout}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(r["thresholds"][0]["passed"], false);
    assert_eq!(r["thresholds"][1]["passed"], true);
    // `actual` is a number in its unit, for a script to compare: p99 in microseconds (the
    // JSON's own p99), the error share in percent.
    assert_eq!(r["thresholds"][0]["unit"], "us");
    assert_eq!(r["thresholds"][0]["actual"].as_f64(), r["latency_us"]["corrected"]["p99"].as_f64());
    assert_eq!((r["thresholds"][1]["actual"].as_f64(), &r["thresholds"][1]["unit"]), (Some(0.0), &Value::from("%")));
    let _ = std::fs::remove_file(json);
}

#[test]
fn every_bad_argument_is_a_clear_error() {
    let server = TestServer::start(Behaviour::Answer);
    let url = server.url("/");
    // A port nothing listens on: bound, then closed.
    let closed = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let closed_url = format!("http://127.0.0.1:{closed}/");
    let cases: Vec<(Vec<&str>, i32, &str)> = vec![
        (vec![&url, "--rate", "fast"], 2, "is not requests per second"),
        (vec![&url, "--rate", "0"], 2, "must be above zero"),
        (vec![&url, "--fail-if", "p99"], 2, "expected METRIC<VALUE"),
        (vec![&url, "--fail-if", "p99<5"], 2, "a latency needs a unit"),
        (vec![&url, "--fail-if", "p98<5ms"], 2, "unknown metric `p98`"),
        (vec!["ftp://127.0.0.1/"], 2, "only http:// and https:// URLs are supported"),
        (vec!["http://127.0.0.1:99999/"], 2, "bad port `99999`"),
        (vec!["http:///"], 2, "no host"),
        (vec![&closed_url, "-d", "1s"], 5, "cannot reach 127.0.0.1:"),
        (vec![&url, "--sweep", "1000:2000"], 2, "must be FROM:TO:STEP"),
        (vec![&url, "--rate", "10", "--sweep", "1:2:1"], 2, "cannot be used with"),
        (vec![&url, "--ramp"], 2, "--rate"),
        (vec![&url, "--arrival", "poisson"], 2, "needs --rate or --sweep"),
        (vec![&url, "--duration", "soon"], 2, "is not a duration"),
        (vec![&url, "--threads", "4", "--connections", "2"], 2, "each thread needs a connection"),
        (vec![&url, "--pipeline", "0"], 2, "--pipeline must be at least 1"),
        (vec![&url, "--cpus", "4096"], 2, "CPU 4096 does not exist"),
        (vec![&url, "--cpus", "x"], 2, "is not a CPU list"),
        (vec![&url, "--mix", "/nonexistent/mix.txt"], 2, "cannot read the mix file"),
        (vec!["/nonexistent/pipeline.json"], 3, "cannot read /nonexistent/pipeline.json"),
    ];
    for (args, code, message) in cases {
        let output = seda().arg("load").args(&args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: expected `{message}` in: {stderr}");
    }
    assert_eq!(server.received.load(Ordering::SeqCst), 0, "no bad invocation sent a request");
}

#[test]
fn sigint_ends_the_run_early_with_the_results_of_the_schedule_so_far() {
    let server = TestServer::start(Behaviour::Answer);
    let json = scratch("sigint.json");
    let child = seda()
        .args(["load", &server.url("/"), "--rate", "1000", "--duration", "60s", "-c", "4"])
        .arg("--json")
        .arg(&json)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupted once requests flow (the handlers are in place before the first is sent).
    let received_before = 100;
    crate::support::eventually("requests to arrive", || server.received.load(Ordering::SeqCst) >= received_before);
    // SAFETY: kill takes no pointers; the pid is our own child's, which has not been waited for.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) }, 0);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "{:?}", output.status);
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let duration_s = r["duration_s"].as_f64().unwrap();
    assert!(duration_s < 60.0, "{duration_s}");
    // One request every millisecond from 0: a run cut at t holds exactly those due before t.
    let requests = count(&r, "requests");
    assert!(requests >= received_before, "{requests} requests, but the server had {received_before} before the signal");
    assert_eq!(requests, (duration_s * 1000.0).ceil() as u64);
    assert_eq!((count(&r, "responses"), count(&r, "errors")), (requests, 0));
    assert_eq!(server.received.load(Ordering::SeqCst), requests);
    let _ = std::fs::remove_file(json);
}

#[test]
fn a_long_response_head_is_read_and_one_past_the_limit_is_an_error() {
    // 40 KiB of header: more than a connection's first input buffer, less than the 64 KiB limit.
    let server = TestServer::start(Behaviour::LongHeader(40 * 1024));
    let (r, _) = load("long-head", &[&server.url("/"), "--rate", "100", "--duration", "500ms", "-c", "2"]);
    assert_eq!((count(&r, "requests"), count(&r, "responses"), count(&r, "errors")), (50, 50, 0));
    // 70 KiB: past the limit, every request sent ends as a read error.
    let server = TestServer::start(Behaviour::LongHeader(70 * 1024));
    let (r, _) = load("too-long-head", &[&server.url("/"), "--rate", "100", "--duration", "500ms", "-c", "2"]);
    let kinds = &r["errors_by_kind"];
    assert_eq!((count(&r, "requests"), count(&r, "responses"), count(&r, "errors")), (50, 0, 50));
    assert_eq!(kinds["read"].as_u64().unwrap() + kinds["unsent"].as_u64().unwrap(), 50, "{kinds}");
    assert_eq!(count(&r, "sent"), kinds["read"].as_u64().unwrap());
}

/// `seda report`'s reading of a record: its table over the whole run.
fn reported(dir: &Path) -> seda::report::RunTable {
    let run = seda::report::read_run(dir).unwrap_or_else(|e| panic!("{e}"));
    seda::report::RunTable::of(&seda::report::Slice::of(&run, seda::report::Window::ALL).unwrap())
}

/// A row's percentiles against the load's JSON for the same series (microseconds, the same
/// histogram quantiles).
fn assert_same_percentiles(row: &seda::report::table::Row, results: &Value, series: &str) {
    let at = |q: &str| micros(results, &format!("latency_us.{series}.{q}"));
    let p = &row.latency;
    assert_eq!(p.count, count(results, &format!("latency_us.{series}.count")), "{series} count");
    assert_eq!(
        (p.p50, p.p90, p.p99, p.p999, p.max),
        (at("p50"), at("p90"), at("p99"), at("p999"), at("max")),
        "{series}"
    );
}

/// A record's interval log decoded with the hdrhistogram crate: each tag's total count.
fn logged_counts(dir: &Path) -> BTreeMap<String, u64> {
    let log = std::fs::read(dir.join("latency.hlog")).unwrap();
    let mut totals: BTreeMap<String, u64> = BTreeMap::new();
    for entry in IntervalLogIterator::new(&log) {
        if let LogEntry::Interval(i) = entry.unwrap() {
            let bytes = base64::engine::general_purpose::STANDARD.decode(i.encoded_histogram()).unwrap();
            let h: Histogram<u64> = Deserializer::new().deserialize(&mut &bytes[..]).unwrap();
            *totals.entry(i.tag().unwrap().as_str().to_owned()).or_default() += h.len();
        }
    }
    totals
}

/// The generator's series (and `e2e`) of a record's log, each with the count of the load's JSON.
fn assert_generator_series(dir: &Path, results: &Value) {
    let logged = logged_counts(dir);
    let series: BTreeMap<&str, u64> =
        logged.iter().filter(|(t, _)| !t.contains('.')).map(|(t, &n)| (t.as_str(), n)).collect();
    let json = |path: &str| count(results, &format!("{path}.count"));
    let expected: BTreeMap<&str, u64> = [
        ("connection_wait", json("connection_wait_us")),
        ("corrected", json("latency_us.corrected")),
        ("e2e", json("latency_us.corrected")),
        ("send_lag", json("send_lag_us")),
        ("uncorrected", json("latency_us.uncorrected")),
    ]
    .into_iter()
    .collect();
    assert_eq!(series, expected);
}

#[test]
fn a_recorded_in_process_load_reads_back_with_the_same_percentiles() {
    let dir = scratch("record-inprocess");
    let _ = std::fs::remove_dir_all(&dir);
    let record = dir.to_str().unwrap();
    let config = example_config("noop4.json");
    let args = [config.to_str().unwrap(), "--rate", "2000", "--duration", "1s", "--record", record];
    let (results, _) = load("record-inprocess", &args);
    let table = reported(&dir);
    assert_same_percentiles(table.row("corrected", "").expect("a corrected row"), &results, "corrected");
    assert_same_percentiles(table.row("uncorrected", "").expect("an uncorrected row"), &results, "uncorrected");
    // The engine's own record is there too: its stages and its end to end.
    assert_eq!(table.row("s1", "queue").expect("a stage row").latency.count, 2000);
    assert_eq!(table.row("end to end", "").unwrap().latency.count, 2000);
    assert_generator_series(&dir, &results);
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["load"]["responses"], 2000);
    assert_eq!(std::fs::read_to_string(dir.join("config.json")).unwrap(), std::fs::read_to_string(&config).unwrap());
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_recorded_http_load_reads_back_with_its_tags_and_a_sweep_draws_its_knee() {
    let server = TestServer::start(Behaviour::Answer);
    let dir = scratch("record-http");
    let _ = std::fs::remove_dir_all(&dir);
    let record = dir.to_str().unwrap();
    let url = server.url("/");
    let (results, _) = load("record-http", &[&url, "--rate", "2000", "--duration", "1s", "--record", record]);
    let table = reported(&dir);
    // Against a server, the record's end to end is the corrected latency.
    assert_same_percentiles(table.row("end to end", "").unwrap(), &results, "corrected");
    assert_same_percentiles(table.row("uncorrected", "").unwrap(), &results, "uncorrected");
    assert_same_percentiles(table.row("corrected", "").unwrap(), &results, "corrected");
    assert_generator_series(&dir, &results);
    assert_eq!(logged_counts(&dir).len(), 5, "no stage series against a server");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("summary.json")).unwrap()).unwrap();
    assert_eq!((count(&summary, "ledger.admitted"), count(&summary, "ledger.completed")), (2000, 2000));
    // The generator's series are checked against the summary's `load` too.
    let mut altered = summary.clone();
    altered["load"]["latency_us"]["uncorrected"]["count"] = 2001.into();
    std::fs::write(dir.join("summary.json"), altered.to_string()).unwrap();
    let error = seda::report::read_run(&dir).err().expect("a count that does not add up").to_string();
    assert!(
        error.ends_with(
            "`uncorrected` adds up to 2000 but summary.json counts 2001: the record is incomplete (truncated?)"
        ),
        "{error}"
    );
    std::fs::remove_dir_all(&dir).unwrap();

    // A sweep: a point per step on the knee plot.
    let (svg, sweep) = (scratch("record-sweep-svg"), scratch("record-sweep"));
    let _ = (std::fs::remove_dir_all(&svg), std::fs::remove_dir_all(&sweep));
    let args = [url.as_str(), "--sweep", "1000:3000:1000", "--duration", "1s", "--record", sweep.to_str().unwrap()];
    let (results, _) = load("record-sweep", &args);
    assert_eq!(results["steps"].as_array().unwrap().len(), 3);
    let output = seda().arg("report").arg(&sweep).arg("--svg").arg(&svg).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let knee = std::fs::read_to_string(svg.join("knee.svg")).unwrap();
    let doc = roxmltree::Document::parse(&knee).unwrap();
    let points = doc.descendants().filter(|n| n.has_tag_name("circle")).count();
    assert_eq!(points, 3, "a point per step");
    for rate in ["1000/s", "2000/s", "3000/s"] {
        assert!(doc.descendants().any(|n| n.text() == Some(rate)), "the step {rate} is labelled");
    }
    let _ = (std::fs::remove_dir_all(&svg), std::fs::remove_dir_all(&sweep));
}

#[test]
fn the_header_says_which_io_the_generator_used_and_an_unknown_one_is_refused() {
    let server = TestServer::start(Behaviour::Answer);
    for io in ["epoll", "uring"] {
        let (r, output) = load_io(io, "io-header", &[&server.url("/"), "-c", "1", "-d", "100ms"]);
        assert_eq!(r["io"], io);
        let stdout = String::from_utf8(output.stdout).unwrap();
        assert!(stdout.lines().next().unwrap().ends_with(&format!("1 thread, {io} I/O")), "{stdout}");
    }
    let output = seda().args(["load", &server.url("/"), "--io", "iouring"]).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("invalid value 'iouring' for '--io"), "{stderr}");
}
