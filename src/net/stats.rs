//! What an HTTP source counts about its connections: what the ledger, which counts requests
//! once admitted, does not see.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

use crate::metrics::{LiveStats, SourceStats, StatMetric};

/// Read back from a summary or a snapshot with [`HttpStats::of`]; a count missing there is 0.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct HttpStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections closed at accept: `max_connections` were open, none of them idle.
    pub refused: u64,
    /// Connections closed at accept: `max_connections_per_client` were open from its address.
    #[serde(default)]
    pub refused_per_client: u64,
    /// Idle keep-alive connections closed, oldest first, to take a new one at `max_connections`.
    #[serde(default)]
    pub idle_closed_for_room: u64,
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
    /// Connections answered 408 and closed: a body did not arrive within `body_timeout_ms`,
    /// or its next bytes within `body_read_timeout_ms`.
    #[serde(default)]
    pub body_timeouts: u64,
    /// Connections closed after waiting `answer_timeout_ms` for the next answer to their
    /// requests (those end in the pipeline and are counted by the ledger).
    #[serde(default)]
    pub answer_timeouts: u64,
    /// Connections closed after `send_timeout_ms` without the client taking any of their
    /// unsent answers.
    #[serde(default)]
    pub send_timeouts: u64,
    /// Connections that failed on a read or write (reset by the peer, ...).
    pub broken: u64,
    /// Connections that went away with requests still in the pipeline (those end there, and
    /// are counted by the ledger like any other).
    pub closed_with_requests_in_flight: u64,
    /// Answers that came back for a connection that had gone away: dropped, never written to
    /// another connection.
    pub late_answers_dropped: u64,
    /// Connections still open when shutdown's drain timeout ran out.
    pub dropped_at_shutdown: u64,
    /// With the reactors in the workers: connections accepted by each worker of the entry
    /// stage's pool (value i: worker i's own `SO_REUSEPORT` listener), summing to `accepted`.
    /// Empty with the reactor on a thread of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub accepted_by_worker: Vec<u64>,
}

/// The name of [`HttpStats::accepted_by_worker`], kept in [`SourceStats::per_worker`] rather
/// than among the plain counts.
const ACCEPTED_BY_WORKER: &str = "accepted_by_worker";

/// The same counts, live: every reactor of a source adds to them as it goes (connection events
/// at once, requests and answers once per turn), and the admin listener reads them while the
/// server runs.
#[derive(Debug, Default)]
pub struct HttpLive {
    pub(crate) accepted: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) refused_per_client: AtomicU64,
    pub(crate) idle_closed_for_room: AtomicU64,
    pub(crate) requests: AtomicU64,
    pub(crate) answered: AtomicU64,
    pub(crate) framing_rejects: AtomicU64,
    pub(crate) header_timeouts: AtomicU64,
    pub(crate) idle_closed: AtomicU64,
    pub(crate) body_timeouts: AtomicU64,
    pub(crate) answer_timeouts: AtomicU64,
    pub(crate) send_timeouts: AtomicU64,
    pub(crate) broken: AtomicU64,
    pub(crate) closed_with_requests_in_flight: AtomicU64,
    pub(crate) late_answers_dropped: AtomicU64,
    pub(crate) dropped_at_shutdown: AtomicU64,
    /// By worker, with the reactors in the workers (none otherwise).
    pub(crate) accepted_by_worker: Box<[AtomicU64]>,
    /// Connections open now.
    pub(crate) open: AtomicU64,
    /// Bytes of answers held for clients now, summed over the reactors (each adds its change
    /// once per turn): what `max_unsent_bytes` bounds.
    pub(crate) unsent_bytes: AtomicU64,
}

impl HttpLive {
    /// Counts for a source whose reactors run in `workers` workers (0: on a thread of its own).
    pub(crate) fn new(workers: usize) -> Self {
        HttpLive { accepted_by_worker: (0..workers).map(|_| AtomicU64::new(0)).collect(), ..HttpLive::default() }
    }

    pub(crate) fn count(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// The counts so far.
    pub fn read(&self) -> HttpStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        HttpStats {
            accepted: get(&self.accepted),
            refused: get(&self.refused),
            refused_per_client: get(&self.refused_per_client),
            idle_closed_for_room: get(&self.idle_closed_for_room),
            requests: get(&self.requests),
            answered: get(&self.answered),
            framing_rejects: get(&self.framing_rejects),
            header_timeouts: get(&self.header_timeouts),
            idle_closed: get(&self.idle_closed),
            body_timeouts: get(&self.body_timeouts),
            answer_timeouts: get(&self.answer_timeouts),
            send_timeouts: get(&self.send_timeouts),
            broken: get(&self.broken),
            closed_with_requests_in_flight: get(&self.closed_with_requests_in_flight),
            late_answers_dropped: get(&self.late_answers_dropped),
            dropped_at_shutdown: get(&self.dropped_at_shutdown),
            accepted_by_worker: self.accepted_by_worker.iter().map(get).collect(),
        }
    }

