//! What an engine that was asked to record hands back at shutdown: its totals, interval by
//! interval, for [`crate::record`] to write as a run record.

use super::collector::Totals;

/// What a recorded run hands to [`write_run`]: the stage names (by id) and the run's totals,
/// with its intervals.
pub struct Recording {
    pub stages: Vec<String>,
    /// Each stage's pool, by stage id.
    pub stage_pools: Vec<usize>,
    /// Each pool's worker count, by pool id.
    pub pool_threads: Vec<usize>,
    pub totals: Totals,
}
