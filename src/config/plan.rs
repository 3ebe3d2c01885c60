//! The validated pipeline the engine runs: stages by index, successors resolved, pools and CPUs
//! decided. Built only by [`super::validate`].

use std::sync::Arc;
use std::time::Duration;

use seda_stages::StageFactory;

use super::{Adjust, Rate, WhenFull};

/// A stage's index in [`Plan::stages`].
pub type StageId = usize;

pub struct Plan {
    pub name: String,
    pub source: SourcePlan,
    pub stages: Vec<StagePlan>,
    pub pools: Vec<PoolPlan>,
    pub deadline: Option<Duration>,
    pub drain_timeout: Duration,
    pub io_capacity: usize,
    pub metrics_interval: Duration,
    /// Time at least every Nth request through its stages (see the config's `stage_timing_every`).
    pub stage_timing_every: u32,
    pub file_threads: usize,
    /// Where the admin listener listens, if the pipeline has one.
    pub admin: Option<std::net::SocketAddr>,
}

impl Plan {
    pub fn stage(&self, name: &str) -> Option<StageId> {
        self.stages.iter().position(|s| s.name == name)
    }

    /// The stages in pipeline order: from the entry, breadth first along each stage's outputs
    /// in their order; stages the entry does not reach come last, in config order.
    pub fn pipeline_order(&self) -> Vec<StageId> {
        let mut seen = vec![false; self.stages.len()];
        let mut order = Vec::with_capacity(self.stages.len());
        let mut next = std::collections::VecDeque::new();
        let entry = self.source.entry();
        if entry < self.stages.len() {
            seen[entry] = true;
            next.push_back(entry);
        }
        while let Some(stage) = next.pop_front() {
            order.push(stage);
            for &successor in &self.stages[stage].successors {
                if !std::mem::replace(&mut seen[successor], true) {
                    next.push_back(successor);
                }
            }
        }
        order.extend((0..self.stages.len()).filter(|&s| !seen[s]));
        order
    }

    pub fn worker_count(&self) -> usize {
        self.pools.iter().map(|p| p.threads.len()).sum()
    }
}

pub enum SourcePlan {
    Generator {
        requests: u64,
        rate: Rate,
        payload_bytes: usize,
        entry: StageId,
        placement: super::SourcePlacement,
        cpu: Option<usize>,
        /// (name, [(value, weight)]) pairs.
        attributes: Vec<(String, Vec<(String, u32)>)>,
    },

    Http(HttpPlan),

    /// Requests come from the program that runs the pipeline: a source of its own handed to
    /// the run layer (`seda::run::Runner::source`), or code that submits to the engine itself.
    External {
        entry: StageId,
    },

    Nats(NatsPlan),

    JetStream(JetStreamPlan),
}

/// A JetStream source, as validated (see the config's `JetStreamSourceConfig`).
#[derive(Debug, Clone)]
pub struct JetStreamPlan {
    pub server: String,
    pub stream: String,
    pub consumer: String,
    pub filter_subject: Option<String>,
    pub entry: StageId,
    pub max_ack_pending: usize,
    pub max_deliver: u32,
    pub nak_delay: Duration,
    pub ack_wait: Duration,
    pub dead_letter_subject: String,
}

/// A NATS service source, as validated (see the config's `NatsSourceConfig`).
#[derive(Debug, Clone)]
pub struct NatsPlan {
    pub server: String,
    pub subject: String,
    pub queue_group: String,
    pub entry: StageId,
    pub max_in_flight: usize,
}

impl SourcePlan {
    pub fn entry(&self) -> StageId {
        match self {
            SourcePlan::Generator { entry, .. } => *entry,
            SourcePlan::Http(http) => http.entry,
            SourcePlan::External { entry } => *entry,
            SourcePlan::Nats(nats) => nats.entry,
            SourcePlan::JetStream(js) => js.entry,
        }
    }

    /// The CPU the source's own thread is pinned to, if any.
    pub fn cpu(&self) -> Option<usize> {
        match self {
            SourcePlan::Generator { cpu, placement, .. } => {
                cpu.filter(|_| *placement == super::SourcePlacement::Thread)
            }
            SourcePlan::Http(http) => http.cpu.filter(|_| http.reactor == super::SourcePlacement::Thread),
            SourcePlan::External { .. } | SourcePlan::Nats(_) | SourcePlan::JetStream(_) => None,
        }
    }
}

