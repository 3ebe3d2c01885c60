//! Sources: where requests come from. So far the in-process [`Generator`], on a thread of its
//! own or in the entry pool's workers.

mod doorbell;
mod generator;
mod schedule;

pub use generator::{Generator, GeneratorPoller};
