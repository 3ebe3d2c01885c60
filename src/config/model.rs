//! The config as users write it: serde types, unknown fields rejected. [`super::validate`] turns
//! them into a [`super::Plan`]; nothing else reads them.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One pipeline. Sections are kept as raw JSON here so that validation can check each part on
/// its own and report every error, not only the first.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PipelineConfig {
    pub name: String,
    pub source: Value,
    #[serde(default)]
    pub pools: BTreeMap<String, Value>,
    pub stages: BTreeMap<String, Value>,
    /// A request not ended this long after admission ends as timed out.
    pub deadline_ms: Option<u64>,
    /// How long shutdown waits for in-flight requests before it times them out.
    #[serde(default = "default_drain_timeout_ms")]
    pub drain_timeout_ms: u64,
    /// The most asynchronous operations (timers) in flight at once; past it a request that asks
    /// for one is rejected.
    #[serde(default = "default_io_capacity")]
    pub io_capacity: usize,
    /// How often workers publish their histograms to the metrics thread.
    #[serde(default = "default_metrics_interval_ms")]
    pub metrics_interval_ms: u64,
    /// Per-stage service time is measured on a sample of requests, at least every Nth a worker
    /// takes, more often (up to every request) while the clock's readings cost under 1% of the
    /// stages' time; each sample weighs the requests since the previous one. 1 times every
    /// request. Counts, queue waits and end-to-end latency are exact.
    #[serde(default = "default_stage_timing_every")]
    pub stage_timing_every: u32,
    /// Threads doing blocking file reads for stages that read files.
    #[serde(default = "default_file_threads")]
    pub file_threads: usize,
    /// The admin listener (`/metrics`, `/stats`); none when absent.
    pub admin: Option<Value>,
}

fn default_file_threads() -> usize {
    2
}

/// The admin listener: live stats over HTTP while the pipeline runs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// `IP:port` to listen on; port 0 takes a free port.
    pub listen: String,
}

fn default_stage_timing_every() -> u32 {
    32
}

fn default_drain_timeout_ms() -> u64 {
    5_000
}

fn default_io_capacity() -> usize {
    65_536
}

fn default_metrics_interval_ms() -> u64 {
    1_000
}

/// Where requests come from.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SourceConfig {
    Generator(GeneratorConfig),
    Http(HttpConfig),
    External(ExternalConfig),
    Nats(NatsSourceConfig),
    #[serde(rename = "jetstream")]
    JetStream(JetStreamSourceConfig),
}

/// Durable work: a durable pull consumer on a JetStream stream. Each message is a request,
/// acknowledged when it completes, negatively acknowledged (redelivered after `nak_delay_ms`)
/// when it does not, and after `max_deliver` deliveries published to `dead_letter_subject` and
/// terminated.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JetStreamSourceConfig {
    /// The NATS server's URL, `nats://host:port`.
    #[serde(default = "crate::nats::default_server")]
    pub server: String,
    /// The stream to consume (it must exist).
    pub stream: String,
    /// The durable consumer's name, created if it does not exist; hosts that name the same
    /// consumer share its messages.
    pub consumer: String,
    /// Only the stream's messages on this subject; all of them when absent.
    pub filter_subject: Option<String>,
    /// The stage requests enter.
    pub entry: String,
    /// Messages delivered and not yet acknowledged at most, over all hosts of the consumer
    /// (and as many in this host at most).
    #[serde(default = "default_max_ack_pending")]
    pub max_ack_pending: usize,
    /// Deliveries of one message at most; a request that fails on the last is dead-lettered.
    #[serde(default = "default_max_deliver")]
    pub max_deliver: u32,
    /// How long a failed message waits before it is delivered again.
    #[serde(default = "default_nak_delay_ms")]
    pub nak_delay_ms: u64,
    /// A message delivered and not acknowledged this long (its host died) is delivered again.
    #[serde(default = "default_ack_wait_ms")]
    pub ack_wait_ms: u64,
    /// Where a message that failed `max_deliver` times is published, with its last error.
    pub dead_letter_subject: String,
}

fn default_max_ack_pending() -> usize {
    1_024
}

fn default_max_deliver() -> u32 {
    5
}

fn default_nak_delay_ms() -> u64 {
    1_000
}

fn default_ack_wait_ms() -> u64 {
    30_000
}

