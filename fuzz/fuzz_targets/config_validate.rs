//! Config validation (`seda::config::validate_with_cpus`) on arbitrary JSON: it never panics and
//! always answers, a plan or a list of errors.
//!
//! The JSON is built from the input so that most of it gets past the first checks:
//! - input that is a JSON document is taken as it is;
//! - otherwise the first byte picks a base, one of the example configs in `configs/` (or an empty
//!   object), and the rest of the input drives edits to it: walk to a node by choosing among its
//!   children, then replace it with a generated value (numbers at the edges of every range:
//!   0, negative, fractions, 10^12, 10^308, 2^64; names of fields, kinds and stages; nested
//!   arrays and objects), remove it, or add a field beside it.
//!
//! A config that validates is not started here: starting spawns pinned threads and binds
//! sockets, which a fuzz loop cannot afford per input.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Number, Value};

const BASES: &[&str] = &[
    include_str!("../../configs/branching.json"),
    include_str!("../../configs/compute.json"),
    include_str!("../../configs/faults.json"),
    include_str!("../../configs/http_hello.json"),
    include_str!("../../configs/http_mixed.json"),
    include_str!("../../configs/http_static.json"),
    include_str!("../../configs/noop4.json"),
    include_str!("../../configs/noop4_dedicated.json"),
    include_str!("../../configs/noop4_workers.json"),
    include_str!("../../configs/timers.json"),
    "{}",
];

/// Field names of the config and of the stage kinds' params, kinds, and the stage and pool
/// names the example configs use, so that edits make configs the validator reads deeply.
const WORDS: &[&str] = &[
    "admin",
    "allow",
    "block_timeout_ms",
    "body",
    "bounds",
    "capacity",
    "capacity_bytes",
    "cases",
    "content_type",
    "cost",
    "cpu",
    "cpus",
    "deadline_ms",
    "default",
    "drain_timeout_ms",
    "entry",
    "fail",
    "field",
    "file_threads",
    "header_timeout_ms",
    "headers",
    "idle_timeout_ms",
    "io_capacity",
    "kind",
    "level",
    "listen",
    "max_body_bytes",
    "max_bytes",
    "max_connections",
    "max_head_bytes",
    "max_headers",
    "max_pipelined",
    "message",
    "methods",
    "metrics_interval_ms",
    "micros",
    "min_bytes",
    "name",
    "names",
    "next",
    "panic",
    "params",
    "payload_bytes",
    "placement",
    "pool",
    "pools",
    "prefix",
    "queue",
    "rate",
    "reactor",
    "requests",
    "root",
    "rounds",
    "routes",
    "seed",
    "source",
    "stage_timing_every",
    "stages",
    "status",
    "threads",
    "when_full",
    "weights",
    "generator",
    "http",
    "chaos",
    "delay",
    "file_cache",
    "gzip",
    "hash",
    "http_route",
    "noop",
    "respond",
    "respond_static",
    "route",
    "send",
    "spin",
    "static_file",
    "front",
    "back",
    "main",
    "parse",
    "digest",
    "reply",
    "hit",
    "miss",
    "files",
    "compute",
    "form",
    "any",
    "block",
    "drop",
    "reject",
    "workers",
    "thread",
    "dedicated",
    "127.0.0.1:0",
    "configs/www",
    "GET",
    "",
];

const NUMBERS: &[f64] =
    &[0.0, 1.0, 2.0, -1.0, 0.5, 1e-300, 100.0, 65535.0, 65536.0, 100000.0, 4294967296.0, 1e12, 1e18, 1e308, -1e308];

fuzz_target!(|data: &[u8]| {
    let config = match serde_json::from_slice::<Value>(data) {
        Ok(value) => value,
        Err(_) => edited(data),
    };
    let _ = seda::config::validate_with_cpus(&config, &[0, 1]);
});

/// A base config edited as the input says.
fn edited(data: &[u8]) -> Value {
    let mut input = Input(data);
    let base = BASES[usize::from(input.byte()) % BASES.len()];
    let mut config: Value = serde_json::from_str(base).expect("the example configs are JSON");
    while !input.0.is_empty() {
        edit(&mut config, &mut input, 0);
    }
    config
}

fn edit(node: &mut Value, input: &mut Input, depth: usize) {
    let choice = input.byte();
    // Go deeper while the input says so and there is somewhere to go.
    if choice % 4 != 0 && depth < 8 {
        match node {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(usize::from(input.byte()) % map.len()).cloned().unwrap();
                return edit(map.get_mut(&key).unwrap(), input, depth + 1);
            }
            Value::Array(items) if !items.is_empty() => {
                let at = usize::from(input.byte()) % items.len();
                return edit(&mut items[at], input, depth + 1);
            }
            _ => {}
        }
    }
    match (choice >> 2) % 4 {
        0 | 1 => *node = value(input, 2),
        2 => match node {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(usize::from(input.byte()) % map.len()).cloned().unwrap();
                map.remove(&key);
            }
            Value::Array(items) if !items.is_empty() => {
                items.remove(usize::from(input.byte()) % items.len());
            }
            _ => *node = Value::Null,
        },
        _ => match node {
            Value::Object(map) => {
                map.insert(word(input), value(input, 2));
            }
            Value::Array(items) => items.push(value(input, 2)),
            _ => *node = value(input, 2),
        },
    }
}

fn value(input: &mut Input, depth: usize) -> Value {
    let choice = input.byte();
    match choice % 8 {
        0 => Value::Null,
        1 => Value::Bool(choice & 8 != 0),
        2 => Value::from(input.byte()),
        3 => Number::from_f64(NUMBERS[usize::from(input.byte()) % NUMBERS.len()]).map_or(Value::Null, Value::Number),
        4 => Value::from(if choice & 8 != 0 { u64::MAX } else { i64::MIN as u64 }),
        5 => Value::String(word(input)),
        6 if depth > 0 => Value::Array((0..input.byte() % 4).map(|_| value(input, depth - 1)).collect()),
        7 if depth > 0 => {
            let mut map = Map::new();
            for _ in 0..input.byte() % 4 {
                map.insert(word(input), value(input, depth - 1));
            }
            Value::Object(map)
        }
        _ => Value::String(String::from_utf8_lossy(input.take(usize::from(input.peek() % 16))).into_owned()),
    }
}

fn word(input: &mut Input) -> String {
    WORDS[usize::from(input.byte()) % WORDS.len()].to_string()
}

/// The input, read a byte at a time; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl<'a> Input<'a> {
    fn byte(&mut self) -> u8 {
        let (&first, rest) = self.0.split_first().unwrap_or((&0, &[]));
        self.0 = rest;
        first
    }

    fn peek(&self) -> u8 {
        self.0.first().copied().unwrap_or(0)
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let (taken, rest) = self.0.split_at(n.min(self.0.len()));
        self.0 = rest;
        taken
    }
}
