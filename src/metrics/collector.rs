//! The metrics thread: merges the publications of every recorder into run totals, which it
//! keeps readable while the run goes on ([`Live`]), and, when a run is recorded, into
//! per-interval stats ([`Intervals`]), with each stage's queue depth sampled ten times an
//! interval.

use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_queue::ArrayQueue;
use hdrhistogram::Histogram;

use super::grid::IntervalGrid;
use super::intervals::{EngineSample, IntervalBuilder, Intervals};
use super::recorder::{add_counts, ReusableCounts};
use super::{Counts, Publication, StageStats};

/// Everything recorded in a run, merged.
#[derive(Default)]
pub struct Totals {
    pub stages: Vec<StageStats>,
    pub e2e: Option<Histogram<u64>>,
    /// Per pool: the time its workers had work, summed over them (ns).
    pub pool_busy_ns: Vec<u64>,
    /// Time each pool's workers spun idle, looking for work, summed over them.
    pub pool_idle_spin_ns: Vec<u64>,
    /// The run interval by interval, if it was asked for (see [`spawn`]).
    pub intervals: Option<Intervals>,
}

impl Totals {
    fn new(stages: usize, pools: usize) -> Self {
        Totals {
            stages: vec![StageStats::default(); stages],
            e2e: None,
            pool_busy_ns: vec![0; pools],
            pool_idle_spin_ns: vec![0; pools],
            intervals: None,
        }
    }

    fn merge(&mut self, p: Publication, reusable: &ArrayQueue<Box<Counts>>) {
        for (into, from) in self.stages.iter_mut().zip(&p.stages) {
            into.add(from);
        }
        add_counts(&mut self.e2e, &p.e2e);
        if let Some(busy) = p.busy {
            self.pool_busy_ns[busy.pool] += busy.ns;
            self.pool_idle_spin_ns[busy.pool] += busy.idle_spin_ns;
        }
        let counts = p.stages.into_iter().flat_map(|s| [s.queue_wait, s.service, s.io_wait]).chain([p.e2e]);
        for mut c in counts.flatten() {
            c.clear();
            let _ = reusable.push(c);
        }
    }

    /// The stats without the intervals.
    fn stats(&self) -> Totals {
        Totals {
            stages: self.stages.clone(),
            e2e: self.e2e.clone(),
            pool_busy_ns: self.pool_busy_ns.clone(),
            pool_idle_spin_ns: self.pool_idle_spin_ns.clone(),
            intervals: None,
        }
    }
}

/// The totals merged so far, readable while the run goes on. Only the metrics thread and
/// readers (the admin listener) take its lock, never the hot path.
pub struct Live(Mutex<Totals>);

impl Live {
    pub fn new(stages: usize, pools: usize) -> Self {
        Live(Mutex::new(Totals::new(stages, pools)))
    }

    /// The totals as merged so far; the metrics thread waits while the guard is held.
    pub fn lock(&self) -> MutexGuard<'_, Totals> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Reads the engine's levels into an [`EngineSample`] made for its stages and pools.
pub type StageSampler = Box<dyn Fn(&mut EngineSample) + Send>;

/// Emptied counts for recorders to reuse, handed to [`spawn`].
pub fn reusable_counts() -> ReusableCounts {
    Arc::new(ArrayQueue::new(256))
}

/// Starts the collector, merging into `live` (made for the pipeline's stages and pools); it
/// returns the totals once every sender is gone. Recorders take their counts from `reusable`,
/// which it refills. With `intervals` (the grid the recorders publish on), it also keeps the
/// stats of each interval, compressed as each interval closes, and samples queue depths and
/// admission controllers with `sample`.
pub fn spawn(
    live: Arc<Live>,
    reusable: ReusableCounts,
    intervals: Option<IntervalGrid>,
    sample: StageSampler,
) -> (flume::Sender<Publication>, JoinHandle<Totals>) {
    let (stages, pools) = {
        let totals = live.lock();
        (totals.stages.len(), totals.pool_busy_ns.len())
    };
    let mut builder = intervals.map(|grid| IntervalBuilder::new(stages, pools, grid));
    let sample_every = intervals.map(|grid| (Duration::from_nanos(grid.every_ns) / 10).max(Duration::from_millis(1)));
    // Bounded: a publication per thread per interval; senders wait if the collector lags.
    let (tx, rx) = flume::bounded::<Publication>(256);
    let merged = live;
    let handle = std::thread::Builder::new()
        .name("seda-metrics".into())
        .spawn(move || {
            lower_priority();
            let mut reading = EngineSample::new(stages, pools);
            let mut next_sample = Instant::now();
            let file = |builder: &mut Option<IntervalBuilder>, publication: Publication| {
                if let Some(builder) = builder {
                    builder.add(&publication);
                }
                merged.lock().merge(publication, &reusable);
            };
            loop {
                let received = match (sample_every, builder.is_some()) {
                    (Some(every), true) => {
                        // A due reading comes before waiting: a collector that runs late (it
                        // runs at the lowest priority) always finds publications waiting, and
                        // would otherwise never read the queues. What waits now is filed first:
                        // it belongs to the intervals before the reading, which the reading
                        // closes.
                        if Instant::now() >= next_sample {
                            for publication in rx.try_iter().take(rx.len()) {
                                file(&mut builder, publication);
                            }
                            sample(&mut reading);
                            builder.as_mut().expect("recording").sample_stages(&reading);
                            // One reading for any number of missed ticks: the marks cover them.
                            next_sample = (next_sample + every).max(Instant::now());
                        }
                        match rx.recv_deadline(next_sample) {
                            Err(flume::RecvTimeoutError::Timeout) => continue,
                            other => other.ok(),
                        }
                    }
                    _ => rx.recv().ok(),
                };
                let Some(publication) = received else { break };
                file(&mut builder, publication);
            }
            let mut totals = merged.lock().stats();
            totals.intervals = builder.map(IntervalBuilder::finish);
            totals
        })
        .expect("spawn the metrics thread");
    (tx, handle)
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
