//! One sending thread against an HTTP server: its share of the connections and of the
//! schedule, on its own mio poll (`--io epoll`) or its own io_uring ring (`--io uring`, see
//! [`super::ring_io`]).
//!
//! Each turn of the loop:
//! 1. open loop: every request now due joins the backlog (bounded; a due request that finds it
//!    full is counted as unsent); closed loop: every connection with room gets a new request;
//! 2. backlog requests go to connections with room, round robin, and are written out;
//! 3. each millisecond, connections whose oldest request outlived `--timeout` are failed, and
//!    closed ones reopened;
//! 4. poll: without waiting when the next send is less than a millisecond away (epoll waits in
//!    whole milliseconds), else until the next thing to do. A ring waits in nanoseconds: it
//!    spins only for the last few microseconds before a send, and its wait also submits the
//!    turn's sends (one system call for both).
//!
//! After the schedule's end no new request starts; the thread waits up to `--timeout` for the
//! ones in flight, then counts what is left as timed out (sent) or unsent (never sent).

use std::collections::VecDeque;
use std::io;
use std::iter::Peekable;
use std::net::SocketAddr;
use std::time::Duration;

use mio::{Events, Poll, Token};

use super::conn::{Connection, Ended, Opening, Pending, State};
use super::ring_io::{Ready, RingIo};
use super::tls::TlsClient;
use crate::clock::now_ns;
use crate::loadgen::correction::Timing;
use crate::loadgen::mix::Mix;
use crate::loadgen::options::Checks;
use crate::loadgen::run_end::RunEnd;
use crate::loadgen::schedule::{Arrivals, Schedule};
use crate::loadgen::tally::{ErrorKind, ThreadTally};

/// What one sending thread does.
pub struct HttpJob<'a> {
    pub thread: usize,
    pub threads: usize,
    pub schedule: &'a Schedule,
    /// Open loop (the schedule's send times) or closed (as fast as responses come).
    pub open: bool,
    pub addr: SocketAddr,
    /// Each request kind of the mix, encoded.
    pub requests: &'a [Vec<u8>],
    pub heads: &'a [bool],
    pub mix: &'a Mix,
    pub counting: Counting<'a>,
    /// For an https:// target.
    pub tls: Option<&'a TlsClient>,
    pub connections: usize,
    pub depth: usize,
    pub timeout_ns: u64,
    /// Requests due and waiting for a free connection, at most.
    pub backlog: usize,
    /// The run's start (clock ns), shared by every thread.
    pub start_ns: u64,
    /// Its end, shared too.
    pub run_end: &'a RunEnd,
    pub tally: ThreadTally,
    pub io: IoBackend,
}

/// How a sending thread does its I/O (`--io`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoBackend {
    /// Readiness: mio (epoll), a system call per send and per receive.
    Epoll,
    /// Completions: an io_uring ring, a turn's sends and the wait in one system call.
    Uring,
}

impl IoBackend {
    pub fn name(self) -> &'static str {
        match self {
            IoBackend::Epoll => "epoll",
            IoBackend::Uring => "uring",
        }
    }
}

/// A sending thread's I/O mechanism.
enum Io {
    Epoll { poll: Poll, events: Events },
    Ring { ring: Box<RingIo>, ready: Vec<Ready> },
}

/// A send due sooner than this is waited for by spinning on the poll.
const SPIN_NS: u64 = 1_000_000;
/// The same on a ring, whose waits are in nanoseconds: what waking up may take.
const RING_SPIN_NS: u64 = 20_000;
/// How often timeouts are checked and closed connections reopened.
const HOUSEKEEPING_NS: u64 = 1_000_000;

/// Connections that may have room for a request, each listed once, in the order they got it.
/// Only connections that had an event are offered, so a turn costs what happened in it, not
/// the number of connections.
struct Room {
    queue: VecDeque<usize>,
    listed: Vec<bool>,
}

impl Room {
    fn new(connections: usize) -> Self {
        Room { queue: VecDeque::with_capacity(connections), listed: vec![false; connections] }
    }

    fn offer(&mut self, i: usize, conn: &Connection) {
        if !self.listed[i] && conn.has_room() {
            self.listed[i] = true;
            self.queue.push_back(i);
        }
    }

