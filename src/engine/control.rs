//! The control thread: the pool-size and batching controllers, sampled on a clock of their own.
//!
//! They cannot run in the workers: a pool that needs another thread is one whose threads are
//! all blocked, with none free to notice. The thread is started only when some pool has
//! `max_threads` or some queue an adaptive batch, and stops with the engine.

use std::sync::Arc;

use super::batch_size::{self, BatchSizer};
use super::pool_size::{self, PoolSizer, SAMPLE};
use super::shared::Shared;
use crate::clock::now_ns;
use crate::config::{BatchPlan, Plan, StageId};

/// The controllers of a plan, if it has any.
pub(crate) struct Controllers {
    /// Per sized pool: its index and controller.
    pools: Vec<(usize, PoolSizer)>,
    /// Per queue with an adaptive batch: its stage and controller.
    batches: Vec<(StageId, BatchSizer)>,
}

impl Controllers {
    pub fn of(plan: &Plan) -> Option<Controllers> {
        let pools: Vec<_> = plan
            .pools
            .iter()
            .enumerate()
            .filter_map(|(p, pool)| Some((p, PoolSizer::new(pool.sizing?, pool.threads.len()))))
            .collect();
        let now = now_ns();
        let batches: Vec<_> = plan
            .stages
            .iter()
            .enumerate()
            .filter(|(_, s)| s.queue.batch == BatchPlan::Adaptive)
            .map(|(stage, _)| (stage, BatchSizer::new(0, now)))
            .collect();
        (!pools.is_empty() || !batches.is_empty()).then_some(Controllers { pools, batches })
    }

    /// Samples until the engine stops.
    pub fn run(mut self, shared: Arc<Shared>) {
        let windows_every = (batch_size::WINDOW.as_nanos() / SAMPLE.as_nanos()).max(1) as u32;
        let mut tick = 0u32;
        while !shared.stopped() {
            std::thread::sleep(SAMPLE);
            let now = now_ns();
            for (p, sizer) in &mut self.pools {
                let pool = &shared.pools[*p];
                let Some(size) = &pool.size else { continue };
                let queued = pool.stages.iter().map(|&s| shared.queues[s].depth()).sum();
                let r = pool_size::read(size, queued, now);
                let serving = sizer.sample(r);
                if std::env::var("SEDA_DEBUG_POOL").is_ok() {
                    eprintln!("{r:?} -> {serving}");
                }
                pool_size::apply(size, serving, || pool.sleep.wake_all());
            }
            tick += 1;
            if tick.is_multiple_of(windows_every) {
                for (stage, sizer) in &mut self.batches {
                    let queue = &shared.queues[*stage];
                    queue.set_batch(sizer.sample(queue.taken(), now));
                }
            }
        }
    }
}
