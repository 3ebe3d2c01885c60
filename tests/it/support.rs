//! Helpers shared by the integration tests: building plans, an origin that records how each
//! request ended, a gate stage that holds a worker until the test opens it, and a `seda run`
//! child process.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use seda::config::Plan;
use seda::engine::{Admission, Engine, Envelope, Origin, Outcome};
use seda::stages::{Output, Outputs, Request, Stage, StageFactory, Step};
use serde_json::Value;

/// A validated plan, or a panic listing the config's errors.
pub fn plan(config: Value) -> Plan {
    seda::config::validate(&config).unwrap_or_else(|e| panic!("{e}"))
}

/// How one request ended, as its origin saw it.
#[derive(Debug, Clone)]
pub struct Ended {
    pub id: u64,
    pub outcome: Outcome,
    pub status: u16,
}

/// An origin that keeps every ending.
#[derive(Default)]
pub struct Collect(Mutex<Vec<Ended>>);

impl Origin for Collect {
    fn finish(&self, env: Box<Envelope>, outcome: &Outcome) {
        let ended = Ended { id: env.req.id, outcome: outcome.clone(), status: env.req.response.status };
        self.0.lock().unwrap().push(ended);
    }
}

impl Collect {
    /// The endings so far, sorted by id.
    pub fn ended(&self) -> Vec<Ended> {
        let mut all = self.0.lock().unwrap().clone();
        all.sort_by_key(|e| e.id);
        all
    }

    /// The ids, in the order their requests ended.
    pub fn order(&self) -> Vec<u64> {
        self.0.lock().unwrap().iter().map(|e| e.id).collect()
    }

    /// Asserts that requests `0..n` each ended exactly once, and returns their endings by id.
    pub fn exactly_once(&self, n: u64) -> Vec<Ended> {
        let all = self.ended();
        let ids: Vec<u64> = all.iter().map(|e| e.id).collect();
        assert_eq!(ids, (0..n).collect::<Vec<_>>(), "every request ends exactly once");
        all
    }
}

/// Starts `plan` with one collecting origin.
pub fn start(plan: Plan) -> (Engine, Arc<Collect>) {
    seda::engine::quiet_worker_panics();
    let collect = Arc::new(Collect::default());
    let engine =
        Engine::builder(plan).origins(vec![collect.clone() as Arc<dyn Origin>]).start().expect("engine starts");
    (engine, collect)
}

/// Submits requests with ids in `ids` to the plan's entry stage, one batch.
pub fn submit(engine: &Engine, ids: impl IntoIterator<Item = u64>, admission: Admission) {
    let entry = engine.plan().source.entry();
    let mut submitter = engine.submitter(0, entry);
    let mut batch: Vec<Box<Envelope>> =
        ids.into_iter().map(|id| Envelope::new(Request { id, ..Request::default() })).collect();
    submitter.submit_batch(&mut batch, admission);
}

/// The CPUs this process may run on, from its affinity mask (`Cpus_allowed_list`, as `0-1` or
/// `2,5-7`): not CPUs 0 and 1, which a restricted machine or container may not have.
pub fn allowed_cpus() -> Vec<usize> {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let list = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).expect("Cpus_allowed_list").trim();
    let cpus: Vec<usize> = list
        .split(',')
        .flat_map(|range| {
            let (from, to) = range.split_once('-').unwrap_or((range, range));
            from.parse::<usize>().unwrap()..=to.parse::<usize>().unwrap()
        })
        .collect();
    assert!(!cpus.is_empty(), "an allowed CPU: {list}");
    cpus
}

/// The first CPU this process may run on.
pub fn a_cpu() -> usize {
    allowed_cpus()[0]
}

/// The first two CPUs this process may run on.
pub fn two_cpus() -> [usize; 2] {
    match allowed_cpus()[..] {
        [first, second, ..] => [first, second],
        [_] => panic!("these tests want two CPUs; this process may run on one"),
        [] => unreachable!(),
    }
}

/// Moves a config written for CPUs 0, 1, ... (the example configs) onto the CPUs this process
/// may run on: CPU n becomes the n-th allowed one (round the list), in every `cpus` list and
/// `cpu` field. Where CPUs 0 and 1 are allowed, nothing changes.
pub fn on_allowed_cpus(config: &mut Value) {
    let allowed = allowed_cpus();
    let onto = |cpu: &mut Value| {
        if let Some(n) = cpu.as_u64() {
            *cpu = allowed[n as usize % allowed.len()].into();
        }
    };
    match config {
        Value::Object(fields) => {
            for (name, value) in fields.iter_mut() {
                match (name.as_str(), value) {
                    ("cpus", Value::Array(cpus)) => cpus.iter_mut().for_each(onto),
                    ("cpu", cpu) => onto(cpu),
                    (_, value) => on_allowed_cpus(value),
                }
            }
        }
        Value::Array(values) => values.iter_mut().for_each(on_allowed_cpus),
        _ => {}
    }
}

