//! A thread's own measurements: per-stage counters and latency counts, and end to end.

use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use hdrhistogram::Histogram;

use super::grid::IntervalGrid;
use super::histogram::Counts;
use super::new_histogram;
use crate::config::StageId;

/// One thread's measurements since it last published. Nothing in it is shared.
pub struct Recorder {
    stages: Vec<StageCounts>,
    e2e: Option<Box<Counts>>,
    /// Anything recorded since the last publication.
    dirty: bool,
    /// When this recorder last published (clock ns).
    pub(crate) published_ns: u64,
    /// The metrics intervals, and the end of the one being recorded: what is recorded before
    /// the recorder is rolled past it ([`Recorder::past`]) belongs to that interval.
    grid: IntervalGrid,
    pub(crate) open_until_ns: u64,
    /// Emptied counts the collector hands back, so that recording allocates nothing.
    reusable: ReusableCounts,
    /// The pool whose worker records here, which `busy_ns` is time of.
    pool: Option<usize>,
    /// Time spent with work (not idle) since the last publication.
    busy_ns: u64,
    /// Time it spun idle (see [`Recorder::idle_spin`]).
    idle_spin_ns: u64,
}

/// Emptied [`Counts`] on their way from the collector back to the recorders.
pub type ReusableCounts = Arc<ArrayQueue<Box<Counts>>>;

/// Counts from the reusable, or new ones.
#[inline]
fn counts<'a>(slot: &'a mut Option<Box<Counts>>, reusable: &ReusableCounts) -> &'a mut Counts {
    if slot.is_none() {
        *slot = Some(fresh_counts(reusable));
    }
    slot.as_deref_mut().expect("just filled")
}

/// Off the hot path: the first record into a slot after a publication.
#[cold]
fn fresh_counts(reusable: &ReusableCounts) -> Box<Counts> {
    reusable.pop().unwrap_or_default()
}

/// One stage's counters and latency counts (nanoseconds), as a thread records them. The
/// counts are made on first use, so a thread that never serves a stage does not carry them.
#[derive(Default)]
pub struct StageCounts {
    pub processed: u64,
    pub rejected: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub queue_wait: Option<Box<Counts>>,
    pub service: Option<Box<Counts>>,
    /// From the start of an asynchronous operation the stage asked for to its completion.
    pub io_wait: Option<Box<Counts>>,
    /// The failures by error message (see [`Failures`]).
    pub failures: Failures,
}

/// Failed requests counted by error message. Messages are the stage's to choose and may vary
/// without end (one per request), so at most [`MAX_ERROR_MESSAGES`] are kept apart; the rest
/// are counted under [`OTHER_ERRORS`]. Failures are the slow path: a short list searched in
/// order is enough.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Failures(pub Vec<(String, u64)>);

/// Distinct error messages kept per stage.
pub const MAX_ERROR_MESSAGES: usize = 32;
/// What failures past [`MAX_ERROR_MESSAGES`] distinct messages are counted as.
pub const OTHER_ERRORS: &str = "(other errors)";

impl Failures {
    /// Counts `n` failures with `message`.
    pub fn add(&mut self, message: &str, n: u64) {
        if let Some(entry) = self.0.iter_mut().find(|(m, _)| m == message) {
            entry.1 += n;
            return;
        }
        let message = if self.0.len() < MAX_ERROR_MESSAGES - 1 { message } else { OTHER_ERRORS };
        match self.0.iter_mut().find(|(m, _)| m == message) {
            Some(entry) => entry.1 += n,
            None => self.0.push((message.to_owned(), n)),
        }
    }

