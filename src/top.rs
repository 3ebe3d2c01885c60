//! `seda top URL`: a terminal view of a running engine, read from its admin listener's `/stats`.
//!
//! Every refresh takes a snapshot and shows, per stage, what changed since the one before:
//! rates in and out, and its pool's utilisation over that time; queue depth now; latency
//! percentiles since the engine started. Per-stage stats arrive as threads publish them (every
//! `metrics_interval_ms`), so a rate over a refresh shorter than that interval jumps.

use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::engine::Snapshot;

/// How long to wait for the admin listener to connect and to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum TopError {
    #[error("`{0}` is not an http:// URL with a host and port (e.g. http://127.0.0.1:9090)")]
    BadUrl(String),
    #[error("cannot reach the admin listener at {url}: {error}")]
    Unreachable { url: String, error: io::Error },
    #[error("{url} answered {status}, not 200")]
    Status { url: String, status: u16 },
    #[error("{url} did not answer with stats: {reason}")]
    BadAnswer { url: String, reason: String },
    #[error("cannot write to the terminal: {0}")]
    Output(io::Error),
}

/// Shows the engine at `url` (its admin listener), refreshing every `interval`: redrawn in
/// place, or with `once` a single frame, after two snapshots one interval apart, in plain text.
pub fn watch(url: &str, interval: Duration, once: bool, out: &mut dyn Write) -> Result<(), TopError> {
    let target = StatsUrl::parse(url)?;
    let mut before = target.fetch()?;
    loop {
        std::thread::sleep(interval);
        let now = target.fetch()?;
        let frame = frame(url, &before, &now);
        let clear = if once { "" } else { "\x1b[H\x1b[2J" };
        out.write_all(format!("{clear}{frame}").as_bytes()).and_then(|()| out.flush()).map_err(TopError::Output)?;
        if once {
            return Ok(());
        }
        before = now;
    }
}

/// Where `/stats` is: a host and port, and a path prefix (a listener behind a proxy).
struct StatsUrl {
    url: String,
    host: String,
    path: String,
}

impl StatsUrl {
    fn parse(url: &str) -> Result<StatsUrl, TopError> {
        let bad = || TopError::BadUrl(url.to_string());
        // The scheme may be left out; another one than http is not spoken.
        let rest = url.strip_prefix("http://").unwrap_or(url);
        if rest.contains("://") {
            return Err(bad());
        }
        let (host, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if host.is_empty() || !host.contains(':') {
            return Err(bad());
        }
        let prefix = prefix.trim_end_matches('/');
        let path = if prefix.is_empty() { "/stats".to_string() } else { format!("/{prefix}/stats") };
        Ok(StatsUrl { url: url.to_string(), host: host.to_string(), path })
    }

    fn fetch(&self) -> Result<Snapshot, TopError> {
        let unreachable = |error| TopError::Unreachable { url: self.url.clone(), error };
        let addr = self
            .host
            .to_socket_addrs()
            .map_err(unreachable)?
            .next()
            .ok_or_else(|| unreachable(io::Error::new(io::ErrorKind::NotFound, "the host has no address")))?;
        let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(unreachable)?;
        stream.set_read_timeout(Some(TIMEOUT)).map_err(unreachable)?;
        let request = format!("GET {} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n", self.path, self.host);
        stream.write_all(request.as_bytes()).map_err(unreachable)?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).map_err(unreachable)?;
        self.decode(&answer)
    }

    /// The snapshot in a whole HTTP response (the listener closes after it).
    fn decode(&self, answer: &[u8]) -> Result<Snapshot, TopError> {
        let bad = |reason: String| TopError::BadAnswer { url: self.url.clone(), reason };
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(answer) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Err(bad("the response ended early".into())),
            Err(e) => return Err(bad(format!("not HTTP: {e}"))),
        };
        let status = response.code.unwrap_or(0);
        if status != 200 {
            return Err(TopError::Status { url: self.url.clone(), status });
        }
        serde_json::from_slice(&answer[head_len..]).map_err(|e| bad(e.to_string()))
    }
}

