//! The metrics thread: merges the publications of every recorder into run totals.

use std::thread::JoinHandle;

use hdrhistogram::Histogram;

use super::recorder::add_counts;
use super::{Publication, StageStats};

/// Everything recorded in a run, merged.
#[derive(Default)]
pub struct Totals {
    pub stages: Vec<StageStats>,
    pub e2e: Option<Histogram<u64>>,
}

impl Totals {
    fn merge(&mut self, p: Publication) {
        for (into, from) in self.stages.iter_mut().zip(&p.stages) {
            into.add(from);
        }
        add_counts(&mut self.e2e, &p.e2e);
    }
}

/// Starts the collector; it returns the totals once every sender is gone.
pub fn spawn(stages: usize) -> (flume::Sender<Publication>, JoinHandle<Totals>) {
    // Bounded: a publication per thread per interval; senders wait if the collector lags.
    let (tx, rx) = flume::bounded::<Publication>(256);
    let handle = std::thread::Builder::new()
        .name("seda-metrics".into())
        .spawn(move || {
            let mut totals = Totals { stages: vec![StageStats::default(); stages], e2e: None };
            for publication in rx.iter() {
                totals.merge(publication);
            }
            totals
        })
        .expect("spawn the metrics thread");
    (tx, handle)
}