/// A NATS service: each message on `subject` (shared with every other subscriber of the same
/// queue group, so that N hosts share the work) is a request; the pipeline's answer is published
/// to the message's reply subject.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsSourceConfig {
    /// The NATS server's URL, `nats://host:port`.
    #[serde(default = "crate::nats::default_server")]
    pub server: String,
    /// The subject to serve (wildcards `*` and `>` allowed).
    pub subject: String,
    /// The queue group: each message goes to one member of it.
    #[serde(default = "default_queue_group")]
    pub queue_group: String,
    /// The stage requests enter.
    pub entry: String,
    /// Messages taken and not yet answered at most; past it the source takes no more until
    /// answers go out, and the server keeps them for the other members of the group.
    #[serde(default = "default_nats_max_in_flight")]
    pub max_in_flight: usize,
}

fn default_queue_group() -> String {
    "seda".into()
}

fn default_nats_max_in_flight() -> usize {
    1_024
}

/// Requests come from the program that runs the pipeline (a source of its own, or code that
/// submits to the engine): the config names only where they enter.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExternalConfig {
    /// The stage requests enter.
    pub entry: String,
}

/// An HTTP/1.1 listener: each framed request is admitted into `entry`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// `host:port`; port 0 takes a free one (the server prints which).
    pub listen: String,
    pub entry: String,
    /// Where connections are polled: in the entry stage's pool's workers, or a thread of its own.
    #[serde(default)]
    pub reactor: SourcePlacement,
    /// With `"reactor": "thread"`: the CPU that thread is pinned to; unpinned when absent.
    pub cpu: Option<usize>,
    /// How the reactors do their socket I/O: `epoll` (readiness) or `uring` (io_uring
    /// completions), or `auto`: io_uring where the kernel allows it, else epoll.
    #[serde(default)]
    pub io: HttpIo,
    /// With io_uring: the longest a sleeping reactor lets the first arrival (a request's bytes,
    /// a connection) wait for others, so that one wake-up serves several, as a network card
    /// coalesces its interrupts. Only at rates where at least two arrive within it, and never
    /// while the reactor waits for answers from other threads; 0 turns it off.
    #[serde(default = "default_coalesce_us")]
    pub coalesce_us: u64,
    /// Open connections at most; past it a new connection is closed at accept, and counted.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open connections from one client address at most; past it a new connection from that
    /// address is closed at accept, and counted.
    #[serde(default = "default_max_connections_per_client")]
    pub max_connections_per_client: usize,
    /// Bytes of answers the whole server holds for clients that have not taken them yet; past
    /// it no connection has more requests framed until clients read (none is dropped).
    #[serde(default = "default_max_unsent_bytes")]
    pub max_unsent_bytes: usize,
    /// The same, per connection: past it that connection has no more requests framed until
    /// its client reads.
    #[serde(default = "default_max_unsent_bytes_per_connection")]
    pub max_unsent_bytes_per_connection: usize,
    /// Requests of one connection in the pipeline at once; past it, its further pipelined
    /// requests wait in its buffer.
    #[serde(default = "default_max_pipelined")]
    pub max_pipelined: usize,
    /// A request head (or the first one, from accept) must arrive within this, else the
    /// connection is answered 408 and closed (slowloris).
    #[serde(default = "default_header_timeout_ms")]
    pub header_timeout_ms: u64,
    /// A keep-alive connection with nothing to do is closed after this.
    #[serde(default = "default_idle_timeout_ms")]
    pub idle_timeout_ms: u64,
    /// A request body must arrive whole within this from the end of its head, else the
    /// connection is answered 408 and closed (a body trickled in to hold the connection).
    #[serde(default = "default_body_timeout_ms")]
    pub body_timeout_ms: u64,
    /// The longest wait for the next bytes of a request body, else 408 and close.
    #[serde(default = "default_body_read_timeout_ms")]
    pub body_read_timeout_ms: u64,
    /// A connection whose requests are all in the pipeline waits at most this for the next of
    /// their answers, then is closed (its requests end in the pipeline and are counted): a
    /// deadline for a pipeline without `deadline_ms`, or a stage that never ends a request.
    #[serde(default = "default_answer_timeout_ms")]
    pub answer_timeout_ms: u64,
    /// A connection with answers unsent waits at most this for the client to take more of
    /// them (a client that does not read), then is closed.
    #[serde(default = "default_send_timeout_ms")]
    pub send_timeout_ms: u64,
    #[serde(default = "default_max_head_bytes")]
    pub max_head_bytes: usize,
    #[serde(default = "default_max_headers")]
    pub max_headers: usize,
    #[serde(default = "default_max_body_bytes")]
    pub max_body_bytes: usize,
}

