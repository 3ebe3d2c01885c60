//! One client connection: its framer, the answers it is owed in request order, its output buffer
//! and its deadline. The reactor ([`super::server`]) drives it; the I/O itself is its backend's
//! ([`super::backend`]: readiness with epoll, or completions with io_uring), which feeds it the
//! bytes received ([`Conn::received`]) and sends what it has unsent ([`Conn::unsent_slices`],
//! [`Conn::sent`]). Nothing here blocks or reads a socket.
//!
//! Deadlines: what it waits for ([`Waiting`]: a head, a body, its answers, the client to read,
//! nothing, or the end of a lingering close) decides which timeout applies; every one has one.
//!
//! Pipelining: every framed request takes the next sequence number and a slot in `owed`. Slots
//! are filled as answers arrive, in any order, and written strictly from the front, so responses
//! leave in request order.
//!
//! Memory: most open connections are idle keep-alive ones, so what a connection needs only while
//! it is busy (the framer and its buffers, the answers owed, the unsent output) is kept apart, in
//! a [`Busy`] part, from the small part every open connection has (socket, deadline, flags):
//!
//! 1. A connection starts without a busy part; it takes one when its first bytes arrive
//!    ([`Conn::received`]): a spare from its reactor's [`Spares`], else a new one.
//! 2. Once idle (nothing owed, nothing unsent, no bytes of a request held), it gives it back
//!    ([`Conn::give_back_if_idle`]), with its buffers, for the next connection to take; so memory
//!    follows the busy connections, not the open ones, and serving keep-alive requests allocates
//!    nothing new. A closed connection gives its part back too ([`Conn::give_back_on_close`]).
//! 3. Never while its output is lent to the kernel ([`Conn::output_lent`]): an io_uring send
//!    reads it from where it is until the send completes.
//!
//! The reactor owns the spares and hands them, with its slots, to whatever takes or gives back a
//! part: its backend, which feeds received bytes to a connection (from inside its wait, for a
//! completion backend), and its own close and idle paths. The spares frame within the reactor's
//! request limits, so a connection carries none of its own. At most [`MAX_SPARES`] are kept:
//! past that a part given back is freed, so a burst of busy connections does not pin its
//! memory.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Write};
use std::net::TcpStream;
use std::os::fd::AsRawFd;

use super::body::Body;
use super::completions::Answer;
use super::{fixed_replies, write_head, write_parts, Framed, Limits, Reply, RequestReader, Status};
use crate::engine::Envelope;

/// An answer owed, in request order.
struct Owed {
    reply: Reply,
    ready: Option<Ready>,
}

enum Ready {
    /// The pipeline ended the request.
    Ended(Box<Envelope>, Answer),
    /// A fixed response (a framing rejection).
    Fixed(&'static [u8]),
}

struct Splice {
    at: usize,
    body: Body,
}

/// A shared body at least this long is spliced into the output rather than copied.
const SPLICE_MIN: usize = 16 * 1024;

/// What a connection is waiting for, and so which timeout applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Waiting {
    /// A request head: from accept, or from the first byte of a request (`header_timeout`).
    Head,
    /// The rest of a request body whose head is in: within `body_timeout` of the head, and
    /// `body_read_timeout` of the last bytes read.
    Body,
    /// Nothing: a keep-alive connection between requests (`idle_timeout`).
    Idle,
    /// Its own requests' answers, none unsent: the next within `answer_timeout` of the last.
    Answers,
    /// The client to take its unsent answers: some within `send_timeout` of the last taken.
    Send,
    /// Closing after a rejection or a 408: its reply is written and its write side shut; what
    /// the client still sends is read and dropped until it closes its side, for at most
    /// [`LINGER_TIME`] and [`LINGER_BYTES`], so that closing with its bytes unread (which makes
    /// the kernel send a reset) cannot destroy the reply before the client reads it.
    Linger,
}

/// What a connection did since its deadline was last set. Each wait measured from the last
/// progress restarts on its own kind only: bytes read do not extend a wait for answers (a client
/// trickling the head of its next request cannot keep a stuck one's connection open).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Progress {
    /// Bytes read from the client.
    pub read: bool,
    /// Answers serialised for it.
    pub answered: bool,
    /// Bytes the socket took from its output.
    pub sent: bool,
}

