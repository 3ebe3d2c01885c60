//! The cost of a hop: the same K-stage no-op pipeline (K-1 `noop` stages, then `respond`), run
//! side by side through five shapes, for K = 1, 2, 4:
//!
//! - (a) the seda engine, all stages on one pool of two workers pinned to CPUs 0 and 1, with
//!   the generator in the workers (`"placement": "workers"`: thread per core, no hand-off);
//! - (b) the seda engine, a dedicated one-thread pool per stage, on CPUs 0, 1, 0, 1, ..., with
//!   the generator on a thread of its own on CPU 1, as (c) has it;
//! - (c) a thread per stage, joined by bounded crossbeam channels, pinned as (b);
//! - (d) a tokio task per stage, joined by bounded tokio mpsc channels, on 2 worker threads;
//! - (e) plain function calls on one thread: the limit;
//! - (a'): (a) with the generator on a thread of its own, pinned to CPU 1, handing requests over
//!   as the rivals' generators do, and one worker, on CPU 0;
//! - (b'): (b) with the generator in the first stage's worker (`"placement": "workers"`).
//!
//! Where the generator sits decides, for pipelines of stages that do not read the request,
//! whether a request's cache lines cross between the CPUs: made and ended on one CPU ((b), (c):
//! the generator beside the last stage), only the pointer travels; made on CPU 0 and ended on
//! CPU 1 ((b')), its first line crosses there and back, and on this VM's slow phases that
//! halves (b') while (b) and (c) hold.
//!
//! Every shape calls the same stage code (`seda::stages::Registry`) with the same 64-byte requests,
//! recycled through a bounded pool as the engine's generator recycles its own. The generator is
//! pinned to CPU 1 wherever it is a thread of its own.
//!
//! (a) uses both CPUs where (e) uses one: a pool of two workers that each make, run and recycle
//! requests is what a thread-per-core engine is; (e) stays the one-thread limit the targets name.
//!
//! Protocol: rounds interleave the shapes (every shape and K in round 1, then round 2, ...),
//! each shape's median over the rounds is quoted, and ratios are taken between medians. Then
//! open-loop runs of (a) and (a') at K = 4 report end-to-end latency. `--quick` runs one short round.
//!
//! Run with `cargo bench --bench pipeline [-- --quick]`; see `benches/README.md`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use serde_json::{json, Map, Value};

use seda::metrics::Summary;
use seda::stages::{Request, Stage, Step};

/// Stage counts, in the order the table shows them.
const KS: [usize; 3] = [1, 2, 4];
/// The K the targets are judged at.
const TARGET_K: usize = 4;
/// Every queue and channel between two stages holds this many requests.
const QUEUE_CAPACITY: usize = 4096;
const PAYLOAD_BYTES: usize = 64;
/// The generator's CPU; stages alternate from CPU 0, so with K = 1 they do not share one.
const GENERATOR_CPU: usize = 1;
/// Finished requests kept for reuse, as many as the engine's generator keeps.
const RECYCLE_CAPACITY: usize = 1 << 16;
/// The open-loop run's offered load, requests per second.
const OPEN_LOOP_RATE: u64 = 500_000;
const OPEN_LOOP_P999_TARGET_US: f64 = 100.0;
/// An engine run taking longer than this (a healthy one takes about 0.5 s; the open loop 2 s) is
/// stopped, so that one pathological run cannot stall the bench; its throughput then counts
/// what completed before the stop.
const ENGINE_RUN_LIMIT: Duration = Duration::from_secs(10);

/// How big a run is: `--quick` for a smoke run, else the full measurement.
struct Options {
    rounds: usize,
    /// Requests per closed-loop run (scaled per shape by [`Shape::requests`]).
    requests: u64,
    open_loop_requests: u64,
}

impl Options {
    fn from_args() -> Self {
        // cargo bench passes `--bench` too; anything but `--quick` and `--rounds N` is ignored.
        let args: Vec<String> = std::env::args().collect();
        let mut options = if args.iter().any(|a| a == "--quick") {
            Options { rounds: 1, requests: 200_000, open_loop_requests: 200_000 }
        } else {
            Options { rounds: 3, requests: 2_000_000, open_loop_requests: 1_000_000 }
        };
        if let Some(n) = args.iter().position(|a| a == "--rounds").and_then(|i| args.get(i + 1)) {
            options.rounds = n.parse().expect("--rounds takes a whole number");
        }
        options
    }
}

