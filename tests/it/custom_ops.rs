//! Operations of a stage's own kind (`IoOp::Custom`): the completion continues the request at the
//! stage's output, a failure or a dropped completion fails it, a panic in the change it applies
//! fails it, its deadline times it out (and a late completion is ignored), and `io_capacity`
//! bounds how many are in flight. Each request ends exactly once.

use std::sync::{Arc, Mutex};

use seda::engine::{Admission, Engine, Envelope, Origin, Outcome, RejectReason};
use seda::stages::{AsyncOp, Completion, IoOp, Output, Outputs, Request, Stage, StageError, StageFactory, Step};
use serde_json::{json, Value};

use crate::support::two_cpus;
use crate::support::{eventually, plan, submit};

/// What the operation of request `id` does, by `id % 5`, unless every one is held.
#[derive(Clone, Copy, PartialEq)]
enum Behaviour {
    ByRequest,
    HoldAll,
}

/// Completions the test holds on to (the operation of a request that is to time out).
type Held = Arc<Mutex<Vec<Completion>>>;

struct Op {
    id: u64,
    behaviour: Behaviour,
    held: Held,
}

impl AsyncOp for Op {
    fn start(self: Box<Self>, done: Completion) {
        let Op { id, behaviour, held } = *self;
        if behaviour == Behaviour::HoldAll {
            held.lock().unwrap().push(done);
            return;
        }
        // Completed on a thread of the operation's own, as a client library would.
        std::thread::spawn(move || match id % 5 {
            0 => done.complete(move |req: &mut Request| req.payload = format!("done {id}").into_bytes()),
            1 => done.fail_with_status(504, StageError::new("upstream timeout")),
            2 => done.fail(StageError::new("upstream broke")),
            3 => drop(done),
            _ => done.complete(|_req: &mut Request| panic!("the change panicked")),
        });
    }
}

struct OpStage(Behaviour, Held);

impl StageFactory for OpStage {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }
    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(OpStage(self.0, self.1.clone()))
    }
}

impl Stage for OpStage {
    fn handle(&mut self, req: &mut Request) -> Step {
        let op = Op { id: req.id, behaviour: self.0, held: self.1.clone() };
        Step::Io(IoOp::Custom(Box::new(op)), Output::NEXT)
    }
}

/// How a request ended: its outcome, status and payload.
#[derive(Default)]
struct Endings(Mutex<Vec<(u64, Outcome, u16, String)>>);

impl Origin for Endings {
    fn finish(&self, env: Box<Envelope>, outcome: &Outcome) {
        let payload = String::from_utf8_lossy(&env.req.payload).into_owned();
        self.0.lock().unwrap().push((env.req.id, outcome.clone(), env.req.response.status, payload));
    }
}

impl Endings {
    fn sorted(&self) -> Vec<(u64, Outcome, u16, String)> {
        let mut all = self.0.lock().unwrap().clone();
        all.sort_by_key(|e| e.0);
        all
    }
}

fn config(extra: Value) -> Value {
    let mut config = json!({
        "name": "ops",
        "source": { "kind": "generator", "requests": 1, "entry": "op" },
        "pools": { "p": { "cpus": [two_cpus()[0]] } },
        "stages": {
            "op": { "kind": "noop", "pool": "p", "next": "done" },
            "done": { "kind": "respond", "pool": "p", "params": { "status": 200 } }
        }
    });
    for (key, value) in extra.as_object().unwrap() {
        config[key] = value.clone();
    }
    config
}

/// Starts `config` with its `op` stage starting operations that behave as `behaviour` says;
/// gives back the `op` stage's id too.
fn start(config: Value, behaviour: Behaviour) -> (Engine, Arc<Endings>, Held, usize) {
    seda::engine::quiet_worker_panics();
    let held = Held::default();
    let mut plan = plan(config);
    let op = plan.stage("op").unwrap();
    plan.stages[op].factory = Arc::new(OpStage(behaviour, held.clone()));
    let endings = Arc::new(Endings::default());
    let engine =
        Engine::builder(plan).origins(vec![endings.clone() as Arc<dyn Origin>]).start().expect("engine starts");
    (engine, endings, held, op)
}

