//! The runtime: per-stage bounded queues, pinned worker pools, sleep and wake, the ledger.
//!
//! [`Engine::builder`] builds the queues and spawns the pools of a [`crate::config::Plan`];
//! sources hand requests in through a [`Submitter`]; [`Engine::shutdown`] drains and joins.
//! [`crate::run`] starts a pipeline with its source on top of this; the engine knows nothing of
//! its sources, of HTTP or of the admin listener.

mod admission;
mod batch_size;
mod context;
mod control;
mod envelope;
mod error;
mod idle;
mod ledger;
mod outcome;
mod panics;
mod poller;
mod pool_size;
mod queue;
mod runtime;
mod sampler;
mod shared;
mod sleep;
mod snapshot;
mod worker;

pub use admission::{AdmissionSnapshot, ClassSnapshot, Controller};
pub(crate) use context::Ctx;
pub use envelope::{Envelope, OriginId};
pub use error::EngineError;
pub use ledger::{Ledger, LedgerCounts, LedgerFault};
pub use outcome::{HandBack, Origin, Outcome, RejectReason};
pub(crate) use panics::message as panic_message;
pub use panics::{is_panic, quiet_worker_panics};
pub use poller::{Admit, Poller};
pub use runtime::{Admission, Engine, EngineBuilder, Submitter, WorkerPollers};
pub use sleep::Sleep;
pub use snapshot::{Observer, PoolSnapshot, Snapshot, StageSnapshot};
pub use worker::WorkerInfo;
pub(crate) use worker::SPIN;
