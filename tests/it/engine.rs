//! The engine: the ledger, queue policies, faults, timers, deadlines, shutdown, pinning.

use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use seda::engine::{Admission, Outcome, RejectReason};
use seda::stages::{splitmix64, unit_interval};
use serde_json::{json, Value};

use crate::support::{eventually, plan, start, submit, two_cpus, Gate};

/// A config whose generator is not used: the tests submit themselves.
fn pipeline(stages: Value, pools: Value) -> Value {
    json!({
        "name": "test",
        "source": { "kind": "generator", "requests": 1, "entry": "entry" },
        "pools": pools,
        "stages": stages,
    })
}

/// The stage named `name` in the plan, by id.
fn id(engine: &seda::engine::Engine, name: &str) -> usize {
    engine.plan().stage(name).unwrap()
}

#[test]
fn every_request_ends_exactly_once_through_failures_and_panics() {
    let config = pipeline(
        json!({
            "entry": { "kind": "noop", "pool": "front", "next": "chaos" },
            "chaos": {
                "kind": "chaos", "pool": "back", "params": { "fail": 0.1, "panic": 0.05, "seed": 7 }, "next": "done",
                "queue": { "when_full": "block", "block_timeout_ms": 60000 }
            },
            "done": { "kind": "respond", "pool": "back" }
        }),
        json!({ "front": { "cpus": [two_cpus()[0]] }, "back": { "cpus": [two_cpus()[1]] } }),
    );
    let (engine, collect) = start(plan(config));
    let n = 20_000u64;
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        submit(&engine, chunk.iter().copied(), Admission::WaitForRoom);
    }
    let chaos = id(&engine, "chaos");
    let summary = engine.shutdown();

    let panics = (0..n).filter(|&i| unit_interval(i, 7) < 0.05).count() as u64;
    let fails = (0..n).filter(|&i| (0.05..0.15).contains(&unit_interval(i, 7))).count() as u64;
    let ended = collect.exactly_once(n);
    let failed_by = |message: &str| {
        ended
            .iter()
            .filter(|e| matches!(&e.outcome, Outcome::Failed { stage, error } if *stage == chaos && error.0 == message))
            .count() as u64
    };
    assert_eq!(failed_by("panic: chaos: injected panic"), panics);
    assert_eq!(failed_by("chaos: injected failure"), fails);
    let ledger = summary.ledger;
    assert_eq!(ledger.admitted, n);
    assert_eq!(ledger.failed, panics + fails);
    assert_eq!(ledger.completed, n - panics - fails);
    assert_eq!((ledger.rejected, ledger.timed_out, ledger.in_flight), (0, 0, 0));
    assert_eq!(summary.stages["chaos"].failed, panics + fails);
    assert_eq!(summary.stages["chaos"].processed, n);
    assert_eq!(summary.stages["done"].processed, n - panics - fails);
    assert_eq!(summary.latency_us.count, n - panics - fails);
}

/// A gate at the entry holds the pool's only worker, so the queue behind it fills exactly.
fn gated(queue: Value) -> Value {
    pipeline(
        json!({
            "entry": { "kind": "noop", "pool": "p", "queue": queue, "next": "done" },
            "done": { "kind": "respond", "pool": "p" }
        }),
        json!({ "p": { "cpus": [two_cpus()[0]] } }),
    )
}

#[test]
fn full_queue_rejects_at_once_and_the_ledger_stays_exact() {
    let mut plan = plan(gated(json!({ "capacity": 4, "when_full": "reject" })));
    let gate = Gate::install(&mut plan, "entry");
    let (engine, collect) = start(plan);
    submit(&engine, [0], Admission::Policy);
    gate.wait_entered(1);
    submit(&engine, 1..=100, Admission::Policy);
    let entry = id(&engine, "entry");
    // Room for 4 behind the held request; the other 96 are rejected before the gate opens.
    eventually("96 rejections", || collect.ended().len() == 96);
    assert_eq!(engine.queue_depth(entry), 4);
    gate.open();
    let summary = engine.shutdown();

    let ended = collect.exactly_once(101);
    let completed: Vec<u64> = ended.iter().filter(|e| e.outcome == Outcome::Completed).map(|e| e.id).collect();
    assert_eq!(completed, vec![0, 1, 2, 3, 4]);
    for e in &ended[5..] {
        assert_eq!(e.outcome, Outcome::Rejected(RejectReason::QueueFull { stage: entry }));
    }
    assert_eq!((summary.ledger.admitted, summary.ledger.completed, summary.ledger.rejected), (101, 5, 96));
    assert_eq!(summary.stages["entry"].rejected, 96);
}

