//! One client connection: requests written out (pipelined up to a depth), responses read back
//! in order, and every request in flight ended exactly once, by a response or by the
//! connection's failure.
//!
//! Its socket is either watched by mio (epoll: the connection reads and writes it when it is
//! ready) or driven by a ring ([`RingStream`]: the sending thread's ring receives into the
//! stream's inbox and sends its outbox; the connection reads and writes those buffers as if
//! they were the socket, so the rest of this file is the same for both).
//!
//! Over TLS the bytes pass through a rustls session (sans I/O) between the socket and the same
//! buffers: requests are written into the session and its records out to the socket; records
//! read from the socket are decrypted into the input buffer. Opening takes two steps, the TCP
//! connect and the TLS handshake, each with a deadline of `--timeout` (see
//! [`Connection::opening_expired`]).

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use rustls::ClientConnection;

use super::response::{Response, ResponseParser, MAX_HEAD};
use super::tls::TlsClient;
use crate::clock::now_ns;
use crate::loadgen::tally::ErrorKind;

/// A request written (or about to be) on a connection.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    /// When the schedule meant it to go; 0 in a closed loop, where it is its send time.
    pub intended_ns: u64,
    /// When the sending loop took it off the schedule; 0 in a closed loop.
    pub dispatched_ns: u64,
    /// When it was written; 0 until then.
    pub sent_ns: u64,
    pub phase: u32,
    /// Sent with method HEAD: its response has no body.
    pub head: bool,
    /// Its kind: an index into the mix.
    pub kind: u32,
}

/// How a request in flight ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Response { status: u16, done_ns: u64, text_found: bool },
    Error(ErrorKind),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Connecting,
    /// TCP is open; the TLS handshake is under way.
    Handshaking,
    Open,
    /// Closed; to be opened again at this time (clock ns).
    Down {
        retry_ns: u64,
    },
}

/// The input buffer of a connection at first: many responses at once, for few bytes per
/// connection when there are thousands of them.
const INPUT_BYTES: usize = 16 * 1024;

/// After a failed connect, wait this long before the next attempt.
const CONNECT_RETRY_NS: u64 = 10_000_000;

/// What opening a connection came to, when it came to something.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Opening {
    /// The TCP connect (`Connect`) or the TLS handshake (`Tls`) failed.
    Failed(ErrorKind),
    /// A TLS handshake finished, this long after TCP was open; `resumed` if it resumed an
    /// earlier session.
    Handshake { ns: u64, resumed: bool },
}

/// What reading a TLS session's decrypted bytes came to.
enum Plaintext {
    /// All read; more may come.
    More,
    /// The server closed the session.
    Closed,
    /// The connection failed while its responses were parsed.
    Gone,
}

/// A connection's socket as the sending thread's ring drives it: bytes the ring received wait
/// in `inbox` to be read; bytes written wait in `outbox` for the ring to send them.
pub struct RingStream {
    socket: TcpStream,
    inbox: Vec<u8>,
    inbox_read: usize,
    pub outbox: Vec<u8>,
    /// The peer ended its stream: reads give 0 once the inbox is empty.
    pub ended: bool,
    /// A receive or send failed: reads and writes fail.
    pub broken: bool,
}

impl RingStream {
    pub fn fd(&self) -> std::os::fd::RawFd {
        std::os::fd::AsRawFd::as_raw_fd(&self.socket)
    }

    /// Bytes the ring received for this connection.
    pub fn received(&mut self, bytes: &[u8]) {
        self.inbox.extend_from_slice(bytes);
    }
}

