//! The HTTP source: a reactor thread that accepts connections, reads and frames requests on
//! readiness (mio: epoll or kqueue), admits them into the pipeline's entry stage in batches, and
//! writes each response back to its connection, in request order, when the pipeline ends it.
//!
//! One thread owns every socket, so no connection state is shared: workers only push ended
//! requests into [`Completions`] and wake the reactor. A connection's requests carry their way
//! home in the envelope's tag (slot, generation, sequence number); an answer for a connection
//! that has gone away (the client vanished mid-request) finds another generation in the slot and
//! is dropped, after the ledger has counted its request's ending like any other.
//!
//! Shutdown (the `stop` flag): the listener closes; idle connections close at once; a connection
//! with requests in flight gets their answers, the last saying `Connection: close`, then closes.
//! Connections still open after the pipeline's `drain_timeout` are dropped.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use super::completions::{Answer, Completions};
use super::connection::{Conn, Waiting, READ_CHUNK};
use super::stats::HttpStats;
use super::{canned, RequestReader};
use crate::clock::now_ns;
use crate::config::{HttpPlan, Plan};
use crate::engine::{Admission, Engine, EngineError, Envelope, Origin, Submitter};
use crate::metrics::record::Recording;
use crate::metrics::Summary;

const LISTENER: Token = Token(usize::MAX - 1);
const WAKER: Token = Token(usize::MAX - 2);

/// The most requests one HTTP source has in the pipeline at once: the bound of its completion
/// queue. Past it, the reactor frames no more until answers come back.
const MAX_IN_FLIGHT: usize = 1 << 16;

/// The longest the reactor sleeps without looking at the stop flag and the deadlines.
const MAX_POLL_WAIT: Duration = Duration::from_millis(50);

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot listen on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
    #[error("cannot set up the reactor: {0}")]
    Reactor(io::Error),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

/// Serves `plan` (whose source must be `http`) until `stop` is set, then drains and returns
/// the summary, with the run's intervals when `record`. `listening` is told the bound address
/// (the config's port 0 takes a free one) once connections are accepted.
pub fn serve(
    plan: Plan,
    stop: &AtomicBool,
    record: bool,
    listening: impl FnOnce(SocketAddr),
) -> Result<(Summary, Recording), ServeError> {
    let crate::config::SourcePlan::Http(http) = &plan.source else {
        panic!("serve takes a pipeline with an http source");
    };
    let http = http.clone();
    let listener = TcpListener::bind(http.listen).map_err(|source| ServeError::Listen { addr: http.listen, source })?;
    let addr = listener.local_addr().map_err(|source| ServeError::Listen { addr: http.listen, source })?;
    let poll = Poll::new().map_err(ServeError::Reactor)?;
    let waker = Waker::new(poll.registry(), WAKER).map_err(ServeError::Reactor)?;
    let in_flight_cap = http.max_connections.saturating_mul(http.max_pipelined).clamp(1, MAX_IN_FLIGHT);
    let completions = Arc::new(Completions::new(in_flight_cap, waker));
    let drain_timeout = plan.drain_timeout;
    let engine = if record {
        Engine::start_recorded(plan, vec![completions.clone() as Arc<dyn Origin>])
    } else {
        Engine::start(plan, vec![completions.clone() as Arc<dyn Origin>])
    }?;
    let stats = std::thread::scope(|scope| {
        let reactor = Reactor::new(poll, listener, &http, completions, in_flight_cap, engine.submitter(0, http.entry));
        let handle = std::thread::Builder::new()
            .name("seda-http".into())
            .spawn_scoped(scope, move || {
                if let Some(cpu) = http.cpu {
                    core_affinity::set_for_current(core_affinity::CoreId { id: cpu });
                }
                reactor.run(stop, drain_timeout)
            })
            .map_err(|source| EngineError::Spawn { name: "seda-http".into(), source })?;
        listening(addr);
        Ok::<_, ServeError>(handle.join().expect("the reactor does not panic"))
    })?;
    let (mut summary, recording) = engine.shutdown_recorded();
    summary.http = Some(stats);
    Ok((summary, recording))
}