#[test]
fn drop_oldest_rejects_the_oldest_waiting_requests() {
    let mut plan = plan(gated(json!({ "capacity": 4, "when_full": "drop_oldest" })));
    let gate = Gate::install(&mut plan, "entry");
    let (engine, collect) = start(plan);
    submit(&engine, [0], Admission::Policy);
    gate.wait_entered(1);
    for i in 1..=10 {
        submit(&engine, [i], Admission::Policy);
    }
    let entry = id(&engine, "entry");
    gate.open();
    let summary = engine.shutdown();

    let ended = collect.exactly_once(11);
    let completed: Vec<u64> = ended.iter().filter(|e| e.outcome == Outcome::Completed).map(|e| e.id).collect();
    let dropped: Vec<u64> = ended
        .iter()
        .filter(|e| e.outcome == Outcome::Rejected(RejectReason::DroppedOldest { stage: entry }))
        .map(|e| e.id)
        .collect();
    assert_eq!(completed, vec![0, 7, 8, 9, 10]);
    assert_eq!(dropped, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(summary.ledger.rejected, 6);
}

/// Fills a 4-deep `drop_oldest` queue with requests 1 to 4 handed over in `fill` batches, then
/// sends 5, 6 and 7 in `overflow` batches; returns the ids dropped and the ids completed, each
/// in the order they ended.
fn drop_oldest_with_batches(fill: &[&[u64]], overflow: &[&[u64]]) -> (Vec<u64>, Vec<u64>) {
    let mut plan = plan(gated(json!({ "capacity": 4, "when_full": "drop_oldest" })));
    let gate = Gate::install(&mut plan, "entry");
    let (engine, collect) = start(plan);
    submit(&engine, [0], Admission::Policy);
    gate.wait_entered(1);
    for batch in fill.iter().chain(overflow) {
        submit(&engine, batch.iter().copied(), Admission::Policy);
    }
    let entry = id(&engine, "entry");
    gate.open();
    let summary = engine.shutdown();
    let ended = collect.exactly_once(8);
    assert_eq!((summary.ledger.admitted, summary.ledger.rejected, summary.ledger.completed), (8, 3, 5));
    // `ended` is by id, `order()` the ids as they ended.
    let ended_as =
        |wanted: Outcome| collect.order().into_iter().filter(|&id| ended[id as usize].outcome == wanted).collect();
    (ended_as(Outcome::Rejected(RejectReason::DroppedOldest { stage: entry })), ended_as(Outcome::Completed))
}

#[test]
fn drop_oldest_drops_the_oldest_and_keeps_the_order_of_the_rest_whatever_the_batches() {
    // Real traffic moves in batches: the oldest request is the first of the oldest batch, and
    // the rest of that batch stays ahead of everything queued after it.
    let fills: [&[&[u64]]; 4] = [&[&[1, 2, 3, 4]], &[&[1, 2], &[3, 4]], &[&[1], &[2, 3, 4]], &[&[1, 2, 3], &[4]]];
    let overflows: [&[&[u64]]; 3] = [&[&[5], &[6], &[7]], &[&[5, 6, 7]], &[&[5, 6], &[7]]];
    for fill in fills {
        for overflow in overflows {
            let (dropped, completed) = drop_oldest_with_batches(fill, overflow);
            assert_eq!(dropped, vec![1, 2, 3], "filled as {fill:?}, then {overflow:?}");
            assert_eq!(completed, vec![0, 4, 5, 6, 7], "filled as {fill:?}, then {overflow:?}: in queue order");
        }
    }
}

#[test]
fn block_waits_for_room_then_rejects_after_its_timeout() {
    let mut plan = plan(gated(json!({ "capacity": 2, "when_full": "block", "block_timeout_ms": 50 })));
    let gate = Gate::install(&mut plan, "entry");
    let (engine, collect) = start(plan);
    submit(&engine, [0], Admission::Policy);
    gate.wait_entered(1);
    submit(&engine, [1, 2], Admission::Policy);
    let started = Instant::now();
    submit(&engine, [3], Admission::Policy);
    assert!(started.elapsed() >= Duration::from_millis(50), "the sender waited the whole timeout");
    let entry = id(&engine, "entry");
    assert_eq!(collect.ended()[0].outcome, Outcome::Rejected(RejectReason::BlockTimeout { stage: entry }));

    gate.open();
    let summary = engine.shutdown();
    let ended = collect.exactly_once(4);
    let completed: Vec<u64> = ended.iter().filter(|e| e.outcome == Outcome::Completed).map(|e| e.id).collect();
    assert_eq!(completed, vec![0, 1, 2]);
    assert_eq!((summary.ledger.completed, summary.ledger.rejected), (3, 1));
}

#[test]
fn block_lets_the_sender_through_when_room_comes_in_time_in_order() {
    let mut plan = plan(gated(json!({ "capacity": 2, "when_full": "block", "block_timeout_ms": 60000 })));
    let gate = Gate::install(&mut plan, "entry");
    let (engine, collect) = start(plan);
    submit(&engine, [0], Admission::Policy);
    gate.wait_entered(1);
    submit(&engine, [1, 2], Admission::Policy);
    std::thread::scope(|s| {
        s.spawn(|| {
            // The pause is the test's input: the sender most likely waits for room by then (the
            // case the test is about); if not, the same order and endings are owed all the same.
            std::thread::sleep(Duration::from_millis(20));
            gate.open();
        });
        // Blocks until the gate opens; then the 30 go in a part at a time as the worker
        // makes room.
        submit(&engine, 3..=32, Admission::Policy);
    });
    let summary = engine.shutdown();
    assert!(collect.exactly_once(33).iter().all(|e| e.outcome == Outcome::Completed));
    // One worker runs the queue in order: nothing overtook what waited before it.
    assert_eq!(collect.order(), (0..=32).collect::<Vec<u64>>());
    assert_eq!((summary.ledger.completed, summary.ledger.rejected), (33, 0));
}

#[test]
fn delay_completions_reenter_the_stage_wired_after_them() {
    let config = pipeline(
        json!({
            "entry": { "kind": "noop", "pool": "p", "next": "wait" },
            "wait": { "kind": "delay", "pool": "p", "params": { "micros": 2000 }, "next": "split" },
            "split": { "kind": "route", "pool": "p", "params": { "weights": { "a": 1, "b": 1 }, "seed": 3 }, "next": { "a": "a", "b": "b" } },
            "a": { "kind": "respond", "pool": "p", "params": { "status": 201 } },
            "b": { "kind": "respond", "pool": "p", "params": { "status": 202 } }
        }),
        json!({ "p": { "cpus": [two_cpus()[0]] } }),
    );
    let (engine, collect) = start(plan(config));
    let n = 2_000u64;
    submit(&engine, 0..n, Admission::WaitForRoom);
    let summary = engine.shutdown();

    let ended = collect.exactly_once(n);
    for e in &ended {
        assert_eq!(e.outcome, Outcome::Completed);
        // The route's choice: output index by cumulative weight over a hash of the id.
        let expected = if splitmix64(e.id ^ splitmix64(3)) % 2 < 1 { 201 } else { 202 };
        assert_eq!(e.status, expected, "request {}", e.id);
    }
    for stage in ["entry", "wait", "split"] {
        assert_eq!(summary.stages[stage].processed, n, "{stage}");
    }
    // Every request came back from the timer into `split`'s queue.
    assert_eq!(summary.stages["split"].queue_wait_us.count, n);
    assert!(summary.latency_us.p50 >= 2_000.0, "end to end includes the delay: {:?}", summary.latency_us);
    let a = ended.iter().filter(|e| e.status == 201).count() as u64;
    assert_eq!(summary.stages["a"].processed + summary.stages["b"].processed, n);
    assert_eq!(summary.stages["a"].processed, a);
}

#[test]
fn deadline_times_out_requests_waiting_on_a_longer_timer() {
    let mut config = pipeline(
        json!({
            "entry": { "kind": "delay", "pool": "p", "params": { "micros": 10000000 }, "next": "done" },
            "done": { "kind": "respond", "pool": "p" }
        }),
        json!({ "p": { "cpus": [two_cpus()[0]] } }),
    );
    config["deadline_ms"] = json!(30);
    let (engine, collect) = start(plan(config));
    let started = Instant::now();
    submit(&engine, 0..50, Admission::WaitForRoom);
    let done = id(&engine, "done");
    eventually("all 50 to time out", || collect.ended().len() == 50);
    assert!(started.elapsed() >= Duration::from_millis(30));
    assert!(started.elapsed() < Duration::from_secs(10), "the deadline cut the 10 s timer short");
    let summary = engine.shutdown();
    for e in collect.exactly_once(50) {
        assert_eq!(e.outcome, Outcome::TimedOut { stage: done });
    }
    assert_eq!((summary.ledger.timed_out, summary.ledger.completed), (50, 0));
}

#[test]
fn shutdown_times_out_what_outlives_the_drain_timeout() {
    let mut config = pipeline(
        json!({
            "entry": { "kind": "delay", "pool": "p", "params": { "micros": 60000000 }, "next": "done" },
            "done": { "kind": "respond", "pool": "p" }
        }),
        json!({ "p": { "cpus": [two_cpus()[0]] } }),
    );
    config["drain_timeout_ms"] = json!(50);
    let (engine, collect) = start(plan(config));
    submit(&engine, 0..100, Admission::WaitForRoom);
    eventually("all 100 on the timer", || engine.ledger().in_flight == 100 && engine.queue_depth(0) == 0);
    let started = Instant::now();
    let summary = engine.shutdown();
    assert!(started.elapsed() < Duration::from_secs(20));
    let ended = collect.exactly_once(100);
    assert!(ended.iter().all(|e| matches!(e.outcome, Outcome::TimedOut { .. })));
    assert_eq!((summary.ledger.admitted, summary.ledger.timed_out, summary.ledger.in_flight), (100, 100, 0));
}

#[test]
fn requests_after_shutdown_began_are_rejected_not_lost() {
    let mut plan = plan(gated(json!({ "capacity": 64 })));
    let gate = Gate::install(&mut plan, "entry");
    let (engine, collect) = start(plan);
    submit(&engine, [0, 1], Admission::Policy);
    gate.wait_entered(1);
    engine.stop_admitting();
    submit(&engine, [2, 3], Admission::Policy);
    submit(&engine, [4], Admission::WaitForRoom);
    gate.open();
    let summary = engine.shutdown();

    let ended = collect.exactly_once(5);
    let outcomes: Vec<&Outcome> = ended.iter().map(|e| &e.outcome).collect();
    let rejected = Outcome::Rejected(RejectReason::ShuttingDown);
    assert_eq!(outcomes, vec![&Outcome::Completed, &Outcome::Completed, &rejected, &rejected, &rejected]);
    assert_eq!((summary.ledger.admitted, summary.ledger.completed, summary.ledger.rejected), (5, 2, 3));
}

/// Requests completed, as the admin listener shows them, before [`run_stopped_midway`] stops.
pub(crate) const COMPLETED_BEFORE_THE_STOP: u64 = 10_000;

/// A billion requests at `"max"` from a generator placed at `placement`, through a stage on
/// pool `p` (the first allowed CPU) and a 1 us spin on pool `q` (the second), stopped once
/// [`COMPLETED_BEFORE_THE_STOP`] have completed.
pub(crate) fn run_stopped_midway(placement: &str) -> seda::metrics::Summary {
    let config = json!({
        "name": "stop-midway",
        "admin": { "listen": "127.0.0.1:0" },
        "source": {
            "kind": "generator", "placement": placement, "requests": 1_000_000_000u64, "rate": "max", "entry": "a"
        },
        "pools": { "p": { "cpus": [two_cpus()[0]] }, "q": { "cpus": [two_cpus()[1]] } },
        "stages": {
            "a": { "kind": "noop", "pool": "p", "next": "b" },
            "b": {
                "kind": "spin", "pool": "q", "params": { "micros": 1 }, "next": "c",
                "queue": { "when_full": "block", "block_timeout_ms": 60000 }
            },
            "c": { "kind": "respond", "pool": "q" }
        }
    });
    let stop = AtomicBool::new(false);
    let (admin_tx, admin_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let stop = &stop;
        s.spawn(move || {
            // Stops the run however this thread ends, a failed wait included.
            struct StopOnDrop<'a>(&'a AtomicBool);
            impl Drop for StopOnDrop<'_> {
                fn drop(&mut self) {
                    self.0.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            }
            let _stop = StopOnDrop(stop);
            let admin = admin_rx.recv().expect("the admin listener's address");
            eventually("requests to complete", || {
                crate::admin::stats(admin).ledger.completed >= COMPLETED_BEFORE_THE_STOP
            });
        });
        let told = |at| {
            if let seda::run::Listening::Admin(addr) = at {
                admin_tx.send(addr).unwrap();
            }
        };
        seda::run::Runner::new(plan(config)).stop_on(stop).on_listening(told).run_to_end().unwrap().summary
    })
}

