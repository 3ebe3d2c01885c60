//! The completion backend (io_uring): the kernel accepts, receives and sends, and says when it
//! has; the reactor never asks a socket whether it is ready.
//!
//! One ring per reactor, used only by the reactor's thread:
//!
//! 1. Accepts: one multishot accept on the listener, armed again if the kernel ends it.
//! 2. Receives: a connection whose framer needs bytes has one multishot receive in flight,
//!    which completes each time bytes arrive, into a buffer the kernel picks from a ring of
//!    provided buffers (so an idle connection holds no buffer of its own), and stays armed: a
//!    keep-alive connection costs no new operation per request. The bytes are fed to the
//!    connection as each completion comes and the buffer goes back to the ring at once. A
//!    connection that is held back (no room) and goes on receiving has its receive cancelled
//!    (see [`HOLD_BYTES`]), so a client that does not read its answers meets TCP's own flow
//!    control, as with epoll; it is armed again when the reactor asks for bytes.
//! 3. Sends: at most one in flight per connection, from its output where it is; until it
//!    completes the output is lent ([`Conn::output_lent`]) and not touched. A send of at least
//!    [`ZERO_COPY_MIN_BYTES`] goes zero-copy: the network card reads the bytes from where they
//!    are instead of the kernel copying them, and the output stays lent until the kernel's
//!    second completion says it no longer reads them. Where the kernel copies anyway (loopback,
//!    a device that cannot gather), it says so in that completion, and the connection sends
//!    plainly from then on: zero copy is kept only where it pays.
//! 4. Submission is batched, one `io_uring_enter` per turn at most: a turn that queued sends
//!    submits everything queued at its end ([`Backend::flush`]: clients wait for sends);
//!    receives queued alone wait for the next turn's end, or for the wait that puts the reactor
//!    to sleep, which submits and waits in one call. A wait that needs no waiting reads the
//!    completions without a system call. (At low load a request so costs two: the one that
//!    sends its answer, with its connection's next receive, and the sleep the request arrives
//!    in; epoll's is three: the wait, the read and the write.)
//! 5. Wake-ups from other threads: a read on an eventfd, always in flight, completes when
//!    another thread writes the eventfd.
//! 6. Closing a connection cancels its operations; the socket closes when the kernel lets go of
//!    it, and a send in flight keeps the connection's output alive until it completes.
//!
//! What any ring user needs (its setup, the provided buffers, the `user_data` encoding, submit
//! and wait, the eventfd) is in [`crate::net::ring`], which the load generator uses too.
//!
//! Every operation carries its kind, slot and the connection's generation, so a completion for
//! a connection that has gone (the slot reused since) is recognised and dropped.

#![deny(unsafe_op_in_unsafe_fn)]

use std::collections::{HashMap, VecDeque};
use std::io::{self, IoSlice};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd};
use std::sync::Arc;
use std::time::{Duration, Instant};

use io_uring::types::{CancelBuilder, Fd};
use io_uring::{cqueue, opcode, squeue};

use super::{Backend, Event, Fill};
use crate::net::connection::{Conn, LentOutput, Slot, Spares};
use crate::net::ring::{self, Gather, Ring, WakeFd, BUFFER_GROUP};

/// Submission queue entries; the completion queue is four times as long.
const RING_ENTRIES: u32 = 1024;

/// The most pieces one send gathers.
const MAX_SLICES: usize = 16;

/// A connection the reactor has not asked for bytes since its last receive (held back for want
/// of room, or closing) has its receive cancelled once it holds this many unframed bytes, or at
/// once when it is held back: what a client can make the server buffer for it beyond what it
/// asked for is this, plus what arrives before the cancel takes effect.
const HOLD_BYTES: usize = 64 * 1024;

/// The smallest send that goes zero-copy. Below about 10 KiB pinning the pages and the second
/// completion cost more than the copy saves (the kernel's MSG_ZEROCOPY notes); 16 KiB is also
/// where a large body starts to be sent from where it is rather than copied into the output.
const ZERO_COPY_MIN_BYTES: usize = 16 * 1024;

/// `IORING_SEND_ZC_REPORT_USAGE` (Linux 6.2): asks the kernel to say in a zero-copy send's
/// notification whether it copied the bytes after all. In the entry's `ioprio`.
const SEND_ZC_REPORT_USAGE: u16 = 8;