/// `configs/<name>` moved onto the CPUs this process may run on ([`on_allowed_cpus`]), written
/// to a file of its own under the temporary directory, for a test that hands a config's path
/// to the binary.
pub fn example_config(name: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(format!("configs/{name}")).unwrap_or_else(|e| panic!("configs/{name}: {e}"));
    let mut config: Value = serde_json::from_str(&text).unwrap();
    on_allowed_cpus(&mut config);
    let path = std::env::temp_dir().join(format!("seda-it-{}-example-{name}", std::process::id()));
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    path
}

/// Polls `check` until it holds, failing the test after 20 s.
pub fn eventually(what: &str, check: impl Fn() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < Duration::from_secs(20), "timed out waiting for: {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Holds every request that reaches it until the test opens it.
#[derive(Default)]
pub struct Gate {
    entered: AtomicUsize,
    open: AtomicBool,
}

impl Gate {
    /// Replaces stage `name` of `plan` (a single-successor kind) with this gate.
    pub fn install(plan: &mut Plan, name: &str) -> Arc<Gate> {
        let gate = Arc::new(Gate::default());
        let stage = plan.stage(name).expect("the stage exists");
        plan.stages[stage].factory = Arc::new(GateFactory(gate.clone()));
        gate
    }

    /// Waits until `n` requests have entered the gate.
    pub fn wait_entered(&self, n: usize) {
        eventually("requests to reach the gate", || self.entered.load(Ordering::SeqCst) >= n);
    }

    pub fn open(&self) {
        self.open.store(true, Ordering::SeqCst);
    }

    /// Counts a request as entered, without holding it.
    pub fn arrive(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
    }

    /// Counts a request as entered and holds it (its worker with it) until the gate opens.
    pub fn pass(&self) {
        self.arrive();
        while !self.open.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_micros(200));
        }
    }
}

struct GateFactory(Arc<Gate>);

impl StageFactory for GateFactory {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }
    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(GateStage(self.0.clone()))
    }
}

struct GateStage(Arc<Gate>);

impl Stage for GateStage {
    fn handle(&mut self, _req: &mut Request) -> Step {
        self.0.pass();
        Step::Next(Output::NEXT)
    }
}

/// A `seda run` of the test's own, killed when dropped (if it has not exited).
pub struct SedaProcess {
    pub child: Child,
    /// Its summary (`--json`), once it has exited.
    pub summary_path: PathBuf,
    /// Its HTTP source's address, for a front.
    pub listening: Option<SocketAddr>,
    /// Its admin listener's address, when its config has one (and an HTTP source).
    pub admin: Option<SocketAddr>,
}

impl SedaProcess {
    /// Runs `config` as `seda run` (through `wrap`, a command to run it under, if given).
    pub fn start(name: &str, config: &Value, wrap: &[&str]) -> SedaProcess {
        let scratch = |file: String| std::env::temp_dir().join(format!("seda-it-run-{}-{file}", std::process::id()));
        let config_path = scratch(format!("{name}.json"));
        std::fs::write(&config_path, serde_json::to_string_pretty(config).unwrap()).unwrap();
        let summary_path = scratch(format!("{name}-summary.json"));
        let _ = std::fs::remove_file(&summary_path);
        let seda = env!("CARGO_BIN_EXE_seda");
        let mut command = match wrap {
            [] => Command::new(seda),
            [program, args @ ..] => {
                let mut command = Command::new(program);
                command.args(args).arg(seda);
                command
            }
        };
        command.arg("run").arg(&config_path).arg("--json").arg(&summary_path);
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("seda starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let (mut listening, mut admin) = (None, None);
        if config["source"]["kind"] == "http" {
            // Other lines may come first: the admin listener's address, the HTTP I/O backend
            // it chose.
            for line in lines.by_ref() {
                let line = line.expect("seda's stderr");
                if let Some(addr) = line.strip_prefix("admin listening on ") {
                    admin = Some(addr.trim().parse().unwrap());
                }
                if let Some(addr) = line.strip_prefix("seda: listening on http://") {
                    listening = Some(addr.trim().parse().unwrap());
                    break;
                }
            }
            assert!(listening.is_some(), "seda did not say where it listens");
        }
        std::thread::spawn(move || lines.for_each(drop));
        SedaProcess { child, summary_path, listening, admin }
    }

    pub fn signal(&self, signal: i32) {
        // SAFETY: kill takes no pointers; the pid is our own child's, not yet waited for.
        assert_eq!(unsafe { libc::kill(self.child.id() as libc::pid_t, signal) }, 0);
    }

    /// Stops it with SIGTERM and reads its summary.
    pub fn stop(mut self) -> Value {
        self.signal(libc::SIGTERM);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "seda run exited with {status:?}");
        serde_json::from_str(&std::fs::read_to_string(&self.summary_path).unwrap()).unwrap()
    }
}

impl Drop for SedaProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A ledger count of a summary written by `--json`.
pub fn ledger(summary: &Value, field: &str) -> u64 {
    summary["ledger"][field].as_u64().unwrap_or_else(|| panic!("ledger.{field} in {summary}"))
}
