//! The live line: once per interval, on standard error, only when it is a terminal.

use std::io::{IsTerminal, Write};

use hdrhistogram::Histogram;

pub struct Progress {
    shown: bool,
}

impl Progress {
    /// A progress line if standard error is a terminal, none otherwise (a log or a pipe gets
    /// only the results).
    pub fn if_terminal() -> Option<Progress> {
        std::io::stderr().is_terminal().then_some(Progress { shown: false })
    }

    /// Rewrites the line: time since the start, the phase, the interval's response rate, the
    /// errors so far and the corrected p99 of the measured requests so far.
    pub fn show(&mut self, elapsed_s: f64, phase: &str, rate: f64, errors: u64, corrected: &Histogram<u64>) {
        let p99 = if corrected.is_empty() {
            "-".to_string()
        } else {
            crate::units::format_ns(corrected.value_at_quantile(0.99))
        };
        let line = format!(
            "{elapsed_s:>6.1}s  {phase:<8} {rate:>10.0} responses/s  errors {errors}  p99 {p99} (corrected, so far)"
        );
        // Carriage return and erase-line: the line stays one line.
        let _ = write!(std::io::stderr().lock(), "\r\x1b[2K{line}");
        self.shown = true;
    }

    /// Clears the line, so the results start on a clean one.
    pub fn clear(&mut self) {
        if self.shown {
            let _ = write!(std::io::stderr().lock(), "\r\x1b[2K");
        }
    }
}
