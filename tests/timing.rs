//! Timing-sensitive tests, in a binary of their own: cargo runs test binaries one after
//! another, so nothing else in the suite loads the CPUs while these measure.

#[path = "common/load_server.rs"]
mod load_server;

use std::sync::atomic::Ordering;
use std::time::Duration;

use load_server::*;

#[test]
fn a_server_stall_shows_in_corrected_latency_as_the_schedule_says() {
    // Under both of the generator's I/O backends, one after the other: what one measures,
    // the other must not load the CPUs during.
    for io in ["epoll", "uring"] {
        stall_under(io);
    }
}

fn stall_under(io: &str) {
    // 2000 requests/s for 2 s: 4000 requests, one every 0.5 ms. Request 1000 (due at 0.5 s)
    // stalls the server for 300 ms. Every request due in the stall is answered when it ends,
    // so request 1000 + j (j < 600) waits 300 - j/2 ms: the corrected latencies of the 600
    // stalled requests fall evenly from 300 ms to 0.5 ms. The k-th largest of the 4000 is
    // 300 - k/2 ms: p99 (k = 40) is 280 ms, p95 (k = 200) 200 ms, p90 (k = 400) 100 ms. Only
    // the 16 requests in flight on the 16 connections were sent before the stall ended, so
    // the uncorrected latency sees it in 16 of 4000 (0.4%), under its p99. The stall is
    // counted from request 1000's arrival, a little after it was due, and each answer takes
    // its own time after it: a measured value may exceed the exact one by the tolerance, and
    // falls short of it only by the histogram's precision.
    let server = TestServer::start(Behaviour::StallAt { at: 1000, stall: Duration::from_millis(300) });
    let (r, _) = load_io(io, "stall", &[&server.url("/"), "--rate", "2000", "--duration", "2s", "--connections", "16"]);
    assert_eq!((count(&r, "requests"), count(&r, "responses"), count(&r, "errors")), (4000, 4000, 0));
    assert_eq!(server.received.load(Ordering::SeqCst), 4000);

    const TOLERANCE_MS: f64 = 25.0;
    let ms = |path: &str| micros(&r, path) / 1e3;
    for (path, exact) in [("latency_us.corrected.p99", 280.0), ("latency_us.corrected.p90", 100.0)] {
        let measured = ms(path);
        assert!(
            measured >= exact * 0.999 && measured <= exact + TOLERANCE_MS,
            "{io}: {path}: {measured} ms, exact {exact} ms"
        );
    }
    let max = ms("latency_us.corrected.max");
    assert!((300.0 * 0.999..=300.0 + TOLERANCE_MS).contains(&max), "corrected max {max} ms");
    // The uncorrected p99 misses the stall: it is far below the 280 ms the stall puts there.
    assert!(ms("latency_us.uncorrected.p99") < 100.0, "{}", r["latency_us"]["uncorrected"]);
    assert!(ms("latency_us.uncorrected.max") >= 300.0 * 0.999, "the requests in flight did wait");
    // The generator kept to its schedule: the requests waited for connections, not for it.
    assert!(ms("send_lag_us.p99") < 20.0, "{}", r["send_lag_us"]);
    assert!(ms("connection_wait_us.max") > 250.0, "{}", r["connection_wait_us"]);
}
