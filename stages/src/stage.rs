//! The stage and factory traits.

use crate::{Request, Step};

/// One state of the request state machine. One instance serves one worker thread.
pub trait Stage: Send {
    fn handle(&mut self, req: &mut Request) -> Step;
}

/// Builds a stage kind's instances from its validated params.
pub trait StageFactory: Send + Sync {
    /// How the stage is wired to its successors.
    fn outputs(&self) -> Outputs;

    /// A fresh instance for worker `worker`. Also called to replace an instance after one of
    /// its calls panicked, since its state may then be broken.
    fn instance(&self, worker: usize) -> Box<dyn Stage>;

    /// Counters the kind keeps across its instances (a cache's hits and misses), by name, for
    /// the engine to report. Most kinds keep none.
    fn counters(&self) -> Vec<(&'static str, u64)> {
        Vec::new()
    }
}

/// The outputs a stage kind has, which its `next` in the config must wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outputs {
    /// Ends every request: no `next`.
    Terminal,
    /// One successor: `"next": "stage"`.
    Single,
    /// Named successors: `"next": {"name": "stage", ...}`; `Output(i)` is the i-th name.
    Named(Vec<String>),
}

/// Why a stage could not be built from its config.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    #[error("unknown stage kind `{kind}`{}", suggestion.as_ref().map(|s| format!("; did you mean `{s}`?")).unwrap_or_default())]
    UnknownKind { kind: String, suggestion: Option<String> },
    /// Params that do not parse or do not make sense, with the offending field when known.
    #[error("{message}")]
    BadParams { field: Option<String>, message: String },
}

impl BuildError {
    pub fn bad(field: impl Into<String>, message: impl Into<String>) -> Self {
        BuildError::BadParams { field: Some(field.into()), message: message.into() }
    }
}