/// `IORING_NOTIF_USAGE_ZC_COPIED`: in a notification's result, the kernel copied the bytes.
const NOTIF_USAGE_ZC_COPIED: u32 = 1 << 31;

/// What an operation is, in the top byte of its `user_data`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Accept = 1,
    Wake = 2,
    Receive = 3,
    Send = 4,
    Cancel = 5,
}

fn user_data(op: Op, slot: usize, generation: u32) -> u64 {
    ring::user_data(op as u8, slot, generation)
}

fn parse(user_data: u64) -> (Option<Op>, usize, u32) {
    let (kind, slot, generation) = ring::parse(user_data);
    let op = match kind {
        1 => Some(Op::Accept),
        2 => Some(Op::Wake),
        3 => Some(Op::Receive),
        4 => Some(Op::Send),
        5 => Some(Op::Cancel),
        _ => None,
    };
    (op, slot, generation)
}

pub(crate) struct Uring {
    ring: Ring,
    listener: Option<TcpListener>,
    /// The multishot accept is in flight.
    accepting: bool,
    accepted: VecDeque<TcpStream>,
    wake: WakeFd,
    /// Each slot's operations in flight.
    conns: Vec<ConnOps>,
    /// Connections closed with a send in flight, by its `user_data`: their output (and the
    /// send's own description of it) stays until the kernel gives it back.
    closed_sending: HashMap<u64, (LentOutput, Option<Box<SendMsg>>)>,
    /// Receives that found no free buffer, to start again once buffers are back.
    starved: Vec<(usize, u32)>,
    /// Operations whose last completion has not come: what dropping the ring must wait for.
    in_flight: usize,
    /// Sends were queued since the last submission; entries were queued before this turn.
    sends_queued: bool,
    queued_before: bool,
    /// This kernel takes zero-copy sends (until one is refused as unknown).
    zero_copy: bool,
    completed: Vec<cqueue::Entry>,
    /// How fast receives and accepts complete, for how many a sleeping wait gathers.
    arrivals: Arrivals,
}

/// The rate at which a reactor's connections bring it something (receives and accepts
/// completed): a sleeping wait gathers as many as are expected within its patience, so that
/// at a high rate one wake-up serves several arrivals (as a network card coalesces its
/// interrupts), and at a low rate each wakes the reactor at once.
struct Arrivals {
    patience: Duration,
    /// Arrivals since `since_ns`.
    count: u64,
    since_ns: u64,
    /// The smoothed rate, per second.
    per_second: u64,
}

impl Arrivals {
    /// The shortest window a rate is measured over.
    const WINDOW_NS: u64 = 1_000_000;
    /// The most completions a wait gathers.
    const MOST: u64 = 64;

    fn new(patience: Duration) -> Arrivals {
        Arrivals { patience, count: 0, since_ns: crate::clock::now_ns(), per_second: 0 }
    }

    /// How the coming sleep gathers: none when fewer than two arrivals are expected within
    /// the patience.
    fn gather(&mut self) -> Option<Gather> {
        if self.patience.is_zero() {
            return None;
        }
        self.gather_at(crate::clock::now_ns())
    }

    fn gather_at(&mut self, now: u64) -> Option<Gather> {
        let elapsed = now.saturating_sub(self.since_ns);
        if elapsed >= Self::WINDOW_NS {
            let rate = self.count * 1_000_000_000 / elapsed;
            // Smoothed, with weight 1/4 per window the measurement spans: one over four
            // windows or more (a long idle spell) replaces the rate.
            let windows = (elapsed / Self::WINDOW_NS).min(4);
            self.per_second = (self.per_second * (4 - windows) + rate * windows) / 4;
            self.count = 0;
            self.since_ns = now;
        }
        let expected = self.per_second * self.patience.as_nanos() as u64 / 1_000_000_000;
        (expected >= 2).then(|| Gather { completions: expected.min(Self::MOST) as u32, patience: self.patience })
    }
}

struct ConnOps {
    generation: u32,
    /// Its multishot receive is in flight.
    receiving: bool,
    /// The reactor asked for bytes ([`Backend::fill`]) since the last it was given.
    wanted: bool,
    sending: Sending,
    /// Its large sends go zero-copy: until the kernel says it copied one anyway.
    zero_copy: bool,
    /// A gathering send's message and pieces, which must stay put while it is in flight; made
    /// at the first such send, so that an idle connection does not carry it.
    msg: Option<Box<SendMsg>>,
}

