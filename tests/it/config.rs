//! Config validation: every error with its JSON path, and the plan a valid config becomes.
//!
//! Every test validates against a machine with CPUs 0 and 1, and most compare the complete
//! list of errors, so that a spurious extra error fails the test as well as a missing one.

use seda::config::{to_dot, validate_with_cpus, ConfigError, ConfigErrors, Plan, Rate, SourcePlacement, WhenFull};
use serde_json::{json, Value};

/// The CPUs of the machine every test validates against.
const CPUS: &[usize] = &[0, 1];

/// The errors of a config that must not validate.
fn errors(config: &Value) -> ConfigErrors {
    match validate_with_cpus(config, CPUS) {
        Ok(_) => panic!("the config validated: {config:#}"),
        Err(e) => e,
    }
}

/// The plan of a config that must validate.
fn valid(config: &Value) -> Plan {
    validate_with_cpus(config, CPUS).unwrap_or_else(|e| panic!("{e}"))
}

fn error(path: &str, message: &str, hint: Option<&str>) -> ConfigError {
    ConfigError { path: path.into(), message: message.into(), hint: hint.map(str::to_string) }
}

/// A pipeline entered at stage `parse`, with `stages` and no named pools.
fn pipeline(stages: Value) -> Value {
    json!({
        "name": "test",
        "source": { "kind": "generator", "requests": 10, "entry": "parse" },
        "stages": stages,
    })
}

/// The smallest valid pipeline: `parse` (noop) -> `respond`.
fn minimal() -> Value {
    pipeline(json!({
        "parse": { "kind": "noop", "next": "respond" },
        "respond": { "kind": "respond" }
    }))
}

/// A pipeline whose stage `parse` is `stage`, continuing at `respond`.
fn with_parse(stage: Value) -> Value {
    let mut config = minimal();
    config["stages"]["parse"] = stage;
    config
}

// ---- stage kinds and params ----

#[test]
fn unknown_stage_kind_suggests_the_nearest_kind() {
    let config = with_parse(json!({ "kind": "hsah", "next": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.parse.kind", "unknown stage kind `hsah`", Some("did you mean `hash`?"))]
    );
}

#[test]
fn unknown_stage_kind_far_from_every_kind_lists_the_kinds() {
    let config = with_parse(json!({ "kind": "zzzzzzzz", "next": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.parse.kind",
            "unknown stage kind `zzzzzzzz`",
            Some(
                "the kinds are block, chaos, delay, file_cache, gzip, hash, http_route, jetstream_publish, nats_request, \
                 noop, respond, respond_static, route, send, spin, static_file (`seda kinds` describes each)"
            )
        )]
    );
}

#[test]
fn chaos_probability_above_one_is_reported_at_the_param() {
    let config = with_parse(json!({ "kind": "chaos", "params": { "fail": 1.5 }, "next": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.parse.params.fail",
            "bad params for `chaos`: `fail` is a probability in [0, 1], not 1.5",
            None
        )]
    );
}

#[test]
fn chaos_negative_panic_probability_is_reported_at_the_param() {
    let config = with_parse(json!({ "kind": "chaos", "params": { "panic": -0.25 }, "next": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.parse.params.panic",
            "bad params for `chaos`: `panic` is a probability in [0, 1], not -0.25",
            None
        )]
    );
}

#[test]
fn chaos_fail_and_panic_adding_up_past_one_are_refused() {
    let config = with_parse(json!({ "kind": "chaos", "params": { "fail": 0.6, "panic": 0.5 }, "next": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.parse.params.fail", "bad params for `chaos`: `fail` + `panic` must be at most 1", None)]
    );
}

#[test]
fn hash_with_zero_rounds_is_reported_at_the_param() {
    let config = with_parse(json!({ "kind": "hash", "params": { "rounds": 0 }, "next": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.parse.params.rounds", "bad params for `hash`: `rounds` must be at least 1", None)]
    );
}

#[test]
fn delay_of_zero_micros_is_reported_at_the_param() {
    let config = with_parse(json!({ "kind": "delay", "params": { "micros": 0 }, "next": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.parse.params.micros",
            "bad params for `delay`: `micros` must be at least 1 (use `noop` for no delay)",
            None
        )]
    );
}

#[test]
fn route_without_weights_or_attribute_is_refused() {
    let config = with_parse(json!({ "kind": "route", "params": {}, "next": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.parse.params.weights",
            "bad params for `route`: give `weights` or `attribute` to route by",
            None
        )]
    );
}

#[test]
fn route_by_attribute_without_default_is_refused() {
    let config = with_parse(json!({
        "kind": "route",
        "params": { "attribute": "tier", "cases": { "gold": "fast" } },
        "next": { "fast": "respond" }
    }));
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.parse.params.default",
            "bad params for `route`: routing by `attribute` needs a `default` output",
            None
        )]
    );
}

#[test]
fn missing_required_param_is_reported_at_params() {
    let config = with_parse(json!({ "kind": "spin", "next": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.parse.params", "bad params for `spin`: missing field `micros`", None)]
    );
}

#[test]
fn unknown_param_field_is_reported_at_the_field() {
    let config = with_parse(json!({ "kind": "noop", "params": { "bogus": 1 }, "next": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.parse.params.bogus",
            "bad params for `noop`: unknown field `bogus`, there are no fields",
            None
        )]
    );
}

#[test]
fn param_of_the_wrong_type_is_reported_at_the_field() {
    let config = with_parse(json!({ "kind": "hash", "params": { "rounds": "four" }, "next": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.parse.params.rounds",
            "bad params for `hash`: invalid type: string \"four\", expected u32",
            None
        )]
    );
}

// ---- stage fields ----
//
// A stage that does not parse has only its own error: naming it elsewhere is no error.

#[test]
fn unknown_stage_field_is_reported_at_the_field() {
    let mut config = minimal();
    config["stages"]["respond"]["colour"] = json!("blue");
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.respond.colour",
            "unknown field `colour`, expected one of `kind`, `params`, `pool`, `threads`, `cpus`, `queue`, `admission`, `next`",
            None
        )]
    );
}

#[test]
fn wrong_type_deep_in_a_stage_is_reported_at_its_exact_path() {
    let mut config = minimal();
    config["stages"]["respond"]["cpus"] = json!([0, "one"]);
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.respond.cpus[1]", "invalid type: string \"one\", expected usize", None)]
    );
}

#[test]
fn unknown_queue_policy_is_reported_at_the_policy() {
    let mut config = minimal();
    config["stages"]["respond"]["queue"] = json!({ "when_full": "wait" });
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.respond.queue.when_full",
            "unknown variant `wait`, expected one of `reject`, `block`, `drop_oldest`",
            None
        )]
    );
}

