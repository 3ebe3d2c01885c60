//! A run interval by interval, as the collector keeps it when the run is recorded.
//!
//! The intervals are steps of the metrics interval from the engine's start ([`IntervalGrid`]),
//! the same for every thread. Each thread records into one interval at a time and publishes
//! what it recorded before it records anything past that interval's end (a worker with work
//! at its first request past each boundary; one that runs out of work before it sleeps, or on
//! waking), so each publication names its interval and is filed there, however late it comes.
//! What is off: a worker reads the clock once a batch (and after each request it times), so
//! the rest of the batch it was running as a boundary passed (at most 32 requests) counts in
//! the interval the batch started in.
//!
//! An interval stays open for publications still on their way until the collector's clock is
//! [`LATE_PUBLICATIONS`] (or one interval, if longer) past its end; one that comes later still
//! (a thread held up that long inside a stage) goes into the oldest interval still open. An
//! interval that closes is compressed at once (HdrHistogram V2 with deflate, typically a few
//! hundred bytes per histogram), so memory grows by that much per interval, not by the
//! histograms' full size.
//!
//! Queue depths are gauges, not publications: the collector samples them ten times an interval
//! and each interval keeps the highest sample of each stage.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use super::grid::IntervalGrid;
use super::recorder::add_counts;
use super::{Publication, StageStats};
use crate::clock::now_ns;

/// How long an interval stays open after its end for publications still on their way.
pub const LATE_PUBLICATIONS: Duration = Duration::from_secs(1);

/// The intervals of a run.
pub struct Intervals {
    /// Wall-clock time of the intervals' origin (interval 0 starts here).
    pub started: SystemTime,
    /// The same origin as a reading of [`crate::clock::now_ns`], the clock the engine files by.
    pub origin_ns: u64,
    /// The metrics interval.
    pub interval: Duration,
    /// The intervals in which anything was published, in order.
    pub list: Vec<Interval>,
}

/// One metrics interval: counters and compressed histograms (nanoseconds).
pub struct Interval {
    /// Since [`Intervals::started`].
    pub start: Duration,
    pub length: Duration,
    /// Per stage, by stage id.
    pub stages: Vec<IntervalStage>,
    pub e2e: Option<Compressed>,
    /// Per pool: the time its workers had work in this interval, summed over them (ns).
    pub pool_busy_ns: Vec<u64>,
    /// Per pool: its threads serving, as last read in the interval.
    pub pool_threads: Vec<u64>,
}

/// What the collector reads of the engine ten times an interval.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EngineSample {
    /// By stage: the most requests queued since the last reading.
    pub depths: Vec<u64>,
    /// By stage: its admission controller, if it has one.
    pub controllers: Vec<Option<ControllerReading>>,
    /// By stage: the most requests handed to its queue at a time.
    pub batches: Vec<u64>,
    /// By pool: its threads serving.
    pub pool_threads: Vec<u64>,
}

impl EngineSample {
    pub fn new(stages: usize, pools: usize) -> Self {
        EngineSample {
            depths: vec![0; stages],
            controllers: vec![None; stages],
            batches: vec![0; stages],
            pool_threads: vec![0; pools],
        }
    }
}

#[derive(Default)]
pub struct IntervalStage {
    pub processed: u64,
    pub rejected: u64,
    pub failed: u64,
    pub timed_out: u64,
    /// The most requests seen waiting in the queue (the highest of the interval's samples).
    pub queue_depth: u64,
    /// The stage's admission controller as last read in the interval, if it has one.
    pub controller: Option<ControllerReading>,
    /// The most requests handed to its queue at a time, as last read in the interval.
    pub batch_size: u64,
    pub queue_wait: Option<Compressed>,
    pub service: Option<Compressed>,
    pub io_wait: Option<Compressed>,
}

impl IntervalStage {
    /// The histograms of [`super::STAGE_SERIES`], in its order.
    pub fn series(&self) -> [&Option<Compressed>; 3] {
        [&self.queue_wait, &self.service, &self.io_wait]
    }
}

/// A reading of a stage's admission controller.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ControllerReading {
    /// The controller's name in a config (`latency_target`, ...).
    pub controller: &'static str,
    /// What it admits at: a rate in requests per second (`latency_target`, all classes'), a
    /// limit on the requests at the stage (`concurrency_limit`), or 1 while shedding and 0
    /// otherwise (`codel`).
    pub level: f64,
    /// Its latency estimate, in milliseconds, once it has one.
    pub latency_ms: Option<f64>,
}

/// A histogram in HdrHistogram's V2 deflate encoding.
pub struct Compressed(Vec<u8>);

impl Compressed {
    fn of(h: &Option<Histogram<u64>>, serializer: &mut V2DeflateSerializer) -> Option<Compressed> {
        let h = h.as_ref().filter(|h| !h.is_empty())?;
        let mut bytes = Vec::new();
        // Serializing an in-memory u64 histogram does not fail in practice; if it did, the
        // interval would only lack this histogram.
        serializer.serialize(h, &mut bytes).ok()?;
        Some(Compressed(bytes))
    }

    /// The histogram back.
    pub fn decode(&self) -> Histogram<u64> {
        Deserializer::new().deserialize(&mut &self.0[..]).expect("a histogram this process encoded decodes")
    }

