//! The admin listener (`/metrics`, `/stats`) and `seda top`: the exposition is checked by a
//! strict parser of the Prometheus text format (below), and its stats against the ledger.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use seda::admin::AdminServer;
use std::sync::Arc;

use seda::engine::{Admission, Outcome, Snapshot, StageSnapshot};
use serde_json::{json, Value};

use crate::support::{a_cpu, eventually, plan, start, submit, Gate};

// ---- a strict parser of the Prometheus text exposition format (0.0.4) ----

#[derive(Debug)]
pub(crate) struct Family {
    kind: String,
    help: String,
    /// (sample name, labels) -> value.
    samples: BTreeMap<(String, Vec<(String, String)>), f64>,
}

/// Parses `text`, panicking at the first line that breaks the format: every line a `# HELP`, a
/// `# TYPE` or a sample; each family's HELP, then TYPE, then its samples, together and once;
/// sample names those of its family (`_sum`/`_count` for a summary); valid names, label syntax
/// and escapes, values as Prometheus reads them; no sample twice; counters never negative or
/// NaN; summaries with a quantile label on each quantile sample and one `_sum` and `_count` each.
fn parse_exposition(text: &str) -> BTreeMap<String, Family> {
    assert!(text.ends_with('\n'), "the exposition ends with a newline");
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    let mut current: Option<String> = None;
    let mut help: Option<(String, String)> = None;
    for (n, line) in text.lines().enumerate() {
        let at = format!("line {}: {line:?}", n + 1);
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, text) = rest.split_once(' ').unwrap_or_else(|| panic!("{at}: HELP without text"));
            assert!(is_metric_name(name), "{at}");
            assert!(!families.contains_key(name), "{at}: family {name} seen before");
            assert!(!text.is_empty() && help_escapes_are_valid(text), "{at}");
            help = Some((name.to_string(), text.to_string()));
            current = None;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or_else(|| panic!("{at}: TYPE without a type"));
            assert!(["counter", "gauge", "summary", "histogram", "untyped"].contains(&kind), "{at}");
            let (help_name, help_text) = help.take().unwrap_or_else(|| panic!("{at}: TYPE without HELP before it"));
            assert_eq!(help_name, name, "{at}: HELP and TYPE name different families");
            let family = Family { kind: kind.to_string(), help: help_text, samples: BTreeMap::new() };
            families.insert(name.to_string(), family);
            current = Some(name.to_string());
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "{at}: not a HELP, TYPE or sample line");
            let (name, labels, value) = parse_sample(line).unwrap_or_else(|e| panic!("{at}: {e}"));
            let family_name = current.clone().unwrap_or_else(|| panic!("{at}: a sample before any TYPE"));
            let family = families.get_mut(&family_name).unwrap();
            let base = match family.kind.as_str() {
                "summary" => name.strip_suffix("_sum").or_else(|| name.strip_suffix("_count")).unwrap_or(&name),
                _ => &name,
            };
            assert_eq!(base, family_name, "{at}: a sample of another family");
            if family.kind == "counter" {
                assert!(name.ends_with("_total"), "{at}: a counter is _total");
                assert!(value.is_finite() && value >= 0.0, "{at}: a counter is a number, not negative");
                if !name.ends_with("_seconds_total") {
                    assert_eq!(value.fract(), 0.0, "{at}: a count is a whole number");
                }
            }
            if family.kind == "summary" && name == family_name {
                let quantile = labels.iter().find(|(k, _)| k == "quantile").unwrap_or_else(|| panic!("{at}"));
                let q: f64 = quantile.1.parse().unwrap_or_else(|_| panic!("{at}"));
                assert!((0.0..=1.0).contains(&q), "{at}");
            }
            let previous = family.samples.insert((name.clone(), labels), value);
            assert!(previous.is_none(), "{at}: the same sample twice");
        }
    }
    assert!(help.is_none(), "a HELP without its TYPE at the end");
    for (name, family) in &families {
        if family.kind == "summary" {
            let series = |suffix: &str| family.samples.keys().filter(|(n, _)| *n == format!("{name}{suffix}")).count();
            assert_eq!(series("_sum"), series("_count"), "{name}");
            assert!(series("_count") > 0, "{name}: a summary has a _count");
        }
    }
    families
}

fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn is_label_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn help_escapes_are_valid(text: &str) -> bool {
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\\' && !matches!(chars.next(), Some('\\' | 'n')) {
            return false;
        }
    }
    true
}

