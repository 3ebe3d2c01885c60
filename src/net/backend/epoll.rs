//! The readiness backend (mio: epoll): the reactor reads and writes a socket when it is said
//! to be ready. Each connection is registered once, edge-triggered for both directions, so
//! there is no re-registration per write.

use std::io::{self, IoSlice, Read, Write};
use std::net::{IpAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpListener;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::{Backend, Event, Fill};
use crate::net::connection::{Conn, Slot, Spares, READ_CHUNK};

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

pub(crate) struct Epoll {
    poll: Poll,
    events: Events,
    listener: Option<TcpListener>,
    waker: Arc<Waker>,
    /// What readiness said of each slot's socket.
    ready: Vec<Readiness>,
    /// Reads go through this one buffer (see [`READ_CHUNK`]).
    scratch: Vec<u8>,
}

#[derive(Clone, Copy, Default)]
struct Readiness {
    /// The socket may have bytes to read: set by a readiness event, cleared by a read that
    /// came back short (the receive queue was emptied; with edge-triggered readiness, bytes
    /// that come later raise a new event). Saves the read that would only say `WouldBlock`.
    readable: bool,
    /// The peer shut its side (EPOLLRDHUP): read until the end of stream, short reads or not.
    read_closed: bool,
}

impl Epoll {
    pub fn new(mut listener: TcpListener) -> io::Result<Epoll> {
        let poll = Poll::new()?;
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        Ok(Epoll {
            poll,
            events: Events::with_capacity(1024),
            listener: Some(listener),
            waker,
            ready: Vec::new(),
            scratch: vec![0; READ_CHUNK],
        })
    }
}

impl Backend for Epoll {
    fn wait(
        &mut self,
        timeout: Duration,
        _answers_due: bool,
        _slots: &mut [Slot],
        _spares: &mut Spares,
        events: &mut Vec<Event>,
    ) {
        if let Err(e) = self.poll.poll(&mut self.events, Some(timeout)) {
            assert_eq!(e.kind(), io::ErrorKind::Interrupted, "epoll_wait failed: {e}");
        }
        for event in self.events.iter() {
            match event.token() {
                LISTENER => events.push(Event::Accept),
                WAKER => {}
                Token(slot) => {
                    let read_closed = event.is_read_closed() || event.is_error();
                    if event.is_readable() || read_closed {
                        if let Some(ready) = self.ready.get_mut(slot) {
                            ready.readable = true;
                            ready.read_closed |= read_closed;
                        }
                        events.push(Event::Input(slot));
                    }
                    if event.is_writable() {
                        events.push(Event::Output(slot));
                    }
                }
            }
        }
    }

    fn accept(&mut self) -> Option<(TcpStream, IpAddr)> {
        loop {
            match self.listener.as_ref()?.accept() {
                Ok((stream, peer)) => return Some((stream.into(), peer.ip())),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                // A connection reset before it was accepted: on to the next.
                Err(e) if matches!(e.kind(), io::ErrorKind::ConnectionAborted | io::ErrorKind::Interrupted) => {}
                // Out of descriptors (or memory): the sweep tries again, since no new readiness
                // edge comes for connections already waiting.
                Err(_) => return None,
            }
        }
    }

    fn resume_accepting(&mut self) {}

    fn stop_listening(&mut self) {
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
    }

    fn watch(&mut self, slot: usize, conn: &Conn) -> io::Result<()> {
        if self.ready.len() <= slot {
            self.ready.resize(slot + 1, Readiness::default());
        }
        // A new connection may have sent already: read it at once.
        self.ready[slot] = Readiness { readable: true, read_closed: false };
        let fd = conn.stream.as_raw_fd();
        self.poll.registry().register(&mut SourceFd(&fd), Token(slot), Interest::READABLE | Interest::WRITABLE)
    }

    fn fill(&mut self, slot: usize, conn: &mut Conn, spares: &mut Spares) -> Fill {
        let ready = &mut self.ready[slot];
        if !ready.readable {
            return Fill::Later;
        }
        loop {
            match (&conn.stream).read(&mut self.scratch) {
                Ok(0) => {
                    conn.end_of_input();
                    return Fill::Fed;
                }
                Ok(n) => {
                    ready.readable = n == self.scratch.len() || ready.read_closed;
                    conn.received(&self.scratch[..n], spares);
                    return Fill::Fed;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    ready.readable = false;
                    return Fill::Later;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Fill::Broken,
            }
        }
    }

    fn send(&mut self, _slot: usize, conn: &mut Conn) -> io::Result<()> {
        while conn.unsent() {
            conn.prepare_output()?;
            let mut slices = [IoSlice::new(&[]); 16];
            let n = conn.unsent_slices(&mut slices);
            let result = match n {
                1 => (&conn.stream).write(&slices[0]),
                _ => (&conn.stream).write_vectored(&slices[..n]),
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => conn.sent(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    fn release(&mut self, _slot: usize, conn: Conn) {
        let fd = conn.stream.as_raw_fd();
        let _ = self.poll.registry().deregister(&mut SourceFd(&fd));
    }

    fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let waker = self.waker.clone();
        Arc::new(move || {
            let _ = waker.wake();
        })
    }
}