/// Where a source runs: its HTTP reactors, or its generator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum SourcePlacement {
    /// In each worker of the entry stage's pool, each with its own `SO_REUSEPORT` listener.
    #[default]
    Workers,
    /// One thread of its own, handing requests to the workers through the entry queue.
    Thread,
}

/// How an HTTP source's reactors do their socket I/O.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum HttpIo {
    /// Readiness: epoll (through mio); the reactor reads and writes sockets itself.
    Epoll,
    /// Completions: io_uring; the kernel accepts, receives and sends. Fails to start where the
    /// kernel does not allow it.
    Uring,
    /// io_uring where the kernel allows it, else epoll (one log line says which and why).
    #[default]
    Auto,
}

fn default_coalesce_us() -> u64 {
    100
}

fn default_max_connections() -> usize {
    10_000
}

fn default_max_connections_per_client() -> usize {
    1_024
}

fn default_max_unsent_bytes() -> usize {
    256 << 20
}

fn default_max_unsent_bytes_per_connection() -> usize {
    1 << 20
}

fn default_max_pipelined() -> usize {
    64
}

fn default_header_timeout_ms() -> u64 {
    10_000
}

fn default_idle_timeout_ms() -> u64 {
    60_000
}

fn default_body_timeout_ms() -> u64 {
    60_000
}

fn default_body_read_timeout_ms() -> u64 {
    10_000
}

fn default_answer_timeout_ms() -> u64 {
    60_000
}

fn default_send_timeout_ms() -> u64 {
    60_000
}

fn default_max_head_bytes() -> usize {
    super::Limits::default().max_head_bytes
}

fn default_max_headers() -> usize {
    super::Limits::default().max_headers
}

fn default_max_body_bytes() -> usize {
    super::Limits::default().max_body_bytes
}

/// The in-process generator: `requests` synthetic requests at `rate`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GeneratorConfig {
    pub requests: u64,
    #[serde(default)]
    #[schemars(extend("default" = "max"))]
    pub rate: Rate,
    #[serde(default)]
    pub payload_bytes: usize,
    /// The stage requests enter.
    pub entry: String,
    /// On a thread of its own (the default), or in each worker of the entry stage's pool.
    #[serde(default = "thread_placement")]
    pub placement: SourcePlacement,
    /// With `"placement": "thread"`: the CPU the generator thread is pinned to; unpinned when
    /// absent.
    pub cpu: Option<usize>,
    /// Attributes to set on each request: name to {value: weight}, drawn per request id.
    #[serde(default)]
    pub attributes: BTreeMap<String, BTreeMap<String, u32>>,
}

fn thread_placement() -> SourcePlacement {
    SourcePlacement::Thread
}

/// Requests per second (a number, or a string as `seda load --rate` takes it: `"20k"`), or
/// `"max"`: as fast as the entry queue admits them.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize)]
pub enum Rate {
    #[default]
    Max,
    PerSecond(f64),
}

impl<'de> Deserialize<'de> for Rate {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match Value::deserialize(d)? {
            Value::String(s) if s == "max" => Ok(Rate::Max),
            // "20k", "1.5M", "2000/s": as `seda load --rate` takes them.
            Value::String(s) => crate::units::parse_rate(&s).map(Rate::PerSecond).map_err(|_| {
                serde::de::Error::custom(format!(
                    "rate must be \"max\" or requests per second, not {}",
                    Value::String(s)
                ))
            }),
            Value::Number(n) => match n.as_f64() {
                Some(r) if r > 0.0 && r.is_finite() => Ok(Rate::PerSecond(r)),
                _ => Err(serde::de::Error::custom(format!("rate must be positive, not {n}"))),
            },
            other => Err(serde::de::Error::custom(format!("rate must be \"max\" or requests per second, not {other}"))),
        }
    }
}

