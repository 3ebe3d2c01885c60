//! The HTTP source, started for real on 127.0.0.1 (port 0), spoken to with raw TCP and with an
//! HTTP client crate (ureq). Test stages are put in place of config stages: `echo` answers
//! `METHOD TARGET BODY-LENGTH`, `/big/N` with N bytes; `wait` holds `/sleep/MS` requests on a
//! timer and `/gate...` requests until the test opens the gate (counting both as they enter).
//!
//! Most tests run twice: with the reactors in the workers (the default) and on a thread of their
//! own. A test that holds a worker at the gate runs with the reactor thread only: with the
//! reactors in the workers, a held worker holds its connections too.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use seda::config::Plan;
use seda::metrics::Summary;
use seda::net::HttpStats;
use seda::run::{Listening, Runner};
use seda::stages::{IoOp, Output, Outputs, Request, Stage, StageFactory, Step};
use serde_json::{json, Value};

use crate::support::{a_cpu, plan, Gate};

/// How a test's server runs its reactors: where (`"workers"`, `"thread"`) and with which I/O
/// backend (`"epoll"`, `"uring"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Reactor {
    pub placement: &'static str,
    pub io: &'static str,
}

impl Reactor {
    pub const EPOLL_IN_WORKERS: Reactor = Reactor { placement: "workers", io: "epoll" };
    pub const EPOLL_THREAD: Reactor = Reactor { placement: "thread", io: "epoll" };
    pub const URING_IN_WORKERS: Reactor = Reactor { placement: "workers", io: "uring" };
    pub const URING_THREAD: Reactor = Reactor { placement: "thread", io: "uring" };

    /// Sets the source's `reactor` and `io` in `config`.
    pub fn set(self, config: &mut Value) {
        config["source"]["reactor"] = json!(self.placement);
        config["source"]["io"] = json!(self.io);
    }
}

/// Runs test `$name(reactor)` with the reactors in the workers and on a thread of their own,
/// each with the epoll and the io_uring backend.
macro_rules! both_placements {
    ($($name:ident),* $(,)?) => {
        $(mod $name {
            use $crate::http_server::Reactor;
            #[test]
            fn reactor_in_workers() {
                super::$name(Reactor::EPOLL_IN_WORKERS)
            }
            #[test]
            fn reactor_thread() {
                super::$name(Reactor::EPOLL_THREAD)
            }
            #[test]
            fn uring_in_workers() {
                super::$name(Reactor::URING_IN_WORKERS)
            }
            #[test]
            fn uring_thread() {
                super::$name(Reactor::URING_THREAD)
            }
        })*
    };
}

/// Runs test `$name(reactor)` with its reactors placed at `$placement` only (a test that holds a
/// worker at the gate needs its reactor on a thread), with each I/O backend.
macro_rules! both_backends {
    ($placement:literal: $($name:ident),* $(,)?) => {
        $(mod $name {
            use $crate::http_server::Reactor;
            #[test]
            fn epoll() {
                super::$name(Reactor { placement: $placement, io: "epoll" })
            }
            #[test]
            fn uring() {
                super::$name(Reactor { placement: $placement, io: "uring" })
            }
        })*
    };
}
pub(crate) use {both_backends, both_placements};

both_backends!("thread":
    a_client_that_vanishes_mid_request_leaves_an_exact_ledger,
    shutdown_answers_requests_in_flight_then_closes_every_connection,
    a_late_answer_never_reaches_a_later_connection_in_the_same_slot,
);

both_backends!("workers":
    shutdown_with_reactors_in_workers_answers_a_request_in_flight,
    a_client_that_vanishes_while_its_request_waits_on_a_timer_leaves_an_exact_ledger,
);

both_placements!(
    a_client_that_does_not_read_gets_no_more_requests_framed,
    a_client_that_sends_without_reading_is_stopped_by_tcp_not_buffered,
    the_admin_listener_shows_the_connections_live,
    a_panic_or_failure_in_a_stage_is_500_and_the_server_goes_on,
    a_client_that_expects_100_continue_gets_it_before_sending_the_body,
    keep_alive_serves_requests_one_after_another_on_one_connection,
    pipelined_answers_leave_in_request_order_whatever_order_they_end_in,
    head_answers_with_the_headers_of_get_and_no_body,
    each_framing_limit_gets_its_status_then_a_close,
    answers_owed_before_a_bad_request_are_sent_first,
    a_head_that_comes_too_slowly_is_answered_408_and_closed,
    an_idle_keep_alive_connection_is_closed_after_the_idle_timeout,
    connections_over_the_cap_are_refused_at_accept_and_counted,
    a_client_that_shuts_its_side_still_gets_its_answer,
    a_full_entry_queue_answers_503_with_retry_after_and_the_ledger_stays_exact,
    a_body_larger_than_the_socket_buffer_is_sent_whole,
    an_http_client_crate_gets_answers_with_bodies_fixed_and_chunked,
    many_clients_at_once_each_get_their_own_answers,
    static_files_are_served_cached_and_answered_304_when_not_modified,
    paths_that_climb_out_of_the_root_are_refused,
    a_file_larger_than_the_socket_buffer_is_served_whole,
    a_method_the_route_does_not_allow_is_405_with_allow,
    a_thousand_requests_pipelined_in_one_write_get_a_thousand_answers,
    with_max_pipelined_1_two_requests_in_one_write_get_two_answers,
    a_head_too_large_is_answered_431_whole_without_a_reset,
    a_request_target_too_long_is_answered_414,
    a_connection_that_sends_nothing_is_answered_408_at_the_header_timeout,
    a_body_whose_next_bytes_do_not_come_is_answered_408,
    a_body_trickled_in_is_answered_408_at_the_body_timeout,
    a_chunked_body_trickling_chunk_size_lines_is_answered_408_at_the_body_timeout,
    a_connection_whose_answer_does_not_come_is_closed_at_the_answer_timeout,
    a_client_trickling_its_next_head_does_not_extend_the_wait_for_an_answer,
    a_client_that_does_not_read_is_closed_at_the_send_timeout,
    at_the_cap_an_idle_connection_makes_way_for_a_new_one,
    connections_over_the_per_client_cap_are_refused_at_accept_and_counted,
    the_server_wide_bound_on_unsent_answers_holds_back_framing_until_clients_read,
    an_answer_waiting_behind_an_earlier_one_counts_against_its_connections_share,
);

/// The HTTP source's counts in a summary.
trait HttpOf {
    fn http(&self) -> HttpStats;
}

impl HttpOf for Summary {
    fn http(&self) -> HttpStats {
        self.source.as_ref().and_then(HttpStats::of).expect("an HTTP source's stats")
    }
}

impl HttpOf for seda::engine::Snapshot {
    fn http(&self) -> HttpStats {
        self.source.as_ref().and_then(HttpStats::of).expect("an HTTP source's stats")
    }
}

/// A server running `config` with the test stages in place of `wait` and `echo`.
struct Server {
    addr: SocketAddr,
    /// The admin listener's address, when the config has one.
    admin: Option<SocketAddr>,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Summary>,
    gate: Arc<Gate>,
}

