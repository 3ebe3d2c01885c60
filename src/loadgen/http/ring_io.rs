//! A sending thread's connections on one io_uring ring (`--io uring`), built on the ring layer
//! the HTTP server uses too ([`crate::net::ring`]).
//!
//! 1. Connects: the socket is opened non-blocking as with epoll; a poll for writable, through
//!    the ring, says when the connect has an outcome.
//! 2. Receives: one multishot receive per open connection, into the ring's provided buffers;
//!    the bytes are copied into the connection's inbox ([`RingStream`]) and the buffer goes back
//!    at once, so an idle connection holds none.
//! 3. Sends: at most one in flight per connection, of what it wrote into its outbox, moved
//!    into a buffer the slot keeps (`lent`) until the send completes: so a connection closed
//!    with a send in flight cannot free what the kernel reads.
//! 4. One `io_uring_enter` per turn: it submits the turn's sends and waits, with a timeout
//!    in nanoseconds (the next send of an open-loop schedule), for completions.
//! 5. A closed connection's socket is shut down ([`RingStream`]'s `Drop`), which ends its
//!    operations; their completions carry the slot's old generation and are dropped.

#![deny(unsafe_op_in_unsafe_fn)]

use std::io;
use std::time::{Duration, Instant};

use io_uring::types::Fd;
use io_uring::{cqueue, opcode, squeue};

use super::conn::{Connection, State};
use crate::net::ring::{self, Ring, BUFFER_GROUP};

/// Submission queue entries (the completion queue is four times as long).
const RING_ENTRIES: u32 = 1024;

/// What an operation is, in its `user_data`.
const CONNECT: u8 = 1;
const RECEIVE: u8 = 2;
const SEND: u8 = 3;

/// The operations a slot has in flight, each with the generation of the socket it is for.
#[derive(Default)]
struct SlotOps {
    connect: Option<u32>,
    receive: Option<u32>,
    send: Option<u32>,
    /// What the send in flight sends, from `lent_sent` on.
    lent: Vec<u8>,
    lent_sent: usize,
}

/// What a wait found for a connection: it may read, it may write.
pub struct Ready {
    pub slot: usize,
    pub readable: bool,
    pub writable: bool,
}

pub struct RingIo {
    ring: Ring,
    slots: Vec<SlotOps>,
    /// Operations whose last completion has not come: what dropping must wait for.
    in_flight: usize,
    completed: Vec<cqueue::Entry>,
}

fn generation(conn: &Connection) -> u32 {
    conn.generation() & 0xffff
}

impl RingIo {
    /// A ring for `connections` connections, or why this kernel cannot give one.
    pub fn new(connections: usize) -> io::Result<RingIo> {
        // The open-loop schedule's timeouts are in nanoseconds: the default timer slack (50 us)
        // would make every wait that long late.
        // SAFETY: PR_SET_TIMERSLACK takes a plain integer and affects this thread only.
        unsafe { libc::prctl(libc::PR_SET_TIMERSLACK, 1 as libc::c_ulong) };
        Ok(RingIo {
            ring: Ring::new(RING_ENTRIES)?,
            slots: (0..connections).map(|_| SlotOps::default()).collect(),
            in_flight: 0,
            completed: Vec::new(),
        })
    }

    fn push(&mut self, entry: squeue::Entry) {
        // SAFETY: an entry points to a slot's `lent` (kept until its send completes, and
        // leaked by `Drop` if it has not), or into the provided buffers (kept likewise).
        unsafe { self.ring.push(&entry) };
        self.in_flight += 1;
    }

    /// Starts what connection `slot` needs now: the poll that says its connect is done, its
    /// receive, the send of what it wrote.
    pub fn sync(&mut self, slot: usize, conn: &mut Connection) {
        let connecting = conn.state == State::Connecting;
        let generation = generation(conn);
        let Some(stream) = conn.ring_stream() else { return };
        let fd = Fd(stream.fd());
        if connecting {
            if self.slots[slot].connect != Some(generation) {
                self.slots[slot].connect = Some(generation);
                let entry = opcode::PollAdd::new(fd, libc::POLLOUT as u32).build();
                self.push(entry.user_data(ring::user_data(CONNECT, slot, generation)));
            }
            return;
        }
        if self.slots[slot].receive != Some(generation) && !stream.ended && !stream.broken {
            self.slots[slot].receive = Some(generation);
            let entry = opcode::RecvMulti::new(fd, BUFFER_GROUP).build();
            self.push(entry.user_data(ring::user_data(RECEIVE, slot, generation)));
        }
        let ops = &mut self.slots[slot];
        if ops.send.is_none() && !stream.outbox.is_empty() {
            std::mem::swap(&mut ops.lent, &mut stream.outbox);
            stream.outbox.clear();
            ops.lent_sent = 0;
            self.send(slot, fd, generation);
        }
    }

