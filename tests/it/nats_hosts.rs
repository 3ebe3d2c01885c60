//! Three hosts on this machine: network namespaces joined by a bridge (a NATS server, a front,
//! two workers, and a client), seda started in each, the front driven over HTTP by `seda load`
//! from the client host. One worker is killed with SIGKILL mid-run: only the requests it held
//! fail (`nats timeout`, counted by the front), the rest go to the other worker, and the
//! ledgers add up exactly.
//!
//! The namespaces have names of this test's own (so parallel runs do not collide) and are
//! deleted when the test ends, passed or failed ([`Hosts`]'s drop). Needs root and `ip`
//! (iproute2), as CI has.

use std::fs::File;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::process::{Command, Stdio};

use serde_json::{json, Value};

use crate::nats::{digest, example_config, nats_server_binary, post, scratch, NatsServer};
use crate::support::eventually;
use crate::support::{ledger, SedaProcess};

/// The subnet the hosts share: addresses inside this test's own namespaces only.
const SUBNET: &str = "10.201.0";

/// Network namespaces joined by a bridge in a namespace of its own (the root namespace is not
/// touched); deleted on drop, with every interface in them.
struct Hosts {
    /// The namespaces, the bridge's first.
    names: Vec<String>,
}

impl Hosts {
    /// Hosts called `hosts`, host i at `SUBNET.(i+1)`.
    fn new(hosts: &[&str]) -> Hosts {
        let tag = format!("s{}{}", std::process::id() % 100_000, hosts.len());
        let bridge = format!("{tag}-switch");
        let mut made = Hosts { names: vec![bridge.clone()] };
        ip(&["netns", "add", &bridge]);
        in_ns(&bridge, &[ip_binary(), "link", "add", "br0", "type", "bridge"]);
        in_ns(&bridge, &[ip_binary(), "link", "set", "br0", "up"]);
        for (i, host) in hosts.iter().enumerate() {
            let ns = made.ns(host, &tag);
            ip(&["netns", "add", &ns]);
            made.names.push(ns.clone());
            let port = format!("p{i}");
            ip(&["link", "add", "eth0", "netns", &ns, "type", "veth", "peer", "name", &port, "netns", &bridge]);
            in_ns(&bridge, &[ip_binary(), "link", "set", &port, "master", "br0", "up"]);
            in_ns(&ns, &[ip_binary(), "addr", "add", &format!("{SUBNET}.{}/24", i + 1), "dev", "eth0"]);
            in_ns(&ns, &[ip_binary(), "link", "set", "eth0", "up"]);
            in_ns(&ns, &[ip_binary(), "link", "set", "lo", "up"]);
        }
        made
    }

    fn ns(&self, host: &str, tag: &str) -> String {
        format!("{tag}-{host}")
    }

    /// The namespace of `host`.
    fn of(&self, host: &str) -> &str {
        self.names.iter().find(|n| n.ends_with(&format!("-{host}"))).expect("a host")
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for ns in self.names.iter().rev() {
            let _ = Command::new(ip_binary()).args(["netns", "del", ns]).status();
        }
    }
}

/// iproute2's `ip`: where Debian puts it (root's PATH may lack /usr/sbin), else on PATH.
fn ip_binary() -> &'static str {
    if std::path::Path::new("/usr/sbin/ip").exists() {
        "/usr/sbin/ip"
    } else {
        "ip"
    }
}

fn ip(args: &[&str]) {
    let out = Command::new(ip_binary()).args(args).output().expect("ip (iproute2) runs");
    assert!(out.status.success(), "ip {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn in_ns(ns: &str, command: &[&str]) {
    let mut args = vec!["netns", "exec", ns];
    args.extend_from_slice(command);
    ip(&args);
}

/// Runs `f` on a thread that has entered network namespace `ns`, so that its sockets are that
/// host's.
fn from_host<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    let file = File::open(format!("/var/run/netns/{ns}")).expect("the namespace's file");
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns takes a descriptor we own for the call, and changes only this thread.
            assert_eq!(unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) }, 0, "setns");
            f()
        })
        .join()
        .unwrap()
    })
}

fn addr(host: u8, port: u16) -> SocketAddr {
    format!("{SUBNET}.{host}:{port}").parse().unwrap()
}