/// The longest a connection lingers after its last reply before it is closed regardless.
pub(crate) const LINGER_TIME: std::time::Duration = std::time::Duration::from_secs(2);

/// The most bytes a lingering connection reads and drops before it is closed regardless.
pub(crate) const LINGER_BYTES: usize = 1 << 20;

/// One open connection: what it has while it is open, idle or not. What it needs only while
/// busy is in `busy` (see the module docs).
pub(crate) struct Conn {
    pub stream: TcpStream,
    /// The framer, answers owed and unsent output; `None` while idle.
    busy: Option<Box<Busy>>,
    /// The sequence number of the first answer owed (of the next request, when none is).
    first_seq: u64,
    /// Nothing more is read: the reader closed (a `Connection: close` request, a rejection) or
    /// the peer shut its side. The connection ends once what is owed is written.
    closing: bool,
    /// Set when the framer rejected a request, until [`Conn::take_rejected`].
    rejected: bool,
    /// It ends with a lingering close (see [`Waiting::Linger`]): a request was rejected or
    /// timed out, and the client may still be sending its bytes.
    linger_after: bool,
    /// The client shut its side: a read returned the end of the stream.
    peer_done: bool,
    /// What a lingering connection may still read and drop.
    linger_left: usize,
    /// It stopped framing for its own bounds (`max_pipelined` answers owed, or bytes held for
    /// it over its share); the reactor resumes it once writing its answers made room.
    pub held_back: bool,
    /// On the reactor's list of connections waiting for shared room (the reactor's in-flight
    /// cap, the server's bound on bytes held for clients).
    pub stalled: bool,
    /// On the reactor's list of connections to write this turn.
    pub dirty: bool,
    /// Its unsent output is lent to the kernel (an io_uring send in flight reads it from where
    /// it is): nothing may move or change it, nor its busy part be given back, until the send
    /// completes ([`Conn::sent`]).
    pub output_lent: bool,
    pub generation: u32,
    pub waiting: Waiting,
    /// When the current wait times out.
    pub deadline_ns: u64,
    /// When the body being read must be in, whatever its progress.
    pub body_deadline_ns: u64,
    /// What moved since the deadline was last set: a wait measured from the last progress
    /// starts again, on the progress it waits for only.
    pub progress: Progress,
    /// The client's address, whose count of open connections this one is part of.
    pub peer: std::net::IpAddr,
    /// What [`Conn::held_bytes`] was when the reactor last added it to its total.
    pub accounted: usize,
}

/// What a connection needs only while it is busy: framing a request, owing answers, or holding
/// output the client has not taken. Reused, buffers and all, from connection to connection.
struct Busy {
    reader: RequestReader,
    /// Responses serialised and not yet fully written; `written` bytes of it are.
    out: Vec<u8>,
    written: usize,
    /// Large shared bodies (a cached file) and files sent from where they are instead of being
    /// copied into `out`: each goes out after `out[..at]`, in `at` order.
    spliced: VecDeque<Splice>,
    owed: VecDeque<Owed>,
    /// The body bytes of answers that came back and wait behind an earlier one, unserialised.
    ready_bytes: usize,
    /// A `100 Continue` is due, written before the next answer (see [`Conn::serialise`]).
    continue_due: bool,
}

/// A closed connection's output, kept where it is until the kernel no longer reads it (see
/// [`Conn::close_keeping_output`]).
pub(crate) struct LentOutput {
    _busy: Option<Box<Busy>>,
}

/// The most spare busy parts a reactor keeps for its connections to take (see the module docs).
/// A part is made only when a connection turns busy and none is spare, so keep-alive serving
/// allocates none as long as the number of connections busy at once swings by less than this;
/// a spare keeps its buffers (a request's and an answer's worth, often 1 or 2 KiB in all), so
/// the spares cost a reactor well under a MiB however many connections it has open.
pub(crate) const MAX_SPARES: usize = 256;

