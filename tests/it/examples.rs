//! The examples a user starts from, run as the user would run their code: a source of one's own
//! (`examples/line_source`) and seda embedded in a program (`examples/embedding`). The stage kind
//! of one's own (`examples/stage_kind`) is tested in `user_kind.rs`.

#[path = "../../examples/line_source/lines.rs"]
mod lines;

#[path = "../../examples/embedding/main.rs"]
mod embedding;

use std::io::Cursor;
use std::sync::Arc;

use seda::run::Runner;

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn a_source_of_ones_own_sends_each_line_and_gets_each_answer_back() {
    let plan = seda::config::load(std::path::Path::new("examples/line_source/pipeline.json")).unwrap();
    let answers = Arc::new(lines::Answers::default());
    let input: String = std::iter::once("abc\n".to_string()).chain((1..1000).map(|i| format!("line {i}\n"))).collect();
    let source = lines::LineSource::new(Cursor::new(input.into_bytes()), answers.clone());
    let finished = Runner::new(plan).source(source).run_to_end().unwrap();
    assert_eq!(finished.summary.ledger.completed, 1000);
    assert_eq!(finished.summary.ledger.in_flight, 0);
    let mut ended = answers.ended.lock().unwrap().clone();
    ended.sort_by_key(|(line, _, _)| *line);
    assert_eq!(ended.len(), 1000, "every line's answer came back exactly once");
    let (line, digest, completed) = &ended[0];
    assert_eq!((*line, *completed), (1, true));
    // The first line, `abc`: SHA-256's FIPS 180 test vector.
    assert_eq!(hex(digest), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

#[test]
fn a_pipeline_with_an_external_source_is_refused_by_seda_run_with_a_reason() {
    let plan = seda::config::load(std::path::Path::new("examples/line_source/pipeline.json")).unwrap();
    let err = Runner::new(plan).run_to_end().err().expect("no source to run it with");
    assert!(err.to_string().starts_with("the pipeline's source is `external`"), "{err}");
}

#[test]
fn an_embedding_program_submits_from_its_own_threads_and_reads_the_summary() {
    let (completed, other, summary) = embedding::run_embedded(4, 500);
    assert_eq!((completed, other), (2000, 0));
    assert_eq!(summary.ledger.completed, 2000);
    // Every fourth request of each thread is `big` and goes through `digest`.
    assert_eq!(summary.stages["digest"].processed, 500);
    assert_eq!(summary.stages["check"].processed, 2000);
}
