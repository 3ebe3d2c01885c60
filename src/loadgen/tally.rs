//! What happened to the requests of one phase, counted by the thread that sent them, and the
//! reports that carry those counts to the collector once per interval.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::Serialize;

use super::correction::{Latencies, Timing};
use crate::metrics::{new_histogram, HIGHEST_NS};

/// Why a request got no usable response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// A connection could not be opened (counted per attempt, not per request).
    Connect,
    /// No complete response within `--timeout`.
    Timeout,
    /// The connection failed or closed while the request waited, or the response was malformed.
    Read,
    /// Writing the request failed.
    Write,
    /// Its send time came while the backlog of requests waiting for a free connection was
    /// full, or the run ended before a connection was free: it was never sent.
    Unsent,
    /// In-process: the pipeline rejected it (a full queue, shutdown).
    Rejected,
    /// In-process: a stage failed it.
    Failed,
    /// A response whose status `--expect-status` does not accept (without it: 4xx or 5xx).
    UnexpectedStatus,
    /// A response without the text of `--expect-body-contains` in its body.
    MissingText,
    /// A TLS handshake failed (an untrusted certificate, a protocol error) or did not finish
    /// within `--timeout`; counted per attempt, as `connect` is.
    Tls,
}

impl ErrorKind {
    pub const ALL: [ErrorKind; 10] = [
        ErrorKind::Connect,
        ErrorKind::Timeout,
        ErrorKind::Read,
        ErrorKind::Write,
        ErrorKind::Unsent,
        ErrorKind::Rejected,
        ErrorKind::Failed,
        ErrorKind::UnexpectedStatus,
        ErrorKind::MissingText,
        ErrorKind::Tls,
    ];

    /// The kind called `name` (as in the results).
    pub fn named(name: &str) -> Option<ErrorKind> {
        ErrorKind::ALL.into_iter().find(|k| k.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            ErrorKind::Connect => "connect",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Read => "read",
            ErrorKind::Write => "write",
            ErrorKind::Unsent => "unsent",
            ErrorKind::Rejected => "rejected",
            ErrorKind::Failed => "failed",
            ErrorKind::UnexpectedStatus => "unexpected_status",
            ErrorKind::MissingText => "missing_text",
            ErrorKind::Tls => "tls",
        }
    }
}

/// One phase's counts, from one thread or merged.
#[derive(Clone, Default)]
pub struct Tally {
    /// Latencies of every response (any status); send lag of every request sent.
    pub latencies: Latencies,
    /// Requests sent (written to a connection, or submitted to the pipeline), counted as
    /// they end.
    pub sent: u64,
    /// Requests that got a complete response.
    pub responses: u64,
    /// Responses by status class: `[other, 1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub status: [u64; 6],
    /// By [`ErrorKind`], in the order of [`ErrorKind::ALL`].
    pub errors: [u64; 10],
    /// When the last response came (clock ns), to see how far past its phase the phase ran.
    pub last_done_ns: u64,
    /// The same counts per kind of request (by its index in the mix), when the run keeps them.
    pub by_kind: BTreeMap<u32, Tally>,
    /// The TLS handshakes of the connections opened (https:// only), apart from the requests'
    /// latency.
    pub handshakes: Option<Box<Handshakes>>,
}

/// TLS handshakes: how many, how many resumed an earlier session, and how long they took
/// (from the TCP connection's opening to the handshake's end).
#[derive(Clone)]
pub struct Handshakes {
    pub count: u64,
    pub resumed: u64,
    pub time: Histogram<u64>,
}

impl Default for Handshakes {
    fn default() -> Self {
        Handshakes { count: 0, resumed: 0, time: new_histogram() }
    }
}

impl Handshakes {
    fn add(&mut self, other: &Handshakes) {
        self.count += other.count;
        self.resumed += other.resumed;
        let _ = self.time.add(&other.time);
    }
}

impl Tally {
    /// A TLS handshake that took `ns`.
    pub fn handshake(&mut self, ns: u64, resumed: bool) {
        let h = self.handshakes.get_or_insert_with(Box::default);
        h.count += 1;
        h.resumed += u64::from(resumed);
        h.time.saturating_record(ns.min(HIGHEST_NS));
    }

    /// The counts of request kind `kind`.
    pub fn kind(&mut self, kind: u32) -> &mut Tally {
        self.by_kind.entry(kind).or_default()
    }

    /// Counts with `count` here and, when `kind` is given, under that kind too.
    pub fn and_kind(&mut self, kind: Option<u32>, count: impl Fn(&mut Tally)) {
        count(self);
        if let Some(kind) = kind {
            count(self.kind(kind));
        }
    }