/// A reactor's spare busy parts, all framing within its request limits.
pub(crate) struct Spares {
    parts: Vec<Box<Busy>>,
    limits: Limits,
}

impl Spares {
    pub fn new(limits: Limits) -> Spares {
        Spares { parts: Vec::new(), limits }
    }

    /// A spare, or a new part.
    fn take(&mut self) -> Box<Busy> {
        self.parts.pop().unwrap_or_else(|| {
            Box::new(Busy {
                reader: RequestReader::new(self.limits),
                out: Vec::new(),
                written: 0,
                spliced: VecDeque::new(),
                owed: VecDeque::new(),
                ready_bytes: 0,
                continue_due: false,
            })
        })
    }

    /// Keeps `busy`, emptied, if there is room; else frees it.
    fn give_back(&mut self, mut busy: Box<Busy>) {
        if self.parts.len() < MAX_SPARES {
            busy.reset();
            self.parts.push(busy);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.parts.len()
    }
}

impl Busy {
    /// Empties it for another connection, keeping its buffers (a grown output buffer is freed).
    fn reset(&mut self) {
        self.reader.reset();
        self.empty_output();
        self.spliced.clear();
        self.owed.clear();
        self.ready_bytes = 0;
        self.continue_due = false;
    }

    /// Whether bytes wait for the socket to take them.
    fn unsent(&self) -> bool {
        self.written < self.out.len() || !self.spliced.is_empty()
    }

    /// Whether it holds nothing a connection still needs: nothing owed or unsent, no bytes of a
    /// request, no interim answer due.
    fn is_empty(&self) -> bool {
        self.owed.is_empty() && !self.unsent() && !self.continue_due && self.reader.between_requests()
    }
}

/// A connection slot of a reactor: the connection, if open, and the generation of the last one
/// in it. A slot's number and generation say where an answer goes (the envelope's tag) and
/// which connection an I/O completion is for.
pub(crate) struct Slot {
    pub conn: Option<Conn>,
    pub generation: u32,
    /// Requests framed on this slot's connections whose answers have not come back. A slot goes
    /// back to the free list only when it has no connection and none of these.
    pub in_pipeline: u32,
}

/// What [`Conn::frame`] did with the envelope it was given.
pub(crate) enum Framing {
    /// A request, framed into the envelope.
    Request(Box<Envelope>),
    /// It needs more bytes from the client to frame the next request.
    NeedBytes(Box<Envelope>),
    /// It frames no more for now: no room, or it is closing.
    Stopped(Box<Envelope>),
}

/// Reads from a socket go into buffers of the backend's (a scratch buffer, a ring of provided
/// buffers), so a connection's own buffer holds only the bytes it has been sent.
pub(crate) const READ_CHUNK: usize = 16 * 1024;

/// An output buffer grown past this is given back once written, so a connection that once
/// sent a large file does not keep its memory.
const KEEP_OUT: usize = 64 * 1024;

impl Conn {
    pub fn new(stream: TcpStream, peer: std::net::IpAddr, generation: u32, head_deadline_ns: u64) -> Self {
        Conn {
            stream,
            busy: None,
            first_seq: 0,
            closing: false,
            rejected: false,
            linger_after: false,
            peer_done: false,
            linger_left: 0,
            held_back: false,
            stalled: false,
            dirty: false,
            output_lent: false,
            generation,
            waiting: Waiting::Head,
            deadline_ns: head_deadline_ns,
            body_deadline_ns: u64::MAX,
            progress: Progress::default(),
            peer,
            accounted: 0,
        }
    }

    /// Whether it holds a busy part now (an idle connection does not).
    #[cfg(test)]
    fn is_busy(&self) -> bool {
        self.busy.is_some()
    }

    /// Gives its busy part back to `spares` if it is idle: nothing owed, nothing unsent, no
    /// bytes of a request held, not closing (a closing connection soon gives it back on close),
    /// and its output not lent to the kernel. Returns whether it has none now.
    pub fn give_back_if_idle(&mut self, spares: &mut Spares) -> bool {
        match &self.busy {
            None => true,
            Some(busy) if busy.is_empty() && !self.closing && !self.output_lent => {
                spares.give_back(self.busy.take().unwrap());
                true
            }
            Some(_) => false,
        }
    }