impl JsonSchema for Rate {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Rate".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Requests per second (a number, or a string such as \"20k\" or \"1.5M\"), or \"max\": as fast as the entry queue admits them.",
            "anyOf": [
                { "const": "max" },
                { "type": "number", "exclusiveMinimum": 0 },
                { "type": "string", "pattern": "^[0-9.]+[kKmM]?(/s)?$" }
            ]
        })
    }
}

/// A named pool of pinned worker threads.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolConfig {
    /// The CPUs its threads are pinned to, one thread per entry unless `threads` says more.
    pub cpus: Option<Vec<usize>>,
    pub threads: Option<usize>,
    /// How long a worker that runs out of work spins for more before it may sleep, in
    /// microseconds. Spinning spends the CPU; sleeping adds a wake-up (several microseconds) to
    /// the next request. Without it (or 0) the worker decides from what it measures: it spins
    /// only while the next request is expected sooner than a sleep would cost in CPU.
    #[serde(default)]
    pub idle_spin_us: u64,
    /// Lets the pool grow past `threads`, up to this many, on the same CPUs: a thread is added
    /// while requests wait in the pool's queues (more than `grow_queue`) and its CPUs are not
    /// busy, which is what a stage that blocks (a synchronous read, a blocking client) needs;
    /// a thread idle for `shrink_idle_ms` is retired, down to `threads`. Without it the pool
    /// keeps `threads`.
    pub max_threads: Option<usize>,
    /// With `max_threads`: the requests waiting in the pool's queues, at two samples in a row
    /// 10 ms apart, above which it adds a thread. Default 32.
    pub grow_queue: Option<usize>,
    /// With `max_threads`: how long a thread idles before the pool retires one. Default 1000.
    pub shrink_idle_ms: Option<u64>,
}

/// One stage.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct StageConfig {
    pub kind: String,
    #[serde(default)]
    pub params: Value,
    /// The pool serving it; without one the stage gets a dedicated pool (`threads`, `cpus`).
    pub pool: Option<String>,
    pub threads: Option<usize>,
    pub cpus: Option<Vec<usize>>,
    #[serde(default)]
    pub queue: QueueConfig,
    /// Overload control at this stage: an adaptive controller that sheds requests before they
    /// would miss a latency target. Without one, only the queue's static policy applies.
    pub admission: Option<AdmissionConfig>,
    /// The successor: a stage name, or `{output: stage}` for a branching stage.
    pub next: Option<Value>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct QueueConfig {
    #[serde(default = "default_capacity")]
    pub capacity: usize,
    #[serde(default)]
    pub when_full: WhenFull,
    /// With `block`: how long a sender waits for room before the request is rejected.
    #[serde(default = "default_block_timeout_ms")]
    pub block_timeout_ms: u64,
    /// How many requests are handed to the queue at a time, and so taken by a worker at a time:
    /// a number from 1 to 32 (the default), or `"adaptive"`, which moves it between 1 and 32 by
    /// the stage's measured throughput.
    #[serde(default)]
    pub batch: BatchConfig,
}

/// A queue's batch size: fixed, or adjusted by measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum BatchConfig {
    Fixed(usize),
    Adjusted(BatchMode),
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig::Fixed(crate::config::ranges::MAX_BATCH)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BatchMode {
    /// Shrinks the batch while the stage's throughput improves, and grows it when throughput
    /// falls below 0.9 of the best seen (Sandstorm's batching controller).
    Adaptive,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            capacity: default_capacity(),
            when_full: WhenFull::default(),
            block_timeout_ms: default_block_timeout_ms(),
            batch: BatchConfig::default(),
        }
    }
}

fn default_capacity() -> usize {
    4_096
}

fn default_block_timeout_ms() -> u64 {
    100
}

/// What a full queue does with one more request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum WhenFull {
    /// The new request ends at once as rejected.
    #[default]
    Reject,
    /// The sender waits up to `block_timeout_ms` for room, then rejects.
    Block,
    /// The oldest queued request ends as rejected to make room.
    DropOldest,
}

/// A stage's admission controller (see docs/design.md, "Overload control").
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AdmissionConfig {
    LatencyTarget(LatencyTargetConfig),
    ConcurrencyLimit(ConcurrencyLimitConfig),
    Codel(CodelConfig),
}

