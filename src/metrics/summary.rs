//! A run's summary: the ledger, end-to-end latency and every stage's figures, as a table for
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
    /// The source's own figures (an HTTP source's connections), when it keeps any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<super::SourceFigures>,
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
            source: None,
        }
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
        writeln!(f)?;
        write_table_header(f)?;
        for (name, s) in &self.stages {
            write_table_row(f, name, "queue", &s.queue_wait_us, s.throughput_rps, s.rejected, s.failed)?;
            write_table_row(f, "", "service", &s.service_us, s.throughput_rps, s.rejected, s.failed)?;
        }
        write_table_row(f, "end to end", "", &self.latency_us, self.throughput_rps, l.rejected, l.failed)?;
        if let Some(figures) = &self.source {
            writeln!(f)?;
            writeln!(f, "{figures}")?;
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
