//! The range each number of a config must lie in, checked by validation so that a config that
//! validates also runs: past these bounds a run would abort (an allocation or a thread the
//! machine cannot give), hold shutdown, or wait longer than anyone means (a unit slip).
//! `docs/reference/config.md` lists them; the stage kinds check their own params.

/// Threads of one pool (named or dedicated), whether from `threads` or from the `cpus` list.
pub const MAX_POOL_THREADS: usize = 1_024;
/// Threads of all pools together.
pub const MAX_TOTAL_THREADS: usize = 4_096;
/// A stage queue's `capacity`.
pub const MAX_QUEUE_CAPACITY: usize = 1 << 20;
/// `io_capacity`: timers and file reads in flight at once.
pub const MAX_IO_CAPACITY: usize = 1 << 20;
/// `file_threads`.
pub const MAX_FILE_THREADS: usize = 64;
/// `stage_timing_every`.
pub const MAX_STAGE_TIMING_EVERY: u32 = 1 << 20;
/// Any duration in milliseconds: `deadline_ms`, `drain_timeout_ms`, `metrics_interval_ms`,
/// the HTTP source's timeouts. One hour.
pub const MAX_MS: u64 = 3_600_000;
/// The longest a pool's workers may be told to spin for work before sleeping (10 ms): past it,
/// sleeping costs less than spinning on any hardware.
pub const MAX_IDLE_SPIN_US: u64 = 10_000;
/// A queue's `batch`: the most requests handed over at once (the engine's batches hold this many).
pub const MAX_BATCH: usize = 32;
/// A pool's `grow_queue`.
pub const MAX_GROW_QUEUE: usize = MAX_QUEUE_CAPACITY;
/// A queue's `block_timeout_ms`: how long a sender may wait for room. One minute.
pub const MAX_BLOCK_TIMEOUT_MS: u64 = 60_000;
/// The generator's `payload_bytes`, per request.
pub const MAX_PAYLOAD_BYTES: usize = 16 << 20;
/// The generator's payloads in every stage queue at once, were each full: `payload_bytes`
/// times the sum of the queue capacities.
pub const MAX_QUEUED_PAYLOAD_BYTES: u64 = 4 << 30;
/// The generator's `rate`, requests per second. (A rate may be as low as it likes: the
/// generator's wait for a far request ends on SIGTERM.)
pub const MAX_RATE: f64 = 1e9;
/// An admission controller's `sample_every`: response times kept per window.
pub const MAX_SAMPLE_EVERY: u32 = 100_000;
/// A `latency_target` controller's service classes.
pub const MAX_CLASSES: usize = 64;
/// The HTTP source's `max_connections`.
pub const MAX_CONNECTIONS: usize = 1_000_000;
/// The HTTP source's `coalesce_us`: a millisecond.
pub const MAX_COALESCE_US: u64 = 1_000;
/// The HTTP source's `max_pipelined`.
pub const MAX_PIPELINED: usize = 1_024;
/// The HTTP source's `max_head_bytes`.
pub const MAX_HEAD_BYTES: usize = 1 << 20;
/// The HTTP source's `max_headers`.
pub const MAX_HEADERS: usize = 1_024;
/// The HTTP source's `max_body_bytes`.
pub const MAX_BODY_BYTES: usize = 1 << 30;
/// The JetStream source's `max_ack_pending`.
pub const MAX_ACK_PENDING: usize = 1 << 20;
/// The JetStream source's `max_deliver`.
pub const MAX_DELIVER: u32 = 1_000;
/// The NATS source's `max_in_flight`.
pub const MAX_NATS_IN_FLIGHT: usize = 1 << 20;
/// `nats_request`'s `timeout_ms`. One hour, as every duration.
pub const MAX_NATS_TIMEOUT_MS: u64 = MAX_MS;