#[test]
fn generator_run_stopped_midway_drains_and_counts_every_request() {
    let summary = run_stopped_midway("thread");
    let l = summary.ledger;
    assert!(l.admitted >= COMPLETED_BEFORE_THE_STOP && l.admitted < 1_000_000_000);
    assert_eq!(l.in_flight, 0);
    assert_eq!(l.completed + l.rejected + l.failed + l.timed_out, l.admitted);
    assert_eq!(l.completed, l.admitted, "nothing was rejected: the generator waits for room");
    assert_eq!(summary.stages["a"].processed, l.admitted);
    assert_eq!(summary.latency_us.count, l.completed);
}

#[test]
fn ledger_readings_never_show_more_endings_than_admissions() {
    let config = pipeline(
        json!({
            "entry": { "kind": "noop", "pool": "p", "next": "done" },
            "done": { "kind": "respond", "pool": "q", "queue": { "when_full": "block", "block_timeout_ms": 60000 } }
        }),
        json!({ "p": { "cpus": [two_cpus()[0]] }, "q": { "cpus": [two_cpus()[1]] } }),
    );
    let (engine, collect) = start(plan(config));
    std::thread::scope(|s| {
        let engine = &engine;
        s.spawn(move || {
            for chunk in (0..50_000u64).collect::<Vec<_>>().chunks(500) {
                submit(engine, chunk.iter().copied(), Admission::WaitForRoom);
            }
        });
        // Readings taken while requests flow: `counts` asserts (in debug builds) that no
        // ending is seen before its admission.
        for _ in 0..2_000 {
            let l = engine.ledger();
            assert_eq!(l.completed + l.rejected + l.failed + l.timed_out + l.in_flight, l.admitted);
        }
    });
    let summary = engine.shutdown();
    collect.exactly_once(50_000);
    assert_eq!((summary.ledger.completed, summary.ledger.in_flight), (50_000, 0));
}

