//! The `seda` binary: seda's command line with the built-in stage kinds.

use std::process::ExitCode;

fn main() -> ExitCode {
    seda::cli::main_with(seda::builtin_kinds())
}