/// A connection's send in flight, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sending {
    No,
    Plain,
    /// Zero-copy: the output stays lent until the kernel's notification, and `sent` keeps the
    /// first completion's result until then.
    ZeroCopy {
        sent: Option<i32>,
    },
}

struct SendMsg {
    header: libc::msghdr,
    pieces: [libc::iovec; MAX_SLICES],
}

// SAFETY: the raw pointers in a `SendMsg` point into the connection's own output (or to its own
// pieces), which moves with it to whichever thread owns the reactor.
unsafe impl Send for SendMsg {}

impl SendMsg {
    fn new() -> Box<SendMsg> {
        // SAFETY: all-zero is a valid msghdr and iovec (null pointers, zero lengths).
        Box::new(unsafe { std::mem::zeroed() })
    }
}

/// Whether this kernel gives a ring with what the backend needs (io_uring not disabled, provided
/// buffer rings: Linux 5.19).
pub(crate) fn available() -> io::Result<()> {
    ring::available()
}

impl Uring {
    /// A ring for `listener`, whose sleeping waits gather arrivals for up to `coalesce` (see
    /// [`Arrivals`]), or why this kernel cannot give one (io_uring disabled or too old: provided
    /// buffer rings need Linux 5.19).
    pub fn new(listener: TcpListener, coalesce: Duration) -> io::Result<Uring> {
        let ring = Ring::new(RING_ENTRIES)?;
        let wake = WakeFd::new()?;
        let mut uring = Uring {
            ring,
            listener: Some(listener),
            accepting: false,
            accepted: VecDeque::new(),
            wake,
            conns: Vec::new(),
            closed_sending: HashMap::new(),
            starved: Vec::new(),
            in_flight: 0,
            sends_queued: false,
            queued_before: false,
            zero_copy: true,
            completed: Vec::new(),
            arrivals: Arrivals::new(coalesce),
        };
        // Queued only: the ring is submitted to by the worker that owns it, from its first turn.
        uring.arm_accept();
        uring.arm_wake();
        Ok(uring)
    }

    /// Queues `entry`, submitting what is queued first if the queue is full.
    fn push(&mut self, entry: squeue::Entry, counts: bool) {
        // SAFETY: every buffer an entry points to (the wake count, a connection's output and
        // its `SendMsg`, the provided buffers) stays where it is until the entry's last
        // completion: see `release` and `Drop`.
        unsafe { self.ring.push(&entry) };
        if counts {
            self.in_flight += 1;
        }
    }

    fn arm_accept(&mut self) {
        let Some(listener) = &self.listener else { return };
        let fd = Fd(listener.as_raw_fd());
        let flags = libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC;
        let entry = opcode::AcceptMulti::new(fd).flags(flags).build().user_data(user_data(Op::Accept, 0, 0));
        self.push(entry, true);
        self.accepting = true;
    }

    fn arm_wake(&mut self) {
        let entry = self.wake.read(user_data(Op::Wake, 0, 0));
        self.push(entry, true);
    }

    fn arm_receive(&mut self, slot: usize, conn: &Conn) {
        let fd = Fd(conn.stream.as_raw_fd());
        let entry =
            opcode::RecvMulti::new(fd, BUFFER_GROUP).build().user_data(user_data(Op::Receive, slot, conn.generation));
        self.push(entry, true);
        self.conns[slot].receiving = true;
    }

    fn cancel(&mut self, target: u64) {
        let entry = opcode::AsyncCancel::new(target).build().user_data(user_data(Op::Cancel, 0, 0));
        self.push(entry, true);
    }

    /// For a non-zero `timeout`, submits what is queued and waits up to it for a completion
    /// (not at all if some are there already); for zero, enters the kernel only if completions
    /// wait there to be posted.
    fn enter(&mut self, timeout: Duration, may_gather: bool) {
        let gather = if may_gather && !timeout.is_zero() { self.arrivals.gather() } else { None };
        if self.ring.enter_gathering(timeout, gather) {
            self.sends_queued = false;
            self.queued_before = false;
        }
    }

    fn on_accept(&mut self, result: i32, flags: u32) {
        if !cqueue::more(flags) {
            self.in_flight -= 1;
            self.accepting = false;
        }
        if result >= 0 {
            // SAFETY: a successful accept gives a new descriptor that nothing else owns.
            self.accepted.push_back(unsafe { TcpStream::from_raw_fd(result) });
        } else if !self.accepting && !matches!(-result, libc::EMFILE | libc::ENFILE | libc::ENOMEM | libc::ECANCELED) {
            // Ended by the kernel (a reset connection, say): accept again. Out of descriptors,
            // the deadline sweep tries again later (`resume_accepting`).
            self.arm_accept();
        }
    }

