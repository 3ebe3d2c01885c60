//! seda: a staged event-driven (SEDA) pipeline engine.
//!
//! A pipeline ([`config`]) is a state machine whose states are stages. Requests enter from a
//! [`source`], wait in each stage's bounded queue, are handled by CPU-pinned worker pools
//! ([`engine`]), wait on asynchronous operations in the completion layer ([`io`]) between stages,
//! and end exactly once, counted by the ledger. [`metrics`] records where the time went.

#![deny(unsafe_op_in_unsafe_fn)]
// Envelopes are boxed on purpose: queues and origins move them between threads by pointer and
// recycle them, whatever their size.
#![allow(clippy::vec_box)]

pub mod admin;
pub mod cli;
pub mod clock;
pub mod config;
pub mod engine;
pub mod file_input;
pub mod io;
pub mod loadgen;
pub mod metrics;
pub mod nats;
pub mod net;
pub mod record;
pub mod report;
pub mod run;
pub mod source;
mod sync;
pub mod top;
pub mod units;

pub use seda_stages as stages;

/// Every built-in stage kind: the `seda-stages` crate's ([`stages::Registry::builtin`]) and
/// those that need this crate's clients (`nats_request`). What `seda` itself knows.
pub fn builtin_kinds() -> stages::Registry {
    nats::register(stages::Registry::builtin())
}