/// One way to run a K-stage pipeline: the engine, or one of its rivals.
trait Shape {
    fn name(&self) -> &str;

    /// Runs `requests` requests through `k` stages to completion; returns requests per second.
    fn run(&self, k: usize, requests: u64) -> f64;

    /// Requests per run, from the base count: slow shapes take fewer, to keep the bench short.
    fn requests(&self, base: u64) -> u64 {
        base
    }
}

fn main() {
    let options = Options::from_args();
    let shapes: Vec<Box<dyn Shape>> = vec![
        Box::new(Seda { name: "(a) seda, one pool", placement: ONE_POOL }),
        Box::new(Seda { name: "(b) seda, pool per stage", placement: POOL_PER_STAGE_SOURCE_THREAD }),
        Box::new(CrossbeamThreads),
        Box::new(TokioTasks),
        Box::new(Inline),
        Box::new(Seda { name: "(a') one pool, gen. thread", placement: ONE_POOL_SOURCE_THREAD }),
        Box::new(Seda { name: "(b') per stage, gen. in s1", placement: POOL_PER_STAGE }),
    ];

    println!(
        "pipeline bench: K stages (K-1 noop + respond), {PAYLOAD_BYTES}-byte payloads, \
         queues/channels of {QUEUE_CAPACITY}"
    );
    println!("{} round(s), shapes interleaved; medians quoted, ratios from medians", options.rounds);
    println!(
        "rivals' requests: Box<Request>, recycled through a bounded pool (ArrayQueue of {RECYCLE_CAPACITY}) \
         like the engine's generator"
    );
    println!(
        "CPUs: (a) pool on 0,1, generator in its workers; (b), (b'), (c) stages on 0,1,0,1, (b')'s \
         generator in s1's worker; (d) 2 unpinned tokio workers; (e) one thread on {GENERATOR_CPU}; \
         generator threads ((a'), (b), (c)) on {GENERATOR_CPU}, (a') pool on 0"
    );
    println!();

    // results[shape][k index] = one throughput per round.
    let mut results = vec![vec![Vec::new(); KS.len()]; shapes.len()];
    let mut open_loop = Vec::new();
    let mut open_loop_thread = Vec::new();
    for round in 1..=options.rounds {
        for (ki, &k) in KS.iter().enumerate() {
            for (si, shape) in shapes.iter().enumerate() {
                let requests = shape.requests(options.requests);
                let rps = shape.run(k, requests);
                println!("round {round}  K={k}  {:<28} {:>9} req  {:>8.3} Mreq/s", shape.name(), requests, rps / 1e6);
                results[si][ki].push(rps);
            }
        }
        for (name, placement, summaries) in
            [("(a)", &ONE_POOL, &mut open_loop), ("(a')", &ONE_POOL_SOURCE_THREAD, &mut open_loop_thread)]
        {
            let summary = seda_open_loop(placement, TARGET_K, options.open_loop_requests, OPEN_LOOP_RATE);
            println!(
                "round {round}  open loop {name} K={TARGET_K} at {OPEN_LOOP_RATE} req/s: p99.9 {:.1} us",
                summary.latency_us.p999
            );
            summaries.push(summary);
        }
    }

    let medians: Vec<Vec<f64>> =
        results.iter().map(|per_k| per_k.iter().map(|rounds| median(rounds)).collect()).collect();
    print_throughput(&shapes, &results, &medians);
    print_ratios(&medians);
    let open_loop_p999 = print_open_loop("(a)", &open_loop, options.open_loop_requests);
    print_open_loop("(a')", &open_loop_thread, options.open_loop_requests);
    print_targets(&medians, open_loop_p999);
}

// ---------------------------------------------------------------------------------------------
// (a), (b): the seda engine