type Labels = Vec<(String, String)>;

/// `name{label="value",...} value`, with no timestamp (the listener writes none).
fn parse_sample(line: &str) -> Result<(String, Labels, f64), String> {
    let name_end = line.find(['{', ' ']).ok_or("no value")?;
    let name = &line[..name_end];
    if !is_metric_name(name) {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut at = name_end;
    let mut labels = Vec::new();
    if line[at..].starts_with('{') {
        at += 1;
        loop {
            let eq = line[at..].find('=').ok_or("a label without =")? + at;
            let label = &line[at..eq];
            if !is_label_name(label) {
                return Err(format!("bad label name {label:?}"));
            }
            if !line[eq + 1..].starts_with('"') {
                return Err("a label value without quotes".into());
            }
            at = eq + 2;
            let mut value = String::new();
            loop {
                let c = line[at..].chars().next().ok_or("unterminated label value")?;
                at += c.len_utf8();
                match c {
                    '"' => break,
                    '\\' => {
                        let escaped = line[at..].chars().next().ok_or("unterminated escape")?;
                        at += escaped.len_utf8();
                        value.push(match escaped {
                            '\\' => '\\',
                            '"' => '"',
                            'n' => '\n',
                            other => return Err(format!("bad escape \\{other}")),
                        });
                    }
                    c => value.push(c),
                }
            }
            labels.push((label.to_string(), value));
            let separator = line[at..].chars().next();
            at += 1;
            match separator {
                Some(',') => continue,
                Some('}') => break,
                _ => return Err("labels not separated by commas or closed".into()),
            }
        }
    }
    let value = line[at..].strip_prefix(' ').ok_or("no space before the value")?;
    Ok((name.to_string(), labels, parse_value(value)?))
}

/// A value as Prometheus reads it: a decimal float, `NaN`, `+Inf` or `-Inf`.
fn parse_value(text: &str) -> Result<f64, String> {
    match text {
        "NaN" => return Ok(f64::NAN),
        "+Inf" => return Ok(f64::INFINITY),
        "-Inf" => return Ok(f64::NEG_INFINITY),
        _ => {}
    }
    let digits = text.trim_start_matches(['-', '+']);
    let decimal = !digits.is_empty()
        && digits.chars().all(|c| c.is_ascii_digit() || matches!(c, '.' | 'e' | 'E' | '-' | '+'))
        && digits.starts_with(|c: char| c.is_ascii_digit());
    if !decimal {
        return Err(format!("bad value {text:?}"));
    }
    text.parse().map_err(|e| format!("bad value {text:?}: {e}"))
}

#[test]
fn the_strict_parser_refuses_what_prometheus_would() {
    let good = "# HELP a_total A counter.\n# TYPE a_total counter\na_total{x=\"q\\\"\\n\"} 3\n";
    let families = parse_exposition(good);
    let sample = families["a_total"].samples.iter().next().unwrap();
    assert_eq!(sample.0 .1, vec![("x".to_string(), "q\"\n".to_string())]);
    for bad in [
        "a_total 3\n",                                                 // no TYPE
        "# TYPE a_total counter\na_total 3\n",                         // no HELP
        "# HELP a_total A.\n# TYPE a_total counter\na_total 3",        // no final newline
        "# HELP a_total A.\n# TYPE a_total counter\na_total inf\n",    // Rust's infinity
        "# HELP a_total A.\n# TYPE a_total counter\na_total{x=q} 3\n", // unquoted label
        "# HELP a_total A.\n# TYPE a_total counter\nb_total 3\n",      // another family's sample
        "# HELP a_total A.\n# TYPE a_total counter\na_total -1\n",     // a negative counter
        "# HELP a A.\n# TYPE a gauge\na{x=\"\\t\"} 1\n",               // a bad escape
        "# HELP a A.\n# TYPE a summary\na{quantile=\"0.5\"} 1\n",      // no _sum, _count
        "# HELP a A.\n# TYPE a gauge\na 1\na 2\n",                     // a sample twice
    ] {
        assert!(std::panic::catch_unwind(|| parse_exposition(bad)).is_err(), "accepted {bad:?}");
    }
}

// ---- talking to the listener ----

/// One HTTP exchange: the raw request in, (status, headers, body) out.
fn exchange(addr: SocketAddr, request: &str) -> (u16, BTreeMap<String, String>, String) {
    let head_only = request.starts_with("HEAD ");
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).unwrap();
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(&answer).unwrap() {
        httparse::Status::Complete(n) => n,
        httparse::Status::Partial => panic!("a partial response: {}", String::from_utf8_lossy(&answer)),
    };
    let headers = response
        .headers
        .iter()
        .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8(h.value.to_vec()).unwrap()))
        .collect::<BTreeMap<_, _>>();
    let body = String::from_utf8(answer[head..].to_vec()).unwrap();
    if !head_only {
        assert_eq!(headers["content-length"], body.len().to_string(), "the body is as long as it says");
    }
    (response.code.unwrap(), headers, body)
}

