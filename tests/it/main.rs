//! The integration tests: one binary, a module per area.

mod admin;
mod cli;
mod config;
mod config_runs;
mod configs;
mod documented;
mod engine;
mod examples;
mod framing_props;
mod generator;
mod http_differential;
mod http_framing;
mod http_model;
mod http_server;
mod ledger;
mod load;
mod load_requests;
mod load_tls;
mod overload;
mod record;
mod report;
mod stage_order;
mod support;
mod user_kind;
