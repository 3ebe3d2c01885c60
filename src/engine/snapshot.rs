//! Live stats of a running engine, for the admin listener and `seda top`.
//!
//! A [`Snapshot`] is read in the order the stats are written, so that a reading never shows
//! an effect before its cause:
//! 1. the metrics merged so far (per-stage counts, latency, pool busy time), under the
//!    collector's lock: a thread publishes what it counted only after the ledger counted it;
//! 2. the queue depths and the admission controllers' states;
//! 3. the ledger, endings before admissions (see [`super::ledger`]).
//!
//! So the ledger never shows fewer endings than the published stats (`completed` is at least
//! the end-to-end count, `rejected` at least the stages' rejections), and
//! `admitted = completed + rejected + failed + timed_out + in_flight` holds in every snapshot.
//! Published stats lag the ledger by up to a metrics interval while work goes on; once the
//! engine is idle, every worker has published and they agree exactly.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use super::shared::Shared;
use super::{AdmissionSnapshot, LedgerCounts};
use crate::clock::now_ns;
use crate::metrics::Percentiles;
use crate::metrics::{LiveStats, SourceStats, StatMetric};

/// One reading of a running engine. Latencies in microseconds, since the engine started.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Snapshot {
    pub pipeline: String,
    /// Seconds since the engine started.
    pub uptime_s: f64,
    /// How often threads publish their stats: the per-stage stats lag by up to this.
    pub metrics_interval_s: f64,
    pub ledger: LedgerCounts,
    /// End to end, from each request's intended start to its completion.
    pub latency_us: Percentiles,
    pub stages: Vec<StageSnapshot>,
    pub pools: Vec<PoolSnapshot>,
    /// The source's own stats (an HTTP source's connections), live, when it keeps any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageSnapshot {
    pub name: String,
    pub kind: String,
    pub pool: String,
    /// Handler calls (a failed one included).
    pub handled: u64,
    pub rejected: u64,
    pub failed: u64,
    pub timed_out: u64,
    /// Requests waiting in the queue now.
    pub queue_depth: u64,
    pub queue_capacity: u64,
    pub queue_wait_us: Percentiles,
    /// Sampled (see `stage_timing_every`), each sample counting for the requests it stands for.
    pub service_us: Percentiles,
    /// From the start of each asynchronous operation the stage asked for to its completion.
    #[serde(default)]
    pub io_wait_us: Percentiles,
    /// The stage's admission controller, if it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admission: Option<AdmissionSnapshot>,
    /// The most requests handed to its queue at a time now (its `batch`, or where the
    /// batching controller has moved it).
    #[serde(default)]
    pub batch_size: u64,
    /// Whether the batching controller moves `batch_size` (`"batch": "adaptive"`).
    #[serde(default)]
    pub batch_adaptive: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PoolSnapshot {
    pub name: String,
    /// Threads serving now (for a pool with `max_threads`, where its controller has put it).
    pub threads: u64,
    /// The most threads it may have: `threads`, unless it grows and shrinks.
    #[serde(default)]
    pub max_threads: u64,
    /// The fewest threads it may have: `threads`, unless it grows and shrinks.
    #[serde(default)]
    pub min_threads: u64,
    pub stages: Vec<String>,
    /// Time its workers had work (handling requests, handing them on), summed over them.
    pub busy_s: f64,
    /// `busy_s` over its most threads' time since the engine started: 1.0 is never idle.
    pub utilisation: f64,
    /// Time its workers spun, idle, looking for work (see the idle policy), summed over them.
    #[serde(default)]
    pub idle_spin_s: f64,
}

/// A handle that takes snapshots of an engine, for another thread (the admin listener).
#[derive(Clone)]
pub struct Observer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) started_ns: u64,
    pub(crate) source: Option<Arc<dyn LiveStats>>,
}

