//! Embedding seda in a program: a pipeline built from a JSON string (with the built-in stage
//! kinds and one of the program's own), started, fed from four threads of the program's own,
//! stopped, and its summary read.
//!
//! ```sh
//! cargo run --release --example embedding
//! ```

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use seda::engine::{Admission, Engine, Envelope, Origin, Outcome};
use seda::stages::{Registry, Request};

/// The pipeline: its requests come from this program (`"kind": "external"`).
const PIPELINE: &str = r#"{
  "name": "embedded",
  "source": { "kind": "external", "entry": "check" },
  "pools": { "main": { "threads": 2 } },
  "stages": {
    "check": { "kind": "route", "pool": "main",
               "params": { "attribute": "size", "cases": { "big": "digest" }, "default": "respond" },
               "next": { "digest": "digest", "respond": "respond" } },
    "digest": { "kind": "hash", "pool": "main", "params": { "rounds": 4 }, "next": "respond" },
    "respond": { "kind": "respond", "pool": "main" }
  }
}"#;

/// Counts how the program's requests ended, on whichever worker ended them.
#[derive(Default)]
struct Tally {
    completed: AtomicU64,
    other: AtomicU64,
}

impl Origin for Tally {
    fn finish(&self, _env: Box<Envelope>, outcome: &Outcome) {
        let counter = if matches!(outcome, Outcome::Completed) { &self.completed } else { &self.other };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `PIPELINE` with `threads` threads submitting `per_thread` requests each; returns the
/// tally and the engine's summary.
pub fn run_embedded(threads: u64, per_thread: u64) -> (u64, u64, seda::metrics::Summary) {
    let plan = seda::config::load_str_with(PIPELINE, &Registry::builtin()).expect("a valid pipeline");
    let entry = plan.source.entry();
    let tally = Arc::new(Tally::default());
    // One origin per submitting thread would tell them apart; one shared origin is enough here.
    let engine = Engine::builder(plan).origins(vec![tally.clone() as Arc<dyn Origin>]).start().expect("starts");
    std::thread::scope(|scope| {
        for t in 0..threads {
            let mut submitter = engine.submitter(0, entry);
            scope.spawn(move || {
                for i in 0..per_thread {
                    let mut req = Request { id: t * per_thread + i, payload: vec![7; 256], ..Request::default() };
                    let size = if i % 4 == 0 { "big" } else { "small" };
                    req.attrs.set("size".into(), size.into());
                    submitter.submit(Envelope::new(req), Admission::WaitForRoom);
                }
            });
        }
    });
    // Drains what is in flight, then stops the workers.
    let summary = engine.shutdown();
    (tally.completed.load(Ordering::Relaxed), tally.other.load(Ordering::Relaxed), summary)
}

#[allow(dead_code)] // Also built into the integration tests, which call `run_embedded` only.
fn main() {
    let (completed, other, summary) = run_embedded(4, 25_000);
    println!("the program saw {completed} completed, {other} otherwise");
    println!("{summary}");
}