fn get(addr: SocketAddr, path: &str) -> (u16, BTreeMap<String, String>, String) {
    exchange(addr, &format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"))
}

pub(crate) fn metrics(addr: SocketAddr) -> BTreeMap<String, Family> {
    let (status, headers, body) = get(addr, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    parse_exposition(&body)
}

pub(crate) fn stats(addr: SocketAddr) -> Snapshot {
    let (status, headers, body) = get(addr, "/stats");
    assert_eq!(status, 200);
    assert_eq!(headers["content-type"], "application/json");
    serde_json::from_str(&body).unwrap()
}

/// The value of `name` with exactly `labels`.
pub(crate) fn value(families: &BTreeMap<String, Family>, family: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: Labels = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    let f = families.get(family).unwrap_or_else(|| panic!("no family {family}"));
    *f.samples.get(&(name.to_string(), labels.clone())).unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

pub(crate) fn one(families: &BTreeMap<String, Family>, name: &str, labels: &[(&str, &str)]) -> f64 {
    value(families, name, name, labels)
}

// ---- the listener on a library engine ----

fn stage<'s>(s: &'s Snapshot, name: &str) -> &'s StageSnapshot {
    s.stages.iter().find(|st| st.name == name).unwrap_or_else(|| panic!("no stage {name}"))
}

struct OpenOnDrop(Arc<Gate>);

impl Drop for OpenOnDrop {
    fn drop(&mut self) {
        self.0.open();
    }
}

/// `entry` (a gate, capacity 4) -> `chaos` (fails a seeded share) -> `done`, on one pool.
fn gated_chaos() -> Value {
    json!({
        "name": "admin-test",
        "metrics_interval_ms": 20,
        "source": { "kind": "generator", "requests": 1, "entry": "entry" },
        "pools": { "p": { "cpus": [a_cpu()] } },
        "stages": {
            "entry": { "kind": "noop", "pool": "p", "queue": { "capacity": 4, "when_full": "reject" }, "next": "chaos" },
            "chaos": { "kind": "chaos", "pool": "p", "params": { "fail": 0.3, "seed": 11 }, "next": "done" },
            "done": { "kind": "respond", "pool": "p" }
        }
    })
}

#[test]
fn metrics_and_stats_agree_exactly_with_the_ledger() {
    let mut plan = plan(gated_chaos());
    let gate = Gate::install(&mut plan, "entry");
    // A failing assertion must not leave the worker held: the engine's drop joins it.
    let _open_on_drop = OpenOnDrop(gate.clone());
    let (engine, collect) = start(plan);
    let admin = AdminServer::start("127.0.0.1:0".parse().unwrap(), engine.observer()).unwrap();
    let addr = admin.local_addr();

    // One request held in the gate, 4 queued behind it, 96 rejected by the full queue.
    submit(&engine, [0], Admission::Policy);
    gate.wait_entered(1);
    let held_since = std::time::Instant::now();
    submit(&engine, 1..=100, Admission::Policy);
    eventually("the rejections to be published", || stage(&stats(addr), "entry").rejected == 96);
    let held = metrics(addr);
    let entry = [("stage", "entry"), ("pool", "p")];
    assert_eq!(one(&held, "seda_stage_queue_depth", &entry), 4.0);
    assert_eq!(one(&held, "seda_stage_queue_capacity", &entry), 4.0);
    assert_eq!(one(&held, "seda_stage_rejected_total", &entry), 96.0);
    assert_eq!(one(&held, "seda_ledger_admitted_total", &[]), 101.0);
    assert_eq!(one(&held, "seda_ledger_rejected_total", &[]), 96.0);
    assert_eq!(one(&held, "seda_ledger_in_flight", &[]), 5.0);

    // Open the gate; once every request has ended and every stat is published, the
    // listener's stats are the ledger's, exactly.
    let held_s = held_since.elapsed().as_secs_f64();
    gate.open();
    eventually("every request to end", || engine.ledger().in_flight == 0);
    let ledger = engine.ledger();
    eventually("every stat to be published", || {
        let s = stats(addr);
        stage(&s, "done").handled == ledger.completed
            && stage(&s, "chaos").failed == ledger.failed
            && s.latency_us.count == ledger.completed
    });
    let m = metrics(addr);
    let s = stats(addr);
    // In went 0 (held at the gate) and the first 4 of the batch; `chaos` fails those whose draw
    // (SplitMix64 of the id and seed 11, as 53 bits over 2^53) is under 0.3. Worked out apart
    // from the stage's code, requests 0 to 4 draw 0.570, 0.046, 0.226, 0.776 and 0.524.
    let ended = collect.ended();
    let ids = |want: &dyn Fn(&Outcome) -> bool| -> Vec<u64> {
        ended.iter().filter(|e| want(&e.outcome)).map(|e| e.id).collect()
    };
    assert_eq!(ids(&|o| *o == Outcome::Completed), [0, 3, 4]);
    assert_eq!(ids(&|o| matches!(o, Outcome::Failed { .. })), [1, 2]);
    assert_eq!(ids(&|o| matches!(o, Outcome::Rejected(_))), (5..=100).collect::<Vec<u64>>());
    assert_eq!((ledger.completed, ledger.failed), (3, 2));
    assert_eq!((ledger.admitted, ledger.rejected, ledger.completed + ledger.failed), (101, 96, 5));
    assert_eq!(s.ledger, ledger);
    for (name, expected) in [
        ("seda_ledger_admitted_total", ledger.admitted),
        ("seda_ledger_completed_total", ledger.completed),
        ("seda_ledger_rejected_total", ledger.rejected),
        ("seda_ledger_failed_total", ledger.failed),
        ("seda_ledger_timed_out_total", ledger.timed_out),
        ("seda_ledger_in_flight", ledger.in_flight),
    ] {
        assert_eq!(one(&m, name, &[]), expected as f64, "{name}");
    }
    let expected_stages = [("chaos", 5, 0, ledger.failed), ("done", ledger.completed, 0, 0), ("entry", 5, 96, 0)];
    assert_eq!(s.stages.len(), 3);
    for (stage, handled, rejected, failed) in expected_stages {
        let labels = [("stage", stage), ("pool", "p")];
        let st = self::stage(&s, stage);
        assert_eq!((st.handled, st.rejected, st.failed, st.timed_out), (handled, rejected, failed, 0), "{stage}");
        assert_eq!(one(&m, "seda_stage_handled_total", &labels), handled as f64, "{stage}");
        assert_eq!(one(&m, "seda_stage_rejected_total", &labels), rejected as f64, "{stage}");
        assert_eq!(one(&m, "seda_stage_failed_total", &labels), failed as f64, "{stage}");
        assert_eq!(one(&m, "seda_stage_timed_out_total", &labels), 0.0, "{stage}");
        assert_eq!(one(&m, "seda_stage_queue_depth", &labels), 0.0, "{stage}");
        assert_eq!(st.queue_depth, 0);
        // Summaries: the count is the stats' count; quantiles in seconds, the stats' in us.
        let stage_only = [("stage", stage)];
        let family = "seda_stage_queue_wait_seconds";
        let count = value(&m, family, "seda_stage_queue_wait_seconds_count", &stage_only);
        assert_eq!(count, st.queue_wait_us.count as f64, "{stage}");
        let p99 = value(
            &m,
            "seda_stage_queue_wait_seconds",
            "seda_stage_queue_wait_seconds",
            &[("stage", stage), ("quantile", "0.99")],
        );
        if st.queue_wait_us.count == 0 {
            assert!(p99.is_nan(), "{stage}: a quantile of nothing is NaN");
        } else {
            assert!((p99 - st.queue_wait_us.p99 / 1e6).abs() <= 1e-12, "{stage}: {p99} vs {}", st.queue_wait_us.p99);
        }
    }
    // Requests reach `chaos` and `done` on the same pool at once: only `entry` has a queue wait,
    // one per request taken from its queue.
    assert_eq!(stage(&s, "entry").queue_wait_us.count, 5);
    let e2e_count = value(&m, "seda_end_to_end_seconds", "seda_end_to_end_seconds_count", &[]);
    assert_eq!(e2e_count, ledger.completed as f64);
    assert_eq!(one(&m, "seda_pool_threads", &[("pool", "p")]), 1.0);
    // The one worker was busy all the time the test held it at the gate, and never longer
    // than the engine has run; its utilisation is that busy time over the uptime.
    let busy = one(&m, "seda_pool_busy_seconds_total", &[("pool", "p")]);
    let uptime = one(&m, "seda_uptime_seconds", &[]);
    assert!(busy >= held_s - 0.001 && busy <= uptime, "busy {busy} s, held {held_s} s, up {uptime} s");
    // /stats was read after /metrics: an idle worker that wakes (to publish, say) adds a little
    // busy time, never more than the time between the two readings.
    let later = s.pools[0].busy_s - busy;
    assert!(later >= 0.0 && later <= s.uptime_s - uptime, "{later} s busier in /stats, read after /metrics");
    let utilisation = one(&m, "seda_pool_utilisation_ratio", &[("pool", "p")]);
    assert!((utilisation - busy / uptime).abs() < 1e-9, "{utilisation}: busy {busy} s, up {uptime} s");
    let spin = one(&m, "seda_pool_idle_spin_seconds_total", &[("pool", "p")]);
    assert_eq!(s.pools[0].idle_spin_s, spin);
    let per_request = one(&m, "seda_idle_spin_seconds_per_request", &[]);
    assert_eq!(per_request, if ledger.completed == 0 { 0.0 } else { spin / ledger.completed as f64 });
    assert_eq!(one(&m, "seda_pipeline_info", &[("pipeline", "admin-test")]), 1.0);
    for family in ["seda_stage_handled_total", "seda_ledger_admitted_total", "seda_pool_busy_seconds_total"] {
        assert_eq!(m[family].kind, "counter", "{family}");
        assert!(!m[family].help.is_empty());
    }
    assert_eq!(m["seda_stage_queue_depth"].kind, "gauge");
    assert_eq!(m["seda_stage_service_seconds"].kind, "summary");

    let summary = engine.shutdown();
    assert_eq!(summary.ledger, ledger);
    for stage in &s.stages {
        assert_eq!(summary.stages[&stage.name].processed, stage.handled, "{}", stage.name);
    }
    // The listener outlives the engine's shutdown until it is stopped itself.
    assert_eq!(stats(addr).ledger, ledger);
    admin.stop();
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed once stopped");
}

#[test]
fn other_paths_are_404_other_methods_405_and_bad_requests_400() {
    let (engine, _collect) = start(plan(gated_chaos()));
    let admin = AdminServer::start("127.0.0.1:0".parse().unwrap(), engine.observer()).unwrap();
    let addr = admin.local_addr();
    let (status, _, body) = get(addr, "/");
    assert_eq!((status, body.as_str()), (404, "not found: try /metrics or /stats\n"));
    assert_eq!(get(addr, "/metrics/extra").0, 404);
    for method in ["POST", "PUT", "DELETE"] {
        let (status, headers, _) =
            exchange(addr, &format!("{method} /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"));
        assert_eq!((status, headers["allow"].as_str()), (405, "GET, HEAD"), "{method}");
    }
    // A query string does not change the path; HEAD gets the headers of the GET.
    assert_eq!(get(addr, "/stats?pretty=1").0, 200);
    let (status, headers, body) = exchange(addr, "HEAD /metrics HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((status, body.as_str()), (200, ""));
    assert_eq!(headers["content-type"], "text/plain; version=0.0.4; charset=utf-8");
    // The framing layer's rejections: an HTTP/1.1 request without Host is 400.
    assert_eq!(exchange(addr, "GET /metrics HTTP/1.1\r\n\r\n").0, 400);
    assert_eq!(get(addr, "/metrics").0, 200, "still serving after the bad request");
    admin.stop();
    engine.shutdown();
}

// ---- `seda run` with an admin listener, and `seda top` ----

fn seda() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seda"))
}

fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("seda-it-admin-{}-{name}", std::process::id()))
}

