//! Documented behaviours (docs/reference/http.md, docs/reference/config.md) that had no test of
//! their own, each pinned here against a real server on 127.0.0.1 or a real engine: a request
//! past its deadline is 503, what is still in flight at the drain timeout is dropped and
//! counted, a request sent during shutdown is not read (its connection closes after what it is
//! owed), `max_pipelined` bounds a connection's requests in the pipeline, a pipeline that ends a
//! request without a status is 500, a header value with CR, LF or NUL is left out, and a stage
//! instance whose handler panicked is replaced before its next call.
//!
//! The HTTP helpers are a few of tests/it/http_server.rs's, copied: that file belongs to the
//! HTTP server's own tests.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use seda::engine::{Admission, Outcome};
use seda::metrics::Summary;
use seda::net::HttpStats;
use seda::run::{Listening, Runner};
use seda::stages::{Output, Outputs, Request, Stage, StageFactory, Step};
use serde_json::{json, Value};

use crate::http_server::{
    both_backends, both_placements, connect, fill, get, install, read_to_close, Reactor, WaitFactory,
};
use crate::support::{a_cpu, eventually, plan, start as start_engine, submit, two_cpus, Gate};

both_placements!(
    a_request_past_its_deadline_is_answered_503_with_retry_after,
    a_request_still_in_flight_at_the_drain_timeout_is_dropped_and_counted,
    a_pipeline_that_ends_a_request_without_a_status_answers_500,
    a_header_value_with_cr_lf_or_nul_is_left_out,
    a_request_sent_during_shutdown_is_not_read_and_its_connection_closes_after_what_it_is_owed,
);

// ---- a server with test stages ---------------------------------------------------------------

struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Summary>,
    gate: Arc<Gate>,
    /// The admin listener's address, when the config has one.
    admin: Option<SocketAddr>,
}

/// `wait` (timers on `/sleep/MS`, the gate on `/gate...`) then `answer`, one pool of `threads`
/// on the first CPU this process may run on; `source` merged into the http source, `pipeline`
/// into the pipeline.
fn config(reactor: Reactor, threads: usize, source: Value, pipeline: Value) -> Value {
    let mut http = json!({
        "kind": "http", "listen": "127.0.0.1:0", "entry": "wait", "reactor": reactor.placement, "io": reactor.io,
    });
    for (k, v) in source.as_object().unwrap() {
        http[k] = v.clone();
    }
    let mut config = json!({
        "name": "documented",
        "source": http,
        "pools": { "main": { "cpus": [a_cpu()], "threads": threads } },
        "stages": {
            "wait": { "kind": "delay", "params": { "micros": 1 }, "pool": "main", "next": "answer" },
            "answer": { "kind": "respond", "pool": "main" }
        },
        "drain_timeout_ms": 10000
    });
    for (k, v) in pipeline.as_object().unwrap() {
        config[k] = v.clone();
    }
    config
}

fn start(config: Value) -> Server {
    let mut plan = plan(config);
    let gate = Arc::new(Gate::default());
    install(&mut plan, "wait", Arc::new(WaitFactory(gate.clone())));
    install(&mut plan, "answer", Arc::new(AnswerFactory));
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
    Server { addr, stop, thread, gate, admin }
}

impl Server {
    /// Stops the server (it drains) and returns its summary.
    fn stop(self) -> Summary {
        self.gate.open();
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the server thread ends")
    }
}

fn http(summary: &Summary) -> HttpStats {
    summary.source.as_ref().and_then(HttpStats::of).expect("an HTTP source's stats")
}

/// `/nostatus`: responds without setting a status; `/headers`: sets a good header and three
/// with a CR, a LF and a NUL in their values; else `200` with `METHOD TARGET`.
struct AnswerFactory;

impl StageFactory for AnswerFactory {
    fn outputs(&self) -> Outputs {
        Outputs::Terminal
    }
    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(Answer)
    }
}

struct Answer;

impl Stage for Answer {
    fn handle(&mut self, req: &mut Request) -> Step {
        match req.http.path() {
            "/nostatus" => {}
            "/headers" => {
                req.response.status = 200;
                req.response.headers.set("X-Good", b"fine");
                req.response.headers.set("X-Cr", b"a\rb");
                req.response.headers.set("X-Lf", b"a\nInjected: yes");
                req.response.headers.set("X-Nul", b"a\0b");
            }
            _ => {
                req.response.status = 200;
                req.response.body = format!("{} {}", req.http.method(), req.http.target()).into_bytes();
            }
        }
        Step::Respond
    }
}

/// One response read off `stream`: status, headers (lowercased names), body.
struct Response {
    status: u16,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&[u8]> {
        self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_slice())
    }
}