struct Placement {
    /// Every stage on the pool `main`, with a worker on each of these CPUs; else (`None`) each
    /// stage gets a dedicated one-thread pool, CPUs alternating from 0.
    one_pool: Option<&'static [usize]>,
    /// The generator runs in the entry pool's workers; else on a thread pinned to CPU 1.
    source_in_workers: bool,
}

const ONE_POOL: Placement = Placement { one_pool: Some(&[0, 1]), source_in_workers: true };
const POOL_PER_STAGE: Placement = Placement { one_pool: None, source_in_workers: true };
const ONE_POOL_SOURCE_THREAD: Placement = Placement { one_pool: Some(&[0]), source_in_workers: false };
const POOL_PER_STAGE_SOURCE_THREAD: Placement = Placement { one_pool: None, source_in_workers: false };

struct Seda {
    name: &'static str,
    placement: Placement,
}

impl Shape for Seda {
    fn name(&self) -> &str {
        self.name
    }

    fn run(&self, k: usize, requests: u64) -> f64 {
        let summary = run_engine(&self.placement, k, requests, json!("max"), "block");
        if summary.ledger.completed != requests {
            // Only completions count towards throughput; say so rather than abort the bench.
            println!(
                "  note: {} K={k}: {} of {requests} completed: {:?}",
                self.name, summary.ledger.completed, summary.ledger
            );
        }
        summary.throughput_rps
    }
}

/// One pool at a fixed offered load, for its end-to-end latency. Queues keep the default
/// policy, `reject`: a request that finds the entry full is counted as rejected, not delayed.
fn seda_open_loop(placement: &Placement, k: usize, requests: u64, rate: u64) -> Summary {
    run_engine(placement, k, requests, json!(rate), "reject")
}

/// Runs the engine with its own generator. `when_full` is every queue's policy: the closed-loop
/// runs use `block`, which is what the rivals' bounded channels do; with the default `reject` a
/// stage handing over to a full queue on another pool would drop requests.
fn run_engine(placement: &Placement, k: usize, requests: u64, rate: Value, when_full: &str) -> Summary {
    let config = engine_config(placement, k, requests, rate, when_full);
    let plan = seda::config::load_str(&config.to_string())
        .unwrap_or_else(|e| panic!("the bench's config is valid: {e}\n{config:#}"));
    let stop = AtomicBool::new(false);
    thread::scope(|scope| {
        let (done, watchdog) = mpsc::channel::<()>();
        let stop = &stop;
        scope.spawn(move || {
            if watchdog.recv_timeout(ENGINE_RUN_LIMIT) == Err(RecvTimeoutError::Timeout) {
                println!("  note: stopping the engine at the {ENGINE_RUN_LIMIT:?} limit");
                stop.store(true, Ordering::Relaxed);
            }
        });
        let summary = seda::run::Runner::new(plan)
            .stop_on(stop)
            .run_to_end()
            .unwrap_or_else(|e| panic!("the engine starts: {e}"))
            .summary;
        drop(done);
        summary
    })
}

fn engine_config(placement: &Placement, k: usize, requests: u64, rate: Value, when_full: &str) -> Value {
    let mut stages = Map::new();
    for (i, kind) in stage_kinds(k).enumerate() {
        let mut stage = json!({ "kind": kind, "queue": { "capacity": QUEUE_CAPACITY, "when_full": when_full },
        });
        if i + 1 < k {
            stage["next"] = json!(stage_name(i + 1));
        }
        match placement.one_pool {
            Some(_) => stage["pool"] = json!("main"),
            None => stage["cpus"] = json!([stage_cpu(i)]),
        }
        stages.insert(stage_name(i), stage);
    }
    let mut config = json!({
        "name": format!("noop{k}"),
        "source": {
            "kind": "generator",
            "requests": requests,
            "rate": rate,
            "payload_bytes": PAYLOAD_BYTES,
            "entry": stage_name(0),
        },
        "stages": stages,
    });
    if placement.source_in_workers {
        config["source"]["placement"] = json!("workers");
    } else {
        config["source"]["cpu"] = json!(GENERATOR_CPU);
    }
    if let Some(cpus) = placement.one_pool {
        config["pools"] = json!({ "main": { "cpus": cpus } });
    }
    config
}

