//! A run interval by interval, as the collector keeps it when the run is recorded.
//!
//! Publications are filed by the time they were taken, relative to when the collector started,
//! in steps of the metrics interval: a thread publishes about once per interval what it recorded
//! since its last publication. A publication that arrives after its interval was closed goes
//! into the oldest interval still open. Two intervals stay open (the current one and the one
//! before, for publications still on their way); an interval that closes is compressed at once
//! (HdrHistogram V2 with deflate, typically a few hundred bytes per histogram), so memory grows
//! by that much per interval, not by the histograms' full size.

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
}

#[derive(Default)]
pub struct IntervalStage {
    pub processed: u64,
    pub rejected: u64,
    pub failed: u64,
    pub timed_out: u64,
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

/// Merged figures of an interval still open.
struct Open {
    stages: Vec<StageStats>,
    e2e: Option<Histogram<u64>>,
}

/// Files publications into intervals; lives in the collector thread.
pub(crate) struct IntervalBuilder {
    stages: usize,
    interval_ns: u64,
    origin_ns: u64,
    started: SystemTime,
    open: BTreeMap<u64, Open>,
    closed: Vec<Interval>,
    serializer: V2DeflateSerializer,
}

impl IntervalBuilder {
    pub fn new(stages: usize, interval: Duration) -> Self {
        IntervalBuilder {
            stages,
            interval_ns: (interval.as_nanos() as u64).max(1),
            origin_ns: now_ns(),
            started: SystemTime::now(),
            open: BTreeMap::new(),
            closed: Vec::new(),
            serializer: V2DeflateSerializer::new(),
        }
    }

    pub fn add(&mut self, p: &Publication) {
        let mut index = p.published_ns.saturating_sub(self.origin_ns) / self.interval_ns;
        if let Some((&oldest, _)) = self.open.first_key_value() {
            index = index.max(oldest);
        }
        let stages = self.stages;
        let open =
            self.open.entry(index).or_insert_with(|| Open { stages: vec![StageStats::default(); stages], e2e: None });
        for (into, from) in open.stages.iter_mut().zip(&p.stages) {
            into.add(from);
        }
        add_counts(&mut open.e2e, &p.e2e);
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
            .map(|st| IntervalStage {
                processed: st.processed,
                rejected: st.rejected,
                failed: st.failed,
                timed_out: st.timed_out,
                queue_wait: Compressed::of(&st.queue_wait, s),
                service: Compressed::of(&st.service, s),
            })
            .collect();
        self.closed.push(Interval {
            start: Duration::from_nanos(index * self.interval_ns),
            length: Duration::from_nanos(self.interval_ns),
            stages,
            e2e: Compressed::of(&open.e2e, s),
        });
    }

    pub fn finish(mut self) -> Intervals {
        while !self.open.is_empty() {
            self.close_oldest();
        }
        Intervals { started: self.started, interval: Duration::from_nanos(self.interval_ns), list: self.closed }
    }
}
