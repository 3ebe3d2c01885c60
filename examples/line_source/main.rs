//! A source of your own: every line of a file (or of standard input, given `-`) is one request
//! through the pipeline of `examples/line_source/pipeline.json` (a SHA-256 of the line), and the
//! program prints each line's digest in line order, then the run's summary.
//!
//! ```sh
//! printf 'abc\nhello\n' | cargo run --release --example line_source -- examples/line_source/pipeline.json -
//! ```

mod lines;

use std::io::BufReader;
use std::process::ExitCode;
use std::sync::Arc;

use lines::{Answers, LineSource};
use seda::run::Runner;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [config, input] = args.as_slice() else {
        eprintln!("usage: line_source CONFIG FILE|-");
        return ExitCode::from(2);
    };
    let plan = match seda::config::load(config.as_ref()) {
        Ok(plan) => plan,
        Err(errors) => {
            eprint!("{errors}");
            return ExitCode::from(3);
        }
    };
    let answers = Arc::new(Answers::default());
    let run = if input == "-" {
        Runner::new(plan).source(LineSource::new(BufReader::new(std::io::stdin()), answers.clone())).run_to_end()
    } else {
        match std::fs::File::open(input) {
            Ok(file) => Runner::new(plan).source(LineSource::new(BufReader::new(file), answers.clone())).run_to_end(),
            Err(e) => {
                eprintln!("line_source: cannot read {input}: {e}");
                return ExitCode::FAILURE;
            }
        }
    };
    let finished = match run {
        Ok(finished) => finished,
        Err(e) => {
            eprintln!("line_source: {e}");
            return ExitCode::FAILURE;
        }
    };
    let mut ended = answers.ended.lock().unwrap().clone();
    ended.sort_by_key(|(line, _, _)| *line);
    for (line, body, completed) in ended {
        let hex: String = body.iter().map(|b| format!("{b:02x}")).collect();
        println!("{line}: {}", if completed { hex } else { "failed".into() });
    }
    eprintln!("{}", finished.summary);
    ExitCode::SUCCESS
}
