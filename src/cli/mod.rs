//! The command line, as a library: [`main_with`] is `seda`'s `main`, and a user's binary that
//! calls it with its own stage kinds is `seda` plus those kinds. clap lives in this module and
//! nowhere else ([`args`] turns flags into plain option structs); errors become exit codes here.
//!
//! Exit codes: 0 success; 1 the run failed (or, for `report`, a run record could not be read);
//! 2 bad usage; 3 the config is invalid; 4 a `--fail-if` threshold of `seda load` or `seda run`
//! failed; 5 `seda load`'s target cannot be reached.

mod args;
mod kinds;

use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;

use crate::config;
use crate::run::{Listening, Runner};
use crate::stages::Registry;
use args::{Action, RunOptions};
use kinds::kinds;

const USAGE: u8 = 2;
const INVALID_CONFIG: u8 = 3;
const THRESHOLD_FAILED: u8 = 4;
const UNREACHABLE: u8 = 5;
/// A second SIGINT/SIGTERM during `seda load`: 128 + SIGINT, as a shell reports an interrupt.
const STOPPED_TWICE: i32 = 130;

/// Runs seda's command line with the stage kinds of `registry`: a user's binary that calls it
/// is `seda` plus the user's kinds, with every command (`validate`, `graph`, `run`, `load`,
/// `report`, `top`, `kinds`, `schema`).
///
/// ```no_run
/// use seda::stages::Registry;
///
/// fn main() -> std::process::ExitCode {
///     seda::cli::main_with(Registry::builtin())
/// }
/// ```
///
/// The NATS kinds (`nats_request`), which need this crate's client, are added to `registry`
/// when it does not have them.
pub fn main_with(registry: Registry) -> ExitCode {
    let registry = crate::nats::register(registry);
    let result = match args::parse() {
        Action::Run(options) => run_pipeline(options, &registry),
        Action::Load(options) => load(&options, &registry),
        Action::Validate { config } => config::load_with(&config, &registry)
            .map(|plan| {
                let count = |n: usize, noun: &str| format!("{n} {noun}{}", if n == 1 { "" } else { "s" });
                out(&format!(
                    "{}: valid pipeline `{}` ({}, {})\n",
                    config.display(),
                    plan.name,
                    count(plan.stages.len(), "stage"),
                    count(plan.pools.len(), "pool")
                ));
                ExitCode::SUCCESS
            })
            .or_else(invalid),
        Action::Report(options) => crate::report::report(&options, &mut std::io::stdout().lock())
            .map(|()| ExitCode::SUCCESS)
            .map_err(Into::into),
        Action::Graph { config } => config::load_with(&config, &registry)
            .map(|plan| {
                out(&config::to_dot(&plan));
                ExitCode::SUCCESS
            })
            .or_else(invalid),
        Action::Kinds { name } => kinds(&registry, name.as_deref()),
        Action::Schema => {
            out(&format!("{:#}\n", config::schema(&registry)));
            Ok(ExitCode::SUCCESS)
        }
        Action::Top(options) => {
            crate::top::watch(&options.url, options.interval, options.once, &mut std::io::stdout().lock())
                .map(|()| ExitCode::SUCCESS)
                .map_err(anyhow::Error::from)
        }
    };
    result.unwrap_or_else(|e| {
        eprintln!("seda: {e:#}");
        ExitCode::FAILURE
    })
}

