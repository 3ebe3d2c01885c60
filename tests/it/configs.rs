//! The example pipelines in `configs/`: each one validates as it is (on the two CPUs it is
//! written for) and runs, on the CPUs this process may use, with fewer requests, ending every
//! request exactly once.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use seda::stages::unit_interval;
use serde_json::Value;

use crate::support::on_allowed_cpus;

/// The most requests a test run sends.
const MAX_REQUESTS: u64 = 5_000;
/// A run at a fixed rate sends at most this long (in seconds) worth of requests.
const MAX_RATED_SECONDS: f64 = 0.2;

/// Every `configs/*.json`, by file name.
fn example_configs() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
}

/// Lowers `source.requests` to what a test run sends, keeping the rate; returns the count.
fn shorten(config: &mut Value) -> u64 {
    let source = &mut config["source"];
    let configured = source["requests"].as_u64().expect("source.requests is a number");
    let mut requests = configured.min(MAX_REQUESTS);
    if let Some(rate) = source["rate"].as_f64() {
        requests = requests.min((rate * MAX_RATED_SECONDS).ceil() as u64).max(1);
    }
    source["requests"] = requests.into();
    requests
}

/// Request ids `0..requests` that a `chaos` stage with `params` fails (a panic included).
fn chaos_failures(params: &Value, requests: u64) -> u64 {
    let p = |name: &str| params[name].as_f64().unwrap_or(0.0);
    let (fail, panic, seed) = (p("fail"), p("panic"), params["seed"].as_u64().unwrap_or(0));
    (0..requests).filter(|&id| unit_interval(id, seed) < panic + fail).count() as u64
}

#[test]
fn every_example_config_validates_and_runs_with_an_exact_ledger() {
    seda::engine::quiet_worker_panics();
    let paths = example_configs();
    let names: Vec<String> = paths.iter().map(|p| p.file_name().unwrap().to_string_lossy().into_owned()).collect();
    for expected in [
        "branching.json",
        "compute.json",
        "faults.json",
        "noop4.json",
        "noop4_dedicated.json",
        "noop4_workers.json",
        "timers.json",
    ] {
        assert!(names.iter().any(|n| n == expected), "configs/{expected} is there: {names:?}");
    }

    for (path, name) in paths.iter().zip(&names) {
        let text = std::fs::read_to_string(path).unwrap();
        let mut config: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{name}: {e}"));
        // The file as it is validates on the machine it is written for (CPUs 0 and 1); it runs
        // here on the CPUs this process may use.
        if let Err(e) = seda::config::validate_with_cpus(&config, &[0, 1]) {
            panic!("{name}: {e}");
        }
        // A pipeline split over NATS needs a server and its other half: `tests/it/nats.rs`
        // runs these together.
        if text.contains("\"nats") {
            continue;
        }
        on_allowed_cpus(&mut config);
        if config["source"]["kind"] == "http" {
            serve_briefly(name, config);
            continue;
        }
        let requests = shorten(&mut config);
        let plan = seda::config::validate(&config).unwrap_or_else(|e| panic!("{name}: {e}"));

        let started = Instant::now();
        let summary = seda::run::Runner::new(plan)
            .run_to_end()
            .unwrap_or_else(|e| panic!("{name}: the engine runs: {e}"))
            .summary;
        let ledger = summary.ledger;
        eprintln!("{name}: {requests} requests in {:?}: {ledger:?}", started.elapsed());
        assert_eq!(ledger.admitted, requests, "{name}: every request sent is admitted");
        assert_eq!(ledger.in_flight, 0, "{name}: nothing is left in flight");
        assert_eq!(
            ledger.completed + ledger.rejected + ledger.failed + ledger.timed_out,
            ledger.admitted,
            "{name}: every admitted request ended once"
        );

        if name == "faults.json" {
            // Nothing can reject (one pool, so no internal queue; the entry waits for room)
            // and nothing times out, so the chaos stage alone decides, by request id.
            let stages = config["stages"].as_object().unwrap();
            let (chaos, stage) =
                stages.iter().find(|(_, s)| s["kind"] == "chaos").expect("faults.json has a chaos stage");
            let failed = chaos_failures(&stage["params"], requests);
            assert!(failed > 0 && failed < requests, "{name}: {failed} failures");
            assert_eq!(ledger.failed, failed, "{name}: failed requests");
            assert_eq!(summary.stages[chaos].failed, failed, "{name}: failed at `{chaos}`");
            assert_eq!(summary.stages[chaos].processed, requests, "{name}: seen by `{chaos}`");
            assert_eq!(
                (ledger.completed, ledger.rejected, ledger.timed_out),
                (requests - failed, 0, 0),
                "{name}: the rest completed"
            );
        }
    }
}

/// Runs an HTTP example on a free port: `GET /` (and `POST /compute` where routed) answered
/// 200 by a real client, then a drained shutdown with an exact ledger.
fn serve_briefly(name: &str, mut config: Value) {
    config["source"]["listen"] = Value::from("127.0.0.1:0");
    let plan = seda::config::validate(&config).unwrap_or_else(|e| panic!("{name}: {e}"));
    let stop = AtomicBool::new(false);
    let computes = config.to_string().contains("/compute");
    let summary = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let server = s.spawn(|| {
            let told = move |at| {
                if let seda::run::Listening::Source(addr) = at {
                    tx.send(addr).unwrap();
                }
            };
            seda::run::Runner::new(plan).stop_on(&stop).on_listening(told).run_to_end()
        });
        let addr = rx.recv().unwrap_or_else(|_| panic!("{name}: listens"));
        let agent = ureq::AgentBuilder::new().timeout(std::time::Duration::from_secs(20)).build();
        let response = agent.get(&format!("http://{addr}/")).call().unwrap_or_else(|e| panic!("{name}: GET /: {e}"));
        assert_eq!(response.status(), 200, "{name}: GET /");
        if computes {
            let response = agent.post(&format!("http://{addr}/compute")).send_bytes(&[1u8; 4096]);
            assert_eq!(response.map(|r| r.status()).ok(), Some(200), "{name}: POST /compute");
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        server.join().unwrap().unwrap_or_else(|e| panic!("{name}: serves: {e}")).summary
    });
    let expected = if computes { 2 } else { 1 };
    let l = summary.ledger;
    assert_eq!((l.admitted, l.completed, l.in_flight), (expected, expected, 0), "{name}: {l:?}");
}
