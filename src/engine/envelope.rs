//! The envelope: a request plus what the engine keeps about it on its way.

use seda_stages::Request;

use crate::config::StageId;

/// Which registered [`super::Origin`] a request came from, and goes back to when it ends.
pub type OriginId = u32;

/// A request in flight. Boxed, moved through queues by pointer, and recycled by its origin.
#[derive(Debug, Default)]
pub struct Envelope {
    pub req: Request,
    /// Origin-specific: a connection, a slot. The engine does not read it.
    pub tag: u64,
    /// When the request was meant to start (the generator's schedule): end-to-end latency is
    /// measured from here, so a late start is not hidden.
    pub intended_ns: u64,
    pub(crate) origin: OriginId,
    /// The stage the request is queued for or being handled by.
    pub(crate) stage: StageId,
    /// When it was put on its current queue.
    pub(crate) enqueued_ns: u64,
    /// When it times out; `u64::MAX` for never.
    pub(crate) deadline_ns: u64,
}

impl Envelope {
    pub fn new(req: Request) -> Box<Self> {
        Box::new(Envelope { req, deadline_ns: u64::MAX, ..Envelope::default() })
    }

    pub fn origin(&self) -> OriginId {
        self.origin
    }

    /// The stage the request was at when it ended.
    pub fn stage(&self) -> StageId {
        self.stage
    }
}
