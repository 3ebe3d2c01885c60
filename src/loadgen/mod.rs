//! `seda load`: the bundled load generator, open and closed loop, with latency corrected for
//! coordinated omission.
//!
//! - [`options`]: what was asked, and the parsers of its values;
//! - [`schedule`]: the phases (warmup, run, sweep steps) and each request's intended send time;
//! - [`correction`]: corrected and uncorrected latency and send lag, from a request's instants;
//! - [`http`]: the client: response framing, a connection on mio, a sending thread;
//! - [`inprocess`]: the driver that feeds a pipeline's entry stage directly, without sockets;
//! - [`tally`] and [`collect`]: per-thread counts, merged per phase and per interval;
//! - [`output`], [`threshold`], [`progress`]: what the run reports and how CI gates on it.
//!
//! A pipeline config as the target runs in-process. From its `source` section `seda load`
//! takes the entry stage, `payload_bytes` (the request body, unless a mix file says), the
//! `attributes`, and `cpu` (where the sending thread runs, unless `--cpus` says); its
//! `requests` and `rate` are replaced by the load options.

pub mod collect;
pub mod correction;
pub mod http;
pub mod inprocess;
pub mod mix;
pub mod options;
pub mod output;
pub mod progress;
pub mod record;
pub mod request_file;
mod run_end;
pub mod schedule;
pub mod tally;
pub mod threshold;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use options::{ArrivalKind, LoadOptions, Target};
pub use output::Results;

use crate::clock::now_ns;
use crate::config::{ConfigErrors, SourcePlan};
use crate::stages::Registry;
use collect::Collected;
use mix::Mix;
use run_end::RunEnd;
use schedule::{Arrival, Phase, Schedule};
use tally::{Report, ThreadTally};

/// Requests due while every connection is busy wait here, per sending thread, at most; past
/// it they are counted as unsent.
pub const BACKLOG: usize = 1 << 16;

/// How often threads report, the progress line updates and the `.hlog` has an interval.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Threads and connections start this long before the first request is due, so that opening
/// connections does not count as send lag.
const LEAD_TIME: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Options that cannot go together or a value that is out of range.
    #[error("{0}")]
    Usage(String),
    #[error("the pipeline config is invalid")]
    Config(ConfigErrors),
    #[error("cannot reach {target}: {reason}")]
    Unreachable { target: String, reason: String },
    #[error(transparent)]
    Engine(#[from] crate::run::RunError),
    #[error("{what}: {source}")]
    Io { what: String, source: std::io::Error },
}

fn usage(message: impl Into<String>) -> LoadError {
    LoadError::Usage(message.into())
}

/// The phases the options ask for.
fn phases(o: &LoadOptions) -> Result<Vec<Phase>, LoadError> {
    let length = |d: Duration| d.as_nanos() as u64;
    let phase = |label: &str, d: Duration, rate: Option<(f64, f64)>, measured| Phase {
        label: label.to_string(),
        length_ns: length(d),
        rate,
        measured,
    };
    let mut phases = Vec::new();
    match (o.rate, o.sweep) {
        (Some(_), Some(_)) => return Err(usage("--rate and --sweep cannot be used together")),
        (None, None) => {
            if o.ramp {
                return Err(usage("--ramp needs --rate (the rate to rise to)"));
            }
            if o.arrival == ArrivalKind::Poisson {
                return Err(usage("--arrival poisson needs --rate or --sweep (a closed loop has no schedule)"));
            }
            phases.push(phase("warmup", o.warmup, None, false));
            phases.push(phase("run", o.duration, None, true));
        }
        (Some(rate), None) if o.ramp => {
            let total = (o.warmup + o.duration).as_secs_f64();
            let at_warmup_end = rate * o.warmup.as_secs_f64() / total;
            phases.push(phase("warmup", o.warmup, Some((0.0, at_warmup_end)), false));
            phases.push(phase("ramp", o.duration, Some((at_warmup_end, rate)), true));
        }
        (Some(rate), None) => {
            phases.push(phase("warmup", o.warmup, Some((rate, rate)), false));
            phases.push(phase("run", o.duration, Some((rate, rate)), true));
        }
        (None, Some(sweep)) => {
            if o.ramp {
                return Err(usage("--ramp and --sweep cannot be used together"));
            }
            let rates = sweep.rates();
            phases.push(phase("warmup", o.warmup, Some((rates[0], rates[0])), false));
            for r in rates {
                phases.push(phase(&format!("{r:.0}/s"), o.duration, Some((r, r)), true));
            }
        }
    }
    phases.retain(|p| p.length_ns > 0);
    Ok(phases)
}

