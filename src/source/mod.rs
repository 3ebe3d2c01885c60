//! Sources: where requests come from. A [`Source`] is opened before the engine starts, runs on
//! a thread of its own or inside the workers of its entry stage's pool, and is stopped by the
//! run layer ([`crate::run`]), which is the one driver of every source: the generator
//! ([`GeneratorSource`]), the HTTP source (`crate::net::HttpSource`), `seda load`'s in-process
//! driver, and a user's own.

mod doorbell;
mod generator;
mod schedule;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::config::Plan;
use crate::engine::{Engine, Origin, Poller, Submitter};
use crate::metrics::LiveStats;

pub use generator::{Generator, GeneratorPoller, GeneratorSource};

/// A source of requests for one pipeline.
///
/// The run layer calls, in order: [`Source::open`] (before the engine exists), then starts the
/// engine with the source's origins (and pollers), runs its thread if it has one, calls
/// [`Source::started`], waits until [`Source::finished`] or a stop signal, and calls
/// [`Source::stop`] before it drains the engine.
pub trait Source: Send {
    /// Sets the source up (binds its listeners: a bad address fails the run here): the origins
    /// its requests are admitted as, and where it runs.
    fn open(&mut self, plan: &Plan) -> Result<Opened, SourceError>;

    /// The engine runs, its admin listener listens: begin.
    fn started(&mut self, _engine: &Engine) {}

    /// The address it serves at, once started, for the run layer to tell the user.
    fn listening(&self) -> Option<SocketAddr> {
        None
    }

    /// Whether it has nothing more to admit (a generator that sent every request).
    fn finished(&self) -> bool {
        false
    }

    /// Stops admitting, and returns once what it admitted has come back to it, or `drain_timeout`
    /// has passed.
    fn stop(&mut self, drain_timeout: Duration);

    /// Its own stats (an HTTP source's connections), read live by the admin listener and at
    /// the end for the summary.
    fn stats(&self) -> Option<Arc<dyn LiveStats>> {
        None
    }
}

/// A source, opened.
pub struct Opened {
    /// The origins its requests are admitted as: lane i submits as origin i.
    pub origins: Vec<Arc<dyn Origin>>,
    pub runs_on: RunsOn,
}

/// Where a source runs.
pub enum RunsOn {
    /// A thread of its own, pinned to `cpu` when given, admitting into the entry stage as
    /// origin 0 until `body` returns.
    Thread { name: &'static str, cpu: Option<usize>, body: ThreadBody },
    /// Inside each worker of the entry stage's pool: worker i turns poller i between batches
    /// of work and admits as origin i, so a request that stays in the pool never crosses
    /// threads.
    Workers(Vec<Box<dyn Poller>>),
}

/// The body of a source's own thread.
pub type ThreadBody = Box<dyn for<'e> FnOnce(Submitter<'e>) + Send>;

/// A source that could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

impl SourceError {
    pub fn new(message: impl Into<String>) -> Self {
        SourceError(message.into())
    }
}
