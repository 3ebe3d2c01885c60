//! The `seda` binary, started for real: signals, exit codes, its outputs.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{a_cpu, eventually, two_cpus};

/// A file path of this test's own under the temporary directory.
fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("seda-it-{}-{name}", std::process::id()))
}

fn write_config(name: &str, config: &Value) -> PathBuf {
    let path = scratch(name);
    std::fs::write(&path, serde_json::to_string_pretty(config).unwrap()).unwrap();
    path
}

fn seda() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seda"))
}

#[test]
fn sigterm_stops_admission_drains_and_writes_an_exact_summary() {
    let config = write_config(
        "sigterm.json",
        &json!({
            "name": "endless",
            "admin": { "listen": "127.0.0.1:0" },
            "source": { "kind": "generator", "requests": 1_000_000_000_000u64, "rate": "max", "entry": "a" },
            "pools": { "p": { "cpus": [two_cpus()[0]] }, "q": { "cpus": [two_cpus()[1]] } },
            "stages": {
                "a": { "kind": "noop", "pool": "p", "next": "b" },
                "b": { "kind": "spin", "pool": "q", "params": { "micros": 2 }, "next": "c",
                       "queue": { "when_full": "block", "block_timeout_ms": 60000 } },
                "c": { "kind": "respond", "pool": "q" }
            }
        }),
    );
    let summary_path = scratch("sigterm-summary.json");
    let mut child = seda()
        .args(["run".as_ref(), config.as_os_str(), "--json".as_ref(), summary_path.as_os_str()])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Signalled once requests flow (the signal handlers are in place before the run starts):
    // the admin listener says where it is on stderr, and /stats shows requests completed.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    let admin = line.strip_prefix("admin listening on ").unwrap_or_else(|| panic!("{line:?}")).trim().parse().unwrap();
    let completed_before = 1_000;
    eventually("requests to complete", || crate::admin::stats(admin).ledger.completed >= completed_before);
    // SAFETY: kill takes no pointers; the pid is our own child's, which has not been waited for.
    assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "exit status {:?}", output.status);
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.starts_with("pipeline endless: "), "{stdout}");

    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    let ledger = &summary["ledger"];
    let count = |field: &str| ledger[field].as_u64().unwrap();
    assert!(count("admitted") >= completed_before && count("admitted") < 1_000_000_000_000);
    assert_eq!(count("in_flight"), 0);
    assert_eq!(count("completed"), count("admitted"), "every admitted request completed: {ledger}");
    assert_eq!(count("rejected") + count("failed") + count("timed_out"), 0);
    assert_eq!(summary["stages"]["c"]["processed"].as_u64().unwrap(), count("completed"));
    assert!(stdout.contains(&format!("ledger: admitted {} = completed {}", count("admitted"), count("completed"))));
    let _ = std::fs::remove_file(config);
    let _ = std::fs::remove_file(summary_path);
}

#[test]
fn invalid_config_exits_3_and_prints_every_error() {
    let config = write_config(
        "invalid.json",
        &json!({
            "name": "broken",
            "source": { "kind": "generator", "requests": 10, "entry": "s1" },
            "stages": {
                "s1": { "kind": "noop", "next": "respnd" },
                "respond": { "kind": "respond" },
                "extra": { "kind": "nop", "next": "respond" }
            }
        }),
    );
    for command in ["validate", "run", "graph"] {
        let output = seda().args([command.as_ref(), config.as_os_str()]).output().unwrap();
        assert_eq!(output.status.code(), Some(3), "{command}");
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert_eq!(
            stderr,
            "2 errors in the config:\n  \
             $.stages.extra.kind: unknown stage kind `nop` (did you mean `noop`?)\n  \
             $.stages.s1.next: `respnd` names no stage (did you mean `respond`?)\n",
            "{command}"
        );
    }
    let _ = std::fs::remove_file(config);
}

