//! A config that validates also runs and stops cleanly: the example pipelines, their numbers
//! redrawn at random anywhere in (and past) the ranges validation allows, are validated; each
//! one that validates is run, stopped shortly after it starts, and must end with an exact
//! ledger and nothing in flight. A config that validates and then aborts, hangs or loses a
//! request fails here.
//!
//! The draws are seeded: `SEDA_PROPTEST_SEED` replays a failure (the seed is printed with it).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestCaseError, TestRng, TestRunner};
use serde_json::Value;

/// The example pipelines whose source is the generator (the HTTP ones are run elsewhere).
const CONFIGS: [&str; 7] = [
    "configs/branching.json",
    "configs/compute.json",
    "configs/faults.json",
    "configs/noop4.json",
    "configs/noop4_dedicated.json",
    "configs/noop4_workers.json",
    "configs/timers.json",
];

/// One redrawn number: where in the config, and the value.
#[derive(Debug, Clone)]
enum Edit {
    Requests(u64),
    Rate(f64),
    Payload(u64),
    DrainTimeout(u64),
    Deadline(Option<u64>),
    Capacity(usize, u64),
    WhenFull(usize, &'static str),
    Threads(usize, u64),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        (0u64..3_000).prop_map(Edit::Requests),
        prop_oneof![Just(1.0), 10.0..50_000.0f64].prop_map(Edit::Rate),
        (0u64..20_000).prop_map(Edit::Payload),
        (0u64..400).prop_map(Edit::DrainTimeout),
        prop::option::of(0u64..200).prop_map(Edit::Deadline),
        (0usize..8, 0u64..10_000).prop_map(|(s, c)| Edit::Capacity(s, c)),
        (0usize..8, prop_oneof![Just("reject"), Just("block"), Just("drop_oldest")])
            .prop_map(|(s, w)| Edit::WhenFull(s, w)),
        (0usize..8, 0u64..6).prop_map(|(p, t)| Edit::Threads(p, t)),
    ]
}

fn apply(config: &mut Value, edit: &Edit) {
    let nth_key = |object: &Value, i: usize| -> Option<String> {
        let keys: Vec<&String> = object.as_object()?.keys().collect();
        (!keys.is_empty()).then(|| keys[i % keys.len()].clone())
    };
    match *edit {
        Edit::Requests(n) => config["source"]["requests"] = n.into(),
        Edit::Rate(r) => config["source"]["rate"] = r.into(),
        Edit::Payload(n) => config["source"]["payload_bytes"] = n.into(),
        Edit::DrainTimeout(ms) => config["drain_timeout_ms"] = ms.into(),
        Edit::Deadline(Some(ms)) => config["deadline_ms"] = ms.into(),
        Edit::Deadline(None) => drop(config.as_object_mut().unwrap().remove("deadline_ms")),
        Edit::Capacity(s, c) => {
            if let Some(stage) = nth_key(&config["stages"], s) {
                config["stages"][&stage]["queue"]["capacity"] = c.into();
            }
        }
        Edit::WhenFull(s, w) => {
            if let Some(stage) = nth_key(&config["stages"], s) {
                config["stages"][&stage]["queue"]["when_full"] = w.into();
            }
        }
        Edit::Threads(p, t) => {
            if let Some(pool) = nth_key(&config["pools"], p) {
                config["pools"][&pool]["threads"] = t.into();
            }
        }
    }
}

fn seed() -> u64 {
    std::env::var("SEDA_PROPTEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    })
}

#[test]
fn a_config_that_validates_runs_and_stops_with_an_exact_ledger() {
    let seed = seed();
    let mut bytes = [0u8; 32];
    bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let rng = TestRng::from_seed(RngAlgorithm::ChaCha, &bytes);
    let mut runner = TestRunner::new_with_rng(Config { cases: 24, ..Config::default() }, rng);
    let strategy = (0..CONFIGS.len(), prop::collection::vec(edit(), 1..6));
    let ran = std::sync::atomic::AtomicUsize::new(0);
    let result = runner.run(&strategy, |(which, edits)| {
        let mut config: Value = serde_json::from_str(&std::fs::read_to_string(CONFIGS[which]).unwrap()).unwrap();
        crate::support::on_allowed_cpus(&mut config);
        for e in &edits {
            apply(&mut config, e);
        }
        let Ok(plan) = seda::config::validate(&config) else { return Ok(()) };
        ran.fetch_add(1, Ordering::Relaxed);
        let drain = plan.drain_timeout;
        let stop = Arc::new(AtomicBool::new(false));
        let (done, ended) = std::sync::mpsc::channel();
        let flag = stop.clone();
        std::thread::spawn(move || {
            let _ = done.send(seda::run::Runner::new(plan).stop_on(&flag).run_to_end().map(|f| f.summary.ledger));
        });
        // The moment of the stop is the test's input, not a wait for an event: the property is
        // that a stop at any moment ends with an exact ledger. 30 ms puts most of them mid-run.
        std::thread::sleep(Duration::from_millis(30));
        let stopped = Instant::now();
        stop.store(true, Ordering::SeqCst);
        // The bound of a stop is the drain timeout and a second; the rest is a loaded machine.
        let ledger = ended
            .recv_timeout(drain + Duration::from_secs(15))
            .map_err(|_| TestCaseError::fail(format!("{CONFIGS:?}[{which}] with {edits:?}: did not stop")))?
            .map_err(|e| TestCaseError::fail(format!("{}: {edits:?}: {e}", CONFIGS[which])))?;
        let ended_all = ledger.completed + ledger.rejected + ledger.failed + ledger.timed_out;
        prop_assert_eq!(ledger.in_flight, 0, "{}: {:?}: {:?}", CONFIGS[which], edits, ledger);
        prop_assert_eq!(ledger.admitted, ended_all, "{}: {:?}: {:?}", CONFIGS[which], edits, ledger);
        prop_assert!(stopped.elapsed() < drain + Duration::from_secs(15));
        Ok(())
    });
    if let Err(e) = result {
        panic!("a config that validates did not run cleanly; replay with SEDA_PROPTEST_SEED={seed}\n{e}");
    }
    assert!(ran.load(Ordering::Relaxed) > 0, "no drawn config validated: the draws test nothing (seed {seed})");
}
