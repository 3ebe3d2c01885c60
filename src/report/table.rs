//! The per-run table: per stage (queue wait, service time, and I/O wait for a stage that asks
//! for I/O) and end to end, count, rate, percentiles, rejections and failures, and which stage
//! dominates the tail.
//!
//! The rows are those of `seda run`'s summary, in the same layout; over the whole run they hold
//! the same stats, recomputed from the interval log.

use std::fmt::{self, Write as _};

use crate::metrics::{write_table_header, write_table_row, Percentiles, STAGE_SERIES};

use super::window::Slice;
use crate::record::E2E_TAG;

/// One row: a series' latency with the counters of what it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// The stage, `end to end`, or another series' tag.
    pub name: String,
    /// `queue`, `service` or `io wait` for a stage, empty otherwise.
    pub metric: &'static str,
    pub latency: Percentiles,
    /// Per second: processed for a stage, completed end to end.
    pub rate: f64,
    pub rejected: u64,
    pub failed: u64,
}

impl Row {
    /// Rows of two tables with the same key are the same series.
    pub fn key(&self) -> (&str, &str) {
        (&self.name, self.metric)
    }
}

pub const END_TO_END: &str = "end to end";

/// The stage that dominates the tail: the one whose p99 queue wait plus p99 service time (plus
/// p99 I/O wait, for a stage that asks for I/O) is the largest. Percentiles do not add exactly,
/// so its share of the end-to-end p99 is a guide, not a decomposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Tail {
    pub stage: String,
    pub queue_wait_p99: f64,
    pub service_p99: f64,
    pub io_wait_p99: f64,
    pub e2e_p99: f64,
}

impl Tail {
    fn sum(&self) -> f64 {
        self.queue_wait_p99 + self.service_p99 + self.io_wait_p99
    }
}

impl fmt::Display for Tail {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sum = self.sum();
        write!(
            f,
            "tail: {} (p99 queue wait {:.2} us + p99 service {:.2} us",
            self.stage, self.queue_wait_p99, self.service_p99
        )?;
        if self.io_wait_p99 > 0.0 {
            write!(f, " + p99 io wait {:.2} us", self.io_wait_p99)?;
        }
        write!(f, " = {sum:.2} us")?;
        if self.e2e_p99 > 0.0 {
            write!(f, ", {:.0}% of the end-to-end p99 {:.2} us", 100.0 * sum / self.e2e_p99, self.e2e_p99)?;
        }
        write!(f, ")")
    }
}

/// A run's table over a window.
#[derive(Debug, Clone)]
pub struct RunTable {
    /// What was read and over which window.
    pub heading: String,
    pub rows: Vec<Row>,
    pub tail: Option<Tail>,
}

impl RunTable {
    pub fn of(slice: &Slice<'_>) -> Self {
        let summary = &slice.run.summary;
        let percentiles = |tag: &str| Percentiles::of(slice.histogram(tag));
        let mut rows = Vec::new();
        let (mut rejected, mut failed) = (0, 0);
        for (name, stage) in summary.stages_in_order() {
            let counters = slice.counters.get(name).copied().unwrap_or_default();
            rejected += counters.rejected;
            failed += counters.failed;
            // An I/O wait row only for a stage that asked for I/O in the run.
            let series = STAGE_SERIES.iter().filter(|(tag, _)| *tag != "io_wait" || stage.io_wait_us.count > 0);
            for &(tag_metric, metric) in series {
                rows.push(Row {
                    name: name.clone(),
                    metric,
                    latency: percentiles(&format!("{name}.{tag_metric}")),
                    rate: slice.rate(counters.processed),
                    rejected: counters.rejected,
                    failed: counters.failed,
                });
            }
        }
        // Over the whole run, the ledger's stats: they also count the requests rejected while
        // shutting down, which belong to no stage.
        if slice.window.is_whole_run() {
            (rejected, failed) = (summary.ledger.rejected, summary.ledger.failed);
        }
        let e2e = percentiles(E2E_TAG);
        let rate = slice.rate(e2e.count);
        rows.push(Row { name: END_TO_END.to_owned(), metric: "", latency: e2e, rate, rejected, failed });
        // Series of other origins (a load generator's corrected latency, say), as they are.
        let is_stage_tag = |tag: &str| {
            STAGE_SERIES.iter().any(|(m, _)| {
                tag.strip_suffix(m).and_then(|t| t.strip_suffix('.')).is_some_and(|s| summary.stages.contains_key(s))
            })
        };
        for tag in slice.histograms.keys().filter(|t| *t != E2E_TAG && !is_stage_tag(t)) {
            let latency = percentiles(tag);
            rows.push(Row {
                name: tag.clone(),
                metric: "",
                latency,
                rate: slice.rate(latency.count),
                rejected: 0,
                failed: 0,
            });
        }
        RunTable { heading: heading(slice), tail: tail(&rows), rows }
    }

    pub fn row(&self, name: &str, metric: &str) -> Option<&Row> {
        self.rows.iter().find(|r| r.key() == (name, metric))
    }
}

fn heading(slice: &Slice<'_>) -> String {
    let run = slice.run;
    let summary = &run.summary;
    let mut heading = format!("run {}: pipeline {}, ", run.dir.display(), summary.pipeline);
    if slice.window.is_whole_run() {
        let l = &summary.ledger;
        let _ = write!(
            heading,
            "the whole run, {:.3} s\nledger: admitted {} = completed {} + rejected {} + failed {} + timed out {} + in flight {}",
            summary.elapsed_s, l.admitted, l.completed, l.rejected, l.failed, l.timed_out, l.in_flight
        );
    } else {
        let n = slice.intervals.len();
        let _ = write!(
            heading,
            "{} ({n} interval{} of {:.3} s, {:.3} s in all)",
            slice.window,
            if n == 1 { "" } else { "s" },
            slice.intervals[0].length.as_secs_f64(),
            slice.seconds
        );
    }
    heading
}

fn tail(rows: &[Row]) -> Option<Tail> {
    let e2e_p99 = rows.iter().find(|r| r.name == END_TO_END)?.latency.p99;
    let p99 = |stage: &[Row], metric: &str| stage.iter().find(|r| r.metric == metric).map(|r| r.latency.p99);
    rows.chunk_by(|a, b| a.name == b.name)
        .filter(|stage| stage.iter().any(|r| r.latency.count > 0))
        .filter_map(|stage| {
            Some(Tail {
                stage: stage[0].name.clone(),
                queue_wait_p99: p99(stage, "queue")?,
                service_p99: p99(stage, "service")?,
                io_wait_p99: p99(stage, "io wait").unwrap_or(0.0),
                e2e_p99,
            })
        })
        .max_by(|a, b| a.sum().total_cmp(&b.sum()))
}

impl fmt::Display for RunTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.heading)?;
        writeln!(f)?;
        write_table_header(f)?;
        let mut previous = "";
        for row in &self.rows {
            // A stage's name once, on its first row, as `seda run` prints it.
            let name = if row.name == previous { "" } else { &row.name };
            write_table_row(f, name, row.metric, &row.latency, row.rate, row.rejected, row.failed)?;
            previous = &row.name;
        }
        if let Some(tail) = &self.tail {
            writeln!(f, "{tail}")?;
        }
        Ok(())
    }
}
