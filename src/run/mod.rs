//! The run layer: the one driver of every pipeline and its source. It starts the engine, the
//! source and the admin listener together; waits until the source is finished or a stop is
//! asked for (SIGINT/SIGTERM, through the flag given); stops the source, drains the engine and
//! returns the summary.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use seda::run::Runner;
//!
//! let plan = seda::config::load(std::path::Path::new("configs/noop4.json")).unwrap();
//! let stop = AtomicBool::new(false);
//! let finished = Runner::new(plan).stop_on(&stop).record(true).run_to_end().unwrap();
//! println!("{}", finished.summary);
//! ```
//!
//! Shutdown, in order:
//! 1. the source stops admitting and waits for what it admitted to come back to it (an HTTP
//!    source writes its answers; a generator's last claimed requests are submitted), or for the
//!    pipeline's `drain_timeout` to pass;
//! 2. its thread, if it has one, is joined;
//! 3. the engine drains what is still in flight (timing out what outlives `drain_timeout`),
//!    joins its threads and summarizes; a handler that never returns cannot hold this past the
//!    drain timeout and a second ([`RunError::Stuck`]);
//! 4. the admin listener closes last, so it answers until the end.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::admin::{AdminError, AdminServer};
use crate::config::{Plan, SourcePlan};
use crate::engine::{Engine, EngineError, OriginId, WorkerPollers};
use crate::metrics::Recording;
use crate::metrics::Summary;
use crate::net::HttpSource;
use crate::source::{GeneratorSource, Opened, RunsOn, Source, SourceError};

/// How often the run layer looks at the stop flag and the source while the pipeline runs.
const LOOK_EVERY: Duration = Duration::from_millis(10);

/// How long past the drain timeout the run waits for stages to give back their last requests
/// (what is still in flight then is ended as timed out by the engine, once each handler returns).
const STUCK_GRACE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// Stages still held requests a second past the drain timeout: a handler that does not
    /// return. The run ends without a summary rather than wait for it.
    #[error(
        "{in_flight} request(s) still in a stage {waited:?} after the stop (the drain timeout and a second): a \
         stage's handler does not return; ending without a summary"
    )]
    Stuck { in_flight: u64, waited: Duration },
}

/// A finished run.
pub struct Finished {
    pub summary: Summary,
    /// The run interval by interval, when it was recorded ([`Runner::record`]).
    pub recording: Option<Recording>,
}

/// Runs one pipeline with its source: options, then [`Runner::run_to_end`].
pub struct Runner<'a> {
    plan: Plan,
    source: Option<Box<dyn Source + 'a>>,
    record: bool,
    stop: Option<&'a AtomicBool>,
    on_listening: Box<dyn FnMut(Listening) + 'a>,
}

/// An address the run serves at, told once it accepts connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Listening {
    /// The source's (an HTTP source's listener; port 0 in the config takes a free one).
    Source(SocketAddr),
    /// The admin listener's (`/metrics`, `/stats`).
    Admin(SocketAddr),
}

impl<'a> Runner<'a> {
    /// A run of `plan` with the source its config names.
    pub fn new(plan: Plan) -> Self {
        Runner { plan, source: None, record: false, stop: None, on_listening: Box::new(|_| {}) }
    }

