//! `seda load` with real requests: headers and bodies seen by a raw server byte for byte, a
//! request file drawn by weight (or in order) with results per name, and response checks
//! counted per kind of error.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::load::load_server::{count, load, load_io, scratch, seda};

/// What the raw server answers to a request, given its raw bytes.
type Answer = fn(&[u8]) -> Vec<u8>;

/// An HTTP/1.1 server on a plain TcpListener, a thread per connection, keeping every request's
/// bytes exactly as they arrived.
struct RawServer {
    port: u16,
    requests: Arc<Mutex<Vec<Vec<u8>>>>,
    stop: Arc<AtomicBool>,
}

impl RawServer {
    fn start(answer: Answer) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let server =
            RawServer { port: listener.local_addr().unwrap().port(), requests: Arc::default(), stop: Arc::default() };
        let (requests, stop) = (server.requests.clone(), server.stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let requests = requests.clone();
                        std::thread::spawn(move || serve_raw(stream, answer, &requests));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        server
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn requests(&self) -> Vec<Vec<u8>> {
        self.requests.lock().unwrap().clone()
    }

    /// Requests received per request line's target.
    fn by_path(&self) -> BTreeMap<String, u64> {
        let mut counts = BTreeMap::new();
        for r in self.requests() {
            let line = String::from_utf8_lossy(&r).lines().next().unwrap().to_string();
            *counts.entry(line.split(' ').nth(1).unwrap().to_string()).or_default() += 1;
        }
        counts
    }
}

impl Drop for RawServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve_raw(stream: TcpStream, answer: Answer, requests: &Mutex<Vec<Vec<u8>>>) {
    let mut out = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut raw = Vec::new();
        let mut length = 0;
        loop {
            let before = raw.len();
            if reader.read_until(b'\n', &mut raw).unwrap_or(0) == 0 {
                return;
            }
            let line = String::from_utf8_lossy(&raw[before..]).to_string();
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let head = raw.len();
        raw.resize(head + length, 0);
        if reader.read_exact(&mut raw[head..]).is_err() {
            return;
        }
        let response = answer(&raw);
        requests.lock().unwrap().push(raw);
        if out.write_all(&response).is_err() {
            return;
        }
    }
}

fn ok(_: &[u8]) -> Vec<u8> {
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".to_vec()
}

/// Under both of the generator's I/O backends.
mod headers_and_bodies_reach_the_server_byte_for_byte {
    #[test]
    fn epoll() {
        super::headers_and_bodies_reach_the_server_byte_for_byte("epoll")
    }