#[test]
fn an_http_sources_io_is_epoll_uring_or_auto_and_anything_else_is_reported_at_the_field() {
    let mut config = minimal();
    config["source"] = json!({ "kind": "http", "listen": "127.0.0.1:0", "entry": "parse", "io": "iouring" });
    assert_eq!(
        errors(&config).0,
        vec![error("$.source.io", "unknown variant `iouring`, expected one of `epoll`, `uring`, `auto`", None)]
    );
    for io in ["epoll", "uring", "auto"] {
        config["source"]["io"] = json!(io);
        let seda::config::SourcePlan::Http(http) = valid(&config).source else { panic!("an http source") };
        assert_eq!(format!("{:?}", http.io).to_lowercase(), io);
    }
}

#[test]
fn stage_that_is_not_an_object_is_reported_at_the_stage() {
    let mut config = minimal();
    config["stages"]["respond"] = json!("respond");
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.respond", "invalid type: string \"respond\", expected struct StageConfig", None)]
    );
}

#[test]
fn stage_that_fails_to_parse_is_not_also_reported_as_missing() {
    /// The paths of the config's errors.
    fn paths(config: &Value) -> Vec<String> {
        errors(config).0.into_iter().map(|e| e.path).collect()
    }
    // `check` has a typo in a field name; `parse.next` still names it correctly.
    let config = pipeline(json!({
        "parse": { "kind": "noop", "next": "check" },
        "check": { "kind": "noop", "nxt": "respond" },
        "respond": { "kind": "respond" }
    }));
    assert_eq!(paths(&config), ["$.stages.check.nxt"]);

    // The same for the entry stage, which the source names.
    let mut config = minimal();
    config["stages"]["parse"]["nxt"] = json!("respond");
    assert_eq!(paths(&config), ["$.stages.parse.nxt"]);

    // And for an output of a branching stage.
    let config = pipeline(json!({
        "parse": { "kind": "route", "params": { "weights": { "a": 1, "b": 1 } }, "next": { "a": "check", "b": "respond" } },
        "check": { "kind": "noop", "nxt": "respond" },
        "respond": { "kind": "respond" }
    }));
    assert_eq!(paths(&config), ["$.stages.check.nxt"]);
}

#[test]
fn name_of_a_stage_that_fails_to_parse_is_still_suggested() {
    let config = pipeline(json!({
        "parse": { "kind": "noop", "next": "chek" },
        "check": { "kind": "noop", "nxt": "respond" },
        "respond": { "kind": "respond" }
    }));
    assert_eq!(
        errors(&config).0,
        vec![
            error(
                "$.stages.check.nxt",
                "unknown field `nxt`, expected one of `kind`, `params`, `pool`, `threads`, `cpus`, `queue`, `admission`, `next`",
                Some("did you mean `next`?")
            ),
            error("$.stages.parse.next", "`chek` names no stage", Some("did you mean `check`?")),
        ]
    );
}

// ---- wiring ----

#[test]
fn unknown_successor_suggests_the_nearest_stage() {
    let config = pipeline(json!({
        "parse": { "kind": "noop", "next": "s2" },
        "s2": { "kind": "noop", "next": "respnd" },
        "respond": { "kind": "respond" }
    }));
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.s2.next", "`respnd` names no stage", Some("did you mean `respond`?"))]
    );
}

#[test]
fn unknown_successor_far_from_every_stage_has_no_hint() {
    let config = with_parse(json!({ "kind": "noop", "next": "elsewhere" }));
    assert_eq!(errors(&config).0, vec![error("$.stages.parse.next", "`elsewhere` names no stage", None)]);
}

#[test]
fn stage_name_that_is_no_identifier_is_quoted_in_the_path() {
    let config = pipeline(json!({
        "parse": { "kind": "noop", "next": "check.v2" },
        "check.v2": { "kind": "noop", "next": "respnd" },
        "respond": { "kind": "respond" }
    }));
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages['check.v2'].next", "`respnd` names no stage", Some("did you mean `respond`?"))]
    );
}

/// `parse` routes by weight to outputs `a` and `b`, wired by `next`.
fn route_wired(next: Value) -> Value {
    pipeline(json!({
        "parse": { "kind": "route", "params": { "weights": { "a": 1, "b": 1 } }, "next": next },
        "respond": { "kind": "respond" }
    }))
}

#[test]
fn route_output_not_wired_is_reported_with_the_wiring_to_add() {
    let config = route_wired(json!({ "a": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.parse.next", "output `b` is not wired", Some("add `\"b\": \"<stage>\"`"))]
    );
}

#[test]
fn route_output_the_kind_does_not_have_is_reported_at_that_output() {
    let config = route_wired(json!({ "a": "respond", "b": "respond", "c": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.parse.next.c", "`route` has no output `c`", Some("its outputs are a, b"))]
    );
}

#[test]
fn route_output_wired_to_an_unknown_stage_is_reported_at_that_output() {
    let config = route_wired(json!({ "a": "respond", "b": "respnd" }));
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.parse.next.b", "`respnd` names no stage", Some("did you mean `respond`?"))]
    );
}

#[test]
fn route_output_wired_to_a_number_is_reported_at_that_output() {
    let config = route_wired(json!({ "a": "respond", "b": 5 }));
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.parse.next.b",
            "output `b` must name a stage, not 5",
            Some("wire it as `\"b\": \"<stage>\"`")
        )]
    );
}

#[test]
fn branching_stage_with_a_string_next_must_wire_each_output() {
    let config = route_wired(json!("respond"));
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.parse.next",
            "stage `parse` has outputs a, b: wire each",
            Some("`\"next\": {\"a\": \"<stage>\", \"b\": \"<stage>\"}`")
        )]
    );
}

#[test]
fn route_by_attribute_has_its_cases_and_default_as_outputs() {
    let config = pipeline(json!({
        "parse": {
            "kind": "route",
            "params": { "attribute": "tier", "cases": { "gold": "fast", "silver": "fast" }, "default": "slow" },
            "next": { "fast": "respond" }
        },
        "respond": { "kind": "respond" }
    }));
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.parse.next", "output `slow` is not wired", Some("add `\"slow\": \"<stage>\"`"))]
    );
}

#[test]
fn single_successor_stage_with_an_object_next_is_refused() {
    let config = with_parse(json!({ "kind": "noop", "next": { "next": "respond" } }));
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.parse.next", "`noop` has one successor: `next` is a stage name", None)]
    );
}

#[test]
fn stage_without_next_is_refused() {
    let config = with_parse(json!({ "kind": "noop" }));
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.parse.next", "stage `parse` needs a `next`", Some("name the stage that comes after it"))]
    );
}

#[test]
fn terminal_stage_with_next_is_refused() {
    let mut config = minimal();
    config["stages"]["respond"]["next"] = json!("parse");
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.respond.next",
            "`respond` ends every request, so it has no `next`",
            Some("remove `next`")
        )]
    );
}

#[test]
fn bad_params_do_not_hide_an_unknown_successor() {
    let config = with_parse(json!({ "kind": "hash", "params": { "rounds": 0 }, "next": "respnd" }));
    assert_eq!(
        errors(&config).0,
        vec![
            error("$.stages.parse.params.rounds", "bad params for `hash`: `rounds` must be at least 1", None),
            error("$.stages.parse.next", "`respnd` names no stage", Some("did you mean `respond`?")),
        ]
    );
}

