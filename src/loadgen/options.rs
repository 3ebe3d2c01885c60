//! What `seda load` was asked to do, as plain values, and the parsers that turn arguments into
//! them (the CLI calls these, so a bad value is a usage error with its reason).

use std::path::PathBuf;
use std::time::Duration;

pub use super::http::tls::Trust;
use super::tally::ErrorKind;
use super::threshold::Threshold;

/// What is loaded.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    /// An HTTP/1.1 server.
    Http(HttpTarget),
    /// A pipeline config, run in-process: requests enter its entry stage directly.
    Pipeline(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpTarget {
    /// `https://`: over TLS.
    pub tls: bool,
    /// `host` or `host:port` as written, for the `Host` header.
    pub authority: String,
    pub host: String,
    pub port: u16,
    /// The request target: path and query, `/` when the URL has none.
    pub path: String,
}

impl HttpTarget {
    /// `http://host:port` (or `https://`) as written, without the path.
    pub fn origin(&self) -> String {
        format!("{}://{}", if self.tls { "https" } else { "http" }, self.authority)
    }
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Http(t) => write!(f, "{}{}", t.origin(), t.path),
            Target::Pipeline(path) => write!(f, "{}", path.display()),
        }
    }
}

/// `http://host[:port][/path]`, `host:port[/path]` (meaning `http://`), or a config file's
/// path.
pub fn parse_target(s: &str) -> Result<Target, String> {
    let Some((scheme, rest)) = s.split_once("://") else {
        if s.is_empty() {
            return Err("the target is empty: give an http:// URL or a pipeline config".into());
        }
        if looks_like_host_and_port(s) && !std::path::Path::new(s).exists() {
            return parse_target(&format!("http://{s}"));
        }
        return Ok(Target::Pipeline(PathBuf::from(s)));
    };
    let tls = match scheme.to_ascii_lowercase().as_str() {
        "http" => false,
        "https" => true,
        _ => return Err(format!("`{s}`: only http:// and https:// URLs are supported, not {scheme}://")),
    };
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_string()),
    };
    let path = path.split('#').next().unwrap_or("/").to_string();
    let bad = |why: &str| format!("`{s}` is not a usable URL: {why}");
    if authority.contains('@') {
        return Err(bad("credentials in the URL are not supported"));
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[` in the host"))?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(bad("no host"));
    }
    let port = match port {
        None if tls => 443,
        None => 80,
        Some(p) => p.parse::<u16>().ok().filter(|&p| p > 0).ok_or_else(|| bad(&format!("bad port `{p}`")))?,
    };
    if path.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err(bad("spaces or control characters in the path"));
    }
    Ok(Target::Http(HttpTarget { tls, authority: authority.to_string(), host: host.to_string(), port, path }))
}

pub use crate::units::{parse_duration, parse_rate};

/// `localhost:8080`, `127.0.0.1:80/x`, `[::1]:9000`: an authority with a numeric port before any
/// `/`, which a config file's path does not have (one that exists is taken as the file).
fn looks_like_host_and_port(s: &str) -> bool {
    let authority = s.split(['/', '?']).next().unwrap_or("");
    authority
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()))
}

/// `--sweep FROM:TO:STEP`: rates FROM, FROM+STEP, ... up to TO.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sweep {
    pub from: f64,
    pub to: f64,
    pub step: f64,
}

impl Sweep {
    pub fn rates(&self) -> Vec<f64> {
        let steps = ((self.to - self.from) / self.step + 1e-9).floor() as usize;
        (0..=steps).map(|i| self.from + i as f64 * self.step).collect()
    }
}

pub fn parse_sweep(s: &str) -> Result<Sweep, String> {
    let parts: Vec<&str> = s.split(':').collect();
    let [from, to, step] = parts[..] else {
        return Err(format!("sweep `{s}` must be FROM:TO:STEP (e.g. 1000:10000:1000)"));
    };
    let (from, to, step) = (parse_rate(from)?, parse_rate(to)?, parse_rate(step)?);
    if to < from {
        return Err(format!("sweep `{s}`: TO is below FROM"));
    }
    let sweep = Sweep { from, to, step };
    if sweep.rates().len() > 1000 {
        return Err(format!("sweep `{s}` has more than 1000 steps"));
    }
    Ok(sweep)
}

/// `0,1` or `0-3` or `1`.
pub fn parse_cpus(s: &str) -> Result<Vec<usize>, String> {
    let mut cpus = Vec::new();
    for part in s.split(',') {
        let bad = || format!("`{s}` is not a CPU list (e.g. 1 or 0,1 or 0-3)");
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (usize, usize) =
                    (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
                if b < a {
                    return Err(bad());
                }
                cpus.extend(a..=b);
            }
            None => cpus.push(part.trim().parse().map_err(|_| bad())?),
        }
    }
    Ok(cpus)
}

/// A request body as given: `--body STRING` or `--body-file FILE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    Text(String),
    File(PathBuf),
}

/// What every response must be (`--expect-status`, `--expect-body-contains`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checks {
    /// The statuses accepted; without it, any below 400.
    pub status: Option<StatusSet>,
    /// Text the body must contain.
    pub body_contains: Option<String>,
}

