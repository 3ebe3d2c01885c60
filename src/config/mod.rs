//! Pipeline configs: the JSON a user writes ([`model`]), the validation pass that checks all of
//! it at once ([`validate`]), and the [`Plan`] the engine runs, which only a valid config becomes.

mod dot;
mod duplicates;
mod error;
mod limits;
mod model;
mod plan;
pub mod ranges;
mod schema;
mod validate;

pub use dot::to_dot;
pub use error::{ConfigError, ConfigErrors};
pub use limits::Limits;
pub use model::{
    Adjust, AdminConfig, AdmissionConfig, BatchConfig, BatchMode, GeneratorConfig, HttpIo, JetStreamSourceConfig,
    NatsSourceConfig, PipelineConfig, PoolConfig, QueueConfig, Rate, SourceConfig, SourcePlacement, StageConfig,
    WhenFull,
};
pub use plan::{
    AdmissionPlan, BatchPlan, ClassSource, CodelPlan, ConcurrencyLimitPlan, HttpPlan, JetStreamPlan, LatencyTargetPlan,
    NatsPlan, Plan, PoolPlan, PoolSizing, QueuePlan, SourcePlan, StageId, StagePlan, ThreadPlan,
};
pub use schema::schema;
pub use validate::{validate, validate_with, validate_with_cpus};

use std::path::Path;

use seda_stages::Registry;

/// The largest config file read: far more than any pipeline needs.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Reads, parses and validates the config at `path`, with the built-in stage kinds.
pub fn load(path: &Path) -> Result<Plan, ConfigErrors> {
    load_with(path, &crate::builtin_kinds())
}

/// Reads, parses and validates the config at `path` (at most [`MAX_CONFIG_BYTES`]; a pipe is
/// read as it comes, as `seda run <(make-config)` means it to be), with the stage kinds of
/// `registry`.
pub fn load_with(path: &Path, registry: &Registry) -> Result<Plan, ConfigErrors> {
    let cannot_read =
        |e: &dyn std::fmt::Display| ConfigErrors::one("$", format!("cannot read {}: {e}", path.display()), None);
    let bytes = crate::file_input::read_bounded(path, MAX_CONFIG_BYTES).map_err(|e| cannot_read(&e))?;
    let text = String::from_utf8(bytes).map_err(|e| cannot_read(&format_args!("not UTF-8 text ({e})")))?;
    load_str_with(&text, registry)
}

/// Parses and validates a config given as JSON text, with the built-in stage kinds.
pub fn load_str(text: &str) -> Result<Plan, ConfigErrors> {
    load_str_with(text, &crate::builtin_kinds())
}

/// Parses and validates a config given as JSON text, with the stage kinds of `registry`.
pub fn load_str_with(text: &str, registry: &Registry) -> Result<Plan, ConfigErrors> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        ConfigErrors::one("$", format!("not valid JSON: {e}"), Some("check commas, quotes and brackets".into()))
    })?;
    let duplicates = duplicates::duplicate_keys(text);
    match validate_with(&value, registry) {
        Ok(plan) if duplicates.is_empty() => Ok(plan),
        Ok(_) => Err(ConfigErrors(duplicates)),
        Err(ConfigErrors(errors)) => Err(ConfigErrors(duplicates.into_iter().chain(errors).collect())),
    }
}