/// Writes to standard output; a reader that went away (`seda run ... | head`) is not an error.
fn out(text: &str) {
    use std::io::Write;
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

fn invalid(errors: config::ConfigErrors) -> anyhow::Result<ExitCode> {
    eprint!("{errors}");
    Ok(ExitCode::from(INVALID_CONFIG))
}

fn run_pipeline(options: RunOptions, registry: &Registry) -> anyhow::Result<ExitCode> {
    let mut plan = match config::load_with(&options.config, registry) {
        Ok(plan) => plan,
        Err(errors) => return invalid(errors),
    };
    if let Some(addr) = options.listen {
        match &mut plan.source {
            config::SourcePlan::Http(http) => http.listen = addr,
            _ => {
                eprintln!("seda: --listen is for a pipeline whose source is `http`");
                return Ok(ExitCode::from(2));
            }
        }
    }
    // SIGINT/SIGTERM stop admission; the engine drains what is in flight and reports.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, stop.clone()).context("install the signal handler")?;
    }
    // A record directory that cannot be used fails before the run, not after it.
    let record = match &options.record {
        Some(dir) => {
            crate::record::prepare_dir(dir)?;
            let text = std::fs::read_to_string(&options.config)
                .with_context(|| format!("read {}", options.config.display()))?;
            Some((dir, text))
        }
        None => None,
    };
    crate::engine::quiet_worker_panics();
    let finished = Runner::new(plan)
        .record(record.is_some())
        .stop_on(&stop)
        .on_listening(|at| match at {
            Listening::Source(addr) => eprintln!("seda: listening on http://{addr}"),
            Listening::Admin(addr) => eprintln!("admin listening on {addr}"),
        })
        .run_to_end()?;
    let (summary, recording) = (finished.summary, finished.recording);
    let verdicts: Vec<_> = options.fail_if.iter().map(|t| t.check(&summary)).collect();
    let mut shown = format!("{summary}\n");
    for v in &verdicts {
        let verdict = if v.passed { "passed" } else { "FAILED" };
        shown += &format!("threshold {}: {} (actual {})\n", v.threshold, verdict, v.shown);
    }
    out(&shown);
    if let Some(path) = options.json {
        let mut json = serde_json::to_value(&summary)?;
        if !verdicts.is_empty() {
            json["thresholds"] = serde_json::to_value(&verdicts)?;
        }
        let json = serde_json::to_string_pretty(&json)?;
        std::fs::write(&path, json + "\n").with_context(|| format!("write {}", path.display()))?;
    }
    if let (Some((dir, text)), Some(recording)) = (record, recording) {
        crate::record::write_run(dir, &text, &summary, &recording)?;
    }
    // More endings than admissions: a request ended twice, a bug that no stat can be trusted past.
    if let Some(fault) = summary.ledger.fault() {
        eprintln!("seda: {fault}");
        return Ok(ExitCode::FAILURE);
    }
    Ok(if verdicts.iter().all(|v| v.passed) { ExitCode::SUCCESS } else { ExitCode::from(THRESHOLD_FAILED) })
}

fn load(options: &crate::loadgen::LoadOptions, registry: &Registry) -> anyhow::Result<ExitCode> {
    use crate::loadgen::LoadError;
    // The first SIGINT/SIGTERM ends the run early, with its results; a second one exits at once.
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register_conditional_shutdown(signal, STOPPED_TWICE, stop.clone())
            .context("install the signal handler")?;
        signal_hook::flag::register(signal, stop.clone()).context("install the signal handler")?;
    }
    // A record directory that cannot be used fails before the run, not after it.
    if let Some(dir) = &options.record {
        crate::record::prepare_dir(dir)?;
    }
    crate::engine::quiet_worker_panics();
    let results = match crate::loadgen::load_test(options, registry, &stop) {
        Ok(results) => results,
        Err(LoadError::Config(errors)) => return invalid(errors),
        Err(e @ LoadError::Usage(_)) => {
            eprintln!("seda load: {e}");
            return Ok(ExitCode::from(USAGE));
        }
        Err(e @ LoadError::Unreachable { .. }) => {
            eprintln!("seda load: {e}");
            return Ok(ExitCode::from(UNREACHABLE));
        }
        Err(e) => return Err(e.into()),
    };
    out(&format!("{results}"));
    crate::loadgen::write_outputs(&results, options)?;
    Ok(if results.passed() { ExitCode::SUCCESS } else { ExitCode::from(THRESHOLD_FAILED) })
}
