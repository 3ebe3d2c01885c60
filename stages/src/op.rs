//! Asynchronous operations of a stage's own kind: a request to another service, a database
//! query, anything the engine does not perform itself (it performs timers and file reads).
//!
//! A stage returns `Step::Io(IoOp::Custom(Box::new(op)), output)`. The engine then:
//!
//! 1. counts the operation against the pipeline's `io_capacity` (a full completion layer
//!    rejects the request, as for a timer or a file read);
//! 2. calls [`AsyncOp::start`] on the worker thread, with a [`Completion`] that holds the
//!    request's place: the operation hands its work to a thread or runtime of its own and
//!    returns at once;
//! 3. when the operation calls [`Completion::complete`], applies its change to the request on
//!    the completion layer's thread and sends the request on to the stage wired to `output`;
//!    [`Completion::fail`] fails the request at the stage that started it; a completion
//!    dropped without either fails it too, so a request can never be lost in an operation;
//! 4. if the request's deadline passes first, ends it as timed out; the completion, when it
//!    comes, is then ignored. Each request ends exactly once, whatever the operation does.
//!
//! ```
//! use seda_stages::{AsyncOp, Completion, IoOp, Output, Request, Stage, Step};
//!
//! /// Upper-cases the payload on a thread of its own.
//! struct Shout(Vec<u8>);
//!
//! impl AsyncOp for Shout {
//!     fn start(self: Box<Self>, done: Completion) {
//!         std::thread::spawn(move || {
//!             let loud = self.0.to_ascii_uppercase();
//!             done.complete(move |req: &mut Request| req.payload = loud);
//!         });
//!     }
//! }
//!
//! struct ShoutStage;
//!
//! impl Stage for ShoutStage {
//!     fn handle(&mut self, req: &mut Request) -> Step {
//!         let op = Shout(std::mem::take(&mut req.payload));
//!         Step::Io(IoOp::Custom(Box::new(op)), Output::NEXT)
//!     }
//! }
//! ```

use std::fmt;

use crate::{Request, StageError};

/// An operation a stage starts and something other than the engine performs.
pub trait AsyncOp: Send + 'static {
    /// Starts the operation. Called on a worker thread: it must not block (hand the work to a
    /// thread or runtime of its own). `done` must be completed or failed exactly once; that is
    /// what its methods taking it by value make sure of, and dropping it fails the request.
    fn start(self: Box<Self>, done: Completion);

    /// What the operation is, for errors and debug output.
    fn describe(&self) -> &str {
        "a custom operation"
    }
}

impl fmt::Debug for dyn AsyncOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AsyncOp({})", self.describe())
    }
}

/// A change to make to the request once its operation is done, on the completion layer's
/// thread, before it goes on to its next stage.
pub type ApplyToRequest = Box<dyn FnOnce(&mut Request) + Send>;

/// How an operation ended.
pub enum OpResult {
    /// Done: apply this to the request and go on.
    Completed(ApplyToRequest),
    /// Failed: the request fails at the stage that started the operation, with this error and,
    /// for an HTTP source, this status (500 when none is given).
    Failed { error: StageError, status: Option<u16> },
    /// The operation let go of its completion without completing it.
    Dropped,
}

impl fmt::Debug for OpResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OpResult::Completed(_) => f.write_str("Completed"),
            OpResult::Failed { error, status } => write!(f, "Failed({error}, {status:?})"),
            OpResult::Dropped => f.write_str("Dropped"),
        }
    }
}

/// The engine's side of a [`Completion`]: where its result goes. Implemented by the engine's
/// completion layer (and by tests of a stage kind, to see what its operation does).
pub trait CompletionSink: Send {
    fn finish(self: Box<Self>, result: OpResult);
}

/// The handle an [`AsyncOp`] completes, exactly once. Movable to any thread.
pub struct Completion {
    sink: Option<Box<dyn CompletionSink>>,
}

impl Completion {
    /// A completion whose result goes to `sink`.
    pub fn new(sink: Box<dyn CompletionSink>) -> Self {
        Completion { sink: Some(sink) }
    }

    /// The operation is done: `apply` is run on the request, which then goes on to the output
    /// its stage chose.
    pub fn complete(self, apply: impl FnOnce(&mut Request) + Send + 'static) {
        self.end(OpResult::Completed(Box::new(apply)));
    }

    /// The operation failed: so does the request, at the stage that started it (an HTTP
    /// source answers 500).
    pub fn fail(self, error: StageError) {
        self.end(OpResult::Failed { error, status: None });
    }

    /// [`Completion::fail`] with the HTTP status that says why (504 for a timeout upstream,
    /// 503 for no one to serve it).
    pub fn fail_with_status(self, status: u16, error: StageError) {
        self.end(OpResult::Failed { error, status: Some(status) });
    }

    fn end(mut self, result: OpResult) {
        if let Some(sink) = self.sink.take() {
            sink.finish(result);
        }
    }
}

impl Drop for Completion {
    fn drop(&mut self) {
        if let Some(sink) = self.sink.take() {
            sink.finish(OpResult::Dropped);
        }
    }
}

impl fmt::Debug for Completion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Completion")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    struct Seen(Arc<Mutex<Vec<String>>>);

    impl CompletionSink for Seen {
        fn finish(self: Box<Self>, result: OpResult) {
            let mut req = Request::default();
            let line = match result {
                OpResult::Completed(apply) => {
                    apply(&mut req);
                    format!("completed {}", String::from_utf8_lossy(&req.payload))
                }
                other => format!("{other:?}"),
            };
            self.0.lock().unwrap().push(line);
        }
    }

    #[test]
    fn a_completion_ends_once_and_a_dropped_one_says_so() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let done = || Completion::new(Box::new(Seen(seen.clone())));
        done().complete(|req| req.payload = b"hi".to_vec());
        done().fail_with_status(504, StageError::new("nats timeout"));
        done().fail(StageError::new("broken"));
        drop(done());
        assert_eq!(
            *seen.lock().unwrap(),
            ["completed hi", "Failed(nats timeout, Some(504))", "Failed(broken, None)", "Dropped"]
        );
    }
}