    pub fn bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Merged stats of an interval still open.
struct Open {
    stages: Vec<StageStats>,
    e2e: Option<Histogram<u64>>,
    pool_busy_ns: Vec<u64>,
    queue_depth: Vec<u64>,
    controllers: Vec<Option<ControllerReading>>,
    /// The last reading of the batch sizes and pools' threads, once the interval has one.
    levels: Option<(Vec<u64>, Vec<u64>)>,
}

/// The wall-clock time of clock reading `ns` (a moment ago). The two clocks are read side by
/// side, a few times, keeping the pair read closest together: a thread descheduled between
/// them would shift every interval's wall-clock start by as long as it was away.
fn wall_clock_at(ns: u64) -> SystemTime {
    let mut best: Option<(u64, SystemTime, u64)> = None;
    for _ in 0..8 {
        let before = now_ns();
        let wall = SystemTime::now();
        let gap = now_ns() - before;
        if best.is_none_or(|(least, ..)| gap < least) {
            best = Some((gap, wall, before + gap / 2));
        }
    }
    let (_, wall, at) = best.expect("read at least once");
    wall - Duration::from_nanos(at.saturating_sub(ns))
}

/// Files publications into intervals; lives in the collector thread.
pub(crate) struct IntervalBuilder {
    stages: usize,
    pools: usize,
    grid: IntervalGrid,
    /// How many intervals stay open: the current one and those before it that may still get
    /// publications (see [`LATE_PUBLICATIONS`]).
    keep_open: u64,
    started: SystemTime,
    open: BTreeMap<u64, Open>,
    closed: Vec<Interval>,
    serializer: V2DeflateSerializer,
    /// The last reading of the batch sizes (by stage) and pools' threads (by pool).
    last_levels: (Vec<u64>, Vec<u64>),
}

impl IntervalBuilder {
    /// The intervals of `grid`, whose origin is now or a moment ago.
    pub fn new(stages: usize, pools: usize, grid: IntervalGrid) -> Self {
        let late = (LATE_PUBLICATIONS.as_nanos() as u64).div_ceil(grid.every_ns);
        IntervalBuilder {
            stages,
            pools,
            grid,
            keep_open: late.max(1) + 1,
            started: wall_clock_at(grid.origin_ns),
            open: BTreeMap::new(),
            closed: Vec::new(),
            serializer: V2DeflateSerializer::new(),
            last_levels: (vec![0; stages], vec![0; pools]),
        }
    }

    pub fn add(&mut self, p: &Publication) {
        let (open, index) = self.open_at(p.interval_end_ns.saturating_sub(1));
        for (into, from) in open.stages.iter_mut().zip(&p.stages) {
            into.add(from);
        }
        add_counts(&mut open.e2e, &p.e2e);
        if let Some(busy) = p.busy {
            open.pool_busy_ns[busy.pool] += busy.ns;
        }
        self.close_before(index);
    }

    /// Files a reading of the engine taken now: the interval keeps each queue's highest mark,
    /// and the last reading of each controller, batch size and pool's threads.
    pub fn sample_stages(&mut self, sample: &EngineSample) {
        let (open, index) = self.open_at(now_ns());
        for (max, &depth) in open.queue_depth.iter_mut().zip(&sample.depths) {
            *max = (*max).max(depth);
        }
        for (last, reading) in open.controllers.iter_mut().zip(&sample.controllers) {
            if reading.is_some() {
                *last = *reading;
            }
        }
        let levels = (sample.batches.clone(), sample.pool_threads.clone());
        open.levels = Some(levels.clone());
        self.last_levels = levels;
        self.close_before(index);
    }

    /// The open interval for stats taken at `at_ns` (the oldest open one, for stats that
    /// come late), and its index.
    fn open_at(&mut self, at_ns: u64) -> (&mut Open, u64) {
        let mut index = self.grid.index_of(at_ns);
        if let Some((&oldest, _)) = self.open.first_key_value() {
            index = index.max(oldest);
        }
        let (stages, pools) = (self.stages, self.pools);
        let open = self.open.entry(index).or_insert_with(|| Open {
            stages: vec![StageStats::default(); stages],
            e2e: None,
            pool_busy_ns: vec![0; pools],
            queue_depth: vec![0; stages],
            controllers: vec![None; stages],
            levels: None,
        });
        (open, index)
    }

    /// Closes the intervals too old to wait for more, now that interval `index` has begun.
    fn close_before(&mut self, index: u64) {
        while let Some((&oldest, _)) = self.open.first_key_value() {
            if oldest + self.keep_open > index {
                break;
            }
            self.close_oldest();
        }
    }

    fn close_oldest(&mut self) {
        let Some((index, open)) = self.open.pop_first() else { return };
        // An interval closed before any reading fell in it keeps the last one taken.
        let (batches, pool_threads) = open.levels.unwrap_or_else(|| self.last_levels.clone());
        let s = &mut self.serializer;
        let stages = open
            .stages
            .iter()
            .zip(&open.queue_depth)
            .zip(&open.controllers)
            .zip(&batches)
            .map(|(((st, &queue_depth), &controller), &batch_size)| IntervalStage {
                processed: st.processed,
                rejected: st.rejected,
                failed: st.failed,
                timed_out: st.timed_out,
                queue_depth,
                controller,
                batch_size,
                queue_wait: Compressed::of(&st.queue_wait, s),
                service: Compressed::of(&st.service, s),
                io_wait: Compressed::of(&st.io_wait, s),
            })
            .collect();
        self.closed.push(Interval {
            start: Duration::from_nanos(index * self.grid.every_ns),
            length: Duration::from_nanos(self.grid.every_ns),
            stages,
            e2e: Compressed::of(&open.e2e, s),
            pool_busy_ns: open.pool_busy_ns,
            pool_threads,
        });
    }

    pub fn finish(mut self) -> Intervals {
        while !self.open.is_empty() {
            self.close_oldest();
        }
        Intervals {
            started: self.started,
            origin_ns: self.grid.origin_ns,
            interval: Duration::from_nanos(self.grid.every_ns),
            list: self.closed,
        }
    }
}