    fn on_receive(
        &mut self,
        slot: usize,
        generation: u32,
        result: i32,
        flags: u32,
        slots: &mut [Slot],
        spares: &mut Spares,
    ) -> Option<Event> {
        // A multishot receive's last completion is the one without `more`.
        let last = !cqueue::more(flags);
        if last {
            self.in_flight -= 1;
        }
        let buffer = cqueue::buffer_select(flags);
        let live = self.conns.get(slot).is_some_and(|c| c.generation == generation && c.receiving)
            && slots[slot].conn.as_ref().is_some_and(|c| c.generation == generation);
        let event = if live {
            let ops = &mut self.conns[slot];
            if last {
                ops.receiving = false;
            }
            let wanted = ops.wanted;
            let conn = slots[slot].conn.as_mut().expect("live");
            match result {
                n if n > 0 => {
                    self.conns[slot].wanted = false;
                    let id = buffer.expect("a receive that returns bytes names its buffer");
                    conn.received(&self.ring.buffers.bytes(id)[..n as usize], spares);
                    // Not asked for: the reactor framed no more since the last bytes. Held
                    // back, or holding enough, it gets no more until it asks.
                    let hold = !wanted && (conn.held_back || conn.stalled || conn.unframed_bytes() >= HOLD_BYTES);
                    if hold && !last {
                        self.cancel(user_data(Op::Receive, slot, generation));
                    }
                    Some(Event::Input(slot))
                }
                0 => {
                    self.conns[slot].wanted = false;
                    conn.end_of_input();
                    Some(Event::Input(slot))
                }
                n if -n == libc::ENOBUFS => {
                    self.starved.push((slot, generation));
                    None
                }
                n if -n == libc::ECANCELED => {
                    // Cancelled for holding back, while the reactor asked again: receive again.
                    if wanted {
                        let conn = slots[slot].conn.as_ref().expect("live");
                        self.arm_receive(slot, conn);
                    }
                    None
                }
                _ => Some(Event::Broken(slot)),
            }
        } else {
            None
        };
        if let Some(id) = buffer {
            self.ring.buffers.give_back(id);
        }
        event
    }

    fn on_send(&mut self, slot: usize, generation: u32, result: i32, flags: u32, slots: &mut [Slot]) -> Option<Event> {
        let live = |ops: &&mut ConnOps| ops.generation == generation && ops.sending != Sending::No;
        if cqueue::more(flags) {
            // A zero-copy send's first completion: how much it sent. The kernel may still read
            // the bytes until the notification that follows, so the output stays lent.
            if let Some(ops) = self.conns.get_mut(slot).filter(live) {
                ops.sending = Sending::ZeroCopy { sent: Some(result) };
                if let Some(conn) = slots[slot].conn.as_mut().filter(|c| c.generation == generation) {
                    // The socket took bytes: progress for the send timeout, though they stay
                    // lent.
                    conn.progress.sent |= result > 0;
                }
            }
            return None;
        }
        self.in_flight -= 1;
        let key = user_data(Op::Send, slot, generation);
        if self.closed_sending.remove(&key).is_some() {
            // A closed connection's last send: the kernel reads its output no more.
            return None;
        }
        let ops = self.conns.get_mut(slot).filter(live)?;
        let sending = std::mem::replace(&mut ops.sending, Sending::No);
        let result = match sending {
            Sending::ZeroCopy { sent } if cqueue::notif(flags) => {
                if result as u32 & NOTIF_USAGE_ZC_COPIED != 0 {
                    // The kernel copied the bytes anyway: zero copy costs this connection a
                    // second completion and gains it nothing.
                    ops.zero_copy = false;
                }
                sent.unwrap_or(-libc::EIO)
            }
            _ => result,
        };
        let conn = slots[slot].conn.as_mut().filter(|c| c.generation == generation)?;
        conn.output_lent = false;
        match result {
            n if n > 0 => {
                conn.sent(n as usize);
                Some(Event::Output(slot))
            }
            n if matches!(sending, Sending::ZeroCopy { .. }) && matches!(-n, libc::EINVAL | libc::EOPNOTSUPP) => {
                // A kernel without zero-copy sends (before Linux 6.2): nothing was sent. Send
                // plainly, this time and from now on.
                self.zero_copy = false;
                Some(Event::Output(slot))
            }
            _ => Some(Event::Broken(slot)),
        }
    }
}