/// Starts `seda run` on `config` and returns it with the address its admin listener took.
fn run_with_admin(name: &str, config: &Value) -> (Child, SocketAddr, PathBuf) {
    let path = scratch(name);
    std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
    let mut child = seda().arg("run").arg(&path).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    stderr.read_line(&mut line).unwrap();
    let addr = line.strip_prefix("admin listening on ").unwrap_or_else(|| panic!("{line:?}")).trim().parse().unwrap();
    (child, addr, path)
}

/// 200 requests through `pass` into a 6 s `wait`: once they are all sent (in 0.1 s), the run
/// holds still with every request in flight, then completes them all and ends.
fn held_run() -> Value {
    json!({
        "name": "held",
        "metrics_interval_ms": 50,
        "drain_timeout_ms": 60_000,
        "admin": { "listen": "127.0.0.1:0" },
        "source": { "kind": "generator", "requests": 200, "rate": 2000, "entry": "pass" },
        "pools": { "p": { "cpus": [a_cpu()] } },
        "stages": {
            "pass": { "kind": "noop", "pool": "p", "next": "wait" },
            "wait": { "kind": "delay", "pool": "p", "params": { "micros": 6_000_000 }, "next": "done" },
            "done": { "kind": "respond", "pool": "p" }
        }
    })
}

