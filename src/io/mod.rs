//! The completion layer: operations a stage asks for run here, off the worker threads, and
//! their completions put the request back into the queue of the stage that continues it.
//!
//! - [`timer`]: a thread with a heap of deadlines.
//! - [`files`]: a few threads doing blocking file reads (regular files have no readiness).
//! - [`ops`]: operations of a stage's own kind ([`seda_stages::AsyncOp`]), which it performs
//!   itself; their completions come back to a thread here.
//! - Sockets: the HTTP source's reactor (`crate::net::server`) reads and writes them on readiness.

pub(crate) mod files;
pub(crate) mod ops;
pub(crate) mod timer;

pub(crate) use files::{FileJob, FileMsg};
pub(crate) use ops::OpMsg;
pub(crate) use timer::{TimerEntry, TimerMsg};
