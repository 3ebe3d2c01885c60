//! The seda stage API and the built-in stage kinds.
//!
//! A stage is one state of a request's state machine: a function from a request to a [`Step`],
//! which says where the request goes next. This crate knows nothing of threads, queues or
//! sockets; the engine (the `seda` crate) runs stages on pinned worker pools and performs the
//! I/O that a step describes.
//!
//! Each stage kind is built once per pipeline by a [`StageFactory`] from its JSON params, and
//! the factory makes one [`Stage`] instance per worker thread, so handlers need no locks. The
//! kinds a config may name are those of a [`Registry`]: the built-ins and a user's own.

mod file;
pub mod http;
mod kinds;
mod op;
pub mod range;
mod registry;
mod request;
mod rng;
mod stage;
mod step;
mod suggest;

/// Entry points for the fuzz targets in `fuzz/`: parsers that are otherwise private to their
/// stage. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::kinds::accepts_gzip;
}

pub use file::{FileBody, FileError, FileMeta, FileOp, FileRead};
pub use http::{Headers, HttpRequest};
#[cfg(test)]
pub(crate) use kinds::build;
pub use op::{ApplyToRequest, AsyncOp, Completion, CompletionSink, OpResult};
pub use registry::{KindEntry, Needs, Registry, StageKind};
pub use request::{Attrs, Request, Response};
pub use rng::{splitmix64, unit_interval};
/// Re-exported so that a user's kind derives `JsonSchema` for its params with the version seda uses.
pub use schemars;
pub use stage::{BuildError, Outputs, Stage, StageFactory};
pub use step::{IoOp, Output, StageError, Step};
pub use suggest::{closest, edit_distance};