#[test]
fn seda_run_serves_the_admin_listener_for_the_whole_run_and_top_shows_each_stage() {
    let (child, addr, config) = run_with_admin("held.json", &held_run());
    eventually("the 200 requests to reach the timer", || {
        let s = stats(addr);
        s.ledger.admitted == 200 && stage(&s, "wait").handled == 200
    });
    let m = metrics(addr);
    assert_eq!(one(&m, "seda_ledger_admitted_total", &[]), 200.0);
    assert_eq!(one(&m, "seda_ledger_in_flight", &[]), 200.0);
    assert_eq!(one(&m, "seda_ledger_completed_total", &[]), 0.0);
    for (stage, handled) in [("pass", 200.0), ("wait", 200.0), ("done", 0.0)] {
        assert_eq!(one(&m, "seda_stage_handled_total", &[("stage", stage), ("pool", "p")]), handled, "{stage}");
    }

    let top = seda().args(["top", "--once", "--interval", "0.1", &format!("http://{addr}")]).output().unwrap();
    assert!(top.status.success(), "{}", String::from_utf8_lossy(&top.stderr));
    let frame = String::from_utf8(top.stdout).unwrap();
    let lines: Vec<&str> = frame.lines().collect();
    assert!(lines[0].starts_with(&format!("seda top: pipeline held at http://{addr}, up ")), "{frame}");
    assert_eq!(lines[1], "ledger: admitted 200 completed 0 rejected 0 failed 0 timed out 0 in flight 200");
    assert!(lines[2].starts_with("stage ") && lines[2].ends_with(" util"), "{frame}");
    let stages: Vec<Vec<&str>> = lines[3..].iter().map(|l| l.split_whitespace().collect()).collect();
    let names: Vec<&str> = stages.iter().map(|s| s[0]).collect();
    assert_eq!(names, ["done", "pass", "wait"], "a line per stage: {frame}");
    for s in &stages {
        // name, pool, queue, in/s, out/s, p99 wait, p99 service, p99 io, rejected, util:
        // nothing moves, and no stage here asks for I/O.
        assert_eq!((s[1], s[2], s[3], s[4], s[7], s[8]), ("p", "0/4096", "0", "0", "0.00", "0"), "{frame}");
    }

    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("ledger: admitted 200 = completed 200 + rejected 0 + failed 0 + timed out 0"), "{stdout}");
    // Stopped with the run.
    assert!(TcpStream::connect(addr).is_err(), "the listener is closed once the run is over");
    let _ = std::fs::remove_file(config);
}

