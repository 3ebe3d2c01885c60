//! The integration tests: one binary, a module per area.

mod config;
mod engine;
mod support;
