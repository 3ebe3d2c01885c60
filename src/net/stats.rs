//! What an HTTP source counts about its connections: what the ledger, which counts requests
//! once admitted, does not see.

use std::fmt;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed at accept: `max_connections` were open.
    pub refused: u64,
    /// Requests framed and admitted into the pipeline.
    pub requests: u64,
    /// Their answers that came back from the pipeline.
    pub answered: u64,
    /// Connections answered 400, 413, 431, 501 or 505 by the framing layer, then closed.
    pub framing_rejects: u64,
    /// Connections answered 408 and closed: a head did not arrive within `header_timeout_ms`.
    pub header_timeouts: u64,
    /// Keep-alive connections closed after `idle_timeout_ms` with nothing to do.
    pub idle_closed: u64,
    /// Connections that failed on a read or write (reset by the peer, ...).
    pub broken: u64,
    /// Connections that went away with requests still in the pipeline (those end there, and
    /// are counted by the ledger like any other).
    pub closed_with_requests_in_flight: u64,
    /// Connections still open when shutdown's drain timeout ran out.
    pub dropped_at_shutdown: u64,
}

impl HttpStats {
    /// Adds `other`'s counts (another reactor's) to these.
    pub fn add(&mut self, other: &HttpStats) {
        self.accepted += other.accepted;
        self.refused += other.refused;
        self.requests += other.requests;
        self.answered += other.answered;
        self.framing_rejects += other.framing_rejects;
        self.header_timeouts += other.header_timeouts;
        self.idle_closed += other.idle_closed;
        self.broken += other.broken;
        self.closed_with_requests_in_flight += other.closed_with_requests_in_flight;
        self.dropped_at_shutdown += other.dropped_at_shutdown;
    }
}

impl fmt::Display for HttpStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "http: connections accepted {}, refused {}; requests {}, answered {}",
            self.accepted, self.refused, self.requests, self.answered
        )?;
        write!(
            f,
            "      closed: framing rejects {}, header timeouts {}, idle {}, broken {}, with requests in flight {}, at shutdown {}",
            self.framing_rejects,
            self.header_timeouts,
            self.idle_closed,
            self.broken,
            self.closed_with_requests_in_flight,
            self.dropped_at_shutdown
        )
    }
}