#[test]
fn bad_usage_exits_2_and_a_missing_file_is_a_clear_error() {
    let output = seda().args(["run"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    let output = seda().args(["validate", "/nonexistent/pipeline.json"]).output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.starts_with("1 error in the config:\n  $: cannot read /nonexistent/pipeline.json: "), "{stderr}");
}

#[test]
fn graph_prints_the_pipeline_as_dot() {
    let config = write_config(
        "graph.json",
        &json!({
            "name": "g",
            "source": { "kind": "generator", "requests": 1, "entry": "a" },
            "pools": { "p": { "cpus": [a_cpu()] } },
            "stages": {
                "a": { "kind": "noop", "pool": "p", "next": "b" },
                "b": { "kind": "respond", "pool": "p" }
            }
        }),
    );
    let output = seda().args(["graph".as_ref(), config.as_os_str()]).output().unwrap();
    assert!(output.status.success());
    let dot = String::from_utf8(output.stdout).unwrap();
    assert!(dot.starts_with("digraph \"g\" {\n"), "{dot}");
    assert!(dot.contains("  source -> s0;\n  s0 -> s1;\n}\n"), "{dot}");
    let _ = std::fs::remove_file(config);
}

/// Waits up to `limit` for `child` to exit; kills it and fails the test past that.
fn exit_within(child: &mut std::process::Child, limit: Duration) -> std::process::ExitStatus {
    let start = std::time::Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("seda run did not exit within {limit:?} of SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Reads the child's standard error until the admin listener's line, then waits until the
/// listener shows `n` requests in flight.
fn wait_until_in_flight(stderr: std::process::ChildStderr, n: u64) {
    use std::io::BufRead;
    let mut lines = std::io::BufReader::new(stderr).lines();
    let line = lines.next().expect("a line on standard error").unwrap();
    let addr = line.strip_prefix("admin listening on ").unwrap_or_else(|| panic!("{line}"));
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    // Keep draining standard error so the child never blocks on it.
    std::thread::spawn(move || lines.for_each(drop));
    crate::support::eventually("requests in flight", || crate::admin::stats(addr).ledger.in_flight >= n);
}

#[test]
fn sigterm_ends_a_run_whose_requests_never_leave_their_stage_at_the_drain_timeout() {
    // `out` has weight 0: every request goes back to `a`, forever, on the worker that runs `a`
    // and the route in a row; the entry queue fills and the generator waits for room, either
    // as `"rate": "max"` does, or in the entry's `block` policy (for up to a minute).
    let entries = [
        ("max", json!("max"), json!({ "capacity": 16 })),
        ("block", json!(1_000_000), json!({ "capacity": 16, "when_full": "block", "block_timeout_ms": 60_000 })),
    ];
    for (name, rate, queue) in entries {
        let config = write_config(
            &format!("stuck-{name}.json"),
            &json!({
                "name": "stuck",
                "drain_timeout_ms": 300,
                "admin": { "listen": "127.0.0.1:0" },
                "source": { "kind": "generator", "requests": 1_000_000_000u64, "rate": rate, "entry": "a" },
                "pools": { "p": { "cpus": [two_cpus()[0]] }, "q": { "cpus": [two_cpus()[1]] } },
                "stages": {
                    "a": { "kind": "noop", "pool": "p", "next": "loop", "queue": queue },
                    "loop": { "kind": "route", "pool": "p", "params": { "weights": { "back": 1, "out": 0 } },
                              "next": { "back": "a", "out": "c" } },
                    "c": { "kind": "respond", "pool": "q" }
                }
            }),
        );
        let summary_path = scratch(&format!("stuck-{name}-summary.json"));
        let mut child = seda()
            .args(["run".as_ref(), config.as_os_str(), "--json".as_ref(), summary_path.as_os_str()])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_until_in_flight(child.stderr.take().unwrap(), 16);
        // SAFETY: kill takes no pointers; the pid is our own child's, which has not been waited for.
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
        // The promise is the drain timeout (0.3 s) plus a second; the bound is generous for a
        // loaded machine. Without the fix the run never ends.
        let status = exit_within(&mut child, Duration::from_secs(20));
        assert!(status.success(), "{name}: exit status {status:?}");
        let summary: Value = serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
        let ledger = &summary["ledger"];
        let count = |field: &str| ledger[field].as_u64().unwrap();
        assert_eq!(count("in_flight"), 0, "{name}: {ledger}");
        assert_eq!(count("completed"), 0, "{name}: {ledger}");
        assert!(count("timed_out") > 0, "{name}: the looping requests end as timed out: {ledger}");
        assert_eq!(
            count("admitted"),
            count("rejected") + count("timed_out") + count("failed"),
            "{name}: every admitted request is counted once: {ledger}"
        );
        let _ = std::fs::remove_file(config);
        let _ = std::fs::remove_file(summary_path);
    }
}

/// A generator's `requests` through `chaos` (failing `fail` and panicking `panic` of them) to
/// `respond`.
fn chaos_pipeline(requests: u64, fail: f64, panic: f64) -> Value {
    json!({
        "name": "faulty",
        "source": { "kind": "generator", "requests": requests, "entry": "parse" },
        "pools": { "p": { "cpus": [a_cpu()] } },
        "stages": {
            "parse": { "kind": "noop", "pool": "p", "next": "chaos" },
            "chaos": { "kind": "chaos", "pool": "p", "params": { "fail": fail, "panic": panic, "seed": 7 },
                       "next": "done" },
            "done": { "kind": "respond", "pool": "p" }
        }
    })
}

#[test]
fn a_run_lists_its_failures_by_stage_and_error_and_a_failed_threshold_exits_4() {
    let n = 2_000u64;
    let config = write_config("faulty.json", &chaos_pipeline(n, 0.2, 0.05));
    let summary_path = scratch("faulty-summary.json");
    // The fate of each id is a hash of it: the exact counts are known in advance.
    let draws: Vec<f64> = (0..n).map(|id| seda::stages::unit_interval(id, 7)).collect();
    let panics = draws.iter().filter(|&&d| d < 0.05).count() as u64;
    let failures = draws.iter().filter(|&&d| (0.05..0.25).contains(&d)).count() as u64;
    assert!(panics > 0 && failures > 0);

    let output = seda()
        .args(["run".as_ref(), config.as_os_str(), "--json".as_ref(), summary_path.as_os_str()])
        .args(["--fail-if", "errors<=0", "--fail-if", "rate>=1"])
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(4), "{stdout}");
    let errors = panics + failures;
    let expected = format!(
        "\nfailures (stage: count  message):\n  chaos: {failures}  chaos: injected failure\n\n\
         panics (stage: count  message):\n  chaos: {panics}  panic: chaos: injected panic\n\n\
         threshold errors<=0: FAILED (actual {errors})\nthreshold rate>=1: passed (actual "
    );
    assert!(stdout.contains(&expected), "{stdout}");
    let summary: Value = serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    let chaos = &summary["stages"]["chaos"];
    assert_eq!(chaos["errors"], json!({ "chaos: injected failure": failures }));
    assert_eq!(chaos["panics"], json!({ "panic: chaos: injected panic": panics }));
    assert_eq!(summary["stages"]["parse"].get("errors"), None, "a stage without failures lists none");
    assert_eq!(
        summary["thresholds"][0],
        json!({ "threshold": "errors<=0", "actual": errors as f64, "unit": "errors", "passed": false })
    );
    assert_eq!(summary["thresholds"][1]["passed"], json!(true));

    // Every request failing: the reason is on screen, and the exit code says so when asked.
    let config = write_config("all-fail.json", &chaos_pipeline(100, 1.0, 0.0));
    let output =
        seda().args(["run".as_ref(), config.as_os_str(), "--fail-if".as_ref(), "errors<1%".as_ref()]).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert_eq!(output.status.code(), Some(4), "{stdout}");
    assert!(
        stdout.contains("\nfailures (stage: count  message):\n  chaos: 100  chaos: injected failure\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("threshold errors<1%: FAILED (actual 100.0000%)\n"), "{stdout}");

    // Thresholds that hold exit 0; one on a series `seda run` does not measure is bad usage.
    let output = seda()
        .args(["run".as_ref(), config.as_os_str(), "--fail-if".as_ref(), "errors<=100".as_ref()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0));
    let output = seda()
        .args(["run".as_ref(), config.as_os_str(), "--fail-if".as_ref(), "lag.p99<1ms".as_ref()])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr)
        .contains("seda run measures end-to-end latency at p50, p90, p99, p99.9 and max only"));
    let _ = std::fs::remove_file(config);
    let _ = std::fs::remove_file(summary_path);
}
