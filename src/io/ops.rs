//! Operations of a stage's own kind ([`seda_stages::AsyncOp`]): the stage's code performs them,
//! on threads or a runtime of its own (the NATS client's, for `nats_request`), and the
//! completion comes back here, to a thread that owns an engine context like the timer thread.
//!
//! The protocol, for one operation:
//!
//! 1. A worker counts it in `Shared::ops_in_flight` (over `io_capacity`: rejected, as a full
//!    timer channel is), parks the request in a [`Parked`] slot, tells this thread its deadline
//!    ([`OpMsg::Started`]) and calls the operation's `start` with a [`Completion`] that holds the
//!    slot.
//! 2. Whichever comes first takes the request out of the slot, under its lock, and ends or
//!    continues it: the completion ([`OpMsg::Ended`], sent by the completion's sink from any
//!    thread), the deadline, or shutdown. What comes second finds the slot empty and does
//!    nothing, so a request ends exactly once; the taker gives back the in-flight count.
//! 3. The change the operation asked for is applied to the request here, a panic in it caught
//!    and counted as the stage's failure, then the request goes on to its next stage's queue.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use seda_stages::{AsyncOp, Completion, CompletionSink, OpResult, StageError};

use crate::clock::now_ns;
use crate::config::StageId;
use crate::engine::{Ctx, Envelope, Outcome, RejectReason};

/// What the operations thread is sent.
pub(crate) enum OpMsg {
    Started(Arc<Parked>),
    Ended(Arc<Parked>, OpResult),
    /// The engine's state changed: look at it (shutdown ends every operation).
    Wake,
}

/// A request waiting for its operation.
pub(crate) struct Parked {
    /// The deadline's key in the thread's table: (deadline, number).
    key: (u64, u64),
    held: Mutex<Option<Held>>,
}

struct Held {
    env: Box<Envelope>,
    /// The stage that started the operation, and where the request goes on.
    stage: StageId,
    next: StageId,
    /// When it started: the time to its end is the stage's I/O wait.
    started_ns: u64,
}

impl Parked {
    fn take(&self) -> Option<Held> {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).take()
    }
}

/// The sink of one operation's [`Completion`]: posts the result to the operations thread.
struct Sink {
    parked: Arc<Parked>,
    tx: flume::Sender<OpMsg>,
}

impl CompletionSink for Sink {
    fn finish(self: Box<Self>, result: OpResult) {
        // After the engine has stopped there is no one to tell, and nothing left to end.
        let _ = self.tx.send(OpMsg::Ended(self.parked, result));
    }
}

/// Step 1, on the worker that ran `stage`: starts `op` for `env`, which continues at `next`.
pub(crate) fn start(ctx: &mut Ctx, env: Box<Envelope>, op: Box<dyn AsyncOp>, stage: StageId, next: StageId, now: u64) {
    let shared = &ctx.shared;
    if shared.ops_in_flight.fetch_add(1, Ordering::AcqRel) >= shared.plan.io_capacity {
        shared.ops_in_flight.fetch_sub(1, Ordering::AcqRel);
        ctx.finish(env, Outcome::Rejected(RejectReason::IoFull { stage }), now);
        return;
    }
    let number = shared.ops_started.fetch_add(1, Ordering::Relaxed);
    let parked = Arc::new(Parked {
        key: (env.deadline_ns, number),
        held: Mutex::new(Some(Held { env, stage, next, started_ns: now })),
    });
    let tx = shared.ops.clone();
    // Unbounded, and bounded all the same: at most `io_capacity` operations are in flight, each
    // with one start and one end message.
    let _ = tx.send(OpMsg::Started(parked.clone()));
    let done = Completion::new(Box::new(Sink { parked, tx }));
    op.start(done);
}

/// The operations thread: steps 2 and 3.
pub(crate) fn ops_thread(mut ctx: Ctx, rx: flume::Receiver<OpMsg>) {
    let mut waiting: BTreeMap<(u64, u64), Arc<Parked>> = BTreeMap::new();
    let interval = ctx.shared.plan.metrics_interval.as_nanos() as u64;
    loop {
        let now = now_ns();
        ctx.roll(now);
        let aborting = ctx.shared.aborting();
        while let Some(entry) = waiting.first_entry().filter(|e| e.key().0 <= now || aborting) {
            if let Some(held) = entry.remove().take() {
                ctx.shared.ops_in_flight.fetch_sub(1, Ordering::AcqRel);
                ctx.rec.io_wait(held.stage, now.saturating_sub(held.started_ns));
                ctx.finish(held.env, Outcome::TimedOut { stage: held.stage }, now);
            }
        }
        ctx.flush();
        if ctx.rec.is_dirty() && now - ctx.rec.published_ns >= interval {
            ctx.publish(now);
        }
        if waiting.is_empty() && ctx.shared.stopped() {
            break;
        }
        let next_deadline = waiting.keys().next().map(|k| k.0).unwrap_or(u64::MAX);
        // Wakes for the next deadline, a message, or at least once a metrics interval.
        let wait = Duration::from_nanos(next_deadline.saturating_sub(now).min(interval.max(1_000_000)));
        let mut msg = match rx.recv_timeout(wait) {
            Ok(msg) => msg,
            Err(flume::RecvTimeoutError::Timeout) => continue,
            Err(flume::RecvTimeoutError::Disconnected) => break,
        };
        loop {
            match msg {
                OpMsg::Started(parked) => {
                    waiting.insert(parked.key, parked);
                }
                OpMsg::Ended(parked, result) => {
                    waiting.remove(&parked.key);
                    if let Some(held) = parked.take() {
                        ctx.shared.ops_in_flight.fetch_sub(1, Ordering::AcqRel);
                        end(&mut ctx, held, result);
                    }
                }
                OpMsg::Wake => {}
            }
            match rx.try_recv() {
                Ok(more) => msg = more,
                Err(_) => break,
            }
        }
    }
}

/// Continues or ends a request whose operation ended (step 3).
fn end(ctx: &mut Ctx, held: Held, result: OpResult) {
    let Held { mut env, stage, next, started_ns } = held;
    let now = now_ns();
    ctx.rec.io_wait(stage, now.saturating_sub(started_ns));
    if now >= env.deadline_ns || ctx.shared.aborting() {
        ctx.finish(env, Outcome::TimedOut { stage }, now);
        return;
    }
    let error = match result {
        OpResult::Completed(apply) => match catch_unwind(AssertUnwindSafe(|| apply(&mut env.req))) {
            Ok(()) => {
                ctx.send(env, next);
                return;
            }
            Err(payload) => StageError::new(crate::engine::panic_message(&*payload)),
        },
        OpResult::Failed { error, status } => {
            if let Some(status) = status {
                env.req.response.status = status;
            }
            error
        }
        OpResult::Dropped => StageError::new("the operation ended without completing"),
    };
    ctx.finish(env, Outcome::Failed { stage, error }, now);
}