#[test]
fn unknown_kind_does_not_hide_an_unknown_stage_wired_to_an_output() {
    // The kind is unknown, so are its outputs: only the stage names wired to are checked.
    let config = with_parse(json!({ "kind": "rout", "next": { "a": "respond", "b": "respnd", "c": 5 } }));
    assert_eq!(
        errors(&config).0,
        vec![
            error("$.stages.parse.kind", "unknown stage kind `rout`", Some("did you mean `route`?")),
            error("$.stages.parse.next.b", "`respnd` names no stage", Some("did you mean `respond`?")),
        ]
    );
}

#[test]
fn bad_kind_with_a_valid_next_has_only_the_kind_error() {
    let config = with_parse(json!({ "kind": "rout", "next": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.parse.kind", "unknown stage kind `rout`", Some("did you mean `route`?"))]
    );
}

// ---- graph ----

#[test]
fn stage_unreachable_from_the_entry_is_reported() {
    let mut config = minimal();
    config["stages"]["orphan"] = json!({ "kind": "noop", "next": "respond" });
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.orphan",
            "stage `orphan` cannot be reached from the entry `parse`",
            Some("wire it from a `next`, or remove it")
        )]
    );
}

#[test]
fn cycle_without_an_exit_is_reported_on_every_stage_in_it() {
    // parse -> retry -> (again: parse | stay: retry): valid wiring, but nothing ever ends.
    let config = pipeline(json!({
        "parse": { "kind": "noop", "next": "retry" },
        "retry": {
            "kind": "route",
            "params": { "weights": { "again": 1, "stay": 1 } },
            "next": { "again": "parse", "stay": "retry" }
        },
        "respond": { "kind": "respond" }
    }));
    let hint = Some("give the cycle an exit to a `respond` stage");
    assert_eq!(
        errors(&config).0,
        vec![
            error("$.stages.parse.next", "every path from stage `parse` loops without reaching a terminal stage", hint),
            error(
                "$.stages.respond",
                "stage `respond` cannot be reached from the entry `parse`",
                Some("wire it from a `next`, or remove it")
            ),
            error("$.stages.retry.next", "every path from stage `retry` loops without reaching a terminal stage", hint),
        ]
    );
}

#[test]
fn stage_feeding_itself_with_no_way_out_is_reported() {
    let config = pipeline(json!({
        "parse": { "kind": "noop", "next": "parse" },
        "respond": { "kind": "respond" }
    }));
    assert_eq!(
        errors(&config).0,
        vec![
            error(
                "$.stages.parse.next",
                "every path from stage `parse` loops without reaching a terminal stage",
                Some("give the cycle an exit to a `respond` stage")
            ),
            error(
                "$.stages.respond",
                "stage `respond` cannot be reached from the entry `parse`",
                Some("wire it from a `next`, or remove it")
            ),
        ]
    );
}

#[test]
fn route_cycle_with_an_exit_is_valid() {
    // parse -> retry -> (again: parse | done: respond)
    let config = pipeline(json!({
        "parse": { "kind": "noop", "next": "retry" },
        "retry": {
            "kind": "route",
            "params": { "weights": { "again": 1, "done": 3 } },
            "next": { "again": "parse", "done": "respond" }
        },
        "respond": { "kind": "respond" }
    }));
    let plan = valid(&config);
    let names: Vec<&str> = plan.stages.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["parse", "respond", "retry"]);
    let retry = &plan.stages[2];
    assert_eq!(retry.output_names, ["again", "done"]);
    assert_eq!(retry.successors, [0, 1]);
    assert_eq!(plan.stages[0].successors, [2]);
    assert!(plan.stages[1].successors.is_empty());
}

// ---- pools, threads, CPUs ----

#[test]
fn pool_cpu_the_machine_lacks_is_reported_at_its_index() {
    let mut config = minimal();
    config["pools"] = json!({ "main": { "cpus": [7, 1] } });
    config["stages"]["parse"]["pool"] = json!("main");
    config["stages"]["respond"]["cpus"] = json!([1, 2]);
    assert_eq!(
        errors(&config).0,
        vec![
            error("$.pools.main.cpus[0]", "CPU 7 does not exist on this machine", Some("its CPUs are 0, 1")),
            error("$.stages.respond.cpus[1]", "CPU 2 does not exist on this machine", Some("its CPUs are 0, 1")),
        ]
    );
}

#[test]
fn stage_naming_an_unknown_pool_suggests_the_nearest_pool() {
    let mut config = minimal();
    config["pools"] = json!({ "main": { "cpus": [0] } });
    config["stages"]["parse"]["pool"] = json!("mian");
    config["stages"]["respond"]["pool"] = json!("main");
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.parse.pool", "`mian` names no pool", Some("did you mean `main`?"))]
    );
}

#[test]
fn stage_naming_a_pool_when_none_is_defined_says_where_to_define_it() {
    let mut config = minimal();
    config["stages"]["parse"]["pool"] = json!("main");
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.parse.pool", "`main` names no pool", Some("name it under `pools`"))]
    );
}

#[test]
fn pool_serving_no_stage_is_reported() {
    let mut config = minimal();
    config["pools"] = json!({ "reusable": { "cpus": [1] } });
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.pools.reusable",
            "pool `reusable` serves no stage",
            Some("give a stage `\"pool\": \"<name>\"`, or remove the pool")
        )]
    );
}

#[test]
fn stage_on_a_named_pool_cannot_choose_its_own_cpus() {
    let mut config = minimal();
    config["pools"] = json!({ "main": {} });
    config["stages"]["parse"]["pool"] = json!("main");
    config["stages"]["parse"]["cpus"] = json!([0]);
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.parse.pool",
            "a stage on a named pool takes its threads and CPUs from the pool",
            Some("move `threads`/`cpus` to the pool, or drop `pool` for a dedicated one")
        )]
    );
}

#[test]
fn zero_threads_is_refused_on_named_and_dedicated_pools() {
    let mut config = minimal();
    config["pools"] = json!({ "main": { "threads": 0 } });
    config["stages"]["parse"]["pool"] = json!("main");
    config["stages"]["respond"]["threads"] = json!(0);
    assert_eq!(
        errors(&config).0,
        vec![
            error("$.pools.main.threads", "a pool needs at least one thread", None),
            error("$.stages.respond.threads", "a pool needs at least one thread", None),
        ]
    );
}

#[test]
fn a_pools_idle_spin_is_in_microseconds_and_at_most_ten_milliseconds() {
    let mut config = minimal();
    config["pools"] = json!({ "main": { "cpus": [0], "idle_spin_us": 10_000 } });
    config["stages"]["parse"]["pool"] = json!("main");
    let plan = valid(&config);
    assert_eq!(plan.pools[0].name, "main");
    assert_eq!(plan.pools[0].idle_spin, std::time::Duration::from_millis(10));
    // A stage's dedicated pool leaves it to the measured policy.
    assert_eq!(plan.pools[1].name, "respond");
    assert_eq!(plan.pools[1].idle_spin, std::time::Duration::ZERO);

    config["pools"]["main"]["idle_spin_us"] = json!(10_001);
    assert_eq!(
        errors(&config).0,
        vec![error("$.pools.main.idle_spin_us", "idle_spin_us must be at most 10000, not 10001", None)]
    );
}

