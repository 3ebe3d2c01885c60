//! The integration tests: one binary, a module per area.

mod cli;
mod config;
mod configs;
mod engine;
mod http_framing;
mod load;
mod record;
mod support;
