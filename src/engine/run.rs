//! Runs a pipeline with its configured source until the source is done (or `stop` is set),
//! then drains and returns the summary.

use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use super::{Engine, EngineError, Origin};
use crate::config::Plan;
use crate::metrics::Summary;
use crate::source::Generator;

pub fn run(plan: Plan, stop: &AtomicBool) -> Result<Summary, EngineError> {
    let generator = Arc::new(Generator::new(&plan.source));
    let entry = plan.source.entry();
    let engine = Engine::start(plan, vec![generator.clone() as Arc<dyn Origin>])?;
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
    Ok(engine.shutdown())
}