    /// The connection with room that is next in turn (it stays listed until [`Room::used`]).
    fn next(&mut self, conns: &[Connection]) -> Option<usize> {
        while let Some(&i) = self.queue.front() {
            if conns[i].has_room() {
                return Some(i);
            }
            self.queue.pop_front();
            self.listed[i] = false;
        }
        None
    }

    /// Connection `i`, just given a request, goes to the back of the queue if it has room
    /// left: round robin.
    fn used(&mut self, i: usize, conn: &Connection) {
        self.queue.pop_front();
        self.listed[i] = false;
        self.offer(i, conn);
    }

    /// Takes the next connection off the queue.
    fn take(&mut self) -> Option<usize> {
        let i = self.queue.pop_front()?;
        self.listed[i] = false;
        Some(i)
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// How the requests that end are counted: the checks a response must pass, and whether each
/// kind of request is counted apart too.
#[derive(Clone, Copy)]
pub struct Counting<'a> {
    pub checks: &'a Checks,
    pub per_kind: bool,
}

impl Counting<'_> {
    fn kind(&self, kind: u32) -> Option<u32> {
        self.per_kind.then_some(kind)
    }
}

/// How a request that left a connection is counted.
fn count(tally: &mut ThreadTally, counting: Counting<'_>, p: Pending, how: Ended) {
    let phase = tally.phase(p.phase as usize);
    let timing =
        |done_ns| Timing { intended_ns: p.intended_ns, dispatched_ns: p.dispatched_ns, sent_ns: p.sent_ns, done_ns };
    let kind = counting.kind(p.kind);
    match how {
        Ended::Response { status, done_ns, text_found } => {
            let failed_check = counting.checks.failed(status, text_found);
            phase.and_kind(kind, |t| t.checked_response(&timing(done_ns), status, failed_check))
        }
        Ended::Error(ErrorKind::Unsent) => phase.and_kind(kind, |t| t.error(ErrorKind::Unsent)),
        Ended::Error(error) => phase.and_kind(kind, |t| t.failed(&timing(0), error)),
    }
}

/// The state of a running [`HttpJob`].
struct Sender<'a> {
    job: HttpJob<'a>,
    io: Io,
    conns: Vec<Connection>,
    arrivals: Peekable<Arrivals<'a>>,
    /// (intended, dispatched, phase, kind) of each request waiting for a free connection.
    backlog: VecDeque<(u64, u64, u32, u32)>,
    room: Room,
    /// Connections with requests to write this turn.
    dirty: Vec<usize>,
    /// Request number of the next request, for the mix's draw.
    next_request: u64,
    next_housekeeping_ns: u64,
}

impl HttpJob<'_> {
    pub fn send_until_done(self) -> io::Result<()> {
        let schedule = self.schedule;
        let io = match self.io {
            IoBackend::Epoll => Io::Epoll { poll: Poll::new()?, events: Events::with_capacity(1024) },
            IoBackend::Uring => Io::Ring { ring: Box::new(RingIo::new(self.connections)?), ready: Vec::new() },
        };
        let mut sender = Sender {
            io,
            conns: (0..self.connections)
                .map(|_| {
                    let text = self.counting.checks.body_contains.as_deref().map(|t| t.as_bytes().into());
                    Connection::new(self.depth, text, self.tls.cloned())
                })
                .collect(),
            arrivals: schedule.arrivals(self.thread, self.threads).peekable(),
            backlog: VecDeque::with_capacity(self.backlog.min(1 << 16)),
            room: Room::new(self.connections),
            dirty: Vec::with_capacity(self.connections),
            next_request: self.thread as u64,
            next_housekeeping_ns: 0,
            job: self,
        };
        loop {
            let now = now_ns();
            sender.job.tally.tick(now);
            let running = now < sender.job.run_end.end_ns();
            if sender.job.open {
                sender.take_due(now);
                sender.send_backlog();
            } else if running && now >= sender.job.start_ns {
                sender.send_closed_loop(now);
            }
            sender.flush();
            if now >= sender.next_housekeeping_ns {
                sender.housekeeping(now, running);
            }
            if !running && sender.finished(now) {
                break;
            }
            sender.wait(running)?;
        }
        sender.job.tally.finish();
        Ok(())
    }
}