/// A connection slot: the connection, if open, and the generation of the last one in it.
struct Slot {
    conn: Option<Conn>,
    generation: u32,
}

struct Reactor<'e> {
    poll: Poll,
    listener: Option<TcpListener>,
    slots: Vec<Slot>,
    free_slots: Vec<usize>,
    open: usize,
    completions: Arc<Completions>,
    submitter: Submitter<'e>,
    /// Recycled envelopes, and the framed requests of this turn waiting to be admitted.
    envelopes: Vec<Box<Envelope>>,
    admit: Vec<Box<Envelope>>,
    in_flight: usize,
    in_flight_cap: usize,
    /// Connections with answers to write since they were last flushed.
    dirty: Vec<usize>,
    /// Connections that stopped framing for lack of room, to resume when answers come back.
    stalled: Vec<usize>,
    scratch: Vec<u8>,
    next_id: u64,
    plan: HttpPlan,
    stats: HttpStats,
    draining: bool,
}

impl<'e> Reactor<'e> {
    fn new(
        poll: Poll,
        mut listener: TcpListener,
        plan: &HttpPlan,
        completions: Arc<Completions>,
        in_flight_cap: usize,
        submitter: Submitter<'e>,
    ) -> Self {
        poll.registry().register(&mut listener, LISTENER, Interest::READABLE).expect("a new listener registers");
        Reactor {
            poll,
            listener: Some(listener),
            slots: Vec::new(),
            free_slots: Vec::new(),
            open: 0,
            completions,
            submitter,
            envelopes: Vec::new(),
            admit: Vec::new(),
            in_flight: 0,
            in_flight_cap,
            dirty: Vec::new(),
            stalled: Vec::new(),
            scratch: vec![0; READ_CHUNK],
            next_id: 0,
            plan: plan.clone(),
            stats: HttpStats::default(),
            draining: false,
        }
    }

    fn run(mut self, stop: &AtomicBool, drain_timeout: Duration) -> HttpStats {
        let mut events = Events::with_capacity(1024);
        let sweep_every = (self.plan.header_timeout.min(self.plan.idle_timeout) / 8)
            .clamp(Duration::from_millis(5), Duration::from_millis(500))
            .as_nanos() as u64;
        let mut next_sweep = now_ns() + sweep_every;
        let mut give_up = u64::MAX;
        loop {
            let now = now_ns();
            let wait = Duration::from_nanos(next_sweep.saturating_sub(now)).min(MAX_POLL_WAIT);
            if let Err(e) = self.poll.poll(&mut events, Some(wait)) {
                if e.kind() != io::ErrorKind::Interrupted {
                    panic!("epoll_wait failed: {e}");
                }
            }
            for event in events.iter() {
                match event.token() {
                    LISTENER => self.accept(),
                    WAKER => {}
                    Token(slot) => {
                        if event.is_readable() || event.is_read_closed() || event.is_error() {
                            self.on_readable(slot);
                        }
                        if event.is_writable() {
                            self.mark_dirty(slot);
                        }
                    }
                }
            }
            self.take_answers();
            self.admit_framed();
            self.write_dirty();
            let now = now_ns();
            if now >= next_sweep {
                self.sweep(now);
                next_sweep = now + sweep_every;
            }
            if !self.draining && stop.load(Ordering::Relaxed) {
                self.start_draining();
                give_up = now + drain_timeout.as_nanos() as u64;
            }
            // Answers still owed to closed connections are taken too, so every request framed
            // is seen back (or the drain timeout passes).
            if self.draining && ((self.open == 0 && self.in_flight == 0) || now >= give_up) {
                break;
            }
        }
        // Out of time: what is left is dropped; the engine's own drain deals with its requests.
        for slot in 0..self.slots.len() {
            if self.slots[slot].conn.is_some() {
                self.stats.dropped_at_shutdown += 1;
                self.close(slot);
            }
        }
        self.stats
    }