#[test]
fn a_pool_with_max_threads_has_them_all_pinned_round_its_cpus_and_starts_with_its_threads() {
    let mut config = minimal();
    config["pools"] = json!({ "disk": { "cpus": [0, 1], "max_threads": 5, "shrink_idle_ms": 250 } });
    config["stages"]["parse"]["pool"] = json!("disk");
    let plan = valid(&config);
    let cpus: Vec<usize> = plan.pools[0].threads.iter().map(|t| t.cpu).collect();
    assert_eq!(cpus, [0, 1, 0, 1, 0]);
    let sizing = plan.pools[0].sizing.expect("sized");
    assert_eq!(
        (sizing.min_threads, sizing.grow_queue, sizing.shrink_idle),
        (2, 32, std::time::Duration::from_millis(250))
    );
    // A pool without it keeps its threads.
    assert_eq!(plan.pools[1].sizing, None);
}

#[test]
fn max_threads_below_threads_and_growth_settings_without_it_are_refused() {
    let mut config = minimal();
    config["pools"] = json!({
        "small": { "cpus": [0], "threads": 3, "max_threads": 2 },
        "plain": { "cpus": [1], "grow_queue": 8, "shrink_idle_ms": 10 },
        "zero": { "cpus": [1], "max_threads": 2, "grow_queue": 0, "shrink_idle_ms": 0 }
    });
    config["stages"]["parse"]["pool"] = json!("small");
    config["stages"]["respond"]["pool"] = json!("plain");
    config["stages"]["more"] = json!({ "kind": "noop", "pool": "zero" });
    config["stages"]["parse"]["next"] = json!("more");
    config["stages"]["more"]["next"] = json!("respond");
    assert_eq!(
        errors(&config).0,
        vec![
            error(
                "$.pools.plain.grow_queue",
                "`grow_queue` says how the pool grows, and it has no `max_threads`",
                Some("add `max_threads`, or remove it")
            ),
            error(
                "$.pools.plain.shrink_idle_ms",
                "`shrink_idle_ms` says how the pool grows, and it has no `max_threads`",
                Some("add `max_threads`, or remove it")
            ),
            error("$.pools.small.max_threads", "`max_threads` must be from the pool's 3 threads to 1024, not 2", None),
            error("$.pools.zero.grow_queue", "`grow_queue` must be at least 1", None),
            error("$.pools.zero.shrink_idle_ms", "`shrink_idle_ms` must be at least 1", None),
        ]
    );
}

#[test]
fn a_queue_batch_is_from_one_to_thirty_two_or_adaptive() {
    use seda::config::BatchPlan;
    let mut config = minimal();
    config["stages"]["parse"]["queue"] = json!({ "batch": 1 });
    config["stages"]["respond"]["queue"] = json!({ "batch": "adaptive" });
    let plan = valid(&config);
    assert_eq!(plan.stages[plan.stage("parse").unwrap()].queue.batch, BatchPlan::Fixed(1));
    assert_eq!(plan.stages[plan.stage("respond").unwrap()].queue.batch, BatchPlan::Adaptive);
    assert_eq!(valid(&minimal()).stages[0].queue.batch, BatchPlan::Fixed(32));
    for bad in [0, 33] {
        config["stages"]["parse"]["queue"] = json!({ "batch": bad });
        assert_eq!(
            errors(&config).0,
            vec![error(
                "$.stages.parse.queue.batch",
                &format!("a batch is from 1 to 32 requests, not {bad}"),
                Some("or `\"adaptive\"`")
            )]
        );
    }
}

#[test]
fn empty_cpu_list_is_refused() {
    let mut config = minimal();
    config["stages"]["respond"]["cpus"] = json!([]);
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.respond.cpus",
            "the CPU list is empty",
            Some("leave `cpus` out to spread threads over all CPUs")
        )]
    );
}

// ---- queues ----

#[test]
fn zero_queue_capacity_is_refused() {
    let mut config = minimal();
    config["stages"]["respond"]["queue"] = json!({ "capacity": 0 });
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.respond.queue.capacity", "a queue needs a capacity of at least 1", None)]
    );
}

#[test]
fn block_policy_with_a_zero_timeout_is_refused() {
    let mut config = minimal();
    config["stages"]["respond"]["queue"] = json!({ "when_full": "block", "block_timeout_ms": 0 });
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.stages.respond.queue.block_timeout_ms",
            "`block` needs a timeout of at least 1 ms",
            Some("or use `reject`")
        )]
    );
}

// ---- source ----

#[test]
fn source_entry_naming_no_stage_suggests_the_nearest() {
    let mut config = minimal();
    config["source"]["entry"] = json!("prase");
    assert_eq!(
        errors(&config).0,
        vec![error("$.source.entry", "`prase` names no stage", Some("did you mean `parse`?"))]
    );
}

#[test]
fn zero_requests_is_refused() {
    let mut config = minimal();
    config["source"]["requests"] = json!(0);
    assert_eq!(
        errors(&config).0,
        vec![error("$.source.requests", "the generator must send at least one request", None)]
    );
}

#[test]
fn generator_cpu_the_machine_lacks_is_refused() {
    let mut config = minimal();
    config["source"]["cpu"] = json!(4);
    assert_eq!(
        errors(&config).0,
        vec![error("$.source.cpu", "CPU 4 does not exist on this machine", Some("its CPUs are 0, 1"))]
    );
}

#[test]
fn attribute_whose_weights_add_up_to_zero_is_refused() {
    let mut config = minimal();
    config["source"]["attributes"] = json!({ "tier": { "gold": 0, "free": 0 } });
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.source.attributes.tier",
            "the weights add up to 0",
            Some("give at least one value a weight above 0")
        )]
    );
}

#[test]
fn unknown_source_kind_is_reported_at_the_kind() {
    let mut config = minimal();
    config["source"]["kind"] = json!("socket");
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.source.kind",
            "unknown source kind `socket`",
            Some("the kinds are `generator`, `http`, `external`, `nats`, `jetstream`")
        )]
    );
}

#[test]
fn misspelt_source_kind_suggests_the_nearest_kind() {
    let mut config = minimal();
    config["source"]["kind"] = json!("genrator");
    assert_eq!(
        errors(&config).0,
        vec![error("$.source.kind", "unknown source kind `genrator`", Some("did you mean `generator`?"))]
    );
}

#[test]
fn source_kind_that_is_no_string_is_reported_at_the_kind() {
    let mut config = minimal();
    config["source"]["kind"] = json!(1);
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.source.kind",
            "the source kind must be a string, not 1",
            Some("the kinds are `generator`, `http`, `external`, `nats`, `jetstream`")
        )]
    );
}

