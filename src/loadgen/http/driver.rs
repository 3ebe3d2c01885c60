//! One sending thread against an HTTP server: its share of the connections and of the
//! schedule, on its own mio poll.
//!
//! Each turn of the loop:
//! 1. open loop: every request now due joins the backlog (bounded; a due request that finds it
//!    full is counted as unsent); closed loop: every connection with room gets a new request;
//! 2. backlog requests go to connections with room, round robin, and are written out;
//! 3. connections whose oldest request outlived `--timeout` are failed, closed ones reopened;
//! 4. poll: without waiting when the next send is less than a millisecond away (epoll waits in
//!    whole milliseconds), else until the next thing to do.
//!
//! After the schedule's end no new request starts; the thread waits up to `--timeout` for the
//! ones in flight, then counts what is left as timed out (sent) or unsent (never sent).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mio::{Events, Poll, Token};

use super::conn::{Connection, Ended, Pending, State};
use crate::clock::now_ns;
use crate::loadgen::correction::Timing;
use crate::loadgen::mix::Mix;
use crate::loadgen::schedule::Schedule;
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
    pub connections: usize,
    pub depth: usize,
    pub timeout_ns: u64,
    /// Requests due and waiting for a free connection, at most.
    pub backlog: usize,
    /// The run's start (clock ns), shared by every thread.
    pub start_ns: u64,
    pub tally: ThreadTally,
}

const POLL_SPIN_NS: u64 = 1_000_000;

impl HttpJob<'_> {
    pub fn run(mut self) -> io::Result<()> {
        let mut poll = Poll::new()?;
        let mut events = Events::with_capacity(1024);
        let mut conns: Vec<Connection> = (0..self.connections).map(|_| Connection::new(self.depth)).collect();
        let mut arrivals = self.schedule.arrivals(self.thread, self.threads).peekable();
        // (intended, dispatched, phase) of each request waiting for a free connection.
        let mut backlog: VecDeque<(u64, u64, u32)> = VecDeque::with_capacity(self.backlog.min(1 << 16));
        let end_ns = self.start_ns + self.schedule.length_ns();
        let give_up_ns = end_ns + self.timeout_ns;
        let (mut next_kind, mut cursor, mut next_expiry_check) = (self.thread as u64, 0usize, 0u64);
        let tally = &mut self.tally;
        let schedule = self.schedule;
        let start_ns = self.start_ns;
        // How a request that left a connection is counted.
        let end = |p: Pending, how: Ended, tally: &mut ThreadTally| {
            let phase = tally.phase(p.phase as usize);
            match how {
                Ended::Response { status, done_ns } => {
                    let timing = Timing {
                        intended_ns: p.intended_ns,
                        dispatched_ns: p.dispatched_ns,
                        sent_ns: p.sent_ns,
                        done_ns,
                    };
                    phase.response(&timing, status)
                }
                Ended::Error(ErrorKind::Unsent) => phase.error(ErrorKind::Unsent),
                Ended::Error(kind) => {
                    let timing = Timing {
                        intended_ns: p.intended_ns,
                        dispatched_ns: p.dispatched_ns,
                        sent_ns: p.sent_ns,
                        done_ns: 0,
                    };
                    phase.failed(&timing, kind)
                }
            }
        };
        loop {
            let now = now_ns();
            tally.tick(now);
            let running = now < end_ns;
            let started = now >= start_ns;

            // 1. What is due.
            if self.open {
                while let Some(&(due, phase)) = arrivals.peek() {
                    if start_ns + due > now {
                        break;
                    }
                    arrivals.next();
                    if backlog.len() < self.backlog {
                        backlog.push_back((start_ns + due, now, phase as u32));
                    } else {
                        tally.phase(phase).error(ErrorKind::Unsent);
                    }
                }
            }

            // 2. Onto connections.
            let n = conns.len();
            if self.open {
                'backlog: while let Some(&(intended_ns, dispatched_ns, phase)) = backlog.front() {
                    for step in 0..n {
                        let i = (cursor + step) % n;
                        if conns[i].has_room() {
                            backlog.pop_front();
                            let kind = self.mix.pick(next_kind);
                            next_kind += self.threads as u64;
                            let pending =
                                Pending { intended_ns, dispatched_ns, sent_ns: 0, phase, head: self.heads[kind] };
                            conns[i].push(&self.requests[kind], pending);
                            cursor = (i + 1) % n;
                            continue 'backlog;
                        }
                    }
                    break;
                }
            } else if started && running {
                let phase = schedule.phase_at(now - start_ns) as u32;
                for conn in conns.iter_mut() {
                    while conn.has_room() {
                        let kind = self.mix.pick(next_kind);
                        next_kind += self.threads as u64;
                        conn.push(
                            &self.requests[kind],
                            Pending { intended_ns: 0, dispatched_ns: 0, sent_ns: 0, phase, head: self.heads[kind] },
                        );
                    }
                }
            }
            for conn in conns.iter_mut().filter(|c| c.has_unwritten()) {
                conn.flush(&mut |p, how| end(p, how, tally));
            }

            // 3. Timeouts (checked each millisecond) and reopening.
            let needed = running || !backlog.is_empty();
            if now >= next_expiry_check {
                next_expiry_check = now + 1_000_000;
                for conn in conns.iter_mut().filter(|c| c.expired(now, self.timeout_ns)) {
                    conn.fail(ErrorKind::Timeout, &mut |p, how| end(p, how, tally));
                }
            }
            for (i, conn) in conns.iter_mut().enumerate() {
                if let State::Down { retry_ns } = conn.state {
                    if needed && retry_ns <= now {
                        if let Err(kind) = conn.connect(self.addr, poll.registry(), Token(i)) {
                            tally.phase(schedule.phase_at(now.saturating_sub(start_ns))).error(kind);
                        }
                    }
                }
            }

            // The end: nothing left to send and nothing in flight, or out of time.
            let in_flight: usize = conns.iter().map(Connection::in_flight).sum();
            let exhausted = !self.open || arrivals.peek().is_none();
            if !running && exhausted && ((backlog.is_empty() && in_flight == 0) || now >= give_up_ns) {
                for conn in &mut conns {
                    conn.fail(ErrorKind::Timeout, &mut |p, how| end(p, how, tally));
                }
                for (_, _, phase) in backlog.drain(..) {
                    tally.phase(phase as usize).error(ErrorKind::Unsent);
                }
                break;
            }

            // 4. Wait for the network, or for the next thing due.
            let mut wake = tally.next_tick_ns().min(if running { end_ns } else { give_up_ns });
            if !started {
                wake = wake.min(start_ns);
            }
            if self.open {
                if let Some(&(due, _)) = arrivals.peek() {
                    wake = wake.min(start_ns + due);
                }
            }
            if in_flight > 0 {
                wake = wake.min(next_expiry_check);
            }
            let wait = wake.saturating_sub(now_ns());
            let timeout = if wait < POLL_SPIN_NS || (self.open && !backlog.is_empty()) {
                Duration::ZERO
            } else {
                Duration::from_millis((wait - POLL_SPIN_NS) / 1_000_000)
            };
            match poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                let conn = &mut conns[event.token().0];
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                let writable = event.is_writable() || event.is_write_closed();
                if let Some(kind) = conn.ready(readable, writable, &mut |p, how| end(p, how, tally)) {
                    tally.phase(schedule.phase_at(now_ns().saturating_sub(start_ns))).error(kind);
                }
            }
        }
        self.tally.finish();
        Ok(())
    }
}
