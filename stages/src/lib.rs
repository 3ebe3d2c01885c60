//! The seda stage API and the built-in stage kinds.
//!
//! A stage is one state of a request's state machine: a function from a request to a [`Step`],
//! which says where the request goes next. This crate knows nothing of threads, queues or
//! sockets; the engine (the `seda` crate) runs stages on pinned worker pools and performs the
//! I/O that a step describes.
//!
//! Each stage kind is built once per pipeline by a [`StageFactory`] from its JSON params, and
//! the factory makes one [`Stage`] instance per worker thread, so handlers need no locks.

mod file;
pub mod http;
mod kinds;
mod request;
mod rng;
mod stage;
mod step;

/// Entry points for the fuzz targets in `fuzz/`: parsers that are otherwise private to their
/// stage. Not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::kinds::accepts_gzip;
}

pub use file::{FileError, FileMeta, FileOp, FileRead};
pub use http::{Headers, HttpRequest};
pub use kinds::{build, closest, edit_distance, KINDS};
pub use request::{Attrs, Request, Response};
pub use rng::{splitmix64, unit_interval};
pub use stage::{BuildError, Outputs, Stage, StageFactory};
pub use step::{IoOp, Output, StageError, Step};