/// One screen: the pipeline and its ledger, then a line per stage.
fn frame(url: &str, before: &Snapshot, now: &Snapshot) -> String {
    let elapsed = now.uptime_s - before.uptime_s;
    let rate = |a: u64, b: u64| if elapsed > 0.0 { b.saturating_sub(a) as f64 / elapsed } else { 0.0 };
    let l = &now.ledger;
    let mut f = String::new();
    let _ = writeln!(
        f,
        "seda top: pipeline {} at {url}, up {:.1} s, {:.0} completed/s (stage stats lag up to {} s)",
        now.pipeline,
        now.uptime_s,
        rate(before.ledger.completed, l.completed),
        now.metrics_interval_s
    );
    let _ = writeln!(
        f,
        "ledger: admitted {} completed {} rejected {} failed {} timed out {} in flight {}",
        l.admitted, l.completed, l.rejected, l.failed, l.timed_out, l.in_flight
    );
    if let (Some(was), Some(source)) = (&before.source, &now.source) {
        // The source's own stats: its levels now, and how fast each count that has moved runs.
        let levels = source.levels.iter().map(|(name, value)| format!("{} {value}", name.replace('_', " ")));
        let moved = source.counts.iter().filter(|(_, &total)| total > 0);
        let rates =
            moved.map(|(name, &total)| format!("{} {:.0}/s", name.replace('_', " "), rate(was.count(name), total)));
        let _ = writeln!(f, "{}: {}", source.kind, levels.chain(rates).collect::<Vec<_>>().join(", "));
    }
    let _ = writeln!(
        f,
        "{:<16} {:<10} {:>15} {:>11} {:>11} {:>13} {:>13} {:>13} {:>10} {:>6}",
        "stage", "pool", "queue", "in/s", "out/s", "p99 wait us", "p99 svc us", "p99 io us", "rejected", "util"
    );
    for stage in &now.stages {
        let was = before.stages.iter().find(|s| s.name == stage.name);
        // In: what entered the queue (taken since, or still waiting); out: handled.
        let entered = |s: &crate::engine::StageSnapshot| s.handled + s.timed_out + s.queue_depth;
        let rate_in = was.map_or(0.0, |w| rate(entered(w), entered(stage)));
        let rate_out = was.map_or(0.0, |w| rate(w.handled, stage.handled));
        let utilisation = pool_utilisation(before, now, &stage.pool);
        let _ = writeln!(
            f,
            "{:<16} {:<10} {:>15} {:>11.0} {:>11.0} {:>13.2} {:>13.2} {:>13.2} {:>10} {:>5.0}%",
            stage.name,
            stage.pool,
            format!("{}/{}", stage.queue_depth, stage.queue_capacity),
            rate_in,
            rate_out,
            stage.queue_wait_us.p99,
            stage.service_us.p99,
            stage.io_wait_us.p99,
            stage.rejected,
            utilisation * 100.0
        );
    }
    for pool in now.pools.iter().filter(|p| p.max_threads > p.min_threads) {
        let _ = writeln!(
            f,
            "pool {}: {} threads serving ({} to {})",
            pool.name, pool.threads, pool.min_threads, pool.max_threads
        );
    }
    for stage in now.stages.iter().filter(|s| s.batch_adaptive) {
        let _ = writeln!(f, "batch at {}: {} (adaptive)", stage.name, stage.batch_size);
    }
    for stage in &now.stages {
        let Some(a) = &stage.admission else { continue };
        let was = before.stages.iter().find(|s| s.name == stage.name).and_then(|s| s.admission.as_ref());
        let _ = writeln!(f, "{}", admission_line(&stage.name, a, was, &rate));
    }
    f
}

/// A stage's admission controller: what it steers by, and how fast it sheds.
fn admission_line(
    stage: &str,
    a: &crate::engine::AdmissionSnapshot,
    was: Option<&crate::engine::AdmissionSnapshot>,
    rate: &dyn Fn(u64, u64) -> f64,
) -> String {
    let mut parts = vec![format!("admission at {stage}: {}", a.controller.name())];
    if let Some(r) = a.rate {
        parts.push(format!("rate {r:.0}/s"));
    }
    if let Some(limit) = a.limit {
        parts.push(format!("limit {limit} (at stage {})", a.at_stage.unwrap_or(0)));
    }
    if let Some(dropping) = a.dropping {
        parts.push(if dropping { "shedding".into() } else { "not shedding".into() });
    }
    if let Some(ms) = a.latency_ms {
        parts.push(format!("latency {ms:.1} ms"));
    }
    parts.push(format!("shed {} ({:.0}/s)", a.shed, rate(was.map_or(a.shed, |w| w.shed), a.shed)));
    for c in &a.classes {
        let was_shed = was.and_then(|w| w.classes.iter().find(|k| k.name == c.name)).map_or(c.shed, |k| k.shed);
        parts.push(format!("class {} rate {:.0}/s shed {:.0}/s", c.name, c.rate, rate(was_shed, c.shed)));
    }
    parts.join(", ")
}

/// The share of `pool`'s worker time with work between the two snapshots.
fn pool_utilisation(before: &Snapshot, now: &Snapshot, pool: &str) -> f64 {
    let find = |s: &Snapshot| s.pools.iter().find(|p| p.name == pool).cloned();
    let (Some(was), Some(is)) = (find(before), find(now)) else { return 0.0 };
    let capacity = is.threads as f64 * (now.uptime_s - before.uptime_s);
    if capacity > 0.0 {
        ((is.busy_s - was.busy_s) / capacity).clamp(0.0, 1.0)
    } else {
        is.utilisation
    }
}
