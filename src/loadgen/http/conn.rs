//! One client connection on mio: requests written out (pipelined up to a depth), responses
//! read back in order, and every request in flight ended exactly once, by a response or by the
//! connection's failure.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

use super::response::{Response, ResponseParser, MAX_HEAD};
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

pub struct Connection {
    stream: Option<TcpStream>,
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
    pub fn new(depth: usize, text: Option<std::sync::Arc<[u8]>>) -> Self {
        Connection {
            stream: None,
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
            Ok(stream)
        });
        match started {
            Ok(stream) => {
                self.stream = Some(stream);
                self.state = State::Connecting;
                Ok(())
            }
            Err(_) => {
                self.state = State::Down { retry_ns: now_ns() + CONNECT_RETRY_NS };
                Err(ErrorKind::Connect)
            }
        }
    }

    pub fn has_room(&self) -> bool {
        self.state == State::Open && self.in_flight.len() < self.depth
    }

    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    pub fn has_unwritten(&self) -> bool {
        self.written < self.in_flight.len() || self.out_pos < self.out.len()
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

    /// Handles a readiness event: the connect's outcome, room to write, bytes to read.
    /// Returns a connect error if the connection could not be opened.
    pub fn ready(
        &mut self,
        readable: bool,
        writable: bool,
        ends: &mut impl FnMut(Pending, Ended),
    ) -> Option<ErrorKind> {
        if self.state == State::Connecting {
            let stream = self.stream.as_ref()?;
            match stream.take_error() {
                Ok(None) => {}
                _ => return self.connect_failed(),
            }
            match stream.peer_addr() {
                Ok(_) => {
                    self.state = State::Open;
                    let _ = stream.set_nodelay(true);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return None,
                Err(_) => return self.connect_failed(),
            }
        }
        if self.state != State::Open {
            return None;
        }
        if writable {
            self.flush(ends);
        }
        if readable {
            self.read(ends);
        }
        None
    }

    fn connect_failed(&mut self) -> Option<ErrorKind> {
        self.stream = None;
        self.state = State::Down { retry_ns: now_ns() + CONNECT_RETRY_NS };
        Some(ErrorKind::Connect)
    }

    fn read(&mut self, ends: &mut impl FnMut(Pending, Ended)) {
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
        // Dropping the stream deregisters it.
        self.stream = None;
        self.state = State::Down { retry_ns: 0 };
    }
}
