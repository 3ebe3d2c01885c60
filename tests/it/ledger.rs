//! The ledger checked against counts kept apart from it: what each origin sent and got back,
//! by ending, and what each stage's handler was called with. The ledger's own identity
//! (`admitted = ended + in_flight`) holds by construction; these comparisons can fail.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use seda::config::Plan;
use seda::engine::{Admission, Engine, Envelope, Origin, Outcome};
use seda::stages::{Outputs, Request, Stage, StageFactory, Step};
use serde_json::json;

use crate::support::{plan, two_cpus};

/// An origin's own count of what it sent and of what came back, by ending.
#[derive(Default)]
struct Tally {
    sent: AtomicU64,
    completed: AtomicU64,
    rejected: AtomicU64,
    failed: AtomicU64,
    timed_out: AtomicU64,
}

impl Origin for Tally {
    fn finish(&self, _env: Box<Envelope>, outcome: &Outcome) {
        let counter = match outcome {
            Outcome::Completed => &self.completed,
            Outcome::Rejected(_) => &self.rejected,
            Outcome::Failed { .. } => &self.failed,
            Outcome::TimedOut { .. } => &self.timed_out,
        };
        counter.fetch_add(1, Ordering::SeqCst);
    }
}

impl Tally {
    fn got_back(&self) -> u64 {
        [&self.completed, &self.rejected, &self.failed, &self.timed_out].iter().map(|c| c.load(Ordering::SeqCst)).sum()
    }
}

/// Wraps a stage's factory to count its handler's calls (a call that panics included).
struct Counted {
    inner: Arc<dyn StageFactory>,
    calls: Arc<AtomicU64>,
}

impl StageFactory for Counted {
    fn outputs(&self) -> Outputs {
        self.inner.outputs()
    }
    fn instance(&self, worker: usize) -> Box<dyn Stage> {
        Box::new(CountedStage { inner: self.inner.instance(worker), calls: self.calls.clone() })
    }
}

struct CountedStage {
    inner: Box<dyn Stage>,
    calls: Arc<AtomicU64>,
}

impl Stage for CountedStage {
    fn handle(&mut self, req: &mut Request) -> Step {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.inner.handle(req)
    }
}

/// Counts every stage's handler calls, by stage name.
fn count_calls(plan: &mut Plan) -> BTreeMap<String, Arc<AtomicU64>> {
    let mut calls = BTreeMap::new();
    for stage in &mut plan.stages {
        let counter = Arc::new(AtomicU64::new(0));
        stage.factory = Arc::new(Counted { inner: stage.factory.clone(), calls: counter.clone() });
        calls.insert(stage.name.clone(), counter);
    }
    calls
}

#[test]
fn the_ledger_agrees_with_what_each_origin_and_stage_counted_during_and_after_a_run() {
    // Two origins submit at once, held back by a `block` entry queue, into a small `reject`
    // queue on another pool and a stage that fails and panics: every kind of ending but a
    // timeout happens, on both pools.
    let mut plan = plan(json!({
        "name": "ledger-check",
        "source": { "kind": "generator", "requests": 1, "entry": "entry" },
        "pools": { "front": { "cpus": [two_cpus()[0]] }, "back": { "cpus": [two_cpus()[1]] } },
        "stages": {
            "entry": { "kind": "noop", "pool": "front", "next": "chaos",
                "queue": { "capacity": 256, "when_full": "block", "block_timeout_ms": 60000 } },
            "chaos": {
                "kind": "chaos", "pool": "back", "params": { "fail": 0.1, "panic": 0.05, "seed": 3 },
                "queue": { "capacity": 16 }, "next": "done"
            },
            "done": { "kind": "respond", "pool": "back" }
        }
    }));
    let calls = count_calls(&mut plan);
    seda::engine::quiet_worker_panics();
    let tallies = [Arc::new(Tally::default()), Arc::new(Tally::default())];
    let origins = tallies.iter().map(|t| t.clone() as Arc<dyn Origin>).collect();
    let engine = Engine::builder(plan).origins(origins).start().expect("engine starts");
    let entry = engine.plan().source.entry();
    let (per_origin, batch) = (4_000u64, 40u64);
    let submitting = AtomicBool::new(true);
    let mut readings = 0;
    std::thread::scope(|s| {
        let senders: Vec<_> = (0..2)
            .map(|origin| {
                let (engine, tally) = (&engine, &tallies[origin]);
                s.spawn(move || {
                    let mut submitter = engine.submitter(origin as u32, entry);
                    for first in (0..per_origin).step_by(batch as usize) {
                        let mut requests: Vec<Box<Envelope>> = (first..first + batch)
                            .map(|id| Envelope::new(Request { id, ..Request::default() }))
                            .collect();
                        // Counted before it is handed in: the ledger can never be ahead of it.
                        tally.sent.fetch_add(batch, Ordering::SeqCst);
                        submitter.submit_batch(&mut requests, Admission::Policy);
                    }
                })
            })
            .collect();
        // While they run: whatever came back had been counted as ended, and nothing was
        // admitted that had not been sent.
        let total = |f: fn(&Tally) -> u64| tallies.iter().map(|t| f(t)).sum::<u64>();
        while submitting.load(Ordering::SeqCst) {
            let got_back = total(Tally::got_back);
            let ledger = engine.ledger();
            let sent = total(|t| t.sent.load(Ordering::SeqCst));
            assert_eq!(ledger.fault(), None);
            assert!(got_back <= ledger.ended(), "came back {got_back}, ledger ended {}", ledger.ended());
            assert!(ledger.admitted <= sent, "admitted {}, sent {sent}", ledger.admitted);
            assert_eq!(ledger.admitted, ledger.ended() + ledger.in_flight);
            readings += 1;
            if senders.iter().all(|t| t.is_finished()) {
                submitting.store(false, Ordering::SeqCst);
            }
        }
        for t in senders {
            t.join().unwrap();
        }
    });
    assert!(readings > 0);
    let summary = engine.shutdown();

    let ledger = summary.ledger;
    for tally in &tallies {
        assert_eq!(tally.got_back(), per_origin, "each origin gets back every request it sent, once");
    }
    let total = |f: fn(&Tally) -> &AtomicU64| tallies.iter().map(|t| f(t).load(Ordering::SeqCst)).sum::<u64>();
    assert_eq!(ledger.admitted, total(|t| &t.sent));
    assert_eq!(ledger.completed, total(|t| &t.completed));
    assert_eq!(ledger.rejected, total(|t| &t.rejected));
    assert_eq!(ledger.failed, total(|t| &t.failed));
    assert_eq!(ledger.timed_out, total(|t| &t.timed_out));
    assert_eq!((ledger.in_flight, ledger.fault()), (0, None));
    assert!(ledger.rejected > 0 && ledger.failed > 0, "the run exercised rejections and failures: {ledger:?}");
    for (name, counted) in &calls {
        assert_eq!(summary.stages[name].processed, counted.load(Ordering::Relaxed), "stage {name}'s handler calls");
    }
    // Every request that the chaos stage did not fail reached `done`, and every one that
    // reached `entry` was either rejected at `chaos`'s queue or reached `chaos`.
    let called = |name: &str| calls[name].load(Ordering::Relaxed);
    assert_eq!(called("done"), ledger.completed);
    assert_eq!(called("chaos"), ledger.completed + ledger.failed);
    assert_eq!(called("entry"), called("chaos") + summary.stages["chaos"].rejected);
    assert_eq!(ledger.admitted, called("entry") + summary.stages["entry"].rejected);
}
