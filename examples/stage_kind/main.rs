//! A binary that is `seda` plus a stage kind of your own: every command (`validate`, `graph`,
//! `run`, `load`, `report`, `top`, `kinds`, `schema`) knows `enrich`.
//!
//! ```sh
//! cargo run --release --example stage_kind -- kinds enrich
//! cargo run --release --example stage_kind -- run examples/stage_kind/enrich.json
//! ```

mod enrich;

use std::process::ExitCode;

use seda::stages::Registry;

fn main() -> ExitCode {
    seda::cli::main_with(Registry::builtin().with_kind::<enrich::Enrich>("enrich"))
}
