//! Run records (`seda run CONFIG --record DIR`, `seda load ... --record DIR`): a directory of
//! files that existing tools read, written by [`write_run`] and read back by [`read_run`]. This
//! module is the one home of the format: its file names, its tags and its columns.
//!
//! | file | what |
//! | --- | --- |
//! | `config.json` | the pipeline config, as read |
//! | `summary.json` | the run's summary, as `seda run --json` writes it (its `format` is [`crate::metrics::FORMAT`]) |
//! | `latency.hlog` | HdrHistogram interval log: per interval, `Tag=<stage>.queue_wait`, `Tag=<stage>.service`, `Tag=<stage>.io_wait` (a stage that asks for I/O), `Tag=e2e` (see [`crate::metrics::hlog`]) |
//! | `counters.csv` | per interval and stage: [`COUNTERS_HEADER`] (the most requests queued during the interval; the share of the interval the stage's pool's workers had work, of its most threads; its pool's threads serving and its queue's batch size, as last read in the interval) |
//! | `admission.csv` | with an admission controller: per interval and controlled stage, [`ADMISSION_HEADER`] |
//! | `<stage>.queue_wait.hgrm`, `<stage>.service.hgrm`, `<stage>.io_wait.hgrm` (a stage that asks for I/O), `e2e.hgrm` | percentile spectra of the whole run, in microseconds (see [`crate::metrics::hgrm`]) |

mod read;
mod write;

pub use read::*;
pub use write::{prepare_dir, write_run, write_run_with, Extra, RecordError};

/// The pipeline config, as read.
pub const CONFIG_FILE: &str = "config.json";
/// The run's summary.
pub const SUMMARY_FILE: &str = "summary.json";
/// The HdrHistogram interval log.
pub const HLOG_FILE: &str = "latency.hlog";
/// Per interval and stage counters.
pub const COUNTERS_FILE: &str = "counters.csv";
/// The columns of [`COUNTERS_FILE`].
pub const COUNTERS_HEADER: &str =
    "interval_start_s,stage,processed,rejected,failed,timed_out,queue_depth,pool_utilisation,pool_threads,batch_size";

/// Per interval and stage with an admission controller: its state as last read in the interval.
pub const ADMISSION_FILE: &str = "admission.csv";
/// The columns of [`ADMISSION_FILE`]: `level` is what the controller admits at (a rate per
/// second, a limit, or 1 while codel sheds), `latency_ms` its latency estimate (empty before
/// it has one).
pub const ADMISSION_HEADER: &str = "interval_start_s,stage,controller,level,latency_ms";

/// The tag of end-to-end latency in the interval log, and the name of its spectrum.
pub const E2E_TAG: &str = "e2e";

/// The file of a spectrum: `<series>.hgrm`.
pub fn hgrm_file(series: &str) -> String {
    format!("{series}.hgrm")
}
