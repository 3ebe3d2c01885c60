//! A test HTTP server on 127.0.0.1 (a thread per connection) and helpers for running `seda
//! load`, the real binary, against it: shared by the `it` tests and the `timing` test.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn scratch(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("seda-it-load-{}-{name}", std::process::id()))
}

pub fn seda() -> Command {
    Command::new(env!("CARGO_BIN_EXE_seda"))
}

/// What the test server does with requests.
#[derive(Clone, Copy)]
pub enum Behaviour {
    /// Answers each at once.
    Answer,
    /// When request number `at` (from 0) arrives, stops answering anything for `stall`.
    StallAt { at: u64, stall: Duration },
    /// Reads requests and never answers.
    Silent,
    /// Answers each with a header field of this many bytes.
    LongHeader(usize),
}

/// Per (method, path): requests received and their body bytes.
pub type Seen = Mutex<BTreeMap<(String, String), (u64, u64)>>;

/// An HTTP/1.1 server on 127.0.0.1, a thread per connection, counting what it receives.
pub struct TestServer {
    port: u16,
    pub received: Arc<AtomicU64>,
    pub seen: Arc<Seen>,
    stop: Arc<AtomicBool>,
}

impl TestServer {
    pub fn start(behaviour: Behaviour) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let server = TestServer {
            port: listener.local_addr().unwrap().port(),
            received: Arc::default(),
            seen: Arc::default(),
            stop: Arc::default(),
        };
        let (received, seen, stop) = (server.received.clone(), server.seen.clone(), server.stop.clone());
        let stalled_until: Arc<Mutex<Option<Instant>>> = Arc::default();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        stream.set_nonblocking(false).unwrap();
                        let (received, seen, stalled_until) = (received.clone(), seen.clone(), stalled_until.clone());
                        std::thread::spawn(move || serve(stream, behaviour, &received, &seen, &stalled_until));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(1)),
                }
            }
        });
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

pub fn serve(
    stream: TcpStream,
    behaviour: Behaviour,
    received: &AtomicU64,
    seen: &Seen,
    stalled_until: &Mutex<Option<Instant>>,
) {
    let _ = stream.set_nodelay(true);
    let mut out = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        // The request line and headers.
        line.clear();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut parts = line.split_whitespace();
        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
        let mut length = 0u64;
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length as usize];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let n = received.fetch_add(1, Ordering::SeqCst);
        let entry = &mut *seen.lock().unwrap();
        let counts = entry.entry((method, path)).or_default();
        counts.0 += 1;
        counts.1 += length;
        match behaviour {
            Behaviour::Silent => continue,
            Behaviour::StallAt { at, stall } if n == at => {
                *stalled_until.lock().unwrap() = Some(Instant::now() + stall)
            }
            _ => {}
        }
        let until = *stalled_until.lock().unwrap();
        if let Some(until) = until {
            let now = Instant::now();
            if now < until {
                std::thread::sleep(until - now);
            }
        }
        let written = match behaviour {
            Behaviour::LongHeader(bytes) => {
                let response =
                    format!("HTTP/1.1 200 OK\r\nX-Long: {}\r\nContent-Length: 2\r\n\r\nok", "a".repeat(bytes));
                out.write_all(response.as_bytes())
            }
            _ => out.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        };
        if written.is_err() {
            return;
        }
    }
}

/// Runs `seda load` with `args`, `--json` to a scratch file; returns the results and output.
pub fn load(name: &str, args: &[&str]) -> (Value, Output) {
    let json = scratch(&format!("{name}.json"));
    let output = seda().arg("load").args(args).arg("--json").arg(&json).output().unwrap();
    assert!(
        output.status.success(),
        "{:?}\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    let results = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let _ = std::fs::remove_file(json);
    (results, output)
}

/// [`load`] with `--io` (`epoll` or `uring`), its files named for both.
pub fn load_io(io: &str, name: &str, args: &[&str]) -> (Value, Output) {
    let mut args = args.to_vec();
    args.extend(["--io", io]);
    load(&format!("{name}-{io}"), &args)
}

pub fn count(v: &Value, path: &str) -> u64 {
    path.split('.').fold(v, |v, key| &v[key]).as_u64().unwrap_or_else(|| panic!("{path} in {v}"))
}

pub fn micros(v: &Value, path: &str) -> f64 {
    path.split('.').fold(v, |v, key| &v[key]).as_f64().unwrap_or_else(|| panic!("{path} in {v}"))
}