    #[test]
    fn uring() {
        super::headers_and_bodies_reach_the_server_byte_for_byte("uring")
    }
}

fn headers_and_bodies_reach_the_server_byte_for_byte(io: &str) {
    let server = RawServer::start(ok);
    let args = [
        &server.url("/api/items?x=1"),
        "-m",
        "POST",
        "-H",
        "X-Token: abc def",
        "-H",
        "Content-Type:text/plain",
        "--body",
        "hello, world",
        "--rate",
        "100",
        "-d",
        "200ms",
        "-c",
        "1",
    ];
    let (r, _) = load_io(io, "raw-body", &args);
    assert_eq!((count(&r, "requests"), count(&r, "responses"), count(&r, "errors")), (20, 20, 0));
    let expected = format!(
        "POST /api/items?x=1 HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nX-Token: abc def\r\nContent-Type: text/plain\r\nContent-Length: 12\r\n\r\nhello, world",
        server.port
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 20);
    for request in requests {
        assert_eq!(String::from_utf8(request).unwrap(), expected);
    }

    // A body from a file, every byte value in it; a Host header of the user's replaces seda's.
    let body: Vec<u8> = (0..=255u8).chain(b"\r\n\r\n".iter().copied()).collect();
    let file = scratch(&format!("{io}-raw-body.bin"));
    std::fs::write(&file, &body).unwrap();
    let server = RawServer::start(ok);
    let args = [
        &server.url("/up"),
        "-m",
        "PUT",
        "--body-file",
        file.to_str().unwrap(),
        "-H",
        "Host: example.test",
        "--rate",
        "50",
        "-d",
        "200ms",
        "-c",
        "1",
    ];
    let (r, _) = load_io(io, "raw-body-file", &args);
    assert_eq!((count(&r, "requests"), count(&r, "responses")), (10, 10));
    let mut expected = b"PUT /up HTTP/1.1\r\nHost: example.test\r\nContent-Length: 260\r\n\r\n".to_vec();
    expected.extend_from_slice(&body);
    assert!(server.requests().iter().all(|r| *r == expected));
    assert_eq!(server.requests().len(), 10);
    let _ = std::fs::remove_file(file);
}

const REQUEST_FILE: &str = r#"# a home page, an API read, a write
{"name": "home", "path": "/", "weight": 6}
{"name": "item", "url": "URL/items/7", "headers": {"Accept": "application/json"}, "weight": 3}
{"name": "order", "method": "POST", "path": "/orders", "body": "{\"item\": 7}", "weight": 1}
"#;

#[test]
fn a_request_file_is_drawn_by_weight_with_results_per_name() {
    let server = RawServer::start(ok);
    let text = REQUEST_FILE.replace("URL", &server.url(""));
    let file = scratch("requests.jsonl");
    std::fs::write(&file, &text).unwrap();
    let args = [&server.url("/"), "--requests", file.to_str().unwrap(), "--rate", "2000", "-d", "1s", "--seed", "7"];
    let (r, output) = load("request-file", &args);
    assert_eq!((count(&r, "requests"), count(&r, "responses"), count(&r, "errors")), (2000, 2000, 0));
    // Request n is the kind drawn for n: exactly as many of each as the draw says...
    let kinds = seda::loadgen::request_file::parse(&text, std::path::Path::new("."), None).unwrap();
    let mix = seda::loadgen::mix::Mix::of(kinds, 7);
    let mut drawn = [0u64; 3];
    for n in 0..2000 {
        drawn[mix.pick(n)] += 1;
    }
    let seen = server.by_path();
    assert_eq!((seen["/"], seen["/items/7"], seen["/orders"]), (drawn[0], drawn[1], drawn[2]));
    // ... which is the weights' share within sampling error: 5 standard deviations of 2000 draws.
    for (n, share) in drawn.iter().zip([0.6, 0.3, 0.1]) {
        let (expected, sd): (f64, f64) = (2000.0 * share, (2000.0 * share * (1.0 - share)).sqrt());
        assert!((*n as f64 - expected).abs() < 5.0 * sd, "{n} drawn, {expected} expected");
    }
    // The results per name: each name's requests as the server saw them, and its latencies.
    for (name, n) in ["home", "item", "order"].iter().zip(drawn) {
        let by = &r["by_request"][name];
        assert_eq!((count(by, "requests"), count(by, "responses"), count(by, "errors")), (n, n, 0), "{name}");
        assert_eq!(count(by, "latency_us.corrected.count"), n, "{name}");
    }
    let stdout = String::from_utf8(output.stdout).unwrap();
    assert!(stdout.contains("by request"), "{stdout}");
    // Each line's request exactly.
    let requests = server.requests();
    let order = requests.iter().find(|r| r.starts_with(b"POST")).unwrap();
    let host = format!("Host: 127.0.0.1:{}", server.port);
    assert_eq!(
        String::from_utf8_lossy(order),
        format!("POST /orders HTTP/1.1\r\n{host}\r\nContent-Length: 11\r\n\r\n{{\"item\": 7}}")
    );
    let item = requests.iter().find(|r| r.starts_with(b"GET /items")).unwrap();
    assert_eq!(
        String::from_utf8_lossy(item),
        format!("GET /items/7 HTTP/1.1\r\n{host}\r\nAccept: application/json\r\n\r\n")
    );

    // In order: each line in turn, whatever its weight.
    let server = RawServer::start(ok);
    std::fs::write(&file, REQUEST_FILE.replace("URL", &server.url(""))).unwrap();
    let args = [&server.url("/"), "--requests", file.to_str().unwrap(), "--in-order", "--rate", "300", "-d", "1s"];
    let (r, _) = load("request-file-in-order", &args);
    assert_eq!(count(&r, "requests"), 300);
    let seen = server.by_path();
    assert_eq!((seen["/"], seen["/items/7"], seen["/orders"]), (100, 100, 100));
    let _ = std::fs::remove_file(file);
}

/// 200 "all good" for /ok, 200 "nothing" for /missing, 500 "all good" for /bad, and 201 "all
/// good" in chunks for /created.
fn by_path(request: &[u8]) -> Vec<u8> {
    let line = String::from_utf8_lossy(request).lines().next().unwrap().to_string();
    let answer = match line.split(' ').nth(1).unwrap() {
        "/ok" => "HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nall good",
        "/missing" => "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nnothing",
        "/bad" => "HTTP/1.1 500 Oops\r\nContent-Length: 8\r\n\r\nall good",
        _ => "HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nall go\r\n2\r\nod\r\n0\r\n\r\n",
    };
    answer.as_bytes().to_vec()
}

/// Under both of the generator's I/O backends.
mod failed_checks_are_errors_of_their_own_kind_per_request_name {
    #[test]
    fn epoll() {
        super::failed_checks_are_errors_of_their_own_kind_per_request_name("epoll")
    }

