//! A run's summary: the ledger, end-to-end latency and every stage's stats, as a table for
//! people and as JSON for scripts.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::collector::Totals;
use super::Percentiles;
use crate::config::Plan;
use crate::engine::LedgerCounts;

/// The format of run records and JSON summaries, which `seda report` checks before it reads one.
/// A change that older readers would misread gets a new number.
pub const FORMAT: &str = "seda-run/1";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Summary {
    /// [`FORMAT`].
    pub format: String,
    pub pipeline: String,
    pub elapsed_s: f64,
    /// Completed requests per second over the run.
    pub throughput_rps: f64,
    pub ledger: LedgerCounts,
    /// End to end, from each request's intended start to its completion.
    pub latency_us: Percentiles,
    pub stages: BTreeMap<String, StageSummary>,
    /// The stages' names in pipeline order (from the entry, breadth first), the order tables
    /// list them in; empty in records written before it was kept.
    #[serde(default)]
    pub stage_order: Vec<String>,
    /// The source's own stats (an HTTP source's connections), when it keeps any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<super::SourceStats>,
    /// CPU time workers spent spinning, idle, looking for work, per completed request
    /// (see the idle policy in `engine::idle`); 0 in records written before it was kept.
    #[serde(default)]
    pub idle_spin_us_per_request: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StageSummary {
    pub kind: String,
    pub pool: String,
    pub processed: u64,
    pub rejected: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub throughput_rps: f64,
    pub queue_wait_us: Percentiles,
    pub service_us: Percentiles,
    /// From the start of each asynchronous operation the stage asked for (a timer, a file
    /// read) to its completion; empty for a stage that asks for none.
    #[serde(default)]
    pub io_wait_us: Percentiles,
    /// Requests the stage failed, by error message (at most 32 messages; the rest under
    /// `(other errors)`), caught panics apart.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub errors: BTreeMap<String, u64>,
    /// Requests whose handler panicked at this stage, by panic message.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub panics: BTreeMap<String, u64>,
}

impl StageSummary {
    /// The percentiles of [`super::STAGE_SERIES`], in its order.
    pub fn series(&self) -> [&Percentiles; 3] {
        [&self.queue_wait_us, &self.service_us, &self.io_wait_us]
    }
}

impl Summary {
    pub fn new(plan: &Plan, totals: &Totals, ledger: LedgerCounts, elapsed_s: f64) -> Self {
        let per_second = |n: u64| {
            if elapsed_s > 0.0 {
                n as f64 / elapsed_s
            } else {
                0.0
            }
        };
        let stages = plan
            .stages
            .iter()
            .zip(&totals.stages)
            .map(|(stage, t)| {
                let (mut errors, mut panics) = (BTreeMap::new(), BTreeMap::new());
                for (message, n) in &t.failures.0 {
                    let into = if crate::engine::is_panic(message) { &mut panics } else { &mut errors };
                    into.insert(message.clone(), *n);
                }
                let summary = StageSummary {
                    kind: stage.kind.clone(),
                    pool: plan.pools[stage.pool].name.clone(),
                    processed: t.processed,
                    rejected: t.rejected,
                    failed: t.failed,
                    timed_out: t.timed_out,
                    throughput_rps: per_second(t.processed),
                    queue_wait_us: Percentiles::of(t.queue_wait.as_ref()),
                    service_us: Percentiles::of(t.service.as_ref()),
                    io_wait_us: Percentiles::of(t.io_wait.as_ref()),
                    errors,
                    panics,
                };
                (stage.name.clone(), summary)
            })
            .collect();
        Summary {
            format: FORMAT.to_owned(),
            pipeline: plan.name.clone(),
            elapsed_s,
            throughput_rps: per_second(ledger.completed),
            ledger,
            latency_us: Percentiles::of(totals.e2e.as_ref()),
            stages,
            stage_order: plan.pipeline_order().into_iter().map(|s| plan.stages[s].name.clone()).collect(),
            source: None,
            idle_spin_us_per_request: per_request_us(totals.pool_idle_spin_ns.iter().sum(), ledger.completed),
        }
    }

    /// The stages in pipeline order; any not in [`Summary::stage_order`] (an older record's)
    /// after, by name.
    pub fn stages_in_order(&self) -> impl Iterator<Item = (&String, &StageSummary)> {
        let ordered = self.stage_order.iter().filter_map(|name| self.stages.get_key_value(name));
        let rest = self.stages.iter().filter(|(name, _)| !self.stage_order.contains(name));
        ordered.chain(rest)
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.ledger;
        writeln!(
            f,
            "pipeline {}: {:.3} s, {:.0} requests/s completed",
            self.pipeline, self.elapsed_s, self.throughput_rps
        )?;
        writeln!(
            f,
            "ledger: admitted {} = completed {} + rejected {} + failed {} + timed out {} + in flight {}",
            l.admitted, l.completed, l.rejected, l.failed, l.timed_out, l.in_flight
        )?;
        if let Some(fault) = l.fault() {
            writeln!(f, "{fault}")?;
        }
        writeln!(f, "idle spinning: {:.3} us of CPU per completed request", self.idle_spin_us_per_request)?;
        writeln!(f)?;
        write_table_header(f)?;
        for (name, s) in self.stages_in_order() {
            write_table_row(f, name, "queue", &s.queue_wait_us, s.throughput_rps, s.rejected, s.failed)?;
            write_table_row(f, "", "service", &s.service_us, s.throughput_rps, s.rejected, s.failed)?;
            if s.io_wait_us.count > 0 {
                write_table_row(f, "", "io wait", &s.io_wait_us, s.throughput_rps, s.rejected, s.failed)?;
            }
        }
        write_table_row(f, "end to end", "", &self.latency_us, self.throughput_rps, l.rejected, l.failed)?;
        self.write_failures(f)?;
        if let Some(stats) = &self.source {
            writeln!(f)?;
            writeln!(f, "{stats}")?;
        }
        Ok(())
    }
}

/// `ns` spread over `requests`, in microseconds (0 with no requests).
pub(crate) fn per_request_us(ns: u64, requests: u64) -> f64 {
    if requests == 0 {
        0.0
    } else {
        ns as f64 / 1e3 / requests as f64
    }
}

impl Summary {
    /// The failures by stage and error, then the panics, each with its count: what a run that
    /// failed requests failed them with. Nothing when none failed.
    fn write_failures(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (title, of) in [("failures", 0), ("panics", 1)] {
            let mut lines = self.stages.iter().flat_map(|(name, s)| {
                let by_message = if of == 0 { &s.errors } else { &s.panics };
                by_message.iter().map(move |(message, n)| (name, message, n))
            });
            let Some(first) = lines.next() else { continue };
            writeln!(f)?;
            writeln!(f, "{title} (stage: count  message):")?;
            for (stage, message, n) in std::iter::once(first).chain(lines) {
                writeln!(f, "  {stage}: {n}  {}", message.escape_debug())?;
            }
        }
        Ok(())
    }
}

/// The latency table's header, which `seda run` and `seda report` share.
pub fn write_table_header(f: &mut dyn fmt::Write) -> fmt::Result {
    writeln!(
        f,
        "{:<16} {:<8} {:>10} {:>12} {:>9} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "latency (us)", "", "count", "rate/s", "p50", "p90", "p99", "p99.9", "max", "rejected", "failed"
    )
}

/// One row of the latency table: `name` and `what` (the metric) on the left.
pub fn write_table_row(
    f: &mut dyn fmt::Write,
    name: &str,
    what: &str,
    p: &Percentiles,
    rate: f64,
    rejected: u64,
    failed: u64,
) -> fmt::Result {
    writeln!(
        f,
        "{:<16} {:<8} {:>10} {:>12.0} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>8} {:>8}",
        name, what, p.count, rate, p.p50, p.p90, p.p99, p.p999, p.max, rejected, failed
    )
}