fn stage_name(i: usize) -> String {
    format!("s{}", i + 1)
}

// ---------------------------------------------------------------------------------------------
// (c): a thread per stage, crossbeam channels

struct CrossbeamThreads;

impl Shape for CrossbeamThreads {
    fn name(&self) -> &str {
        "(c) threads + crossbeam"
    }

    fn run(&self, k: usize, requests: u64) -> f64 {
        let recycler = Recycler::new();
        let (entry, links) = chain_links(k, || crossbeam_channel::bounded::<Box<Request>>(QUEUE_CAPACITY));
        thread::scope(|scope| {
            let mut last = None;
            for (i, (mut stage, (rx, tx))) in stage_chain(k).into_iter().zip(links).enumerate() {
                let recycler = &recycler;
                last = Some(scope.spawn(move || {
                    pin(stage_cpu(i));
                    let mut completed = 0u64;
                    for mut req in rx {
                        if passes_on(stage.as_mut(), &mut req) {
                            let tx = tx.as_ref().expect("a passing stage has a successor");
                            tx.send(req).expect("the next stage outlives this one");
                        } else {
                            completed += 1;
                            recycler.give(req);
                        }
                    }
                    completed
                }));
            }

            let start = Instant::now();
            let recycler = &recycler;
            scope.spawn(move || {
                pin(GENERATOR_CPU);
                for id in 0..requests {
                    entry.send(recycler.take(id)).expect("the first stage outlives the generator");
                }
            });
            let completed = last.expect("k >= 1").join().expect("stages do not panic");
            let elapsed = start.elapsed().as_secs_f64();
            assert_eq!(completed, requests, "(c) completes every request");
            requests as f64 / elapsed
        })
    }

    fn requests(&self, base: u64) -> u64 {
        // Some 3x faster than the engine: more requests, for a run about as long.
        base * 4
    }
}

// ---------------------------------------------------------------------------------------------
// (d): a tokio task per stage, tokio mpsc channels

struct TokioTasks;

impl Shape for TokioTasks {
    fn name(&self) -> &str {
        "(d) tokio tasks + mpsc"
    }

    fn run(&self, k: usize, requests: u64) -> f64 {
        let runtime =
            tokio::runtime::Builder::new_multi_thread().worker_threads(2).build().expect("a tokio runtime starts");
        let recycler = Arc::new(Recycler::new());
        runtime.block_on(async move {
            let (entry, links) = chain_links(k, || tokio::sync::mpsc::channel::<Box<Request>>(QUEUE_CAPACITY));
            let mut last = None;
            for (mut stage, (mut stage_rx, tx)) in stage_chain(k).into_iter().zip(links) {
                let recycler = recycler.clone();
                last = Some(tokio::spawn(async move {
                    let mut completed = 0u64;
                    while let Some(mut req) = stage_rx.recv().await {
                        if passes_on(stage.as_mut(), &mut req) {
                            let tx = tx.as_ref().expect("a passing stage has a successor");
                            tx.send(req).await.expect("the next stage outlives this one");
                        } else {
                            completed += 1;
                            recycler.give(req);
                        }
                    }
                    completed
                }));
            }

            let start = Instant::now();
            let generator_recycler = recycler.clone();
            tokio::spawn(async move {
                for id in 0..requests {
                    entry.send(generator_recycler.take(id)).await.expect("the first stage outlives the generator");
                }
            });
            let completed = last.expect("k >= 1").await.expect("stages do not panic");
            let elapsed = start.elapsed().as_secs_f64();
            assert_eq!(completed, requests, "(d) completes every request");
            requests as f64 / elapsed
        })
    }
}

// ---------------------------------------------------------------------------------------------
// (e): inline calls, the limit

struct Inline;

impl Shape for Inline {
    fn name(&self) -> &str {
        "(e) inline calls"
    }