#[test]
fn top_says_clearly_when_it_cannot_reach_the_listener() {
    // A port that was free a moment ago: nothing listens there.
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = seda().args(["top", "--once", &format!("http://127.0.0.1:{port}")]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.starts_with(&format!("seda: cannot reach the admin listener at http://127.0.0.1:{port}: ")),
        "{stderr}"
    );
    let output = seda().args(["top", "ftp://127.0.0.1:1"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8(output.stderr).unwrap().contains("is not an http:// URL"));
}

#[test]
fn an_admin_address_in_use_fails_the_run_before_it_starts() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let mut config = held_run();
    config["admin"]["listen"] = json!(addr.to_string());
    let path = scratch("taken.json");
    std::fs::write(&path, config.to_string()).unwrap();
    let output = seda().arg("run").arg(&path).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with(&format!("seda: cannot listen for admin requests on {addr}: ")), "{stderr}");
    assert!(output.stdout.is_empty(), "no run, no summary");
    let _ = std::fs::remove_file(path);
}

// ---- run records: queue depth and pool utilisation per interval ----

#[test]
fn counters_csv_shows_a_full_queue_and_a_busy_pool() {
    // The generator fills `slow`'s queue as fast as it takes requests; its one worker spends
    // 200 us on each, so it has work all run long and the queue stays near its capacity.
    let config = json!({
        "name": "deep",
        "metrics_interval_ms": 50,
        "source": { "kind": "generator", "requests": 3000, "rate": "max", "entry": "slow" },
        "pools": { "p": { "cpus": [a_cpu()] } },
        "stages": {
            "slow": { "kind": "spin", "pool": "p", "params": { "micros": 200 }, "next": "done",
                      "queue": { "capacity": 500 } },
            "done": { "kind": "respond", "pool": "p" }
        }
    });
    let text = config.to_string();
    let finished = seda::run::Runner::new(seda::config::load_str(&text).unwrap()).record(true).run_to_end().unwrap();
    let (summary, recording) = (finished.summary, finished.recording.unwrap());
    assert_eq!(summary.ledger.completed, 3000);
    let dir = scratch("deep");
    let _ = std::fs::remove_dir_all(&dir);
    seda::record::write_run(&dir, &text, &summary, &recording).unwrap();
    let csv = std::fs::read_to_string(dir.join("counters.csv")).unwrap();
    let mut lines = csv.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[6..], ["queue_depth", "pool_utilisation", "pool_threads", "batch_size"]);
    let mut depth = BTreeMap::<String, Vec<u64>>::new();
    // The pool's utilisation by interval (its stages' rows agree).
    let mut utilisation = BTreeMap::<String, f64>::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        depth.entry(fields[1].to_string()).or_default().push(fields[6].parse().unwrap());
        let u: f64 = fields[7].parse().unwrap();
        assert_eq!(*utilisation.entry(fields[0].to_string()).or_insert(u), u, "one figure per pool: {line}");
    }
    // The figures add up to the worker's busy time: at least the 3000 x 200 us it spun, at
    // most the run's wall time (give or take an interval, and each figure's rounding to 3
    // decimals).
    let busy_s = utilisation.values().sum::<f64>() * 0.05;
    let rounding_s = utilisation.len() as f64 * 0.0005 * 0.05;
    assert!(busy_s >= 3000.0 * 200e-6 - rounding_s, "{busy_s} s busy\n{csv}");
    assert!(busy_s <= summary.elapsed_s + 0.05 + rounding_s, "{busy_s} s busy in {} s\n{csv}", summary.elapsed_s);
    // Most of the run's 0.6 s the queue held about 500: the intervals' high-water marks show
    // it, however late the (low-priority) metrics thread reads them. `done`
    // runs on the same pool at once and never queues.
    let slow = depth["slow"].iter().max().unwrap();
    assert!((250..=500 + 32).contains(slow), "slow's deepest sample: {slow}\n{csv}");
    assert!(depth["done"].iter().all(|&d| d == 0), "{csv}");
    // The worker always had work: some whole interval shows its pool busy most of the time.
    let busiest = utilisation.values().cloned().fold(0.0, f64::max);
    assert!(busiest >= 0.5, "{csv}");
    std::fs::remove_dir_all(&dir).unwrap();
}