/// Checks what a run needs before it starts: every error here is the user's to fix.
fn check(o: &LoadOptions) -> Result<(), LoadError> {
    if o.duration.is_zero() {
        return Err(usage("--duration must be above zero"));
    }
    for (name, value) in [("--connections", o.connections), ("--pipeline", o.pipeline), ("--threads", o.threads)] {
        if value == 0 {
            return Err(usage(format!("{name} must be at least 1")));
        }
    }
    if matches!(o.target, Target::Http(_)) && o.threads > o.connections {
        return Err(usage(format!(
            "--threads {} is more than --connections {}: each thread needs a connection",
            o.threads, o.connections
        )));
    }
    if o.timeout.is_zero() {
        return Err(usage("--timeout must be above zero"));
    }
    if let Some(cpus) = &o.cpus {
        let have: Vec<usize> = core_affinity::get_core_ids().unwrap_or_default().iter().map(|c| c.id).collect();
        if cpus.is_empty() {
            return Err(usage("--cpus is empty"));
        }
        if let Some(cpu) = cpus.iter().find(|c| !have.contains(c)) {
            return Err(usage(format!("--cpus: CPU {cpu} does not exist on this machine (its CPUs are {have:?})")));
        }
    }
    Ok(())
}

fn read_mix(path: &Path, seed: u64) -> Result<Mix, LoadError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| usage(format!("cannot read the mix file {}: {e}", path.display())))?;
    Mix::parse(&text, seed).map_err(|e| usage(format!("mix file {}: {e}", path.display())))
}

/// The requests the options ask for: a request file's, a mix file's, or the URL's own (with
/// `-m`, `--body`, `--body-file`); `-H` headers on each. None in-process without a file: the
/// config's payload is sent.
fn request_mix(o: &LoadOptions) -> Result<Option<Mix>, LoadError> {
    let target = match &o.target {
        Target::Http(t) => Some(t),
        Target::Pipeline(_) => None,
    };
    let single = o.method.is_some() || o.body.is_some();
    let given = [o.requests.is_some(), o.mix.is_some(), single].iter().filter(|&&g| g).count();
    if given > 1 {
        return Err(usage("--requests, --mix and -m/--body/--body-file cannot be used together: give one"));
    }
    if let Some(method) = &o.method {
        request_file::check_method(method).map_err(|e| usage(format!("-m: {e}")))?;
    }
    if target.is_none() && (!o.headers.is_empty() || o.checks.body_contains.is_some()) {
        return Err(usage(
            "-H and --expect-body-contains are for an http:// target (a pipeline has no headers or body)",
        ));
    }
    let mut mix = if let Some(path) = &o.requests {
        let kinds = request_file::read(path, target).map_err(usage)?;
        let mut mix = Mix::of(kinds, o.seed);
        mix.per_kind = true;
        mix
    } else if let Some(path) = &o.mix {
        read_mix(path, o.seed)?
    } else if let Some(target) = target {
        let body = match &o.body {
            None => Vec::new(),
            Some(options::Body::Text(text)) => text.clone().into_bytes(),
            Some(options::Body::File(path)) => request_file::read_body(path).map_err(usage)?,
        };
        let method = o.method.as_deref().unwrap_or("GET");
        Mix::of(vec![mix::RequestKind::new(method, &target.path, body, 1)], o.seed)
    } else if single {
        return Err(usage("-m, --body and --body-file are for an http:// target; in-process, use --requests"));
    } else {
        return Ok(None);
    };
    for kind in &mut mix.kinds {
        for (name, value) in &o.headers {
            if !kind.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                kind.headers.push((name.clone(), value.clone()));
            }
        }
    }
    Ok(Some(mix.in_order(o.in_order)))
}

