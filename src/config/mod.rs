//! Pipeline configs: the JSON a user writes ([`model`]), the validation pass that checks all of
//! it at once ([`validate`]), and the [`Plan`] the engine runs, which only a valid config becomes.

mod dot;
mod error;
mod limits;
mod model;
mod plan;
mod schema;
mod validate;

pub use dot::to_dot;
pub use error::{ConfigError, ConfigErrors};
pub use limits::Limits;
pub use model::{
    AdminConfig, GeneratorConfig, PipelineConfig, PoolConfig, QueueConfig, Rate, SourceConfig, SourcePlacement,
    StageConfig, WhenFull,
};
pub use plan::{HttpPlan, Plan, PoolPlan, QueuePlan, SourcePlan, StageId, StagePlan, ThreadPlan};
pub use schema::schema;
pub use validate::{validate, validate_with, validate_with_cpus};

use std::path::Path;

use seda_stages::Registry;

/// Reads, parses and validates the config at `path`, with the built-in stage kinds.
pub fn load(path: &Path) -> Result<Plan, ConfigErrors> {
    load_with(path, &Registry::builtin())
}

/// Reads, parses and validates the config at `path`, with the stage kinds of `registry`.
pub fn load_with(path: &Path, registry: &Registry) -> Result<Plan, ConfigErrors> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigErrors::one("$", format!("cannot read {}: {e}", path.display()), None))?;
    load_str_with(&text, registry)
}

/// Parses and validates a config given as JSON text, with the built-in stage kinds.
pub fn load_str(text: &str) -> Result<Plan, ConfigErrors> {
    load_str_with(text, &Registry::builtin())
}

/// Parses and validates a config given as JSON text, with the stage kinds of `registry`.
pub fn load_str_with(text: &str, registry: &Registry) -> Result<Plan, ConfigErrors> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ConfigErrors::one("$", format!("not valid JSON: {e}"), Some("check commas, quotes and brackets".into()))
    })?;
    validate_with(&value, registry)
}
