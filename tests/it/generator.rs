//! The generator in the entry pool's workers (`"placement": "workers"`): every request sent
//! once and counted once, at `"rate": "max"` and at a rate, stopped midway, across pools.

use std::time::{Duration, Instant};

use seda::metrics::Summary;
use seda::stages::unit_interval;
use serde_json::{json, Value};

use crate::support::{a_cpu, plan, two_cpus};

fn run(config: Value) -> Summary {
    seda::run::Runner::new(plan(config)).run_to_end().unwrap().summary
}

/// `requests` requests at `rate` through a 4-stage pipeline on one pool of two workers, with
/// a small entry queue that rejects when full, and a chaos stage.
fn in_workers(requests: u64, rate: Value) -> Value {
    json!({
        "name": "in-workers",
        "source": { "kind": "generator", "placement": "workers", "requests": requests, "rate": rate,
                    "payload_bytes": 32, "entry": "parse" },
        "pools": { "main": { "cpus": two_cpus() } },
        "stages": {
            "parse": { "kind": "noop", "pool": "main", "next": "chaos",
                       "queue": { "capacity": 64, "when_full": "reject" } },
            "chaos": { "kind": "chaos", "pool": "main", "params": { "fail": 0.1, "panic": 0.05, "seed": 7 },
                       "next": "hash" },
            "hash": { "kind": "hash", "pool": "main", "next": "done" },
            "done": { "kind": "respond", "pool": "main" }
        }
    })
}

/// Of ids `0..n`, how many the chaos stage above fails (panics included).
fn chaos_failures(n: u64) -> u64 {
    (0..n).filter(|&i| unit_interval(i, 7) < 0.15).count() as u64
}

#[test]
fn workers_send_every_request_once_and_never_overfill_their_entry_queue() {
    let n = 50_000;
    let summary = run(in_workers(n, json!("max")));
    let l = summary.ledger;
    let failed = chaos_failures(n);
    // A worker claims only what the entry queue has room for: its `reject` never fires.
    assert_eq!((l.admitted, l.rejected, l.timed_out, l.in_flight), (n, 0, 0, 0));
    assert_eq!((l.completed, l.failed), (n - failed, failed));
    assert_eq!(summary.stages["parse"].processed, n);
    assert_eq!(summary.stages["chaos"].processed, n);
    assert_eq!(summary.stages["chaos"].failed, failed);
    assert_eq!(summary.stages["hash"].processed, n - failed);
    assert_eq!(summary.latency_us.count, n - failed);
}

#[test]
fn workers_keep_the_generators_rate() {
    // 2,000 requests at 20,000/s: the last is due 99.95 ms after the first.
    let started = Instant::now();
    let summary = run(in_workers(2_000, json!(20_000)));
    assert!(started.elapsed() >= Duration::from_millis(99), "sent too early: {:?}", started.elapsed());
    let l = summary.ledger;
    assert_eq!((l.admitted, l.rejected, l.in_flight), (2_000, 0, 0));
    assert_eq!(l.completed + l.failed, 2_000);
    assert_eq!(l.failed, chaos_failures(2_000));
}

#[test]
fn workers_stopped_midway_drain_and_count_every_request() {
    let summary = crate::engine::run_stopped_midway("workers");
    let l = summary.ledger;
    assert!(l.admitted >= crate::engine::COMPLETED_BEFORE_THE_STOP && l.admitted < 1_000_000_000);
    assert_eq!(l.in_flight, 0);
    // Across pools the hand-off to `b` blocks for room; nothing is rejected.
    assert_eq!((l.completed, l.rejected, l.failed, l.timed_out), (l.admitted, 0, 0, 0));
    assert_eq!(summary.stages["a"].processed, l.admitted);
    assert_eq!(summary.stages["b"].processed, l.admitted);
    assert_eq!(summary.latency_us.count, l.completed);
}

#[test]
fn workers_send_into_an_entry_on_their_pool_when_later_stages_are_elsewhere() {
    let n = 50_000;
    let config = json!({
        "name": "cross-pool",
        "source": { "kind": "generator", "placement": "workers", "requests": n, "entry": "a" },
        "pools": { "front": { "cpus": two_cpus() }, "back": { "cpus": [two_cpus()[1]] } },
        "stages": {
            "a": { "kind": "noop", "pool": "front", "next": "b" },
            "b": { "kind": "noop", "pool": "back", "next": "c",
                   "queue": { "when_full": "block", "block_timeout_ms": 60000 } },
            "c": { "kind": "respond", "pool": "front",
                   "queue": { "when_full": "block", "block_timeout_ms": 60000 } }
        }
    });
    let summary = run(config);
    let l = summary.ledger;
    assert_eq!((l.admitted, l.completed, l.rejected, l.in_flight), (n, n, 0, 0));
    for stage in ["a", "b", "c"] {
        assert_eq!(summary.stages[stage].processed, n, "stage {stage}");
    }
}

#[test]
fn the_graph_says_where_the_generator_runs() {
    let dot = seda::config::to_dot(&plan(in_workers(10, json!("max"))));
    assert!(
        dot.contains(r#"source [shape=oval, label="generator\n10 requests @ max\nin the entry pool's workers"];"#),
        "{dot}"
    );
}

/// A run of a generator at `rate` (one request, then a wait of 1/rate seconds) stopped once its
/// first request completed: returns its summary and how long it took to return after the stop.
fn stopped_while_waiting(placement: &str, rate: f64) -> (Summary, Duration) {
    let config = json!({
        "name": "slow",
        "admin": { "listen": "127.0.0.1:0" },
        "source": { "kind": "generator", "placement": placement, "requests": 10, "rate": rate, "entry": "a" },
        "pools": { "main": { "cpus": [a_cpu()] } },
        "stages": {
            "a": { "kind": "noop", "pool": "main", "next": "b" },
            "b": { "kind": "respond", "pool": "main" }
        }
    });
    let stop = std::sync::atomic::AtomicBool::new(false);
    let (listening, admin) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let run = scope.spawn(|| {
            let told = |at| {
                if let seda::run::Listening::Admin(addr) = at {
                    listening.send(addr).unwrap();
                }
            };
            seda::run::Runner::new(plan(config)).stop_on(&stop).on_listening(told).run_to_end().unwrap().summary
        });
        let addr = admin.recv_timeout(Duration::from_secs(20)).expect("the admin listener starts");
        // Request 0 is due at once, request 1 not for 100 s (or ever): once 0 has completed,
        // the generator is waiting for 1.
        crate::support::eventually("request 0 to complete", || crate::admin::stats(addr).ledger.completed == 1);
        let stopped = Instant::now();
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let summary = run.join().unwrap();
        (summary, stopped.elapsed())
    })
}

#[test]
fn a_generator_waiting_for_a_far_request_stops_at_once() {
    for placement in ["thread", "workers"] {
        for rate in [0.01, 1e-300] {
            let (summary, took) = stopped_while_waiting(placement, rate);
            // The wait looks at the stop flag every 10 ms; the bound is generous for a loaded
            // machine, and far below the 100 s (or forever) the wait would otherwise last.
            assert!(took < Duration::from_secs(5), "{placement} at {rate}/s took {took:?} to stop");
            let l = summary.ledger;
            assert_eq!((l.admitted, l.completed, l.in_flight), (1, 1, 0), "{placement} at {rate}/s");
        }
    }
}
