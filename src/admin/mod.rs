//! The admin listener: live stats of a running engine over HTTP, for Prometheus and `seda top`.
//!
//! - [`server`]: [`AdminServer`], a thread with a blocking listener (the rate is a scrape or two
//!   a second) that frames requests with [`crate::net`] and answers `GET /metrics` and
//!   `GET /stats` from an [`crate::engine::Snapshot`].
//! - [`prometheus`]: the snapshot in the Prometheus text exposition format (version 0.0.4).
//! - `/stats` is the snapshot as JSON (its serde form), which `seda top` reads back.

pub mod prometheus;
pub mod server;

pub use server::{AdminError, AdminServer};