#[test]
fn source_without_a_kind_is_reported_at_the_source() {
    let mut config = minimal();
    config["source"].as_object_mut().unwrap().remove("kind");
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.source",
            "missing field `kind`",
            Some("the kinds are `generator`, `http`, `external`, `nats`, `jetstream`")
        )]
    );
}

#[test]
fn source_that_is_not_an_object_is_reported_at_the_source() {
    let mut config = minimal();
    config["source"] = json!("generator");
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.source",
            "the source must be an object, not \"generator\"",
            Some("`\"source\": {\"kind\": \"generator\", ...}`")
        )]
    );
}

#[test]
fn missing_generator_field_is_reported_at_the_source() {
    let mut config = minimal();
    config["source"].as_object_mut().unwrap().remove("entry");
    assert_eq!(errors(&config).0, vec![error("$.source", "missing field `entry`", None)]);
}

#[test]
fn wrong_type_in_the_source_is_reported_at_its_exact_path() {
    let mut config = minimal();
    config["source"]["requests"] = json!("ten");
    assert_eq!(errors(&config).0, vec![error("$.source.requests", "invalid type: string \"ten\", expected u64", None)]);
    let mut config = minimal();
    config["source"]["attributes"] = json!({ "tier": { "gold": "1" } });
    assert_eq!(
        errors(&config).0,
        vec![error("$.source.attributes.tier.gold", "invalid type: string \"1\", expected u32", None)]
    );
}

#[test]
fn bad_rate_is_reported_at_the_rate() {
    for (rate, message) in [
        (json!("fast"), "rate must be \"max\" or requests per second, not \"fast\""),
        (json!(-1), "rate must be positive, not -1"),
        (json!(0), "rate must be positive, not 0"),
    ] {
        let mut config = minimal();
        config["source"]["rate"] = rate;
        assert_eq!(errors(&config).0, vec![error("$.source.rate", message, None)]);
    }
}

#[test]
fn a_rate_is_written_as_on_the_command_line() {
    for (rate, expected) in [(json!("20k"), 20_000.0), (json!("1.5M"), 1_500_000.0), (json!("2000/s"), 2000.0)] {
        let mut config = minimal();
        config["source"]["rate"] = rate;
        let seda::config::SourcePlan::Generator { rate, .. } = valid(&config).source else { panic!("a generator") };
        assert_eq!(rate, Rate::PerSecond(expected));
    }
}

#[test]
fn a_source_in_the_workers_has_no_cpu_of_its_own() {
    let generator = json!({ "kind": "generator", "requests": 10, "entry": "parse", "placement": "workers", "cpu": 1 });
    // An HTTP source's reactors run in the workers unless told otherwise.
    let http = json!({ "kind": "http", "listen": "127.0.0.1:0", "entry": "parse", "cpu": 1 });
    for (source, field, message, hint) in [
        (
            generator,
            "placement",
            "`cpu` places the generator thread, and the generator runs in the entry pool's workers",
            "add `\"placement\": \"thread\"`, or leave `cpu` out (the pool's `cpus` place the workers)",
        ),
        (
            http,
            "reactor",
            "`cpu` places the reactor thread, and the reactors run in the entry pool's workers",
            "add `\"reactor\": \"thread\"`, or leave `cpu` out (the pool's `cpus` place the workers)",
        ),
    ] {
        let mut config = minimal();
        config["source"] = source;
        assert_eq!(errors(&config).0, vec![error("$.source.cpu", message, Some(hint))]);
        config["source"][field] = json!("thread");
        assert!(validate_with_cpus(&config, CPUS).is_ok());
    }
}

#[test]
fn unknown_source_field_is_reported_at_the_field() {
    let mut config = minimal();
    config["source"]["burst"] = json!(10);
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.source.burst",
            "unknown field `burst`, expected one of `requests`, `rate`, `payload_bytes`, `entry`, `placement`, `cpu`, `attributes`",
            None
        )]
    );
}

// ---- unknown fields, duplicate keys ----

/// The message serde gives for unknown field `field` of a stage.
fn unknown_stage_field(field: &str) -> String {
    format!("unknown field `{field}`, expected one of `kind`, `params`, `pool`, `threads`, `cpus`, `queue`, `admission`, `next`")
}

#[test]
fn an_unknown_field_on_a_stage_of_a_named_pool_is_the_only_error() {
    // The stage does not parse, but the pool it names is not idle: no "serves no stage".
    let config = json!({
        "name": "test",
        "source": { "kind": "generator", "requests": 10, "entry": "parse" },
        "pools": { "front": { "cpus": [0] } },
        "stages": {
            "parse": { "kind": "noop", "pool": "front", "nxt": "digest" },
            "digest": { "kind": "hash", "pool": "front", "next": "respond" },
            "respond": { "kind": "respond", "pool": "front" }
        }
    });
    assert_eq!(
        errors(&config).0,
        vec![error("$.stages.parse.nxt", &unknown_stage_field("nxt"), Some("did you mean `next`?"))]
    );
}

#[test]
fn every_unknown_field_is_reported_each_with_its_nearest_field() {
    let mut config = minimal();
    config["stages"]["parse"] = json!({ "kind": "noop", "nxt": "respond", "poool": "p", "colour": "blue" });
    config["stages"]["respond"]["queue"] = json!({ "capacty": 8, "when_ful": "block" });
    config["nmae"] = json!("typo");
    config["drain_timeout"] = json!(5);
    let top = "expected one of `name`, `source`, `pools`, `stages`, `deadline_ms`, `drain_timeout_ms`, \
               `io_capacity`, `metrics_interval_ms`, `stage_timing_every`, `file_threads`, `admin`";
    assert_eq!(
        errors(&config).0,
        vec![
            error(
                "$.drain_timeout",
                &format!("unknown field `drain_timeout`, {top}"),
                Some("did you mean `drain_timeout_ms`?")
            ),
            error("$.nmae", &format!("unknown field `nmae`, {top}"), Some("did you mean `name`?")),
        ]
    );
    config.as_object_mut().unwrap().retain(|k, _| k != "nmae" && k != "drain_timeout");
    let queue = "expected one of `capacity`, `when_full`, `block_timeout_ms`, `batch`";
    assert_eq!(
        errors(&config).0,
        vec![
            error("$.stages.parse.colour", &unknown_stage_field("colour"), None),
            error("$.stages.parse.nxt", &unknown_stage_field("nxt"), Some("did you mean `next`?")),
            error("$.stages.parse.poool", &unknown_stage_field("poool"), Some("did you mean `pool`?")),
            error(
                "$.stages.respond.queue.capacty",
                &format!("unknown field `capacty`, {queue}"),
                Some("did you mean `capacity`?")
            ),
            error(
                "$.stages.respond.queue.when_ful",
                &format!("unknown field `when_ful`, {queue}"),
                Some("did you mean `when_full`?")
            ),
        ]
    );
}