/// Resolves the target and opens one connection to it (with its TLS handshake, for https://),
/// so that a wrong host or port or an untrusted certificate is a clear error before the run, not
/// a run of connect errors.
fn reach(
    target: &options::HttpTarget,
    tls: Option<&http::tls::TlsClient>,
    timeout: Duration,
) -> Result<SocketAddr, LoadError> {
    let name = format!("{}:{}", target.host, target.port);
    let unreachable = |reason: String| LoadError::Unreachable { target: name.clone(), reason };
    let addr = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| unreachable(e.to_string()))?
        .next()
        .ok_or_else(|| unreachable("the name resolves to no address".into()))?;
    let timeout = timeout.min(Duration::from_secs(5));
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, timeout).map_err(|e| unreachable(e.to_string()))?;
    if let Some(tls) = tls {
        tls.handshake(&mut tcp, timeout).map_err(unreachable)?;
    }
    Ok(addr)
}

/// The moment a run starts, on both clocks, and its end.
struct Start {
    /// Clock ns of the first send time.
    start_ns: u64,
    /// The same moment on the wall clock, for the `.hlog` header.
    wall: SystemTime,
    end: Arc<RunEnd>,
}

impl Start {
    /// A run starting [`LEAD_TIME`] from now.
    fn soon(schedule: &Schedule) -> Self {
        let start_ns = now_ns() + LEAD_TIME.as_nanos() as u64;
        Start {
            start_ns,
            wall: SystemTime::now() + LEAD_TIME,
            end: Arc::new(RunEnd::new(start_ns, schedule.length_ns())),
        }
    }
}

/// A run being set up: what every target needs.
struct Run<'a> {
    options: &'a LoadOptions,
    schedule: Schedule,
    open: bool,
    mix: Option<Mix>,
    /// The stage kinds a pipeline config (the in-process target) may name.
    registry: &'a Registry,
    stop: &'a AtomicBool,
}

/// Runs the load test the options describe and returns its results (thresholds checked).
/// Setting `stop` ends the run early; the results are then those of the schedule up to there.
/// A pipeline target's config may name the stage kinds of `registry`.
pub fn load_test(options: &LoadOptions, registry: &Registry, stop: &AtomicBool) -> Result<Results, LoadError> {
    check(options)?;
    let phases = phases(options)?;
    let open = phases.iter().any(|p| p.rate.is_some());
    let arrival = match options.arrival {
        ArrivalKind::Constant => Arrival::Constant,
        ArrivalKind::Poisson => Arrival::Poisson { seed: options.seed },
    };
    let mix = request_mix(options)?;
    let run = Run { options, schedule: Schedule::new(phases, arrival), open, mix, registry, stop };
    let (start, collected, engine, threads, io) = match &options.target {
        Target::Http(target) => {
            let io = run.io_backend()?;
            let (start, collected) = run.http(target, io)?;
            (start, collected, None, options.threads, Some(io.name()))
        }
        Target::Pipeline(path) => {
            let (start, collected, engine) = run.in_process(path)?;
            (start, collected, Some(engine), 1, None)
        }
    };
    let shape = output::RunShape {
        target: options.target.to_string(),
        mode: if open { "open" } else { "closed" },
        arrival: open.then_some(match options.arrival {
            ArrivalKind::Constant => "constant",
            ArrivalKind::Poisson => "poisson",
        }),
        connections: options.connections,
        pipeline_depth: options.pipeline,
        threads,
        slots: matches!(options.target, Target::Pipeline(_)).then_some(options.connections * options.pipeline),
        io,
    };
    // Stopped early: the results are those of the schedule as far as it ran.
    let schedule = start.end.cut().map_or(run.schedule.clone(), |at| run.schedule.cut(at));
    let interval_ns = INTERVAL.as_nanos() as u64;
    let kind_names: Vec<String> = match &run.mix {
        Some(mix) if mix.per_kind => mix.kinds.iter().map(|k| k.name.clone()).collect(),
        _ => Vec::new(),
    };
    let mut results = Results::new(shape, &schedule, collected, start.start_ns, start.wall, interval_ns, &kind_names);
    if let Some((summary, recording)) = engine {
        results.engine = Some(summary);
        results.recording = recording;
    }
    if let Some(slo) = options.slo {
        results.slo = Some(slo);
        results.total.set_goodput(slo);
        results.steps.iter_mut().for_each(|step| step.set_goodput(slo));
    }
    results.thresholds = options.fail_if.iter().map(|t| t.check(&results.total)).collect();
    Ok(results)
}

