//! The HTTP source's connections driven by a model: random scripts from a fixed list of seeds,
//! played against a real server on 127.0.0.1, with every answer checked against what the model
//! says the client is owed.
//!
//! A script is a set of clients, each one connection with a role:
//! - `Normal`: requests (GET, `Content-Length` and chunked POSTs with random bodies), each held
//!   in the pipeline for its own random time, so answers end in any order;
//! - `Bad`: some requests, then a malformed one;
//! - `Vanish`: some requests held long, and the client goes away (a close or a reset) at a random
//!   byte, possibly mid-request, while its answers are in the pipeline;
//! - `Slow`: half a request head, then silence.
//!
//! The test interleaves them at random: each step writes a random-sized piece of one client's
//! bytes, or reads one answer that client is owed. A second wave of clients comes after the
//! first, on the slots the vanished clients left while their answers were still outstanding.
//!
//! Checked, exactly:
//! 1. A client reads the answers to its own requests, in the order it sent them, and no others:
//!    each answer names the connection, the request's number, its body's length and checksum.
//! 2. `Bad` reads its answers, then exactly the canned 400, then the close.
//! 3. `Slow` reads exactly the canned 408, then the close (the header deadline holds).
//! 4. After the stop, the ledger adds up with nothing in flight, every admitted request was
//!    answered, and the source counted one framing reject per `Bad` and one header timeout per
//!    `Slow`.
//!
//! Timing only moves work around: the pipeline's holds are at most a few hundred ms, and the one
//! deadline (the header timeout) is long next to the time between a client's pieces.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use seda::metrics::Summary;
use seda::stages::{splitmix64, IoOp, Output, Outputs, Request, Stage, StageFactory, Step};
use serde_json::json;

use crate::http_server::{both_placements, connect, fill, read_to_close, Reactor};
use crate::support::{a_cpu, plan};

const SEEDS: std::ops::Range<u64> = 0..12;
const HEADER_TIMEOUT_MS: u64 = 3000;

both_placements!(connections_driven_by_a_model_get_their_own_answers_in_order);

fn connections_driven_by_a_model_get_their_own_answers_in_order(reactor: Reactor) {
    let server = Server::start(reactor);
    let mut tally = Tally::default();
    let mut slow = Vec::new();
    for seed in SEEDS {
        let mut rng = Rng(splitmix64(seed ^ 0x5eda_30de1));
        let first = wave(&mut rng, seed, 0);
        slow.extend(play(server.addr, first, &mut rng, &mut tally));
        let second = wave(&mut rng, seed, 1).into_iter().filter(|c| matches!(c.role, Role::Normal)).collect();
        // The second wave connects while the first wave's vanished clients still have answers in
        // the pipeline, so it takes their slots.
        slow.extend(play(server.addr, second, &mut rng, &mut tally));
    }
    for mut client in slow {
        let all = read_to_close(&mut client.stream);
        assert_eq!(
            all, b"HTTP/1.1 408 Request Timeout\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            "{}",
            client.name
        );
    }
    let summary = server.stop();
    eprintln!("{reactor:?}: {tally:?}; ledger {:?}; {:?}", summary.ledger, summary.source);
    let l = summary.ledger;
    assert_eq!(l.in_flight, 0, "{l:?}");
    assert_eq!(l.admitted, l.completed + l.rejected + l.failed + l.timed_out, "{l:?}");
    assert!(l.completed >= tally.answers_read, "{l:?} {tally:?}");
    let http = summary.source.as_ref().and_then(seda::net::HttpStats::of).expect("an HTTP source");
    assert_eq!(http.requests, l.admitted, "{http:?}");
    assert_eq!(http.answered, http.requests, "{http:?}");
    assert_eq!(http.framing_rejects, tally.bad, "{http:?}");
    assert_eq!(http.header_timeouts, tally.slow, "{http:?}");
}

#[derive(Debug, Default)]
struct Tally {
    clients: u64,
    answers_read: u64,
    bad: u64,
    vanished: u64,
    slow: u64,
}

#[derive(Clone, Copy, Debug)]
enum Role {
    Normal,
    Bad,
    Vanish { at: usize, reset: bool },
    Slow,
}

struct Client {
    name: String,
    role: Role,
    stream: TcpStream,
    /// Everything this client will send.
    script: Vec<u8>,
    sent: usize,
    /// Per request: the offset in `script` where it ends, and the answer body it is owed.
    owed: Vec<(usize, Vec<u8>)>,
    read: usize,
    buf: Vec<u8>,
}

impl Client {
    /// Answers owed for requests sent whole and not yet read.
    fn readable(&self) -> bool {
        self.owed.get(self.read).is_some_and(|&(end, _)| end <= self.sent)
    }

    fn done_sending(&self) -> bool {
        self.sent == self.script.len()
    }
}

