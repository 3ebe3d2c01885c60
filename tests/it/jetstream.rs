//! Durable work through JetStream: 100,000 messages in a stream on a server that syncs every
//! write to disk (`sync_interval: always`), consumed by two `seda run` processes sharing one
//! durable consumer, one of them killed with SIGKILL twice and restarted. Every message ends
//! exactly once: stored in the output stream (the `jetstream_publish` sink, deduplicated by
//! message id) or in the dead-letter stream (after `max_deliver` failed deliveries), never both,
//! none lost; the redeliveries the failures and kills caused are counted.

use std::process::Command;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use serde_json::{json, Value};

use crate::nats::{nats_server_binary, scratch, NatsServer};
use crate::support::{ledger, SedaProcess};

const N: u64 = 100_000;

/// Waits until `check` holds, for up to `limit` (a run of 100,000 durable messages is long).
fn within(limit: Duration, what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out after {limit:?} waiting for: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn worker_config(url: &str) -> Value {
    json!({
        "name": "durable",
        "drain_timeout_ms": 10_000,
        "source": {
            "kind": "jetstream", "server": url, "stream": "WORK", "consumer": "workers",
            "entry": "flaky", "max_ack_pending": 512, "max_deliver": 3, "nak_delay_ms": 20,
            "ack_wait_ms": 5_000, "dead_letter_subject": "work.dead"
        },
        "pools": { "p": { "threads": 1 } },
        "stages": {
            "flaky": { "kind": "chaos", "pool": "p", "params": { "fail": 0.02, "seed": 7 }, "next": "sink" },
            "sink": { "kind": "jetstream_publish", "pool": "p",
                      "params": { "server": url, "subject": "work.out" }, "next": "done" },
            "done": { "kind": "respond", "pool": "p" }
        }
    })
}

#[test]
fn durable_messages_end_exactly_once_through_two_kills_of_a_consumer() {
    let store = scratch("jetstream-store");
    let _ = std::fs::remove_dir_all(&store);
    let conf = scratch("jetstream.conf");
    std::fs::write(
        &conf,
        format!(
            "host: 127.0.0.1\nport: -1\njetstream {{\n  store_dir: \"{}\"\n  sync_interval: always\n}}\n",
            store.display()
        ),
    )
    .unwrap();
    let server = NatsServer::start_with(Command::new(nats_server_binary()).arg("-c").arg(&conf));
    let url = server.url();
    let client = seda::nats::client::connect(&url, "test").unwrap();
    let js = seda::nats::client::jetstream(client);
    let rt = seda::nats::client::runtime();
    let window = Duration::from_secs(3_600);
    rt.block_on(async {
        for (name, subject) in [("WORK", "work.in"), ("OUT", "work.out"), ("DEAD", "work.dead")] {
            let config = stream::Config {
                name: name.into(),
                subjects: vec![subject.into()],
                duplicate_window: window,
                ..Default::default()
            };
            js.create_stream(config).await.unwrap();
        }
        // Published a thousand at a time, each with its message id, every one stored.
        for chunk in 0..N / 1_000 {
            let mut acks = Vec::with_capacity(1_000);
            for i in chunk * 1_000..(chunk + 1) * 1_000 {
                let mut headers = async_nats::HeaderMap::new();
                headers.insert("Nats-Msg-Id", format!("m{i}").as_str());
                acks.push(js.publish_with_headers("work.in", headers, i.to_string().into()).await.unwrap());
            }
            for ack in acks {
                ack.await.unwrap();
            }
        }
    });
    let count =
        |name: &str| rt.block_on(async { js.get_stream(name).await.unwrap().info().await.unwrap().state.messages });
    assert_eq!(count("WORK"), N);

    let config = worker_config(&url);
    let mut a = SedaProcess::start("durable-a1", &config, &[]);
    let b = SedaProcess::start("durable-b", &config, &[]);
    let limit = Duration::from_secs(600);
    for (round, at) in [(2, N / 5), (3, N / 2)] {
        within(limit, "the sink to fill", || count("OUT") >= at);
        a.signal(libc::SIGKILL);
        drop(a);
        a = SedaProcess::start(&format!("durable-a{round}"), &config, &[]);
    }
    let consumer_done = || {
        rt.block_on(async {
            let mut consumer: jetstream::consumer::PullConsumer =
                js.get_stream("WORK").await.unwrap().get_consumer("workers").await.unwrap();
            let info = consumer.info().await.unwrap();
            info.num_pending == 0 && info.num_ack_pending == 0
        })
    };
    within(limit, "every message to be acknowledged or terminated", consumer_done);
    let (a, b) = (a.stop(), b.stop());

    let (out, dead) = (count("OUT"), count("DEAD"));
    assert_eq!(out + dead, N, "each message stored once, in the sink or the dead letters: {out} + {dead}");
    // Requests are numbered by stream sequence (message i is sequence i + 1), so `flaky` fails
    // the same messages on every delivery: those, and only those, are dead-lettered.
    let poison = (1..=N).filter(|&seq| seda::stages::unit_interval(seq, 7) < 0.02).count() as u64;
    assert_eq!(dead, poison, "the messages that fail every delivery are the dead letters");
    // No message is in both: publishing a dead letter's id to the sink again is not a duplicate.
    let dead_ids: Vec<String> = rt.block_on(async {
        let stream = js.get_stream("DEAD").await.unwrap();
        let mut ids = Vec::new();
        for seq in 1..=dead {
            let message = stream.get_raw_message(seq).await.unwrap();
            let id = message.headers.get("Nats-Msg-Id").map(|v| v.as_str().to_string());
            let error = message.headers.get("Seda-Error").map(|v| v.as_str().to_string());
            assert_eq!(error.as_deref(), Some("failed at `flaky`: chaos: injected failure"), "{seq}");
            ids.push(id.expect("a dead letter keeps its message id"));
        }
        ids
    });
    for id in &dead_ids {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id.as_str());
        let ack = rt.block_on(async { js.publish_with_headers("work.out", headers, "".into()).await.unwrap().await });
        assert!(!ack.unwrap().duplicate, "{id} is both in the sink and dead-lettered");
    }
    // The survivors' ledgers are exact, and their counts match them.
    let mut redelivered = 0;
    for summary in [&a, &b] {
        let counts = &summary["source"]["counts"];
        let c = |name: &str| counts[name].as_u64().unwrap();
        assert_eq!(ledger(summary, "in_flight"), 0, "{summary}");
        // A delivery of a message still running here is sent back, not admitted.
        assert_eq!(c("taken"), ledger(summary, "admitted") + c("already_running"), "{summary}");
        assert_eq!(c("acked"), ledger(summary, "completed"), "{summary}");
        assert_eq!(c("nacked") + c("dead_lettered"), ledger(summary, "admitted") - ledger(summary, "completed"));
        redelivered += c("redelivered");
    }
    assert!(redelivered > 0, "failures and kills cause redeliveries, and they are counted");
    eprintln!("{N} messages: {out} through the sink, {dead} dead-lettered, {redelivered} redeliveries seen");
    drop(server);
    let _ = std::fs::remove_dir_all(&store);
}
