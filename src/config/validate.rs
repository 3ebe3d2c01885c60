//! The validation pass: checks a whole config and reports every error at once, each with its
//! JSON path and a hint, before anything runs.
//!
//! It goes section by section (settings, pools, each stage's fields, kind and params, source,
//! each stage's pool and queue), then over the wiring (every `next` names a stage and wires every
//! output) and the graph (every stage is reachable from the entry, and from every stage some path
//! reaches a terminal stage). Each part is checked even when an earlier one failed, so one run of
//! `seda validate` shows all that is wrong; errors come in that order, and within a section in
//! the order of the names (a JSON object's keys are sorted).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_path_to_error::Segment;

use seda_stages::{BuildError, Needs, Outputs, Registry};

use super::model::{
    AdminConfig, AdmissionConfig, BatchConfig, BatchMode, GeneratorConfig, HttpConfig, JetStreamSourceConfig,
    NatsSourceConfig, PipelineConfig, PoolConfig, SourceConfig, SourcePlacement, StageConfig, WhenFull,
};
use super::plan::{
    AdmissionPlan, BatchPlan, ClassSource, CodelPlan, ConcurrencyLimitPlan, HttpPlan, JetStreamPlan, LatencyTargetPlan,
    NatsPlan, Plan, PoolPlan, PoolSizing, QueuePlan, SourcePlan, StagePlan, ThreadPlan,
};
use super::{ranges, ConfigError, ConfigErrors, Rate};

/// A pool's `grow_queue` when the config leaves it out: a batch's worth of waiting requests.
const DEFAULT_GROW_QUEUE: usize = ranges::MAX_BATCH;
/// A pool's `shrink_idle_ms` when the config leaves it out.
const DEFAULT_SHRINK_IDLE_MS: u64 = 1_000;

/// Validates `config` against the CPUs of this machine.
pub fn validate(config: &Value) -> Result<Plan, ConfigErrors> {
    validate_with(config, &crate::builtin_kinds())
}

/// [`validate`], with the stage kinds of `registry` (the built-ins and a user's own).
pub fn validate_with(config: &Value, registry: &Registry) -> Result<Plan, ConfigErrors> {
    check(config, registry, &machine_cpus())
}

/// The CPUs this process may run on; CPU 0 alone when the machine does not say.
pub fn machine_cpus() -> Vec<usize> {
    cpus_or_cpu_0(core_affinity::get_core_ids().map(|ids| ids.into_iter().map(|c| c.id).collect()))
}

/// `cpus`, or CPU 0 alone when there is no list or it is empty.
fn cpus_or_cpu_0(cpus: Option<Vec<usize>>) -> Vec<usize> {
    cpus.filter(|c| !c.is_empty()).unwrap_or_else(|| vec![0])
}

/// The source kinds `source.kind` may name.
const SOURCE_KINDS: &[&str] = &["generator", "http", "external", "nats", "jetstream"];

/// Validates `config` as if the machine had exactly `cpus`, which must not be empty.
pub fn validate_with_cpus(config: &Value, cpus: &[usize]) -> Result<Plan, ConfigErrors> {
    check(config, &crate::builtin_kinds(), cpus)
}

fn check(config: &Value, registry: &Registry, cpus: &[usize]) -> Result<Plan, ConfigErrors> {
    if cpus.is_empty() {
        // Nothing could be placed: checking the rest against no CPUs would only add noise.
        return Err(ConfigErrors::one("$", "the machine reports no CPUs", None));
    }
    let mut v = Validator { errors: Vec::new(), registry, cpus, next_cpu: 0 };
    let plan = v.pipeline(config);
    match plan {
        Some(plan) if v.errors.is_empty() => Ok(plan),
        _ => Err(ConfigErrors(v.errors)),
    }
}

struct Validator<'a> {
    errors: Vec<ConfigError>,
    /// The stage kinds a config may name.
    registry: &'a Registry,
    cpus: &'a [usize],
    /// Round-robin cursor for threads whose config names no CPU.
    next_cpu: usize,
}

/// The stage names a `next` or the source may resolve.
struct Stages<'a> {
    /// The stages that parsed, by id.
    parsed: Vec<&'a str>,
    /// Every key of `stages`, those that did not parse included.
    all: Vec<&'a str>,
}

/// A stage as far as validation got with it.
struct Checked {
    name: String,
    config: StageConfig,
    factory: Option<std::sync::Arc<dyn seda_stages::StageFactory>>,
}