#[test]
fn a_misspelt_required_field_is_not_also_reported_missing() {
    let mut config = minimal();
    config["stages"]["respond"] = json!({ "knd": "respond" });
    config["source"] = json!({ "kind": "generator", "requests": 10, "entyr": "parse" });
    assert_eq!(
        errors(&config).0,
        vec![
            error("$.stages.respond.knd", &unknown_stage_field("knd"), Some("did you mean `kind`?")),
            error(
                "$.source.entyr",
                "unknown field `entyr`, expected one of `requests`, `rate`, `payload_bytes`, `entry`, `placement`, \
                 `cpu`, `attributes`",
                Some("did you mean `entry`?")
            ),
        ]
    );
}

#[test]
fn every_unknown_param_is_reported_each_with_its_nearest_param() {
    let config = with_parse(json!({ "kind": "hash", "params": { "rouns": 2, "bogus": 1 }, "next": "respond" }));
    assert_eq!(
        errors(&config).0,
        vec![
            error(
                "$.stages.parse.params.bogus",
                "bad params for `hash`: unknown field `bogus`, expected `rounds`",
                None
            ),
            error(
                "$.stages.parse.params.rouns",
                "bad params for `hash`: unknown field `rouns`, expected `rounds`",
                Some("did you mean `rounds`?")
            ),
        ]
    );
}

#[test]
fn a_key_given_twice_is_an_error_at_its_path() {
    let text = r#"{
        "name": "dup",
        "source": { "kind": "generator", "requests": 10, "entry": "parse", "requests": 20 },
        "stages": {
            "parse": { "kind": "noop", "next": "respond", "threads": 1, "threads": 2 },
            "respond": { "kind": "respond" },
            "parse": { "kind": "noop", "next": "respond" }
        }
    }"#;
    let err = match seda::config::load_str(text) {
        Ok(_) => panic!("a config with duplicate keys loaded"),
        Err(e) => e,
    };
    let twice = |path: &str, name: &str| {
        error(path, &format!("`{name}` is given twice"), Some("JSON keeps only the last value of a key: remove one"))
    };
    assert_eq!(
        err.0,
        vec![
            twice("$.source.requests", "requests"),
            twice("$.stages.parse.threads", "threads"),
            twice("$.stages.parse", "parse"),
        ]
    );
}

// ---- ranges ----

#[test]
fn numbers_past_their_range_are_each_reported() {
    let mut config = minimal();
    config["deadline_ms"] = json!(3_600_001);
    config["drain_timeout_ms"] = json!(u64::MAX);
    config["io_capacity"] = json!(1u64 << 40);
    config["metrics_interval_ms"] = json!(10_000_000);
    config["stage_timing_every"] = json!(u32::MAX);
    config["file_threads"] = json!(100_000);
    config["source"]["payload_bytes"] = json!(1_000_000_000_000u64);
    config["source"]["rate"] = json!(1e12);
    config["stages"]["parse"]["threads"] = json!(100_000);
    config["stages"]["respond"]["queue"] =
        json!({ "capacity": 1u64 << 40, "when_full": "block", "block_timeout_ms": 60_001 });
    assert_eq!(
        errors(&config).0,
        vec![
            error("$.deadline_ms", "deadline_ms must be at most 3600000, not 3600001", None),
            error("$.drain_timeout_ms", "drain_timeout_ms must be at most 3600000, not 18446744073709551615", None),
            error("$.io_capacity", "io_capacity must be at most 1048576, not 1099511627776", None),
            error("$.metrics_interval_ms", "metrics_interval_ms must be at most 3600000, not 10000000", None),
            error("$.stage_timing_every", "stage_timing_every must be at most 1048576, not 4294967295", None),
            error("$.file_threads", "file_threads must be at most 64, not 100000", None),
            error(
                "$.source.rate",
                "rate must be at most 1000000000 requests per second, not 1000000000000",
                Some("\"max\" sends as fast as the entry admits")
            ),
            error("$.source.payload_bytes", "payload_bytes must be at most 16777216, not 1000000000000", None),
            error(
                "$.stages.parse.threads",
                "a pool has at most 1024 threads, not 100000",
                Some("a thread per CPU is what a pool is for; more only take turns")
            ),
            error("$.stages.respond.queue.capacity", "capacity must be at most 1048576, not 1099511627776", None),
            error("$.stages.respond.queue.block_timeout_ms", "block_timeout_ms must be at most 60000, not 60001", None),
        ]
    );
}

#[test]
fn threads_from_a_long_cpu_list_and_payloads_of_full_queues_are_bounded_too() {
    let mut config = minimal();
    config["stages"]["parse"]["cpus"] = json!(vec![0; 5_000]);
    config["source"]["payload_bytes"] = json!(16 << 20);
    config["stages"]["respond"]["queue"] = json!({ "capacity": 1 << 20 });
    assert_eq!(
        errors(&config).0,
        vec![
            error(
                "$.stages.parse.cpus",
                "a pool has at most 1024 threads, not 5000",
                Some("a thread per CPU is what a pool is for; more only take turns")
            ),
            error(
                "$.source.payload_bytes",
                "16777216-byte payloads in full queues (1052672 requests) would take 17660905521152 bytes, \
                 more than 4294967296",
                Some("make the payloads or the queue capacities smaller")
            ),
        ]
    );
}

#[test]
fn a_response_status_must_be_a_final_one() {
    for (kind, status, message) in [
        ("respond_static", 100, "status 100 is informational (1xx), not a final answer: use 200-599"),
        ("respond_static", 199, "status 199 is informational (1xx), not a final answer: use 200-599"),
        ("respond", 101, "status 101 is informational (1xx), not a final answer: use 200-599"),
        ("respond", 600, "status 600 is not a final HTTP status (200-599)"),
        ("respond", 0, "status 0 is not a final HTTP status (200-599)"),
    ] {
        let mut config = minimal();
        config["stages"]["respond"] = json!({ "kind": kind, "params": { "status": status } });
        assert_eq!(
            errors(&config).0,
            vec![error("$.stages.respond.params.status", &format!("bad params for `{kind}`: {message}"), None)]
        );
    }
}

#[test]
fn stage_params_that_would_hold_a_worker_or_shutdown_are_bounded() {
    for (kind, params, path, message) in [
        ("spin", json!({ "micros": 100_001 }), "micros", "`micros` must be at most 100000 (0.1 s), not 100001"),
        (
            "delay",
            json!({ "micros": 3_600_000_001u64 }),
            "micros",
            "`micros` must be at most 3600000000 (one hour), not 3600000001",
        ),
        ("hash", json!({ "rounds": 10_001 }), "rounds", "`rounds` must be at most 10000, not 10001"),
    ] {
        let config = with_parse(json!({ "kind": kind, "params": params, "next": "respond" }));
        assert_eq!(
            errors(&config).0,
            vec![error(&format!("$.stages.parse.params.{path}"), &format!("bad params for `{kind}`: {message}"), None)]
        );
    }
}

// ---- the document ----

#[test]
fn unknown_top_level_field_is_reported_at_the_field() {
    let mut config = minimal();
    config["nmae"] = json!("typo");
    assert_eq!(
        errors(&config).0,
        vec![error(
            "$.nmae",
            "unknown field `nmae`, expected one of `name`, `source`, `pools`, `stages`, `deadline_ms`, \
             `drain_timeout_ms`, `io_capacity`, `metrics_interval_ms`, `stage_timing_every`, `file_threads`, `admin`",
            Some("did you mean `name`?")
        )]
    );
}