impl Checks {
    /// The check a response fails, if any; `text_found` says whether its body held the
    /// expected text (true when there is none to look for).
    pub fn failed(&self, status: u16, text_found: bool) -> Option<ErrorKind> {
        let status_ok = match &self.status {
            Some(set) => set.contains(status),
            None => status < 400,
        };
        if !status_ok {
            Some(ErrorKind::UnexpectedStatus)
        } else if !text_found {
            Some(ErrorKind::MissingText)
        } else {
            None
        }
    }
}

/// Statuses: `2xx`, `200,204`, `2xx,301`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusSet {
    /// Whole classes (2 for `2xx`).
    classes: Vec<u16>,
    codes: Vec<u16>,
}

impl StatusSet {
    pub fn contains(&self, status: u16) -> bool {
        self.codes.contains(&status) || self.classes.contains(&(status / 100))
    }
}

/// `2xx`, `200`, `200,204,3xx`.
pub fn parse_status_set(s: &str) -> Result<StatusSet, String> {
    let mut set = StatusSet { classes: Vec::new(), codes: Vec::new() };
    for part in s.split(',').map(str::trim) {
        let bad = || format!("`{part}` is not a status (e.g. 200) or a class (e.g. 2xx)");
        match part.strip_suffix("xx").or_else(|| part.strip_suffix("XX")) {
            Some(class) => {
                let class: u16 = class.parse().ok().filter(|c| (1..=5).contains(c)).ok_or_else(bad)?;
                set.classes.push(class);
            }
            None => {
                let code: u16 = part.parse().ok().filter(|c| (100..=599).contains(c)).ok_or_else(bad)?;
                set.codes.push(code);
            }
        }
    }
    Ok(set)
}

/// How requests are spaced in an open loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArrivalKind {
    Constant,
    Poisson,
}

/// `--io`: how the sending threads do their I/O against an HTTP server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IoChoice {
    /// io_uring when the kernel allows it, else epoll.
    #[default]
    Auto,
    Uring,
    Epoll,
}

/// Everything `seda load` was asked, already parsed; combinations are checked by
/// [`super::LoadPlan::new`].
#[derive(Debug, Clone)]
pub struct LoadOptions {
    pub target: Target,
    /// Open loop at this rate; without it (and without `sweep`), a closed loop.
    pub rate: Option<f64>,
    pub arrival: ArrivalKind,
    /// The rate rises linearly from 0 to `rate` over the warmup and the run.
    pub ramp: bool,
    pub sweep: Option<Sweep>,
    pub connections: usize,
    /// Requests in flight per connection.
    pub pipeline: usize,
    pub mix: Option<PathBuf>,
    /// A request file (JSON lines): many named requests, by weight or in order.
    pub requests: Option<PathBuf>,
    /// Send the request file's (or mix's) requests in turn instead of drawing them by weight.
    pub in_order: bool,
    /// The method of the URL's request (`GET` without it).
    pub method: Option<String>,
    /// Headers sent with every request (a request file's own header of the same name wins).
    pub headers: Vec<(String, String)>,
    /// The body of the URL's request.
    pub body: Option<Body>,
    /// What a response must be, else it counts as an error of its own kind.
    pub checks: Checks,
    /// Which servers an https:// target may be (`--cacert`, `--insecure`).
    pub trust: Trust,
    pub timeout: Duration,
    pub threads: usize,
    pub cpus: Option<Vec<usize>>,
    /// How the sending threads do their I/O against an HTTP server (`--io`).
    pub io: IoChoice,
    /// The measured run (per step, with `sweep`).
    pub duration: Duration,
    pub warmup: Duration,
    pub hgrm: Option<PathBuf>,
    pub hlog: Option<PathBuf>,
    pub json: Option<PathBuf>,
    /// A run record directory (new or empty), which `seda report` reads.
    pub record: Option<PathBuf>,
    pub fail_if: Vec<Threshold>,
    /// Goodput is what passed the checks within this corrected latency.
    pub slo: Option<Duration>,
    /// Seed of poisson arrivals and of the request mix's draws.
    pub seed: u64,
}

