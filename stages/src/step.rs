//! What a handler returns: where the request goes next.

use std::borrow::Cow;
use std::fmt;
use std::time::Duration;

use crate::{AsyncOp, FileOp};

/// One of a stage's outputs, by index. A stage with a single successor uses [`Output::NEXT`];
/// a branching stage numbers its outputs in the order of [`crate::Outputs::Named`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Output(pub u16);

impl Output {
    /// The only output of a stage with a single successor.
    pub const NEXT: Output = Output(0);

    /// Back to this same stage, for a stage that starts an I/O operation and handles its
    /// completion itself (the state travels with the request). Only for [`Step::Io`].
    pub const SELF: Output = Output(u16::MAX);
}

/// The outcome of [`crate::Stage::handle`]. An explicit one-byte tag (no niche in the
/// operations' fields) makes telling the variants apart one compare on the hot path.
#[derive(Debug)]
#[repr(u8)]
pub enum Step {
    /// Go on to the stage wired to this output.
    Next(Output),
    /// Start an asynchronous operation; when it completes, continue at this output.
    Io(IoOp, Output),
    /// The request ends, completed, with `req.response` as its answer.
    Respond,
    /// The request ends, failed at this stage.
    Fail(StageError),
}

/// An asynchronous operation the engine performs on a stage's behalf.
#[derive(Debug)]
#[non_exhaustive]
pub enum IoOp {
    /// Wait this long, off any worker thread.
    Timer(Duration),
    /// Read a file on the completion layer's file-I/O threads.
    ReadFile(FileOp),
    /// An operation of the stage's own kind, which it performs itself and completes through
    /// the handle it is given (see [`crate::AsyncOp`]).
    Custom(Box<dyn AsyncOp>),
}

/// Why a stage failed a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageError(pub Cow<'static, str>);

impl StageError {
    pub fn new(message: impl Into<Cow<'static, str>>) -> Self {
        StageError(message.into())
    }
}

impl fmt::Display for StageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StageError {}