impl Validator<'_> {
    fn error(&mut self, path: impl Into<String>, message: impl Into<String>, hint: Option<String>) {
        self.errors.push(ConfigError { path: path.into(), message: message.into(), hint });
    }

    /// Deserializes `value` into `T`, reporting the failure at its exact path under `at`.
    ///
    /// Every unknown field is reported, each with the nearest known field as a hint: serde
    /// stops at the first, so each one found is taken out and the rest parsed again. A value
    /// with an unknown field yields nothing (what it meant is unsure, and guessing would report
    /// errors that are not there), but the other errors in it are still reported, except a
    /// missing field that one of the unknown ones was likely meant to be.
    fn parse<T: DeserializeOwned>(&mut self, at: &str, value: &Value) -> Option<T> {
        let mut value = std::borrow::Cow::Borrowed(value);
        let mut suggested: Vec<String> = Vec::new();
        let mut unknown = false;
        loop {
            let e = match serde_path_to_error::deserialize::<_, T>(&*value) {
                Ok(t) if !unknown => return Some(t),
                Ok(_) => return None,
                Err(e) => e,
            };
            let mut segments: Vec<Segment> = e.path().iter().cloned().collect();
            let inner = e.path().to_string();
            let mut path = if inner == "." || inner.is_empty() { at.to_string() } else { format!("{at}.{inner}") };
            let message = e.into_inner().to_string();
            if let Some(known) = unknown_field_expected(&message) {
                // Inside a tagged enum (an `admission` block, by its `kind`) serde's path stops
                // at the enum: the field is the one the message names.
                let named = message.strip_prefix("unknown field `").and_then(|r| r.split('`').next());
                if let Some(named) =
                    named.filter(|n| !matches!(segments.last(), Some(Segment::Map { key }) if key == n))
                {
                    segments.push(Segment::Map { key: named.to_owned() });
                    path = format!("{path}.{named}");
                }
                let field = match segments.last() {
                    Some(Segment::Map { key }) => key.clone(),
                    _ => String::new(),
                };
                let nearest = seda_stages::closest(&field, known.iter().map(String::as_str)).map(str::to_owned);
                self.error(path, message, nearest.as_ref().map(|n| format!("did you mean `{n}`?")));
                suggested.extend(nearest);
                unknown = true;
                if !remove_at(value.to_mut(), &segments) {
                    return None;
                }
                continue;
            }
            let meant = suggested.iter().any(|s| message == format!("missing field `{s}`"));
            if !meant {
                self.error(path, message, None);
            }
            return None;
        }
    }

    fn pipeline(&mut self, config: &Value) -> Option<Plan> {
        let top: PipelineConfig = self.parse("$", config)?;
        self.settings(&top);
        let admin = top.admin.as_ref().map(|admin| self.admin(admin));

        // Pools named in `pools`.
        let mut pools: Vec<PoolPlan> = Vec::new();
        for (name, value) in &top.pools {
            let at = key("$.pools", name);
            if let Some(pool) = self.parse::<PoolConfig>(&at, value) {
                let mut threads = self.threads(&at, pool.cpus.as_deref(), pool.threads);
                self.at_most(&format!("{at}.idle_spin_us"), pool.idle_spin_us, ranges::MAX_IDLE_SPIN_US);
                let idle_spin = Duration::from_micros(pool.idle_spin_us);
                let sizing = self.sizing(&at, &pool, &mut threads);
                pools.push(PoolPlan {
                    name: name.clone(),
                    dedicated: false,
                    threads,
                    stages: Vec::new(),
                    idle_spin,
                    sizing,
                });
            }
        }

        // Stages, each on its own so one bad stage does not hide another.
        let mut checked: Vec<Checked> = Vec::new();
        for (name, value) in &top.stages {
            let at = key("$.stages", name);
            if let Some(config) = self.parse::<StageConfig>(&at, value) {
                let factory = self.factory(&at, &config);
                checked.push(Checked { name: name.clone(), config, factory });
            }
        }
        if top.stages.is_empty() {
            self.error("$.stages", "the pipeline has no stages", Some("add at least a `respond` stage".into()));
        }
        let names = Stages {
            parsed: checked.iter().map(|c| c.name.as_str()).collect(),
            all: top.stages.keys().map(String::as_str).collect(),
        };

        let source = self.source(&top.source, &names);

        // Pools and queues of each stage.
        let mut stage_pools = Vec::new();
        let mut queues = Vec::new();
        let mut admissions = Vec::new();
        for (id, c) in checked.iter().enumerate() {
            let at = key("$.stages", &c.name);
            stage_pools.push(self.stage_pool(&at, id, c, &top.pools, &mut pools));
            queues.push(self.queue(&at, c));
            admissions.push(self.admission(&at, c));
        }
        // A stage that did not parse may still name its pool: that pool is not idle, and saying
        // so would be a second, false error.
        let named_by_unparsed: Vec<&str> = top
            .stages
            .iter()
            .filter(|(name, _)| !checked.iter().any(|c| &c.name == *name))
            .filter_map(|(_, value)| value.get("pool")?.as_str())
            .collect();
        for p in pools
            .iter()
            .filter(|p| !p.dedicated && p.stages.is_empty() && !named_by_unparsed.contains(&p.name.as_str()))
        {
            self.error(
                key("$.pools", &p.name),
                format!("pool `{}` serves no stage", p.name),
                Some("give a stage `\"pool\": \"<name>\"`, or remove the pool".into()),
            );
        }

        let total_threads: usize = pools.iter().map(|p| p.threads.len()).sum();
        if total_threads > ranges::MAX_TOTAL_THREADS {
            self.error(
                "$.pools",
                format!("the pools have {total_threads} threads together, more than {}", ranges::MAX_TOTAL_THREADS),
                None,
            );
        }
        if let Some(SourcePlan::Generator { payload_bytes, .. }) = &source {
            let capacity: u64 = queues.iter().flatten().map(|q| q.capacity as u64).sum();
            let queued = capacity.saturating_mul(*payload_bytes as u64);
            if queued > ranges::MAX_QUEUED_PAYLOAD_BYTES {
                self.error(
                    "$.source.payload_bytes",
                    format!(
                        "{payload_bytes}-byte payloads in full queues ({capacity} requests) would take {queued} bytes, \
                         more than {}",
                        ranges::MAX_QUEUED_PAYLOAD_BYTES
                    ),
                    Some("make the payloads or the queue capacities smaller".into()),
                );
            }
        }

        // Wiring, then the shape of the graph.
        let wiring: Vec<Option<(Vec<usize>, Vec<String>)>> = checked.iter().map(|c| self.wiring(c, &names)).collect();
        if let (Some(entry), true) = (source.as_ref().map(SourcePlan::entry), wiring.iter().all(Option::is_some)) {
            let edges: Vec<&[usize]> = wiring.iter().map(|w| w.as_ref().unwrap().0.as_slice()).collect();
            self.graph(&names.parsed, &edges, entry);
            if let Some(source) = &source {
                self.needs(source, &checked, &edges);
            }
        }

        if !self.errors.is_empty() {
            return None;
        }
        let stages = checked
            .into_iter()
            .zip(stage_pools)
            .zip(queues)
            .zip(admissions)
            .zip(wiring)
            .map(|((((c, pool), queue), admission), wiring)| {
                let (successors, output_names) = wiring.unwrap();
                StagePlan {
                    name: c.name,
                    kind: c.config.kind,
                    factory: c.factory.unwrap(),
                    pool: pool.unwrap(),
                    queue: queue.unwrap(),
                    admission: admission.unwrap(),
                    successors,
                    output_names,
                }
            })
            .collect();
        Some(Plan {
            name: top.name,
            source: source?,
            stages,
            pools,
            deadline: top.deadline_ms.map(Duration::from_millis),
            drain_timeout: Duration::from_millis(top.drain_timeout_ms),
            io_capacity: top.io_capacity,
            metrics_interval: Duration::from_millis(top.metrics_interval_ms),
            stage_timing_every: top.stage_timing_every,
            file_threads: top.file_threads,
            admin: admin.flatten(),
        })
    }

    fn settings(&mut self, top: &PipelineConfig) {
        if top.name.trim().is_empty() {
            self.error("$.name", "the pipeline needs a name", None);
        }
        if top.deadline_ms == Some(0) {
            self.error(
                "$.deadline_ms",
                "a deadline of 0 ms would time out every request",
                Some("leave it out for no deadline".into()),
            );
        }
        if top.io_capacity == 0 {
            self.error("$.io_capacity", "io_capacity must be at least 1", None);
        }
        if top.stage_timing_every == 0 {
            self.error(
                "$.stage_timing_every",
                "stage_timing_every must be at least 1",
                Some("1 times every request".into()),
            );
        }
        if top.file_threads == 0 {
            self.error("$.file_threads", "file_threads must be at least 1", None);
        }
        if top.metrics_interval_ms == 0 {
            self.error("$.metrics_interval_ms", "metrics_interval_ms must be at least 1", None);
        }
        self.at_most("$.deadline_ms", top.deadline_ms.unwrap_or(0), ranges::MAX_MS);
        self.at_most("$.drain_timeout_ms", top.drain_timeout_ms, ranges::MAX_MS);
        self.at_most("$.io_capacity", top.io_capacity as u64, ranges::MAX_IO_CAPACITY as u64);
        self.at_most("$.metrics_interval_ms", top.metrics_interval_ms, ranges::MAX_MS);
        self.at_most(
            "$.stage_timing_every",
            u64::from(top.stage_timing_every),
            u64::from(ranges::MAX_STAGE_TIMING_EVERY),
        );
        self.at_most("$.file_threads", top.file_threads as u64, ranges::MAX_FILE_THREADS as u64);
    }

    /// Reports the number at `path` (its field is the path's last part) if it is above `max`.
    fn at_most(&mut self, path: &str, value: u64, max: u64) {
        if value > max {
            let field = path.rsplit('.').next().unwrap_or(path);
            self.error(path, format!("{field} must be at most {max}, not {value}"), None);
        }
    }

    /// The admin listener's address: an IP address and a port, not a host name (resolving one
    /// at validation would make a config's meaning depend on the resolver).
    fn admin(&mut self, value: &Value) -> Option<std::net::SocketAddr> {
        let admin: AdminConfig = self.parse("$.admin", value)?;
        match admin.listen.parse() {
            Ok(addr) => Some(addr),
            Err(_) => {
                self.error(
                    "$.admin.listen",
                    format!("`{}` is not an IP address and port", admin.listen),
                    Some("e.g. \"127.0.0.1:9090\"; port 0 takes a free port".into()),
                );
                None
            }
        }
    }

    /// One thread per listed CPU (or `threads`, round-robin over them); without CPUs, `threads`
    /// (default 1) spread round-robin over the machine's CPUs.
    fn threads(&mut self, at: &str, cpus: Option<&[usize]>, threads: Option<usize>) -> Vec<ThreadPlan> {
        if threads == Some(0) {
            self.error(format!("{at}.threads"), "a pool needs at least one thread", None);
            return Vec::new();
        }
        let (field, count) = match (threads, cpus) {
            (Some(n), _) => ("threads", n),
            (None, Some(list)) => ("cpus", list.len()),
            (None, None) => ("threads", 1),
        };
        if count > ranges::MAX_POOL_THREADS {
            self.error(
                format!("{at}.{field}"),
                format!("a pool has at most {} threads, not {count}", ranges::MAX_POOL_THREADS),
                Some("a thread per CPU is what a pool is for; more only take turns".into()),
            );
            return Vec::new();
        }
        match cpus {
            Some([]) => {
                self.error(
                    format!("{at}.cpus"),
                    "the CPU list is empty",
                    Some("leave `cpus` out to spread threads over all CPUs".into()),
                );
                Vec::new()
            }
            Some(list) => {
                for (i, cpu) in list.iter().enumerate() {
                    if !self.cpus.contains(cpu) {
                        self.missing_cpu(format!("{at}.cpus[{i}]"), *cpu);
                    }
                }
                (0..threads.unwrap_or(list.len())).map(|i| ThreadPlan { cpu: list[i % list.len()] }).collect()
            }
            None => (0..threads.unwrap_or(1))
                .map(|_| {
                    let cpu = self.cpus[self.next_cpu % self.cpus.len()];
                    self.next_cpu += 1;
                    ThreadPlan { cpu }
                })
                .collect(),
        }
    }

    /// A pool's `max_threads` and its settings, checked: the pool's `threads` (its least) are
    /// extended to its most, the extra ones pinned round its CPUs in turn.
    fn sizing(&mut self, at: &str, pool: &PoolConfig, threads: &mut Vec<ThreadPlan>) -> Option<PoolSizing> {
        let Some(max) = pool.max_threads else {
            for (field, set) in
                [("grow_queue", pool.grow_queue.is_some()), ("shrink_idle_ms", pool.shrink_idle_ms.is_some())]
            {
                if set {
                    self.error(
                        format!("{at}.{field}"),
                        format!("`{field}` says how the pool grows, and it has no `max_threads`"),
                        Some("add `max_threads`, or remove it".into()),
                    );
                }
            }
            return None;
        };
        let min = threads.len();
        if min == 0 {
            return None;
        }
        if max < min || max > ranges::MAX_POOL_THREADS {
            self.error(
                format!("{at}.max_threads"),
                format!(
                    "`max_threads` must be from the pool's {min} threads to {}, not {max}",
                    ranges::MAX_POOL_THREADS
                ),
                None,
            );
            return None;
        }
        let grow_queue = pool.grow_queue.unwrap_or(DEFAULT_GROW_QUEUE);
        let shrink_idle_ms = pool.shrink_idle_ms.unwrap_or(DEFAULT_SHRINK_IDLE_MS);
        let errors = self.errors.len();
        if grow_queue == 0 {
            self.error(format!("{at}.grow_queue"), "`grow_queue` must be at least 1", None);
        }
        self.at_most(&format!("{at}.grow_queue"), grow_queue as u64, ranges::MAX_GROW_QUEUE as u64);
        if shrink_idle_ms == 0 {
            self.error(format!("{at}.shrink_idle_ms"), "`shrink_idle_ms` must be at least 1", None);
        }
        self.at_most(&format!("{at}.shrink_idle_ms"), shrink_idle_ms, ranges::MAX_MS);
        if self.errors.len() != errors {
            return None;
        }
        let cpus: Vec<usize> = threads.iter().map(|t| t.cpu).collect();
        threads.extend((min..max).map(|i| ThreadPlan { cpu: cpus[i % cpus.len()] }));
        Some(PoolSizing { min_threads: min, grow_queue, shrink_idle: Duration::from_millis(shrink_idle_ms) })
    }

    /// `$.source.cpu`: one of the machine's, and given only to a source on a thread of its own
    /// (`field` says where the source is placed; `thread` names its thread; `runs` says what
    /// runs in the workers).
    fn source_cpu(&mut self, cpu: Option<usize>, placement: SourcePlacement, field: &str, thread: &str, runs: &str) {
        if let Some(cpu) = cpu.filter(|c| !self.cpus.contains(c)) {
            self.missing_cpu("$.source.cpu".into(), cpu);
        }
        if cpu.is_some() && placement == SourcePlacement::Workers {
            self.error(
                "$.source.cpu",
                format!("`cpu` places the {thread} thread, and {runs} in the entry pool's workers"),
                Some(format!(
                    "add `\"{field}\": \"thread\"`, or leave `cpu` out (the pool's `cpus` place the workers)"
                )),
            );
        }
    }

    /// Reports that `cpu`, named at `at`, is not one of the machine's.
    fn missing_cpu(&mut self, at: String, cpu: usize) {
        let have = self.cpus.iter().map(usize::to_string).collect::<Vec<_>>().join(", ");
        self.error(at, format!("CPU {cpu} does not exist on this machine"), Some(format!("its CPUs are {have}")));
    }

    fn factory(&mut self, at: &str, c: &StageConfig) -> Option<std::sync::Arc<dyn seda_stages::StageFactory>> {
        // As in `parse`: every unknown param is reported, each taken out before trying again.
        let mut params = std::borrow::Cow::Borrowed(&c.params);
        let mut unknown = false;
        loop {
            let Err(BuildError::BadParams { field: Some(field), message }) = self.registry.build(&c.kind, &params)
            else {
                break;
            };
            let Some(known) = unknown_field_expected(&message) else { break };
            let name = field.rsplit('.').next().unwrap_or(&field);
            let hint =
                seda_stages::closest(name, known.iter().map(String::as_str)).map(|n| format!("did you mean `{n}`?"));
            self.error(format!("{at}.params.{field}"), format!("bad params for `{}`: {message}", c.kind), hint);
            unknown = true;
            let path: Vec<Segment> = field.split('.').map(|key| Segment::Map { key: key.to_owned() }).collect();
            if field.contains('[') || !remove_at(params.to_mut(), &path) {
                return None;
            }
        }
        if unknown {
            return None;
        }
        match self.registry.build(&c.kind, &params) {
            Ok(f) => Some(f),
            Err(BuildError::UnknownKind { kind, suggestion }) => {
                let hint = match suggestion {
                    Some(s) => format!("did you mean `{s}`?"),
                    None => {
                        let kinds: Vec<&str> = self.registry.kinds().map(|(name, _)| name).collect();
                        format!("the kinds are {} (`seda kinds` describes each)", kinds.join(", "))
                    }
                };
                self.error(format!("{at}.kind"), format!("unknown stage kind `{kind}`"), Some(hint));
                None
            }
            Err(BuildError::BadParams { field, message }) => {
                let path = match field {
                    Some(f) => format!("{at}.params.{f}"),
                    None => format!("{at}.params"),
                };
                self.error(path, format!("bad params for `{}`: {message}", c.kind), None);
                None
            }
        }
    }

    /// The source, by its `kind`. Read by hand rather than through [`SourceConfig`]'s serde tag:
    /// serde buffers an internally tagged enum, which loses the path of an error inside it.
    fn source(&mut self, value: &Value, stages: &Stages) -> Option<SourcePlan> {
        let Some(fields) = value.as_object() else {
            self.error(
                "$.source",
                format!("the source must be an object, not {value}"),
                Some(format!("`\"source\": {{\"kind\": \"{}\", ...}}`", SOURCE_KINDS[0])),
            );
            return None;
        };
        let kind = match fields.get("kind") {
            Some(Value::String(kind)) => kind,
            Some(other) => {
                self.error(
                    "$.source.kind",
                    format!("the source kind must be a string, not {other}"),
                    source_kinds_hint(),
                );
                return None;
            }
            None => {
                self.error("$.source", "missing field `kind`", source_kinds_hint());
                return None;
            }
        };
        let mut rest = fields.clone();
        rest.remove("kind");
        let source = match kind.as_str() {
            "generator" => SourceConfig::Generator(self.parse("$.source", &Value::Object(rest))?),
            "http" => SourceConfig::Http(self.parse("$.source", &Value::Object(rest))?),
            "external" => SourceConfig::External(self.parse("$.source", &Value::Object(rest))?),
            "nats" => SourceConfig::Nats(self.parse("$.source", &Value::Object(rest))?),
            "jetstream" => SourceConfig::JetStream(self.parse("$.source", &Value::Object(rest))?),
            _ => {
                let hint = seda_stages::closest(kind, SOURCE_KINDS.iter().copied())
                    .map(|s| format!("did you mean `{s}`?"))
                    .or_else(source_kinds_hint);
                self.error("$.source.kind", format!("unknown source kind `{kind}`"), hint);
                return None;
            }
        };
        match source {
            SourceConfig::Generator(g) => self.generator(g, stages),
            SourceConfig::Http(h) => self.http(h, stages),
            SourceConfig::External(e) => {
                Some(SourcePlan::External { entry: self.stage_ref("$.source.entry", &e.entry, stages)? })
            }
            SourceConfig::Nats(n) => self.nats(n, stages),
            SourceConfig::JetStream(j) => self.jetstream(j, stages),
        }
    }

    fn jetstream(&mut self, j: JetStreamSourceConfig, stages: &Stages) -> Option<SourcePlan> {
        let errors = self.errors.len();
        if let Err(e) = crate::nats::check_server(&j.server) {
            self.error("$.source.server", e, Some("write `nats://host:port`, e.g. `nats://127.0.0.1:4222`".into()));
        }
        for (path, name) in [("$.source.stream", &j.stream), ("$.source.consumer", &j.consumer)] {
            if name.is_empty() || name.len() > 255 || name.contains(['.', '*', '>', ' ', '/', '\\']) {
                self.error(path, format!("`{name}` is not a stream or consumer name"), None);
            }
        }
        if let Some(filter) = &j.filter_subject {
            if let Err(e) = crate::nats::check_subject(filter, true) {
                self.error("$.source.filter_subject", e, None);
            }
        }
        if let Err(e) = crate::nats::check_subject(&j.dead_letter_subject, false) {
            self.error("$.source.dead_letter_subject", e, None);
        }
        if j.max_ack_pending == 0 {
            self.error("$.source.max_ack_pending", "max_ack_pending must be at least 1", None);
        }
        self.at_most("$.source.max_ack_pending", j.max_ack_pending as u64, ranges::MAX_ACK_PENDING as u64);
        if j.max_deliver == 0 {
            self.error("$.source.max_deliver", "max_deliver must be at least 1", None);
        }
        self.at_most("$.source.max_deliver", j.max_deliver as u64, ranges::MAX_DELIVER as u64);
        self.at_most("$.source.nak_delay_ms", j.nak_delay_ms, ranges::MAX_MS);
        if j.ack_wait_ms == 0 {
            self.error("$.source.ack_wait_ms", "ack_wait_ms must be at least 1", None);
        }
        self.at_most("$.source.ack_wait_ms", j.ack_wait_ms, ranges::MAX_MS);
        let entry = self.stage_ref("$.source.entry", &j.entry, stages)?;
        (self.errors.len() == errors).then_some(SourcePlan::JetStream(JetStreamPlan {
            server: j.server,
            stream: j.stream,
            consumer: j.consumer,
            filter_subject: j.filter_subject,
            entry,
            max_ack_pending: j.max_ack_pending,
            max_deliver: j.max_deliver,
            nak_delay: Duration::from_millis(j.nak_delay_ms),
            ack_wait: Duration::from_millis(j.ack_wait_ms),
            dead_letter_subject: j.dead_letter_subject,
        }))
    }

    fn nats(&mut self, n: NatsSourceConfig, stages: &Stages) -> Option<SourcePlan> {
        let errors = self.errors.len();
        if let Err(e) = crate::nats::check_server(&n.server) {
            self.error("$.source.server", e, Some("write `nats://host:port`, e.g. `nats://127.0.0.1:4222`".into()));
        }
        if let Err(e) = crate::nats::check_subject(&n.subject, true) {
            self.error("$.source.subject", e, None);
        }
        if let Err(e) = crate::nats::check_subject(&n.queue_group, false) {
            self.error("$.source.queue_group", e, None);
        }
        if n.max_in_flight == 0 {
            self.error("$.source.max_in_flight", "max_in_flight must be at least 1", None);
        }
        self.at_most("$.source.max_in_flight", n.max_in_flight as u64, ranges::MAX_NATS_IN_FLIGHT as u64);
        let entry = self.stage_ref("$.source.entry", &n.entry, stages)?;
        (self.errors.len() == errors).then_some(SourcePlan::Nats(NatsPlan {
            server: n.server,
            subject: n.subject,
            queue_group: n.queue_group,
            entry,
            max_in_flight: n.max_in_flight,
        }))
    }

    fn http(&mut self, h: HttpConfig, stages: &Stages) -> Option<SourcePlan> {
        let errors = self.errors.len();
        let listen = h.listen.parse::<std::net::SocketAddr>();
        if listen.is_err() {
            self.error(
                "$.source.listen",
                format!("`{}` is not a socket address", h.listen),
                Some("write `host:port` with a numeric host, e.g. `127.0.0.1:8080`".into()),
            );
        }
        self.source_cpu(h.cpu, h.reactor, "reactor", "reactor", "the reactors run");
        for (field, value) in [
            ("max_connections", h.max_connections as u64),
            ("max_connections_per_client", h.max_connections_per_client as u64),
            ("max_unsent_bytes", h.max_unsent_bytes as u64),
            ("max_unsent_bytes_per_connection", h.max_unsent_bytes_per_connection as u64),
            ("max_pipelined", h.max_pipelined as u64),
            ("header_timeout_ms", h.header_timeout_ms),
            ("idle_timeout_ms", h.idle_timeout_ms),
            ("body_timeout_ms", h.body_timeout_ms),
            ("body_read_timeout_ms", h.body_read_timeout_ms),
            ("answer_timeout_ms", h.answer_timeout_ms),
            ("send_timeout_ms", h.send_timeout_ms),
            ("max_head_bytes", h.max_head_bytes as u64),
            ("max_headers", h.max_headers as u64),
        ] {
            if value == 0 {
                self.error(format!("$.source.{field}"), format!("{field} must be at least 1"), None);
            }
        }
        for (field, value, max) in [
            ("max_connections", h.max_connections as u64, ranges::MAX_CONNECTIONS as u64),
            ("max_pipelined", h.max_pipelined as u64, ranges::MAX_PIPELINED as u64),
            ("coalesce_us", h.coalesce_us, ranges::MAX_COALESCE_US),
            ("header_timeout_ms", h.header_timeout_ms, ranges::MAX_MS),
            ("idle_timeout_ms", h.idle_timeout_ms, ranges::MAX_MS),
            ("body_timeout_ms", h.body_timeout_ms, ranges::MAX_MS),
            ("body_read_timeout_ms", h.body_read_timeout_ms, ranges::MAX_MS),
            ("answer_timeout_ms", h.answer_timeout_ms, ranges::MAX_MS),
            ("send_timeout_ms", h.send_timeout_ms, ranges::MAX_MS),
            ("max_head_bytes", h.max_head_bytes as u64, ranges::MAX_HEAD_BYTES as u64),
            ("max_headers", h.max_headers as u64, ranges::MAX_HEADERS as u64),
            ("max_body_bytes", h.max_body_bytes as u64, ranges::MAX_BODY_BYTES as u64),
        ] {
            self.at_most(&format!("$.source.{field}"), value, max);
        }
        let entry = self.stage_ref("$.source.entry", &h.entry, stages);
        if self.errors.len() > errors {
            return None;
        }
        let defaults = super::Limits::default();
        Some(SourcePlan::Http(HttpPlan {
            listen: listen.ok()?,
            entry: entry?,
            reactor: h.reactor,
            cpu: h.cpu,
            io: h.io,
            coalesce: Duration::from_micros(h.coalesce_us),
            max_connections: h.max_connections,
            max_connections_per_client: h.max_connections_per_client,
            max_unsent_bytes: h.max_unsent_bytes,
            max_unsent_bytes_per_connection: h.max_unsent_bytes_per_connection,
            max_pipelined: h.max_pipelined,
            header_timeout: Duration::from_millis(h.header_timeout_ms),
            idle_timeout: Duration::from_millis(h.idle_timeout_ms),
            body_timeout: Duration::from_millis(h.body_timeout_ms),
            body_read_timeout: Duration::from_millis(h.body_read_timeout_ms),
            answer_timeout: Duration::from_millis(h.answer_timeout_ms),
            send_timeout: Duration::from_millis(h.send_timeout_ms),
            limits: super::Limits {
                max_head_bytes: h.max_head_bytes,
                max_headers: h.max_headers,
                max_body_bytes: h.max_body_bytes,
                ..defaults
            },
        }))
    }

    fn generator(&mut self, g: GeneratorConfig, stages: &Stages) -> Option<SourcePlan> {
        let errors = self.errors.len();
        if g.requests == 0 {
            self.error("$.source.requests", "the generator must send at least one request", None);
        }
        if let Rate::PerSecond(rate) = g.rate {
            if rate > ranges::MAX_RATE {
                self.error(
                    "$.source.rate",
                    format!("rate must be at most {} requests per second, not {rate}", ranges::MAX_RATE),
                    Some("\"max\" sends as fast as the entry admits".into()),
                );
            }
        }
        self.at_most("$.source.payload_bytes", g.payload_bytes as u64, ranges::MAX_PAYLOAD_BYTES as u64);
        self.source_cpu(g.cpu, g.placement, "placement", "generator", "the generator runs");
        let mut attributes = Vec::new();
        for (name, values) in g.attributes {
            if values.values().map(|&w| u64::from(w)).sum::<u64>() == 0 {
                self.error(
                    key("$.source.attributes", &name),
                    "the weights add up to 0",
                    Some("give at least one value a weight above 0".into()),
                );
            }
            attributes.push((name, values.into_iter().collect()));
        }
        let entry = self.stage_ref("$.source.entry", &g.entry, stages);
        if self.errors.len() > errors {
            return None;
        }
        Some(SourcePlan::Generator {
            requests: g.requests,
            rate: g.rate,
            payload_bytes: g.payload_bytes,
            entry: entry?,
            placement: g.placement,
            cpu: g.cpu,
            attributes,
        })
    }

    /// Resolves a stage name to its id, suggesting the nearest when it names none. A stage that
    /// did not parse has no id, but naming it is no error: its own error is reported already.
    fn stage_ref(&mut self, at: &str, name: &str, stages: &Stages) -> Option<usize> {
        if let Some(id) = stages.parsed.iter().position(|s| *s == name) {
            return Some(id);
        }
        if !stages.all.contains(&name) {
            let hint = seda_stages::closest(name, stages.all.iter().copied()).map(|s| format!("did you mean `{s}`?"));
            self.error(at, format!("`{name}` names no stage"), hint);
        }
        None
    }

    fn stage_pool(
        &mut self,
        at: &str,
        id: usize,
        c: &Checked,
        named: &BTreeMap<String, Value>,
        pools: &mut Vec<PoolPlan>,
    ) -> Option<usize> {
        match &c.config.pool {
            Some(pool) => {
                if c.config.threads.is_some() || c.config.cpus.is_some() {
                    self.error(
                        format!("{at}.pool"),
                        "a stage on a named pool takes its threads and CPUs from the pool",
                        Some("move `threads`/`cpus` to the pool, or drop `pool` for a dedicated one".into()),
                    );
                }
                match pools.iter().position(|p| !p.dedicated && &p.name == pool) {
                    Some(p) => {
                        pools[p].stages.push(id);
                        Some(p)
                    }
                    None => {
                        // A pool that failed its own checks is already reported.
                        if !named.contains_key(pool) {
                            let hint = seda_stages::closest(pool, named.keys().map(String::as_str))
                                .map(|s| format!("did you mean `{s}`?"))
                                .or_else(|| Some("name it under `pools`".into()));
                            self.error(format!("{at}.pool"), format!("`{pool}` names no pool"), hint);
                        }
                        None
                    }
                }
            }
            None => {
                let threads = self.threads(at, c.config.cpus.as_deref(), c.config.threads);
                pools.push(PoolPlan {
                    name: c.name.clone(),
                    dedicated: true,
                    threads,
                    stages: vec![id],
                    idle_spin: Duration::ZERO,
                    sizing: None,
                });
                Some(pools.len() - 1)
            }
        }
    }

    fn queue(&mut self, at: &str, c: &Checked) -> Option<QueuePlan> {
        let q = &c.config.queue;
        let mut ok = true;
        if q.capacity == 0 {
            self.error(format!("{at}.queue.capacity"), "a queue needs a capacity of at least 1", None);
            ok = false;
        }
        let errors = self.errors.len();
        self.at_most(&format!("{at}.queue.capacity"), q.capacity as u64, ranges::MAX_QUEUE_CAPACITY as u64);
        self.at_most(&format!("{at}.queue.block_timeout_ms"), q.block_timeout_ms, ranges::MAX_BLOCK_TIMEOUT_MS);
        ok &= self.errors.len() == errors;
        if q.when_full == WhenFull::Block && q.block_timeout_ms == 0 {
            self.error(
                format!("{at}.queue.block_timeout_ms"),
                "`block` needs a timeout of at least 1 ms",
                Some("or use `reject`".into()),
            );
            ok = false;
        }
        let batch = match q.batch {
            BatchConfig::Fixed(n) if (1..=ranges::MAX_BATCH).contains(&n) => BatchPlan::Fixed(n),
            BatchConfig::Fixed(n) => {
                self.error(
                    format!("{at}.queue.batch"),
                    format!("a batch is from 1 to {} requests, not {n}", ranges::MAX_BATCH),
                    Some("or `\"adaptive\"`".into()),
                );
                ok = false;
                BatchPlan::Fixed(ranges::MAX_BATCH)
            }
            BatchConfig::Adjusted(BatchMode::Adaptive) => BatchPlan::Adaptive,
        };
        ok.then_some(QueuePlan {
            capacity: q.capacity,
            when_full: q.when_full,
            block_timeout: Duration::from_millis(q.block_timeout_ms),
            batch,
        })
    }

    /// The stage's admission controller, checked: `None` when it has errors, `Some(None)` when
    /// the stage has none.
    fn admission(&mut self, at: &str, c: &Checked) -> Option<Option<AdmissionPlan>> {
        let Some(admission) = &c.config.admission else { return Some(None) };
        let at = format!("{at}.admission");
        let errors = self.errors.len();
        let plan = match admission {
            AdmissionConfig::LatencyTarget(a) => {
                let target = self.admission_ms(&at, "target_ms", a.target_ms);
                self.percentile(&at, a.percentile);
                let sample_window = self.admission_ms(&at, "sample_ms", a.sample_ms);
                self.sample_every(&at, a.sample_every);
                if !(0.0..1.0).contains(&a.smoothing) {
                    self.error(
                        format!("{at}.smoothing"),
                        format!("smoothing must be at least 0 and below 1, not {}", a.smoothing),
                        Some("0.7 keeps 70% of the old estimate and takes 30% of the new sample".into()),
                    );
                }
                if !(a.min_rate > 0.0 && a.min_rate <= a.max_rate && a.max_rate <= ranges::MAX_RATE) {
                    self.error(
                        format!("{at}.min_rate"),
                        format!(
                            "the rates must satisfy 0 < min_rate <= max_rate <= {}, not {} and {}",
                            ranges::MAX_RATE,
                            a.min_rate,
                            a.max_rate
                        ),
                        None,
                    );
                }
                let classes = a.classes.as_ref().map(|classes| {
                    let path = format!("{at}.classes");
                    let source = match (&classes.attribute, &classes.header) {
                        (Some(attribute), None) => {
                            if attribute.is_empty() {
                                self.error(format!("{path}.attribute"), "a class attribute needs a name", None);
                            }
                            ClassSource::Attribute(attribute.clone())
                        }
                        (None, Some(header)) => {
                            if !seda_stages::http::is_token(header) {
                                self.error(
                                    format!("{path}.header"),
                                    format!("`{header}` is not an HTTP header name"),
                                    Some("letters, digits and !#$%&'*+-.^_`|~, as `X-Priority`".into()),
                                );
                            }
                            ClassSource::Header(header.clone())
                        }
                        _ => {
                            self.error(
                                path.clone(),
                                "a class comes from an `attribute` or a `header`: name one of the two",
                                None,
                            );
                            ClassSource::Attribute(String::new())
                        }
                    };
                    let mut names: Vec<&String> = classes.order.iter().collect();
                    names.sort();
                    names.dedup();
                    if classes.order.is_empty() || classes.order.len() > ranges::MAX_CLASSES {
                        self.error(
                            format!("{path}.order"),
                            format!("there must be 1 to {} classes, not {}", ranges::MAX_CLASSES, classes.order.len()),
                            None,
                        );
                    } else if names.len() != classes.order.len() {
                        self.error(format!("{path}.order"), "a class is named twice", None);
                    }
                    (source, classes.order.clone())
                });
                // Each class's target: its own, or the controller's.
                let classes_n = a.classes.as_ref().map_or(1, |c| c.order.len().max(1));
                let class_targets = match a.classes.as_ref().and_then(|c| c.targets_ms.as_ref()) {
                    None => vec![target; classes_n],
                    Some(targets) => {
                        let path = format!("{at}.classes");
                        if targets.len() != classes_n {
                            self.error(
                                format!("{path}.targets_ms"),
                                format!(
                                    "{} targets for {} classes: give one per class, in `order`",
                                    targets.len(),
                                    classes_n
                                ),
                                None,
                            );
                        }
                        targets
                            .iter()
                            .enumerate()
                            .map(|(i, &ms)| self.admission_ms(&path, &format!("targets_ms[{i}]"), ms))
                            .collect()
                    }
                };
                AdmissionPlan::LatencyTarget(LatencyTargetPlan {
                    target,
                    percentile: a.percentile,
                    sample_every: a.sample_every,
                    sample_window,
                    smoothing: a.smoothing,
                    adjust: a.adjust,
                    min_rate: a.min_rate,
                    max_rate: a.max_rate,
                    classes,
                    class_targets,
                })
            }
            AdmissionConfig::ConcurrencyLimit(a) => {
                let target = self.admission_ms(&at, "target_ms", a.target_ms);
                self.percentile(&at, a.percentile);
                let sample_window = self.admission_ms(&at, "sample_ms", a.sample_ms);
                self.sample_every(&at, a.sample_every);
                if !(1 <= a.min_limit && a.min_limit <= a.initial_limit && a.initial_limit <= a.max_limit) {
                    self.error(
                        format!("{at}.initial_limit"),
                        format!(
                            "the limits must satisfy 1 <= min_limit <= initial_limit <= max_limit, not {}, {} and {}",
                            a.min_limit, a.initial_limit, a.max_limit
                        ),
                        None,
                    );
                }
                if !(a.backoff > 0.0 && a.backoff < 1.0) {
                    self.error(
                        format!("{at}.backoff"),
                        format!("backoff must be above 0 and below 1, not {}", a.backoff),
                        Some("0.9 cuts the limit by a tenth".into()),
                    );
                }
                AdmissionPlan::ConcurrencyLimit(ConcurrencyLimitPlan {
                    target,
                    percentile: a.percentile,
                    sample_every: a.sample_every,
                    sample_window,
                    initial_limit: a.initial_limit,
                    min_limit: a.min_limit,
                    max_limit: a.max_limit,
                    backoff: a.backoff,
                })
            }
            AdmissionConfig::Codel(a) => AdmissionPlan::Codel(CodelPlan {
                target: self.admission_ms(&at, "target_ms", a.target_ms),
                interval: self.admission_ms(&at, "interval_ms", a.interval_ms),
            }),
        };
        (self.errors.len() == errors).then_some(Some(plan))
    }

    /// A controller's duration in (fractional) milliseconds: above 0, at most an hour.
    fn admission_ms(&mut self, at: &str, field: &str, ms: f64) -> Duration {
        if !(ms > 0.0 && ms <= ranges::MAX_MS as f64) {
            self.error(
                format!("{at}.{field}"),
                format!("{field} must be above 0 and at most {}, not {ms}", ranges::MAX_MS),
                None,
            );
            return Duration::ZERO;
        }
        Duration::from_secs_f64(ms / 1e3)
    }

    fn percentile(&mut self, at: &str, p: f64) {
        if !(p > 0.0 && p <= 100.0) {
            self.error(
                format!("{at}.percentile"),
                format!("percentile must be above 0 and at most 100, not {p}"),
                None,
            );
        }
    }

    fn sample_every(&mut self, at: &str, n: u32) {
        if n == 0 || n > ranges::MAX_SAMPLE_EVERY {
            self.error(
                format!("{at}.sample_every"),
                format!("sample_every must be 1 to {}, not {n}", ranges::MAX_SAMPLE_EVERY),
                None,
            );
        }
    }

    /// The successor of each output and the output names, checked against the kind's outputs.
    fn wiring(&mut self, c: &Checked, stages: &Stages) -> Option<(Vec<usize>, Vec<String>)> {
        let at = format!("{}.next", key("$.stages", &c.name));
        let Some(factory) = &c.factory else {
            // Without a factory its outputs are unknown, but the stages its `next` names are still
            // checked, so that a bad kind or params does not hide a bad successor.
            match &c.config.next {
                Some(Value::String(next)) => {
                    self.stage_ref(&at, next, stages);
                }
                Some(Value::Object(map)) => {
                    for (output, next) in map {
                        if let Value::String(next) = next {
                            self.stage_ref(&key(&at, output), next, stages);
                        }
                    }
                }
                _ => {}
            }
            return None;
        };
        let outputs = factory.outputs();
        let kind = &c.config.kind;
        match (outputs, &c.config.next) {
            (Outputs::Terminal, None) => Some((Vec::new(), Vec::new())),
            (Outputs::Terminal, Some(_)) => {
                self.error(
                    at,
                    format!("`{kind}` ends every request, so it has no `next`"),
                    Some("remove `next`".into()),
                );
                None
            }
            (Outputs::Single, Some(Value::String(next))) => {
                Some((vec![self.stage_ref(&at, next, stages)?], vec!["next".into()]))
            }
            (Outputs::Single, None) => {
                self.error(
                    at,
                    format!("stage `{}` needs a `next`", c.name),
                    Some("name the stage that comes after it".into()),
                );
                None
            }
            (Outputs::Single, Some(_)) => {
                self.error(at, format!("`{kind}` has one successor: `next` is a stage name"), None);
                None
            }
            (Outputs::Named(names), Some(Value::Object(map))) => {
                let mut successors = Vec::new();
                let mut ok = true;
                for name in &names {
                    match map.get(name) {
                        Some(Value::String(s)) => match self.stage_ref(&key(&at, name), s, stages) {
                            Some(id) => successors.push(id),
                            None => ok = false,
                        },
                        Some(other) => {
                            self.error(
                                key(&at, name),
                                format!("output `{name}` must name a stage, not {other}"),
                                Some(format!("wire it as `\"{name}\": \"<stage>\"`")),
                            );
                            ok = false;
                        }
                        None => {
                            self.error(
                                at.clone(),
                                format!("output `{name}` is not wired"),
                                Some(format!("add `\"{name}\": \"<stage>\"`")),
                            );
                            ok = false;
                        }
                    }
                }
                for extra in map.keys().filter(|k| !names.contains(k)) {
                    self.error(
                        key(&at, extra),
                        format!("`{kind}` has no output `{extra}`"),
                        Some(format!("its outputs are {}", names.join(", "))),
                    );
                    ok = false;
                }
                ok.then_some((successors, names))
            }
            (Outputs::Named(names), _) => {
                let wire = names.iter().map(|n| format!("\"{n}\": \"<stage>\"")).collect::<Vec<_>>().join(", ");
                self.error(
                    at,
                    format!("stage `{}` has outputs {}: wire each", c.name, names.join(", ")),
                    Some(format!("`\"next\": {{{wire}}}`")),
                );
                None
            }
        }
    }

    /// Every stage reachable from the entry; from every stage, a path to a terminal stage.
    /// Refuses a stage that needs what the source cannot give its requests (an HTTP request to
    /// answer) and that the source's requests can reach: such a pipeline would validate, then
    /// fail every request that got there.
    fn needs(&mut self, source: &SourcePlan, checked: &[Checked], edges: &[&[usize]]) {
        let http = matches!(source, SourcePlan::Http(_));
        let mut reachable = vec![false; checked.len()];
        let mut todo = vec![source.entry()];
        reachable[source.entry()] = true;
        while let Some(s) = todo.pop() {
            for &next in edges[s] {
                if !std::mem::replace(&mut reachable[next], true) {
                    todo.push(next);
                }
            }
        }
        for (c, _) in checked.iter().zip(reachable).filter(|(_, r)| *r) {
            let needs = self.registry.kind(&c.config.kind).map_or(Needs::Nothing, |k| k.needs);
            if needs == Needs::HttpRequest && !http {
                self.error(
                    format!("{}.kind", key("$.stages", &c.name)),
                    format!(
                        "stage `{}` ({}) needs {}, and the pipeline's source gives its requests none",
                        c.name,
                        c.config.kind,
                        needs.describe()
                    ),
                    Some("serve the pipeline from an `http` source, or end it with `respond`".into()),
                );
            }
        }
    }

    fn graph(&mut self, names: &[&str], edges: &[&[usize]], entry: usize) {
        let n = names.len();
        let mut reachable = vec![false; n];
        let mut todo = VecDeque::from([entry]);
        reachable[entry] = true;
        while let Some(s) = todo.pop_front() {
            for &t in edges[s] {
                if !std::mem::replace(&mut reachable[t], true) {
                    todo.push_back(t);
                }
            }
        }
        // Backwards from the terminal stages: who can end.
        let mut ends = vec![false; n];
        let mut todo: VecDeque<usize> = (0..n).filter(|&s| edges[s].is_empty()).collect();
        for &s in &todo {
            ends[s] = true;
        }
        while let Some(t) = todo.pop_front() {
            for s in 0..n {
                if !ends[s] && edges[s].contains(&t) {
                    ends[s] = true;
                    todo.push_back(s);
                }
            }
        }
        for s in 0..n {
            if !reachable[s] {
                self.error(
                    key("$.stages", names[s]),
                    format!("stage `{}` cannot be reached from the entry `{}`", names[s], names[entry]),
                    Some("wire it from a `next`, or remove it".into()),
                );
            } else if !ends[s] {
                self.error(
                    format!("{}.next", key("$.stages", names[s])),
                    format!("every path from stage `{}` loops without reaching a terminal stage", names[s]),
                    Some("give the cycle an exit to a `respond` stage".into()),
                );
            }
        }
    }
}

