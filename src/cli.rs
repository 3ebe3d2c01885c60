//! The command line. clap lives here and nowhere else: it turns flags into plain option
//! structs that `main` hands to the library.

use std::path::PathBuf;

use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use seda::report::{Options as ReportOptions, Window};

#[derive(Parser)]
#[command(name = "seda", version, about = "A staged event-driven pipeline engine")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a pipeline with its configured source and print its latency summary
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
    },
    /// Check a pipeline config; print every error with its JSON path
    Validate { config: PathBuf },
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

/// What the user asked for.
pub enum Action {
    Run(RunOptions),
    Validate { config: PathBuf },
    Graph { config: PathBuf },
    Report(ReportOptions),
    Top(TopOptions),
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
}

/// Parses the process arguments; on bad usage clap prints help and exits with code 2.
pub fn parse() -> Action {
    match Cli::parse().command {
        Command::Run { config, json, record, listen } => Action::Run(RunOptions { config, json, record, listen }),
        Command::Validate { config } => Action::Validate { config },
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
