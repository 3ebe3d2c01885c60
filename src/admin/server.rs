//! The admin listener: a thread that accepts, and a short-lived thread per connection, one
//! request per connection.
//!
//! Each connection gets a single answer and `Connection: close`: scrapes are rare, and keeping
//! connections open would only hold threads. A connection has its own thread so that one slow
//! client cannot hold up another's `/stats`; the threads are bounded ([`MAX_CONNECTIONS`], past
//! which a new connection is answered 503 at once), and each has a deadline for its whole
//! request ([`REQUEST_TIMEOUT`]), not only for each read, so a client that sends a byte now
//! and then is still cut off.
//!
//! Stopping: set the stop flag, then connect to the listener so that its blocking `accept`
//! returns and the thread sees the flag. Connection threads are not waited for: each ends by
//! its deadlines.

use std::borrow::Cow;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::engine::Observer;
use crate::net::{write_response, Framed, Reply, RequestReader, Response, Status};

/// How long a client may take to send its whole request, from accept.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a client may take to take the answer.
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; past it a new one is answered 503 and closed.
pub const MAX_CONNECTIONS: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot listen for admin requests on {addr}: {error}")]
    Listen { addr: SocketAddr, error: io::Error },
    #[error("cannot start the admin thread: {0}")]
    Spawn(io::Error),
}

/// A running admin listener; it stops when stopped or dropped.
pub struct AdminServer {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl AdminServer {
    /// Listens on `addr` (port 0 takes a free port) and serves snapshots from `observer`.
    pub fn start(addr: SocketAddr, observer: Observer) -> Result<AdminServer, AdminError> {
        let listener = TcpListener::bind(addr).map_err(|error| AdminError::Listen { addr, error })?;
        let addr = listener.local_addr().map_err(|error| AdminError::Listen { addr, error })?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("seda-admin".into())
            .spawn(move || {
                let active = Arc::new(AtomicUsize::new(0));
                for stream in listener.incoming() {
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    // A failed accept (the client gave up, or out of descriptors) concerns
                    // that client only.
                    if let Ok(stream) = stream {
                        accept(stream, &observer, &active);
                    }
                }
            })
            .map_err(AdminError::Spawn)?;
        Ok(AdminServer { addr, stop, thread: Some(thread) })
    }

    /// The address it listens on (with the port chosen, if 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops listening and joins the thread.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let Some(thread) = self.thread.take() else { return };
        self.stop.store(true, Ordering::Release);
        // Wake the blocking accept. If even that fails, the thread is left to end with the
        // process rather than be waited for forever.
        if TcpStream::connect_timeout(&reachable(self.addr), Duration::from_secs(1)).is_ok() {
            let _ = thread.join();
        }
    }
}

impl Drop for AdminServer {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// An address to connect to for `addr`: a wildcard address is reached on loopback.
fn reachable(addr: SocketAddr) -> SocketAddr {
    let ip = match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, addr.port())
}

/// Serves `stream` on a thread of its own, or answers 503 at once when [`MAX_CONNECTIONS`]
/// are being served already (or no thread can be started).
fn accept(stream: TcpStream, observer: &Observer, active: &Arc<AtomicUsize>) {
    if active.fetch_add(1, Ordering::AcqRel) < MAX_CONNECTIONS {
        let (observer, slot) = (observer.clone(), active.clone());
        let spawned = std::thread::Builder::new().name("seda-admin-conn".into()).spawn(move || {
            let _ = serve(stream, &observer);
            slot.fetch_sub(1, Ordering::AcqRel);
        });
        if spawned.is_ok() {
            return;
        }
        // The stream went with the closure that was not run: nothing left to answer on.
        active.fetch_sub(1, Ordering::AcqRel);
        return;
    }
    active.fetch_sub(1, Ordering::AcqRel);
    turn_away(stream);
}

/// How long the accepting thread reads a request it turns away, at most.
const TURN_AWAY_READ: Duration = Duration::from_millis(100);

/// Answers 503 on the accepting thread. The request is read first (for up to
/// [`TURN_AWAY_READ`] and 8 KiB): closing a socket with unread bytes sends a reset, and the
/// client would lose the answer.
fn turn_away(mut stream: TcpStream) {
    use std::io::Read;
    let deadline = Instant::now() + TURN_AWAY_READ;
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while head.len() < 8192 && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            break;
        }
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.set_write_timeout(Some(TURN_AWAY_READ));
    let body: &[u8] = b"busy: too many admin connections, try again\n";
    let mut out = Vec::new();
    let status = Status::new(503).expect("503 is a status");
    let reply = Reply { head_only: false, close: true, http10: false };
    write_response(&mut out, &Response { status, headers: &[], body }, reply);
    let _ = stream.write_all(&out);
    let _ = stream.shutdown(std::net::Shutdown::Write);
}

/// Reads one request from `stream`, within [`REQUEST_TIMEOUT`] of now, and answers it.
fn serve(mut stream: TcpStream, observer: &Observer) -> io::Result<()> {
    stream.set_write_timeout(Some(WRITE_TIMEOUT))?;
    let deadline = Instant::now() + REQUEST_TIMEOUT;
    let mut reader = RequestReader::default();
    let request = loop {
        match reader.next_request() {
            Framed::Request(request) => break request,
            Framed::Reject(reject) => return stream.write_all(reject.response()),
            Framed::Closed => return Ok(()),
            Framed::NeedMore => {
                // Each read waits only for what is left of the request's time.
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(());
                }
                stream.set_read_timeout(Some(left))?;
                if reader.read_from(&mut stream, 4096)? == 0 {
                    return Ok(());
                }
            }
        }
    };
    let reply = Reply { close: true, ..Reply::to(&request) };
    let answer = answer(request.method(), request.target(), observer);
    let mut out = Vec::new();
    let response = Response { status: answer.status, headers: answer.headers, body: &answer.body };
    write_response(&mut out, &response, reply);
    stream.write_all(&out)
}

/// A response that owns its body.
struct Answer {
    status: Status,
    headers: &'static [(&'static str, &'static [u8])],
    body: Cow<'static, [u8]>,
}

/// The answer to `method target`: `/metrics` and `/stats` to GET (and HEAD), 405 to any other
/// method on them, 404 elsewhere.
fn answer(method: &str, target: &str, observer: &Observer) -> Answer {
    let path = target.split('?').next().unwrap_or(target);
    if !matches!(path, "/metrics" | "/stats") {
        let body = Cow::Borrowed(&b"not found: try /metrics or /stats\n"[..]);
        return Answer { status: Status::NOT_FOUND, headers: &[], body };
    }
    if method != "GET" && method != "HEAD" {
        let body = Cow::Borrowed(&b"method not allowed: use GET\n"[..]);
        let status = Status::new(405).expect("405 is a status");
        return Answer { status, headers: &[("Allow", b"GET, HEAD")], body };
    }
    let snapshot = observer.snapshot();
    let (headers, body): (&'static [(&'static str, &'static [u8])], String) = if path == "/metrics" {
        (
            &[("Content-Type", b"text/plain; version=0.0.4; charset=utf-8")],
            super::prometheus::render(&snapshot, observer.source_metrics()),
        )
    } else {
        let json = serde_json::to_string_pretty(&snapshot).expect("a snapshot serializes");
        (&[("Content-Type", b"application/json")], json + "\n")
    };
    Answer { status: Status::OK, headers, body: Cow::Owned(body.into_bytes()) }
}
