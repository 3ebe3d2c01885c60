//! A thread's own measurements: per-stage counters and histograms, and end-to-end latency.

use hdrhistogram::Histogram;

use super::new_histogram;
use crate::config::StageId;

/// One thread's measurements since it last published.
pub struct Recorder {
    stages: Vec<StageStats>,
    e2e: Option<Histogram<u64>>,
    /// Anything recorded since the last publication.
    dirty: bool,
    /// When this recorder last published (clock ns).
    pub(crate) published_ns: u64,
}

/// One stage's counters and histograms (nanoseconds). Histograms are made on first use, so a
/// thread that never serves a stage does not carry them.
#[derive(Default, Clone)]
pub struct StageStats {
    pub processed: u64,
    pub rejected: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub queue_wait: Option<Histogram<u64>>,
    pub service: Option<Histogram<u64>>,
}

/// What a recorder hands to the collector.
pub struct Publication {
    pub stages: Vec<StageStats>,
    pub e2e: Option<Histogram<u64>>,
}

impl Recorder {
    pub fn new(stages: usize) -> Self {
        Recorder {
            stages: vec![StageStats::default(); stages],
            e2e: None,
            dirty: false,
            published_ns: 0,
        }
    }

    #[inline]
    pub fn queue_wait(&mut self, stage: StageId, ns: u64) {
        self.dirty = true;
        self.stages[stage]
            .queue_wait
            .get_or_insert_with(new_histogram)
            .saturating_record(ns);
    }

    /// A handler call: counted, and its time recorded.
    #[inline]
    pub fn service(&mut self, stage: StageId, ns: u64) {
        let s = &mut self.stages[stage];
        s.processed += 1;
        s.service
            .get_or_insert_with(new_histogram)
            .saturating_record(ns);
    }

    #[inline]
    pub fn e2e(&mut self, ns: u64) {
        self.dirty = true;
        self.e2e
            .get_or_insert_with(new_histogram)
            .saturating_record(ns);
    }

    pub fn rejected(&mut self, stage: StageId) {
        self.dirty = true;
        self.stages[stage].rejected += 1;
    }

    pub fn failed(&mut self, stage: StageId) {
        self.dirty = true;
        self.stages[stage].failed += 1;
    }

    pub fn timed_out(&mut self, stage: StageId) {
        self.dirty = true;
        self.stages[stage].timed_out += 1;
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// Takes what was recorded, leaving the recorder empty.
    pub fn take(&mut self, now_ns: u64) -> Publication {
        self.dirty = false;
        self.published_ns = now_ns;
        let n = self.stages.len();
        Publication {
            stages: std::mem::replace(&mut self.stages, vec![StageStats::default(); n]),
            e2e: self.e2e.take(),
        }
    }
}

impl StageStats {
    pub fn merge(&mut self, other: &StageStats) {
        self.processed += other.processed;
        self.rejected += other.rejected;
        self.failed += other.failed;
        self.timed_out += other.timed_out;
        merge_histogram(&mut self.queue_wait, &other.queue_wait);
        merge_histogram(&mut self.service, &other.service);
    }
}

pub(crate) fn merge_histogram(into: &mut Option<Histogram<u64>>, from: &Option<Histogram<u64>>) {
    if let Some(from) = from {
        // Same bounds on both sides, so adding cannot fail.
        into.get_or_insert_with(new_histogram)
            .add(from)
            .expect("histograms share bounds");
    }
}
