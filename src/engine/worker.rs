//! A pinned worker thread serving one pool's stages.
//!
//! The loop:
//! 1. take a request: from the local deque, else a batch from one of the pool's stage queues
//!    (rotating which first), else a batch from a sibling's local deque;
//! 2. run it through its stage and on through every successor on the same pool, with no
//!    hand-off; a successor on another pool gets it through the outbox (batched), an I/O step
//!    through the completion layer, and an ending through `Ctx::finish`;
//! 3. with nothing to take: hand over the outboxes, spin briefly, yield, then sleep on the
//!    pool's [`super::Sleep`] until a producer wakes it.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use crossbeam_deque::Worker as LocalQueue;
use seda_stages::{Stage, StageError, Step};

use super::queue::steal_from;
use super::runtime::{EngineError, WorkerInfo};
use super::{panics, Ctx, Envelope, Outcome};
use crate::clock::now_ns;
use crate::config::StageId;

/// How long an idle worker spins, then yields, before it sleeps.
const SPIN: Duration = Duration::from_micros(50);
const YIELD: Duration = Duration::from_micros(500);

pub(crate) struct Worker {
    ctx: Ctx,
    pool: usize,
    index: usize,
    local: LocalQueue<Box<Envelope>>,
    /// Stage instances by stage id; `Some` for this pool's stages.
    instances: Vec<Option<Box<dyn Stage>>>,
    /// Which of the pool's stage queues to look at first.
    rotate: usize,
    publish_every_ns: u64,
}

impl Worker {
    pub fn new(ctx: Ctx, pool: usize, index: usize, local: LocalQueue<Box<Envelope>>) -> Self {
        let plan = &ctx.shared.plan;
        let instances = plan
            .stages
            .iter()
            .map(|s| (s.pool == pool).then(|| s.factory.instance(index)))
            .collect();
        let publish_every_ns = plan.metrics_interval.as_nanos() as u64;
        Worker {
            ctx,
            pool,
            index,
            local,
            instances,
            rotate: 0,
            publish_every_ns,
        }
    }

    pub fn run(mut self, ready: flume::Sender<Result<WorkerInfo, EngineError>>) {
        let _ = ready.send(self.pin());
        drop(ready);
        loop {
            if let Some(env) = self.take() {
                self.process(env);
                continue;
            }
            self.ctx.flush();
            if let Some(env) = self.wait_for_work() {
                self.process(env);
                continue;
            }
            if self.ctx.shared.stopped() {
                break;
            }
            if self.ctx.rec.is_dirty() {
                self.ctx.publish(now_ns());
            }
            let shared = self.ctx.shared.clone();
            let pool = &shared.pools[self.pool];
            pool.sleep
                .sleep(self.index, || shared.stopped() || self.has_work());
        }
        self.ctx.flush();
        self.ctx.publish(now_ns());
    }

    fn pin(&self) -> Result<WorkerInfo, EngineError> {
        let plan = &self.ctx.shared.plan;
        let pool = &plan.pools[self.pool];
        let cpu = pool.threads[self.index].cpu;
        if !core_affinity::set_for_current(core_affinity::CoreId { id: cpu }) {
            return Err(EngineError::Pin {
                pool: pool.name.clone(),
                index: self.index,
                cpu,
            });
        }
        Ok(WorkerInfo {
            pool: pool.name.clone(),
            index: self.index,
            cpu,
            allowed_cpus: allowed_cpus(),
        })
    }

    /// Step 1 of the loop.
    #[inline]
    fn take(&mut self) -> Option<Box<Envelope>> {
        if let Some(env) = self.local.pop() {
            return Some(env);
        }
        let shared = &self.ctx.shared;
        let pool = &shared.pools[self.pool];
        let n = pool.stages.len();
        for i in 0..n {
            let stage = pool.stages[(self.rotate + i) % n];
            let queue = &shared.queues[stage];
            if queue.is_empty() {
                continue;
            }
            if let Some(env) = queue.steal_into(&self.local) {
                self.rotate = self.rotate.wrapping_add(1);
                // More left for a sibling: make sure one is awake to take it.
                if !self.local.is_empty() || !queue.is_empty() {
                    pool.sleep.wake_one();
                }
                return Some(env);
            }
        }
        pool.stealers
            .iter()
            .enumerate()
            .filter(|&(i, s)| i != self.index && !s.is_empty())
            .find_map(|(_, s)| steal_from(s, &self.local))
    }