    fn run(&self, k: usize, requests: u64) -> f64 {
        // A thread of its own, so that pinning it leaves the main thread's affinity alone (threads
        // spawned later would inherit it).
        thread::scope(|scope| {
            scope
                .spawn(|| {
                    pin(GENERATOR_CPU);
                    let recycler = Recycler::new();
                    let mut stages = stage_chain(k);
                    let start = Instant::now();
                    for id in 0..requests {
                        let mut req = recycler.take(id);
                        for stage in stages.iter_mut() {
                            if !passes_on(stage.as_mut(), &mut req) {
                                break;
                            }
                        }
                        recycler.give(req);
                    }
                    requests as f64 / start.elapsed().as_secs_f64()
                })
                .join()
                .expect("inline run does not panic")
        })
    }

    fn requests(&self, base: u64) -> u64 {
        // Some 15x faster than the engine: a run at the base count is too short to time steadily.
        base * 10
    }
}

// ---------------------------------------------------------------------------------------------
// What the rivals share

/// The kinds of a K-stage pipeline: K-1 `noop`, then the terminal `respond`.
fn stage_kinds(k: usize) -> impl Iterator<Item = &'static str> {
    assert!(k >= 1, "a pipeline has a stage");
    (0..k).map(move |i| if i + 1 < k { "noop" } else { "respond" })
}

/// One instance of each stage, built as the engine builds them.
fn stage_chain(k: usize) -> Vec<Box<dyn Stage>> {
    stage_kinds(k)
        .map(|kind| {
            seda::stages::Registry::builtin()
                .build(kind, &Value::Null)
                .unwrap_or_else(|e| panic!("stage kind `{kind}` builds: {e}"))
                .instance(0)
        })
        .collect()
}

/// Wires K stages with K channels from `channel`: returns the entry (the first channel's
/// sender) and, per stage, its receiver and its successor's sender (none for the last stage).
fn chain_links<S, R>(k: usize, channel: impl Fn() -> (S, R)) -> (S, impl Iterator<Item = (R, Option<S>)>) {
    let (senders, receivers): (Vec<S>, Vec<R>) = (0..k).map(|_| channel()).unzip();
    let mut senders = senders.into_iter();
    let entry = senders.next().expect("k >= 1");
    let successors = senders.map(Some).chain(std::iter::once(None));
    (entry, receivers.into_iter().zip(successors))
}

/// CPU of stage `i`: 0, 1, 0, 1, ...
fn stage_cpu(i: usize) -> usize {
    i % 2
}

fn pin(cpu: usize) {
    assert!(core_affinity::set_for_current(core_affinity::CoreId { id: cpu }), "cannot pin to CPU {cpu}");
}

/// Runs `stage` on `req`: whether the request goes on (`true`) or has ended (`false`).
#[inline]
fn passes_on(stage: &mut dyn Stage, req: &mut Request) -> bool {
    match stage.handle(req) {
        Step::Next(_) => true,
        Step::Respond => false,
        other => panic!("a no-op pipeline stage returned {other:?}"),
    }
}

/// Finished requests kept for reuse, the way the engine's generator keeps its envelopes: a
/// steady run does not allocate.
struct Recycler(ArrayQueue<Box<Request>>);

impl Recycler {
    fn new() -> Self {
        Recycler(ArrayQueue::new(RECYCLE_CAPACITY))
    }

    /// Request `id`: a finished one reset, or a new one.
    fn take(&self, id: u64) -> Box<Request> {
        let mut req = self.0.pop().unwrap_or_default();
        req.reset(id);
        if req.payload.len() != PAYLOAD_BYTES {
            req.payload.resize(PAYLOAD_BYTES, 0xa5);
        }
        req
    }

    fn give(&self, req: Box<Request>) {
        // A full bin frees the request, as the engine's does.
        let _ = self.0.push(req);
    }
}

// ---------------------------------------------------------------------------------------------
// Reporting

fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn ns_per_hop(rps: f64, k: usize) -> f64 {
    1e9 / (rps * k as f64)
}

