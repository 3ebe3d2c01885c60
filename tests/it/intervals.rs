//! A recorded run's intervals hold what happened in them: each stage's calls per interval agree
//! with a second count kept by the stage itself, even when a worker is held up for several
//! intervals; the service-time samples' weights add up to the calls of each stage, on a path
//! where requests skip stages and come back from a timer; and the timer's wait is the I/O wait
//! of the stage that asked for it.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use seda::metrics::Intervals;
use seda::stages::{Output, Outputs, Request, Stage, StageFactory, Step};
use serde_json::json;

use crate::support::plan;

/// A stage that notes the time of each call (the independent count; on the engine's clock, so
/// that the intervals' bounds need no conversion), and holds its
/// worker for `stall` on call number `stall_at`: a worker held up across several intervals.
struct Tally {
    calls: Arc<Mutex<Vec<u64>>>,
    stall_at: usize,
    stall: Duration,
}

impl StageFactory for Tally {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }
    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(TallyStage { calls: self.calls.clone(), stall_at: self.stall_at, stall: self.stall })
    }
}

struct TallyStage {
    calls: Arc<Mutex<Vec<u64>>>,
    stall_at: usize,
    stall: Duration,
}

impl Stage for TallyStage {
    fn handle(&mut self, _req: &mut Request) -> Step {
        let n = {
            let mut calls = self.calls.lock().unwrap();
            calls.push(seda::clock::now_ns());
            calls.len()
        };
        if n == self.stall_at {
            // The test's input: a call that keeps its worker three intervals.
            std::thread::sleep(self.stall);
        }
        Step::Next(Output::NEXT)
    }
}

/// Installs a tally as stage `name`; returns its notes.
fn tally(plan: &mut seda::config::Plan, name: &str, stall_at: usize, stall: Duration) -> Arc<Mutex<Vec<u64>>> {
    let calls = Arc::new(Mutex::new(Vec::new()));
    let stage = plan.stage(name).expect("the stage exists");
    plan.stages[stage].factory = Arc::new(Tally { calls: calls.clone(), stall_at, stall });
    calls
}

/// The stage's own count of its calls in each of the run's intervals.
fn per_interval(calls: &[u64], intervals: &Intervals) -> Vec<u64> {
    let mut counts = vec![0u64; intervals.list.len()];
    for t in calls {
        let since = Duration::from_nanos(t.saturating_sub(intervals.origin_ns));
        let i = intervals.list.iter().position(|i| since >= i.start && since < i.start + i.length);
        counts[i.unwrap_or_else(|| panic!("a call at {since:?} falls in no recorded interval"))] += 1;
    }
    counts
}

#[test]
fn each_interval_holds_the_calls_made_in_it_and_sample_weights_add_up_to_the_calls() {
    const REQUESTS: u64 = 8_000;
    // Every request completes however loaded the machine: a full queue makes its sender wait.
    let wait_for_room = json!({ "when_full": "block", "block_timeout_ms": 60000 });
    // 8,000 at 10,000/s in 50 ms intervals: 16 intervals of about 500 calls a stage.
    let mut plan = plan(json!({
        "name": "intervals",
        "metrics_interval_ms": 50,
        "source": { "kind": "generator", "requests": REQUESTS, "rate": 10000, "entry": "parse" },
        "pools": { "front": { "threads": 1 }, "work": { "threads": 1 } },
        "stages": {
            "parse": { "kind": "noop", "pool": "front", "queue": wait_for_room, "next": "split" },
            "split": { "kind": "route", "pool": "work", "params": { "weights": { "a": 1, "b": 1 } },
                       "queue": wait_for_room, "next": { "a": "digest", "b": "wait" } },
            "digest": { "kind": "hash", "pool": "work", "next": "wait" },
            "wait": { "kind": "delay", "pool": "work", "params": { "micros": 300 }, "next": "after" },
            "after": { "kind": "noop", "pool": "work", "next": "respond" },
            "respond": { "kind": "respond", "pool": "work" }
        }
    }));
    // `parse`'s worker is held 150 ms (three intervals) on its 3,000th call, with the calls
    // before it unpublished: they belong to the interval they were made in, not to the one
    // the worker publishes in.
    let parse = tally(&mut plan, "parse", 3_000, Duration::from_millis(150));
    let after = tally(&mut plan, "after", 0, Duration::ZERO);
    let finished = seda::run::Runner::new(plan).record(true).run_to_end().unwrap();
    let (summary, recording) = (finished.summary, finished.recording.unwrap());
    assert_eq!(summary.ledger.completed, REQUESTS, "{:?}", summary.ledger);
    let intervals = recording.totals.intervals.as_ref().expect("a recorded run keeps its intervals");
    assert!(intervals.list.len() >= 10, "{} intervals", intervals.list.len());

    for (name, calls) in [("parse", &parse), ("after", &after)] {
        let calls = calls.lock().unwrap();
        assert_eq!(calls.len() as u64, REQUESTS, "{name}");
        let stage = recording.stages.iter().position(|s| s == name).unwrap();
        let recorded: Vec<u64> = intervals.list.iter().map(|i| i.stages[stage].processed).collect();
        let counted = per_interval(&calls, intervals);
        assert_eq!(recorded.iter().sum::<u64>(), REQUESTS, "{name}");
        // Off by at most the rest of the batch the worker was running as a boundary passed (it
        // reads the clock once a batch: at most 31 requests, counted in the interval the batch
        // started in). A whole interval misfiled is off by about 500.
        assert_eq!(recorded.len(), counted.len(), "{name}: {recorded:?} against {counted:?}");
        for (i, (r, c)) in recorded.iter().zip(&counted).enumerate() {
            assert!(r.abs_diff(*c) <= 31, "{name}, interval {i}: recorded {recorded:?}, counted {counted:?}");
        }
    }

    // Each stage's samples stand for its calls: half the requests skip `digest`, and `after`
    // is reached only from the timer, in other batches than `split`'s on the same worker.
    for (name, stage) in &summary.stages {
        let expected = if name == "digest" { stage.processed } else { REQUESTS };
        assert_eq!(stage.processed, expected, "{name}");
        assert_eq!(stage.service_us.count, stage.processed, "{name}: service-time samples' weights");
    }
    let digest = summary.stages["digest"].processed;
    assert!((3_000..=5_000).contains(&digest), "half of 8,000 by weight: {digest}");

    // The timer's 300 us is `wait`'s I/O wait, one per request, and no other stage's.
    for (name, stage) in &summary.stages {
        let expected = if name == "wait" { REQUESTS } else { 0 };
        assert_eq!(stage.io_wait_us.count, expected, "{name}: I/O waits");
    }
    let io = summary.stages["wait"].io_wait_us;
    // A timer never fires early (the histogram keeps 3 significant digits).
    assert!(io.p50 >= 300.0 * 0.999 && io.max >= io.p50, "{io:?}");
    // The table shows it as a row of `wait`'s, and only there.
    let table = summary.to_string();
    let rows: Vec<&str> = table.lines().filter(|l| l.contains("io wait")).collect();
    assert_eq!(rows.len(), 1, "{table}");
    let wait_row = table.lines().position(|l| l.starts_with("wait ")).unwrap();
    assert!(table.lines().nth(wait_row + 2).unwrap().contains("io wait"), "{table}");
}
