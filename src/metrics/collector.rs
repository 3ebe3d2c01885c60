//! The metrics thread: merges the publications of every recorder into run totals and, when a
//! run is recorded, into per-interval figures ([`Intervals`]).

use std::thread::JoinHandle;

use hdrhistogram::Histogram;

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;

use super::intervals::{IntervalBuilder, Intervals};
use super::recorder::{add_counts, SpareCounts};
use super::{Counts, Publication, StageStats};

/// Everything recorded in a run, merged.
#[derive(Default)]
pub struct Totals {
    pub stages: Vec<StageStats>,
    pub e2e: Option<Histogram<u64>>,
    /// The run interval by interval, if it was asked for (see [`spawn`]).
    pub intervals: Option<Intervals>,
}

impl Totals {
    fn merge(&mut self, p: Publication, spares: &ArrayQueue<Box<Counts>>) {
        for (into, from) in self.stages.iter_mut().zip(&p.stages) {
            into.add(from);
        }
        add_counts(&mut self.e2e, &p.e2e);
        let counts = p.stages.into_iter().flat_map(|s| [s.queue_wait, s.service]).chain([p.e2e]);
        for mut c in counts.flatten() {
            c.clear();
            let _ = spares.push(c);
        }
    }
}

/// Starts the collector; it returns the totals once every sender is gone. Recorders take their
/// counts from the spares it returns. With `intervals` (the metrics interval), it also keeps
/// the figures of each interval from now on, compressed as each interval closes.
pub fn spawn(
    stages: usize,
    intervals: Option<std::time::Duration>,
) -> (flume::Sender<Publication>, SpareCounts, JoinHandle<Totals>) {
    let mut builder = intervals.map(|interval| IntervalBuilder::new(stages, interval));
    // Bounded: a publication per thread per interval; senders wait if the collector lags.
    let (tx, rx) = flume::bounded::<Publication>(256);
    let spares: SpareCounts = Arc::new(ArrayQueue::new(256));
    let returns = spares.clone();
    let handle = std::thread::Builder::new()
        .name("seda-metrics".into())
        .spawn(move || {
            lower_priority();
            let mut totals = Totals { stages: vec![StageStats::default(); stages], e2e: None, intervals: None };
            for publication in rx.iter() {
                if let Some(builder) = &mut builder {
                    builder.add(&publication);
                }
                totals.merge(publication, &returns);
            }
            totals.intervals = builder.map(IntervalBuilder::finish);
            totals
        })
        .expect("spawn the metrics thread");
    (tx, spares, handle)
}

/// Runs the calling thread at the lowest priority (nice 19): merging can wait, while the pinned
/// workers and sources it shares CPUs with should not be preempted by it.
fn lower_priority() {
    // SAFETY: gettid and setpriority take no pointers; on Linux, PRIO_PROCESS with a thread id
    // sets that thread's nice value alone.
    #[cfg(target_os = "linux")]
    unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, 19);
    }
}
