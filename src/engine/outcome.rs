//! How a request ends, and the origins that are told.

use seda_stages::StageError;

use super::Envelope;
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
    /// The engine stopped admitting.
    ShuttingDown,
}

impl RejectReason {
    pub fn stage(&self) -> Option<StageId> {
        match *self {
            RejectReason::QueueFull { stage }
            | RejectReason::BlockTimeout { stage }
            | RejectReason::DroppedOldest { stage }
            | RejectReason::IoFull { stage } => Some(stage),
            RejectReason::ShuttingDown => None,
        }
    }
}

/// Where requests come from, and where they are handed back when they end, exactly once each.
/// Called on whichever engine thread ended the request: keep it short and non-blocking.
pub trait Origin: Send + Sync {
    fn finish(&self, env: Box<Envelope>, outcome: &Outcome);

    /// Whether this origin takes ended requests back in batches ([`Origin::finish_batch`]):
    /// for an origin that only recycles them, where a moment's delay costs nothing and a
    /// cross-thread hand-off per request costs much.
    fn batches(&self) -> bool {
        false
    }

    /// Up to a batch of ended requests at once, for an origin whose `batches` is true. The
    /// engine hands over what a worker has collected whenever it has a batch, and whenever it
    /// runs out of work.
    fn finish_batch(&self, ended: &mut Vec<(Box<Envelope>, Outcome)>) {
        for (env, outcome) in ended.drain(..) {
            self.finish(env, &outcome);
        }
    }
}
