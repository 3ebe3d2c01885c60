//! `seda load --record DIR`: a run record that `seda report` reads, as `seda run --record`
//! writes one.
//!
//! - A pipeline in-process: the engine's own record (its stages' queue wait and service time,
//!   `e2e`, the counters), with the generator's series beside them in the same interval log:
//!   `corrected`, `uncorrected`, `send_lag`, `connection_wait`.
//! - An HTTP server: the generator's record alone: `corrected`, `uncorrected`, `send_lag`,
//!   `connection_wait`, and `e2e` the corrected latency again (what a user arriving on schedule
//!   waited, the series the report checks against the ledger). Its summary counts requests in
//!   the ledger's terms: admitted = sent, completed = answered, timed out = timeouts, failed =
//!   the rest of those without an answer.
//!
//! Either way `summary.json` also holds `load` (what `--json` writes) and, for a sweep, `steps`:
//! each step's throughput and corrected latency, which `seda report --svg` draws as the knee.
//! The generator's intervals are its one-second ones, from its own start, set on the log's time
//! base (the engine's start, in-process).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_json::{json, Map, Value};

use super::options::Target;
use super::output::{PhaseResults, Results, HLOG_TAGS};
use super::{LoadError, LoadOptions};
use crate::engine::LedgerCounts;
use crate::metrics::{hlog, Percentiles, Summary, FORMAT};
use crate::record::{write_run_with, Extra};

/// Writes the record of `results` into `dir` (new or empty).
pub fn write(dir: &Path, results: &Results, options: &LoadOptions) -> Result<(), LoadError> {
    let failed = |source: std::io::Error| LoadError::Io { what: format!("write the record {}", dir.display()), source };
    let in_process = results.engine.as_ref().zip(results.recording.as_ref());
    let config = match (&options.target, in_process) {
        (Target::Pipeline(path), Some(_)) => std::fs::read_to_string(path).map_err(failed)?,
        _ => serde_json::to_string_pretty(&json!({ "load": results.shape })).expect("plain data") + "\n",
    };
    let mut extra = Extra { started: Some(results.started), ..Extra::default() };
    let length = Duration::from_nanos(results.interval_ns);
    for record in &results.intervals {
        let start = length * record.index as u32;
        // Against a server, the corrected latency is also the record's end to end, which the
        // report checks against the summary's ledger.
        let e2e = in_process.is_none().then_some((0, crate::record::E2E_TAG));
        for (which, tag) in e2e.into_iter().chain(HLOG_TAGS.iter().copied().enumerate()) {
            extra.entries.push(hlog::Entry { tag: tag.to_owned(), start, length, histogram: record.histogram(which) });
        }
    }
    let h = &results.total.histograms;
    for (name, histogram) in HLOG_TAGS.iter().zip([&h.corrected, &h.uncorrected, &h.send_lag, &h.connection_wait]) {
        extra.spectra.push(((*name).to_owned(), histogram.clone()));
    }
    extra.summary_fields = summary_fields(results);
    let written = match in_process {
        Some((summary, recording)) => write_run_with(dir, &config, summary, Some(recording), extra),
        None => {
            extra.spectra.push((crate::record::E2E_TAG.to_owned(), h.corrected.clone()));
            write_run_with(dir, &config, &server_summary(results), None, extra)
        }
    };
    written.map_err(|e| LoadError::Io { what: "write the record".into(), source: std::io::Error::other(e) })
}

/// `load`, and `steps` for a sweep.
fn summary_fields(results: &Results) -> Map<String, Value> {
    let mut fields = Map::new();
    let mut load = serde_json::to_value(results).expect("plain data");
    if let Some(load) = load.as_object_mut() {
        // In the record, the engine's summary is the record's own.
        load.remove("engine");
    }
    fields.insert("load".into(), load);
    if !results.steps.is_empty() {
        let steps = results.steps.iter().map(step).collect();
        fields.insert("steps".into(), Value::Array(steps));
    }
    fields
}

fn step(phase: &PhaseResults) -> Value {
    json!({
        "label": phase.label,
        "target_rate": phase.target_rate,
        "throughput_rps": phase.achieved_rate,
        "latency_us": Percentiles::of(Some(&phase.histograms.corrected)),
        "goodput_rps": phase.goodput_rps,
        // What the target served: the answers that passed their checks (a server that sheds
        // answers its rejections fast).
        "served_latency_us": Percentiles::of(Some(&phase.histograms.good)),
    })
}

/// The summary of a load of an HTTP server, in the ledger's terms (see the module doc).
fn server_summary(results: &Results) -> Summary {
    let t = &results.total;
    let timed_out = t.errors_by_kind.get("timeout").copied().unwrap_or(0);
    let unanswered = t.sent.saturating_sub(t.responses);
    Summary {
        format: FORMAT.to_owned(),
        pipeline: results.shape.target.clone(),
        elapsed_s: t.elapsed_s,
        throughput_rps: t.achieved_rate,
        ledger: LedgerCounts {
            admitted: t.sent,
            completed: t.responses,
            rejected: 0,
            failed: unanswered.saturating_sub(timed_out),
            timed_out: timed_out.min(unanswered),
            in_flight: 0,
            ended_beyond_admitted: 0,
        },
        latency_us: Percentiles::of(Some(&t.histograms.corrected)),
        stages: BTreeMap::new(),
        stage_order: Vec::new(),
        source: None,
        // A server seda load drove from outside: its workers are not seen.
        idle_spin_us_per_request: 0.0,
    }
}