/// Reads one response, using bytes left over in `buf` from an earlier read first.
fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Response {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head_len) = parsed.parse(buf).expect("a valid response head") {
            let status = parsed.code.unwrap();
            let headers: Vec<(String, Vec<u8>)> =
                parsed.headers.iter().map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec())).collect();
            let length: usize = headers
                .iter()
                .find(|(n, _)| n == "content-length")
                .map_or(0, |(_, v)| std::str::from_utf8(v).unwrap().parse().unwrap());
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

// ---- the behaviours --------------------------------------------------------------------------

fn a_request_past_its_deadline_is_answered_503_with_retry_after(reactor: Reactor) {
    // The timer would hold it 60 s; the deadline cuts it short at 100 ms.
    let server = start(config(reactor, 2, json!({}), json!({ "deadline_ms": 100 })));
    let mut stream = connect(server.addr);
    stream.write_all(get("/sleep/60000").as_bytes()).unwrap();
    let mut buf = Vec::new();
    let response = read_response(&mut stream, &mut buf);
    assert_eq!(response.status, 503);
    assert_eq!(response.header("retry-after"), Some(&b"1"[..]));
    // The connection stays usable: a timeout is the request's, not the connection's.
    stream.write_all(get("/after").as_bytes()).unwrap();
    assert_eq!(read_response(&mut stream, &mut buf).body, b"GET /after");
    drop(stream);
    let ledger = server.stop().ledger;
    assert_eq!((ledger.admitted, ledger.timed_out, ledger.completed, ledger.in_flight), (2, 1, 1, 0));
}

fn a_request_still_in_flight_at_the_drain_timeout_is_dropped_and_counted(reactor: Reactor) {
    let server = start(config(reactor, 2, json!({}), json!({ "drain_timeout_ms": 200 })));
    let mut stream = connect(server.addr);
    stream.write_all(get("/sleep/60000").as_bytes()).unwrap();
    server.gate.wait_entered(1);
    let summary = server.stop();
    // No answer: the connection is closed with its request unanswered.
    assert_eq!(read_to_close(&mut stream), b"");
    let ledger = summary.ledger;
    assert_eq!((ledger.admitted, ledger.completed, ledger.timed_out, ledger.in_flight), (1, 0, 1, 0));
    let http = http(&summary);
    assert_eq!((http.requests, http.dropped_at_shutdown), (1, 1));
}

fn a_pipeline_that_ends_a_request_without_a_status_answers_500(reactor: Reactor) {
    let server = start(config(reactor, 2, json!({}), json!({})));
    let mut stream = connect(server.addr);
    stream.write_all(format!("{}{}", get("/nostatus"), get("/after")).as_bytes()).unwrap();
    let mut buf = Vec::new();
    let response = read_response(&mut stream, &mut buf);
    assert_eq!((response.status, response.body.as_slice()), (500, &b""[..]));
    assert_eq!(read_response(&mut stream, &mut buf).body, b"GET /after");
    drop(stream);
    assert_eq!(server.stop().ledger.completed, 2);
}

fn a_header_value_with_cr_lf_or_nul_is_left_out(reactor: Reactor) {
    let server = start(config(reactor, 2, json!({}), json!({})));
    let mut stream = connect(server.addr);
    stream.write_all(format!("{}{}", get("/headers"), get("/after")).as_bytes()).unwrap();
    let mut buf = Vec::new();
    let response = read_response(&mut stream, &mut buf);
    assert_eq!(response.status, 200);
    assert_eq!(response.header("x-good"), Some(&b"fine"[..]));
    for name in ["x-cr", "x-lf", "injected", "x-nul"] {
        assert_eq!(response.header(name), None, "{name} is left out");
    }
    // Nothing leaked into the stream: the next answer frames right after.
    assert_eq!(read_response(&mut stream, &mut buf).body, b"GET /after");
    drop(stream);
    server.stop();
}

fn a_request_sent_during_shutdown_is_not_read_and_its_connection_closes_after_what_it_is_owed(reactor: Reactor) {
    // (docs/reference/http.md said such a request is answered 503: the source stops before the
    // engine stops admitting, so it never reaches the engine; this pins what happens.)
    let server = start(config(reactor, 2, json!({}), json!({})));
    let mut stream = connect(server.addr);
    // Held 3 s on a timer: long enough that /late is written while it is still owed.
    stream.write_all(get("/sleep/3000").as_bytes()).unwrap();
    server.gate.wait_entered(1);
    let addr = server.addr;
    server.stop.store(true, Ordering::SeqCst);
    // Every listener closes as its reactor starts draining.
    eventually("the listeners close", || TcpStream::connect(addr).is_err());
    stream.write_all(get("/late").as_bytes()).unwrap();
    let mut buf = read_to_close(&mut stream);
    let owed = read_response_from(&mut buf);
    assert_eq!((owed.status, owed.body.as_slice()), (200, &b"GET /sleep/3000"[..]));
    assert_eq!(owed.header("connection"), Some(&b"close"[..]));
    assert_eq!(buf, b"", "nothing after the answer owed: /late was not answered");
    let summary = server.thread.join().expect("the server thread ends");
    assert_eq!((summary.ledger.admitted, summary.ledger.completed), (1, 1), "/late was never admitted");
    assert_eq!(http(&summary).requests, 1);
}