impl Run<'_> {
    fn cpu_of(&self, thread: usize) -> Option<usize> {
        self.options.cpus.as_ref().map(|cpus| cpus[thread % cpus.len()])
    }

    /// `--io`: what the sending threads use; auto is io_uring when this kernel gives a ring.
    fn io_backend(&self) -> Result<http::driver::IoBackend, LoadError> {
        use http::driver::IoBackend;
        match self.options.io {
            options::IoChoice::Epoll => Ok(IoBackend::Epoll),
            options::IoChoice::Auto => Ok(match crate::net::ring::available() {
                Ok(()) => IoBackend::Uring,
                Err(_) => IoBackend::Epoll,
            }),
            options::IoChoice::Uring => match crate::net::ring::available() {
                Ok(()) => Ok(IoBackend::Uring),
                Err(e) => Err(usage(format!("--io uring: this kernel gives no io_uring ring ({e})"))),
            },
        }
    }

    /// Against an HTTP server: `--threads` sending threads, each with its share of the
    /// connections and of the schedule; the collector on this thread.
    fn http(&self, target: &options::HttpTarget, io: http::driver::IoBackend) -> Result<(Start, Collected), LoadError> {
        let o = self.options;
        let tls = match (target.tls, &o.trust) {
            (true, trust) => Some(http::tls::TlsClient::new(&target.host, trust).map_err(usage)?),
            (false, options::Trust::Platform) => None,
            (false, _) => return Err(usage("--cacert and --insecure are for an https:// target")),
        };
        let addr = reach(target, tls.as_ref(), o.timeout)?;
        let mix = self.mix.clone().unwrap_or_else(|| Mix::single(&target.path));
        let (requests, heads) = http::encode_requests(target, &mix);
        let threads = o.threads;
        let interval_ns = INTERVAL.as_nanos() as u64;
        let (report_tx, report_rx) = flume::bounded::<Report>(4 * threads);
        let start = Start::soon(&self.schedule);
        let collected = std::thread::scope(|scope| {
            let mut handles = Vec::new();
            for thread in 0..threads {
                let job = http::driver::HttpJob {
                    thread,
                    threads,
                    schedule: &self.schedule,
                    open: self.open,
                    addr,
                    requests: &requests,
                    heads: &heads,
                    mix: &mix,
                    counting: http::driver::Counting { checks: &o.checks, per_kind: mix.per_kind },
                    tls: tls.as_ref(),
                    connections: o.connections / threads + usize::from(thread < o.connections % threads),
                    depth: o.pipeline,
                    timeout_ns: o.timeout.as_nanos() as u64,
                    backlog: BACKLOG,
                    start_ns: start.start_ns,
                    run_end: &start.end,
                    tally: ThreadTally::new(thread, start.start_ns, interval_ns, report_tx.clone()),
                    io,
                };
                let cpu = self.cpu_of(thread);
                let handle = std::thread::Builder::new()
                    .name(format!("seda-load.{thread}"))
                    .spawn_scoped(scope, move || {
                        if let Some(cpu) = cpu {
                            core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
                        }
                        job.send_until_done()
                    })
                    .map_err(|source| LoadError::Io { what: "start a sending thread".into(), source })?;
                handles.push(handle);
            }
            drop(report_tx);
            let progress = progress::Progress::if_terminal();
            let collected =
                collect::collect(report_rx, threads, &self.schedule, interval_ns, progress, (self.stop, &start.end));
            for h in handles {
                h.join()
                    .expect("a sending thread does not panic")
                    .map_err(|source| LoadError::Io { what: "poll the connections".into(), source })?;
            }
            Ok::<_, LoadError>(collected)
        })?;
        Ok((start, collected))
    }

    /// Against a pipeline config, in-process: one sending thread, the collector on this one.
    fn in_process(&self, path: &Path) -> Result<(Start, Collected, EngineRun), LoadError> {
        let o = self.options;
        let plan = crate::config::load_with(path, self.registry).map_err(LoadError::Config)?;
        let SourcePlan::Generator { cpu: source_cpu, .. } = plan.source else {
            return Err(usage(format!(
                "{} is a server (its source is `http`): start it with `seda run` and load it at its http:// address",
                path.display()
            )));
        };
        let interval_ns = INTERVAL.as_nanos() as u64;
        let (report_tx, report_rx) = flume::bounded::<Report>(4);
        let start = Start::soon(&self.schedule);
        let job = inprocess::InProcessJob {
            schedule: self.schedule.clone(),
            open: self.open,
            slots: o.connections * o.pipeline,
            backlog: BACKLOG,
            timeout: o.timeout,
            mix: self.mix.clone(),
            checks: o.checks.clone(),
            cpu: self.cpu_of(0).or(source_cpu),
            start_ns: start.start_ns,
            run_end: start.end.clone(),
            tally: ThreadTally::new(0, start.start_ns, interval_ns, report_tx),
            record: o.record.is_some(),
        };
        let (collected, summary) = std::thread::scope(|scope| {
            let handle = std::thread::Builder::new()
                .name("seda-load".into())
                .spawn_scoped(scope, move || job.run_against(plan))
                .map_err(|source| LoadError::Io { what: "start the sending thread".into(), source })?;
            let progress = progress::Progress::if_terminal();
            let collected =
                collect::collect(report_rx, 1, &self.schedule, interval_ns, progress, (self.stop, &start.end));
            let summary = handle.join().expect("the sending thread does not panic")?;
            Ok::<_, LoadError>((collected, summary))
        })?;
        Ok((start, collected, summary))
    }
}