#[test]
fn workers_run_on_their_configured_cpus() {
    let [a, b] = two_cpus();
    let config = pipeline(
        json!({
            "entry": { "kind": "noop", "pool": "zero", "next": "mid" },
            "mid": { "kind": "noop", "pool": "one", "next": "done" },
            "done": { "kind": "respond", "cpus": [b, a] }
        }),
        json!({ "zero": { "cpus": [a] }, "one": { "cpus": [b] } }),
    );
    let (engine, _) = start(plan(config));
    let placed: Vec<(String, usize, usize, String)> =
        engine.workers().iter().map(|w| (w.pool.clone(), w.index, w.cpu, w.allowed_cpus.clone())).collect();
    assert_eq!(
        placed,
        vec![
            ("done".to_string(), 0, b, b.to_string()),
            ("done".to_string(), 1, a, a.to_string()),
            ("one".to_string(), 0, b, b.to_string()),
            ("zero".to_string(), 0, a, a.to_string()),
        ]
    );
    engine.shutdown();
}

/// One worker, its generator on a thread of its own, `requests` through `stages`.
fn timed_run(requests: u64, stages: Value) -> seda::metrics::Summary {
    let config = json!({
        "name": "timed",
        "source": { "kind": "generator", "requests": requests, "rate": "max", "entry": "s1", "cpu": two_cpus()[1] },
        "pools": { "main": { "cpus": [two_cpus()[0]] } },
        "stages": stages,
    });
    seda::run::Runner::new(plan(config)).run_to_end().unwrap().summary
}