fn start(config: Value) -> Server {
    let mut plan = plan(config);
    let gate = Arc::new(Gate::default());
    install(&mut plan, "wait", Arc::new(WaitFactory(gate.clone())));
    install(&mut plan, "echo", Arc::new(EchoFactory));
    let stop = Arc::new(AtomicBool::new(false));
    let has_admin = plan.admin.is_some();
    let (tx, rx) = std::sync::mpsc::channel();
    let (admin_tx, admin_rx) = std::sync::mpsc::channel();
    let flag = stop.clone();
    let thread = std::thread::spawn(move || {
        let told = |at| match at {
            Listening::Source(addr) => tx.send(addr).unwrap(),
            Listening::Admin(addr) => admin_tx.send(addr).unwrap(),
        };
        Runner::new(plan).stop_on(&flag).on_listening(told).run_to_end().expect("the server runs").summary
    });
    let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the server listens");
    let admin = has_admin.then(|| admin_rx.recv_timeout(Duration::from_secs(30)).expect("the admin listener listens"));
    Server { addr, admin, stop, thread, gate }
}

impl Server {
    /// Stops the server (it drains) and returns its summary.
    fn stop(self) -> Summary {
        self.gate.open();
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the server thread ends")
    }
}

pub(crate) fn install(plan: &mut Plan, name: &str, factory: Arc<dyn StageFactory>) {
    if let Some(stage) = plan.stage(name) {
        plan.stages[stage].factory = factory;
    }
}

/// `wait` → `echo`, one pool on the first CPU this process may run on, with `source` fields
/// merged into the http source.
fn config(reactor: Reactor, source: Value) -> Value {
    config_with(reactor, source, json!({}))
}

fn config_with(reactor: Reactor, source: Value, wait_queue: Value) -> Value {
    let mut http = json!({
        "kind": "http", "listen": "127.0.0.1:0", "entry": "wait", "reactor": reactor.placement, "io": reactor.io,
    });
    for (k, v) in source.as_object().unwrap() {
        http[k] = v.clone();
    }
    let mut wait = json!({ "kind": "delay", "params": { "micros": 1 }, "pool": "main", "next": "echo" });
    if !wait_queue.as_object().unwrap().is_empty() {
        wait["queue"] = wait_queue;
    }
    json!({
        "name": "http-test",
        "source": http,
        "pools": { "main": { "cpus": [a_cpu()], "threads": 2 } },
        "stages": { "wait": wait, "echo": { "kind": "respond", "pool": "main" } },
        "drain_timeout_ms": 10000
    })
}

pub(crate) struct WaitFactory(pub(crate) Arc<Gate>);

impl StageFactory for WaitFactory {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }
    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(Wait(self.0.clone()))
    }
}

struct Wait(Arc<Gate>);

impl Stage for Wait {
    fn handle(&mut self, req: &mut Request) -> Step {
        let path = req.http.path().to_string();
        if let Some(ms) = path.strip_prefix("/sleep/") {
            self.0.arrive();
            return Step::Io(IoOp::Timer(Duration::from_millis(ms.parse().unwrap())), Output::NEXT);
        }
        if path.starts_with("/gate") {
            self.0.pass();
        }
        Step::Next(Output::NEXT)
    }
}

struct EchoFactory;

impl StageFactory for EchoFactory {
    fn outputs(&self) -> Outputs {
        Outputs::Terminal
    }
    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(Echo)
    }
}

struct Echo;

impl Stage for Echo {
    fn handle(&mut self, req: &mut Request) -> Step {
        req.response.status = 200;
        req.response.headers.set("Content-Type", b"text/plain");
        if let Some(n) = req.http.path().strip_prefix("/big/") {
            req.response.body = big_body(n.parse().unwrap());
        } else {
            let line = format!("{} {} {}", req.http.method(), req.http.target(), req.payload.len());
            req.response.body = line.into_bytes();
        }
        Step::Respond
    }
}

fn big_body(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i % 251) as u8).collect()
}

pub(crate) fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

/// One response read off `stream`: status, headers (lowercased names), body.
pub(crate) struct Response {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// Reads one response, using bytes left over in `buf` from an earlier read first. `head_only`
/// for the answer to a HEAD request.
pub(crate) fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>, head_only: bool) -> Response {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head_len) = parsed.parse(buf).expect("a valid response head") {
            let status = parsed.code.unwrap();
            let headers: Vec<(String, String)> = parsed
                .headers
                .iter()
                .map(|h| (h.name.to_ascii_lowercase(), String::from_utf8_lossy(h.value).into_owned()))
                .collect();
            let length: usize =
                headers.iter().find(|(n, _)| n == "content-length").map_or(0, |(_, v)| v.parse().unwrap());
            let length = if head_only { 0 } else { length };
            while buf.len() < head_len + length {
                fill(stream, buf);
            }
            let body = buf[head_len..head_len + length].to_vec();
            buf.drain(..head_len + length);
            return Response { status, headers, body };
        }
        fill(stream, buf);
    }
}

pub(crate) fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>) {
    let mut chunk = [0u8; 64 * 1024];
    let n = stream.read(&mut chunk).expect("read");
    assert!(n > 0, "the server closed the connection mid-response; got {:?}", String::from_utf8_lossy(buf));
    buf.extend_from_slice(&chunk[..n]);
}

/// Everything until the server closes the connection.
pub(crate) fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    match stream.read_to_end(&mut all) {
        Ok(_) => {}
        // A close with unread bytes of ours on the server side is a reset: a close all the same.
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {}
        Err(e) => panic!("read: {e}"),
    }
    all
}

pub(crate) fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n")
}

fn keep_alive_serves_requests_one_after_another_on_one_connection(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let mut stream = connect(server.addr);
    let mut buf = Vec::new();
    for i in 0..5 {
        stream.write_all(get(&format!("/k{i}")).as_bytes()).unwrap();
        let response = read_response(&mut stream, &mut buf, false);
        assert_eq!(response.status, 200);
        assert_eq!(response.body, format!("GET /k{i} 0").as_bytes());
        assert_eq!(response.header("content-type"), Some("text/plain"));
        assert_eq!(response.header("connection"), None);
        let date = response.header("date").expect("a Date header");
        assert!(date.len() == 29 && date.ends_with(" GMT"), "an IMF-fixdate: {date}");
    }
    drop(stream);
    let summary = server.stop();
    assert_eq!(summary.ledger.completed, 5);
    let http = summary.http();
    assert_eq!((http.accepted, http.requests, http.answered), (1, 5, 5));
}

fn pipelined_answers_leave_in_request_order_whatever_order_they_end_in(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let mut stream = connect(server.addr);
    let paths = ["/sleep/300", "/sleep/0", "/sleep/150", "/x", "/sleep/50"];
    let all: String = paths.iter().map(|p| get(p)).collect();
    stream.write_all(all.as_bytes()).unwrap();
    let mut buf = Vec::new();
    for path in paths {
        let response = read_response(&mut stream, &mut buf, false);
        assert_eq!(response.body, format!("GET {path} 0").as_bytes());
    }
    drop(stream);
    assert_eq!(server.stop().ledger.completed, 5);
}

fn head_answers_with_the_headers_of_get_and_no_body(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let mut stream = connect(server.addr);
    stream.write_all(b"HEAD /h HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    stream.write_all(get("/after").as_bytes()).unwrap();
    let mut buf = Vec::new();
    let head = read_response(&mut stream, &mut buf, true);
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some("9"), "the length of `HEAD /h 0`");
    // The next response starts right after the head: no body was sent.
    let next = read_response(&mut stream, &mut buf, false);
    assert_eq!(next.body, b"GET /after 0");
    drop(stream);
    server.stop();
}

/// Sends `request` on a new connection and returns everything until the server closes it.
fn rejected(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = connect(addr);
    stream.write_all(request).unwrap();
    read_to_close(&mut stream)
}

