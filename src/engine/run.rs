//! Runs a pipeline with its configured source until the source is done (or `stop` is set),
//! then drains and returns the summary. A generator runs on a thread of its own, or in the
//! workers of the entry stage's pool, which it wakes once the engine has started. A pipeline
//! with an admin listener serves it from the engine's start until the drain is over.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::{Engine, EngineError, OriginId, Poller, WorkerPollers};
use crate::admin::AdminServer;
use crate::config::{Plan, SourcePlacement, SourcePlan};
use crate::metrics::record::Recording;
use crate::metrics::Summary;
use crate::source::Generator;

/// How often the run looks at `stop` while its generator thread sends.
const STOP_LOOK: std::time::Duration = std::time::Duration::from_millis(10);

pub fn run(plan: Plan, stop: &AtomicBool) -> Result<Summary, EngineError> {
    run_observed(plan, stop, false, &mut |_| {}).map(|(summary, _)| summary)
}

/// [`run`], also returning the run's totals and its intervals, for
/// [`crate::metrics::record::write_run`].
pub fn run_recorded(plan: Plan, stop: &AtomicBool) -> Result<(Summary, Recording), EngineError> {
    run_observed(plan, stop, true, &mut |_| {})
}

/// [`run`], or with `record` [`run_recorded`], telling `admin_listening` the address the admin
/// listener took (its port, when the config asked for port 0) once it accepts connections.
pub fn run_observed(
    plan: Plan,
    stop: &AtomicBool,
    record: bool,
    admin_listening: &mut dyn FnMut(SocketAddr),
) -> Result<(Summary, Recording), EngineError> {
    if let crate::config::SourcePlan::Http(_) = plan.source {
        let listening = |addr| eprintln!("seda: listening on http://{addr}");
        return crate::net::serve(plan, stop, record, listening, admin_listening).map_err(|e| match e {
            crate::net::ServeError::Engine(e) => e,
            other => EngineError::Source(other.to_string()),
        });
    }
    let entry = plan.source.entry();
    let SourcePlan::Generator { placement, .. } = plan.source else { unreachable!("an http source is served above") };
    let in_workers = placement == SourcePlacement::Workers;
    let pool = plan.stages[entry].pool;
    // A lane per sending thread: every worker of the entry stage's pool, or the one thread.
    let lanes = if in_workers { plan.pools[pool].threads.len() } else { 1 };
    let generator = Arc::new(Generator::new(&plan.source, lanes));
    let origins = generator.origins();
    let engine = if in_workers {
        let pollers =
            (0..lanes).map(|lane| (lane as OriginId, Box::new(generator.poller(lane)) as Box<dyn Poller>)).collect();
        Engine::start_polled(plan, origins, record, WorkerPollers { pool, entry, pollers })
    } else if record {
        Engine::start_recorded(plan, origins)
    } else {
        Engine::start(plan, origins)
    }?;
    let admin = match engine.plan().admin {
        Some(addr) => {
            let server = AdminServer::start(addr, engine.observer())?;
            admin_listening(server.local_addr());
            Some(server)
        }
        None => None,
    };
    if in_workers {
        generator.begin();
        engine.wake_pool(pool);
        generator.wait_finished(stop);
        generator.close();
    } else {
        std::thread::scope(|scope| {
            let submitter = engine.submitter(0, entry);
            let generator = &generator;
            let thread = std::thread::Builder::new()
                .name("seda-generator".into())
                .spawn_scoped(scope, move || generator.run(submitter, stop))
                .map_err(|source| EngineError::Spawn { name: "seda-generator".into(), source })?;
            // The generator may be waiting for room in a queue that nothing empties (stages
            // that loop), where `stop` does not reach it: on `stop` the drain timeout starts,
            // and that wait ends when it passes.
            while !thread.is_finished() {
                if stop.load(std::sync::atomic::Ordering::Relaxed) {
                    engine.start_drain_timeout();
                    break;
                }
                std::thread::sleep(STOP_LOOK);
            }
            thread.join().expect("the generator does not panic");
            Ok::<_, EngineError>(())
        })?;
    }
    let result = engine.shutdown_recorded();
    drop(admin);
    Ok(result)
}