    fn has_work(&self) -> bool {
        let shared = &self.ctx.shared;
        let pool = &shared.pools[self.pool];
        pool.stages.iter().any(|&s| !shared.queues[s].is_empty())
            || pool.stealers.iter().any(|s| !s.is_empty())
    }

    /// Spins, then yields, looking for work before the worker sleeps.
    #[cold]
    fn wait_for_work(&mut self) -> Option<Box<Envelope>> {
        let start = now_ns();
        let (spin, yield_) = (SPIN.as_nanos() as u64, YIELD.as_nanos() as u64);
        loop {
            if let Some(env) = self.take() {
                return Some(env);
            }
            if self.ctx.shared.stopped() {
                return None;
            }
            let idle = now_ns() - start;
            if idle < spin {
                for _ in 0..16 {
                    std::hint::spin_loop();
                }
            } else if idle < spin + yield_ {
                std::thread::yield_now();
            } else {
                return None;
            }
        }
    }

    /// Step 2: runs `env` through its stage and every same-pool successor.
    fn process(&mut self, mut env: Box<Envelope>) {
        let mut stage = env.stage;
        let mut now = now_ns();
        self.ctx
            .rec
            .queue_wait(stage, now.saturating_sub(env.enqueued_ns));
        loop {
            if now >= env.deadline_ns || self.ctx.shared.aborting() {
                return self.ctx.finish(env, Outcome::TimedOut { stage }, now);
            }
            let instance = self.instances[stage]
                .as_mut()
                .expect("a pool runs only its own stages");
            let step = catch_unwind(AssertUnwindSafe(|| instance.handle(&mut env.req)));
            let end = now_ns();
            self.ctx.rec.service(stage, end - now);
            match step {
                Ok(Step::Next(out)) => match self.ctx.shared.routes[stage].get(out.0 as usize) {
                    Some(&(next, true)) => {
                        env.stage = next;
                        self.ctx.rec.queue_wait(next, 0);
                        stage = next;
                        now = end;
                        continue;
                    }
                    Some(&(next, false)) => {
                        env.stage = next;
                        env.enqueued_ns = end;
                        self.ctx.send(env);
                    }
                    None => self.no_such_output(env, stage, out.0, end),
                },
                Ok(Step::Io(op, out)) => match self.ctx.shared.routes[stage].get(out.0 as usize) {
                    Some(&(next, _)) => self.ctx.start_io(env, op, next, end),
                    None => self.no_such_output(env, stage, out.0, end),
                },
                Ok(Step::Respond) => self.ctx.finish(env, Outcome::Completed, end),
                Ok(Step::Fail(error)) => {
                    self.ctx.finish(env, Outcome::Failed { stage, error }, end)
                }
                Err(payload) => {
                    // The instance may be left half-updated: replace it before its next call.
                    self.instances[stage] = Some(
                        self.ctx.shared.plan.stages[stage]
                            .factory
                            .instance(self.index),
                    );
                    let error = StageError::new(panics::message(&*payload));
                    self.ctx.finish(env, Outcome::Failed { stage, error }, end);
                }
            }
            if end - self.ctx.rec.published_ns >= self.publish_every_ns {
                self.ctx.publish(end);
            }
            return;
        }
    }

    #[cold]
    fn no_such_output(&mut self, env: Box<Envelope>, stage: StageId, out: u16, now: u64) {
        let error = StageError::new(format!(
            "the handler chose output {out}, which the stage does not have"
        ));
        self.ctx.finish(env, Outcome::Failed { stage, error }, now);
    }
}

/// The CPUs the calling thread may run on, as the kernel reports them.
fn allowed_cpus() -> String {
    std::fs::read_to_string("/proc/thread-self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("Cpus_allowed_list:")
                    .map(|v| v.trim().to_string())
            })
        })
        .unwrap_or_default()
}
