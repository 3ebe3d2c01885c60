//! The integration tests: one binary, a module per area.

mod admin;
mod cli;
mod config;
mod configs;
mod engine;
mod generator;
mod http_differential;
mod http_framing;
mod http_model;
mod http_server;
mod load;
mod record;
mod report;
mod support;
