//! A run interval by interval, as the collector keeps it when the run is recorded.
//!
//! Publications are filed by the time they were taken, in steps of the metrics interval from the
//! engine's start, the grid workers publish on: a worker with work
//! publishes at its first request past each boundary, and that publication goes to the interval
//! that just ended; one that runs out of work publishes before it sleeps, into the current one. A publication that arrives after its interval was closed goes
//! into the oldest interval still open. Two intervals stay open (the current one and the one
//! before, for publications still on their way); an interval that closes is compressed at once
//! (HdrHistogram V2 with deflate, typically a few hundred bytes per histogram), so memory grows
//! by that much per interval, not by the histograms' full size.
//!
//! Queue depths are gauges, not publications: the collector samples them ten times an interval
//! and each interval keeps the highest sample of each stage.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use hdrhistogram::serialization::{Deserializer, Serializer, V2DeflateSerializer};
use hdrhistogram::Histogram;

use super::recorder::add_counts;
use super::{Publication, StageStats};
use crate::clock::now_ns;

/// The intervals of a run.
pub struct Intervals {
    /// Wall-clock time of the intervals' origin (interval 0 starts here).
    pub started: SystemTime,
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
}

#[derive(Default)]
pub struct IntervalStage {
    pub processed: u64,
    pub rejected: u64,
    pub failed: u64,
    pub timed_out: u64,
    /// The most requests seen waiting in the queue (the highest of the interval's samples).
    pub queue_depth: u64,
    pub queue_wait: Option<Compressed>,
    pub service: Option<Compressed>,
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
}

/// Files publications into intervals; lives in the collector thread.
pub(crate) struct IntervalBuilder {
    stages: usize,
    pools: usize,
    interval_ns: u64,
    origin_ns: u64,
    started: SystemTime,
    open: BTreeMap<u64, Open>,
    closed: Vec<Interval>,
    serializer: V2DeflateSerializer,
}

impl IntervalBuilder {
    /// Intervals from `origin_ns` (now, or a moment ago), the origin of the workers' grid.
    pub fn new(stages: usize, pools: usize, interval: Duration, origin_ns: u64) -> Self {
        let interval_ns = (interval.as_nanos() as u64).max(1);
        let since_origin = Duration::from_nanos(now_ns().saturating_sub(origin_ns));
        IntervalBuilder {
            stages,
            pools,
            interval_ns,
            origin_ns,
            started: SystemTime::now() - since_origin,
            open: BTreeMap::new(),
            closed: Vec::new(),
            serializer: V2DeflateSerializer::new(),
        }
    }

    pub fn add(&mut self, p: &Publication) {
        let at = if p.closes_interval { p.published_ns.saturating_sub(self.interval_ns) } else { p.published_ns };
        let (open, index) = self.open_at(at);
        for (into, from) in open.stages.iter_mut().zip(&p.stages) {
            into.add(from);
        }
        add_counts(&mut open.e2e, &p.e2e);
        if let Some(busy) = p.busy {
            open.pool_busy_ns[busy.pool] += busy.ns;
        }
        self.close_before(index);
    }

    /// Files a reading of every stage's queue high-water mark (by stage id), taken now.
    pub fn sample_depths(&mut self, depths: &[u64]) {
        let (open, index) = self.open_at(now_ns());
        for (max, &depth) in open.queue_depth.iter_mut().zip(depths) {
            *max = (*max).max(depth);
        }
        self.close_before(index);
    }

    /// The open interval for stats taken at `at_ns` (the oldest open one, for stats that
    /// come late), and its index.
    fn open_at(&mut self, at_ns: u64) -> (&mut Open, u64) {
        let mut index = at_ns.saturating_sub(self.origin_ns) / self.interval_ns;
        if let Some((&oldest, _)) = self.open.first_key_value() {
            index = index.max(oldest);
        }
        let (stages, pools) = (self.stages, self.pools);
        let open = self.open.entry(index).or_insert_with(|| Open {
            stages: vec![StageStats::default(); stages],
            e2e: None,
            pool_busy_ns: vec![0; pools],
            queue_depth: vec![0; stages],
        });
        (open, index)
    }

    /// Closes the intervals older than the one before `index`.
    fn close_before(&mut self, index: u64) {
        while let Some((&oldest, _)) = self.open.first_key_value() {
            if oldest + 1 >= index {
                break;
            }
            self.close_oldest();
        }
    }

    fn close_oldest(&mut self) {
        let Some((index, open)) = self.open.pop_first() else { return };
        let s = &mut self.serializer;
        let stages = open
            .stages
            .iter()
            .zip(&open.queue_depth)
            .map(|(st, &queue_depth)| IntervalStage {
                processed: st.processed,
                rejected: st.rejected,
                failed: st.failed,
                timed_out: st.timed_out,
                queue_depth,
                queue_wait: Compressed::of(&st.queue_wait, s),
                service: Compressed::of(&st.service, s),
            })
            .collect();
        self.closed.push(Interval {
            start: Duration::from_nanos(index * self.interval_ns),
            length: Duration::from_nanos(self.interval_ns),
            stages,
            e2e: Compressed::of(&open.e2e, s),
            pool_busy_ns: open.pool_busy_ns,
        });
    }

    pub fn finish(mut self) -> Intervals {
        while !self.open.is_empty() {
            self.close_oldest();
        }
        Intervals { started: self.started, interval: Duration::from_nanos(self.interval_ns), list: self.closed }
    }
}