/// A wave of clients for `seed`: some of each role (the second wave keeps only `Normal` ones).
fn wave(rng: &mut Rng, seed: u64, wave: u64) -> Vec<ClientPlan> {
    let count = 3 + rng.below(5);
    (0..count)
        .map(|i| {
            let name = format!("s{seed}w{wave}c{i}");
            let role = match rng.below(10) {
                // The first client of every fourth seed's first wave.
                _ if i == 0 && wave == 0 && matches!(seed % 4, 0) => Role::Slow,
                0 => Role::Bad,
                1..=2 => Role::Vanish { at: 0, reset: rng.chance(50) },
                _ => Role::Normal,
            };
            client_plan(rng, name, role)
        })
        .collect()
}

struct ClientPlan {
    name: String,
    role: Role,
    script: Vec<u8>,
    owed: Vec<(usize, Vec<u8>)>,
}

fn client_plan(rng: &mut Rng, name: String, mut role: Role) -> ClientPlan {
    let mut script = Vec::new();
    let mut owed = Vec::new();
    if let Role::Slow = role {
        script.extend_from_slice(b"GET /slow HTTP/1.1\r\nHo");
        return ClientPlan { name, role, script, owed };
    }
    let requests = 1 + rng.below(6);
    for r in 0..requests {
        // A vanishing client's requests are held long, so their answers are still outstanding
        // when it is gone and its slot is taken again.
        let hold_ms = match role {
            Role::Vanish { .. } => 100 + rng.below(200),
            _ => rng.below(30),
        };
        let target = format!("/{name}/r{r}/hold{hold_ms}");
        let body: Vec<u8> = (0..rng.below(3) * rng.below(300)).map(|_| rng.next() as u8).collect();
        let (method, framing) = match (body.is_empty(), rng.chance(50)) {
            (true, _) => ("GET", Framing::None),
            (false, true) => ("POST", Framing::Length),
            (false, false) => ("POST", Framing::Chunked),
        };
        write_request(&mut script, method, &target, &body, framing, rng);
        let answer = format!("{method} {target} {} {:08x}", body.len(), checksum(&body));
        owed.push((script.len(), answer.into_bytes()));
    }
    match &mut role {
        Role::Bad => script.extend_from_slice(b"GET /bad HTTP/1.1\r\nHost: t\r\nNo colon here\r\n\r\n"),
        Role::Vanish { at, .. } => *at = 1 + rng.below(script.len()),
        _ => {}
    }
    ClientPlan { name, role, script, owed }
}

enum Framing {
    None,
    Length,
    Chunked,
}

fn write_request(out: &mut Vec<u8>, method: &str, target: &str, body: &[u8], framing: Framing, rng: &mut Rng) {
    out.extend_from_slice(format!("{method} {target} HTTP/1.1\r\nHost: model\r\n").as_bytes());
    match framing {
        Framing::None => out.extend_from_slice(b"\r\n"),
        Framing::Length => {
            out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
            out.extend_from_slice(body);
        }
        Framing::Chunked => {
            out.extend_from_slice(b"Transfer-Encoding: chunked\r\n\r\n");
            let mut rest = body;
            while !rest.is_empty() {
                let (chunk, after) = rest.split_at((1 + rng.below(100)).min(rest.len()));
                out.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
                out.extend_from_slice(chunk);
                out.extend_from_slice(b"\r\n");
                rest = after;
            }
            out.extend_from_slice(b"0\r\n\r\n");
        }
    }
}

/// Plays `plans` against the server interleaved at random until each client has sent its bytes
/// and read what it is owed; returns the `Slow` clients, whose deadline is checked at the end.
fn play(addr: SocketAddr, plans: Vec<ClientPlan>, rng: &mut Rng, tally: &mut Tally) -> Vec<Client> {
    let mut active: Vec<Client> = plans
        .into_iter()
        .map(|p| Client {
            name: p.name,
            role: p.role,
            stream: connect(addr),
            script: p.script,
            sent: 0,
            owed: p.owed,
            read: 0,
            buf: Vec::new(),
        })
        .collect();
    let mut slow = Vec::new();
    while !active.is_empty() {
        let i = rng.below(active.len());
        let client = &mut active[i];
        let limit = match client.role {
            Role::Vanish { at, .. } => at,
            _ => client.script.len(),
        };
        // A vanishing client reads nothing: its answers are still to come when it goes.
        let reads = !matches!(client.role, Role::Vanish { .. });
        if reads && client.readable() && (client.sent == limit || rng.chance(40)) {
            let response = read_response(&mut client.stream, &mut client.buf);
            let expected = &client.owed[client.read].1;
            assert_eq!(
                (response.0, String::from_utf8_lossy(&response.1)),
                (200, String::from_utf8_lossy(expected)),
                "{}: answer {} of {}",
                client.name,
                client.read,
                client.owed.len()
            );
            client.read += 1;
            tally.answers_read += 1;
            continue;
        }
        if client.sent < limit {
            let piece = (1 + rng.below(64)).min(limit - client.sent);
            client.stream.write_all(&client.script[client.sent..client.sent + piece]).unwrap();
            client.sent += piece;
            continue;
        }
        // Sent all it will send and read all it can: the client ends as its role says.
        let client = active.swap_remove(i);
        finish(client, tally, &mut slow);
    }
    slow
}