// ---- slow and many clients ----

/// Sends `request` to `addr` one byte every 50 ms on a thread, until `stop` is set or the
/// listener closes the connection; returns the thread, which says whether it was cut off.
fn trickle(addr: SocketAddr, stop: Arc<std::sync::atomic::AtomicBool>) -> std::thread::JoinHandle<bool> {
    let mut stream = TcpStream::connect(addr).unwrap();
    std::thread::spawn(move || {
        // A request head that never ends: header lines, one byte at a time.
        let bytes = b"GET /stats HTTP/1.1\r\nHost: t\r\n".iter().chain(std::iter::repeat(&b'x'));
        for &byte in bytes {
            if stop.load(std::sync::atomic::Ordering::SeqCst) {
                return false;
            }
            if stream.write_all(&[byte]).is_err() {
                return true;
            }
            // The pause is the test's input (a slow client), not a wait for the listener.
            std::thread::sleep(Duration::from_millis(50));
        }
        unreachable!("the bytes never end")
    })
}

#[test]
fn a_client_sending_its_request_slowly_blocks_no_other_and_is_cut_off() {
    let (engine, _collect) = start(plan(gated_chaos()));
    let admin = AdminServer::start("127.0.0.1:0".parse().unwrap(), engine.observer()).unwrap();
    let addr = admin.local_addr();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let slow = trickle(addr, stop.clone());
    // While the slow client is connected and sending, others are answered. (Before, the one
    // admin thread read the slow client's request for as long as each byte came within 5 s,
    // here for ever, and `/stats` waited behind it.)
    for _ in 0..3 {
        assert_eq!(stats(addr).pipeline, "admin-test");
    }
    // The whole request has a deadline (2 s from accept), not only each read: the slow client
    // is cut off though it never stops sending. The bound here is generous.
    let cut_off = std::time::Instant::now();
    eventually("the slow client to be cut off", || slow.is_finished());
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert!(slow.join().unwrap(), "the listener closed the slow connection");
    assert!(cut_off.elapsed() < Duration::from_secs(20));
    admin.stop();
    engine.shutdown();
}

