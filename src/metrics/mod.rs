//! Measurements: each thread records into its own [`Recorder`] (no shared lock on the hot path),
//! publishes it on an interval to the [`collector`] thread, which merges; [`Summary`] is what a
//! run reports.

pub mod collector;
mod grid;
pub mod hgrm;
mod histogram;
pub mod hlog;
mod intervals;
mod recorder;
mod recording;
mod source;
mod summary;

/// A stage's latency series, as run records tag them (`<stage>.<tag>`) and as tables name them:
/// the wait in its queue, its handler's time, and the wait for the asynchronous operations it
/// asked for. [`StageStats::series`], [`IntervalStage::series`] and [`StageSummary::series`]
/// give them in this order.
pub const STAGE_SERIES: [(&str, &str); 3] = [("queue_wait", "queue"), ("service", "service"), ("io_wait", "io wait")];

pub use grid::IntervalGrid;
pub use histogram::{new_histogram, Counts, Percentiles, HIGHEST_NS};
pub use intervals::{ControllerReading, EngineSample, Interval, IntervalStage, Intervals};
pub use recorder::{PoolBusy, Publication, Recorder, ReusableCounts, StageCounts, StageStats};
pub use recording::Recording;
pub use source::{LiveStats, SourceStats, StatMetric};
pub(crate) use summary::per_request_us;
pub use summary::{write_table_header, write_table_row, StageSummary, Summary, FORMAT};