impl Observer {
    /// The same, also reading a source's own stats.
    pub fn with_source(mut self, stats: Arc<dyn LiveStats>) -> Self {
        self.source = Some(stats);
        self
    }

    /// How `/metrics` names the source's stats.
    pub fn source_metrics(&self) -> &'static [StatMetric] {
        self.source.as_ref().map_or(&[], |s| s.metrics())
    }

    /// Takes a snapshot (see the module's order of reading).
    pub fn snapshot(&self) -> Snapshot {
        let plan = &self.shared.plan;
        let (stats, latency_us, pool_busy_ns, pool_idle_spin_ns) = {
            let totals = self.shared.live.lock();
            let stats: Vec<_> = totals
                .stages
                .iter()
                .map(|t| {
                    let latency = [&t.queue_wait, &t.service, &t.io_wait].map(|h| Percentiles::of(h.as_ref()));
                    ((t.processed, t.rejected, t.failed, t.timed_out), latency)
                })
                .collect();
            let (busy, spin) = (totals.pool_busy_ns.clone(), totals.pool_idle_spin_ns.clone());
            (stats, Percentiles::of(totals.e2e.as_ref()), busy, spin)
        };
        let depths: Vec<u64> = self.shared.queues.iter().map(|q| q.depth() as u64).collect();
        let admissions: Vec<Option<AdmissionSnapshot>> =
            self.shared.gates.iter().zip(&depths).map(|(g, &d)| g.as_ref().map(|g| g.snapshot(d as usize))).collect();
        let ledger = self.shared.ledger.counts();
        let uptime_s = now_ns().saturating_sub(self.started_ns) as f64 / 1e9;

        let stages = plan
            .stages
            .iter()
            .zip(stats)
            .zip(depths)
            .zip(admissions)
            .enumerate()
            .map(
                |(
                    id,
                    (
                        (
                            (stage, ((handled, rejected, failed, timed_out), [queue_wait_us, service_us, io_wait_us])),
                            queue_depth,
                        ),
                        admission,
                    ),
                )| {
                    StageSnapshot {
                        name: stage.name.clone(),
                        kind: stage.kind.clone(),
                        pool: plan.pools[stage.pool].name.clone(),
                        handled,
                        rejected,
                        failed,
                        timed_out,
                        queue_depth,
                        queue_capacity: stage.queue.capacity as u64,
                        queue_wait_us,
                        service_us,
                        io_wait_us,
                        admission,
                        batch_size: self.shared.queues[id].batch() as u64,
                        batch_adaptive: stage.queue.batch == crate::config::BatchPlan::Adaptive,
                    }
                },
            )
            .collect();
        let pools = plan
            .pools
            .iter()
            .zip(&self.shared.pools)
            .zip(pool_busy_ns)
            .zip(pool_idle_spin_ns)
            .map(|(((pool, live), busy_ns), idle_spin_ns)| {
                let busy_s = busy_ns as f64 / 1e9;
                let max_threads = pool.threads.len() as u64;
                let capacity_s = max_threads as f64 * uptime_s;
                PoolSnapshot {
                    name: pool.name.clone(),
                    threads: live.serving() as u64,
                    max_threads,
                    min_threads: pool.sizing.map_or(max_threads, |s| s.min_threads as u64),
                    stages: pool.stages.iter().map(|&s| plan.stages[s].name.clone()).collect(),
                    busy_s,
                    // At most 1: workers start counting a moment before the engine's uptime does.
                    utilisation: if capacity_s > 0.0 { (busy_s / capacity_s).min(1.0) } else { 0.0 },
                    idle_spin_s: idle_spin_ns as f64 / 1e9,
                }
            })
            .collect();
        Snapshot {
            pipeline: plan.name.clone(),
            uptime_s,
            metrics_interval_s: plan.metrics_interval.as_secs_f64(),
            ledger,
            latency_us,
            stages,
            pools,
            source: self.source.as_ref().map(|live| live.read()),
        }
    }
}