impl Backend for Uring {
    fn wait(
        &mut self,
        timeout: Duration,
        answers_due: bool,
        slots: &mut [Slot],
        spares: &mut Spares,
        events: &mut Vec<Event>,
    ) {
        // Answers due come through the waker, whose wake-up a gathering wait would hold back
        // like any other completion (the kernel ends it early only when enough are in).
        self.enter(timeout, !answers_due);
        let mut completed = std::mem::take(&mut self.completed);
        completed.extend(self.ring.ring.completion());
        for entry in completed.drain(..) {
            let (op, slot, generation) = parse(entry.user_data());
            let (result, flags) = (entry.result(), entry.flags());
            if matches!(op, Some(Op::Accept | Op::Receive)) {
                self.arrivals.count += 1;
            }
            let event = match op {
                Some(Op::Accept) => {
                    self.on_accept(result, flags);
                    Some(Event::Accept).filter(|_| !self.accepted.is_empty())
                }
                Some(Op::Wake) => {
                    self.in_flight -= 1;
                    if result != -libc::ECANCELED {
                        self.arm_wake();
                    }
                    None
                }
                Some(Op::Receive) => self.on_receive(slot, generation, result, flags, slots, spares),
                Some(Op::Send) => self.on_send(slot, generation, result, flags, slots),
                Some(Op::Cancel) | None => {
                    self.in_flight -= 1;
                    None
                }
            };
            events.extend(event);
        }
        self.completed = completed;
        // Buffers are back: receives that found none start again.
        for (slot, generation) in std::mem::take(&mut self.starved) {
            if let Some(conn) = slots[slot].conn.as_ref().filter(|c| c.generation == generation) {
                if !self.conns[slot].receiving {
                    self.arm_receive(slot, conn);
                }
            }
        }
    }

    fn accept(&mut self) -> Option<(TcpStream, IpAddr)> {
        while let Some(stream) = self.accepted.pop_front() {
            // A connection reset before it was looked at has no peer: on to the next.
            if let Ok(peer) = stream.peer_addr() {
                return Some((stream, peer.ip()));
            }
        }
        None
    }

    fn resume_accepting(&mut self) {
        if !self.accepting {
            self.arm_accept();
        }
    }

    fn stop_listening(&mut self) {
        if self.accepting {
            self.cancel(user_data(Op::Accept, 0, 0));
        }
        // The kernel holds the listener until the accept is cancelled; then it closes.
        self.listener = None;
        self.accepted.clear();
    }

    fn watch(&mut self, slot: usize, conn: &Conn) -> io::Result<()> {
        if self.conns.len() <= slot {
            self.conns.resize_with(slot + 1, || ConnOps {
                generation: 0,
                receiving: false,
                wanted: false,
                sending: Sending::No,
                zero_copy: false,
                msg: None,
            });
        }
        let ops = &mut self.conns[slot];
        ops.generation = conn.generation;
        ops.receiving = false;
        ops.wanted = false;
        ops.sending = Sending::No;
        ops.zero_copy = self.zero_copy;
        Ok(())
    }

    fn fill(&mut self, slot: usize, conn: &mut Conn, _spares: &mut Spares) -> Fill {
        self.conns[slot].wanted = true;
        if !self.conns[slot].receiving {
            self.arm_receive(slot, conn);
        }
        Fill::Later
    }