    /// Gives its busy part back as the connection closes, unless the kernel still reads its
    /// output (then it goes with the connection, which the backend keeps until the send
    /// completes). Call after [`Conn::take_ready`].
    pub fn give_back_on_close(&mut self, spares: &mut Spares) {
        if !self.output_lent {
            if let Some(busy) = self.busy.take() {
                spares.give_back(busy);
            }
        }
    }

    /// Closes the socket now and keeps only the output, which a send still in flight reads
    /// from where it is (io_uring). With `reset`, the socket is reset rather than closed in
    /// order: the kernel drops the bytes it still holds instead of waiting for a client that may
    /// never take them, since a zero-copy send's output is free only once it has dropped or
    /// sent them all.
    pub fn close_keeping_output(self, reset: bool) -> LentOutput {
        if reset {
            let linger = libc::linger { l_onoff: 1, l_linger: 0 };
            // SAFETY: a valid socket and a linger of the size given; failure leaves an orderly
            // close, which frees the output later rather than never.
            unsafe {
                libc::setsockopt(
                    self.stream.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_LINGER,
                    (&linger as *const libc::linger).cast(),
                    std::mem::size_of::<libc::linger>() as libc::socklen_t,
                )
            };
        }
        LentOutput { _busy: self.busy }
    }

    /// Requests admitted and not yet answered, or answered and not yet written.
    pub fn owed(&self) -> usize {
        self.busy.as_ref().map_or(0, |busy| busy.owed.len())
    }

    /// The sequence number the next framed request gets.
    pub fn next_seq(&self) -> u64 {
        self.first_seq + self.owed() as u64
    }

    /// Whether the connection is done: nothing more will be read and nothing is owed or unsent.
    pub fn finished(&self) -> bool {
        self.closing && self.owed() == 0 && !self.unsent()
    }

    /// Stops reading: what is owed is still written, then the connection ends.
    pub fn close_after_owed(&mut self) {
        self.closing = true;
    }

    /// Frames the next request out of what it has received, into `env` (a recycled envelope).
    /// `room` says whether another request may be admitted now.
    pub fn frame(&mut self, env: Box<Envelope>, room: bool) -> Framing {
        if self.closing || !room {
            return Framing::Stopped(env);
        }
        // Idle: nothing received to frame; at the end of the client's stream, nothing will be.
        let Some(busy) = self.busy.as_deref_mut() else {
            if self.peer_done {
                self.closing = true;
                return Framing::Stopped(env);
            }
            return Framing::NeedBytes(env);
        };
        loop {
            match busy.reader.next_request() {
                Framed::Request(mut http) => {
                    let reply = Reply::to(&http);
                    let mut env = env;
                    let req = &mut env.req;
                    std::mem::swap(&mut req.http, &mut http);
                    busy.reader.recycle(http);
                    // The body travels as the payload, where stages read it.
                    req.payload.clear();
                    std::mem::swap(&mut req.payload, req.http.body_mut());
                    busy.owed.push_back(Owed { reply, ready: None });
                    return Framing::Request(env);
                }
                Framed::Reject(reject) => {
                    busy.owed.push_back(Owed { reply: Reply::default(), ready: Some(Ready::Fixed(reject.response())) });
                    self.closing = true;
                    self.rejected = true;
                    self.linger_after = true;
                    return Framing::Stopped(env);
                }
                Framed::Closed => {
                    self.closing = true;
                    return Framing::Stopped(env);
                }
                // The client shut its side: what it sent before is framed, and nothing more comes.
                Framed::NeedMore if self.peer_done => {
                    self.closing = true;
                    return Framing::Stopped(env);
                }
                Framed::NeedMore if busy.reader.take_continue() && busy.owed.is_empty() => {
                    // Only with nothing owed before it: an interim answer may not overtake the
                    // answers to earlier requests. (Otherwise the client sends on its own
                    // after its timeout.) It goes out with the next write.
                    busy.continue_due = true;
                }
                Framed::NeedMore => return Framing::NeedBytes(env),
            }
        }
    }