#[test]
fn slow_stages_are_timed_on_every_request() {
    // 50 us of spin against a few clock readings of some 13 ns: well under the clock's 1%.
    let summary = timed_run(
        300,
        json!({
            "s1": { "kind": "spin", "pool": "main", "params": { "micros": 50 }, "next": "s2" },
            "s2": { "kind": "respond", "pool": "main" }
        }),
    );
    for stage in ["s1", "s2"] {
        let s = &summary.stages[stage];
        assert_eq!((s.processed, s.service_us.count), (300, 300), "{stage}");
    }
    let (spin, respond) = (&summary.stages["s1"].service_us, &summary.stages["s2"].service_us);
    // The spin is timed at its 50 us or more, and the respond stage, which does next to
    // nothing, well under it (where a `p50 >= 0.0` for it could not fail).
    assert!(spin.p50 >= 50.0, "the spin: {spin:?}");
    assert!(respond.p50 < spin.p50 / 2.0, "respond {respond:?}, spin {spin:?}");
}

#[test]
fn sampled_service_times_count_every_request_up_to_the_last_sample() {
    let n = 100_000;
    let summary = timed_run(
        n,
        json!({
            "s1": { "kind": "noop", "pool": "main", "next": "s2" },
            "s2": { "kind": "noop", "pool": "main", "next": "s3" },
            "s3": { "kind": "respond", "pool": "main" }
        }),
    );
    // Each sample weighs the requests since the previous one, so only those after the last
    // sample (fewer than `stage_timing_every`, 32) go uncounted.
    for stage in ["s1", "s2", "s3"] {
        let s = &summary.stages[stage];
        assert_eq!(s.processed, n, "{stage}");
        assert!((n - 31..=n).contains(&s.service_us.count), "{stage}: {} of {n}", s.service_us.count);
    }
}

