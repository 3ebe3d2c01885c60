//! Overload control: admission controllers shed with their reason, counted once, and hold a
//! latency target under load.

use std::time::{Duration, Instant};

use seda::engine::{Admission, Controller, Envelope, Outcome, RejectReason};
use seda::stages::Request;
use serde_json::{json, Value};

use crate::support::two_cpus;
use crate::support::{eventually, plan, start, submit, Gate};

/// An entry stage with `admission` on a pool of one worker, then `respond` on another.
fn pipeline(admission: Value, entry_kind: Value) -> Value {
    let mut entry = json!({ "pool": "front", "admission": admission, "next": "done" });
    entry.as_object_mut().unwrap().extend(entry_kind.as_object().unwrap().clone());
    json!({
        "name": "overload",
        "source": { "kind": "generator", "requests": 1, "entry": "entry" },
        "pools": { "front": { "cpus": [two_cpus()[0]] }, "back": { "cpus": [two_cpus()[1]] } },
        "stages": {
            "entry": entry,
            "done": { "kind": "respond", "pool": "back" }
        }
    })
}

#[test]
fn a_concurrency_limit_sheds_past_its_limit_as_overload_counted_once() {
    let admission = json!({ "kind": "concurrency_limit", "initial_limit": 4, "min_limit": 1 });
    let mut plan = plan(pipeline(admission, json!({ "kind": "noop" })));
    let gate = Gate::install(&mut plan, "entry");
    let (engine, collect) = start(plan);
    let entry = engine.plan().stage("entry").unwrap();
    // One request holds the stage's only worker: one at the stage.
    submit(&engine, [0], Admission::Policy);
    gate.wait_entered(1);
    // Of 100 more, 3 bring the stage to its limit of 4; the other 97 are shed at once.
    submit(&engine, 1..=100, Admission::Policy);
    eventually("97 shed", || collect.ended().len() == 97);
    assert_eq!(engine.queue_depth(entry), 3);
    let stats = engine.snapshot();
    let admission = stats.stages.iter().find(|s| s.name == "entry").unwrap().admission.clone().unwrap();
    assert_eq!(admission.controller, Controller::ConcurrencyLimit);
    assert_eq!((admission.admitted, admission.shed, admission.limit, admission.at_stage), (4, 97, Some(4), Some(4)));
    gate.open();
    let summary = engine.shutdown();

    let ended = collect.exactly_once(101);
    let completed: Vec<u64> = ended.iter().filter(|e| e.outcome == Outcome::Completed).map(|e| e.id).collect();
    assert_eq!(completed, [0, 1, 2, 3]);
    let overload = Outcome::Rejected(RejectReason::Overload { stage: entry, controller: Controller::ConcurrencyLimit });
    assert!(ended[4..].iter().all(|e| e.outcome == overload));
    assert_eq!((summary.ledger.admitted, summary.ledger.completed, summary.ledger.rejected), (101, 4, 97));
    assert_eq!(summary.stages["entry"].rejected, 97);
    assert_eq!(summary.stages["done"].rejected, 0);
}

#[test]
fn a_stage_with_a_controller_behind_one_on_its_own_pool_is_still_entered_through_its_queue() {
    // `a` and `entry` share a pool of two workers: without a controller `entry` would run
    // inline after `a`, past any admission decision. One worker holds request 0 in `entry`,
    // the other runs `a` for the ten more, and hands them to `entry` in one batch: with one
    // at the stage, the limit of 2 admits one of them.
    let admission = json!({ "kind": "concurrency_limit", "initial_limit": 2, "min_limit": 1 });
    let mut config = pipeline(admission, json!({ "kind": "noop" }));
    config["pools"]["front"] = json!({ "cpus": two_cpus() });
    config["stages"]["a"] = json!({ "kind": "noop", "pool": "front", "next": "entry" });
    config["source"]["entry"] = json!("a");
    let mut plan = plan(config);
    let gate = Gate::install(&mut plan, "entry");
    let (engine, collect) = start(plan);
    submit(&engine, [0], Admission::Policy);
    gate.wait_entered(1);
    submit(&engine, 1..=10, Admission::Policy);
    eventually("9 shed", || collect.ended().len() == 9);
    gate.open();
    let summary = engine.shutdown();
    collect.exactly_once(11);
    assert_eq!((summary.ledger.completed, summary.ledger.rejected), (2, 9));
    assert_eq!(summary.stages["entry"].rejected, 9);
}