/// The hint naming the source kinds.
fn source_kinds_hint() -> Option<String> {
    Some(match SOURCE_KINDS {
        [kind] => format!("the only kind is `{kind}`"),
        kinds => format!("the kinds are {}", kinds.iter().map(|k| format!("`{k}`")).collect::<Vec<_>>().join(", ")),
    })
}

/// The known fields an "unknown field" message of serde lists (`unknown field `x`, expected
/// one of `a`, `b``, `... expected `a``, `... there are no fields`), or `None` for any other
/// message.
fn unknown_field_expected(message: &str) -> Option<Vec<String>> {
    let rest = message.strip_prefix("unknown field `")?;
    let (_, after) = rest.split_once("`, ")?;
    // The names are between backticks, after the field itself.
    Some(after.split('`').skip(1).step_by(2).map(str::to_owned).collect())
}

/// Removes the object key at the end of `path` from `value`; whether there was one.
fn remove_at(value: &mut Value, path: &[Segment]) -> bool {
    let Some((Segment::Map { key }, parents)) = path.split_last() else { return false };
    let mut at = value;
    for segment in parents {
        let next = match segment {
            Segment::Map { key } => at.get_mut(key.as_str()),
            Segment::Seq { index } => at.get_mut(*index),
            _ => None,
        };
        match next {
            Some(next) => at = next,
            None => return false,
        }
    }
    at.as_object_mut().is_some_and(|object| object.remove(key.as_str()).is_some())
}

