//! A source's own stats (an HTTP source's connections): what the ledger, which counts requests
//! once admitted, does not see. The engine's snapshots, the summary, `/stats` and `/metrics`
//! carry them without knowing the source's type, so a new source brings its stats with it.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One reading of a source's stats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceStats {
    /// The source's kind, as a config names it: `http`.
    pub kind: String,
    /// Counts since the start, by name.
    pub counts: BTreeMap<String, u64>,
    /// Values now (connections open), by name.
    #[serde(default)]
    pub levels: BTreeMap<String, u64>,
    /// Counts kept by each worker of the entry stage's pool, for a source that runs in the
    /// workers (value i: worker i's), by name; empty for a source on a thread of its own.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub per_worker: BTreeMap<String, Vec<u64>>,
}

impl SourceStats {
    /// Count `name`, 0 when the source keeps no such count.
    pub fn count(&self, name: &str) -> u64 {
        self.counts.get(name).copied().unwrap_or(0)
    }
}

impl fmt::Display for SourceStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |stats: &BTreeMap<String, u64>| {
            stats.iter().map(|(name, value)| format!("{} {value}", name.replace('_', " "))).collect::<Vec<_>>()
        };
        write!(f, "{}: {}", self.kind, list(&self.counts).join(", "))?;
        if !self.levels.is_empty() {
            write!(f, "; now: {}", list(&self.levels).join(", "))?;
        }
        for (name, values) in &self.per_worker {
            let values: Vec<String> = values.iter().map(u64::to_string).collect();
            write!(f, "; {}: {}", name.replace('_', " "), values.join(" "))?;
        }
        Ok(())
    }
}

/// How `/metrics` exposes one stat: its Prometheus name, labels and help text.
#[derive(Debug, Clone, Copy)]
pub struct StatMetric {
    /// The stat's name in [`SourceStats::counts`], [`SourceStats::levels`] or
    /// [`SourceStats::per_worker`] (whose samples get a `worker` label besides `labels`).
    pub stat: &'static str,
    pub metric: &'static str,
    pub labels: &'static [(&'static str, &'static str)],
    pub help: &'static str,
}

/// A running source's stats, read while it runs (by the admin listener) and at its end (for
/// the summary).
pub trait LiveStats: Send + Sync {
    fn read(&self) -> SourceStats;

    /// How `/metrics` names each stat. A stat not listed is exposed as
    /// `seda_source_<kind>_<name>` (a count, per worker or not, with `_total`).
    fn metrics(&self) -> &'static [StatMetric] {
        &[]
    }
}
