//! The pool-size and batching controllers, in a running engine: a pool whose threads block
//! grows to its most and shrinks back once idle, every request ending once; the levels they
//! set are live in `/stats` and recorded in the run record, which `seda report` plots.

use std::collections::BTreeMap;
use std::path::PathBuf;

use seda::engine::{Admission, Outcome};
use serde_json::json;

use crate::support::{a_cpu, eventually, plan, start, submit, Gate};

fn pool_threads(engine: &seda::engine::Engine, pool: &str) -> (u64, u64, u64) {
    let stats = engine.snapshot();
    let p = stats.pools.iter().find(|p| p.name == pool).expect("the pool");
    (p.threads, p.min_threads, p.max_threads)
}

#[test]
fn a_pool_whose_threads_block_grows_to_its_most_then_shrinks_back_once_idle() {
    // One thread, up to four, on one CPU; each request a batch of its own, so that each thread
    // takes one and blocks in the gate with it.
    let config = json!({
        "name": "sized",
        "source": { "kind": "generator", "requests": 1, "entry": "entry" },
        "pools": {
            "disk": { "cpus": [a_cpu()], "threads": 1, "max_threads": 4, "grow_queue": 2, "shrink_idle_ms": 100 }
        },
        "stages": {
            "entry": { "kind": "noop", "pool": "disk", "queue": { "batch": 1 }, "next": "done" },
            "done": { "kind": "respond", "pool": "disk" }
        }
    });
    let mut plan = plan(config);
    let gate = Gate::install(&mut plan, "entry");
    let (engine, collect) = start(plan);
    assert_eq!(pool_threads(&engine, "disk"), (1, 1, 4));
    submit(&engine, [0], Admission::Policy);
    gate.wait_entered(1);
    // Twenty wait behind the blocked thread; their CPU is idle, so the pool grows, a thread
    // at a time, each taking one and blocking in the gate in turn, to its most.
    submit(&engine, 1..=20, Admission::Policy);
    gate.wait_entered(4);
    eventually("four threads serving", || pool_threads(&engine, "disk").0 == 4);
    assert!(collect.ended().is_empty());
    gate.open();
    eventually("all 21 ended", || collect.ended().len() == 21);
    // Idle, it gives back a thread per 100 ms, down to its one.
    eventually("back to one thread", || pool_threads(&engine, "disk").0 == 1);
    let summary = engine.shutdown();
    let ended = collect.exactly_once(21);
    assert!(ended.iter().all(|e| e.outcome == Outcome::Completed));
    let l = summary.ledger;
    assert_eq!((l.admitted, l.completed, l.rejected, l.failed, l.timed_out, l.in_flight), (21, 21, 0, 0, 0, 0));
}

#[test]
fn a_pool_that_runs_its_source_in_its_workers_cannot_grow() {
    let config = json!({
        "name": "polled",
        "source": { "kind": "generator", "requests": 10, "entry": "entry", "placement": "workers" },
        "pools": { "front": { "cpus": [a_cpu()], "max_threads": 2 } },
        "stages": { "entry": { "kind": "respond", "pool": "front" } }
    });
    let path = std::env::temp_dir().join(format!("seda-it-controllers-{}-polled.json", std::process::id()));
    std::fs::write(&path, config.to_string()).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_seda")).arg("run").arg(&path).output().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("pool `front` runs the source in its workers, so it cannot grow or shrink"), "{stderr}");
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("seda-it-controllers-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A stage that blocks 1 ms a request, 2000 a second: one thread serves 1000/s at most, so its
/// pool must grow; another stage's queue has an adaptive batch. The run record has both
/// levels per interval, and `seda report --svg` plots them.
#[test]
fn a_recorded_run_has_each_interval_s_pool_threads_and_batch_size_and_the_report_plots_them() {
    let dir = scratch("record");
    let config = json!({
        "name": "levels",
        "metrics_interval_ms": 100,
        "source": { "kind": "generator", "requests": 3000, "rate": 2000, "entry": "parse" },
        "pools": {
            "front": { "cpus": [a_cpu()] },
            "disk": { "cpus": [a_cpu()], "threads": 1, "max_threads": 8 }
        },
        "stages": {
            "parse": { "kind": "noop", "pool": "front", "next": "read" },
            "read": {
                "kind": "block", "pool": "disk", "params": { "micros": 1000 },
                "queue": { "capacity": 10000 }, "next": "done"
            },
            "done": { "kind": "respond", "pool": "front", "queue": { "batch": "adaptive" } }
        }
    });
    std::fs::create_dir_all(&dir).unwrap();
    let config_path = dir.join("levels.json");
    std::fs::write(&config_path, config.to_string()).unwrap();
    let seda = || std::process::Command::new(env!("CARGO_BIN_EXE_seda"));
    let record = dir.join("run");
    let output = seda().arg("run").arg(&config_path).arg("--record").arg(&record).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(record.join("summary.json")).unwrap()).unwrap();
    assert_eq!(summary["ledger"]["completed"], 3000);

    // Per stage, the pool threads and batch sizes of its intervals, in order.
    let counters = std::fs::read_to_string(record.join("counters.csv")).unwrap();
    let mut lines = counters.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let column = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (stage, threads, batch) = (column("stage"), column("pool_threads"), column("batch_size"));
    let mut levels: BTreeMap<String, Vec<(u64, u64)>> = BTreeMap::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        let level = (fields[threads].parse().unwrap(), fields[batch].parse().unwrap());
        levels.entry(fields[stage].to_owned()).or_default().push(level);
    }
    let read = &levels["read"];
    let most = read.iter().map(|l| l.0).max().unwrap();
    // It started with one thread: a reading above that is the controller's doing.
    assert!((2..=8).contains(&most), "the pool grew to between 2 and its most of 8: {read:?}");
    // Fixed batches are as configured; the adaptive one stays in its range.
    assert!(read.iter().all(|l| l.1 == 32), "{read:?}");
    assert!(levels["done"].iter().all(|l| (1..=32).contains(&l.1)), "{:?}", levels["done"]);
    assert!(levels["parse"].iter().all(|l| l.0 == 1), "{:?}", levels["parse"]);

    let plots = dir.join("plots");
    let output = seda().arg("report").arg(&record).arg("--svg").arg(&plots).output().unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let svg = std::fs::read_to_string(plots.join("levels.svg")).unwrap();
    assert!(svg.contains("Pool threads and batch sizes over time"));
    assert!(svg.contains("threads serving in its pool"));
    std::fs::remove_dir_all(&dir).unwrap();
}