fn print_throughput(shapes: &[Box<dyn Shape>], results: &[Vec<Vec<f64>>], medians: &[Vec<f64>]) {
    println!();
    println!("throughput (median of rounds; ns/hop = wall time per request per stage)");
    println!("{:<28} {:>2} {:>14} {:>9}   rounds Mreq/s", "shape", "K", "median Mreq/s", "ns/hop");
    for (ki, &k) in KS.iter().enumerate() {
        for (si, shape) in shapes.iter().enumerate() {
            let m = medians[si][ki];
            let rounds: Vec<String> = results[si][ki].iter().map(|r| format!("{:.3}", r / 1e6)).collect();
            println!(
                "{:<28} {:>2} {:>14.3} {:>9.1}   {}",
                shape.name(),
                k,
                m / 1e6,
                ns_per_hop(m, k),
                rounds.join(" ")
            );
        }
    }
}

/// Shape indexes in `medians`, in the order `main` lists them.
const A: usize = 0;
const B: usize = 1;
const C: usize = 2;
const D: usize = 3;
const E: usize = 4;
const A_THREAD: usize = 5;
const B_THREAD: usize = 6;

fn print_ratios(medians: &[Vec<f64>]) {
    println!();
    println!("ratios of medians (throughput)");
    println!(
        "{:>2} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "K", "(a)/(c)", "(a)/(d)", "(a)/(e)", "(b)/(c)", "(a')/(c)", "(b')/(c)"
    );
    for (ki, &k) in KS.iter().enumerate() {
        let r = |x: usize, y: usize| medians[x][ki] / medians[y][ki];
        println!(
            "{:>2} {:>8.2}x {:>8.2}x {:>8.2}x {:>8.2}x {:>8.2}x {:>8.2}x",
            k,
            r(A, C),
            r(A, D),
            r(A, E),
            r(B, C),
            r(A_THREAD, C),
            r(B_THREAD, C)
        );
    }
}

/// Prints every open-loop round; returns the median p99.9, in microseconds.
fn print_open_loop(name: &str, summaries: &[Summary], requests: u64) -> f64 {
    println!();
    println!("open loop: {name} K={TARGET_K}, {requests} requests at {OPEN_LOOP_RATE} req/s; end-to-end latency (us)");
    println!(
        "{:<7} {:>10} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}",
        "round", "completed", "rejected", "Mreq/s", "p50", "p99", "p99.9", "max"
    );
    for (i, s) in summaries.iter().enumerate() {
        println!(
            "{:<7} {:>10} {:>9} {:>9.3} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
            i + 1,
            s.ledger.completed,
            s.ledger.rejected,
            s.throughput_rps / 1e6,
            s.latency_us.p50,
            s.latency_us.p99,
            s.latency_us.p999,
            s.latency_us.max
        );
    }
    let of = |f: fn(&Summary) -> f64| median(&summaries.iter().map(f).collect::<Vec<_>>());
    println!(
        "{:<7} {:>10} {:>9} {:>9} {:>9.1} {:>9.1} {:>9.1} {:>9.1}",
        "median",
        "",
        "",
        "",
        of(|s| s.latency_us.p50),
        of(|s| s.latency_us.p99),
        of(|s| s.latency_us.p999),
        of(|s| s.latency_us.max)
    );
    of(|s| s.latency_us.p999)
}

fn print_targets(medians: &[Vec<f64>], open_loop_p999: f64) {
    let ki = KS.iter().position(|&k| k == TARGET_K).expect("the target K is measured");
    let ratio = |x: usize, y: usize| medians[x][ki] / medians[y][ki];
    let verdict = |pass: bool| if pass { "PASS" } else { "FAIL" };
    println!();
    println!("targets (K={TARGET_K}, from medians)");
    for (what, got, want) in [
        ("(a) >= 2.5x (c)", ratio(A, C), 2.5),
        ("(a) >= 3.0x (d)", ratio(A, D), 3.0),
        ("(a) >= 0.3x (e)", ratio(A, E), 0.3),
        ("(b) >= 1.0x (c)", ratio(B, C), 1.0),
    ] {
        println!("{:<34} {:>8.2}x   {}", what, got, verdict(got >= want));
    }
    println!(
        "{:<34} {:>7.1}us   {}",
        format!("open loop p99.9 <= {OPEN_LOOP_P999_TARGET_US} us"),
        open_loop_p999,
        verdict(open_loop_p999 <= OPEN_LOOP_P999_TARGET_US)
    );
}