/// One response from bytes already read (all of it there).
fn read_response_from(buf: &mut Vec<u8>) -> Response {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut parsed = httparse::Response::new(&mut headers);
    let httparse::Status::Complete(head_len) = parsed.parse(buf).expect("a valid response head") else {
        panic!("a whole response: {:?}", String::from_utf8_lossy(buf));
    };
    let status = parsed.code.unwrap();
    let headers: Vec<(String, Vec<u8>)> =
        parsed.headers.iter().map(|h| (h.name.to_ascii_lowercase(), h.value.to_vec())).collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .map_or(0, |(_, v)| std::str::from_utf8(v).unwrap().parse().unwrap());
    let body = buf[head_len..head_len + length].to_vec();
    buf.drain(..head_len + length);
    Response { status, headers, body }
}

// The reactor on a thread of its own: a worker held at the gate would hold its reactor too.
both_backends!("thread": max_pipelined_bounds_a_connections_requests_in_the_pipeline);

fn max_pipelined_bounds_a_connections_requests_in_the_pipeline(reactor: Reactor) {
    // Two workers: the two admitted come in one batch, which the one held at the gate holds
    // whole; the other is free for the barrier below.
    let mut config = config(reactor, 2, json!({ "max_pipelined": 2 }), json!({}));
    config["admin"] = json!({ "listen": "127.0.0.1:0" });
    let server = start(config);
    let admin = server.admin.expect("an admin listener");
    let mut stream = connect(server.addr);
    let paths = ["/gate/1", "/gate/2", "/gate/3"];
    stream.write_all(paths.iter().map(|p| get(p)).collect::<String>().as_bytes()).unwrap();
    // The first is held at the gate; two are in the pipeline, the third waits unread.
    server.gate.wait_entered(1);
    eventually("two requests admitted", || crate::admin::stats(admin).ledger.admitted == 2);
    // A poll cannot show that something does not happen; a barrier shows that it had its
    // chance: a request on a second connection, answered. The three came in one write, before
    // the second connection; the one reactor handles its events in the order they came, so by
    // the time it answers the second connection it has framed all it was going to of the
    // first's.
    let mut barrier = connect(server.addr);
    barrier.write_all(get("/barrier").as_bytes()).unwrap();
    assert_eq!(read_response(&mut barrier, &mut Vec::new()).body, b"GET /barrier");
    assert_eq!(crate::admin::stats(admin).ledger.admitted, 3, "the two, and the barrier: not the third");
    server.gate.open();
    let mut buf = Vec::new();
    for path in paths {
        let response = read_response(&mut stream, &mut buf);
        // The third is framed as soon as the first answers leave, not left to the header timeout.
        assert_eq!((response.status, response.body), (200, format!("GET {path}").into_bytes()));
    }
    drop((stream, barrier));
    let summary = server.stop();
    assert_eq!(summary.ledger.completed, 4);
    assert_eq!(http(&summary).header_timeouts, 0);
}