impl Read for RingStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let waiting = &self.inbox[self.inbox_read..];
        if !waiting.is_empty() {
            let n = waiting.len().min(buf.len());
            buf[..n].copy_from_slice(&waiting[..n]);
            self.inbox_read += n;
            if self.inbox_read == self.inbox.len() {
                self.inbox.clear();
                self.inbox_read = 0;
            }
            return Ok(n);
        }
        match (self.broken, self.ended) {
            (true, _) => Err(io::ErrorKind::ConnectionReset.into()),
            (false, true) => Ok(0),
            (false, false) => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for RingStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.broken {
            return Err(io::ErrorKind::BrokenPipe.into());
        }
        self.outbox.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for RingStream {
    /// A receive or send still in flight holds the socket open in the kernel: shutting it down
    /// ends them (their completions, for a generation gone, are dropped) so it closes.
    fn drop(&mut self) {
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
    }
}

/// A connection's socket: on mio, or driven by a ring.
enum Stream {
    Mio(TcpStream),
    Ring(RingStream),
}

impl Stream {
    fn socket(&self) -> &TcpStream {
        match self {
            Stream::Mio(s) => s,
            Stream::Ring(r) => &r.socket,
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Mio(s) => s.read(buf),
            Stream::Ring(r) => r.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Mio(s) => s.write(buf),
            Stream::Ring(r) => r.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub struct Connection {
    stream: Option<Stream>,
    /// Counts the connects: the ring tells a completion for this socket from one for an
    /// earlier socket of the same connection by it.
    generation: u32,
    /// For an https:// target: how to open a session, and the session while there is one.
    tls_client: Option<TlsClient>,
    tls: Option<Box<ClientConnection>>,
    /// When the current step of opening began (clock ns).
    opening_since_ns: u64,
    pub state: State,
    /// Requests written or queued to be, oldest first (at most `depth`).
    in_flight: VecDeque<Pending>,
    /// How many of `in_flight` have been written (`sent_ns` set).
    written: usize,
    out: Vec<u8>,
    out_pos: usize,
    /// Bytes received and not yet consumed: `input[..filled]`. It starts small and grows (to
    /// twice the longest head) only for a response head that does not fit.
    input: Vec<u8>,
    filled: usize,
    parser: ResponseParser,
    depth: usize,
}

impl Connection {
    /// A connection with up to `depth` requests in flight, whose responses' bodies are
    /// searched for `text`, if given.
    pub fn new(depth: usize, text: Option<std::sync::Arc<[u8]>>, tls_client: Option<TlsClient>) -> Self {
        Connection {
            stream: None,
            generation: 0,
            tls_client,
            tls: None,
            opening_since_ns: 0,
            state: State::Down { retry_ns: 0 },
            in_flight: VecDeque::with_capacity(depth),
            written: 0,
            out: Vec::new(),
            out_pos: 0,
            input: vec![0; INPUT_BYTES],
            filled: 0,
            parser: ResponseParser::looking_for(text),
            depth,
        }
    }

    /// Starts opening the connection. A failure to even start counts as a connect error.
    pub fn connect(&mut self, addr: SocketAddr, registry: &Registry, token: Token) -> Result<(), ErrorKind> {
        let started = TcpStream::connect(addr).and_then(|mut stream| {
            registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
            Ok(Stream::Mio(stream))
        });
        self.started(started)
    }

    /// Starts opening the connection, for a ring to drive: its connect completes when the ring
    /// says the socket is writable ([`Connection::ready`]).
    pub fn connect_ring(&mut self, addr: SocketAddr) -> Result<(), ErrorKind> {
        let started = TcpStream::connect(addr).map(|socket| {
            Stream::Ring(RingStream {
                socket,
                inbox: Vec::new(),
                inbox_read: 0,
                outbox: Vec::new(),
                ended: false,
                broken: false,
            })
        });
        self.started(started)
    }

    fn started(&mut self, started: io::Result<Stream>) -> Result<(), ErrorKind> {
        self.generation = self.generation.wrapping_add(1);
        match started {
            Ok(stream) => {
                self.stream = Some(stream);
                self.state = State::Connecting;
                self.opening_since_ns = now_ns();
                Ok(())
            }
            Err(_) => {
                self.state = State::Down { retry_ns: now_ns() + CONNECT_RETRY_NS };
                Err(ErrorKind::Connect)
            }
        }
    }

    pub fn generation(&self) -> u32 {
        self.generation
    }

    /// The socket, when a ring drives it.
    pub fn ring_stream(&mut self) -> Option<&mut RingStream> {
        match self.stream.as_mut()? {
            Stream::Ring(r) => Some(r),
            Stream::Mio(_) => None,
        }
    }

    pub fn has_room(&self) -> bool {
        self.state == State::Open && self.in_flight.len() < self.depth
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn has_unwritten(&self) -> bool {
        self.written < self.in_flight.len()
            || self.out_pos < self.out.len()
            || self.tls.as_ref().is_some_and(|tls| tls.wants_write())
    }

    /// Queues a request's bytes; [`Connection::flush`] writes them.
    pub fn push(&mut self, bytes: &[u8], pending: Pending) {
        debug_assert!(self.has_room());
        self.out.extend_from_slice(bytes);
        self.in_flight.push_back(pending);
    }

    /// Writes what is queued, stamping the requests in it as sent now.
    pub fn flush(&mut self, ends: &mut impl FnMut(Pending, Ended)) {
        if self.state != State::Open || !self.has_unwritten() {
            return;
        }
        let now = now_ns();
        for p in self.in_flight.iter_mut().skip(self.written) {
            p.sent_ns = now;
            if p.intended_ns == 0 {
                p.intended_ns = now;
                p.dispatched_ns = now;
            }
        }
        self.written = self.in_flight.len();
        if self.tls.is_some() {
            return self.flush_tls(ends);
        }
        let stream = self.stream.as_mut().expect("an open connection has a stream");
        while self.out_pos < self.out.len() {
            match stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return self.fail(ErrorKind::Write, ends),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.fail(ErrorKind::Write, ends),
            }
        }
        self.out.clear();
        self.out_pos = 0;
    }

    /// TLS: writes what is queued into the session, and the session's records to the socket.
    fn flush_tls(&mut self, ends: &mut impl FnMut(Pending, Ended)) {
        let tls = self.tls.as_mut().expect("a TLS connection has a session");
        while self.out_pos < self.out.len() {
            match tls.writer().write(&self.out[self.out_pos..]) {
                // The session's buffer is full: the rest goes once its records are out.
                Ok(0) => break,
                Ok(n) => self.out_pos += n,
                Err(_) => return self.fail(ErrorKind::Write, ends),
            }
        }
        if self.out_pos == self.out.len() {
            self.out.clear();
            self.out_pos = 0;
        }
        if self.write_records().is_err() {
            self.fail(ErrorKind::Write, ends);
        }
    }

    /// Writes the session's records to the socket until it has none or the socket is full.
    fn write_records(&mut self) -> io::Result<()> {
        let (Some(tls), Some(stream)) = (self.tls.as_mut(), self.stream.as_mut()) else { return Ok(()) };
        while tls.wants_write() {
            match tls.write_tls(stream) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Handles a readiness event: the connect's outcome, the handshake's progress, room to
    /// write, bytes to read. Returns what opening the connection came to, if it came to
    /// something in this event.
    pub fn ready(&mut self, readable: bool, writable: bool, ends: &mut impl FnMut(Pending, Ended)) -> Option<Opening> {
        let mut opening = None;
        if self.state == State::Connecting {
            let stream = self.stream.as_ref()?.socket();
            match stream.take_error() {
                Ok(None) => {}
                _ => return Some(self.opening_failed(ErrorKind::Connect)),
            }
            match stream.peer_addr() {
                Ok(_) => {
                    let _ = stream.set_nodelay(true);
                    self.opening_since_ns = now_ns();
                    match self.tls_client.as_ref().map(TlsClient::connection) {
                        None => self.state = State::Open,
                        Some(Ok(session)) => {
                            self.tls = Some(Box::new(session));
                            self.state = State::Handshaking;
                        }
                        Some(Err(_)) => return Some(self.opening_failed(ErrorKind::Tls)),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return None,
                Err(_) => return Some(self.opening_failed(ErrorKind::Connect)),
            }
        }
        if self.state == State::Handshaking {
            match self.handshake() {
                Err(()) => return Some(self.opening_failed(ErrorKind::Tls)),
                Ok(false) => return None,
                Ok(true) => {
                    self.state = State::Open;
                    let resumed =
                        self.tls.as_ref().and_then(|t| t.handshake_kind()) == Some(rustls::HandshakeKind::Resumed);
                    let ns = now_ns().saturating_sub(self.opening_since_ns);
                    opening = Some(Opening::Handshake { ns, resumed });
                }
            }
        }
        if self.state != State::Open {
            return opening;
        }
        if writable {
            self.flush(ends);
        }
        if readable {
            self.read(ends);
        }
        opening
    }

    /// Moves the handshake on with what the socket has: true once it is done.
    fn handshake(&mut self) -> Result<bool, ()> {
        self.write_records().map_err(|_| ())?;
        loop {
            let (Some(tls), Some(stream)) = (self.tls.as_mut(), self.stream.as_mut()) else { return Err(()) };
            if !tls.is_handshaking() {
                break;
            }
            match tls.read_tls(stream) {
                Ok(0) => return Err(()),
                Ok(_) => {
                    if tls.process_new_packets().is_err() {
                        // The alert that says why goes out, if it can.
                        let _ = self.write_records();
                        return Err(());
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Err(()),
            }
        }
        self.write_records().map_err(|_| ())?;
        Ok(self.tls.as_ref().is_some_and(|tls| !tls.is_handshaking()))
    }

    /// Whether the connection has been opening (connecting or in its handshake) for more than
    /// `timeout_ns`; [`Connection::opening_failed`] then ends it.
    pub fn opening_expired(&self, now: u64, timeout_ns: u64) -> Option<ErrorKind> {
        let kind = match self.state {
            State::Connecting => ErrorKind::Connect,
            State::Handshaking => ErrorKind::Tls,
            _ => return None,
        };
        (now.saturating_sub(self.opening_since_ns) > timeout_ns).then_some(kind)
    }

    /// Closes a connection that could not be opened; it is tried again a little later.
    pub fn opening_failed(&mut self, kind: ErrorKind) -> Opening {
        self.stream = None;
        self.tls = None;
        self.state = State::Down { retry_ns: now_ns() + CONNECT_RETRY_NS };
        Opening::Failed(kind)
    }

    fn read(&mut self, ends: &mut impl FnMut(Pending, Ended)) {
        if self.tls.is_some() {
            return self.read_tls(ends);
        }
        loop {
            if self.filled == self.input.len() {
                // Only a head longer than the buffer fills it (bodies are consumed as they
                // come); the parser rejects one longer than MAX_HEAD.
                let grown = (2 * self.input.len()).min(2 * MAX_HEAD);
                if grown == self.input.len() {
                    return self.fail(ErrorKind::Read, ends);
                }
                self.input.resize(grown, 0);
            }
            let stream = self.stream.as_mut().expect("an open connection has a stream");
            match stream.read(&mut self.input[self.filled..]) {
                Ok(0) => {
                    if let Some(r) = self.parser.eof() {
                        self.respond(r, now_ns(), ends);
                    }
                    return self.fail(ErrorKind::Read, ends);
                }
                Ok(n) => {
                    let done_ns = now_ns();
                    let drained = self.filled + n < self.input.len();
                    self.filled += n;
                    if !self.parse(done_ns, ends) || drained {
                        // A read that did not fill the buffer emptied the socket: bytes that
                        // arrive later raise a new edge, so reading on to WouldBlock would
                        // only cost a second system call per response.
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return self.fail(ErrorKind::Read, ends),
            }
        }
    }

    /// TLS: reads the socket's records until it is empty (mio's events are edge-triggered),
    /// decrypting them into the input and taking the responses out as they complete.
    fn read_tls(&mut self, ends: &mut impl FnMut(Pending, Ended)) {
        loop {
            let (Some(tls), Some(stream)) = (self.tls.as_mut(), self.stream.as_mut()) else { return };
            let closed = match tls.read_tls(stream) {
                Ok(0) => true,
                Ok(_) => false,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => return self.fail(ErrorKind::Read, ends),
            };
            if tls.process_new_packets().is_err() {
                let _ = self.write_records();
                return self.fail(ErrorKind::Read, ends);
            }
            let done_ns = now_ns();
            match self.take_plaintext(done_ns, ends) {
                Plaintext::Gone => return,
                Plaintext::Closed => return self.end_of_stream(ends),
                Plaintext::More if closed => return self.end_of_stream(ends),
                Plaintext::More => {}
            }
        }
        // Reading can leave the session something to send (an alert, a key update).
        if self.write_records().is_err() {
            self.fail(ErrorKind::Write, ends);
        }
    }

    /// Moves the session's decrypted bytes into the input and parses them.
    fn take_plaintext(&mut self, done_ns: u64, ends: &mut impl FnMut(Pending, Ended)) -> Plaintext {
        loop {
            if self.filled == self.input.len() {
                let grown = (2 * self.input.len()).min(2 * MAX_HEAD);
                if grown == self.input.len() {
                    self.fail(ErrorKind::Read, ends);
                    return Plaintext::Gone;
                }
                self.input.resize(grown, 0);
            }
            let Some(tls) = self.tls.as_mut() else { return Plaintext::Gone };
            match tls.reader().read(&mut self.input[self.filled..]) {
                // The server's close_notify: nothing more comes.
                Ok(0) => return Plaintext::Closed,
                Ok(n) => {
                    self.filled += n;
                    if !self.parse(done_ns, ends) {
                        return Plaintext::Gone;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Plaintext::More,
                // The server closed TCP without a close_notify: as over plain TCP, the end of
                // the connection (which completes a response framed by it).
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Plaintext::Closed,
                Err(_) => {
                    self.fail(ErrorKind::Read, ends);
                    return Plaintext::Gone;
                }
            }
        }
    }

    /// The server ended the connection: a response framed by its end is complete; whatever
    /// else is in flight failed.
    fn end_of_stream(&mut self, ends: &mut impl FnMut(Pending, Ended)) {
        if let Some(r) = self.parser.eof() {
            self.respond(r, now_ns(), ends);
        }
        self.fail(ErrorKind::Read, ends);
    }

    /// Takes every complete response out of the input. False if the connection is gone.
    fn parse(&mut self, done_ns: u64, ends: &mut impl FnMut(Pending, Ended)) -> bool {
        let mut pos = 0;
        loop {
            let head = self.in_flight.front().is_some_and(|p| p.head);
            match self.parser.feed(&self.input[pos..self.filled], head) {
                Ok((used, done)) => {
                    pos += used;
                    if let Some(r) = done {
                        if !self.respond(r, done_ns, ends) {
                            self.fail(ErrorKind::Read, ends);
                            return false;
                        }
                        if r.close {
                            // What else is in flight was sent on a connection the server ends.
                            self.fail(ErrorKind::Read, ends);
                            self.state = State::Down { retry_ns: 0 };
                            return false;
                        }
                    } else if used == 0 {
                        break;
                    }
                }
                Err(_) => {
                    self.fail(ErrorKind::Read, ends);
                    return false;
                }
            }
        }
        self.input.copy_within(pos..self.filled, 0);
        self.filled -= pos;
        true
    }

    /// Ends the oldest request with its response; false if none was waiting for one.
    fn respond(&mut self, r: Response, done_ns: u64, ends: &mut impl FnMut(Pending, Ended)) -> bool {
        if self.written == 0 {
            return false;
        }
        let p = self.in_flight.pop_front().expect("written requests are in flight");
        self.written -= 1;
        ends(p, Ended::Response { status: r.status, done_ns, text_found: r.text_found });
        true
    }

    /// Whether the oldest request has waited more than `timeout_ns` since it was sent.
    pub fn expired(&self, now: u64, timeout_ns: u64) -> bool {
        self.in_flight.front().is_some_and(|p| p.sent_ns != 0 && now.saturating_sub(p.sent_ns) > timeout_ns)
    }

    /// Closes the connection, ending every request in flight with `kind` (those never written
    /// as unsent); it is opened again on the next chance.
    pub fn fail(&mut self, kind: ErrorKind, ends: &mut impl FnMut(Pending, Ended)) {
        for (i, p) in self.in_flight.drain(..).enumerate() {
            ends(p, Ended::Error(if i < self.written { kind } else { ErrorKind::Unsent }));
        }
        self.written = 0;
        self.out.clear();
        self.out_pos = 0;
        self.filled = 0;
        self.parser.reset();
        self.tls = None;
        // Dropping the stream deregisters it.
        self.stream = None;
        self.state = State::Down { retry_ns: 0 };
    }
}