fn finish(mut client: Client, tally: &mut Tally, slow: &mut Vec<Client>) {
    tally.clients += 1;
    tally.vanished += u64::from(matches!(client.role, Role::Vanish { .. }));
    match client.role {
        Role::Normal => assert_eq!(client.read, client.owed.len(), "{}", client.name),
        Role::Bad => {
            assert!(client.done_sending());
            assert_eq!(client.read, client.owed.len(), "{}", client.name);
            let rest = read_to_close(&mut client.stream);
            let mut all = std::mem::take(&mut client.buf);
            all.extend_from_slice(&rest);
            assert_eq!(
                String::from_utf8_lossy(&all),
                "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                "{}",
                client.name
            );
            tally.bad += 1;
        }
        Role::Vanish { reset: true, .. } => reset(client.stream),
        Role::Vanish { reset: false, .. } => drop(client.stream),
        Role::Slow => {
            tally.slow += 1;
            slow.push(client);
        }
    }
}

// ---- the server and its test stages ----

struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: std::thread::JoinHandle<Summary>,
}

impl Server {
    /// `hold` (a timer as long as the target says) → `echo`, one pool of two workers on the first
    /// CPU this process may run on.
    fn start(reactor: Reactor) -> Server {
        let config = json!({
            "name": "http-model",
            "source": {
                "kind": "http", "listen": "127.0.0.1:0", "entry": "hold", "reactor": reactor.placement, "io": reactor.io,
                "header_timeout_ms": HEADER_TIMEOUT_MS
            },
            "pools": { "main": { "cpus": [a_cpu()], "threads": 2 } },
            "stages": {
                "hold": { "kind": "delay", "params": { "micros": 1 }, "pool": "main", "next": "echo" },
                "echo": { "kind": "respond", "pool": "main" }
            },
            "drain_timeout_ms": 10000
        });
        let mut plan = plan(config);
        let hold = plan.stage("hold").unwrap();
        plan.stages[hold].factory = Arc::new(HoldFactory);
        let echo = plan.stage("echo").unwrap();
        plan.stages[echo].factory = Arc::new(EchoFactory);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let (tx, rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let told = |at| {
                if let seda::run::Listening::Source(addr) = at {
                    tx.send(addr).unwrap();
                }
            };
            seda::run::Runner::new(plan)
                .stop_on(&flag)
                .on_listening(told)
                .run_to_end()
                .expect("the server runs")
                .summary
        });
        let addr = rx.recv_timeout(Duration::from_secs(30)).expect("the server listens");
        Server { addr, stop, thread }
    }

    fn stop(self) -> Summary {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("the server thread ends")
    }
}

struct HoldFactory;

impl StageFactory for HoldFactory {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }
    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(Hold)
    }
}

/// Holds a request on a timer for the milliseconds its target ends with (`.../holdMS`).
struct Hold;

impl Stage for Hold {
    fn handle(&mut self, req: &mut Request) -> Step {
        let ms: u64 = req.http.path().rsplit_once("/hold").and_then(|(_, ms)| ms.parse().ok()).unwrap_or(0);
        if ms == 0 {
            return Step::Next(Output::NEXT);
        }
        Step::Io(IoOp::Timer(Duration::from_millis(ms)), Output::NEXT)
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

/// Answers `METHOD TARGET BODY-LENGTH BODY-CHECKSUM`: who asked, and what they sent.
struct Echo;

impl Stage for Echo {
    fn handle(&mut self, req: &mut Request) -> Step {
        req.response.status = 200;
        let line =
            format!("{} {} {} {:08x}", req.http.method(), req.http.target(), req.payload.len(), checksum(&req.payload));
        req.response.body = line.into_bytes();
        Step::Respond
    }
}

/// FNV-1a, 32 bits: enough to tell one random body from another.
fn checksum(bytes: &[u8]) -> u32 {
    bytes.iter().fold(0x811c_9dc5, |h, &b| (h ^ u32::from(b)).wrapping_mul(0x0100_0193))
}

// ---- the client side ----

/// One response's status and body, using bytes left in `buf` first.
fn read_response(stream: &mut TcpStream, buf: &mut Vec<u8>) -> (u16, Vec<u8>) {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut parsed = httparse::Response::new(&mut headers);
        if let httparse::Status::Complete(head) = parsed.parse(buf).expect("a valid response head") {
            let status = parsed.code.unwrap();
            let length = parsed.headers.iter().find(|h| h.name.eq_ignore_ascii_case("content-length"));
            let length: usize = std::str::from_utf8(length.expect("a Content-Length").value).unwrap().parse().unwrap();
            while buf.len() < head + length {
                fill(stream, buf);
            }
            let body = buf[head..head + length].to_vec();
            buf.drain(..head + length);
            return (status, body);
        }
        fill(stream, buf);
    }
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

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = splitmix64(self.0);
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}