    /// Takes bytes the client sent: into the framer (taking a busy part from `spares` if it is
    /// idle), or, lingering, counted and dropped.
    pub fn received(&mut self, bytes: &[u8], spares: &mut Spares) {
        if self.waiting == Waiting::Linger {
            self.linger_left = self.linger_left.saturating_sub(bytes.len());
            return;
        }
        self.progress.read = true;
        self.busy.get_or_insert_with(|| spares.take()).reader.feed(bytes);
    }

    /// The client shut its side (a read returned the end of the stream); it may still read
    /// what it is owed. What it sent before the end is still framed (a completion backend can
    /// deliver the end with those bytes, before the reactor frames them): the connection stops
    /// reading when the framer next needs bytes.
    pub fn end_of_input(&mut self) {
        self.peer_done = true;
    }

    /// Whether a lingering connection is done: the client closed its side, or sent
    /// [`LINGER_BYTES`].
    pub fn linger_over(&self) -> bool {
        self.peer_done || self.linger_left == 0
    }

    /// Whether a request was rejected by the framer since the last call.
    pub fn take_rejected(&mut self) -> bool {
        std::mem::take(&mut self.rejected)
    }

    /// Bytes of a request head or body received and not yet framed.
    pub fn partial(&self) -> bool {
        self.unframed_bytes() > 0
    }

    /// Bytes received and not yet framed into a request.
    pub fn unframed_bytes(&self) -> usize {
        self.busy.as_ref().map_or(0, |busy| busy.reader.buffered())
    }

    /// What it waits for now, and so which of its deadlines applies.
    pub fn wait_kind(&self) -> Waiting {
        if self.unsent() {
            Waiting::Send
        } else if self.owed() > 0 {
            Waiting::Answers
        } else if self.busy.as_ref().is_some_and(|busy| busy.reader.in_body()) {
            Waiting::Body
        } else if self.partial() || self.next_seq() == 0 {
            // A connection that has sent nothing yet waits for its first head from accept.
            Waiting::Head
        } else {
            Waiting::Idle
        }
    }

    /// Places the answer to request `seq`. Returns false if the connection owes no such request
    /// (it cannot happen for a live connection; the caller recycles the envelope).
    pub fn answer(&mut self, seq: u64, env: Box<Envelope>, answer: Answer) -> Result<(), Box<Envelope>> {
        let Some(busy) = self.busy.as_deref_mut() else { return Err(env) };
        match seq.checked_sub(self.first_seq).and_then(|i| busy.owed.get_mut(i as usize)) {
            Some(owed) if owed.ready.is_none() => {
                busy.ready_bytes += body_len(&env, answer);
                owed.ready = Some(Ready::Ended(env, answer));
                Ok(())
            }
            _ => Err(env),
        }
    }

    /// Serialises every answer ready at the front of `owed`, handing each envelope to
    /// `recycle`. Returns how many.
    /// Nothing is serialised while the output is lent to the kernel: the caller comes back
    /// once the send completes.
    pub fn serialise(&mut self, date: &[u8], mut recycle: impl FnMut(Box<Envelope>)) -> usize {
        let mut n = 0;
        if self.output_lent {
            return 0;
        }
        let Some(busy) = self.busy.as_deref_mut() else { return 0 };
        if std::mem::take(&mut busy.continue_due) {
            if !busy.unsent() {
                busy.out.clear();
                busy.written = 0;
            }
            busy.out.extend_from_slice(fixed_replies::CONTINUE);
        }
        while let Some(Owed { ready: Some(_), .. }) = busy.owed.front() {
            let Owed { mut reply, ready } = busy.owed.pop_front().unwrap();
            self.first_seq += 1;
            self.progress.answered = true;
            n += 1;
            if !busy.unsent() {
                busy.out.clear();
                busy.written = 0;
            }
            // The last answer owed on a closing connection says so.
            reply.close |= self.closing && busy.owed.is_empty();
            match ready.unwrap() {
                Ready::Fixed(bytes) => busy.out.extend_from_slice(bytes),
                Ready::Ended(mut env, answer) => {
                    busy.ready_bytes -= body_len(&env, answer);
                    if let Some(body) = write_answer(&mut busy.out, &env, answer, reply, date) {
                        busy.spliced.push_back(Splice { at: busy.out.len(), body });
                    }
                    // A recycled envelope waits for reuse: it must not keep the file open.
                    env.req.response.file = None;
                    recycle(env);
                }
            }
            if reply.close {
                // Nothing after a `Connection: close` response may be sent.
                self.closing = true;
                for owed in busy.owed.drain(..) {
                    if let Some(Ready::Ended(env, _)) = owed.ready {
                        recycle(env);
                    }
                }
                busy.ready_bytes = 0;
            }
        }
        n
    }

