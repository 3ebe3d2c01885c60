//! The I/O mechanism under a reactor: how it learns of connections, bytes and room to send.
//!
//! The reactor ([`super::server`]) holds every rule about connections (framing, limits,
//! pipelining order, deadlines, the slot and generation that keep an answer from reaching the
//! wrong client, the drain); a backend only moves bytes, and tells the reactor what happened as
//! [`Event`]s. Two backends drive the same reactor:
//!
//! - [`epoll`]: readiness (mio). A connection's socket is said to be readable or writable, and
//!   the reactor reads and writes it then, by system calls of its own.
//! - `uring`: completions (io_uring). Accepts, receives and sends are operations the kernel
//!   completes; received bytes are fed to their connection as they complete, and one
//!   `io_uring_enter` per turn submits everything the turn queued (see `uring`'s protocol).

pub(crate) mod epoll;
pub(crate) mod uring;

use std::net::{IpAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::connection::{Conn, Slot, Spares};

/// What a backend saw in a wait, for the reactor to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    /// Connections wait to be accepted: take them with [`Backend::accept`].
    Accept,
    /// The connection in the slot has input: bytes (already fed to it, or to be read through
    /// [`Backend::fill`]), or the end of its stream.
    Input(usize),
    /// The connection in the slot can send again (its socket has room, or a send completed).
    Output(usize),
    /// The connection in the slot is broken (a receive or send failed): it is closed.
    Broken(usize),
}

/// What [`Backend::fill`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Fill {
    /// Bytes (or the end of the stream) were given to the connection: frame again.
    Fed,
    /// Nothing now; an [`Event::Input`] comes when there is.
    Later,
    /// The socket failed: close the connection.
    Broken,
}

/// A reactor's I/O mechanism. Each reactor has its own, on its own thread.
pub(crate) trait Backend: Send {
    /// Waits up to `timeout` for I/O (not at all for zero), with everything queued since the
    /// last wait submitted first, and reports what happened into `events`. A completion
    /// backend feeds received bytes to their connections in `slots` here, each taking a busy
    /// part from `spares` if it is idle. `answers_due`: the
    /// reactor has requests in the pipeline, whose answers another thread may bring (its
    /// waker ends the wait), so a wait that sleeps must not hold back for more arrivals.
    fn wait(
        &mut self,
        timeout: Duration,
        answers_due: bool,
        slots: &mut [Slot],
        spares: &mut Spares,
        events: &mut Vec<Event>,
    );

    /// The next connection waiting to be accepted, and its client's address.
    fn accept(&mut self) -> Option<(TcpStream, IpAddr)>;

    /// Accepts again after an error stopped it (out of descriptors); called on each deadline
    /// sweep.
    fn resume_accepting(&mut self);

    /// Closes the listener: no more connections are accepted.
    fn stop_listening(&mut self);

    /// Starts the I/O of a new connection in `slot`.
    fn watch(&mut self, slot: usize, conn: &Conn) -> std::io::Result<()>;

    /// Gets the connection more of what its client sent, now if the backend can (taking a busy
    /// part from `spares` if it is idle).
    fn fill(&mut self, slot: usize, conn: &mut Conn, spares: &mut Spares) -> Fill;

    /// Sends what the connection has unsent, as far as the socket takes it now (or starts the
    /// send: its completion comes as an [`Event::Output`]). Err: the connection is broken.
    fn send(&mut self, slot: usize, conn: &mut Conn) -> std::io::Result<()>;

    /// Ends the connection's I/O and closes it (once the kernel has given back what it lent).
    fn release(&mut self, slot: usize, conn: Conn);

    /// The end of a reactor's turn: a backend that queues its operations submits them now if
    /// they should not wait for the next [`Backend::wait`] (sends, which clients wait for).
    fn flush(&mut self) {}

    /// What wakes a [`Backend::wait`] blocked on another thread.
    fn waker(&self) -> Arc<dyn Fn() + Send + Sync>;

    /// Whether [`Backend::wait`] keeps its timeout to the microsecond (see
    /// `Poller::precise_timeouts`).
    fn precise_timeouts(&self) -> bool {
        false
    }
}
