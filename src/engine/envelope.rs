//! The envelope: a request plus what the engine keeps about it on its way.

use seda_stages::Request;

/// Which registered [`super::Origin`] a request came from, and goes back to when it ends.
pub type OriginId = u32;

/// A request in flight. Boxed, moved through queues by pointer, and recycled by its origin.
///
/// What the engine reads on the way (the deadline, the intended start, the origin) and the
/// request id and response status share the first cache line. The hop's own facts (the stage,
/// the time it was queued) travel with the batch, so a stage that does not read the request
/// does not pull its envelope across cores at all.
#[derive(Debug)]
#[repr(C, align(64))]
pub struct Envelope {
    /// When the request was meant to start (the generator's schedule): end-to-end latency is
    /// measured from here, so a late start is not hidden.
    pub intended_ns: u64,
    /// When it times out; `u64::MAX` for never.
    pub(crate) deadline_ns: u64,
    pub(crate) origin: OriginId,
    /// Origin-specific: a connection, a slot. The engine does not read it.
    pub tag: u64,
    pub req: Request,
}

impl Default for Envelope {
    fn default() -> Self {
        Envelope { intended_ns: 0, deadline_ns: u64::MAX, origin: 0, tag: 0, req: Request::default() }
    }
}

impl Envelope {
    pub fn new(req: Request) -> Box<Self> {
        Box::new(Envelope { req, ..Envelope::default() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_engine_fields_id_and_status_share_the_first_cache_line() {
        let env = Envelope::default();
        let base = &env as *const Envelope as usize;
        let status = &env.req.response.status as *const u16 as usize;
        assert_eq!(base % 64, 0);
        assert_eq!(status - base, 40, "intended, deadline, origin, tag, id, then status");
    }
}