/// SEDA's response-time controller: a token bucket whose rate is cut while the stage's
/// response time (queue wait plus the worker's run of the request) is above the target, and
/// raised while it is well below.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatencyTargetConfig {
    /// The response time to hold, at `percentile`.
    #[serde(default = "default_target_ms")]
    pub target_ms: f64,
    /// Which percentile of the sampled response times is held to the target.
    #[serde(default = "default_percentile")]
    pub percentile: f64,
    /// The rate is adjusted after this many requests' response times...
    #[serde(default = "default_sample_every")]
    pub sample_every: u32,
    /// ... or this long, whichever comes first.
    #[serde(default = "default_sample_ms")]
    pub sample_ms: f64,
    /// Weight of the previous estimate when a new sample is folded in (0.7: 70% old, 30% new).
    #[serde(default = "default_smoothing")]
    pub smoothing: f64,
    /// How the rate moves: `proportional` (cut in proportion to the error, from the rate
    /// actually admitted; raise by a share of the rate) or `sandstorm` (Sandstorm's arithmetic
    /// as published: divide by 1.2, add 2 (-err - 0.1) requests/s).
    #[serde(default)]
    pub adjust: Adjust,
    /// The rate (requests per second) never goes below this...
    #[serde(default = "default_min_rate")]
    pub min_rate: f64,
    /// ... nor above this; it starts here.
    #[serde(default = "default_max_rate")]
    pub max_rate: f64,
    /// Service classes, highest first: when a higher class misses the target, lower classes
    /// are cut first.
    pub classes: Option<ClassesConfig>,
}

/// How a `latency_target` controller moves its rate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Adjust {
    #[default]
    Proportional,
    Sandstorm,
}

/// Where a request's service class comes from: a request attribute or an HTTP header, one of
/// the two.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ClassesConfig {
    /// The request attribute holding the class name (the generator's `attributes`; in-process,
    /// `seda load --mix` sets `path`).
    pub attribute: Option<String>,
    /// The HTTP request header holding the class name (its first value, as sent).
    pub header: Option<String>,
    /// Class names, highest first. A request whose attribute is missing or names no class
    /// belongs to the last (lowest).
    pub order: Vec<String>,
    /// Each class's own target, in the order of `order`; without it every class has the
    /// controller's `target_ms`.
    pub targets_ms: Option<Vec<f64>>,
}

/// An adaptive limit on the requests at the stage (queued or in service): cut by `backoff`
/// while the response time is above the target, raised by its square root while below.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ConcurrencyLimitConfig {
    #[serde(default = "default_target_ms")]
    pub target_ms: f64,
    #[serde(default = "default_percentile")]
    pub percentile: f64,
    #[serde(default = "default_sample_every")]
    pub sample_every: u32,
    #[serde(default = "default_sample_ms")]
    pub sample_ms: f64,
    /// The limit the stage starts with.
    #[serde(default = "default_initial_limit")]
    pub initial_limit: u32,
    #[serde(default = "default_min_limit")]
    pub min_limit: u32,
    #[serde(default = "default_max_limit")]
    pub max_limit: u32,
    /// The limit is multiplied by this when the target is missed.
    #[serde(default = "default_backoff")]
    pub backoff: f64,
}

/// Controlled delay at dequeue: while the least queue wait over an interval stays above the
/// target, requests that waited longer than the target are shed, at intervals that shrink as
/// interval / sqrt(count).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodelConfig {
    #[serde(default = "default_codel_target_ms")]
    pub target_ms: f64,
    #[serde(default = "default_codel_interval_ms")]
    pub interval_ms: f64,
}

fn default_target_ms() -> f64 {
    20.0
}

fn default_percentile() -> f64 {
    90.0
}

fn default_sample_every() -> u32 {
    100
}

fn default_sample_ms() -> f64 {
    100.0
}

fn default_smoothing() -> f64 {
    0.7
}

fn default_min_rate() -> f64 {
    10.0
}

fn default_max_rate() -> f64 {
    1e6
}

fn default_initial_limit() -> u32 {
    20
}

fn default_min_limit() -> u32 {
    1
}

fn default_max_limit() -> u32 {
    10_000
}

fn default_backoff() -> f64 {
    0.9
}

fn default_codel_target_ms() -> f64 {
    5.0
}

fn default_codel_interval_ms() -> f64 {
    100.0
}
