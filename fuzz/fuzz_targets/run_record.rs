//! The run-record readers (`seda report`: `seda::report::report` over one record directory) on
//! arbitrary file contents.
//!
//! The input is the record's three files, `summary.json`, `latency.hlog` and `counters.csv`,
//! separated by a 0xFF byte (which none of them holds when well formed). They are written to a
//! directory of this process and reported on, as `seda report DIR` would. Checked: it never
//! panics and always answers, a report or an error.

#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use seda::record::{COUNTERS_FILE, HLOG_FILE, SUMMARY_FILE};
use seda::report::{report, Options};

fuzz_target!(|data: &[u8]| {
    let dir = record_dir();
    let mut files = data.splitn(3, |&b| b == 0xFF);
    for name in [SUMMARY_FILE, HLOG_FILE, COUNTERS_FILE] {
        std::fs::write(dir.join(name), files.next().unwrap_or_default()).unwrap();
    }
    let options = Options { runs: vec![dir.clone()], ..Options::default() };
    let _ = report(&options, &mut std::io::sink());
});

/// One directory per process, rewritten for each input.
fn record_dir() -> &'static PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("seda-fuzz-run-record-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    })
}
