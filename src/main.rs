//! The `seda` binary: seda's command line with the built-in stage kinds.

use std::process::ExitCode;

use seda::stages::Registry;

fn main() -> ExitCode {
    seda::cli::main_with(Registry::builtin())
}