// ---- the admin listener ----

#[test]
fn admin_listen_address_becomes_the_plan_address() {
    let mut config = minimal();
    config["admin"] = json!({ "listen": "127.0.0.1:9090" });
    assert_eq!(valid(&config).admin, Some("127.0.0.1:9090".parse().unwrap()));
    config["admin"] = json!({ "listen": "[::1]:0" });
    assert_eq!(valid(&config).admin, Some("[::1]:0".parse().unwrap()));
    assert_eq!(valid(&minimal()).admin, None);
}

#[test]
fn admin_errors_are_reported_at_their_paths_with_the_rest() {
    let mut config = minimal();
    config["admin"] = json!({ "listen": "localhost:9090" });
    config["io_capacity"] = json!(0);
    assert_eq!(
        errors(&config).0,
        vec![
            error("$.io_capacity", "io_capacity must be at least 1", None),
            error(
                "$.admin.listen",
                "`localhost:9090` is not an IP address and port",
                Some("e.g. \"127.0.0.1:9090\"; port 0 takes a free port")
            ),
        ]
    );
    for (admin, path, message) in [
        (json!({ "listen": "127.0.0.1" }), "$.admin.listen", "`127.0.0.1` is not an IP address and port"),
        (json!({ "listen": 9090 }), "$.admin.listen", "invalid type: integer `9090`, expected a string"),
        (json!({}), "$.admin", "missing field `listen`"),
        (json!({ "listen": "127.0.0.1:9090", "port": 1 }), "$.admin.port", "unknown field `port`, expected `listen`"),
    ] {
        let mut config = minimal();
        config["admin"] = admin;
        let errors = errors(&config);
        assert_eq!(errors.0.len(), 1, "{errors}");
        assert_eq!((errors.0[0].path.as_str(), errors.0[0].message.as_str()), (path, message));
    }
}

#[test]
fn machine_without_cpus_is_reported_at_the_root() {
    assert_eq!(
        validate_with_cpus(&minimal(), &[]).err().map(|e| e.0),
        Some(vec![error("$", "the machine reports no CPUs", None)])
    );
}

#[test]
fn missing_stages_section_is_reported_at_the_root() {
    let mut config = minimal();
    config.as_object_mut().unwrap().remove("stages");
    assert_eq!(errors(&config).0, vec![error("$", "missing field `stages`", None)]);
}

#[test]
fn pipeline_without_stages_is_refused() {
    let mut config = minimal();
    config["stages"] = json!({});
    assert_eq!(
        errors(&config).0,
        vec![
            error("$.stages", "the pipeline has no stages", Some("add at least a `respond` stage")),
            error("$.source.entry", "`parse` names no stage", None),
        ]
    );
}

#[test]
fn settings_out_of_range_are_each_reported() {
    let mut config = minimal();
    config["name"] = json!("  ");
    config["deadline_ms"] = json!(0);
    config["io_capacity"] = json!(0);
    config["metrics_interval_ms"] = json!(0);
    assert_eq!(
        errors(&config).0,
        vec![
            error("$.name", "the pipeline needs a name", None),
            error(
                "$.deadline_ms",
                "a deadline of 0 ms would time out every request",
                Some("leave it out for no deadline")
            ),
            error("$.io_capacity", "io_capacity must be at least 1", None),
            error("$.metrics_interval_ms", "metrics_interval_ms must be at least 1", None),
        ]
    );
}

#[test]
fn invalid_json_text_is_reported_at_the_root() {
    let err = match seda::config::load_str("{\"name\": \"x\",}") {
        Ok(_) => panic!("invalid JSON loaded"),
        Err(e) => e,
    };
    assert_eq!(
        err.0,
        vec![error(
            "$",
            "not valid JSON: trailing comma at line 1 column 14",
            Some("check commas, quotes and brackets")
        )]
    );
}

#[test]
fn every_error_in_one_config_is_reported_at_once() {
    let config = json!({
        "name": "many",
        "deadline_ms": 0,
        "source": { "kind": "generator", "requests": 0, "entry": "parse" },
        "pools": { "main": { "cpus": [0, 5] }, "reusable": {} },
        "stages": {
            "parse": { "kind": "noop", "pool": "main", "queue": { "capacity": 0 }, "next": "respnd" },
            "digest": { "kind": "hash", "pool": "main", "params": { "rounds": 0 }, "next": "respond" },
            "fan": { "kind": "rout", "next": "respond" },
            "respond": {
                "kind": "respond",
                "pool": "mian",
                "queue": { "when_full": "block", "block_timeout_ms": 0 },
                "next": "parse"
            }
        }
    });
    let errors = errors(&config);
    // Grouped by check (see `ConfigErrors`): settings, pools, stage fields/kinds/params, source,
    // stage pools and queues, unused pools, wiring.
    assert_eq!(
        errors.0,
        vec![
            error(
                "$.deadline_ms",
                "a deadline of 0 ms would time out every request",
                Some("leave it out for no deadline")
            ),
            error("$.pools.main.cpus[1]", "CPU 5 does not exist on this machine", Some("its CPUs are 0, 1")),
            error("$.stages.digest.params.rounds", "bad params for `hash`: `rounds` must be at least 1", None),
            error("$.stages.fan.kind", "unknown stage kind `rout`", Some("did you mean `route`?")),
            error("$.source.requests", "the generator must send at least one request", None),
            error("$.stages.parse.queue.capacity", "a queue needs a capacity of at least 1", None),
            error("$.stages.respond.pool", "`mian` names no pool", Some("did you mean `main`?")),
            error(
                "$.stages.respond.queue.block_timeout_ms",
                "`block` needs a timeout of at least 1 ms",
                Some("or use `reject`")
            ),
            error(
                "$.pools.reusable",
                "pool `reusable` serves no stage",
                Some("give a stage `\"pool\": \"<name>\"`, or remove the pool")
            ),
            error("$.stages.parse.next", "`respnd` names no stage", Some("did you mean `respond`?")),
            error("$.stages.respond.next", "`respond` ends every request, so it has no `next`", Some("remove `next`")),
        ]
    );
    assert_eq!(errors.to_string().lines().next(), Some("11 errors in the config:"));
}

// ---- the plan of a valid config ----

/// Two named pools and three dedicated ones, a branching stage and a cycle-free graph.
fn five_stages() -> Value {
    json!({
        "name": "plan",
        "deadline_ms": 250,
        "source": {
            "kind": "generator", "requests": 100, "rate": 5000, "payload_bytes": 16, "entry": "parse",
            "attributes": { "tier": { "gold": 1, "free": 3 } }
        },
        "pools": {
            "io": { "cpus": [1] },
            "shared": { "cpus": [0, 1], "threads": 3 }
        },
        "stages": {
            "parse": { "kind": "noop", "next": "route" },
            "route": {
                "kind": "route",
                "params": { "weights": { "fast": 1, "slow": 1 } },
                "threads": 2,
                "next": { "fast": "respond", "slow": "work" }
            },
            "work": {
                "kind": "hash",
                "pool": "io",
                "queue": { "capacity": 16, "when_full": "block", "block_timeout_ms": 5 },
                "next": "log"
            },
            "log": { "kind": "noop", "pool": "shared", "next": "respond" },
            "respond": { "kind": "respond" }
        }
    })
}