    #[test]
    fn uring() {
        super::failed_checks_are_errors_of_their_own_kind_per_request_name("uring")
    }
}

fn failed_checks_are_errors_of_their_own_kind_per_request_name(io: &str) {
    let server = RawServer::start(by_path);
    let file = scratch(&format!("{io}-checks.jsonl"));
    let lines = ["ok", "missing", "bad", "created"].map(|p| format!("{{\"name\": \"{p}\", \"path\": \"/{p}\"}}"));
    std::fs::write(&file, lines.join("\n")).unwrap();
    let json = scratch(&format!("{io}-checks.json"));
    let output = seda()
        .args([
            "load",
            "--io",
            io,
            &server.url("/"),
            "--requests",
            file.to_str().unwrap(),
            "--in-order",
            "--rate",
            "400",
        ])
        .args(["-d", "1s", "--expect-status", "200,201", "--expect-body-contains", "good"])
        .args(["--fail-if", "errors.unexpected_status<=100", "--fail-if", "errors.missing_text<1"])
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(4), "{stdout}{}", String::from_utf8_lossy(&output.stderr));
    assert!(stdout.contains("threshold errors.unexpected_status<=100: passed (actual 100)"), "{stdout}");
    assert!(stdout.contains("threshold errors.missing_text<1: FAILED (actual 100)"), "{stdout}");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!((count(&r, "requests"), count(&r, "responses"), count(&r, "errors")), (400, 400, 200));
    let kinds = &r["errors_by_kind"];
    assert_eq!((count(kinds, "unexpected_status"), count(kinds, "missing_text")), (100, 100));
    let errors = |name: &str, kind: &str| count(&r["by_request"][name]["errors_by_kind"], kind);
    assert_eq!((errors("ok", "unexpected_status"), errors("ok", "missing_text")), (0, 0));
    assert_eq!((errors("missing", "unexpected_status"), errors("missing", "missing_text")), (0, 100));
    assert_eq!((errors("bad", "unexpected_status"), errors("bad", "missing_text")), (100, 0));
    assert_eq!((errors("created", "unexpected_status"), errors("created", "missing_text")), (0, 0));
    assert_eq!(count(&r["by_request"]["bad"], "latency_us.corrected.count"), 100, "a failed check has a latency");

    // Without --expect-status a 4xx or 5xx is the unexpected status.
    let (r, _) = load_io(io, "checks-default", &[&server.url("/bad"), "--rate", "100", "-d", "200ms"]);
    assert_eq!((count(&r, "errors"), count(&r["errors_by_kind"], "unexpected_status")), (20, 20));
    for file in [file, json] {
        let _ = std::fs::remove_file(file);
    }
}

#[test]
fn an_in_process_load_takes_a_request_file_with_results_per_name() {
    let file = scratch("inprocess-requests.jsonl");
    std::fs::write(
        &file,
        "{\"name\": \"a\", \"path\": \"/a\", \"weight\": 3}\n{\"name\": \"b\", \"path\": \"/b\", \"body\": \"xyz\"}\n",
    )
    .unwrap();
    let config = crate::support::example_config("noop4.json");
    let args = [config.to_str().unwrap(), "--requests", file.to_str().unwrap(), "--rate", "2000", "-d", "1s"];
    let (r, _) = load("inprocess-requests", &args);
    assert_eq!((count(&r, "requests"), count(&r, "responses"), count(&r, "errors")), (2000, 2000, 0));
    let (a, b) = (count(&r["by_request"]["a"], "responses"), count(&r["by_request"]["b"], "responses"));
    assert_eq!(a + b, 2000);
    assert!((1350..1650).contains(&a), "{a} of 2000 by weight 3 to 1");
    let _ = std::fs::remove_file(file);
}

#[test]
fn bad_request_options_are_clear_errors() {
    let server = RawServer::start(ok);
    let url = server.url("/");
    let file = scratch("bad-requests.jsonl");
    std::fs::write(&file, "{\"path\": \"/\"}\n{\"url\": \"http://elsewhere:1/\"}\n").unwrap();
    let requests = file.to_str().unwrap();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (vec![&url, "-H", "no colon"], "is not `Name: value`"),
        (vec![&url, "-H", "Content-Length: 3"], "is set by seda load from the body"),
        (vec![&url, "-m", "G T"], "is not a method"),
        (vec![&url, "--body", "x", "--body-file", "/tmp/x"], "cannot be used with"),
        (vec![&url, "--body-file", "/nonexistent/body"], "cannot read the body file /nonexistent/body"),
        (vec![&url, "--requests", "/nonexistent/r.jsonl"], "cannot read the request file"),
        (vec![&url, "--requests", requests], "line 2: `http://elsewhere:1/` is not on the target"),
        (vec![&url, "--requests", requests, "--body", "x"], "cannot be used together"),
        (vec![&url, "--expect-status", "6xx"], "`6xx` is not a status"),
        (vec![&url, "--fail-if", "errors.oops<1"], "unknown error kind"),
        (vec!["configs/noop4.json", "-H", "A: b"], "are for an http:// target"),
    ];
    for (args, message) in cases {
        let output = seda().arg("load").args(&args).args(["-d", "100ms"]).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: expected `{message}` in: {stderr}");
    }
    assert!(server.requests().is_empty(), "no bad invocation sent a request");
    let _ = std::fs::remove_file(file);
}
