//! The command line's words: clap turns flags into the plain option structs of [`Action`].

use std::path::PathBuf;
use std::time::Duration;

use crate::loadgen::options::{
    parse_cpus, parse_duration, parse_rate, parse_status_set, parse_sweep, parse_target, Body, Checks, IoChoice,
    StatusSet, Sweep, Trust,
};
use crate::loadgen::request_file::parse_header;
use crate::loadgen::threshold::Threshold;
use crate::loadgen::{ArrivalKind, LoadOptions, Target};
use crate::report::{Options as ReportOptions, Window};
use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(name = "seda", version, about = "A staged event-driven pipeline engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline with its configured source and print its latency summary
    #[command(after_help = "Exit codes: 0 done, every threshold held; 1 the run failed; 2 bad usage; \
3 invalid pipeline config; 4 a --fail-if threshold failed.")]
    Run {
        /// The pipeline config (JSON)
        config: PathBuf,
        /// Also write the summary as JSON to this file
        #[arg(long, value_name = "FILE")]
        json: Option<PathBuf>,
        /// Write a run record into this directory (new or empty): config, summary, HdrHistogram
        /// interval log (latency.hlog), per-interval counters (counters.csv), .hgrm spectra
        #[arg(long, value_name = "DIR")]
        record: Option<PathBuf>,
        /// For an http source: listen here instead of the config's `listen` (port 0: any free)
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
        /// A condition that must hold, else exit 4, as for `seda load`: p99<5ms (end to end:
        /// p50, p90, p99, p99.9, max), errors<=0 (admitted requests that did not complete),
        /// errors<0.1%, rate>=9900 (completed per second) (repeatable)
        #[arg(long = "fail-if", value_name = "CONDITION", value_parser = Threshold::for_run)]
        fail_if: Vec<Threshold>,
    },
    /// Check a pipeline config; print every error with its JSON path
    Validate { config: PathBuf },
    /// Load-test an HTTP server or a pipeline (in-process), open or closed loop, with latency
    /// corrected for coordinated omission
    Load(Box<LoadArgs>),
    /// Print the pipeline's stage graph as Graphviz DOT
    Graph { config: PathBuf },
    /// Read run records back: latency per stage and end to end, over a time window if asked,
    /// as tables (two runs side by side), .hgrm spectra and SVG plots
    Report {
        /// Run record directories (`seda run CONFIG --record DIR`); with two, the second is
        /// compared with the first
        #[arg(required = true, value_name = "RUN")]
        runs: Vec<PathBuf>,
        /// Only the intervals that start at or after this many seconds from the run's start
        #[arg(long, value_name = "SECONDS", value_parser = seconds)]
        from: Option<Duration>,
        /// Only the intervals that start before this many seconds from the run's start
        #[arg(long, value_name = "SECONDS", value_parser = seconds)]
        to: Option<Duration>,
        /// Write a percentile spectrum (.hgrm) per stage and metric and end to end into DIR
        #[arg(long, value_name = "DIR")]
        hgrm: Option<PathBuf>,
        /// Write SVG plots into DIR: percentile spectrum, latency over time, and for several
        /// runs throughput against p99
        #[arg(long, value_name = "DIR")]
        svg: Option<PathBuf>,
    },
    /// List the stage kinds a config may name; with NAME, that kind's params
    Kinds {
        /// A kind's name
        name: Option<String>,
    },
    /// Print the JSON Schema of the pipeline config format (for editors that check and
    /// complete configs)
    Schema,
    /// Watch a running pipeline through its admin listener: a line per stage, refreshed
    Top {
        /// The admin listener, e.g. http://127.0.0.1:9090
        url: String,
        /// Seconds between refreshes
        #[arg(long, default_value_t = 1.0, value_parser = positive_seconds)]
        interval: f64,
        /// Print one frame (after two snapshots, an interval apart) as plain text and exit
        #[arg(long)]
        once: bool,
    },
}

fn positive_seconds(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        _ => Err(format!("`{s}` is not a positive number of seconds")),
    }
}

/// A time in seconds (`2`, `0.5`), not negative.
fn seconds(text: &str) -> Result<Duration, String> {
    let s: f64 = text.parse().map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(s).map_err(|_| format!("`{text}`: seconds must be 0 or more"))
}

