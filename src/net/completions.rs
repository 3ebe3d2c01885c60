//! The HTTP source's side of the engine: ended requests come back here, on whichever thread
//! ended them, and wait for the reactor to write their responses.
//!
//! A push and, at most once per reactor turn, a wake (an eventfd write, which the reactor's
//! backend waits on): a worker that ends a batch of requests wakes the reactor once for the batch.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread::ThreadId;

use crossbeam_queue::ArrayQueue;

use crate::engine::{Envelope, HandBack, Origin, Outcome};

/// What a request's connection is answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The response the pipeline built.
    Response,
    /// 503 with `Retry-After`: turned away by admission control, or out of time.
    Unavailable,
    /// 500: a stage failed the request.
    Failed,
}

impl Answer {
    fn of(outcome: &Outcome) -> Answer {
        match outcome {
            Outcome::Completed => Answer::Response,
            Outcome::Rejected(_) | Outcome::TimedOut { .. } => Answer::Unavailable,
            Outcome::Failed { .. } => Answer::Failed,
        }
    }
}

pub(crate) struct Completions {
    /// Bounded by the requests the reactor lets be in flight, so a push never fails.
    ended: ArrayQueue<(Box<Envelope>, Answer)>,
    waker: Arc<dyn Fn() + Send + Sync>,
    /// Set by the first push after the reactor last looked; cleared by the reactor before it
    /// drains, so a push that finds it set knows the reactor will see its request.
    notified: AtomicBool,
    /// The reactor's thread: a request it ends itself needs no wake-up, it drains them next.
    owner: OnceLock<ThreadId>,
}

impl Completions {
    pub fn new(capacity: usize, waker: Arc<dyn Fn() + Send + Sync>) -> Self {
        Completions {
            ended: ArrayQueue::new(capacity),
            waker,
            notified: AtomicBool::new(false),
            owner: OnceLock::new(),
        }
    }

    /// Called by the reactor's thread before it first drains.
    pub fn claim(&self) {
        self.owner.get_or_init(|| std::thread::current().id());
    }

    /// Wakes the reactor's thread (out of its poll). Nothing to do on that thread itself: it
    /// is not in its poll. (In the workers, a reactor's own turn admits requests while its
    /// worker is still listed as sleeping, and the pool's wake-up would otherwise come back to
    /// it as a system call and a spurious wake-up per turn.)
    pub fn wake(&self) {
        if self.owner.get() != Some(&std::thread::current().id()) {
            (self.waker)();
        }
    }

    /// Takes every ended request waiting, in the order they were pushed.
    pub fn drain(&self, mut each: impl FnMut(Box<Envelope>, Answer)) {
        self.notified.store(false, Ordering::SeqCst);
        while let Some((env, answer)) = self.ended.pop() {
            each(env, answer);
        }
    }

    fn push(&self, env: Box<Envelope>, outcome: &Outcome) {
        if self.ended.push((env, Answer::of(outcome))).is_err() {
            unreachable!("the reactor admits no more requests than the completion queue holds");
        }
    }

    fn notify(&self) {
        if self.owner.get() == Some(&std::thread::current().id()) {
            return;
        }
        if !self.notified.swap(true, Ordering::SeqCst) {
            // The reactor only stops listening when it exits, and then nothing is owed.
            (self.waker)();
        }
    }
}

impl Origin for Completions {
    fn finish(&self, env: Box<Envelope>, outcome: &Outcome) {
        self.push(env, outcome);
        self.notify();
    }

    fn hand_back(&self) -> HandBack {
        HandBack::Batches
    }

    fn finish_batch(&self, ended: &mut Vec<(Box<Envelope>, Outcome)>) {
        for (env, outcome) in ended.drain(..) {
            self.push(env, &outcome);
        }
        self.notify();
    }
}
