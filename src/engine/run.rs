//! Runs a pipeline with its configured source until the source is done (or `stop` is set),
//! then drains and returns the summary. A pipeline with an admin listener serves it from the
//! engine's start until the drain is over.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::{Engine, EngineError, Origin};
use crate::admin::AdminServer;
use crate::config::Plan;
use crate::metrics::record::Recording;
use crate::metrics::Summary;
use crate::source::Generator;

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
    let generator = Arc::new(Generator::new(&plan.source));
    let entry = plan.source.entry();
    let origins = vec![generator.clone() as Arc<dyn Origin>];
    let engine = if record { Engine::start_recorded(plan, origins) } else { Engine::start(plan, origins) }?;
    let admin = match engine.plan().admin {
        Some(addr) => {
            let server = AdminServer::start(addr, engine.observer())?;
            admin_listening(server.local_addr());
            Some(server)
        }
        None => None,
    };
    std::thread::scope(|scope| {
        let submitter = engine.submitter(0, entry);
        let generator = &generator;
        std::thread::Builder::new()
            .name("seda-generator".into())
            .spawn_scoped(scope, move || generator.run(submitter, stop))
            .map_err(|source| EngineError::Spawn { name: "seda-generator".into(), source })?
            .join()
            .expect("the generator does not panic");
        Ok::<_, EngineError>(())
    })?;
    let result = engine.shutdown_recorded();
    drop(admin);
    Ok(result)
}