fn each_framing_limit_gets_its_status_then_a_close(reactor: Reactor) {
    let server = start(config(reactor, json!({ "max_body_bytes": 1000, "max_head_bytes": 4096 })));
    let close =
        |status: &str| format!("HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n").into_bytes();
    assert_eq!(rejected(server.addr, b"NOT HTTP AT ALL\r\n\r\n"), close("400 Bad Request"));
    let huge = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(5000));
    assert_eq!(rejected(server.addr, huge.as_bytes()), close("431 Request Header Fields Too Large"));
    let body = b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n";
    assert_eq!(rejected(server.addr, body), close("413 Content Too Large"));
    assert_eq!(rejected(server.addr, b"GET / HTTP/2.0\r\nHost: t\r\n\r\n"), close("505 HTTP Version Not Supported"));
    let coding = b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n";
    assert_eq!(rejected(server.addr, coding), close("501 Not Implemented"));
    let summary = server.stop();
    assert_eq!(summary.ledger.admitted, 0, "a rejected frame never enters the pipeline");
    assert_eq!(summary.http().framing_rejects, 5);
}

fn answers_owed_before_a_bad_request_are_sent_first(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let mut stream = connect(server.addr);
    stream.write_all(format!("{}BAD\r\n\r\n", get("/sleep/100")).as_bytes()).unwrap();
    let all = read_to_close(&mut stream);
    let text = String::from_utf8(all).unwrap();
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(
        text.ends_with("GET /sleep/100 0HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        "{text}"
    );
    server.stop();
}

/// Slowloris: a head trickled one byte every 50 ms, far inside `header_timeout_ms` (1 s)
/// between bytes, is cut off 1 s after it began all the same. A server that restarted the
/// timer on every read would wait for the whole head (237 bytes, about 12 s) and answer it.
fn a_head_that_comes_too_slowly_is_answered_408_and_closed(reactor: Reactor) {
    const HEADER_TIMEOUT: Duration = Duration::from_millis(1000);
    let server = start(config(reactor, json!({ "header_timeout_ms": HEADER_TIMEOUT.as_millis() as u64 })));
    let head = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Slow: {}\r\n\r\n", "a".repeat(200));
    // The server's deadline runs from accept, or from the head's first byte: both after this.
    let began = std::time::Instant::now();
    let mut stream = connect(server.addr);
    let writer = trickle(&stream, head.bytes().map(|b| vec![b]).collect());
    let all = read_to_close(&mut stream);
    let closed_after = began.elapsed();
    assert_eq!(String::from_utf8_lossy(&all), REQUEST_TIMEOUT);
    // Never before the deadline (less a margin for the two clocks); and at it, give or take
    // a loaded machine, not when the head would have been whole.
    assert!(closed_after >= HEADER_TIMEOUT - Duration::from_millis(20), "closed early, after {closed_after:?}");
    assert!(closed_after < HEADER_TIMEOUT + Duration::from_secs(4), "closed late, after {closed_after:?}");
    drop(stream);
    writer.join().unwrap();
    let http = server.stop().http();
    assert_eq!((http.header_timeouts, http.requests), (1, 0));
}

fn an_idle_keep_alive_connection_is_closed_after_the_idle_timeout(reactor: Reactor) {
    let server = start(config(reactor, json!({ "idle_timeout_ms": 300 })));
    let mut stream = connect(server.addr);
    stream.write_all(get("/once").as_bytes()).unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut stream, &mut buf, false).status, 200);
    assert_eq!(read_to_close(&mut stream), b"", "closed with nothing more sent");
    let http = server.stop().http();
    assert_eq!((http.idle_closed, http.header_timeouts), (1, 0));
}

fn connections_over_the_cap_are_refused_at_accept_and_counted(reactor: Reactor) {
    let mut config = config(reactor, json!({ "max_connections": 2 }));
    config["admin"] = json!({ "listen": "127.0.0.1:0" });
    let server = start(config);
    let admin = server.admin.unwrap();
    // Two connections in the middle of a head: busy, not idle, so none makes way at the cap.
    let mut open = Vec::new();
    for i in 0..2 {
        let mut stream = connect(server.addr);
        stream.write_all(format!("GET /c{i} HTTP/1.1\r\n").as_bytes()).unwrap();
        open.push(stream);
    }
    crate::support::eventually("both connections to be open", || {
        crate::admin::stats(admin).source.unwrap().levels["open"] == 2
    });
    let mut third = connect(server.addr);
    let _ = third.write_all(get("/c2").as_bytes());
    assert_eq!(read_to_close(&mut third), b"", "refused: closed without an answer");
    // A slot frees when a connection closes: once the server has seen the close, the next
    // connection is taken.
    drop(open.pop());
    crate::support::eventually("the close to be seen", || {
        crate::admin::stats(admin).source.unwrap().levels["open"] == 1
    });
    let mut fourth = connect(server.addr);
    let mut buf = Vec::new();
    assert_eq!(exchange(&mut fourth, &mut buf, &get("/c3")).body, b"GET /c3 0", "a freed slot takes a new connection");
    drop(open);
    drop(fourth);
    let http = server.stop().http();
    assert_eq!((http.accepted, http.refused, http.idle_closed_for_room), (3, 1, 0), "{http:?}");
}

/// Closes `stream` with a reset (SO_LINGER 0), as a client that vanishes does.
fn reset(stream: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    let size = std::mem::size_of::<libc::linger>() as libc::socklen_t;
    // SAFETY: a valid socket and a linger struct of the size given.
    let rc = unsafe {
        libc::setsockopt(stream.as_raw_fd(), libc::SOL_SOCKET, libc::SO_LINGER, &linger as *const _ as *const _, size)
    };
    assert_eq!(rc, 0);
    drop(stream);
}

fn a_client_that_vanishes_mid_request_leaves_an_exact_ledger(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let mut gone = connect(server.addr);
    gone.write_all(get("/gate").as_bytes()).unwrap();
    server.gate.wait_entered(1);
    reset(gone);
    // The reset reached the reactor before this request's bytes did, so it was seen before this
    // answer was written (the gate holds one worker; the pool's other one serves this).
    let mut other = connect(server.addr);
    other.write_all(get("/x").as_bytes()).unwrap();
    assert_eq!(read_response(&mut other, &mut Vec::new(), false).status, 200);
    server.gate.open();
    drop(other);
    let summary = server.stop();
    let l = &summary.ledger;
    assert_eq!((l.admitted, l.completed, l.in_flight), (2, 2, 0));
    let http = summary.http();
    assert_eq!((http.broken, http.closed_with_requests_in_flight), (1, 1), "{http:?}");
    assert_eq!((http.requests, http.answered), (2, 2));
}

fn a_client_that_shuts_its_side_still_gets_its_answer(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let mut stream = connect(server.addr);
    stream.write_all(get("/sleep/100").as_bytes()).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let all = String::from_utf8(read_to_close(&mut stream)).unwrap();
    assert!(
        all.starts_with("HTTP/1.1 200 OK\r\n") && all.ends_with("\r\nConnection: close\r\n\r\nGET /sleep/100 0"),
        "{all}"
    );
    let summary = server.stop();
    assert_eq!(summary.ledger.completed, 1);
}

