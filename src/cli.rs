//! The command line. clap lives here and nowhere else: it turns flags into plain option
//! structs that `main` hands to the library.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

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
    },
    /// Check a pipeline config; print every error with its JSON path
    Validate { config: PathBuf },
    /// Print the pipeline's stage graph as Graphviz DOT
    Graph { config: PathBuf },
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

/// What the user asked for.
pub enum Action {
    Run(RunOptions),
    Validate { config: PathBuf },
    Graph { config: PathBuf },
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
}

/// Parses the process arguments; on bad usage clap prints help and exits with code 2.
pub fn parse() -> Action {
    match Cli::parse().command {
        Command::Run { config, json, record } => Action::Run(RunOptions { config, json, record }),
        Command::Validate { config } => Action::Validate { config },
        Command::Graph { config } => Action::Graph { config },
        Command::Top { url, interval, once } => {
            Action::Top(TopOptions { url, interval: std::time::Duration::from_secs_f64(interval), once })
        }
    }
}
