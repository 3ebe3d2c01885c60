//! A stage kind of a user's own (the `enrich` kind of `examples/stage_kind`) registered beside the
//! built-ins gets everything a built-in gets: its params checked with their JSON path, a place in
//! `graph`, `kinds` and `schema`, recorded runs that `report` reads, and `seda load CONFIG`.
//! Also: a kind that needs an HTTP request is refused where the source cannot give one.

#[path = "../../examples/stage_kind/enrich.rs"]
mod enrich;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use seda::config::{load_str_with, validate_with};
use seda::stages::Registry;
use serde_json::{json, Value};

use crate::support::a_cpu;

fn registry() -> Registry {
    Registry::builtin().with_kind::<enrich::Enrich>("enrich")
}

/// A generator that sets `tier`, into `enrich`, whose `gold` output goes through `digest`.
fn config(requests: u64, enrich_params: Value) -> Value {
    json!({
        "name": "enrich",
        "metrics_interval_ms": 50,
        "source": {
            "kind": "generator", "requests": requests, "rate": 20000, "entry": "enrich",
            "attributes": { "tier": { "gold": 1, "standard": 3 } }
        },
        "pools": { "main": { "cpus": [a_cpu()] } },
        "stages": {
            "enrich": { "kind": "enrich", "pool": "main", "params": enrich_params,
                        "next": { "gold": "digest", "standard": "respond" } },
            "digest": { "kind": "hash", "pool": "main", "next": "respond" },
            "respond": { "kind": "respond", "pool": "main" }
        }
    })
}

fn good_params() -> Value {
    json!({ "route_by": "tier", "routes": ["gold", "standard"], "add": { "region": "eu" } })
}

fn errors(config: &Value, registry: &Registry) -> Vec<String> {
    match validate_with(config, registry) {
        Ok(_) => Vec::new(),
        Err(errors) => errors.0.iter().map(ToString::to_string).collect(),
    }
}

#[test]
fn a_user_kind_validates_like_a_built_in_with_the_json_path_of_a_bad_param() {
    assert_eq!(errors(&config(10, good_params()), &registry()), Vec::<String>::new());
    let wrong_type = json!({ "route_by": 5, "routes": ["gold", "standard"] });
    assert_eq!(
        errors(&config(10, wrong_type), &registry()),
        ["$.stages.enrich.params.route_by: bad params for `enrich`: invalid type: integer `5`, expected a string"]
    );
    let unknown = json!({ "route_by": "tier", "routes": ["gold", "standard"], "ad": {} });
    let found = errors(&config(10, unknown), &registry());
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("$.stages.enrich.params.ad: bad params for `enrich`: unknown field `ad`"),
        "{found:?}"
    );
    // The kind's own check, named by the field it reports.
    assert_eq!(
        errors(&config(10, json!({ "route_by": "tier", "routes": [] })), &registry()),
        ["$.stages.enrich.params.routes: bad params for `enrich`: `routes` needs at least one output"]
    );
    // Without the kind registered, the config names an unknown kind.
    assert_eq!(
        errors(&config(10, good_params()), &Registry::builtin())[0],
        format!(
            "$.stages.enrich.kind: unknown stage kind `enrich` (the kinds are {} (`seda kinds` describes each))",
            Registry::builtin().kinds().map(|(n, _)| n).collect::<Vec<_>>().join(", ")
        )
    );
}

#[test]
fn graph_shows_a_user_kind_with_its_named_outputs() {
    let text = config(10, good_params()).to_string();
    let dot = seda::config::to_dot(&load_str_with(&text, &registry()).unwrap());
    assert!(dot.contains("[label=\"{enrich|enrich|queue 4096 reject}\"]"), "{dot}");
    assert!(dot.contains("[label=\"gold\"]") && dot.contains("[label=\"standard\"]"), "{dot}");
}

#[test]
fn a_recorded_run_of_a_user_kind_is_reported_with_its_stage() {
    let text = config(400, good_params()).to_string();
    let plan = load_str_with(&text, &registry()).unwrap();
    let finished = seda::run::Runner::new(plan).record(true).run_to_end().unwrap();
    let (summary, recording) = (finished.summary, finished.recording.unwrap());
    assert_eq!(summary.ledger.completed, 400);
    assert_eq!(summary.ledger.failed, 0);
    let dir = std::env::temp_dir().join(format!("seda-it-user-kind-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    seda::record::write_run(&dir, &text, &summary, &recording).unwrap();
    let options = seda::report::Options { runs: vec![dir.clone()], window: Default::default(), hgrm: None, svg: None };
    let mut out = Vec::new();
    seda::report::report(&options, &mut out).unwrap();
    let out = String::from_utf8(out).unwrap();
    let enrich_line = out.lines().find(|l| l.starts_with("enrich ")).unwrap_or_else(|| panic!("{out}"));
    let count: u64 = enrich_line.split_whitespace().nth(2).unwrap().parse().unwrap();
    assert_eq!(count, 400, "every request was handled by `enrich`: {enrich_line}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn seda_load_drives_a_pipeline_with_a_user_kind_in_process() {
    let dir = std::env::temp_dir().join(format!("seda-it-user-kind-load-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("enrich.json");
    std::fs::write(&path, config(1_000_000, good_params()).to_string()).unwrap();
    let mut options = seda::loadgen::LoadOptions::new(seda::loadgen::Target::Pipeline(path));
    options.rate = Some(2000.0);
    options.duration = Duration::from_millis(500);
    seda::engine::quiet_worker_panics();
    let results = seda::loadgen::load_test(&options, &registry(), &AtomicBool::new(false)).unwrap();
    assert_eq!(results.total.errors, 0);
    assert_eq!(results.total.responses, 1000, "500 ms at 2000/s");
    let engine = results.engine.expect("the engine's summary");
    assert_eq!(engine.ledger.completed, 1000);
    assert!(engine.stages.contains_key("enrich"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_kind_that_needs_an_http_request_is_refused_behind_a_generator() {
    let config = json!({
        "name": "no-http",
        "source": { "kind": "generator", "requests": 10, "entry": "reply" },
        "pools": { "main": { "cpus": [a_cpu()] } },
        "stages": { "reply": { "kind": "send", "pool": "main" } }
    });
    assert_eq!(
        errors(&config, &Registry::builtin()),
        ["$.stages.reply.kind: stage `reply` (send) needs an HTTP request to answer, and the pipeline's source gives \
          its requests none (serve the pipeline from an `http` source, or end it with `respond`)"]
    );
}

#[test]
fn the_schema_gives_each_kind_its_params() {
    let schema = seda::config::schema(&registry());
    let rules = schema["properties"]["stages"]["additionalProperties"]["allOf"].as_array().unwrap();
    let kinds = rules[1]["properties"]["kind"]["enum"].as_array().unwrap();
    assert!(kinds.contains(&json!("enrich")) && kinds.contains(&json!("hash")));
    let enrich = rules.iter().find(|r| r["if"]["properties"]["kind"]["const"] == "enrich").unwrap();
    let params = &enrich["then"]["properties"]["params"];
    let name = params["$ref"].as_str().unwrap().rsplit('/').next().unwrap();
    let required = &schema["$defs"][name]["required"];
    assert_eq!(required, &json!(["route_by", "routes"]));
}