/// An HTTP listener, as validated (see the config's `HttpConfig` for each field).
#[derive(Debug, Clone)]
pub struct HttpPlan {
    pub listen: std::net::SocketAddr,
    pub entry: StageId,
    pub reactor: super::SourcePlacement,
    pub cpu: Option<usize>,
    pub io: super::HttpIo,
    /// How long a sleeping io_uring reactor lets an arrival wait for others (zero: not at all).
    pub coalesce: Duration,
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    pub max_unsent_bytes: usize,
    pub max_unsent_bytes_per_connection: usize,
    pub max_pipelined: usize,
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub body_timeout: Duration,
    pub body_read_timeout: Duration,
    pub answer_timeout: Duration,
    pub send_timeout: Duration,
    pub limits: super::Limits,
}

pub struct StagePlan {
    pub name: String,
    pub kind: String,
    pub factory: Arc<dyn StageFactory>,
    pub pool: usize,
    pub queue: QueuePlan,
    /// The stage's admission controller, if it has one.
    pub admission: Option<AdmissionPlan>,
    /// Successor of each output, by output index; empty for a terminal stage.
    pub successors: Vec<StageId>,
    /// Output names, by output index (`next` for a single successor).
    pub output_names: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
pub struct QueuePlan {
    pub capacity: usize,
    pub when_full: WhenFull,
    pub block_timeout: Duration,
    /// How many requests are handed to the queue at a time.
    pub batch: BatchPlan,
}

/// A queue's batch size (see the config's `QueueConfig::batch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchPlan {
    Fixed(usize),
    /// Adjusted by the stage's measured throughput, between 1 and `ranges::MAX_BATCH`.
    Adaptive,
}

/// How a pool grows and shrinks (see the config's `PoolConfig::max_threads`). The pool's
/// `threads` are its most; it starts with `min_threads` serving.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolSizing {
    pub min_threads: usize,
    /// Requests waiting in the pool's queues above which it grows.
    pub grow_queue: usize,
    /// How long a thread idles before the pool shrinks.
    pub shrink_idle: Duration,
}

pub struct PoolPlan {
    pub name: String,
    /// Whether the config named this pool, or it is a stage's dedicated one.
    pub dedicated: bool,
    pub threads: Vec<ThreadPlan>,
    pub stages: Vec<StageId>,
    /// The least a worker spins for work before it may sleep (the config's `idle_spin_us`);
    /// zero leaves it to the measured idle policy.
    pub idle_spin: Duration,
    /// With the config's `max_threads`: `threads` are the most it may have, and this says
    /// how it moves between them and its least.
    pub sizing: Option<PoolSizing>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThreadPlan {
    /// The CPU this worker is pinned to.
    pub cpu: usize,
}

/// A stage's admission controller, as validated (see the config's `AdmissionConfig` for each
/// field).
#[derive(Debug, Clone, PartialEq)]
pub enum AdmissionPlan {
    LatencyTarget(LatencyTargetPlan),
    ConcurrencyLimit(ConcurrencyLimitPlan),
    Codel(CodelPlan),
}

#[derive(Debug, Clone, PartialEq)]
pub struct LatencyTargetPlan {
    pub target: Duration,
    pub percentile: f64,
    pub sample_every: u32,
    pub sample_window: Duration,
    pub smoothing: f64,
    pub adjust: Adjust,
    pub min_rate: f64,
    pub max_rate: f64,
    /// Where a request's class comes from, and the class names, highest first.
    pub classes: Option<(ClassSource, Vec<String>)>,
    /// Each class's target, highest first (one, `target`, without classes).
    pub class_targets: Vec<Duration>,
}

/// Where a request's service class comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ClassSource {
    /// A request attribute.
    Attribute(String),
    /// An HTTP request header (its first value).
    Header(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConcurrencyLimitPlan {
    pub target: Duration,
    pub percentile: f64,
    pub sample_every: u32,
    pub sample_window: Duration,
    pub initial_limit: u32,
    pub min_limit: u32,
    pub max_limit: u32,
    pub backoff: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct CodelPlan {
    pub target: Duration,
    pub interval: Duration,
}
