//! The runtime: per-stage bounded queues, pinned worker pools, sleep and wake, the ledger.
//!
//! [`Engine::start`] builds the queues and spawns the pools of a [`crate::config::Plan`];
//! sources hand requests in through a [`Submitter`]; [`Engine::shutdown`] drains and joins.
//! [`run`] does all of it for a pipeline with its configured source.

mod context;
mod envelope;
mod ledger;
mod outcome;
mod panics;
mod poller;
mod queue;
mod run;
mod runtime;
mod sampler;
mod sleep;
mod snapshot;
mod worker;

pub(crate) use context::Ctx;
pub use envelope::{Envelope, OriginId};
pub use ledger::{Ledger, LedgerCounts};
pub use outcome::{HandBack, Origin, Outcome, RejectReason};
pub use panics::{is_panic, quiet_worker_panics};
pub use poller::{Admit, Poller};
pub use run::{run, run_observed, run_recorded};
pub use runtime::{Admission, Engine, EngineError, Submitter, WorkerInfo, WorkerPollers};
pub use sleep::Sleep;
pub use snapshot::{HttpSnapshot, Observer, PoolSnapshot, Snapshot, StageSnapshot};
pub(crate) use worker::SPIN;