    fn send(&mut self, slot: usize, fd: Fd, generation: u32) {
        let ops = &mut self.slots[slot];
        ops.send = Some(generation);
        let rest = &ops.lent[ops.lent_sent..];
        let entry = opcode::Send::new(fd, rest.as_ptr(), rest.len() as u32).flags(libc::MSG_NOSIGNAL).build();
        self.push(entry.user_data(ring::user_data(SEND, slot, generation)));
    }

    /// Submits what is queued and waits up to `timeout` (not at all for zero) for
    /// completions; feeds received bytes to the connections and says which can go on.
    pub fn wait(&mut self, timeout: Duration, conns: &mut [Connection], ready: &mut Vec<Ready>) {
        if timeout.is_zero() && !self.ring.nothing_queued() {
            self.ring.submit();
        } else {
            self.ring.enter(timeout);
        }
        let mut completed = std::mem::take(&mut self.completed);
        completed.extend(self.ring.ring.completion());
        for entry in completed.drain(..) {
            let (kind, slot, generation) = ring::parse(entry.user_data());
            let (result, flags) = (entry.result(), entry.flags());
            let conn = &mut conns[slot];
            let live = generation == self::generation(conn) && conn.ring_stream().is_some();
            let ops = &mut self.slots[slot];
            match kind {
                CONNECT => {
                    self.in_flight -= 1;
                    if ops.connect == Some(generation) {
                        ops.connect = None;
                    }
                    if live {
                        ready.push(Ready { slot, readable: false, writable: true });
                    }
                }
                RECEIVE => {
                    if !cqueue::more(flags) {
                        self.in_flight -= 1;
                        if ops.receive == Some(generation) {
                            ops.receive = None;
                        }
                    }
                    let buffer = cqueue::buffer_select(flags);
                    if live {
                        let stream = conn.ring_stream().expect("live");
                        match result {
                            n if n > 0 => {
                                let id = buffer.expect("a receive that returns bytes names its buffer");
                                stream.received(&self.ring.buffers.bytes(id)[..n as usize]);
                            }
                            0 => stream.ended = true,
                            // Out of buffers: the multishot receive ended; `sync` starts another.
                            n if -n == libc::ENOBUFS => {}
                            _ => stream.broken = true,
                        }
                        ready.push(Ready { slot, readable: true, writable: false });
                    }
                    if let Some(id) = buffer {
                        self.ring.buffers.give_back(id);
                    }
                }
                SEND => {
                    self.in_flight -= 1;
                    if ops.send != Some(generation) {
                        continue;
                    }
                    ops.send = None;
                    if !live {
                        ops.lent.clear();
                        continue;
                    }
                    let stream = conn.ring_stream().expect("live");
                    if result <= 0 {
                        stream.broken = true;
                        ops.lent.clear();
                        ready.push(Ready { slot, readable: true, writable: false });
                        continue;
                    }
                    ops.lent_sent += result as usize;
                    if ops.lent_sent < ops.lent.len() {
                        let fd = Fd(stream.fd());
                        self.send(slot, fd, generation);
                    } else {
                        ops.lent.clear();
                        ready.push(Ready { slot, readable: false, writable: true });
                    }
                }
                _ => self.in_flight -= 1,
            }
        }
        self.completed = completed;
    }
}

impl Drop for RingIo {
    /// Waits (a little) for the operations of closed connections to end; what the kernel has
    /// not given back by then is leaked rather than freed under it.
    fn drop(&mut self) {
        let entry = opcode::AsyncCancel2::new(io_uring::types::CancelBuilder::any().all()).build();
        // SAFETY: a cancel points to nothing.
        unsafe { self.ring.push(&entry.user_data(0)) };
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.in_flight > 0 && Instant::now() < deadline {
            self.ring.enter(Duration::from_millis(10));
            let completed: Vec<_> = self.ring.ring.completion().collect();
            for entry in completed {
                let (kind, ..) = ring::parse(entry.user_data());
                if kind != 0 && (kind != RECEIVE || !cqueue::more(entry.flags())) {
                    self.in_flight -= 1;
                }
            }
        }
        if self.in_flight > 0 {
            std::mem::forget(std::mem::take(&mut self.slots));
            self.ring.buffers.leak();
        } else {
            let _ = self.ring.ring.submitter().unregister_buf_ring(BUFFER_GROUP);
        }
    }
}