    fn accept(&mut self) {
        loop {
            let Some(listener) = &self.listener else { return };
            match listener.accept() {
                Ok((stream, _)) => {
                    if self.open >= self.plan.max_connections {
                        // Refused: dropping the socket closes it.
                        self.stats.refused += 1;
                        continue;
                    }
                    self.stats.accepted += 1;
                    let _ = stream.set_nodelay(true);
                    self.add(stream);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // Out of descriptors, or a connection reset before it was accepted: try later.
                Err(_) => return,
            }
        }
    }

    fn add(&mut self, mut stream: mio::net::TcpStream) {
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.slots.push(Slot { conn: None, generation: 0 });
            self.slots.len() - 1
        });
        // Generations wrap at 16 bits, what the tag keeps.
        let generation = (self.slots[slot].generation + 1) & 0xffff;
        self.slots[slot].generation = generation;
        // Edge-triggered for both directions at once: no re-registration per write.
        if self.poll.registry().register(&mut stream, Token(slot), Interest::READABLE | Interest::WRITABLE).is_err() {
            self.free_slots.push(slot);
            return;
        }
        let deadline = now_ns() + self.plan.header_timeout.as_nanos() as u64;
        let reader = RequestReader::new(self.plan.limits);
        self.slots[slot].conn = Some(Conn::new(stream, reader, generation, deadline));
        self.open += 1;
        self.on_readable(slot);
    }

    /// Frames what the connection has sent, up to its pipelining cap and the source's room.
    fn on_readable(&mut self, slot: usize) {
        let Some(conn) = self.slots[slot].conn.as_mut() else { return };
        let generation = conn.generation;
        loop {
            let room = conn.owed() < self.plan.max_pipelined && self.in_flight < self.in_flight_cap;
            let env = self.envelopes.pop().unwrap_or_default();
            match conn.frame(env, &mut self.scratch, room) {
                Ok(Ok(mut env)) => {
                    let seq = conn.next_seq() - 1;
                    env.req.reset(self.next_id);
                    self.next_id += 1;
                    env.intended_ns = 0;
                    env.tag = tag(slot, generation, seq);
                    self.in_flight += 1;
                    self.stats.requests += 1;
                    self.admit.push(env);
                }
                Ok(Err(env)) => {
                    self.envelopes.push(env);
                    if !room {
                        self.stalled.push(slot);
                    }
                    break;
                }
                Err(_) => {
                    self.stats.broken += 1;
                    return self.close(slot);
                }
            }
        }
        let conn = self.slots[slot].conn.as_mut().unwrap();
        if conn.take_rejected() {
            self.stats.framing_rejects += 1;
        }
        self.mark_dirty(slot);
    }

    fn mark_dirty(&mut self, slot: usize) {
        self.dirty.push(slot);
    }

    /// Hands this turn's framed requests to the pipeline in one batch.
    fn admit_framed(&mut self) {
        if !self.admit.is_empty() {
            self.submitter.submit_batch(&mut self.admit, Admission::Policy);
        }
    }

    /// Places every ended request's answer with its connection.
    fn take_answers(&mut self) {
        let (slots, envelopes, dirty) = (&mut self.slots, &mut self.envelopes, &mut self.dirty);
        let mut answered = 0;
        self.completions.drain(|env, answer: Answer| {
            answered += 1;
            let (slot, generation, seq16) = untag(env.tag);
            let live = slots.get_mut(slot).and_then(|s| s.conn.as_mut()).filter(|c| c.generation == generation);
            match live {
                Some(conn) => {
                    // The full sequence number, from the 16 bits the tag keeps: answers owed
                    // span fewer than 2^16 numbers.
                    let first = conn.next_seq() - conn.owed() as u64;
                    let seq = first + u64::from(seq16.wrapping_sub(first as u16));
                    match conn.answer(seq, env, answer) {
                        Ok(()) => dirty.push(slot),
                        Err(env) => envelopes.push(env),
                    }
                }
                None => envelopes.push(env),
            }
        });
        self.in_flight -= answered;
        if answered > 0 {
            self.stats.answered += answered as u64;
            // Room again: connections that stopped for lack of it frame what they hold.
            for slot in std::mem::take(&mut self.stalled) {
                self.on_readable(slot);
            }
        }
    }

    /// Serialises and writes what each dirty connection can send, and closes the finished.
    fn write_dirty(&mut self) {
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for &slot in &dirty {
            let Some(conn) = self.slots[slot].conn.as_mut() else { continue };
            let envelopes = &mut self.envelopes;
            conn.serialise(|env| envelopes.push(env));
            if conn.flush().is_err() {
                self.stats.broken += 1;
                self.close(slot);
                continue;
            }
            self.update_deadline(slot);
            let conn = self.slots[slot].conn.as_ref().unwrap();
            if conn.finished() {
                self.close(slot);
            }
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// What the connection now waits for, and until when.
    fn update_deadline(&mut self, slot: usize) {
        let Some(conn) = self.slots[slot].conn.as_mut() else { return };
        let waiting = if conn.owed() > 0 || conn.unsent() {
            Waiting::Answers
        } else if conn.partial() {
            Waiting::Head
        } else {
            Waiting::Idle
        };
        if waiting != conn.waiting {
            // A head's time runs from its first byte: later bytes do not extend it.
            let timeout = match waiting {
                Waiting::Head => self.plan.header_timeout.as_nanos() as u64,
                Waiting::Idle => self.plan.idle_timeout.as_nanos() as u64,
                Waiting::Answers => u64::MAX,
            };
            conn.waiting = waiting;
            conn.deadline_ns = now_ns().saturating_add(timeout);
        }
    }

    /// Closes connections whose head or idle time ran out.
    fn sweep(&mut self, now: u64) {
        for slot in 0..self.slots.len() {
            let Some(conn) = self.slots[slot].conn.as_mut() else { continue };
            if now < conn.deadline_ns {
                continue;
            }
            match conn.waiting {
                Waiting::Head => {
                    conn.last_word(canned::REQUEST_TIMEOUT);
                    self.stats.header_timeouts += 1;
                }
                Waiting::Idle => self.stats.idle_closed += 1,
                Waiting::Answers => continue,
            }
            self.close(slot);
        }
    }

    fn start_draining(&mut self) {
        self.draining = true;
        if let Some(mut listener) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut listener);
        }
        for slot in 0..self.slots.len() {
            let Some(conn) = self.slots[slot].conn.as_mut() else { continue };
            conn.close_after_owed();
            if conn.finished() {
                self.close(slot);
            }
        }
    }

    fn close(&mut self, slot: usize) {
        let Some(mut conn) = self.slots[slot].conn.take() else { return };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        if conn.owed() > 0 {
            // Requests still in the pipeline end there and are counted; their answers will
            // find another generation here and be dropped.
            self.stats.closed_with_requests_in_flight += 1;
        }
        self.envelopes.extend(conn.take_ready());
        self.free_slots.push(slot);
        self.open -= 1;
    }
}

/// Where an answer goes: the connection's slot, its generation, and the request's sequence
/// number on it (its low 16 bits).
fn tag(slot: usize, generation: u32, seq: u64) -> u64 {
    (slot as u64 & 0xffff_ffff) | (u64::from(generation & 0xffff) << 32) | ((seq & 0xffff) << 48)
}

fn untag(tag: u64) -> (usize, u32, u16) {
    ((tag & 0xffff_ffff) as usize, ((tag >> 32) & 0xffff) as u32, (tag >> 48) as u16)
}
