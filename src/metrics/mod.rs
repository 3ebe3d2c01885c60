//! Measurements: each thread records into its own [`Recorder`] (no shared lock on the hot path),
//! publishes it on an interval to the [`collector`] thread, which merges; [`Summary`] is what a
//! run reports.

pub mod collector;
pub mod hgrm;
mod histogram;
pub mod hlog;
mod intervals;
mod recorder;
mod recording;
mod source;
mod summary;

pub use histogram::{new_histogram, Counts, Percentiles, HIGHEST_NS};
pub use intervals::{Interval, IntervalStage, Intervals};
pub use recorder::{PoolBusy, Publication, Recorder, ReusableCounts, StageCounts, StageStats};
pub use recording::Recording;
pub use source::{LiveStats, SourceStats, StatMetric};
pub(crate) use summary::per_request_us;
pub use summary::{write_table_header, write_table_row, StageSummary, Summary, FORMAT};