    fn send(&mut self, slot: usize, conn: &mut Conn) -> io::Result<()> {
        if conn.output_lent || !conn.unsent() {
            return Ok(());
        }
        conn.prepare_output()?;
        let mut slices = [IoSlice::new(&[]); MAX_SLICES];
        let n = conn.unsent_slices(&mut slices);
        let fd = Fd(conn.stream.as_raw_fd());
        let ops = &mut self.conns[slot];
        let zero_copy = self.zero_copy
            && ops.zero_copy
            && slices[..n].iter().map(|s| s.len()).sum::<usize>() >= ZERO_COPY_MIN_BYTES;
        let nosignal = libc::MSG_NOSIGNAL;
        let entry = match (n, zero_copy) {
            (1, false) => opcode::Send::new(fd, slices[0].as_ptr(), slices[0].len() as u32).flags(nosignal).build(),
            (1, true) => opcode::SendZc::new(fd, slices[0].as_ptr(), slices[0].len() as u32)
                .flags(nosignal)
                .zc_flags(SEND_ZC_REPORT_USAGE)
                .build(),
            _ => {
                let msg = ops.msg.get_or_insert_with(SendMsg::new);
                for (piece, slice) in msg.pieces.iter_mut().zip(&slices[..n]) {
                    *piece = libc::iovec { iov_base: slice.as_ptr() as *mut _, iov_len: slice.len() };
                }
                msg.header.msg_iov = msg.pieces.as_mut_ptr();
                msg.header.msg_iovlen = n as _;
                if zero_copy {
                    opcode::SendMsgZc::new(fd, &msg.header).flags(nosignal as u32).ioprio(SEND_ZC_REPORT_USAGE).build()
                } else {
                    opcode::SendMsg::new(fd, &msg.header).flags(nosignal as u32).build()
                }
            }
        };
        ops.sending = if zero_copy { Sending::ZeroCopy { sent: None } } else { Sending::Plain };
        self.push(entry.user_data(user_data(Op::Send, slot, conn.generation)), true);
        self.sends_queued = true;
        conn.output_lent = true;
        Ok(())
    }

    fn release(&mut self, slot: usize, conn: Conn) {
        let generation = conn.generation;
        let ops = &mut self.conns[slot];
        let receiving = ops.receiving;
        let sending = std::mem::replace(&mut ops.sending, Sending::No);
        ops.receiving = false;
        ops.wanted = false;
        if receiving {
            self.cancel(user_data(Op::Receive, slot, generation));
        }
        if sending != Sending::No {
            let key = user_data(Op::Send, slot, generation);
            self.cancel(key);
            let msg = self.conns[slot].msg.take();
            // The socket closes once the kernel's send lets go of it; a zero-copy send's bytes
            // are dropped with it, which is when its notification comes.
            self.closed_sending
                .insert(key, (conn.close_keeping_output(matches!(sending, Sending::ZeroCopy { .. })), msg));
        }
        // Otherwise `conn` drops here, closing the socket (once a cancelled receive lets go).
    }

    fn flush(&mut self) {
        if self.ring.nothing_queued() {
            return;
        }
        if self.sends_queued || self.queued_before {
            self.sends_queued = false;
            self.queued_before = false;
            self.ring.submit();
        } else {
            self.queued_before = true;
        }
    }

    fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        self.wake.waker()
    }

    /// The wait's timeout is a ring timeout, in nanoseconds.
    fn precise_timeouts(&self) -> bool {
        true
    }
}

impl Uring {
    /// Cancels every operation and waits (up to a second) for the kernel to give back the
    /// buffers they point to. Returns whether it gave everything back.
    fn cancel_all(&mut self) -> bool {
        let entry =
            opcode::AsyncCancel2::new(CancelBuilder::any().all()).build().user_data(user_data(Op::Cancel, 0, 0));
        self.push(entry, true);
        let deadline = Instant::now() + Duration::from_secs(1);
        while self.in_flight > 0 && Instant::now() < deadline {
            self.enter(Duration::from_millis(10), false);
            let completed: Vec<_> = self.ring.ring.completion().collect();
            for entry in completed {
                // Multishot operations (accept, receive) complete many times; the last says so.
                if !cqueue::more(entry.flags()) {
                    self.in_flight -= 1;
                }
            }
        }
        self.in_flight == 0
    }
}