#[derive(clap::Args)]
#[command(after_help = "Exit codes: 0 done, every threshold held; 1 the run failed; 2 bad usage; \
3 invalid pipeline config; 4 a --fail-if threshold failed; 5 the target cannot be reached.")]
struct LoadArgs {
    /// An http:// or https:// URL (host:port/path alone means http://), or a pipeline config
    /// (JSON) to run in-process
    #[arg(value_parser = parse_target)]
    target: Target,
    /// Open loop at this many requests per second (2000, 100k); without it, a closed loop
    #[arg(long, value_parser = parse_rate, conflicts_with = "sweep")]
    rate: Option<f64>,
    /// How an open loop spaces its requests
    #[arg(long, value_enum, default_value = "constant")]
    arrival: Arrival,
    /// Raise the rate linearly from 0 to --rate over the warmup and the run
    #[arg(long, requires = "rate")]
    ramp: bool,
    /// A fixed-rate step per rate FROM, FROM+STEP, ... TO, each --duration long, with a
    /// table of throughput and latency per step
    #[arg(long, value_name = "FROM:TO:STEP", value_parser = parse_sweep)]
    sweep: Option<Sweep>,
    /// Connections (in-process: slots for requests in flight)
    #[arg(short, long, default_value_t = 64)]
    connections: usize,
    /// Requests in flight per connection (HTTP/1.1 pipelining)
    #[arg(long, default_value_t = 1)]
    pipeline: usize,
    /// A request mix: one `METHOD PATH BODY_BYTES WEIGHT` a line
    #[arg(long, value_name = "FILE")]
    mix: Option<PathBuf>,
    /// A request file: one JSON object a line, with name, method, url or path, headers, body or
    /// body_file, weight; results per name as well as in total
    #[arg(long, value_name = "FILE", conflicts_with = "mix")]
    requests: Option<PathBuf>,
    /// Send the request file's (or mix's) requests in turn, in the file's order, instead of
    /// drawing them by weight
    #[arg(long)]
    in_order: bool,
    /// A header sent with every request, `Name: value` (repeatable)
    #[arg(short = 'H', long = "header", value_name = "'NAME: VALUE'", value_parser = parse_header)]
    headers: Vec<(String, String)>,
    /// The request's method (GET without it)
    #[arg(short = 'm', long, value_name = "METHOD")]
    method: Option<String>,
    /// The request's body
    #[arg(long, value_name = "STRING", conflicts_with = "body_file")]
    body: Option<String>,
    /// The request's body, from a file (at most 16 MiB)
    #[arg(long, value_name = "FILE")]
    body_file: Option<PathBuf>,
    /// The statuses a response must have, else it counts as an `unexpected_status` error:
    /// `2xx`, `200,204` (without it: any below 400)
    #[arg(long, value_name = "STATUSES", value_parser = parse_status_set)]
    expect_status: Option<StatusSet>,
    /// Text a response's body must contain, else it counts as a `missing_text` error
    #[arg(long, value_name = "TEXT")]
    expect_body_contains: Option<String>,
    /// https://: trust the certificates of this PEM file instead of the platform's roots
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    cacert: Option<PathBuf>,
    /// https://: take any certificate, without verifying it
    #[arg(long)]
    insecure: bool,
    /// A request without a complete response this long after it was sent is an error
    #[arg(long, value_parser = parse_duration, default_value = "2s")]
    timeout: Duration,
    /// Sending threads (HTTP; a pipeline gets one)
    #[arg(short, long, default_value_t = 1)]
    threads: usize,
    /// Pin the sending threads to these CPUs, round robin (1, 0,1, 0-3)
    #[arg(long, value_parser = |s: &str| parse_cpus(s).map(CpuList))]
    cpus: Option<CpuList>,
    /// How the sending threads do their I/O against an HTTP server: io_uring, epoll, or auto
    /// (io_uring when the kernel allows it, else epoll; the results' header says which)
    #[arg(long, value_enum, default_value = "auto")]
    io: Io,
    /// The measured run (each step's, with --sweep)
    #[arg(short, long, value_parser = parse_duration, default_value = "10s")]
    duration: Duration,
    /// Load before the measured run, shown but left out of the results
    #[arg(long, value_parser = parse_duration, default_value = "0s")]
    warmup: Duration,
    /// Write the corrected latency spectrum (.hgrm, microseconds); the uncorrected one goes
    /// beside it as NAME.uncorrected.hgrm
    #[arg(long, value_name = "FILE")]
    hgrm: Option<PathBuf>,
    /// Write an HdrHistogram interval log (one line per second per histogram)
    #[arg(long, value_name = "FILE")]
    hlog: Option<PathBuf>,
    /// Write the results as JSON
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write a run record into this directory (new or empty) for `seda report`: the generator's
    /// corrected, uncorrected, send-lag and connection-wait latency per interval, and with a
    /// pipeline target the engine's own record beside them
    #[arg(long, value_name = "DIR")]
    record: Option<PathBuf>,
    /// A condition that must hold, else exit 4: p99<5ms, uncorrected.p99.9<1ms, lag.p99<100us,
    /// errors<0.1%, errors<=10, errors.unexpected_status<1%, rate>=9900 (repeatable)
    #[arg(long = "fail-if", value_name = "CONDITION")]
    fail_if: Vec<Threshold>,
    /// Report goodput beside throughput: responses that passed the checks within this
    /// corrected latency (20ms, 1s), per second
    #[arg(long, value_parser = parse_duration, value_name = "LATENCY")]
    slo: Option<Duration>,
    /// Seed of poisson arrivals and of the mix's draws
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

/// A list of CPUs as one value (clap would take a `Vec` for a repeated option).
#[derive(Clone)]
struct CpuList(Vec<usize>);

#[derive(Clone, Copy, ValueEnum)]
enum Io {
    Auto,
    Uring,
    Epoll,
}

#[derive(Clone, Copy, ValueEnum)]
enum Arrival {
    Constant,
    Poisson,
}

/// What the user asked for.
pub enum Action {
    Run(RunOptions),
    Load(Box<LoadOptions>),
    Validate { config: PathBuf },
    Graph { config: PathBuf },
    Report(ReportOptions),
    Top(TopOptions),
    Kinds { name: Option<String> },
    Schema,
}

pub struct TopOptions {
    pub url: String,
    pub interval: std::time::Duration,
    pub once: bool,
}

pub struct RunOptions {
    pub config: PathBuf,
    pub json: Option<PathBuf>,
    pub record: Option<PathBuf>,
    pub listen: Option<std::net::SocketAddr>,
    pub fail_if: Vec<Threshold>,
}

/// Parses the process arguments; on bad usage clap prints help and exits with code 2.
pub fn parse() -> Action {
    match Cli::parse().command {
        Command::Kinds { name } => Action::Kinds { name },
        Command::Schema => Action::Schema,
        Command::Run { config, json, record, listen, fail_if } => {
            Action::Run(RunOptions { config, json, record, listen, fail_if })
        }
        Command::Validate { config } => Action::Validate { config },
        Command::Load(a) => Action::Load(Box::new(LoadOptions {
            rate: a.rate,
            arrival: match a.arrival {
                Arrival::Constant => ArrivalKind::Constant,
                Arrival::Poisson => ArrivalKind::Poisson,
            },
            ramp: a.ramp,
            sweep: a.sweep,
            connections: a.connections,
            pipeline: a.pipeline,
            mix: a.mix,
            requests: a.requests,
            in_order: a.in_order,
            headers: a.headers,
            method: a.method,
            body: match (a.body, a.body_file) {
                (Some(text), _) => Some(Body::Text(text)),
                (None, Some(file)) => Some(Body::File(file)),
                (None, None) => None,
            },
            checks: Checks { status: a.expect_status, body_contains: a.expect_body_contains },
            trust: match (a.cacert, a.insecure) {
                (Some(file), _) => Trust::CaFile(file),
                (None, true) => Trust::Insecure,
                (None, false) => Trust::Platform,
            },
            timeout: a.timeout,
            threads: a.threads,
            cpus: a.cpus.map(|c| c.0),
            io: match a.io {
                Io::Auto => IoChoice::Auto,
                Io::Uring => IoChoice::Uring,
                Io::Epoll => IoChoice::Epoll,
            },
            duration: a.duration,
            warmup: a.warmup,
            hgrm: a.hgrm,
            hlog: a.hlog,
            record: a.record,
            json: a.json,
            fail_if: a.fail_if,
            slo: a.slo,
            seed: a.seed,
            ..LoadOptions::new(a.target)
        })),
        Command::Graph { config } => Action::Graph { config },
        Command::Report { runs, from, to, hgrm, svg } => {
            if let (Some(from), Some(to)) = (from, to) {
                if from >= to {
                    let message = "--from must be before --to";
                    Cli::command().error(clap::error::ErrorKind::ArgumentConflict, message).exit();
                }
            }
            Action::Report(ReportOptions { runs, window: Window { from, to }, hgrm, svg })
        }
        Command::Top { url, interval, once } => {
            Action::Top(TopOptions { url, interval: std::time::Duration::from_secs_f64(interval), once })
        }
    }
}
