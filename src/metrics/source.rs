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

#[cfg(test)]
mod tests {
    use super::*;

    fn http(per_worker: Vec<u64>) -> SourceStats {
        SourceStats {
            kind: "http".into(),
            counts: BTreeMap::from([("accepted".into(), per_worker.iter().sum())]),
            levels: BTreeMap::from([("open".into(), 1)]),
            per_worker: BTreeMap::from([("accepted_by_worker".into(), per_worker)]),
        }
    }

    #[test]
    fn counts_per_worker_are_shown_after_the_levels() {
        assert_eq!(http(vec![30, 34]).to_string(), "http: accepted 64; now: open 1; accepted by worker: 30 34");
    }

    #[test]
    fn stats_without_counts_per_worker_read_and_write_as_before() {
        let old = r#"{"kind":"http","counts":{"accepted":2},"levels":{"open":0}}"#;
        let stats: SourceStats = serde_json::from_str(old).unwrap();
        assert!(stats.per_worker.is_empty());
        assert_eq!(serde_json::to_string(&stats).unwrap(), old, "an empty per_worker is left out");
        let with = http(vec![1, 2]);
        let json = serde_json::to_string(&with).unwrap();
        assert!(json.ends_with(r#""per_worker":{"accepted_by_worker":[1,2]}}"#), "{json}");
        assert_eq!(serde_json::from_str::<SourceStats>(&json).unwrap(), with);
    }
}