    /// A response; `failed_check` is the check it failed, if any (it still has its latency).
    pub fn checked_response(&mut self, timing: &Timing, status: u16, failed_check: Option<ErrorKind>) {
        self.response(timing, status);
        match failed_check {
            Some(kind) => self.error(kind),
            None => self.latencies.good.saturating_record(timing.corrected_ns().min(HIGHEST_NS)),
        }
    }

    pub fn response(&mut self, timing: &Timing, status: u16) {
        self.latencies.record(timing);
        self.sent += 1;
        self.responses += 1;
        let class = usize::from(status / 100);
        self.status[if (1..=5).contains(&class) { class } else { 0 }] += 1;
        self.last_done_ns = self.last_done_ns.max(timing.done_ns);
    }

    /// A request that was sent and ended without a response.
    pub fn failed(&mut self, timing: &Timing, kind: ErrorKind) {
        self.latencies.record_sending(timing);
        self.sent += 1;
        self.error(kind);
    }

    /// An error that is not a sent request's: a failed connect, a request never sent.
    pub fn error(&mut self, kind: ErrorKind) {
        self.errors[kind as usize] += 1;
    }

    /// Requests the phase issued: sent, or due and never sent.
    pub fn requests(&self) -> u64 {
        self.sent + self.errors[ErrorKind::Unsent as usize]
    }

    /// Every error: requests without a response, and responses that failed a check (by
    /// default, a status of 4xx or 5xx).
    pub fn error_count(&self) -> u64 {
        self.errors.iter().sum::<u64>()
    }

    pub fn add(&mut self, other: &Tally) {
        self.latencies.add(&other.latencies);
        self.sent += other.sent;
        self.responses += other.responses;
        for (a, b) in self.status.iter_mut().zip(other.status) {
            *a += b;
        }
        for (a, b) in self.errors.iter_mut().zip(other.errors) {
            *a += b;
        }
        self.last_done_ns = self.last_done_ns.max(other.last_done_ns);
        for (&kind, tally) in &other.by_kind {
            self.kind(kind).add(tally);
        }
        if let Some(h) = &other.handshakes {
            self.handshakes.get_or_insert_with(Box::default).add(h);
        }
    }
}

/// From a sending thread to the collector.
pub enum Report {
    /// The counts of interval `index` (by completion time), per phase (by send schedule); the
    /// thread now counts into interval `next`.
    Interval { thread: usize, index: u64, next: u64, phases: Vec<(usize, Tally)> },
    /// The thread has sent everything and counted every ending.
    Done { thread: usize },
}

/// A sending thread's counts for the current interval, sent on once the interval is over.
pub struct ThreadTally {
    thread: usize,
    start_ns: u64,
    interval_ns: u64,
    index: u64,
    /// Per phase touched in this interval (rarely more than one).
    phases: Vec<(usize, Tally)>,
    reports: flume::Sender<Report>,
}

impl ThreadTally {
    pub fn new(thread: usize, start_ns: u64, interval_ns: u64, reports: flume::Sender<Report>) -> Self {
        ThreadTally { thread, start_ns, interval_ns, index: 0, phases: Vec::new(), reports }
    }

    /// The counts of `phase` in the current interval.
    pub fn phase(&mut self, phase: usize) -> &mut Tally {
        let i = match self.phases.iter().position(|(p, _)| *p == phase) {
            Some(i) => i,
            None => {
                self.phases.push((phase, Tally::default()));
                self.phases.len() - 1
            }
        };
        &mut self.phases[i].1
    }

    /// When the next interval begins (clock ns).
    pub fn next_tick_ns(&self) -> u64 {
        self.start_ns + (self.index + 1) * self.interval_ns
    }

    /// Sends the interval's counts on if `now` is past it. Blocks if the collector is behind
    /// (the channel is bounded), which it only is when it cannot keep up with one report per
    /// thread per interval.
    pub fn tick(&mut self, now: u64) {
        if now >= self.next_tick_ns() {
            let next = (now - self.start_ns) / self.interval_ns;
            self.send(next);
        }
    }

    fn send(&mut self, next: u64) {
        let phases = std::mem::take(&mut self.phases);
        let report = Report::Interval { thread: self.thread, index: self.index, next, phases };
        // The collector outlives every sender; a send can only fail if it panicked.
        let _ = self.reports.send(report);
        self.index = next;
    }

    /// Sends what is left, then says the thread is done.
    pub fn finish(mut self) {
        self.send(u64::MAX);
        let _ = self.reports.send(Report::Done { thread: self.thread });
    }
}