/// A `route` sending half of its visits back to the stage before it, on `pools`: the entry and
/// the route on pool `loop_pool`, `respond` on `exit_pool`.
fn looping_route(weights: Value, loop_pool: &str, exit_pool: &str) -> Value {
    let mut config = pipeline(
        json!({
            "entry": { "kind": "noop", "pool": loop_pool, "next": "choose" },
            "choose": { "kind": "route", "pool": loop_pool, "params": { "weights": weights },
                        "next": { "back": "entry", "out": "done" } },
            "done": { "kind": "respond", "pool": exit_pool }
        }),
        json!({ "a": { "cpus": [two_cpus()[0]] }, "b": { "cpus": [two_cpus()[1]] } }),
    );
    if loop_pool == exit_pool {
        config["pools"].as_object_mut().unwrap().retain(|name, _| name == loop_pool);
    }
    config["drain_timeout_ms"] = json!(2_000);
    config
}

#[test]
fn a_request_that_loops_back_through_a_route_draws_afresh_and_leaves() {
    // Half of the visits go back. With a draw fixed per request id, the half of the requests
    // that went back once went back forever and ended only at the drain timeout, timed out.
    for (loop_pool, exit_pool) in [("a", "b"), ("a", "a")] {
        let (engine, collect) = start(plan(looping_route(json!({ "back": 1, "out": 1 }), loop_pool, exit_pool)));
        submit(&engine, 0..1_000, Admission::WaitForRoom);
        eventually("every request to leave the loop", || engine.ledger().completed == 1_000);
        let summary = engine.shutdown();
        let l = summary.ledger;
        assert_eq!((l.admitted, l.completed, l.timed_out, l.in_flight), (1_000, 1_000, 0, 0), "{loop_pool}");
        assert_eq!(collect.exactly_once(1_000).len(), 1_000);
        let visits = summary.stages["choose"].processed;
        assert!(visits > 1_000, "some requests went round the loop: {visits} visits");
    }
}

#[test]
fn a_request_looping_within_one_worker_is_timed_out_at_the_drain_timeout() {
    // Every visit goes back (`out` has weight 0): the request never leaves the worker that
    // runs the entry and the route in a row, so it never reaches a queue again. Shutdown
    // must still end it when the drain timeout passes.
    let mut config = looping_route(json!({ "back": 1, "out": 0 }), "a", "b");
    config["drain_timeout_ms"] = json!(100);
    let (engine, collect) = start(plan(config));
    submit(&engine, 0..3, Admission::WaitForRoom);
    let queued = |e: &seda::engine::Engine| e.queue_depth(id(e, "entry")) + e.queue_depth(id(e, "choose"));
    eventually("the requests to be looping", || engine.ledger().in_flight == 3 && queued(&engine) == 0);
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let summary = engine.shutdown();
        let _ = done.send(summary);
    });
    // Far more than the 100 ms drain timeout, on a loaded machine; without the fix, never.
    let summary = ended.recv_timeout(Duration::from_secs(20)).expect("shutdown ends");
    let l = summary.ledger;
    assert_eq!((l.admitted, l.timed_out, l.completed, l.in_flight), (3, 3, 0, 0));
    let ended = collect.exactly_once(3);
    assert!(ended.iter().all(|e| matches!(e.outcome, Outcome::TimedOut { .. })), "{ended:?}");
}