/// The twelve requests come in one write, so the reactor reads and frames them together and
/// admits them as one batch into an empty queue of 2: the first two go in, the other ten are
/// answered 503 at once (after the first two's answers, in request order), whenever the workers
/// take them.
fn a_full_entry_queue_answers_503_with_retry_after_and_the_ledger_stays_exact(reactor: Reactor) {
    let server = start(config_with(reactor, json!({}), json!({ "capacity": 2, "when_full": "reject" })));
    let mut stream = connect(server.addr);
    let n = 12;
    let all: String = (0..n).map(|i| get(&format!("/gate{i}"))).collect();
    stream.write_all(all.as_bytes()).unwrap();
    server.gate.wait_entered(1);
    server.gate.open();
    let mut buf = Vec::new();
    let (mut ok, mut unavailable) = (0, 0);
    for i in 0..n {
        let response = read_response(&mut stream, &mut buf, false);
        match response.status {
            200 => {
                assert_eq!(response.body, format!("GET /gate{i} 0").as_bytes(), "in request order");
                ok += 1;
            }
            503 => {
                assert_eq!(response.header("retry-after"), Some("1"));
                unavailable += 1;
            }
            other => panic!("status {other}"),
        }
        assert_eq!(response.status, if i < 2 { 200 } else { 503 }, "request {i}");
    }
    assert_eq!((ok, unavailable), (2, 10));
    drop(stream);
    let summary = server.stop();
    let l = &summary.ledger;
    assert_eq!((l.admitted, l.completed, l.rejected, l.in_flight), (n, 2, 10, 0));
}

fn shutdown_answers_requests_in_flight_then_closes_every_connection(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let mut idle = connect(server.addr);
    let mut busy = connect(server.addr);
    busy.write_all(get("/gate").as_bytes()).unwrap();
    server.gate.wait_entered(1);
    server.stop.store(true, Ordering::SeqCst);
    // The idle connection is closed at once; the busy one waits for its answer.
    assert_eq!(read_to_close(&mut idle), b"");
    server.gate.open();
    let all = String::from_utf8(read_to_close(&mut busy)).unwrap();
    assert!(all.starts_with("HTTP/1.1 200 OK\r\n"), "{all}");
    assert!(all.contains("\r\nConnection: close\r\n"), "the last answer says the connection closes: {all}");
    assert!(all.ends_with("GET /gate 0"), "{all}");
    let summary = server.thread.join().unwrap();
    assert_eq!((summary.ledger.admitted, summary.ledger.completed), (1, 1));
    assert_eq!(summary.http().dropped_at_shutdown, 0);
}

fn a_body_larger_than_the_socket_buffer_is_sent_whole(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let mut stream = connect(server.addr);
    let n = 8 * 1024 * 1024;
    stream.write_all(get(&format!("/big/{n}")).as_bytes()).unwrap();
    stream.write_all(get("/after").as_bytes()).unwrap();
    let mut buf = Vec::new();
    let response = read_response(&mut stream, &mut buf, false);
    assert_eq!(response.body.len(), n);
    assert!(response.body == big_body(n), "every byte in place");
    assert_eq!(read_response(&mut stream, &mut buf, false).body, b"GET /after 0");
    drop(stream);
    server.stop();
}

fn an_http_client_crate_gets_answers_with_bodies_fixed_and_chunked(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let base = format!("http://{}", server.addr);
    let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(20)).build();
    for i in 0..3 {
        let response = agent.get(&format!("{base}/u{i}?q=1")).call().unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.header("content-type"), Some("text/plain"));
        assert_eq!(response.into_string().unwrap(), format!("GET /u{i}?q=1 0"));
    }
    let body = vec![7u8; 100_000];
    let response = agent.post(&format!("{base}/post")).send_bytes(&body).unwrap();
    assert_eq!(response.into_string().unwrap(), "POST /post 100000");
    // A reader of unknown length goes chunked.
    let response = agent.post(&format!("{base}/chunked")).send(&body[..54_321]).unwrap();
    assert_eq!(response.into_string().unwrap(), "POST /chunked 54321");
    let summary = server.stop();
    assert_eq!(summary.ledger.completed, 5);
    assert_eq!(summary.http().accepted, 1, "the agent kept its connection alive");
}

fn many_clients_at_once_each_get_their_own_answers(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let base = format!("http://{}", server.addr);
    let (clients, each) = (16, 40);
    std::thread::scope(|s| {
        for c in 0..clients {
            let base = &base;
            s.spawn(move || {
                let agent = ureq::AgentBuilder::new().timeout(Duration::from_secs(30)).build();
                for i in 0..each {
                    let body = agent.get(&format!("{base}/c{c}/r{i}")).call().unwrap().into_string().unwrap();
                    assert_eq!(body, format!("GET /c{c}/r{i} 0"));
                }
            });
        }
    });
    let summary = server.stop();
    let n = (clients * each) as u64;
    assert_eq!((summary.ledger.admitted, summary.ledger.completed), (n, n));
    let http = summary.http();
    assert_eq!((http.requests, http.answered), (n, n));
}

/// A temporary web root: `index.html`, a 4 MiB `big.bin`, `secret.txt` beside the root (not
/// under it) and `escape.txt` inside it, a symlink to the secret.
struct WebRoot(std::path::PathBuf);

