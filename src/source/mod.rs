//! Sources: where requests come from. So far the in-process [`Generator`].

mod generator;

pub use generator::Generator;