/// A handler that never returns (until the test lets it go) cannot hold a run past its drain
/// timeout and a second: the run ends without a summary, saying how many requests were held.
#[test]
fn a_stage_that_never_returns_cannot_hold_the_run_past_the_drain_timeout() {
    use std::sync::atomic::Ordering;
    use std::sync::Arc;

    use seda::stages::{Outputs, Request, Stage, StageFactory, Step};

    struct Stuck(Arc<AtomicBool>, Arc<AtomicBool>);
    impl StageFactory for Stuck {
        fn outputs(&self) -> Outputs {
            Outputs::Single
        }
        fn instance(&self, _worker: usize) -> Box<dyn Stage> {
            Box::new(Stuck(self.0.clone(), self.1.clone()))
        }
    }
    impl Stage for Stuck {
        fn handle(&mut self, _req: &mut Request) -> Step {
            self.0.store(true, Ordering::SeqCst);
            while !self.1.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            Step::Next(seda::stages::Output::NEXT)
        }
    }

    let mut plan = plan(json!({
        "name": "stuck",
        "drain_timeout_ms": 200,
        "source": { "kind": "generator", "requests": 10, "rate": 1000, "entry": "hold" },
        "stages": {
            "hold": { "kind": "noop", "next": "done" },
            "done": { "kind": "respond" }
        }
    }));
    let (entered, release) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let hold = plan.stage("hold").unwrap();
    plan.stages[hold].factory = Arc::new(Stuck(entered.clone(), release.clone()));
    let stop = Arc::new(AtomicBool::new(false));
    let (done, ended) = std::sync::mpsc::channel();
    let flag = stop.clone();
    std::thread::spawn(move || {
        let _ = done.send(seda::run::Runner::new(plan).stop_on(&flag).run_to_end().map(|f| f.summary.ledger));
    });
    eventually("a request to enter the stage that never returns", || entered.load(Ordering::SeqCst));
    let stopped = Instant::now();
    stop.store(true, Ordering::SeqCst);
    // Without the bound the run waits for the handler for good; 20 s is far past 0.2 s + 1 s.
    let result = ended.recv_timeout(Duration::from_secs(20)).expect("the run ends");
    let took = stopped.elapsed();
    release.store(true, Ordering::SeqCst);
    match result {
        Err(seda::run::RunError::Stuck { in_flight, .. }) => assert!(in_flight >= 1, "{in_flight}"),
        other => panic!("expected the run to end as stuck, got {:?}", other.map(|l| l.in_flight)),
    }
    assert!(took >= Duration::from_millis(1200), "it waited the drain timeout and a second: {took:?}");
}

#[test]
fn a_pool_told_to_spin_spins_that_long_each_time_it_runs_out_of_work_and_others_sleep_at_once() {
    let [a, b] = two_cpus();
    let config = pipeline(
        json!({
            "entry": { "kind": "noop", "pool": "spinning", "next": "done" },
            "done": { "kind": "respond", "pool": "sleeping" }
        }),
        json!({ "spinning": { "cpus": [a], "idle_spin_us": 2000 }, "sleeping": { "cpus": [b] } }),
    );
    let (engine, collect) = start(plan(config));
    // Ten requests 10 ms apart: each gap outlasts the 2 ms spin, after which the worker sleeps,
    // having spun the 2 ms (however late a loaded machine lets it look again). The other
    // pool's gaps are as long, far past what a sleep costs: it never spins.
    for i in 0..10u64 {
        submit(&engine, [i], Admission::WaitForRoom);
        eventually("the request ends", || collect.ended().len() as u64 == i + 1);
        std::thread::sleep(Duration::from_millis(10));
    }
    let spun = |pool: &str| engine.snapshot().pools.iter().find(|p| p.name == pool).unwrap().idle_spin_s;
    eventually("the spinning pool publishes ten spins of 2 ms", || spun("spinning") >= 0.020);
    assert_eq!(spun("sleeping"), 0.0);
    engine.shutdown();
}
