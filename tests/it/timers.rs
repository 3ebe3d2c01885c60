//! Where a timer waits. A worker whose HTTP reactor runs on io_uring keeps the timers its stages
//! ask for and fires them in its own turns (its wait is a ring timeout), so the request never
//! leaves its thread; with epoll, whose wait rounds up to a millisecond, they go to the timer
//! thread. Checked from outside, on a `seda run` child process: how often its timer thread
//! wakes while requests each wait on a 1 ms timer. And either way, `io_capacity` bounds the
//! timers in flight.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::support::a_cpu;

/// `seda run` serving `delay` (`micros`) then `ok`, with `io`, the reactor in its one worker.
/// Returns it with its HTTP address and its admin listener's.
fn start(name: &str, io: &str, micros: u64, io_capacity: usize) -> (Child, SocketAddr, SocketAddr) {
    let config = json!({
        "name": name,
        "io_capacity": io_capacity,
        "drain_timeout_ms": 200,
        "admin": { "listen": "127.0.0.1:0" },
        "source": { "kind": "http", "listen": "127.0.0.1:0", "entry": "wait", "io": io },
        "pools": { "main": { "cpus": [a_cpu()] } },
        "stages": {
            "wait": { "kind": "delay", "pool": "main", "params": { "micros": micros }, "next": "done" },
            "done": { "kind": "respond_static", "pool": "main", "params": { "status": 200, "body": "ok" } }
        }
    });
    let path = std::env::temp_dir().join(format!("seda-it-timers-{}-{name}.json", std::process::id()));
    std::fs::write(&path, config.to_string()).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_seda"))
        .arg("run")
        .arg(&path)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap());
    let (mut line, mut admin) = (String::new(), None);
    let addr = loop {
        line.clear();
        assert!(stderr.read_line(&mut line).unwrap() > 0, "seda run ended before it listened");
        if let Some(addr) = line.trim().strip_prefix("admin listening on ") {
            admin = Some(addr.parse().unwrap());
        }
        if let Some(addr) = line.trim().strip_prefix("seda: listening on http://") {
            break addr.parse().unwrap();
        }
    };
    // Its later lines are not read: drained so that a full pipe never blocks it.
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    (child, addr, admin.expect("the admin listener listens first"))
}

/// How many times the child's thread named `name` has gone to sleep and been woken.
fn wakeups(child: &Child, name: &str) -> u64 {
    let tasks = format!("/proc/{}/task", child.id());
    for task in std::fs::read_dir(&tasks).unwrap() {
        let task = task.unwrap().path();
        if std::fs::read_to_string(task.join("comm")).unwrap().trim() == name {
            let status = std::fs::read_to_string(task.join("status")).unwrap();
            let line = status.lines().find(|l| l.starts_with("voluntary_ctxt_switches:")).unwrap();
            return line.split_whitespace().nth(1).unwrap().parse().unwrap();
        }
    }
    panic!("no thread named {name} in {tasks}");
}

const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: t\r\n\r\n";

/// Reads the next answer off `stream` (bytes past it stay in `buf`) and returns its status.
fn read_status(stream: &mut TcpStream, buf: &mut Vec<u8>) -> u16 {
    let mut chunk = [0; 4096];
    loop {
        if let Some(head_end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..head_end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length: ").map(|v| v.trim().parse().unwrap()))
                .unwrap_or(0);
            if buf.len() >= head_end + 4 + length {
                let status = head[9..12].parse().unwrap();
                buf.drain(..head_end + 4 + length);
                return status;
            }
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {:?}", String::from_utf8_lossy(buf));
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `GET /` on `stream` and returns the status of its answer.
fn get(stream: &mut TcpStream) -> u16 {
    stream.write_all(GET).unwrap();
    read_status(stream, &mut Vec::new())
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    stream
}

/// How often the timer thread wakes while `n` requests each wait 1 ms, one after another.
fn timer_thread_wakeups(io: &str, n: u64) -> u64 {
    let (mut child, addr, _) = start(&format!("wakeups-{io}"), io, 1_000, 65_536);
    let mut stream = connect(addr);
    // The first request, outside the count: whatever starting up leaves to do is done.
    assert_eq!(get(&mut stream), 200);
    let before = wakeups(&child, "seda-timer");
    for _ in 0..n {
        assert_eq!(get(&mut stream), 200);
    }
    let woke = wakeups(&child, "seda-timer") - before;
    child.kill().unwrap();
    child.wait().unwrap();
    woke
}

#[test]
fn with_io_uring_a_workers_timers_fire_in_its_own_turns_and_with_epoll_on_the_timer_thread() {
    let n = 50;
    assert_eq!(timer_thread_wakeups("uring", n), 0, "the timer thread woke for timers the worker keeps");
    let woke = timer_thread_wakeups("epoll", n);
    assert!(woke >= n, "the timer thread woke {woke} times for {n} timers");
}

#[test]
fn io_capacity_bounds_the_timers_in_flight_wherever_they_wait() {
    for io in ["uring", "epoll"] {
        let (mut child, addr, _) = start(&format!("capacity-{io}"), io, 200_000, 1);
        // Two requests in one write, framed together: the first one's timer takes the only
        // room, so the second is turned away at once (503), and answered after the first.
        let mut stream = connect(addr);
        stream.write_all(&[GET, GET].concat()).unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_status(&mut stream, &mut buf), 200, "{io}: the first");
        assert_eq!(read_status(&mut stream, &mut buf), 503, "{io}: a second timer while the first waits");
        // The first has fired: room again.
        assert_eq!(get(&mut connect(addr)), 200, "{io}: after the first fired");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

#[test]
fn a_drain_that_gives_up_ends_a_request_waiting_on_a_timer_as_timed_out_wherever_it_waits() {
    for io in ["uring", "epoll"] {
        let (mut child, addr, admin) = start(&format!("drain-{io}"), io, 60_000_000, 65_536);
        let mut stream = connect(addr);
        stream.write_all(GET).unwrap();
        // Once it waits on its minute-long timer, SIGTERM: the 200 ms drain gives up on it.
        crate::support::eventually("the request to wait on its timer", || {
            crate::admin::stats(admin).stages.iter().any(|s| s.name == "wait" && s.handled == 1)
        });
        assert_eq!(unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) }, 0);
        let mut summary = String::new();
        child.stdout.take().unwrap().read_to_string(&mut summary).unwrap();
        assert!(child.wait().unwrap().success(), "{io}: {summary}");
        assert!(
            summary.contains("ledger: admitted 1 = completed 0 + rejected 0 + failed 0 + timed out 1 + in flight 0"),
            "{io}: {summary}"
        );
    }
}
