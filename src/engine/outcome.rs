//! How a request ends, and the origins that are told.

use seda_stages::StageError;

use super::{Controller, Envelope};
use crate::config::StageId;

/// The one way an admitted request ended.
#[derive(Debug, Clone, PartialEq, Eq)]
#[repr(u8)]
pub enum Outcome {
    Completed,
    Rejected(RejectReason),
    /// A stage failed it; a panic in the handler is a failure too.
    Failed {
        stage: StageId,
        error: StageError,
    },
    /// Its deadline passed (or shutdown's drain timeout did) before it ended.
    TimedOut {
        stage: StageId,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectReason {
    /// The stage's queue was full and its policy is `reject`.
    QueueFull { stage: StageId },
    /// The queue stayed full for the whole `block` timeout.
    BlockTimeout { stage: StageId },
    /// A newer request took its place in a full `drop_oldest` queue.
    DroppedOldest { stage: StageId },
    /// The completion layer had `io_capacity` operations in flight already.
    IoFull { stage: StageId },
    /// The stage's admission controller shed it: the stage was overloaded.
    Overload { stage: StageId, controller: Controller },
    /// The engine stopped admitting.
    ShuttingDown,
}

impl RejectReason {
    pub fn stage(&self) -> Option<StageId> {
        match *self {
            RejectReason::QueueFull { stage }
            | RejectReason::BlockTimeout { stage }
            | RejectReason::DroppedOldest { stage }
            | RejectReason::IoFull { stage }
            | RejectReason::Overload { stage, .. } => Some(stage),
            RejectReason::ShuttingDown => None,
        }
    }
}

/// How an origin takes its ended requests back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandBack {
    /// One at a time, with its outcome, as each ends ([`Origin::finish`]).
    Each,
    /// In batches, with their outcomes ([`Origin::finish_batch`]): for an origin where a
    /// moment's delay costs nothing and a cross-thread hand-off per request costs much.
    Batches,
    /// In batches, the requests alone ([`Origin::recycle`]): for an origin that only reuses
    /// them, their outcomes being counted by the engine already. The cheapest: no outcome is
    /// kept per request, and a batch can change hands as a whole vector.
    Recycle,
}

/// Where requests come from, and where they are handed back when they end, exactly once each.
/// Called on whichever engine thread ended the request: keep it short and non-blocking.
pub trait Origin: Send + Sync {
    fn finish(&self, env: Box<Envelope>, outcome: &Outcome);

    /// How this origin takes ended requests back; read once, when the engine starts.
    fn hand_back(&self) -> HandBack {
        HandBack::Each
    }

    /// Up to a batch of ended requests at once, for a [`HandBack::Batches`] origin. The engine
    /// hands over what a worker has collected whenever it has a batch, and whenever it runs
    /// out of work.
    fn finish_batch(&self, ended: &mut Vec<(Box<Envelope>, Outcome)>) {
        for (env, outcome) in ended.drain(..) {
            self.finish(env, &outcome);
        }
    }

    /// Up to a batch of ended requests, for a [`HandBack::Recycle`] origin, handed over as
    /// [`Origin::finish_batch`]. It takes them all, leaving `ended` empty: it may swap in an
    /// empty vector of its own.
    fn recycle(&self, ended: &mut Vec<Box<Envelope>>) {
        ended.clear();
    }
}
