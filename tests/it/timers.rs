//! Where a timer waits. A worker whose HTTP reactor runs on io_uring keeps the timers its stages
//! ask for and fires them in its own turns (its wait is a ring timeout), so the request never
//! leaves its thread; with epoll, whose wait rounds up to a millisecond, they go to the timer
//! thread. Checked from outside, on a `seda run` child process: how often its timer thread
//! wakes while requests each wait on a 1 ms timer. And either way, `io_capacity` bounds the
//! timers in flight.

use std::io::Write;
use std::net::SocketAddr;

use serde_json::json;

use crate::http_server::{connect, get, read_response};
use crate::support::{a_cpu, eventually, ledger, SedaProcess};

/// `seda run` serving `delay` (`micros`) then `ok`, with `io`, the reactor in its one worker,
/// an admin listener and a 200 ms drain.
fn start(name: &str, io: &str, micros: u64, io_capacity: usize) -> SedaProcess {
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
    SedaProcess::start(&format!("timers-{name}"), &config, &[])
}

fn http(seda: &SedaProcess) -> SocketAddr {
    seda.listening.expect("an HTTP source")
}

/// How many times the child's thread named `name` has gone to sleep and been woken.
fn wakeups(seda: &SedaProcess, name: &str) -> u64 {
    let tasks = format!("/proc/{}/task", seda.child.id());
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

/// Sends `GET /` on a connection of its own and returns the status of its answer.
fn status_of_get(addr: SocketAddr) -> u16 {
    let mut stream = connect(addr);
    stream.write_all(get("/").as_bytes()).unwrap();
    read_response(&mut stream, &mut Vec::new(), false).status
}

/// How often the timer thread wakes while `n` requests each wait 1 ms, one after another.
fn timer_thread_wakeups(io: &str, n: u64) -> u64 {
    let seda = start(&format!("wakeups-{io}"), io, 1_000, 65_536);
    let mut stream = connect(http(&seda));
    let mut buf = Vec::new();
    let mut get_one = || {
        stream.write_all(get("/").as_bytes()).unwrap();
        read_response(&mut stream, &mut buf, false).status
    };
    // The first request, outside the count: whatever starting up leaves to do is done.
    assert_eq!(get_one(), 200);
    let before = wakeups(&seda, "seda-timer");
    for _ in 0..n {
        assert_eq!(get_one(), 200);
    }
    wakeups(&seda, "seda-timer") - before
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
        let seda = start(&format!("capacity-{io}"), io, 200_000, 1);
        // Two requests in one write, framed together: the first one's timer takes the only
        // room, so the second is turned away at once (503), and answered after the first.
        let mut stream = connect(http(&seda));
        stream.write_all(get("/").repeat(2).as_bytes()).unwrap();
        let mut buf = Vec::new();
        assert_eq!(read_response(&mut stream, &mut buf, false).status, 200, "{io}: the first");
        assert_eq!(
            read_response(&mut stream, &mut buf, false).status,
            503,
            "{io}: a second timer while the first waits"
        );
        // The first has fired: room again.
        assert_eq!(status_of_get(http(&seda)), 200, "{io}: after the first fired");
    }
}

#[test]
fn a_drain_that_gives_up_ends_a_request_waiting_on_a_timer_as_timed_out_wherever_it_waits() {
    for io in ["uring", "epoll"] {
        let seda = start(&format!("drain-{io}"), io, 60_000_000, 65_536);
        let mut stream = connect(http(&seda));
        stream.write_all(get("/").as_bytes()).unwrap();
        // Once it waits on its minute-long timer, SIGTERM: the 200 ms drain gives up on it.
        let admin = seda.admin.expect("an admin listener");
        eventually("the request to wait on its timer", || {
            crate::admin::stats(admin).stages.iter().any(|s| s.name == "wait" && s.handled == 1)
        });
        let summary = seda.stop();
        let counts =
            ["admitted", "completed", "rejected", "failed", "timed_out", "in_flight"].map(|f| ledger(&summary, f));
        assert_eq!(counts, [1, 0, 0, 0, 1, 0], "{io}: {summary}");
    }
}