#[test]
fn past_the_connection_bound_a_new_client_gets_503_at_once() {
    let (engine, _collect) = start(plan(gated_chaos()));
    let admin = AdminServer::start("127.0.0.1:0".parse().unwrap(), engine.observer()).unwrap();
    let addr = admin.local_addr();
    // Silent clients take every slot (each held until its 2 s request deadline).
    let silent: Vec<TcpStream> =
        (0..seda::admin::server::MAX_CONNECTIONS).map(|_| TcpStream::connect(addr).unwrap()).collect();
    let (status, _, body) = get(addr, "/stats");
    assert_eq!((status, body.as_str()), (503, "busy: too many admin connections, try again\n"));
    drop(silent);
    // Once the slots are free again, requests are served.
    eventually("a slot to free up", || get(addr, "/stats").0 == 200);
    admin.stop();
    engine.shutdown();
}

#[test]
fn an_http_requests_service_class_comes_from_its_header_and_stats_count_each_class() {
    let config = json!({
        "name": "classes",
        "admin": { "listen": "127.0.0.1:0" },
        "source": { "kind": "http", "listen": "127.0.0.1:0", "entry": "work" },
        "pools": { "p": { "cpus": [a_cpu()] } },
        "stages": {
            "work": { "kind": "respond", "pool": "p",
                      "admission": { "kind": "latency_target", "target_ms": 10000,
                                     "classes": { "header": "X-Tier", "order": ["gold", "bronze"] } } }
        }
    });
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = std::sync::mpsc::channel();
    let flag = stop.clone();
    let run = std::thread::spawn(move || {
        let told = move |at| tx.send(at).unwrap();
        seda::run::Runner::new(plan(config)).stop_on(&flag).on_listening(told).run_to_end().unwrap().summary
    });
    let (mut source, mut admin) = (None, None);
    for _ in 0..2 {
        match rx.recv_timeout(Duration::from_secs(30)).unwrap() {
            seda::run::Listening::Source(addr) => source = Some(addr),
            seda::run::Listening::Admin(addr) => admin = Some(addr),
        }
    }
    let (source, admin) = (source.unwrap(), admin.unwrap());
    // (A target of 10 s: this test is of how requests are classed and counted, and a loaded
    // machine must not make the controller shed one of its six requests.)
    // Three gold, one bronze (the name's case does not matter), one with no class and one whose
    // class is no class's name (both the lowest).
    for tier in ["X-Tier: gold", "X-Tier: gold", "x-tier: gold", "X-Tier: bronze", "", "X-Tier: platinum"] {
        let tier = if tier.is_empty() { String::new() } else { format!("{tier}\r\n") };
        let request = format!("GET / HTTP/1.1\r\nHost: t\r\n{tier}Connection: close\r\n\r\n");
        let (status, _, _) = exchange(source, &request);
        assert_eq!(status, 200, "{tier}");
    }
    let admission = stage(&stats(admin), "work").admission.clone().unwrap();
    let classes: Vec<(&str, u64, u64)> =
        admission.classes.iter().map(|c| (c.name.as_str(), c.admitted, c.shed)).collect();
    assert_eq!(classes, [("gold", 3, 0), ("bronze", 3, 0)]);
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    assert_eq!(run.join().unwrap().ledger.completed, 6);
}