    /// Makes the next unsent bytes ready (reads the next piece of a file being sent). Err: the
    /// file could not be read to the length announced, and the connection must close.
    pub fn prepare_output(&mut self) -> io::Result<()> {
        match self.busy.as_mut().and_then(|busy| busy.spliced.front_mut()) {
            Some(splice) => splice.body.prepare(),
            None => Ok(()),
        }
    }

    /// Marks `n` bytes of the unsent output as taken by the socket; once all are, the output
    /// buffer is reused (or given back, if it grew large).
    pub fn sent(&mut self, n: usize) {
        self.progress.sent |= n > 0;
        let Some(busy) = self.busy.as_deref_mut() else { return };
        busy.advance(n);
        if !busy.unsent() {
            busy.empty_output();
        }
    }

    /// The unsent bytes in order, as slices of `out` and of the spliced bodies (call
    /// [`Conn::prepare_output`] first). Returns how many of `slices` it filled.
    pub fn unsent_slices<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let Some(busy) = self.busy.as_deref() else { return 0 };
        let (mut n, mut at) = (0, busy.written);
        for splice in &busy.spliced {
            if n + 2 > slices.len() {
                return n;
            }
            if splice.at > at {
                slices[n] = IoSlice::new(&busy.out[at..splice.at]);
                n += 1;
                at = splice.at;
            }
            slices[n] = IoSlice::new(splice.body.ready());
            n += 1;
            if !splice.body.ready_is_all() {
                // The rest of a file is not read yet: nothing after it can go in this write.
                return n;
            }
        }
        if n < slices.len() && at < busy.out.len() {
            slices[n] = IoSlice::new(&busy.out[at..]);
            n += 1;
        }
        n
    }

    /// Whether its own bounds let another request be framed: fewer than `max_pipelined`
    /// answers owed (answered but unwritten ones count), and the bytes held for it within its
    /// share (`max_unsent_bytes_per_connection`): a client that pipelines and does not read
    /// cannot make the server hold unbounded output.
    pub fn has_room(&self, max_pipelined: usize, max_held_bytes: usize) -> bool {
        self.owed() < max_pipelined && self.held_bytes() <= max_held_bytes
    }

    /// The bytes of its answers the server holds until the client takes them: serialised and
    /// unsent (shared bodies count, though they are not copies), and the bodies of answers
    /// that came back and wait behind an earlier one.
    pub fn held_bytes(&self) -> usize {
        self.busy.as_ref().map_or(0, |busy| busy.unsent_bytes() + busy.ready_bytes)
    }

    /// Whether bytes wait for the socket to take them.
    pub fn unsent(&self) -> bool {
        self.busy.as_ref().is_some_and(|busy| busy.unsent())
    }

    /// Sends `bytes` if the socket takes them now, ignoring errors: the last thing sent before
    /// closing. (A direct write, whichever the backend: best effort, with nothing else unsent.)
    pub fn write_before_close(&mut self, bytes: &[u8]) {
        if !self.unsent() {
            let _ = (&self.stream).write(bytes);
        }
    }

    /// Whether it should end with a lingering close rather than at once.
    pub fn wants_linger(&self) -> bool {
        self.linger_after && !self.peer_done
    }

    /// Marks it to end with a lingering close once the reply it ends with is written (a 408).
    pub fn linger_after(&mut self) {
        self.closing = true;
        self.linger_after = true;
    }

