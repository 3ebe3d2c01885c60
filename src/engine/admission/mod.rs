//! Overload control: a stage's admission controller, which sheds requests before they would
//! miss a latency target, beside the queue's static policy.
//!
//! Each controller is a deterministic state machine that is told the time (no clock inside),
//! so its arithmetic is tested on simulated time: [`latency_target`] (SEDA's response-time
//! controller over a token bucket per service class), [`concurrency_limit`] (an AIMD limit on
//! the requests at the stage) and [`codel`] (controlled delay, at dequeue). [`Gate`] is the
//! stage's shared handle on one of them, which the engine calls:
//! 1. as requests are queued at the stage (`latency_target`, `concurrency_limit`): what it
//!    sheds ends at once, rejected with [`super::RejectReason::Overload`];
//! 2. as a worker takes a batch of the stage (`codel`): the same;
//! 3. as the worker finishes with each request: its response time, from being queued at the
//!    stage to leaving the worker's hands (handed on, sent to I/O, or ended), is a sample.
//!
//! A stage without a controller pays one predictable branch per batch for all this.

mod codel;
mod concurrency_limit;
mod gate;
mod latency_target;
mod window;

pub(crate) use gate::Gate;
pub use gate::{AdmissionSnapshot, ClassSnapshot, Controller};
