//! The completion layer: operations a stage asks for run here, off the worker threads, and
//! their completions put the request back into the queue of the stage that continues it.
//!
//! So far: timers ([`timer`]).

pub(crate) mod timer;

pub(crate) use timer::{TimerEntry, TimerMsg};