impl Sender<'_> {
    /// Step 4: waits for the network, and handles what it says.
    fn wait(&mut self, running: bool) -> io::Result<()> {
        let timeout = self.poll_timeout(running);
        match &mut self.io {
            Io::Epoll { poll, events } => {
                match poll.poll(events, Some(timeout)) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
                    Err(e) => return Err(e),
                }
                let ready: Vec<_> = events
                    .iter()
                    .map(|event| {
                        let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                        let writable = event.is_writable() || event.is_write_closed();
                        (event.token().0, readable, writable)
                    })
                    .collect();
                for (i, readable, writable) in ready {
                    self.ready(i, readable, writable);
                }
            }
            Io::Ring { ring, ready } => {
                ring.wait(timeout, &mut self.conns, ready);
                let mut ready = std::mem::take(ready);
                for r in ready.drain(..) {
                    self.ready(r.slot, r.readable, r.writable);
                }
                if let Io::Ring { ready: kept, .. } = &mut self.io {
                    *kept = ready;
                }
            }
        }
        Ok(())
    }

    /// On a ring: starts what connection `i` needs (its receive, the send of what it wrote).
    fn sync(&mut self, i: usize) {
        if let Io::Ring { ring, .. } = &mut self.io {
            ring.sync(i, &mut self.conns[i]);
        }
    }

    /// After the end, how long requests in flight are waited for.
    fn give_up_ns(&self) -> u64 {
        self.job.run_end.end_ns() + self.job.timeout_ns
    }

    /// Whether a request of this thread's schedule is due before the end.
    fn more_due(&mut self) -> bool {
        let end_ns = self.job.run_end.end_ns();
        let start_ns = self.job.start_ns;
        self.arrivals.peek().is_some_and(|&(due, _)| start_ns + due < end_ns)
    }

    /// Step 1, open loop: every request now due joins the backlog, or is unsent if it is full.
    fn take_due(&mut self, now: u64) {
        let start_ns = self.job.start_ns;
        while self.more_due() {
            let &(due, phase) = self.arrivals.peek().expect("more are due");
            if start_ns + due > now {
                break;
            }
            self.arrivals.next();
            let kind = self.next_kind();
            if self.backlog.len() < self.job.backlog {
                self.backlog.push_back((start_ns + due, now, phase as u32, kind));
            } else {
                let kind = self.job.counting.kind(kind);
                self.job.tally.phase(phase).and_kind(kind, |t| t.error(ErrorKind::Unsent));
            }
        }
    }

    /// Step 2, open loop: backlog requests onto connections with room, round robin.
    fn send_backlog(&mut self) {
        while !self.backlog.is_empty() {
            let Some(i) = self.room.next(&self.conns) else { break };
            let (intended_ns, dispatched_ns, phase, kind) = self.backlog.pop_front().expect("not empty");
            self.push(i, Pending { intended_ns, dispatched_ns, sent_ns: 0, phase, head: false, kind });
            self.room.used(i, &self.conns[i]);
        }
    }

    /// Step 2, closed loop: every connection with room filled with new requests.
    fn send_closed_loop(&mut self, now: u64) {
        let phase = self.job.schedule.phase_at(now - self.job.start_ns) as u32;
        while let Some(i) = self.room.take() {
            while self.conns[i].has_room() {
                let kind = self.next_kind();
                self.push(i, Pending { intended_ns: 0, dispatched_ns: 0, sent_ns: 0, phase, head: false, kind });
            }
        }
    }

    /// The kind of this thread's next request, drawn from the mix.
    fn next_kind(&mut self) -> u32 {
        let kind = self.job.mix.pick(self.next_request);
        self.next_request += self.job.threads as u64;
        kind as u32
    }

    /// Queues a request of its kind on connection `i`.
    fn push(&mut self, i: usize, mut pending: Pending) {
        let kind = pending.kind as usize;
        pending.head = self.job.heads[kind];
        self.conns[i].push(&self.job.requests[kind], pending);
        self.dirty.push(i);
    }

    /// Writes what this turn queued.
    fn flush(&mut self) {
        let counting = self.job.counting;
        let tally = &mut self.job.tally;
        let mut dirty = std::mem::take(&mut self.dirty);
        for &i in &dirty {
            self.conns[i].flush(&mut |p, how| count(tally, counting, p, how));
        }
        for &i in &dirty {
            self.sync(i);
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// Step 3: timeouts, and reopening closed connections while they are needed.
    fn housekeeping(&mut self, now: u64, running: bool) {
        self.next_housekeeping_ns = now + HOUSEKEEPING_NS;
        let needed = running || !self.backlog.is_empty();
        let counting = self.job.counting;
        let tally = &mut self.job.tally;
        for (i, conn) in self.conns.iter_mut().enumerate() {
            if conn.expired(now, self.job.timeout_ns) {
                conn.fail(ErrorKind::Timeout, &mut |p, how| count(tally, counting, p, how));
            }
            if let Some(kind) = conn.opening_expired(now, self.job.timeout_ns) {
                conn.opening_failed(kind);
                let phase = self.job.schedule.phase_at(now.saturating_sub(self.job.start_ns));
                tally.phase(phase).error(kind);
            }
            if let State::Down { retry_ns } = conn.state {
                if needed && retry_ns <= now {
                    let connected = match &self.io {
                        Io::Epoll { poll, .. } => conn.connect(self.job.addr, poll.registry(), Token(i)),
                        Io::Ring { .. } => conn.connect_ring(self.job.addr),
                    };
                    if let Err(kind) = connected {
                        let phase = self.job.schedule.phase_at(now.saturating_sub(self.job.start_ns));
                        tally.phase(phase).error(kind);
                    }
                }
            }
        }
        for i in 0..self.conns.len() {
            self.sync(i);
        }
    }

    /// After the schedule's end: true once nothing is left to send or in flight, or time is
    /// up, when whatever is left is counted (timed out if sent, unsent if not).
    fn finished(&mut self, now: u64) -> bool {
        if self.job.open && self.more_due() {
            return false;
        }
        let in_flight: usize = self.conns.iter().map(Connection::in_flight).sum();
        if (!self.backlog.is_empty() || in_flight > 0) && now < self.give_up_ns() {
            return false;
        }
        let counting = self.job.counting;
        let tally = &mut self.job.tally;
        for conn in &mut self.conns {
            conn.fail(ErrorKind::Timeout, &mut |p, how| count(tally, counting, p, how));
        }
        for (_, _, phase, kind) in self.backlog.drain(..) {
            tally.phase(phase as usize).and_kind(counting.kind(kind), |t| t.error(ErrorKind::Unsent));
        }
        true
    }

    /// Step 4: how long to wait for the network. epoll waits in whole milliseconds: a send
    /// due within one is waited for by polling without waiting (spinning); ticks,
    /// housekeeping and the end can come a little late instead.
    fn poll_timeout(&mut self, running: bool) -> Duration {
        let start_ns = self.job.start_ns;
        let mut coarse = self.job.tally.next_tick_ns().min(self.next_housekeeping_ns);
        coarse = coarse.min(if running { self.job.run_end.end_ns() } else { self.give_up_ns() });
        let now = now_ns();
        if now < start_ns {
            coarse = coarse.min(start_ns);
        }
        if let Io::Ring { .. } = self.io {
            let mut timeout_ns = coarse.saturating_sub(now);
            if self.job.open {
                if let Some(&(due, _)) = self.arrivals.peek() {
                    timeout_ns = timeout_ns.min((start_ns + due).saturating_sub(now + RING_SPIN_NS));
                }
                if !self.backlog.is_empty() && !self.room.is_empty() {
                    timeout_ns = 0;
                }
            }
            return Duration::from_nanos(timeout_ns);
        }
        let mut timeout_ms = coarse.saturating_sub(now).div_ceil(1_000_000);
        if self.job.open {
            if let Some(&(due, _)) = self.arrivals.peek() {
                timeout_ms = timeout_ms.min((start_ns + due).saturating_sub(now + SPIN_NS) / 1_000_000);
            }
            if !self.backlog.is_empty() && !self.room.is_empty() {
                timeout_ms = 0;
            }
        }
        Duration::from_millis(timeout_ms)
    }

    /// A readiness event on connection `i`.
    fn ready(&mut self, i: usize, readable: bool, writable: bool) {
        let counting = self.job.counting;
        let tally = &mut self.job.tally;
        let conn = &mut self.conns[i];
        if let Some(opening) = conn.ready(readable, writable, &mut |p, how| count(tally, counting, p, how)) {
            let phase = tally.phase(self.job.schedule.phase_at(now_ns().saturating_sub(self.job.start_ns)));
            match opening {
                Opening::Failed(kind) => phase.error(kind),
                Opening::Handshake { ns, resumed } => phase.handshake(ns, resumed),
            }
        }
        self.room.offer(i, conn);
        self.sync(i);
    }
}
