//! One sending thread against an HTTP server: its share of the connections and of the
//! schedule, on its own mio poll.
//!
//! Each turn of the loop:
//! 1. open loop: every request now due joins the backlog (bounded; a due request that finds it
//!    full is counted as unsent); closed loop: every connection with room gets a new request;
//! 2. backlog requests go to connections with room, round robin, and are written out;
//! 3. each millisecond, connections whose oldest request outlived `--timeout` are failed, and
//!    closed ones reopened;
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

/// A send due sooner than this is waited for by spinning on the poll.
const SPIN_NS: u64 = 1_000_000;

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
        let (mut next_kind, mut next_expiry_check) = (self.thread as u64, 0u64);
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
        // Connections that may have room for a request, each listed once, in the order they
        // got it; and those with requests to write this turn. Only these are visited, so a
        // turn costs what happened in it, not the number of connections.
        let n = conns.len();
        let mut room: VecDeque<usize> = VecDeque::with_capacity(n);
        let mut listed = vec![false; n];
        let mut dirty: Vec<usize> = Vec::with_capacity(n);
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

            // 2. Onto connections with room, then written out.
            if self.open {
                while !backlog.is_empty() {
                    let Some(&i) = room.front() else { break };
                    if !conns[i].has_room() {
                        room.pop_front();
                        listed[i] = false;
                        continue;
                    }
                    let (intended_ns, dispatched_ns, phase) = backlog.pop_front().expect("not empty");
                    let kind = self.mix.pick(next_kind);
                    next_kind += self.threads as u64;
                    let pending = Pending { intended_ns, dispatched_ns, sent_ns: 0, phase, head: self.heads[kind] };
                    conns[i].push(&self.requests[kind], pending);
                    dirty.push(i);
                    // Round robin: a connection with room left goes to the back.
                    room.pop_front();
                    if conns[i].has_room() {
                        room.push_back(i);
                    } else {
                        listed[i] = false;
                    }
                }
            } else if started && running {
                let phase = schedule.phase_at(now - start_ns) as u32;
                while let Some(i) = room.pop_front() {
                    listed[i] = false;
                    while conns[i].has_room() {
                        let kind = self.mix.pick(next_kind);
                        next_kind += self.threads as u64;
                        let pending =
                            Pending { intended_ns: 0, dispatched_ns: 0, sent_ns: 0, phase, head: self.heads[kind] };
                        conns[i].push(&self.requests[kind], pending);
                        dirty.push(i);
                    }
                }
            }
            for i in dirty.drain(..) {
                conns[i].flush(&mut |p, how| end(p, how, tally));
            }

            // 3. Each millisecond: timeouts, and reopening closed connections.
            if now >= next_expiry_check {
                next_expiry_check = now + 1_000_000;
                let needed = running || !backlog.is_empty();
                for (i, conn) in conns.iter_mut().enumerate() {
                    if conn.expired(now, self.timeout_ns) {
                        conn.fail(ErrorKind::Timeout, &mut |p, how| end(p, how, tally));
                    }
                    if let State::Down { retry_ns } = conn.state {
                        if needed && retry_ns <= now {
                            if let Err(kind) = conn.connect(self.addr, poll.registry(), Token(i)) {
                                tally.phase(schedule.phase_at(now.saturating_sub(start_ns))).error(kind);
                            }
                        }
                    }
                }
            }

            // The end: nothing left to send and nothing in flight, or out of time.
            let exhausted = !self.open || arrivals.peek().is_none();
            if !running && exhausted {
                let in_flight: usize = conns.iter().map(Connection::in_flight).sum();
                if (backlog.is_empty() && in_flight == 0) || now >= give_up_ns {
                    for conn in &mut conns {
                        conn.fail(ErrorKind::Timeout, &mut |p, how| end(p, how, tally));
                    }
                    for (_, _, phase) in backlog.drain(..) {
                        tally.phase(phase as usize).error(ErrorKind::Unsent);
                    }
                    break;
                }
            }

            // 4. Wait for the network, or for the next thing due. epoll waits in whole
            // milliseconds: a send due within one is waited for by polling without waiting
            // (spinning); ticks, timeouts and the end can come a little late instead.
            let mut coarse = tally.next_tick_ns().min(if running { end_ns } else { give_up_ns }).min(next_expiry_check);
            if !started {
                coarse = coarse.min(start_ns);
            }
            let now = now_ns();
            let mut timeout_ms = coarse.saturating_sub(now).div_ceil(1_000_000);
            if self.open {
                if let Some(&(due, _)) = arrivals.peek() {
                    timeout_ms = timeout_ms.min((start_ns + due).saturating_sub(now + SPIN_NS) / 1_000_000);
                }
                if !backlog.is_empty() && !room.is_empty() {
                    timeout_ms = 0;
                }
            }
            let timeout = Duration::from_millis(timeout_ms);
            match poll.poll(&mut events, Some(timeout)) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            for event in events.iter() {
                let i = event.token().0;
                let conn = &mut conns[i];
                let readable = event.is_readable() || event.is_read_closed() || event.is_error();
                let writable = event.is_writable() || event.is_write_closed();
                if let Some(kind) = conn.ready(readable, writable, &mut |p, how| end(p, how, tally)) {
                    tally.phase(schedule.phase_at(now_ns().saturating_sub(start_ns))).error(kind);
                }
                if !listed[i] && conn.has_room() {
                    listed[i] = true;
                    room.push_back(i);
                }
            }
        }
        self.tally.finish();
        Ok(())
    }
}