#[test]
fn a_custom_operation_continues_fails_or_is_failed_once_per_request() {
    let (engine, endings, _held, op) = start(config(json!({})), Behaviour::ByRequest);
    let n = 500u64;
    submit(&engine, 0..n, Admission::WaitForRoom);
    eventually("every request to end", || endings.0.lock().unwrap().len() as u64 == n);
    let summary = engine.shutdown();
    let ended = endings.sorted();
    assert_eq!(ended.iter().map(|e| e.0).collect::<Vec<_>>(), (0..n).collect::<Vec<_>>(), "each ends once");
    for (id, outcome, status, payload) in ended {
        let failed = |error: &str| Outcome::Failed { stage: op, error: StageError::new(error.to_string()) };
        let expected = match id % 5 {
            0 => (Outcome::Completed, 200, format!("done {id}")),
            1 => (failed("upstream timeout"), 504, String::new()),
            2 => (failed("upstream broke"), 0, String::new()),
            3 => (failed("the operation ended without completing"), 0, String::new()),
            _ => (failed("panic: the change panicked"), 0, String::new()),
        };
        assert_eq!((outcome, status, payload), expected, "request {id}");
    }
    assert_eq!((summary.ledger.completed, summary.ledger.failed, summary.ledger.in_flight), (100, 400, 0));
    assert_eq!((summary.stages["op"].failed, summary.stages["done"].processed), (400, 100));
}

#[test]
fn a_custom_operation_past_its_deadline_times_out_and_its_late_completion_is_ignored() {
    let (engine, endings, held, op) = start(config(json!({ "deadline_ms": 50 })), Behaviour::HoldAll);
    submit(&engine, 0..20, Admission::WaitForRoom);
    eventually("all 20 to time out", || endings.0.lock().unwrap().len() == 20);
    assert_eq!(held.lock().unwrap().len(), 20, "the operations still hold their completions");
    for done in held.lock().unwrap().drain(..) {
        done.complete(|req: &mut Request| req.payload = b"late".to_vec());
    }
    let summary = engine.shutdown();
    let ended = endings.sorted();
    assert_eq!(ended.len(), 20, "the late completions ended nothing again");
    assert!(ended.iter().all(|e| e.1 == Outcome::TimedOut { stage: op } && e.3.is_empty()), "{ended:?}");
    assert_eq!((summary.ledger.timed_out, summary.ledger.completed, summary.ledger.in_flight), (20, 0, 0));
}

#[test]
fn io_capacity_bounds_the_custom_operations_in_flight() {
    let (engine, endings, held, op) = start(config(json!({ "io_capacity": 4 })), Behaviour::HoldAll);
    submit(&engine, 0..10, Admission::WaitForRoom);
    eventually("6 rejected and 4 held", || endings.0.lock().unwrap().len() == 6 && held.lock().unwrap().len() == 4);
    assert!(endings.sorted().iter().all(|e| e.1 == Outcome::Rejected(RejectReason::IoFull { stage: op })));
    // Room again once they complete.
    for done in held.lock().unwrap().drain(..) {
        done.complete(|_: &mut Request| {});
    }
    eventually("the 4 to complete", || endings.0.lock().unwrap().len() == 10);
    submit(&engine, 10..12, Admission::WaitForRoom);
    eventually("two more held", || held.lock().unwrap().len() == 2);
    for done in held.lock().unwrap().drain(..) {
        done.complete(|_: &mut Request| {});
    }
    eventually("all 12 ended", || endings.0.lock().unwrap().len() == 12);
    let summary = engine.shutdown();
    assert_eq!((summary.ledger.completed, summary.ledger.rejected, summary.ledger.in_flight), (6, 6, 0));
}

#[test]
fn shutdown_ends_custom_operations_that_never_complete() {
    let (engine, endings, held, op) = start(config(json!({ "drain_timeout_ms": 50 })), Behaviour::HoldAll);
    submit(&engine, 0..8, Admission::WaitForRoom);
    eventually("8 held", || held.lock().unwrap().len() == 8);
    let summary = engine.shutdown();
    assert!(endings.sorted().iter().all(|e| e.1 == Outcome::TimedOut { stage: op }));
    assert_eq!((summary.ledger.timed_out, summary.ledger.in_flight), (8, 0));
    drop(held);
}