/// With the reactors in the workers, each worker of the entry pool has a `SO_REUSEPORT`
/// listener of its own on the one port, and the kernel picks one listener for each new
/// connection by a hash of its addresses and ports: fixed for a given connection, but with a
/// secret the test cannot know. So the test opens enough connections, each from a new client
/// port, that a fair spread leaves no worker without one except with a negligible chance: with
/// 2 workers and 64 connections, all 64 on one worker has the chance 2 x 2^-64, about 1e-19.
/// What it pins exactly: each worker accepted some, and the per-worker counts (in the summary,
/// `/stats` and `/metrics`) add up to the connections opened.
fn so_reuseport_spreads_connections_over_the_entry_pools_workers(reactor: Reactor) {
    const CONNECTIONS: usize = 64;
    let mut config = config(reactor, 2, json!({}), json!({ "admin": { "listen": "127.0.0.1:0" } }));
    // A worker on each of two CPUs, so neither waits on the other to take its connections.
    config["pools"]["main"]["cpus"] = json!(two_cpus());
    let server = start(config);
    let admin = server.admin.expect("an admin listener");
    let mut streams: Vec<TcpStream> = (0..CONNECTIONS).map(|_| connect(server.addr)).collect();
    for (i, stream) in streams.iter_mut().enumerate() {
        stream.write_all(get(&format!("/c{i}")).as_bytes()).unwrap();
    }
    // Each answered, so each was accepted, by one worker or the other.
    for (i, stream) in streams.iter_mut().enumerate() {
        let response = read_response(stream, &mut Vec::new());
        assert_eq!((response.status, response.body), (200, format!("GET /c{i}").into_bytes()));
    }
    let check = |by_worker: &[u64], at: &str| {
        assert_eq!(by_worker.len(), 2, "{at}: a count per worker: {by_worker:?}");
        assert!(by_worker.iter().all(|&n| n >= 1), "{at}: every worker accepted some: {by_worker:?}");
        assert_eq!(by_worker.iter().sum::<u64>(), CONNECTIONS as u64, "{at}: {by_worker:?}");
    };
    let live = HttpStats::of(&crate::admin::stats(admin).source.expect("the source's stats")).unwrap();
    check(&live.accepted_by_worker, "/stats");
    let families = crate::admin::metrics(admin);
    let name = "seda_http_connections_accepted_by_worker_total";
    let scraped: Vec<u64> =
        ["0", "1"].iter().map(|w| crate::admin::one(&families, name, &[("worker", w)]) as u64).collect();
    assert_eq!(scraped, live.accepted_by_worker, "/metrics and /stats agree");
    drop(streams);
    let http = http(&server.stop());
    check(&http.accepted_by_worker, "the summary");
    assert_eq!(http.accepted, CONNECTIONS as u64);
}

both_backends!("workers": so_reuseport_spreads_connections_over_the_entry_pools_workers);

/// With the reactor on a thread of its own, there is one listener and no count per worker.
fn a_reactor_on_a_thread_keeps_no_count_per_worker(reactor: Reactor) {
    let server = start(config(reactor, 2, json!({}), json!({})));
    let mut stream = connect(server.addr);
    stream.write_all(get("/one").as_bytes()).unwrap();
    assert_eq!(read_response(&mut stream, &mut Vec::new()).status, 200);
    drop(stream);
    let http = http(&server.stop());
    assert_eq!((http.accepted, http.accepted_by_worker), (1, vec![]));
}

both_backends!("thread": a_reactor_on_a_thread_keeps_no_count_per_worker);

// ---- the engine ------------------------------------------------------------------------------

/// Instances that count how often they were built, whose handler panics on request 0 after
/// marking its instance broken, and fails any request on a broken instance.
#[derive(Default)]
struct Fragile {
    built: AtomicUsize,
}

struct FragileFactory(Arc<Fragile>);

impl StageFactory for FragileFactory {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }
    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        self.0.built.fetch_add(1, Ordering::SeqCst);
        Box::new(FragileStage { broken: false })
    }
}

struct FragileStage {
    broken: bool,
}

impl Stage for FragileStage {
    fn handle(&mut self, req: &mut Request) -> Step {
        if self.broken {
            return Step::Fail(seda::stages::StageError::new("ran on a broken instance"));
        }
        if req.id == 0 {
            self.broken = true;
            panic!("broken");
        }
        Step::Next(Output::NEXT)
    }
}

#[test]
fn a_stage_instance_is_rebuilt_after_its_handler_panics() {
    let mut plan = plan(json!({
        "name": "rebuilt",
        "source": { "kind": "generator", "requests": 1, "entry": "fragile" },
        "pools": { "p": { "cpus": [a_cpu()] } },
        "stages": {
            "fragile": { "kind": "noop", "pool": "p", "next": "done" },
            "done": { "kind": "respond", "pool": "p" }
        }
    }));
    let fragile = Arc::new(Fragile::default());
    install(&mut plan, "fragile", Arc::new(FragileFactory(fragile.clone())));
    let (engine, collect) = start_engine(plan);
    // One worker: the request after the panic runs on the same worker's instance of the stage.
    eventually("the worker's instance is built", || fragile.built.load(Ordering::SeqCst) == 1);
    submit(&engine, [0], Admission::WaitForRoom);
    eventually("request 0 ends", || collect.ended().len() == 1);
    submit(&engine, [1], Admission::WaitForRoom);
    let summary = engine.shutdown();
    let ended = collect.exactly_once(2);
    assert!(matches!(&ended[0].outcome, Outcome::Failed { error, .. } if error.0 == "panic: broken"), "{:?}", ended[0]);
    assert_eq!(ended[1].outcome, Outcome::Completed, "request 1 ran on a fresh instance");
    assert_eq!(fragile.built.load(Ordering::SeqCst), 2, "built once at the start and once after the panic");
    assert_eq!((summary.ledger.failed, summary.ledger.completed), (1, 1));
}
