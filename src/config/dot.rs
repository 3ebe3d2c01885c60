//! The stage graph as Graphviz DOT: a cluster per pool (with its CPUs), a node per stage (with
//! its kind and queue), an edge per wired output.

use std::fmt::Write;

use super::{Plan, SourcePlan, WhenFull};

pub fn to_dot(plan: &Plan) -> String {
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "digraph \"{}\" {{", escape(&plan.name));
    let _ = writeln!(w, "  rankdir=LR;\n  node [shape=record, fontname=\"monospace\"];");
    let source = match &plan.source {
        SourcePlan::Generator { requests, rate, placement, .. } => {
            let rate = match rate {
                super::Rate::Max => "max".to_string(),
                super::Rate::PerSecond(r) => format!("{r}/s"),
            };
            let placed = match placement {
                super::SourcePlacement::Thread => "",
                super::SourcePlacement::Workers => "\\nin the entry pool's workers",
            };
            format!("generator\\n{requests} requests @ {rate}{placed}")
        }
        SourcePlan::Http(http) => format!("http\\n{}", http.listen),
        SourcePlan::External { .. } => "external\\n(the program's own)".to_string(),
        SourcePlan::Nats(nats) => format!("nats\\n{} ({})", nats.subject, nats.queue_group),
        SourcePlan::JetStream(js) => format!("jetstream\\n{} ({})", js.stream, js.consumer),
    };
    let _ = writeln!(w, "  source [shape=oval, label=\"{source}\"];");
    for (p, pool) in plan.pools.iter().enumerate() {
        let cpus = pool.threads.iter().map(|t| t.cpu.to_string()).collect::<Vec<_>>().join(",");
        let _ = writeln!(w, "  subgraph cluster_{p} {{");
        let threads = plural(pool.threads.len(), "thread");
        let _ = writeln!(w, "    label=\"pool {} ({threads}, CPUs {cpus})\";", escape(&pool.name));
        for &s in &pool.stages {
            let stage = &plan.stages[s];
            let policy = match stage.queue.when_full {
                WhenFull::Reject => "reject",
                WhenFull::Block => "block",
                WhenFull::DropOldest => "drop_oldest",
            };
            let _ = writeln!(
                w,
                "    s{s} [label=\"{{{}|{}|queue {} {}}}\"];",
                escape(&stage.name),
                escape(&stage.kind),
                stage.queue.capacity,
                policy
            );
        }
        let _ = writeln!(w, "  }}");
    }
    let _ = writeln!(w, "  source -> s{};", plan.source.entry());
    for (s, stage) in plan.stages.iter().enumerate() {
        let branching = stage.output_names.len() > 1 || stage.output_names.first().is_some_and(|n| n != "next");
        for (next, name) in stage.successors.iter().zip(&stage.output_names) {
            if branching {
                let _ = writeln!(w, "  s{s} -> s{next} [label=\"{}\"];", escape(name));
            } else {
                let _ = writeln!(w, "  s{s} -> s{next};");
            }
        }
    }
    out.push_str("}\n");
    out
}

/// `1 thread`, `2 threads`.
fn plural(n: usize, noun: &str) -> String {
    format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
}

/// Escapes a string for a DOT label, record fields included.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '"' | '\\' | '{' | '}' | '|' | '<' | '>') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}