/// The engine's summary of an in-process run, and its recording when one was asked for.
type EngineRun = (crate::metrics::Summary, Option<crate::metrics::Recording>);

/// Writes the files the options ask for.
pub fn write_outputs(results: &Results, options: &LoadOptions) -> Result<(), LoadError> {
    let io = |path: &Path| {
        let what = format!("write {}", path.display());
        move |source| LoadError::Io { what, source }
    };
    if let Some(path) = &options.json {
        results.write_json(path).map_err(io(path))?;
    }
    if let Some(path) = &options.hgrm {
        results.write_hgrm(path).map_err(io(path))?;
    }
    if let Some(path) = &options.hlog {
        results.write_hlog(path).map_err(io(path))?;
    }
    if let Some(dir) = &options.record {
        record::write(dir, results, options)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> LoadOptions {
        LoadOptions::new(Target::Pipeline("x.json".into()))
    }

    #[test]
    fn a_ramp_splits_its_rise_between_warmup_and_run() {
        let o = LoadOptions {
            rate: Some(3000.0),
            ramp: true,
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            ..options()
        };
        let p = phases(&o).unwrap();
        assert_eq!((p[0].rate, p[0].measured), (Some((0.0, 1000.0)), false));
        assert_eq!((p[1].rate, p[1].measured), (Some((1000.0, 3000.0)), true));
    }

    #[test]
    fn a_sweep_is_a_step_per_rate_after_one_warmup() {
        let o = LoadOptions {
            sweep: Some(options::parse_sweep("1k:3k:1k").unwrap()),
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(2),
            ..options()
        };
        let p = phases(&o).unwrap();
        let labels: Vec<&str> = p.iter().map(|p| p.label.as_str()).collect();
        assert_eq!(labels, ["warmup", "1000/s", "2000/s", "3000/s"]);
        let rates: Vec<Option<(f64, f64)>> = p.iter().map(|p| p.rate).collect();
        assert_eq!(
            rates,
            [Some((1000.0, 1000.0)), Some((1000.0, 1000.0)), Some((2000.0, 2000.0)), Some((3000.0, 3000.0))]
        );
        let measured: Vec<bool> = p.iter().map(|p| p.measured).collect();
        assert_eq!(measured, [false, true, true, true]);
    }

    #[test]
    fn options_that_do_not_go_together_are_usage_errors() {
        let err = |o: LoadOptions| phases(&o).unwrap_err().to_string();
        assert!(err(LoadOptions { ramp: true, ..options() }).contains("--ramp needs --rate"));
        assert!(err(LoadOptions { arrival: ArrivalKind::Poisson, ..options() }).contains("needs --rate or --sweep"));
        let both = LoadOptions { rate: Some(1.0), sweep: Some(options::parse_sweep("1:2:1").unwrap()), ..options() };
        assert!(err(both).contains("cannot be used together"));
        let check_err = |o: LoadOptions| check(&o).unwrap_err().to_string();
        assert!(check_err(LoadOptions { pipeline: 0, ..options() }).contains("--pipeline must be at least 1"));
        assert!(check_err(LoadOptions { cpus: Some(vec![4096]), ..options() }).contains("CPU 4096 does not exist"));
    }
}