/// A stage of a plan as (name, kind, output names, successors, pool).
type StageRow<'a> = (&'a str, &'a str, Vec<&'a str>, Vec<usize>, usize);

#[test]
fn valid_config_becomes_a_plan_with_stages_successors_and_pools() {
    let plan = valid(&five_stages());
    assert_eq!(plan.name, "plan");
    assert_eq!(plan.deadline, Some(std::time::Duration::from_millis(250)));

    // Stages by name order; successors by output, outputs by name order.
    let stages: Vec<StageRow> = plan
        .stages
        .iter()
        .map(|s| {
            let outputs = s.output_names.iter().map(String::as_str).collect();
            (s.name.as_str(), s.kind.as_str(), outputs, s.successors.clone(), s.pool)
        })
        .collect();
    assert_eq!(
        stages,
        [
            ("log", "noop", vec!["next"], vec![2], 1),
            ("parse", "noop", vec!["next"], vec![3], 2),
            ("respond", "respond", vec![], vec![], 3),
            ("route", "route", vec!["fast", "slow"], vec![2, 4], 4),
            ("work", "hash", vec!["next"], vec![0], 0),
        ]
    );
    assert_eq!(plan.stage("work"), Some(4));
    assert_eq!(plan.stage("nothing"), None);

    let work = &plan.stages[4].queue;
    assert_eq!(
        (work.capacity, work.when_full, work.block_timeout),
        (16, WhenFull::Block, std::time::Duration::from_millis(5))
    );
    let respond = &plan.stages[2].queue;
    assert_eq!((respond.capacity, respond.when_full), (4096, WhenFull::Reject));

    // Named pools first, then each dedicated pool in stage order; a pool without `cpus` gets
    // CPUs round-robin over the machine, continuing from one pool to the next.
    let pools: Vec<(&str, bool, Vec<usize>, Vec<usize>)> = plan
        .pools
        .iter()
        .map(|p| {
            let cpus = p.threads.iter().map(|t| t.cpu).collect();
            (p.name.as_str(), p.dedicated, cpus, p.stages.clone())
        })
        .collect();
    assert_eq!(
        pools,
        [
            ("io", false, vec![1], vec![4]),
            ("shared", false, vec![0, 1, 0], vec![0]),
            ("parse", true, vec![0], vec![1]),
            ("respond", true, vec![1], vec![2]),
            ("route", true, vec![0, 1], vec![3]),
        ]
    );
    assert_eq!(plan.worker_count(), 8);

    let seda::config::SourcePlan::Generator { requests, rate, payload_bytes, entry, placement, cpu, attributes } =
        &plan.source
    else {
        panic!("a generator source");
    };
    assert_eq!(
        (*requests, *rate, *payload_bytes, *entry, *placement, *cpu),
        (100, Rate::PerSecond(5000.0), 16, 1, SourcePlacement::Thread, None)
    );
    assert_eq!(attributes, &[("tier".to_string(), vec![("free".to_string(), 3), ("gold".to_string(), 1)])]);
}

#[test]
fn dot_has_a_cluster_per_pool_and_an_edge_per_wired_output() {
    let dot = to_dot(&valid(&five_stages()));
    let expected = r#"digraph "plan" {
  rankdir=LR;
  node [shape=record, fontname="monospace"];
  source [shape=oval, label="generator\n100 requests @ 5000/s"];
  subgraph cluster_0 {
    label="pool io (1 thread, CPUs 1)";
    s4 [label="{work|hash|queue 16 block}"];
  }
  subgraph cluster_1 {
    label="pool shared (3 threads, CPUs 0,1,0)";
    s0 [label="{log|noop|queue 4096 reject}"];
  }
  subgraph cluster_2 {
    label="pool parse (1 thread, CPUs 0)";
    s1 [label="{parse|noop|queue 4096 reject}"];
  }
  subgraph cluster_3 {
    label="pool respond (1 thread, CPUs 1)";
    s2 [label="{respond|respond|queue 4096 reject}"];
  }
  subgraph cluster_4 {
    label="pool route (2 threads, CPUs 0,1)";
    s3 [label="{route|route|queue 4096 reject}"];
  }
  source -> s1;
  s0 -> s2;
  s1 -> s3;
  s3 -> s2 [label="fast"];
  s3 -> s4 [label="slow"];
  s4 -> s0;
}
"#;
    assert_eq!(dot, expected);
}

#[test]
fn dot_escapes_record_characters_in_names() {
    let config = pipeline(json!({
        "parse": { "kind": "noop", "next": "a|b" },
        "a|b": { "kind": "respond" }
    }));
    let expected = r#"digraph "test" {
  rankdir=LR;
  node [shape=record, fontname="monospace"];
  source [shape=oval, label="generator\n10 requests @ max"];
  subgraph cluster_0 {
    label="pool a\|b (1 thread, CPUs 0)";
    s0 [label="{a\|b|respond|queue 4096 reject}"];
  }
  subgraph cluster_1 {
    label="pool parse (1 thread, CPUs 1)";
    s1 [label="{parse|noop|queue 4096 reject}"];
  }
  source -> s1;
  s1 -> s0;
}
"#;
    assert_eq!(to_dot(&valid(&config)), expected);
}

#[test]
fn http_limits_past_their_range_are_each_reported() {
    let mut config = minimal();
    config["source"] = json!({
        "kind": "http", "listen": "127.0.0.1:0", "entry": "parse",
        "max_connections": 2_000_000, "max_pipelined": 1_025, "coalesce_us": 1_001, "header_timeout_ms": 3_600_001,
        "idle_timeout_ms": u64::MAX, "max_head_bytes": 2 << 20, "max_headers": 1_025, "max_body_bytes": 2u64 << 30
    });
    assert_eq!(
        errors(&config).0,
        vec![
            error("$.source.max_connections", "max_connections must be at most 1000000, not 2000000", None),
            error("$.source.max_pipelined", "max_pipelined must be at most 1024, not 1025", None),
            error("$.source.coalesce_us", "coalesce_us must be at most 1000, not 1001", None),
            error("$.source.header_timeout_ms", "header_timeout_ms must be at most 3600000, not 3600001", None),
            error(
                "$.source.idle_timeout_ms",
                "idle_timeout_ms must be at most 3600000, not 18446744073709551615",
                None
            ),
            error("$.source.max_head_bytes", "max_head_bytes must be at most 1048576, not 2097152", None),
            error("$.source.max_headers", "max_headers must be at most 1024, not 1025", None),
            error("$.source.max_body_bytes", "max_body_bytes must be at most 1073741824, not 2147483648", None),
        ]
    );
}