impl LoadOptions {
    /// Defaults for everything but the target, as the CLI documents them.
    pub fn new(target: Target) -> Self {
        LoadOptions {
            target,
            rate: None,
            arrival: ArrivalKind::Constant,
            ramp: false,
            sweep: None,
            connections: 64,
            pipeline: 1,
            mix: None,
            requests: None,
            in_order: false,
            method: None,
            headers: Vec::new(),
            body: None,
            checks: Checks::default(),
            trust: Trust::Platform,
            timeout: Duration::from_secs(2),
            threads: 1,
            cpus: None,
            io: IoChoice::Auto,
            duration: Duration::from_secs(10),
            warmup: Duration::ZERO,
            hgrm: None,
            hlog: None,
            json: None,
            record: None,
            fail_if: Vec::new(),
            slo: None,
            seed: 1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http(s: &str) -> HttpTarget {
        match parse_target(s).unwrap() {
            Target::Http(t) => t,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn urls_give_host_port_and_path() {
        let t = http("http://127.0.0.1:8080/a/b?c=1");
        assert_eq!(
            (t.host.as_str(), t.port, t.path.as_str(), t.authority.as_str()),
            ("127.0.0.1", 8080, "/a/b?c=1", "127.0.0.1:8080")
        );
        let t = http("http://example.com");
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("example.com", 80, "/"));
        let t = http("http://[::1]:9000/x#frag");
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("::1", 9000, "/x"));
        assert_eq!(parse_target("configs/noop4.json").unwrap(), Target::Pipeline("configs/noop4.json".into()));
        let t = http("localhost:8080/api?x=1");
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("localhost", 8080, "/api?x=1"));
        let t = http("[::1]:9000");
        assert_eq!((t.host.as_str(), t.port, t.path.as_str()), ("::1", 9000, "/"));
        assert_eq!(parse_target("a:b/c.json").unwrap(), Target::Pipeline("a:b/c.json".into()));
    }

    #[test]
    fn bad_urls_say_why() {
        assert!(parse_target("ftp://x/").unwrap_err().contains("only http:// and https://"));
        let t = http("https://example.com/x");
        assert_eq!((t.tls, t.port, t.path.as_str()), (true, 443, "/x"));
        assert_eq!(Target::Http(t).to_string(), "https://example.com/x");
        assert!(parse_target("http://:80/").unwrap_err().contains("no host"));
        assert!(parse_target("http://h:99999/").unwrap_err().contains("bad port `99999`"));
        assert!(parse_target("http://h:x/").unwrap_err().contains("bad port"));
        assert!(parse_target("http://u:p@h/").unwrap_err().contains("credentials"));
    }

    #[test]
    fn status_sets_take_classes_and_codes() {
        let set = parse_status_set("2xx, 301").unwrap();
        assert_eq!(
            (set.contains(204), set.contains(301), set.contains(302), set.contains(404)),
            (true, true, false, false)
        );
        assert!(parse_status_set("200,x").unwrap_err().contains("`x` is not a status"));
        assert!(parse_status_set("6xx").is_err());
        assert!(parse_status_set("99").is_err());
    }

    #[test]
    fn rates_durations_sweeps_and_cpus_parse() {
        assert_eq!(parse_rate("2000").unwrap(), 2000.0);
        assert_eq!(parse_rate("2000/s").unwrap(), 2000.0);
        assert_eq!(parse_rate("100k").unwrap(), 100_000.0);
        assert_eq!(parse_rate("1.5M").unwrap(), 1_500_000.0);
        assert!(parse_rate("fast").unwrap_err().contains("not requests per second"));
        assert!(parse_rate("0").unwrap_err().contains("above zero"));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        assert!(parse_duration("soon").is_err());
        assert_eq!(parse_sweep("1k:3k:1k").unwrap().rates(), [1000.0, 2000.0, 3000.0]);
        assert_eq!(parse_sweep("1000:2500:1000").unwrap().rates(), [1000.0, 2000.0]);
        assert!(parse_sweep("1000:2000").is_err());
        assert!(parse_sweep("3000:1000:10").unwrap_err().contains("below"));
        assert_eq!(parse_cpus("0-2,5").unwrap(), [0, 1, 2, 5]);
        assert!(parse_cpus("a").is_err());
    }
}