/// Under three times the load its stage can serve, a `latency_target` stage sheds the excess
/// and answers what it admits near its target, where a plain queue's wait would grow to
/// seconds; every request ends exactly once.
#[test]
fn latency_target_under_3x_load_answers_admitted_requests_near_its_target_with_the_ledger_exact() {
    // 1 ms of CPU a request on one worker: about 1000/s at most (less on a busy machine).
    let admission = json!({ "kind": "latency_target", "target_ms": 20, "sample_every": 20 });
    let entry = json!({ "kind": "spin", "params": { "micros": 1000 }, "queue": { "capacity": 100_000 } });
    let plan = plan(pipeline(admission, entry));
    let (engine, collect) = start(plan);
    let entry = engine.plan().source.entry();
    let mut submitter = engine.submitter(0, entry);
    // 3 requests every millisecond for 3 s, on schedule: 3000/s.
    let started = Instant::now();
    let n: u64 = 9_000;
    let mut id = 0;
    while id < n {
        let due = Duration::from_millis(id / 3);
        if let Some(wait) = due.checked_sub(started.elapsed()) {
            std::thread::sleep(wait);
        }
        let mut batch: Vec<Box<Envelope>> =
            (id..id + 3).map(|id| Envelope::new(Request { id, ..Request::default() })).collect();
        submitter.submit_batch(&mut batch, Admission::Policy);
        id += 3;
    }
    drop(submitter);
    let summary = engine.shutdown();

    let ended = collect.exactly_once(n);
    let overload = Outcome::Rejected(RejectReason::Overload { stage: entry, controller: Controller::LatencyTarget });
    let shed = ended.iter().filter(|e| e.outcome == overload).count() as u64;
    let completed = ended.iter().filter(|e| e.outcome == Outcome::Completed).count() as u64;
    let l = summary.ledger;
    assert_eq!(
        (l.admitted, l.completed, l.rejected, l.failed, l.timed_out, l.in_flight),
        (n, completed, shed, 0, 0, 0)
    );
    assert!(shed >= n / 3, "the excess is shed: {shed} of {n}");
    // 1000/s at best; a tenth of that even on a machine busy with other work.
    assert!(completed >= 300, "and the stage kept serving: {completed}");
    // Without the controller the queue (100,000 places) would hold the whole excess, some
    // 6000 requests by the end, at 1 ms each: seconds of waiting. With it, the admitted wait
    // stays within a multiple of the target generous enough for a machine busy with other
    // work, which stalls the stage's only worker now and then.
    let p90_ms = summary.latency_us.p90 / 1e3;
    assert!(p90_ms <= 1_000.0, "admitted p90 {p90_ms} ms, within 50 x the 20 ms target");
}

#[test]
fn a_bad_admission_block_reports_every_error_at_its_path() {
    let admission = json!({ "kind": "latency_target", "target_ms": 0, "percentile": 120, "smoothing": 1.0,
                            "classes": { "attribute": "tier", "order": ["gold", "gold"] } });
    let errors = seda::config::validate(&pipeline(admission, json!({ "kind": "noop" }))).err().unwrap();
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "$.stages.entry.admission.target_ms",
            "$.stages.entry.admission.percentile",
            "$.stages.entry.admission.smoothing",
            "$.stages.entry.admission.classes.order",
        ]
    );
    // A class comes from an attribute or a header, one of the two, and a header is a token.
    let classes = |classes: Value| {
        let admission = json!({ "kind": "latency_target", "classes": classes });
        let errors = seda::config::validate(&pipeline(admission, json!({ "kind": "noop" }))).err().unwrap();
        errors.0.iter().map(|e| (e.path.clone(), e.message.clone())).collect::<Vec<_>>()
    };
    let neither = "a class comes from an `attribute` or a `header`: name one of the two".to_owned();
    let at = "$.stages.entry.admission.classes".to_owned();
    assert_eq!(classes(json!({ "order": ["a"] })), [(at.clone(), neither.clone())]);
    assert_eq!(classes(json!({ "attribute": "tier", "header": "X-Tier", "order": ["a"] })), [(at.clone(), neither)]);
    assert_eq!(
        classes(json!({ "header": "X Tier", "order": ["a"] })),
        [(format!("{at}.header"), "`X Tier` is not an HTTP header name".to_owned())]
    );
    assert_eq!(
        classes(json!({ "attribute": "tier", "order": ["a", "b"], "targets_ms": [10] })),
        [(format!("{at}.targets_ms"), "1 targets for 2 classes: give one per class, in `order`".to_owned())]
    );
    assert_eq!(
        classes(json!({ "attribute": "tier", "order": ["a", "b"], "targets_ms": [10, 0] })),
        [(format!("{at}.targets_ms[1]"), "targets_ms[1] must be above 0 and at most 3600000, not 0".to_owned())]
    );
    let admission = json!({ "kind": "latency_target", "classes": { "header": "X-Tier", "order": ["gold", "bronze"] } });
    let plan = seda::config::validate(&pipeline(admission, json!({ "kind": "noop" }))).unwrap();
    let entry = &plan.stages[plan.stage("entry").unwrap()];
    let Some(seda::config::AdmissionPlan::LatencyTarget(lt)) = &entry.admission else { panic!("latency_target") };
    assert_eq!(
        lt.classes,
        Some((seda::config::ClassSource::Header("X-Tier".into()), vec!["gold".into(), "bronze".into()]))
    );
    // Without targets of their own, every class has the controller's.
    assert_eq!(lt.class_targets, [Duration::from_millis(20); 2]);
    let admission = json!({ "kind": "latency_target", "target_ms": 30,
                            "classes": { "attribute": "tier", "order": ["gold", "bronze"], "targets_ms": [5, 250.5] } });
    let plan = seda::config::validate(&pipeline(admission, json!({ "kind": "noop" }))).unwrap();
    let entry = &plan.stages[plan.stage("entry").unwrap()];
    let Some(seda::config::AdmissionPlan::LatencyTarget(lt)) = &entry.admission else { panic!("latency_target") };
    assert_eq!(lt.class_targets, [Duration::from_millis(5), Duration::from_micros(250_500)]);

    let admission = json!({ "kind": "concurrency_limit", "initial_limit": 0, "backoff": 1 });
    let errors = seda::config::validate(&pipeline(admission, json!({ "kind": "noop" }))).err().unwrap();
    let paths: Vec<&str> = errors.0.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(paths, ["$.stages.entry.admission.initial_limit", "$.stages.entry.admission.backoff"]);
    let admission = json!({ "kind": "codel", "interval": 100 });
    let errors = seda::config::validate(&pipeline(admission, json!({ "kind": "noop" }))).err().unwrap();
    assert_eq!(errors.0[0].path, "$.stages.entry.admission.interval");
    assert!(errors.0[0].message.contains("unknown field `interval`"), "{}", errors.0[0].message);
    assert_eq!(errors.0[0].hint.as_deref(), Some("did you mean `interval_ms`?"));
}