    /// Connections open now.
    pub fn open(&self) -> u64 {
        self.open.load(Ordering::Relaxed)
    }
}

impl HttpStats {
    /// An HTTP source's counts among a source's stats (a summary's or a snapshot's).
    pub fn of(stats: &SourceStats) -> Option<HttpStats> {
        if stats.kind != "http" {
            return None;
        }
        let mut counts = serde_json::to_value(&stats.counts).ok()?;
        if let Some(by_worker) = stats.per_worker.get(ACCEPTED_BY_WORKER) {
            counts[ACCEPTED_BY_WORKER] = by_worker.clone().into();
        }
        serde_json::from_value(counts).ok()
    }
}

impl LiveStats for HttpLive {
    fn read(&self) -> SourceStats {
        let mut stats = HttpLive::read(self);
        let by_worker = std::mem::take(&mut stats.accepted_by_worker);
        let counts = serde_json::to_value(stats).expect("counts serialise");
        let counts: BTreeMap<String, u64> = serde_json::from_value(counts).expect("counts are numbers");
        let mut per_worker = BTreeMap::new();
        if !by_worker.is_empty() {
            per_worker.insert(ACCEPTED_BY_WORKER.to_string(), by_worker);
        }
        SourceStats { kind: "http".into(), counts, levels: BTreeMap::from([("open".into(), self.open())]), per_worker }
    }

    fn metrics(&self) -> &'static [StatMetric] {
        HTTP_METRICS
    }
}

const CLOSED: &str = "seda_http_connections_closed_total";
const CLOSED_HELP: &str = "HTTP connections the server closed, by reason.";

/// The Prometheus names of an HTTP source's stats.
const HTTP_METRICS: &[StatMetric] = &[
    metric("open", "seda_http_connections_open", "HTTP connections open now."),
    metric("accepted", "seda_http_connections_accepted_total", "HTTP connections accepted."),
    metric(
        ACCEPTED_BY_WORKER,
        "seda_http_connections_accepted_by_worker_total",
        "HTTP connections accepted by each worker of the entry stage's pool (its own SO_REUSEPORT listener).",
    ),
    metric(
        "refused",
        "seda_http_connections_refused_total",
        "HTTP connections closed at accept: max_connections were open.",
    ),
    metric(
        "refused_per_client",
        "seda_http_connections_refused_per_client_total",
        "HTTP connections closed at accept: max_connections_per_client were open from its address.",
    ),
    metric("requests", "seda_http_requests_total", "HTTP requests framed and admitted into the pipeline."),
    metric(
        "answered",
        "seda_http_answered_total",
        "Answers to admitted HTTP requests that came back from the pipeline.",
    ),
    closed("framing_rejects", &[("reason", "framing_reject")]),
    closed("header_timeouts", &[("reason", "header_timeout")]),
    closed("idle_closed", &[("reason", "idle")]),
    closed("idle_closed_for_room", &[("reason", "idle_for_room")]),
    closed("body_timeouts", &[("reason", "body_timeout")]),
    closed("answer_timeouts", &[("reason", "answer_timeout")]),
    closed("send_timeouts", &[("reason", "send_timeout")]),
    closed("broken", &[("reason", "broken")]),
    closed("dropped_at_shutdown", &[("reason", "shutdown")]),
    metric(
        "closed_with_requests_in_flight",
        "seda_http_closed_with_requests_in_flight_total",
        "HTTP connections that went away with requests still in the pipeline.",
    ),
    metric(
        "late_answers_dropped",
        "seda_http_late_answers_dropped_total",
        "Answers that came back for an HTTP connection that had gone away, dropped.",
    ),
];

const fn metric(stat: &'static str, metric: &'static str, help: &'static str) -> StatMetric {
    StatMetric { stat, metric, labels: &[], help }
}

const fn closed(stat: &'static str, labels: &'static [(&'static str, &'static str)]) -> StatMetric {
    StatMetric { stat, metric: CLOSED, labels, help: CLOSED_HELP }
}