#[test]
fn a_worker_killed_mid_run_costs_only_the_requests_it_held() {
    let hosts = Hosts::new(&["nats", "front", "w1", "w2", "client"]);
    let server = NatsServer::start_with(
        Command::new(ip_binary()).args(["netns", "exec", hosts.of("nats")]).arg(nats_server_binary()).args([
            "-a",
            &format!("{SUBNET}.1"),
            "-p",
            "4222",
        ]),
    );
    let url = format!("nats://{}", server.addr);
    // Each worker holds a request 100 ms (a timer, off its worker thread) before the hash, so
    // that the one killed holds some.
    let worker = |host: u8| {
        let mut config = example_config("split_worker.json", &url);
        config["stages"]["hold"] =
            json!({ "kind": "delay", "pool": "work", "params": { "micros": 100_000 }, "next": "digest" });
        config["source"]["entry"] = json!("hold");
        config["admin"] = json!({ "listen": addr(host, 9000).to_string() });
        config
    };
    let w1 = SedaProcess::start("hosts-w1", &worker(3), &[ip_binary(), "netns", "exec", hosts.of("w1")]);
    let w2 = SedaProcess::start("hosts-w2", &worker(4), &[ip_binary(), "netns", "exec", hosts.of("w2")]);
    let mut front_config = example_config("split_front.json", &url);
    front_config["source"]["listen"] = json!(addr(2, 8080).to_string());
    front_config["stages"]["ask"]["params"]["timeout_ms"] = json!(1_000);
    let front = SedaProcess::start("hosts-front", &front_config, &[ip_binary(), "netns", "exec", hosts.of("front")]);
    let front_addr = front.listening.unwrap();
    let client = hosts.of("client").to_string();

    // Both workers answer, each exactly, from the client host.
    let exact = |from: u64, to: u64| {
        from_host(&client, || {
            for i in from..to {
                let body = format!("request {i}").into_bytes();
                assert_eq!(post(front_addr, "/compute", &body), (200, digest(&body, 200)), "request {i}");
            }
        })
    };
    // Probes until both have served one: each answered 200, or 503 before any worker subscribed.
    let probes = std::sync::Mutex::new(Vec::new());
    from_host(&client, || {
        eventually("both workers to serve", || {
            // 0 until the worker's admin listener is up.
            let taken = |host| match std::net::TcpStream::connect(addr(host, 9000)) {
                Ok(_) => crate::admin::stats(addr(host, 9000)).source.map_or(0, |s| s.count("taken")),
                Err(_) => 0,
            };
            let status = post(front_addr, "/compute", b"ready").0;
            probes.lock().unwrap().push(status);
            status == 200 && taken(3) > 0 && taken(4) > 0
        })
    });
    let probes = probes.into_inner().unwrap();
    let probes_ok = probes.iter().filter(|&&s| s == 200).count() as u64;
    assert_eq!(probes_ok + probes.iter().filter(|&&s| s == 503).count() as u64, probes.len() as u64, "{probes:?}");
    exact(0, 20);

    // The load: 200 requests a second for 4 s from the client host.
    let load_json = scratch("hosts-load.json");
    let mut load = Command::new(ip_binary())
        .args(["netns", "exec", &client, env!("CARGO_BIN_EXE_seda"), "load"])
        .arg(format!("http://{front_addr}/compute"))
        .args(["-m", "POST", "--body", "hello", "--rate", "200", "--duration", "4s", "--timeout", "10s"])
        .arg("--json")
        .arg(&load_json)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill worker 1 once it has taken some of the load.
    let taken_before = from_host(&client, || crate::admin::stats(addr(3, 9000)).source.unwrap().count("taken"));
    from_host(&client, || {
        eventually("worker 1 to take load", || {
            let stats = crate::admin::stats(addr(3, 9000));
            stats.source.unwrap().count("taken") >= taken_before + 100 && stats.ledger.in_flight > 0
        })
    });
    w1.signal(libc::SIGKILL);
    assert!(load.wait().unwrap().success(), "seda load ran");
    // Worker 2 alone serves what comes after, exactly.
    exact(20, 40);

    let load: Value = serde_json::from_str(&std::fs::read_to_string(&load_json).unwrap()).unwrap();
    let front = front.stop();
    let w2 = w2.stop();
    drop(w1);

    let sent = load["sent"].as_u64().unwrap();
    let (ok, failed) = (load["status"]["2xx"].as_u64().unwrap_or(0), load["status"]["5xx"].as_u64().unwrap_or(0));
    assert_eq!((load["responses"].as_u64(), ok + failed), (Some(sent), sent), "every request answered: {load}");
    // The front: every request it admitted ended once; its failures are the killed worker's.
    assert_eq!(ledger(&front, "admitted"), sent + 40 + probes.len() as u64, "{front}");
    assert_eq!(ledger(&front, "in_flight"), 0);
    assert_eq!(ledger(&front, "completed") + ledger(&front, "failed"), ledger(&front, "admitted"), "{front}");
    assert_eq!(ledger(&front, "completed"), ok + 40 + probes_ok, "the load's 2xx, the exact ones and the probes'");
    let errors = &front["stages"]["ask"]["errors"];
    let timeouts = errors["nats timeout"].as_u64().unwrap_or(0);
    let unanswered = errors["nats no responders"].as_u64().unwrap_or(0);
    assert_eq!(errors.as_object().unwrap().len(), (timeouts > 0) as usize + (unanswered > 0) as usize, "{errors}");
    assert_eq!(unanswered, probes.len() as u64 - probes_ok, "the probes before the workers subscribed: {errors}");
    assert_eq!(ledger(&front, "failed"), unanswered + timeouts, "{front}");
    assert_eq!(failed, timeouts, "the load's 5xx are the requests the killed worker held: {front}");
    eprintln!("sent {sent}: {ok} answered, {timeouts} timed out with the killed worker");
    assert!(timeouts >= 1, "the killed worker held requests");
    // At most what it could hold: those it had taken and not answered, and those on their way.
    assert!(timeouts <= 200, "only the killed worker's requests failed: {timeouts}");
    // Worker 2 answered every request it took, exactly once.
    assert_eq!(ledger(&w2, "admitted"), ledger(&w2, "completed"), "{w2}");
    let counts = &w2["source"]["counts"];
    assert_eq!(counts["taken"], counts["answered"], "{w2}");
    drop(server);
    drop(hosts);
}