    /// Shuts the write side (the client reads the end of the stream after its reply) and
    /// starts to linger; the caller sets the deadline.
    pub fn start_linger(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        self.waiting = Waiting::Linger;
        self.linger_left = LINGER_BYTES;
    }

    /// Envelopes of answers that arrived but were not written, for the caller to recycle when
    /// the connection is dropped.
    pub fn take_ready(&mut self) -> impl Iterator<Item = Box<Envelope>> + '_ {
        let owed = self.busy.as_deref_mut().map(|busy| {
            busy.ready_bytes = 0;
            busy.owed.drain(..)
        });
        owed.into_iter().flatten().filter_map(|owed| match owed.ready {
            Some(Ready::Ended(env, _)) => Some(env),
            _ => None,
        })
    }
}

impl Busy {
    /// Empties the output buffer for reuse, freeing it if it grew past [`KEEP_OUT`].
    fn empty_output(&mut self) {
        self.out.clear();
        self.written = 0;
        if self.out.capacity() > KEEP_OUT {
            self.out = Vec::new();
        }
    }

    /// Marks `n` more bytes of the output as sent.
    fn advance(&mut self, mut n: usize) {
        while n > 0 {
            let until = self.spliced.front().map_or(self.out.len(), |s| s.at);
            let take = n.min(until - self.written);
            self.written += take;
            n -= take;
            if let Some(splice) = self.spliced.front_mut().filter(|_| n > 0) {
                n -= splice.body.advance(n);
                if splice.body.done() {
                    self.spliced.pop_front();
                }
            }
        }
    }

    /// Bytes serialised and not yet taken by the socket, shared bodies included.
    fn unsent_bytes(&self) -> usize {
        self.out.len() - self.written + self.spliced.iter().map(|s| s.body.held()).sum::<usize>()
    }
}

/// The body an answer will send: what it holds until it is written.
fn body_len(env: &Envelope, answer: Answer) -> usize {
    match answer {
        Answer::Response => env.req.response.bytes().len(),
        Answer::Unavailable | Answer::Failed => 0,
    }
}

/// The status a failed request is answered with: the error status its stage chose when it
/// failed it (504 for a timeout upstream, 503 for no one upstream to serve it), else 500.
fn failed_status(chosen: u16) -> Status {
    match Status::new(chosen) {
        Some(status) if (400..600).contains(&chosen) => status,
        _ => Status::INTERNAL_SERVER_ERROR,
    }
}