    pub fn merge(&mut self, other: &Failures) {
        for (message, n) in &other.0 {
            self.add(message, *n);
        }
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// What a recorder hands to the collector.
pub struct Publication {
    pub stages: Vec<StageCounts>,
    pub e2e: Option<Box<Counts>>,
    /// The end (clock ns) of the metrics interval it was recorded in: the collector files it
    /// there. A thread rolls its recorder over at each boundary it passes, publishing before it
    /// records anything past it, so a publication holds one interval's work (bar the request
    /// that was running as the boundary passed), however late it is published.
    pub interval_end_ns: u64,
    /// A worker's time with work since its last publication, and its pool.
    pub busy: Option<PoolBusy>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolBusy {
    pub pool: usize,
    pub ns: u64,
    /// Time the worker spun looking for work while idle (part of its idle time, not of `ns`).
    pub idle_spin_ns: u64,
}

/// One stage's stats merged across threads: counters and histograms (nanoseconds).
#[derive(Default, Clone)]
pub struct StageStats {
    pub processed: u64,
    pub rejected: u64,
    pub failed: u64,
    pub timed_out: u64,
    pub queue_wait: Option<Histogram<u64>>,
    pub service: Option<Histogram<u64>>,
    pub io_wait: Option<Histogram<u64>>,
    pub failures: Failures,
}

impl Recorder {
    /// A recorder filling the interval of `grid` that holds `now_ns`.
    pub fn new(stages: usize, reusable: ReusableCounts, grid: IntervalGrid, now_ns: u64) -> Self {
        let stages = (0..stages).map(|_| StageCounts::default()).collect();
        Recorder {
            stages,
            e2e: None,
            dirty: false,
            published_ns: 0,
            grid,
            open_until_ns: grid.end_of(now_ns),
            reusable,
            pool: None,
            busy_ns: 0,
            idle_spin_ns: 0,
        }
    }

    /// Whether `now_ns` is past the interval being recorded: then what was recorded must be
    /// published before anything of `now_ns`'s interval is recorded
    /// ([`crate::engine`]'s `Ctx::roll`), or [`Recorder::skip_to`] it if nothing was.
    #[inline]
    pub fn past(&self, now_ns: u64) -> bool {
        now_ns >= self.open_until_ns
    }

    /// With nothing recorded: records from now on belong to `now_ns`'s interval.
    pub fn skip_to(&mut self, now_ns: u64) {
        self.open_until_ns = self.grid.end_of(now_ns);
    }

    /// Marks this as a worker's recorder, for `pool`: its busy time is published.
    pub fn for_worker_of(&mut self, pool: usize) {
        self.pool = Some(pool);
    }

    /// Time the worker had work: from when it found work after being idle until it ran out.
    #[inline]
    pub fn busy(&mut self, ns: u64) {
        self.busy_ns += ns;
    }

    /// Time the worker spun, idle, looking for work before it found some or slept.
    pub fn idle_spin(&mut self, ns: u64) {
        self.idle_spin_ns += ns;
    }

    /// `n` requests that waited `ns` in `stage`'s queue.
    #[inline]
    pub fn queue_wait_n(&mut self, stage: StageId, ns: u64, n: u32) {
        self.dirty = true;
        counts(&mut self.stages[stage].queue_wait, &self.reusable).record_n(ns, n);
    }

    /// `n` handler calls.
    #[inline]
    pub fn processed_n(&mut self, stage: StageId, n: u64) {
        self.stages[stage].processed += n;
    }

    /// A handler call's time, standing for `weight` calls (see `stage_timing_every`).
    #[inline]
    pub fn service(&mut self, stage: StageId, ns: u64, weight: u32) {
        self.dirty = true;
        counts(&mut self.stages[stage].service, &self.reusable).record_n(ns, weight);
    }

    /// An asynchronous operation `stage` asked for, which took `ns` to complete.
    #[inline]
    pub fn io_wait(&mut self, stage: StageId, ns: u64) {
        self.dirty = true;
        counts(&mut self.stages[stage].io_wait, &self.reusable).record(ns);
    }

    #[inline]
    pub fn e2e(&mut self, ns: u64) {
        self.dirty = true;
        counts(&mut self.e2e, &self.reusable).record(ns);
    }

    pub fn rejected(&mut self, stage: StageId) {
        self.dirty = true;
        self.stages[stage].rejected += 1;
    }

    /// A request that `stage` failed with `message` (a caught panic's is `panic: ...`).
    pub fn failed(&mut self, stage: StageId, message: &str) {
        self.dirty = true;
        self.stages[stage].failed += 1;
        self.stages[stage].failures.add(message, 1);
    }

    pub fn timed_out(&mut self, stage: StageId) {
        self.dirty = true;
        self.stages[stage].timed_out += 1;
    }

    pub fn is_dirty(&self) -> bool {
        self.dirty || self.busy_ns != 0 || self.idle_spin_ns != 0 || self.stages.iter().any(|s| s.processed != 0)
    }

    /// Takes what was recorded, leaving the recorder empty and recording `now_ns`'s interval.
    pub fn take(&mut self, now_ns: u64) -> Publication {
        self.dirty = false;
        self.published_ns = now_ns;
        let interval_end_ns = std::mem::replace(&mut self.open_until_ns, self.grid.end_of(now_ns));
        let fresh = (0..self.stages.len()).map(|_| StageCounts::default()).collect();
        let busy = self.pool.map(|pool| PoolBusy {
            pool,
            ns: std::mem::take(&mut self.busy_ns),
            idle_spin_ns: std::mem::take(&mut self.idle_spin_ns),
        });
        Publication { stages: std::mem::replace(&mut self.stages, fresh), e2e: self.e2e.take(), interval_end_ns, busy }
    }
}

impl StageStats {
    /// The histograms of [`super::STAGE_SERIES`], in its order.
    pub fn series(&self) -> [&Option<Histogram<u64>>; 3] {
        [&self.queue_wait, &self.service, &self.io_wait]
    }

    /// Adds one thread's publication for this stage.
    pub fn add(&mut self, from: &StageCounts) {
        self.processed += from.processed;
        self.rejected += from.rejected;
        self.failed += from.failed;
        self.timed_out += from.timed_out;
        self.failures.merge(&from.failures);
        add_counts(&mut self.queue_wait, &from.queue_wait);
        add_counts(&mut self.service, &from.service);
        add_counts(&mut self.io_wait, &from.io_wait);
    }
}

pub(crate) fn add_counts(into: &mut Option<Histogram<u64>>, from: &Option<Box<Counts>>) {
    if let Some(from) = from.as_deref().filter(|c| !c.is_empty()) {
        from.add_to(into.get_or_insert_with(new_histogram));
    }
}

#[cfg(test)]
mod failure_tests {
    use super::*;

    #[test]
    fn failures_keep_a_bounded_number_of_messages_and_count_the_rest_together() {
        let mut failures = Failures::default();
        for i in 0..100 {
            failures.add(&format!("error {i}"), 2);
        }
        failures.add("error 0", 1);
        assert_eq!(failures.0.len(), MAX_ERROR_MESSAGES);
        assert_eq!(failures.0[0], ("error 0".to_owned(), 3));
        let kept = MAX_ERROR_MESSAGES as u64 - 1;
        assert_eq!(failures.0.last().unwrap(), &(OTHER_ERRORS.to_owned(), 2 * (100 - kept)));
        let mut merged = Failures::default();
        merged.merge(&failures);
        merged.merge(&failures);
        assert_eq!(merged.0.iter().map(|(_, n)| n).sum::<u64>(), 2 * (200 + 1));
    }
}
