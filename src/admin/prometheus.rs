//! A [`Snapshot`] in the Prometheus text exposition format, version 0.0.4: each family with its
//! `# HELP` and `# TYPE` lines, then its samples. Counters end in `_total`; times are in seconds
//! (Prometheus's base unit); latencies are summaries (quantiles 0.5, 0.9, 0.99, 0.999 since the
//! engine started, `_sum` and `_count`), whose quantiles are `NaN` while nothing was recorded.

use std::fmt::Write;

use crate::engine::Snapshot;
use crate::metrics::{Percentiles, SourceStats, StatMetric};

/// A summary's quantile label, and the [`Percentiles`] field that holds it.
type Quantile = (&'static str, fn(&Percentiles) -> f64);

/// The quantiles of every summary.
const QUANTILES: [Quantile; 4] = [("0.5", |p| p.p50), ("0.9", |p| p.p90), ("0.99", |p| p.p99), ("0.999", |p| p.p999)];

/// Renders `s` as Prometheus text; `source_metrics` names the source's own stats.
pub fn render(s: &Snapshot, source_metrics: &[StatMetric]) -> String {
    let mut out = Exposition(String::with_capacity(8 * 1024));
    let o = &mut out;

    o.family("seda_pipeline_info", "gauge", "The pipeline being run (always 1).");
    o.sample("seda_pipeline_info", &[("pipeline", &s.pipeline)], 1.0);
    o.family("seda_uptime_seconds", "gauge", "Seconds since the engine started.");
    o.sample("seda_uptime_seconds", &[], s.uptime_s);

    let l = &s.ledger;
    let ledger: [(&str, &str, u64); 5] = [
        ("seda_ledger_admitted_total", "Requests admitted.", l.admitted),
        ("seda_ledger_completed_total", "Requests that ended completed.", l.completed),
        ("seda_ledger_rejected_total", "Requests that ended rejected (full queue, shutdown, ...).", l.rejected),
        ("seda_ledger_failed_total", "Requests that ended failed (a stage's error or panic).", l.failed),
        ("seda_ledger_timed_out_total", "Requests that ended timed out.", l.timed_out),
    ];
    for (name, help, value) in ledger {
        o.family(name, "counter", help);
        o.sample(name, &[], value as f64);
    }
    o.family("seda_ledger_in_flight", "gauge", "Requests admitted and not yet ended.");
    o.sample("seda_ledger_in_flight", &[], l.in_flight as f64);

    type StageField = fn(&crate::engine::StageSnapshot) -> u64;
    let per_stage: [(&str, &str, &str, StageField); 6] = [
        ("seda_stage_handled_total", "counter", "Handler calls of the stage.", |st| st.handled),
        ("seda_stage_rejected_total", "counter", "Requests the stage rejected (its queue full, ...).", |st| {
            st.rejected
        }),
        ("seda_stage_failed_total", "counter", "Requests that failed in the stage.", |st| st.failed),
        ("seda_stage_timed_out_total", "counter", "Requests that timed out at the stage.", |st| st.timed_out),
        ("seda_stage_queue_depth", "gauge", "Requests waiting in the stage's queue.", |st| st.queue_depth),
        ("seda_stage_queue_capacity", "gauge", "The most requests the stage's queue holds.", |st| st.queue_capacity),
    ];
    for (name, kind, help, field) in per_stage {
        o.family(name, kind, help);
        for st in &s.stages {
            o.sample(name, &[("stage", &st.name), ("pool", &st.pool)], field(st) as f64);
        }
    }
    let name = "seda_stage_queue_wait_seconds";
    o.family(name, "summary", "Time requests waited in the stage's queue.");
    for st in &s.stages {
        o.summary(name, &[("stage", &st.name)], &st.queue_wait_us);
    }
    let name = "seda_stage_service_seconds";
    o.family(
        name,
        "summary",
        "Time in the stage's handler (sampled; each sample counts for the requests it stands for).",
    );
    for st in &s.stages {
        o.summary(name, &[("stage", &st.name)], &st.service_us);
    }
    let name = "seda_stage_io_wait_seconds";
    o.family(
        name,
        "summary",
        "Time the asynchronous operations the stage asked for (timers, file reads, its own operations) took.",
    );
    for st in &s.stages {
        o.summary(name, &[("stage", &st.name)], &st.io_wait_us);
    }
    admission_families(o, s);
    let name = "seda_stage_batch_size";
    o.family(name, "gauge", "The most requests handed to the stage's queue at a time (its batch, fixed or adaptive).");
    for st in &s.stages {
        o.sample(name, &[("stage", &st.name)], st.batch_size as f64);
    }
    let name = "seda_end_to_end_seconds";
    o.family(name, "summary", "Time from a request's intended start to its completion.");
    o.summary(name, &[], &s.latency_us);

    o.family("seda_pool_threads", "gauge", "Worker threads of the pool serving now.");
    for p in &s.pools {
        o.sample("seda_pool_threads", &[("pool", &p.name)], p.threads as f64);
    }
    let name = "seda_pool_max_threads";
    o.family(name, "gauge", "The most worker threads the pool may have (max_threads, else its threads).");
    for p in &s.pools {
        o.sample(name, &[("pool", &p.name)], p.max_threads as f64);
    }
    let name = "seda_pool_busy_seconds_total";
    o.family(name, "counter", "Time the pool's workers had work, summed over them.");
    for p in &s.pools {
        o.sample(name, &[("pool", &p.name)], p.busy_s);
    }
    let name = "seda_pool_utilisation_ratio";
    o.family(name, "gauge", "Share of the pool's worker time with work since the engine started.");
    for p in &s.pools {
        o.sample(name, &[("pool", &p.name)], p.utilisation);
    }
    let name = "seda_pool_idle_spin_seconds_total";
    o.family(name, "counter", "Time the pool's workers spun, idle, looking for work, summed over them.");
    for p in &s.pools {
        o.sample(name, &[("pool", &p.name)], p.idle_spin_s);
    }
    let name = "seda_idle_spin_seconds_per_request";
    o.family(name, "gauge", "CPU time workers spun idle, per completed request, since the engine started.");
    let spin_ns = s.pools.iter().map(|p| p.idle_spin_s * 1e9).sum::<f64>() as u64;
    o.sample(name, &[], crate::metrics::per_request_us(spin_ns, s.ledger.completed) / 1e6);
    if let Some(stats) = &s.source {
        source_families(o, stats, source_metrics);
    }
    out.0
}

/// The stages' admission controllers: families only for what some stage has, so a pipeline
/// without controllers shows none.
fn admission_families(o: &mut Exposition, s: &Snapshot) {
    let gated: Vec<_> = s.stages.iter().filter_map(|st| Some((st, st.admission.as_ref()?))).collect();
    type Field = fn(&crate::engine::AdmissionSnapshot) -> Option<f64>;
    let families: [(&str, &str, &str, Field); 6] = [
        ("seda_admission_admitted_total", "counter", "Requests the stage's admission controller let through.", |a| {
            Some(a.admitted as f64)
        }),
        ("seda_admission_shed_total", "counter", "Requests the stage's admission controller shed (overload).", |a| {
            Some(a.shed as f64)
        }),
        ("seda_admission_rate", "gauge", "latency_target: the admission rate, requests per second.", |a| a.rate),
        ("seda_admission_limit", "gauge", "concurrency_limit: the most requests at the stage.", |a| {
            a.limit.map(|l| l as f64)
        }),
        ("seda_admission_latency_seconds", "gauge", "The latency the controller steers by.", |a| {
            a.latency_ms.map(|ms| ms / 1e3)
        }),
        ("seda_admission_dropping", "gauge", "codel: 1 while it is shedding.", |a| {
            a.dropping.map(|d| if d { 1.0 } else { 0.0 })
        }),
    ];
    for (name, kind, help, field) in families {
        let samples: Vec<_> = gated.iter().filter_map(|(st, a)| Some((st, a, field(a)?))).collect();
        if samples.is_empty() {
            continue;
        }
        o.family(name, kind, help);
        for (st, a, value) in samples {
            o.sample(name, &[("stage", &st.name), ("controller", a.controller.name())], value);
        }
    }
    type ClassField = fn(&crate::engine::ClassSnapshot) -> f64;
    let per_class: [(&str, &str, &str, ClassField); 3] = [
        ("seda_admission_class_rate", "gauge", "latency_target: a service class's admission rate.", |c| c.rate),
        ("seda_admission_class_admitted_total", "counter", "Requests of a service class let through.", |c| {
            c.admitted as f64
        }),
        ("seda_admission_class_shed_total", "counter", "Requests of a service class shed.", |c| c.shed as f64),
    ];
    if gated.iter().all(|(_, a)| a.classes.is_empty()) {
        return;
    }
    for (name, kind, help, field) in per_class {
        o.family(name, kind, help);
        for (st, a) in &gated {
            for c in &a.classes {
                o.sample(name, &[("stage", &st.name), ("class", &c.name)], field(c));
            }
        }
    }
}

/// A source's own stats, named as the source says ([`StatMetric`]), or by a name of their
/// own (`seda_source_<kind>_<name>`); a per-worker count has a sample per worker, labelled
/// `worker`. The samples of one metric are written together, after its family's header, as the
/// exposition format requires.
fn source_families(o: &mut Exposition, stats: &SourceStats, named: &[StatMetric]) {
    /// One metric: its name, type, help text, and samples (labels, value).
    struct Family {
        metric: String,
        kind: &'static str,
        help: String,
        samples: Vec<(Vec<(&'static str, String)>, u64)>,
    }
    let mut families: Vec<Family> = Vec::new();
    // Each sample: its stat, whether it is a count, its worker (if per worker), its value.
    let counts = stats.counts.iter().map(|(stat, &value)| (stat, true, None, value));
    let levels = stats.levels.iter().map(|(stat, &value)| (stat, false, None, value));
    let per_worker = stats.per_worker.iter().flat_map(|(stat, values)| {
        values.iter().enumerate().map(move |(worker, &value)| (stat, true, Some(worker), value))
    });
    let all = counts.chain(levels).chain(per_worker);
    for (stat, is_count, worker, value) in all {
        let kind = if is_count { "counter" } else { "gauge" };
        let (metric, labels, help) = match named.iter().find(|m| m.stat == stat) {
            Some(m) => (m.metric.to_string(), m.labels, m.help.to_string()),
            None => {
                let suffix = if is_count { "_total" } else { "" };
                let metric = format!("seda_source_{}_{stat}{suffix}", stats.kind);
                (metric, &[][..], format!("The {} source's `{stat}`.", stats.kind))
            }
        };
        let mut labels: Vec<(&'static str, String)> = labels.iter().map(|&(l, v)| (l, v.to_string())).collect();
        labels.extend(worker.map(|w| ("worker", w.to_string())));
        match families.iter_mut().find(|f| f.metric == metric) {
            Some(family) => family.samples.push((labels, value)),
            None => families.push(Family { metric, kind, help, samples: vec![(labels, value)] }),
        }
    }
    for Family { metric, kind, help, samples } in families {
        o.family(&metric, kind, &help);
        for (labels, value) in samples {
            let labels: Vec<(&str, &str)> = labels.iter().map(|(l, v)| (*l, v.as_str())).collect();
            o.sample(&metric, &labels, value as f64);
        }
    }
}

struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.0, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.0.push_str(name);
        if !labels.is_empty() {
            self.0.push('{');
            for (i, (label, value)) in labels.iter().enumerate() {
                let comma = if i == 0 { "" } else { "," };
                let _ = write!(self.0, "{comma}{label}=\"{}\"", escape_label(value));
            }
            self.0.push('}');
        }
        let _ = writeln!(self.0, " {}", number(value));
    }

    /// A summary's samples from percentiles in microseconds.
    fn summary(&mut self, name: &str, labels: &[(&str, &str)], p: &Percentiles) {
        // Whole nanoseconds, which print as short decimals (1234567 ns is 0.001234567).
        let seconds = |us: f64| (us * 1e3).round() / 1e9;
        for (quantile, field) in QUANTILES {
            let mut with_quantile = labels.to_vec();
            with_quantile.push(("quantile", quantile));
            let value = if p.count == 0 { f64::NAN } else { seconds(field(p)) };
            self.sample(name, &with_quantile, value);
        }
        self.sample(&format!("{name}_sum"), labels, seconds(p.mean * p.count as f64));
        self.sample(&format!("{name}_count"), labels, p.count as f64);
    }
}

/// A sample value as Prometheus (Go's `ParseFloat`) reads it.
fn number(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        (if v > 0.0 { "+Inf" } else { "-Inf" }).into()
    } else {
        // Rust prints integers without a fraction and never in exponent form: both parse.
        format!("{v}")
    }
}

fn escape_label(value: &str) -> String {
    value.replace('\\', r"\\").replace('"', "\\\"").replace('\n', r"\n")
}

fn escape_help(text: &str) -> String {
    text.replace('\\', r"\\").replace('\n', r"\n")
}