impl WebRoot {
    fn new(name: &str) -> WebRoot {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::SeqCst);
        let base = std::env::temp_dir().join(format!("seda-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&base);
        let root = base.join("www");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::write(root.join("index.html"), "<h1>hi</h1>\n").unwrap();
        std::fs::write(root.join("big.bin"), big_body(4 * 1024 * 1024)).unwrap();
        std::fs::write(base.join("secret.txt"), "secret\n").unwrap();
        std::os::unix::fs::symlink(base.join("secret.txt"), root.join("escape.txt")).unwrap();
        WebRoot(base)
    }

    fn root(&self) -> String {
        self.0.join("www").to_str().unwrap().to_string()
    }
}

impl Drop for WebRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// configs/http_static.json's shape, on port 0, serving `root`.
fn static_config(reactor: Reactor, root: &str) -> Value {
    let mut config: Value = serde_json::from_str(include_str!("../../configs/http_static.json")).unwrap();
    crate::support::on_allowed_cpus(&mut config);
    config["source"]["listen"] = json!("127.0.0.1:0");
    reactor.set(&mut config);
    config["stages"]["read"]["params"]["root"] = json!(root);
    config
}

fn exchange(stream: &mut TcpStream, buf: &mut Vec<u8>, request: &str) -> Response {
    stream.write_all(request.as_bytes()).unwrap();
    read_response(stream, buf, request.starts_with("HEAD "))
}

/// `config` with one worker, so that the server has one reactor wherever it runs.
fn one_reactor(mut config: Value) -> Value {
    config["pools"]["main"]["threads"] = json!(1);
    config
}

/// Waits until the server's only reactor (see [`one_reactor`]) has taken in every byte sent to
/// it before this call, without relying on time: a request on a new connection, answered.
/// Bytes sent before reached the reactor before this connection did; the reactor handles its
/// events in the order they came, and counts what it framed before it writes an answer. So
/// once this is answered, whatever the reactor framed from those bytes is counted. A poll
/// cannot show that something does not happen; this shows that it had its chance.
fn through_the_reactor(addr: SocketAddr) {
    let mut stream = connect(addr);
    let mut buf = Vec::new();
    assert_eq!(exchange(&mut stream, &mut buf, &get("/barrier")).body, b"GET /barrier 0");
}

fn static_files_are_served_cached_and_answered_304_when_not_modified(reactor: Reactor) {
    let web = WebRoot::new("static-304");
    let server = start(static_config(reactor, &web.root()));
    let mut stream = connect(server.addr);
    let mut buf = Vec::new();
    let first = exchange(&mut stream, &mut buf, &get("/index.html"));
    assert_eq!(first.status, 200);
    assert_eq!(first.body, b"<h1>hi</h1>\n");
    assert_eq!(first.header("content-type"), Some("text/html; charset=utf-8"));
    let modified = first.header("last-modified").expect("Last-Modified").to_string();
    // From the cache now: the same answer.
    let second = exchange(&mut stream, &mut buf, &get("/"));
    assert_eq!((second.status, second.body.as_slice()), (200, &b"<h1>hi</h1>\n"[..]));
    let conditional = format!("GET /index.html HTTP/1.1\r\nHost: t\r\nIf-Modified-Since: {modified}\r\n\r\n");
    let not_modified = exchange(&mut stream, &mut buf, &conditional);
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.header("content-length"), None, "a 304 has no body and no length");
    assert_eq!(not_modified.body, b"");
    let head = exchange(&mut stream, &mut buf, "HEAD /index.html HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!((head.status, head.header("content-length")), (200, Some("12")));
    assert_eq!(exchange(&mut stream, &mut buf, &get("/missing.html")).status, 404);
    drop(stream);
    let summary = server.stop();
    assert_eq!(summary.ledger.completed, 5);
}

fn paths_that_climb_out_of_the_root_are_refused(reactor: Reactor) {
    let web = WebRoot::new("static-escape");
    let server = start(static_config(reactor, &web.root()));
    let mut stream = connect(server.addr);
    let mut buf = Vec::new();
    for path in ["/../secret.txt", "/%2e%2e/secret.txt", "/a/../../secret.txt", "/escape.txt"] {
        let response = exchange(&mut stream, &mut buf, &get(path));
        assert_eq!(response.status, 403, "{path}");
        assert!(!response.body.windows(6).any(|w| w == b"secret"), "{path} leaked the file");
    }
    drop(stream);
    server.stop();
}

fn a_file_larger_than_the_socket_buffer_is_served_whole(reactor: Reactor) {
    let web = WebRoot::new("static-big");
    let server = start(static_config(reactor, &web.root()));
    let mut stream = connect(server.addr);
    let mut buf = Vec::new();
    for _ in 0..2 {
        let response = exchange(&mut stream, &mut buf, &get("/big.bin"));
        assert_eq!(response.status, 200);
        assert_eq!(response.header("content-type"), Some("application/octet-stream"));
        assert!(response.body == big_body(4 * 1024 * 1024), "every byte in place");
    }
    // Pipelined, from the cache: large bodies sent from where they are, between small answers.
    let pipelined =
        [get("/big.bin"), get("/index.html"), "HEAD /big.bin HTTP/1.1\r\nHost: t\r\n\r\n".into(), get("/big.bin")];
    stream.write_all(pipelined.concat().as_bytes()).unwrap();
    let big = read_response(&mut stream, &mut buf, false);
    assert!(big.body == big_body(4 * 1024 * 1024));
    assert_eq!(read_response(&mut stream, &mut buf, false).body, b"<h1>hi</h1>\n");
    let head = read_response(&mut stream, &mut buf, true);
    assert_eq!(head.header("content-length"), Some("4194304"));
    let big = read_response(&mut stream, &mut buf, false);
    assert!(big.body == big_body(4 * 1024 * 1024));
    drop(stream);
    server.stop();
}

fn a_method_the_route_does_not_allow_is_405_with_allow(reactor: Reactor) {
    let web = WebRoot::new("static-405");
    let server = start(static_config(reactor, &web.root()));
    let mut stream = connect(server.addr);
    let response =
        exchange(&mut stream, &mut Vec::new(), "DELETE /index.html HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(response.status, 405);
    assert_eq!(response.header("allow"), Some("GET, HEAD"));
    drop(stream);
    server.stop();
}

fn shutdown_with_reactors_in_workers_answers_a_request_in_flight(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let mut idle = connect(server.addr);
    assert_eq!(exchange(&mut idle, &mut Vec::new(), &get("/first")).status, 200);
    let mut busy = connect(server.addr);
    busy.write_all(get("/sleep/1000").as_bytes()).unwrap();
    server.gate.wait_entered(1);
    server.stop.store(true, Ordering::SeqCst);
    assert_eq!(read_to_close(&mut idle), b"", "the idle connection is closed at once");
    let all = String::from_utf8(read_to_close(&mut busy)).unwrap();
    assert!(all.contains("\r\nConnection: close\r\n") && all.ends_with("GET /sleep/1000 0"), "{all}");
    let summary = server.thread.join().unwrap();
    assert_eq!((summary.ledger.admitted, summary.ledger.completed), (2, 2));
}

fn a_client_that_vanishes_while_its_request_waits_on_a_timer_leaves_an_exact_ledger(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let mut gone = connect(server.addr);
    gone.write_all(get("/sleep/1000").as_bytes()).unwrap();
    server.gate.wait_entered(1);
    reset(gone);
    let summary = server.stop();
    let l = &summary.ledger;
    assert_eq!((l.admitted, l.completed, l.in_flight), (1, 1, 0));
    let http = summary.http();
    assert_eq!((http.closed_with_requests_in_flight, http.requests, http.answered), (1, 1, 1), "{http:?}");
}

fn a_client_that_expects_100_continue_gets_it_before_sending_the_body(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let mut stream = connect(server.addr);
    stream.write_all(b"POST /upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n").unwrap();
    let mut interim = [0u8; 25];
    stream.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    stream.write_all(b"hello").unwrap();
    let response = read_response(&mut stream, &mut Vec::new(), false);
    assert_eq!((response.status, response.body.as_slice()), (200, &b"POST /upload 5"[..]));
    drop(stream);
    server.stop();
}

fn a_panic_or_failure_in_a_stage_is_500_and_the_server_goes_on(reactor: Reactor) {
    seda::engine::quiet_worker_panics();
    let config = json!({
        "name": "http-faults",
        "source": { "kind": "http", "listen": "127.0.0.1:0", "entry": "route", "reactor": reactor.placement, "io": reactor.io },
        "pools": { "main": { "cpus": [a_cpu()] } },
        "stages": {
            "route": {
                "kind": "http_route", "pool": "main",
                "params": { "routes": [
                    { "prefix": "/panic", "output": "panic" },
                    { "prefix": "/fail", "output": "fail" },
                    { "prefix": "/", "output": "ok" }
                ] },
                "next": { "panic": "boom", "fail": "broken", "ok": "hello" }
            },
            "boom": { "kind": "chaos", "pool": "main", "params": { "panic": 1.0 }, "next": "hello" },
            "broken": { "kind": "chaos", "pool": "main", "params": { "fail": 1.0 }, "next": "hello" },
            "hello": { "kind": "respond_static", "pool": "main", "params": { "body": "hi" } }
        }
    });
    let server = start(config);
    let mut stream = connect(server.addr);
    let mut buf = Vec::new();
    for path in ["/panic", "/", "/fail", "/panic", "/"] {
        let response = exchange(&mut stream, &mut buf, &get(path));
        let expected = if path == "/" { 200 } else { 500 };
        assert_eq!(response.status, expected, "{path}");
    }
    drop(stream);
    let l = server.stop().ledger;
    assert_eq!((l.admitted, l.completed, l.failed), (5, 2, 3));
}

fn the_admin_listener_shows_the_connections_live(reactor: Reactor) {
    let mut config = config(reactor, json!({}));
    config["admin"] = json!({ "listen": "127.0.0.1:0" });
    let server = start(config);
    let admin = server.admin.expect("an admin listener");
    let mut stream = connect(server.addr);
    let mut buf = Vec::new();
    for i in 0..5 {
        assert_eq!(exchange(&mut stream, &mut buf, &get(&format!("/m{i}"))).status, 200);
    }
    // Requests and answers are counted once per reactor turn, before its answers are written:
    // all five are in by now.
    let families = crate::admin::metrics(admin);
    let one = |name: &str| crate::admin::one(&families, name, &[]);
    assert_eq!(one("seda_http_connections_open"), 1.0);
    assert_eq!(one("seda_http_connections_accepted_total"), 1.0);
    assert_eq!(one("seda_http_requests_total"), 5.0);
    assert_eq!(one("seda_http_answered_total"), 5.0);
    let closed = |reason: &str| {
        crate::admin::value(
            &families,
            "seda_http_connections_closed_total",
            "seda_http_connections_closed_total",
            &[("reason", reason)],
        )
    };
    assert_eq!((closed("idle"), closed("broken"), closed("framing_reject")), (0.0, 0.0, 0.0));
    let stats = crate::admin::stats(admin).source.expect("the source's stats in /stats");
    let http = HttpStats::of(&stats).expect("an http source's");
    assert_eq!((stats.levels["open"], http.accepted, http.requests), (1, 1, 5));
    let mut frame = Vec::new();
    seda::top::watch(&format!("http://{admin}"), Duration::from_millis(50), true, &mut frame).unwrap();
    let frame = String::from_utf8(frame).unwrap();
    let line = frame.lines().find(|l| l.starts_with("http: ")).expect("an http line");
    // Its levels, then the rates of the counts that have moved: nothing in the last 50 ms.
    assert_eq!(line, "http: open 1, accepted 0/s, answered 0/s, requests 0/s", "{frame}");
    drop(stream);
    let summary = server.stop();
    assert_eq!(summary.http().requests, 5);
}

fn a_client_that_does_not_read_gets_no_more_requests_framed(reactor: Reactor) {
    let mut config = one_reactor(config(reactor, json!({})));
    config["admin"] = json!({ "listen": "127.0.0.1:0" });
    let server = start(config);
    let admin = server.admin.expect("an admin listener");
    let count = |name: &str| crate::admin::one(&crate::admin::metrics(admin), name, &[]);
    let framed = || count("seda_http_requests_total");
    let mut stream = connect(server.addr);
    let size = 4_000_000;
    let requests = |n: usize| (0..n).map(|_| get(&format!("/big/{size}"))).collect::<String>();
    // 40 MB of answers, far more than the socket buffers hold: the server's unsent output
    // passes its bound (1 MiB) while the client reads nothing.
    stream.write_all(requests(10).as_bytes()).unwrap();
    crate::support::eventually("the first ten to be answered", || count("seda_http_answered_total") == 10.0);
    // Five more: few, since once the client reads, the one worker makes their 20 MB of answers
    // one after another before it writes any (a loaded machine must not take the client's read
    // timeout over it).
    stream.write_all(requests(5).as_bytes()).unwrap();
    through_the_reactor(server.addr);
    assert_eq!(framed(), 11.0, "nothing more is framed while the client reads nothing (one: the barrier's)");
    let mut buf = Vec::new();
    for _ in 0..15 {
        assert_eq!(read_response(&mut stream, &mut buf, false).body.len(), size);
    }
    drop(stream);
    assert_eq!(server.stop().http().requests, 16);
}

/// A client that pipelines requests and never reads its answers: once its connection is held
/// back, the server stops taking its bytes (io_uring: its multishot receive is cancelled), so
/// the client's writes block on TCP's flow control after the socket buffers and the server's
/// bounded hold, not after whatever it chooses to send.
fn a_client_that_sends_without_reading_is_stopped_by_tcp_not_buffered(reactor: Reactor) {
    let server = start(one_reactor(config(reactor, json!({}))));
    let mut stream = connect(server.addr);
    // A write that makes no progress for this long has met the flow control.
    stream.set_write_timeout(Some(Duration::from_millis(500))).unwrap();
    let chunk = (0..1_000).map(|_| get("/big/100000")).collect::<String>();
    let (mut sent, cap) = (0usize, 256 << 20);
    while sent < cap {
        match stream.write(chunk.as_bytes()) {
            Ok(n) => sent += n,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => break,
            Err(e) => panic!("write failed: {e}"),
        }
    }
    // The socket buffers (a few MiB each way, autotuned), the server's hold (64 KiB), and the
    // requests framed before the answers filled the per-connection bound: far under the cap.
    assert!(sent < 64 << 20, "the client sent {sent} bytes without reading: the server kept taking them");
    drop(stream);
    server.stop();
}

/// A request that outlives its connection must never be answered on another one, however many
/// connections come and go in its slot meanwhile: with 16-bit generations and slots reused last
/// in, first out, the 65,536th connection after it once sat in the same slot under the same
/// generation and received the stranger's answer. The reactor thread only: the gate holds a
/// worker, and with the reactors in the workers it would hold that worker's connections too.
fn a_late_answer_never_reaches_a_later_connection_in_the_same_slot(reactor: Reactor) {
    let mut config = config(reactor, json!({}));
    config["admin"] = json!({ "listen": "127.0.0.1:0" });
    let server = start(config);
    let stranger = connect(server.addr);
    let mut stranger_ref = &stranger;
    stranger_ref.write_all(get("/gate-stranger").as_bytes()).unwrap();
    server.gate.wait_entered(1);
    // A reset, not a close: the server sees the connection go with its request in the pipeline.
    socket2::SockRef::from(&stranger).set_linger(Some(Duration::ZERO)).unwrap();
    drop(stranger);
    let admin = server.admin.unwrap();
    crate::support::eventually("the server to close the stranger's connection", || {
        let families = crate::admin::metrics(admin);
        crate::admin::one(&families, "seda_http_closed_with_requests_in_flight_total", &[]) == 1.0
    });
    // One connection at a time, each closed by the server before the next opens: every one of
    // them takes the slot the stranger left, one generation further on.
    for i in 0..65_535u32 {
        let mut churn = connect(server.addr);
        churn.write_all(format!("GET /c{i} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes()).unwrap();
        let all = read_to_close(&mut churn);
        assert!(all.starts_with(b"HTTP/1.1 200 OK\r\n"), "{}", String::from_utf8_lossy(&all));
    }
    let mut victim = connect(server.addr);
    victim.write_all(get("/sleep/500").as_bytes()).unwrap();
    // The victim's request is in the pipeline; now the stranger's answer comes back.
    server.gate.open();
    let mut buf = Vec::new();
    let response = read_response(&mut victim, &mut buf, false);
    assert_eq!(String::from_utf8_lossy(&response.body), "GET /sleep/500 0", "the victim's own answer");
    drop(victim);
    let summary = server.stop();
    let http = summary.http();
    assert_eq!(http.late_answers_dropped, 1, "the stranger's answer was dropped and counted");
    assert_eq!(summary.ledger.completed, 65_537);
}

/// Past `max_pipelined` a connection's requests wait in its buffer; each answer written makes
/// room for the next, whichever order answers arrive and are written in (with the reactors in
/// the workers, all 64 came back in one batch before any was written, and the rest stalled).
fn a_thousand_requests_pipelined_in_one_write_get_a_thousand_answers(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let mut stream = connect(server.addr);
    let n = 1000;
    let all: String = (0..n).map(|i| get(&format!("/p{i}"))).collect();
    stream.write_all(all.as_bytes()).unwrap();
    let mut buf = Vec::new();
    for i in 0..n {
        let response = read_response(&mut stream, &mut buf, false);
        assert_eq!(String::from_utf8_lossy(&response.body), format!("GET /p{i} 0"));
    }
    drop(stream);
    let summary = server.stop();
    assert_eq!(summary.ledger.completed, n);
    assert_eq!(summary.http().header_timeouts, 0);
}

fn with_max_pipelined_1_two_requests_in_one_write_get_two_answers(reactor: Reactor) {
    let server = start(config(reactor, json!({ "max_pipelined": 1 })));
    let mut stream = connect(server.addr);
    stream.write_all(format!("{}{}", get("/one"), get("/two")).as_bytes()).unwrap();
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut stream, &mut buf, false).body, b"GET /one 0");
    assert_eq!(read_response(&mut stream, &mut buf, false).body, b"GET /two 0");
    drop(stream);
    assert_eq!(server.stop().ledger.completed, 2);
}

/// Everything until the server closes the connection, which must end cleanly (a FIN): a reset
/// here would have let the kernel throw the reply away before the client read it.
fn read_to_clean_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut all = Vec::new();
    stream.read_to_end(&mut all).unwrap_or_else(|e| panic!("{e} after {:?}", String::from_utf8_lossy(&all)));
    all
}

/// A reject with request bytes still unread used to close at once: the kernel answered the
/// unread bytes with a reset, and the client lost the 431. Now the server shuts its write side
/// after the reply and reads and drops what comes until the client closes.
fn a_head_too_large_is_answered_431_whole_without_a_reset(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let request = format!("GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n", "a".repeat(32 * 1024));
    for _ in 0..5 {
        let mut stream = connect(server.addr);
        stream.write_all(request.as_bytes()).unwrap();
        let all = read_to_clean_close(&mut stream);
        assert_eq!(
            String::from_utf8_lossy(&all),
            "HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
    }
    let http = server.stop().http();
    assert_eq!((http.framing_rejects, http.broken), (5, 0));
}

fn a_request_target_too_long_is_answered_414(reactor: Reactor) {
    let server = start(config(reactor, json!({})));
    let mut stream = connect(server.addr);
    stream.write_all(get(&format!("/{}", "t".repeat(20 * 1024))).as_bytes()).unwrap();
    let all = read_to_clean_close(&mut stream);
    assert_eq!(
        String::from_utf8_lossy(&all),
        "HTTP/1.1 414 URI Too Long\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    assert_eq!(server.stop().http().framing_rejects, 1);
}

const REQUEST_TIMEOUT: &str = "HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/// The header timeout runs from accept: a connection that never sends a byte was kept until the
/// (longer) idle timeout.
fn a_connection_that_sends_nothing_is_answered_408_at_the_header_timeout(reactor: Reactor) {
    let server = start(config(reactor, json!({ "header_timeout_ms": 300 })));
    let mut stream = connect(server.addr);
    assert_eq!(String::from_utf8_lossy(&read_to_clean_close(&mut stream)), REQUEST_TIMEOUT);
    let http = server.stop().http();
    assert_eq!((http.header_timeouts, http.idle_closed), (1, 0));
}

fn a_body_whose_next_bytes_do_not_come_is_answered_408(reactor: Reactor) {
    let server = start(config(reactor, json!({ "body_read_timeout_ms": 300 })));
    let mut stream = connect(server.addr);
    stream.write_all(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nab").unwrap();
    assert_eq!(String::from_utf8_lossy(&read_to_clean_close(&mut stream)), REQUEST_TIMEOUT);
    let summary = server.stop();
    assert_eq!(summary.ledger.admitted, 0);
    assert_eq!(summary.http().body_timeouts, 1);
}

/// Sends `pieces` one after another, 50 ms apart, on a thread of its own, until they run out
/// or the server has closed the connection; the test reads meanwhile.
fn trickle(stream: &TcpStream, pieces: Vec<Vec<u8>>) -> JoinHandle<()> {
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        for piece in pieces {
            if writer.write_all(&piece).is_err() {
                return;
            }
            // The pause is the test's input (a slow client), not a wait for the server.
            std::thread::sleep(Duration::from_millis(50));
        }
    })
}

/// Every byte comes within the read timeout, but the whole body does not come within
/// `body_timeout_ms`: 408, however steady the trickle.
fn a_body_trickled_in_is_answered_408_at_the_body_timeout(reactor: Reactor) {
    let server = start(config(reactor, json!({ "body_timeout_ms": 500, "body_read_timeout_ms": 10000 })));
    let mut stream = connect(server.addr);
    stream.write_all(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n").unwrap();
    // 1,000 bytes at 20 a second would take 50 s.
    let writer = trickle(&stream, vec![b"x".to_vec(); 1000]);
    assert_eq!(String::from_utf8_lossy(&read_to_close(&mut stream)), REQUEST_TIMEOUT);
    drop(stream);
    writer.join().unwrap();
    let summary = server.stop();
    assert_eq!(summary.ledger.admitted, 0);
    assert_eq!(summary.http().body_timeouts, 1);
}

/// A chunked body alternating a partial and a complete chunk-size line (each read brings
/// bytes, none ends the body) used to hold a connection for minutes on a few bytes.
fn a_chunked_body_trickling_chunk_size_lines_is_answered_408_at_the_body_timeout(reactor: Reactor) {
    let server = start(config(reactor, json!({ "body_timeout_ms": 500, "body_read_timeout_ms": 10000 })));
    let mut stream = connect(server.addr);
    stream.write_all(b"POST /slow HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n").unwrap();
    let pieces = (0..1000).map(|i| if i % 2 == 0 { b"1".to_vec() } else { b"\r\nx\r\n".to_vec() }).collect();
    let writer = trickle(&stream, pieces);
    assert_eq!(String::from_utf8_lossy(&read_to_close(&mut stream)), REQUEST_TIMEOUT);
    drop(stream);
    writer.join().unwrap();
    let summary = server.stop();
    assert_eq!(summary.ledger.admitted, 0);
    assert_eq!(summary.http().body_timeouts, 1);
}

/// A connection waiting for its own answers has a deadline too: a request that stays in the
/// pipeline (here a 4 s timer against a 300 ms `answer_timeout_ms`) does not hold its
/// connection for ever. The request still ends, and is counted, in the pipeline.
fn a_connection_whose_answer_does_not_come_is_closed_at_the_answer_timeout(reactor: Reactor) {
    let server = start(config(reactor, json!({ "answer_timeout_ms": 300 })));
    let mut stream = connect(server.addr);
    stream.write_all(get("/sleep/4000").as_bytes()).unwrap();
    assert_eq!(read_to_close(&mut stream), b"", "closed without an answer");
    let summary = server.stop();
    assert_eq!((summary.ledger.admitted, summary.ledger.completed), (1, 1));
    let http = summary.http();
    assert_eq!((http.answer_timeouts, http.closed_with_requests_in_flight, http.late_answers_dropped), (1, 1, 1));
}

fn a_client_that_does_not_read_is_closed_at_the_send_timeout(reactor: Reactor) {
    let mut config = config(reactor, json!({ "send_timeout_ms": 300 }));
    config["admin"] = json!({ "listen": "127.0.0.1:0" });
    let server = start(config);
    let admin = server.admin.unwrap();
    let stream = connect(server.addr);
    // Far more than the socket buffers hold, and the client reads none of it.
    (&stream).write_all(get("/big/64000000").as_bytes()).unwrap();
    crate::support::eventually("the connection to be closed at its send timeout", || {
        crate::admin::stats(admin).http().send_timeouts == 1
    });
    drop(stream);
    let summary = server.stop();
    assert_eq!(summary.ledger.completed, 1);
    assert_eq!(summary.http().send_timeouts, 1);
}

#[test]
fn connection_timeouts_out_of_range_are_each_reported() {
    let config = config(Reactor::EPOLL_IN_WORKERS, json!({ "body_timeout_ms": 0, "send_timeout_ms": 86_400_001u64 }));
    let errors = seda::config::validate(&config).err().expect("the config is refused").0;
    let found: Vec<(&str, &str)> = errors.iter().map(|e| (e.path.as_str(), e.message.as_str())).collect();
    assert_eq!(
        found,
        [
            ("$.source.body_timeout_ms", "body_timeout_ms must be at least 1"),
            ("$.source.send_timeout_ms", "send_timeout_ms must be at most 3600000, not 86400001"),
        ]
    );
}

/// At `max_connections`, idle keep-alive connections are closed, oldest first, before a new
/// connection is refused: a server full of idle connections still takes new clients.
fn at_the_cap_an_idle_connection_makes_way_for_a_new_one(reactor: Reactor) {
    let server = start(config(reactor, json!({ "max_connections": 2 })));
    let mut buf = Vec::new();
    let mut oldest = connect(server.addr);
    assert_eq!(exchange(&mut oldest, &mut buf, &get("/a")).status, 200);
    let mut newer = connect(server.addr);
    assert_eq!(exchange(&mut newer, &mut buf, &get("/b")).status, 200);
    let mut third = connect(server.addr);
    assert_eq!(exchange(&mut third, &mut buf, &get("/c")).body, b"GET /c 0");
    if reactor.placement == "thread" {
        // One reactor holds both: the one idle the longest went.
        assert_eq!(read_to_close(&mut oldest), b"", "the oldest idle connection was closed");
        assert_eq!(exchange(&mut newer, &mut buf, &get("/b2")).body, b"GET /b2 0");
    }
    drop((oldest, newer, third));
    let http = server.stop().http();
    assert_eq!((http.accepted, http.refused, http.idle_closed_for_room), (3, 0, 1), "{http:?}");
}

fn connections_over_the_per_client_cap_are_refused_at_accept_and_counted(reactor: Reactor) {
    let mut config = config(reactor, json!({ "max_connections_per_client": 2 }));
    config["admin"] = json!({ "listen": "127.0.0.1:0" });
    let server = start(config);
    let admin = server.admin.unwrap();
    let mut buf = Vec::new();
    let mut open = Vec::new();
    for i in 0..2 {
        let mut stream = connect(server.addr);
        assert_eq!(exchange(&mut stream, &mut buf, &get(&format!("/c{i}"))).status, 200);
        open.push(stream);
    }
    let mut third = connect(server.addr);
    let _ = third.write_all(get("/c2").as_bytes());
    assert_eq!(read_to_close(&mut third), b"", "refused: closed without an answer");
    // Its share frees when one of its connections closes: once the server has seen the close,
    // the next connection from it is taken.
    drop(open.pop());
    crate::support::eventually("the close to be seen", || {
        crate::admin::stats(admin).source.unwrap().levels["open"] == 1
    });
    let mut fourth = connect(server.addr);
    assert_eq!(exchange(&mut fourth, &mut buf, &get("/c3")).body, b"GET /c3 0", "a freed share takes a new connection");
    drop((open, fourth));
    let http = server.stop().http();
    assert_eq!(
        (http.accepted, http.refused_per_client, http.refused, http.idle_closed_for_room),
        (3, 1, 0, 0),
        "{http:?}"
    );
}

/// Clients that do not read make the server hold their answers; past `max_unsent_bytes` for
/// the whole server no connection has requests framed (none is dropped) until clients read.
/// 16 MB answers, of which the socket buffers take a few MB: each non-reading client makes the
/// server hold over 10 MB, so two pass a 20 MB bound and the third waits.
fn the_server_wide_bound_on_unsent_answers_holds_back_framing_until_clients_read(reactor: Reactor) {
    // Three connections from 127.0.0.1 at most: a fourth is refused at accept, which the test
    // uses to know that the reactor has taken in what the third sent (see below).
    let config = config(reactor, json!({ "max_unsent_bytes": 20_000_000, "max_connections_per_client": 3 }));
    let mut config = one_reactor(config);
    config["admin"] = json!({ "listen": "127.0.0.1:0" });
    let server = start(config);
    let admin = server.admin.unwrap();
    let counts = || crate::admin::stats(admin).http();
    let size = 16_000_000;
    let mut clients: Vec<TcpStream> = Vec::new();
    for n in 1..=2 {
        let mut stream = connect(server.addr);
        stream.write_all(get(&format!("/big/{size}")).as_bytes()).unwrap();
        crate::support::eventually("its answer", || counts().answered == n);
        clients.push(stream);
    }
    let mut third = connect(server.addr);
    third.write_all(get(&format!("/big/{size}")).as_bytes()).unwrap();
    // No request can pass the reactor while the server holds over 20 MB, so the barrier is a
    // connection refused at accept: the third's bytes reached the reactor before it did, and
    // the reactor handles its events in the order they came. (The refusal is counted at once,
    // what the reactor frames at the end of its turn: what it framed in that same turn could
    // be missed, never seen where it was not.)
    let fourth = connect(server.addr);
    crate::support::eventually("the fourth connection to be refused", || counts().refused_per_client == 1);
    drop(fourth);
    assert_eq!(counts().requests, 2, "nothing more is framed while the server holds over 20 MB");
    // The first client reads: the server holds less, and the third request goes in.
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut clients[0], &mut buf, false).body.len(), size);
    crate::support::eventually("the third request to be framed", || counts().requests == 3);
    clients.push(third);
    for stream in &mut clients[1..] {
        let mut buf = Vec::new();
        assert!(read_response(stream, &mut buf, false).body == big_body(size), "every byte in place");
    }
    drop(clients);
    let summary = server.stop();
    assert_eq!(summary.ledger.completed, 3);
}

/// An answer that came back and waits behind an earlier, slower one is held for its connection
/// as much as one being written: a large one takes the connection past its share
/// (`max_unsent_bytes_per_connection`), and its further requests wait.
fn an_answer_waiting_behind_an_earlier_one_counts_against_its_connections_share(reactor: Reactor) {
    let mut config = one_reactor(config(reactor, json!({})));
    config["admin"] = json!({ "listen": "127.0.0.1:0" });
    let server = start(config);
    let admin = server.admin.unwrap();
    let counts = || crate::admin::stats(admin).http();
    let size = 4_000_000;
    let mut stream = connect(server.addr);
    stream.write_all(format!("{}{}", get("/sleep/6000"), get(&format!("/big/{size}"))).as_bytes()).unwrap();
    crate::support::eventually("the large answer, behind the slow one", || counts().answered == 1);
    stream.write_all(get("/after").as_bytes()).unwrap();
    through_the_reactor(server.addr);
    assert_eq!(counts().requests, 3, "nothing more is framed while 4 MB wait for the client (one: the barrier's)");
    let mut buf = Vec::new();
    assert_eq!(read_response(&mut stream, &mut buf, false).body, b"GET /sleep/6000 0");
    assert_eq!(read_response(&mut stream, &mut buf, false).body.len(), size);
    assert_eq!(read_response(&mut stream, &mut buf, false).body, b"GET /after 0");
    drop(stream);
    assert_eq!(server.stop().ledger.completed, 4);
}

/// Bytes read are progress for a body, not for a wait for answers: a client that trickles the
/// head of its next request (never finished, 20 bytes a second) while its first waits in the
/// pipeline is closed at `answer_timeout_ms` all the same.
fn a_client_trickling_its_next_head_does_not_extend_the_wait_for_an_answer(reactor: Reactor) {
    let server = start(config(reactor, json!({ "answer_timeout_ms": 500 })));
    let mut stream = connect(server.addr);
    stream.write_all(get("/sleep/4000").as_bytes()).unwrap();
    let writer =
        trickle(&stream, b"GET /next HTTP/1.1\r\nX-Slow: ".iter().chain(&[b'a'; 200]).map(|&b| vec![b]).collect());
    assert_eq!(read_to_close(&mut stream), b"", "closed without an answer");
    drop(stream);
    writer.join().unwrap();
    let http = server.stop().http();
    assert_eq!((http.answer_timeouts, http.header_timeouts), (1, 0), "{http:?}");
}

mod static_files;