impl Drop for Uring {
    /// Whatever the kernel has not given back when it is dropped is leaked rather than freed
    /// under it.
    fn drop(&mut self) {
        if self.cancel_all() {
            let _ = self.ring.ring.submitter().unregister_buf_ring(BUFFER_GROUP);
        } else {
            std::mem::forget(std::mem::take(&mut self.closed_sending));
            self.wake.leak();
            self.ring.buffers.leak();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::completions::Answer;
    use crate::net::connection::Framing;
    use std::io::Read;

    #[test]
    fn user_data_gives_back_the_operation_slot_and_generation() {
        for op in [Op::Accept, Op::Wake, Op::Receive, Op::Send, Op::Cancel] {
            assert_eq!(parse(user_data(op, 4_000_000_000, 0x1_beef)), (Some(op), 4_000_000_000, 0xbeef));
        }
        assert_eq!(parse(0).0, None);
    }

    /// `rate` arrivals per second for `windows` windows of a millisecond, from `now`.
    fn arrive(arrivals: &mut Arrivals, now: &mut u64, rate: u64, windows: u32) -> Option<Gather> {
        let mut gather = None;
        for _ in 0..windows {
            arrivals.count += rate / 1_000;
            *now += Arrivals::WINDOW_NS;
            gather = arrivals.gather_at(*now);
        }
        gather
    }

    #[test]
    fn a_sleep_gathers_the_arrivals_expected_within_its_patience_and_none_at_a_low_rate() {
        let mut now = 0;
        let mut arrivals = Arrivals { patience: Duration::from_micros(100), count: 0, since_ns: now, per_second: 0 };
        // 100,000/s: ten expected in 100 us, once the smoothed rate has caught up.
        let gather = arrive(&mut arrivals, &mut now, 100_000, 30).expect("gathers");
        assert!((9..=10).contains(&gather.completions), "{gather:?}");
        assert_eq!(gather.patience, Duration::from_micros(100));
        // 10,000/s: one expected, so each arrival wakes the reactor at once.
        assert_eq!(arrive(&mut arrivals, &mut now, 10_000, 30), None);
        // Ten million per second: no more than the most a wait gathers.
        let gather = arrive(&mut arrivals, &mut now, 10_000_000, 30).expect("gathers");
        assert_eq!(gather.completions, Arrivals::MOST as u32);
        // A long idle spell: the first sleep after it does not gather.
        now += 10_000_000_000;
        assert_eq!(arrivals.gather_at(now), None);
    }

    #[test]
    fn no_patience_never_gathers() {
        let mut arrivals = Arrivals { patience: Duration::ZERO, count: 0, since_ns: 0, per_second: 10_000_000 };
        for _ in 0..10 {
            arrivals.count += 1_000;
            assert_eq!(arrivals.gather(), None);
        }
    }

    /// A reactor's view of one connection, accepted through a ring of its own.
    struct OneConn {
        uring: Uring,
        slots: Vec<Slot>,
        spares: Spares,
        client: TcpStream,
    }

    impl OneConn {
        fn new() -> OneConn {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = listener.local_addr().unwrap();
            let mut uring = Uring::new(listener, Duration::ZERO).unwrap();
            let client = TcpStream::connect(addr).unwrap();
            let mut slots = vec![Slot { conn: None, generation: 1, in_pipeline: 0 }];
            let mut spares = Spares::new(crate::net::Limits::default());
            let mut events = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            let (stream, peer) = loop {
                uring.wait(Duration::from_millis(10), false, &mut slots, &mut spares, &mut events);
                if let Some(accepted) = uring.accept() {
                    break accepted;
                }
                assert!(Instant::now() < deadline, "the ring accepted nothing");
            };
            let conn = Conn::new(stream, peer, 1, u64::MAX);
            uring.watch(0, &conn).unwrap();
            slots[0].conn = Some(conn);
            OneConn { uring, slots, spares, client }
        }

        fn conn(&mut self) -> &mut Conn {
            self.slots[0].conn.as_mut().unwrap()
        }

        /// Frames a request and owes it an answer of `body`: shared (sent from where it is,
        /// after the head) or copied into the output with the head.
        fn owe(&mut self, body: Vec<u8>, shared: bool) {
            let spares = &mut self.spares;
            let conn = self.slots[0].conn.as_mut().unwrap();
            conn.received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", spares);
            let Framing::Request(mut env) = conn.frame(Box::default(), true) else { panic!("no request framed") };
            env.req.response.status = 200;
            if shared {
                env.req.response.shared = Some(body.into());
            } else {
                env.req.response.body = body;
            }
            conn.answer(conn.next_seq() - 1, env, Answer::Response).unwrap_or_else(|_| panic!("not owed"));
            assert_eq!(conn.serialise(b"Thu, 01 Jan 1970 00:00:00 GMT", drop), 1);
        }

        /// Sends what the connection owes until it is all sent, as the reactor does. Returns
        /// whether the first send went zero-copy.
        fn send_all(&mut self) -> bool {
            let mut first_zero_copy = None;
            let mut events = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            while self.slots[0].conn.as_ref().unwrap().unsent() {
                assert!(Instant::now() < deadline, "not sent in time");
                if !self.conn().output_lent {
                    let conn = self.slots[0].conn.as_mut().unwrap();
                    self.uring.send(0, conn).unwrap();
                    let sending = self.uring.conns[0].sending;
                    first_zero_copy.get_or_insert(matches!(sending, Sending::ZeroCopy { .. }));
                    self.uring.flush();
                }
                self.uring.wait(Duration::from_millis(10), false, &mut self.slots, &mut self.spares, &mut events);
                for event in events.drain(..) {
                    assert!(matches!(event, Event::Output(0)), "{event:?}");
                }
            }
            assert!(!self.conn().output_lent, "the output is still lent");
            first_zero_copy.expect("sent")
        }

        /// Reads, on a thread of its own, the one response of `body_len` body bytes the client
        /// is sent, and gives back its body: the server's sends can be more than a socket
        /// buffer holds.
        fn read_response(&self, body_len: usize) -> std::thread::JoinHandle<Vec<u8>> {
            let mut client = self.client.try_clone().unwrap();
            std::thread::spawn(move || {
                let head = format!(
                    "HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\nContent-Length: {body_len}\r\n\r\n"
                );
                let mut got = vec![0; head.len() + body_len];
                client.read_exact(&mut got).unwrap();
                assert_eq!(&got[..head.len()], head.as_bytes(), "{}", String::from_utf8_lossy(&got[..head.len()]));
                got.split_off(head.len())
            })
        }
    }

    /// The running kernel's (major, minor) version.
    fn kernel() -> (u32, u32) {
        let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap();
        let mut parts = release.trim().split(['.', '-']).map(|p| p.parse().unwrap_or(0));
        (parts.next().unwrap_or(0), parts.next().unwrap_or(0))
    }

    #[test]
    fn a_large_send_goes_zero_copy_until_the_kernel_says_it_copied_and_every_byte_arrives() {
        if available().is_err() {
            return;
        }
        for shared in [true, false] {
            let mut one = OneConn::new();
            let body: Vec<u8> = (0..256 * 1024u32).map(|i| (i % 251) as u8).collect();
            let reader = one.read_response(body.len());
            one.owe(body.clone(), shared);
            let zero_copy = one.send_all();
            assert!(reader.join().unwrap() == body, "the body arrived changed (shared: {shared})");
            if kernel() >= (6, 2) {
                // Loopback delivers by copying: the kernel says so, and the connection stops.
                assert!(zero_copy, "a send of {} bytes did not go zero-copy", body.len());
                assert!(one.uring.zero_copy);
                assert!(!one.uring.conns[0].zero_copy, "the connection goes on with zero copy on loopback");
            } else {
                // No zero-copy sends with usage reports: refused once, then plain for good.
                assert!(!one.uring.zero_copy);
            }
            // The next large answer goes plainly, and arrives whole too.
            let next: Vec<u8> = (0..64 * 1024u32).map(|i| (i % 13) as u8).collect();
            let reader = one.read_response(next.len());
            one.owe(next.clone(), shared);
            assert!(!one.send_all(), "zero copy again after the kernel said it copied");
            assert!(reader.join().unwrap() == next, "the second body arrived changed (shared: {shared})");
        }
    }

    #[test]
    fn a_connection_closed_with_a_zero_copy_send_in_flight_gives_everything_back() {
        if available().is_err() || kernel() < (6, 2) {
            return;
        }
        let mut one = OneConn::new();
        one.owe(vec![7; 128 * 1024], true);
        let conn = one.slots[0].conn.as_mut().unwrap();
        one.uring.send(0, conn).unwrap();
        assert_eq!(one.uring.conns[0].sending, Sending::ZeroCopy { sent: None });
        one.uring.flush();
        // Closed at once: its output must stay alive until the notification, and then go.
        let conn = one.slots[0].conn.take().unwrap();
        one.uring.release(0, conn);
        assert_eq!(one.uring.closed_sending.len(), 1);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut events = Vec::new();
        while !one.uring.closed_sending.is_empty() {
            assert!(Instant::now() < deadline, "the closed connection's send never ended");
            one.uring.wait(Duration::from_millis(10), false, &mut one.slots, &mut one.spares, &mut events);
        }
        assert!(events.is_empty(), "{events:?}");
        assert!(one.uring.cancel_all(), "{} operations not given back", one.uring.in_flight);
    }

    #[test]
    fn a_ring_dropped_with_operations_in_flight_gets_them_all_back() {
        if available().is_err() {
            return;
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut uring = Uring::new(listener, Duration::ZERO).unwrap();
        // The multishot accept and the eventfd read are in flight.
        assert_eq!(uring.in_flight, 2);
        assert!(uring.cancel_all(), "{} operations not given back", uring.in_flight);
    }
}