/// `base.name`, or `base['name']` when the name is not a plain identifier.
pub(super) fn key(base: &str, name: &str) -> String {
    if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
        format!("{base}.{name}")
    } else {
        format!("{base}['{}']", name.replace('\'', "\\'"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn machine_without_a_cpu_list_counts_as_cpu_0() {
        assert_eq!(cpus_or_cpu_0(None), [0]);
        assert_eq!(cpus_or_cpu_0(Some(Vec::new())), [0]);
        assert_eq!(cpus_or_cpu_0(Some(vec![2, 3])), [2, 3]);
    }

    #[test]
    fn machine_cpus_is_never_empty() {
        assert!(!machine_cpus().is_empty());
    }

    #[test]
    fn a_thread_count_past_the_limit_is_an_error_not_an_abort() {
        // Found by the `config_validate` fuzz target: `threads` of 2^64 - 1 overflowed the
        // plan's thread list ("capacity overflow"), and 10^12 would have exhausted memory.
        for threads in [u64::MAX, 1_000_000_000_000, 100_000] {
            let config = serde_json::json!({
                "name": "many",
                "source": { "kind": "generator", "requests": 1, "entry": "a" },
                "pools": { "main": { "threads": threads } },
                "stages": { "a": { "kind": "respond", "pool": "main" } }
            });
            let errors = validate_with_cpus(&config, &[0]).err().expect("an error");
            let texts: Vec<String> = errors.0.iter().map(|e| e.to_string()).collect();
            assert!(
                texts
                    .iter()
                    .any(|t| t
                        .starts_with(&format!("$.pools.main.threads: a pool has at most 1024 threads, not {threads}"))),
                "{texts:?}"
            );
        }
    }
}
