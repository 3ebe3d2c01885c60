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
        /// For an http source: listen here instead of the config's `listen` (port 0: any free)
        #[arg(long, value_name = "ADDR")]
        listen: Option<std::net::SocketAddr>,
    },
    /// Check a pipeline config; print every error with its JSON path
    Validate { config: PathBuf },
    /// Print the pipeline's stage graph as Graphviz DOT
    Graph { config: PathBuf },
}

/// What the user asked for.
pub enum Action {
    Run(RunOptions),
    Validate { config: PathBuf },
    Graph { config: PathBuf },
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
    }
}