/// Writes the answer to `env`'s request, with `date` as its `Date` header. Returns a body to
/// send after what it wrote, from where it is (a large shared body, a file), instead of having
/// copied it.
fn write_answer(out: &mut Vec<u8>, env: &Envelope, answer: Answer, reply: Reply, date: &[u8]) -> Option<Body> {
    let response = &env.req.response;
    let date = Some(date);
    match answer {
        Answer::Response => match Status::new(response.status) {
            Some(status) => {
                let headers = response.headers.iter();
                let sends_body = !reply.head_only && !status.forbids_body();
                if let Some(file) = &response.file {
                    // The head with the file's length; its bytes follow from the file.
                    write_head(out, status, date, headers, file.len, reply);
                    return (sends_body && file.len > 0).then(|| Body::file(file));
                }
                let splice = response.shared.as_ref().filter(|body| body.len() >= SPLICE_MIN && sends_body);
                if let Some(body) = splice {
                    write_head(out, status, date, headers, body.len() as u64, reply);
                    return Some(Body::shared(body.clone()));
                }
                write_parts(out, status, date, headers, response.bytes(), reply);
            }
            // A pipeline that ended without choosing a status is a server error.
            None => write_parts(out, Status::INTERNAL_SERVER_ERROR, date, [], b"", reply),
        },
        Answer::Unavailable => out.extend_from_slice(fixed_replies::service_unavailable(reply)),
        Answer::Failed => write_parts(out, failed_status(response.status), date, [], b"", reply),
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    /// What every open connection costs a reactor while idle, in its slot: the bound the idle
    /// connection's memory (0.5 KiB in all, with the backend's own per-slot state and the
    /// reactor's idle list) is designed around.
    const MAX_SLOT_BYTES: usize = 128;

    fn conn() -> (Conn, TcpStream) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (stream, peer) = listener.accept().unwrap();
        (Conn::new(stream, peer.ip(), 1, u64::MAX), client)
    }

    /// The address of its busy part, to tell a reused one from a new one.
    fn busy_at(conn: &Conn) -> *const Busy {
        conn.busy.as_deref().expect("busy") as *const Busy
    }

    /// Frames one request, answers it, serialises the answer and has it all sent, checking that
    /// the busy part is kept until then.
    fn serve_one(conn: &mut Conn, spares: &mut Spares) {
        conn.received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", spares);
        let Framing::Request(env) = conn.frame(Box::default(), true) else { panic!("no request framed") };
        assert!(!conn.give_back_if_idle(spares), "given back with an answer owed");
        conn.answer(conn.next_seq() - 1, env, Answer::Response).unwrap_or_else(|_| panic!("not owed"));
        assert_eq!(conn.serialise(b"Thu, 01 Jan 1970 00:00:00 GMT", drop), 1);
        assert!(!conn.give_back_if_idle(spares), "given back with its answer unsent");
        let unsent = conn.held_bytes();
        conn.sent(unsent);
        assert_eq!(conn.wait_kind(), Waiting::Idle);
    }

    #[test]
    fn a_connection_slot_stays_within_its_bound() {
        let slot = std::mem::size_of::<Slot>();
        assert!(slot <= MAX_SLOT_BYTES, "a slot is {slot} bytes, over {MAX_SLOT_BYTES}");
    }

    #[test]
    fn an_idle_connection_gives_its_busy_part_back_and_the_next_request_reuses_it() {
        let (mut conn, _client) = conn();
        let mut spares = Spares::new(Limits::default());
        assert!(!conn.is_busy(), "a new connection takes a busy part only once it is sent bytes");
        serve_one(&mut conn, &mut spares);
        let first = busy_at(&conn);
        assert!(conn.give_back_if_idle(&mut spares));
        assert!(!conn.is_busy());
        assert_eq!(spares.len(), 1);
        // The next request takes the spare, buffers and all, instead of allocating.
        serve_one(&mut conn, &mut spares);
        assert_eq!(busy_at(&conn), first);
        assert_eq!(spares.len(), 0);
        assert_eq!(conn.next_seq(), 2, "sequence numbers go on across idle spells");
    }

    #[test]
    fn a_connection_with_a_partial_request_keeps_its_busy_part() {
        let (mut conn, _client) = conn();
        let mut spares = Spares::new(Limits::default());
        conn.received(b"GET / HTTP/1.1\r\nHo", &mut spares);
        assert!(matches!(conn.frame(Box::default(), true), Framing::NeedBytes(_)));
        assert!(!conn.give_back_if_idle(&mut spares));
        conn.received(b"st: x\r\n\r\n", &mut spares);
        assert!(matches!(conn.frame(Box::default(), true), Framing::Request(_)));
    }

    #[test]
    fn a_busy_part_whose_output_is_lent_to_the_kernel_is_never_given_back() {
        let (mut conn, _client) = conn();
        let mut spares = Spares::new(Limits::default());
        serve_one(&mut conn, &mut spares);
        // As if a send were still in flight (io_uring): the kernel may still read the output.
        conn.output_lent = true;
        assert!(!conn.give_back_if_idle(&mut spares));
        conn.give_back_on_close(&mut spares);
        assert!(conn.is_busy());
        assert_eq!(spares.len(), 0);
        conn.output_lent = false;
        conn.give_back_on_close(&mut spares);
        assert!(!conn.is_busy());
        assert_eq!(spares.len(), 1);
    }

    #[test]
    fn a_reactor_keeps_at_most_max_spares_busy_parts() {
        let mut spares = Spares::new(Limits::default());
        let parts: Vec<_> = (0..MAX_SPARES + 3).map(|_| spares.take()).collect();
        parts.into_iter().for_each(|part| spares.give_back(part));
        assert_eq!(spares.len(), MAX_SPARES);
    }
}
