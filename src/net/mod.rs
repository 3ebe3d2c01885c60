//! HTTP/1.1 on the server side: the HTTP source.
//!
//! - [`server`]: [`HttpSource`], the reactors: accepts, reads and frames on readiness, admits
//!   requests into the pipeline, writes answers back in request order; timeouts, the connection
//!   cap and graceful shutdown. `connection`: one connection's state. `backend`: the I/O
//!   mechanism under a reactor (epoll readiness), apart from the connection rules it drives.
//!   `completions`: where ended requests wait for the reactor. [`HttpStats`]: what it counts.
//!
//! The rest is sans I/O, tested by feeding bytes:
//! - [`framing`]: [`RequestReader`], fed bytes, yields [`Framed`] requests, pipelined or split
//!   anywhere, or a [`Reject`] that says which fixed reply to send before closing.
//! - `chunked`: the chunked body decoder the reader uses.
//! - [`Request`]: the framed request, `seda_stages::HttpRequest`, which stages read.
//! - [`limits`]: the [`Limits`] a request must keep.
//! - [`reject`]: why a request is turned away, and its answer.
//! - [`response`]: [`write_response`] into a reusable `Vec<u8>`; [`status`]: [`Status`].
//! - [`fixed_replies`]: static responses (the rejects, `503` with `Retry-After`, `100 Continue`).

mod backend;
mod body;
mod chunked;
mod completions;
mod connection;
pub mod fixed_replies;
pub mod framing;
pub mod limits;
pub mod reject;
pub mod response;
pub(crate) mod ring;
pub mod server;
mod stats;
pub mod status;

pub use framing::{Framed, RequestReader};
pub use limits::Limits;
pub use reject::{BadRequest, Reject};
pub use response::{write_head, write_parts, write_response, Reply, Response};
pub use seda_stages::http::{HttpRequest as Request, Version};
pub use server::HttpSource;
pub use stats::{HttpLive, HttpStats};
pub use status::Status;