    /// Requests come from `source` instead of the source the config names (a pipeline whose
    /// config says `"kind": "external"` needs one).
    pub fn source(mut self, source: impl Source + 'a) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// Keep the run interval by interval, for a run record.
    pub fn record(mut self, record: bool) -> Self {
        self.record = record;
        self
    }

    /// Stop (and drain) when `stop` is set, as a signal handler sets it.
    pub fn stop_on(mut self, stop: &'a AtomicBool) -> Self {
        self.stop = Some(stop);
        self
    }

    /// Told each address the run serves at, once it accepts connections.
    pub fn on_listening(mut self, told: impl FnMut(Listening) + 'a) -> Self {
        self.on_listening = Box::new(told);
        self
    }

    /// Runs the pipeline until its source is finished or the stop flag is set, then drains.
    pub fn run_to_end(self) -> Result<Finished, RunError> {
        let Runner { plan, source, record, stop, mut on_listening } = self;
        let mut source = match source {
            Some(source) => source,
            None => configured_source(&plan)?,
        };
        let entry = plan.source.entry();
        let pool = plan.stages[entry].pool;
        let drain_timeout = plan.drain_timeout;
        let Opened { origins, runs_on } = source.open(&plan)?;
        let mut builder = Engine::builder(plan).origins(origins).record(record);
        let thread = match runs_on {
            RunsOn::Workers(pollers) => {
                let pollers = pollers.into_iter().enumerate().map(|(i, p)| (i as OriginId, p)).collect();
                builder = builder.pollers(WorkerPollers { pool, entry, pollers });
                None
            }
            RunsOn::Thread { name, cpu, body } => Some((name, cpu, body)),
        };
        let engine = builder.start()?;
        let stats = source.stats();
        let admin = match engine.plan().admin {
            Some(addr) => {
                let observer = match &stats {
                    Some(stats) => engine.observer().with_source(stats.clone()),
                    None => engine.observer(),
                };
                let server = AdminServer::start(addr, observer)?;
                on_listening(Listening::Admin(server.local_addr()));
                Some(server)
            }
            None => None,
        };
        let stopping = std::thread::scope(|scope| {
            let handle = match thread {
                Some((name, cpu, body)) => {
                    let submitter = engine.submitter(0, entry);
                    let spawned = std::thread::Builder::new().name(name.into()).spawn_scoped(scope, move || {
                        if let Some(cpu) = cpu {
                            core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
                        }
                        body(submitter)
                    });
                    Some(spawned.map_err(|source| EngineError::Spawn { name: name.into(), source })?)
                }
                None => None,
            };
            source.started(&engine);
            if let Some(addr) = source.listening() {
                on_listening(Listening::Source(addr));
            }
            let stopped = || stop.is_some_and(|s| s.load(Ordering::Relaxed));
            let thread_ended = || handle.as_ref().is_some_and(|h| h.is_finished());
            while !stopped() && !source.finished() && !thread_ended() {
                std::thread::sleep(LOOK_EVERY);
            }
            // One drain clock for the whole stop: a source waiting for room in a queue that
            // nothing empties (stages that loop) gives up when it passes, and so does the engine.
            let stopping = Instant::now();
            engine.start_drain_timeout();
            source.stop(drain_timeout);
            if let Some(handle) = handle {
                // A panic in a source's own thread is a bug of that source: it is not hidden.
                if let Err(panic) = handle.join() {
                    std::panic::resume_unwind(panic);
                }
            }
            Ok::<_, RunError>(stopping)
        })?;
        // The engine drains on a thread of its own, so that a stage whose handler never
        // returns cannot hold the run past the drain timeout and a second: then the run ends
        // without its summary, and the threads still held are left to the process's end.
        let ledger = engine.observer();
        let (done, drained) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("seda-drain".into())
            .spawn(move || {
                let _ = done.send(engine.shutdown_recorded());
            })
            .map_err(|source| EngineError::Spawn { name: "seda-drain".into(), source })?;
        let give_up = stopping + drain_timeout + STUCK_GRACE;
        let (mut summary, recording) = match drained.recv_timeout(give_up.saturating_duration_since(Instant::now())) {
            Ok(ended) => ended,
            Err(_) => {
                let in_flight = ledger.snapshot().ledger.in_flight;
                return Err(RunError::Stuck { in_flight, waited: drain_timeout + STUCK_GRACE });
            }
        };
        summary.source = stats.map(|f| f.read());
        drop(admin);
        Ok(Finished { summary, recording: record.then_some(recording) })
    }
}

/// The source a pipeline's config names.
fn configured_source(plan: &Plan) -> Result<Box<dyn Source>, SourceError> {
    match plan.source {
        SourcePlan::Generator { .. } => Ok(Box::new(GeneratorSource::new())),
        SourcePlan::Http(_) => Ok(Box::new(HttpSource::new())),
        SourcePlan::Nats(_) => Ok(Box::new(crate::nats::NatsSource::new())),
        SourcePlan::JetStream(_) => Ok(Box::new(crate::nats::JetStreamSource::new())),
        SourcePlan::External { .. } => Err(SourceError::new(
            "the pipeline's source is `external`: its requests come from the program that runs it, \
             which hands the run a source of its own (seda::run::Runner::source)",
        )),
    }
}
