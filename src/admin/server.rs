//! The admin listener's thread: one connection at a time, one request per connection.
//!
//! Each connection gets a single answer and `Connection: close`: scrapes are rare, and a client
//! that kept its connection open would otherwise hold the only thread. A client that stalls is
//! cut off by the socket timeouts.
//!
//! Stopping: set the stop flag, then connect to the listener so that its blocking `accept`
//! returns and the thread sees the flag.

use std::borrow::Cow;
use std::io::{self, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crate::engine::Observer;
use crate::net::{write_response, Framed, Reply, RequestReader, Response, Status};

/// How long a client may take to send its request, or to take the answer.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);

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
                for stream in listener.incoming() {
                    if stopping.load(Ordering::Acquire) {
                        break;
                    }
                    // A failed accept (the client gave up, or out of descriptors) concerns
                    // that client only.
                    if let Ok(stream) = stream {
                        let _ = serve(stream, &observer);
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

/// Reads one request from `stream` and answers it.
fn serve(mut stream: TcpStream, observer: &Observer) -> io::Result<()> {
    stream.set_read_timeout(Some(CLIENT_TIMEOUT))?;
    stream.set_write_timeout(Some(CLIENT_TIMEOUT))?;
    let mut reader = RequestReader::default();
    let request = loop {
        match reader.next_request() {
            Framed::Request(request) => break request,
            Framed::Reject(reject) => return stream.write_all(reject.response()),
            Framed::Closed => return Ok(()),
            Framed::NeedMore => {
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
