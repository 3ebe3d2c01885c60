//! The HTTP source: reactors that accept connections, read and frame requests, admit them into
//! the pipeline's entry stage in batches, and write each response back to its connection, in
//! request order, when the pipeline ends it. A reactor's I/O is its backend's
//! ([`super::backend`]); every rule about connections is here, the same for each backend.
//!
//! Where the reactors run (`source.reactor`):
//! - `"workers"` (the default): in each worker of the entry stage's pool, each with its own
//!   `SO_REUSEPORT` listener, between batches of work; an idle worker sleeps in its reactor's
//!   poll. A request that never leaves that pool never crosses threads.
//! - `"thread"`: one reactor thread of its own (pinned to `source.cpu`), handing requests to the
//!   workers and taking answers back through a queue and a wake-up.
//!
//! A reactor owns its sockets, so no connection state is shared: whoever ends a request pushes
//! it into that reactor's [`Completions`] (and wakes it, unless it is the reactor's own thread).
//! A request carries its way home in the envelope's tag (slot, generation, sequence number). A
//! slot is not given to a new connection while any request of an earlier one is still in the
//! pipeline: the answer of a client that went away mid-request finds its slot empty and is
//! dropped and counted (`late_answers_dropped`), after the ledger has counted its request's
//! ending like any other. (The generation alone cannot promise that: it is 16 bits in the tag,
//! and 65,536 connections can pass through a slot while one slow request waits.)
//!
//! Admission of connections: `max_connections_per_client` per client address, then
//! `max_connections` in all; at that cap an idle keep-alive connection (the one idle the
//! longest) is closed to make way before a new connection is refused. A reactor closes only its
//! own connections: one with none idle asks the others through `Control::room_wanted`.
//!
//! Bytes held for clients (answers unsent, or waiting behind an earlier answer): a connection
//! past its share (`max_unsent_bytes_per_connection`), or any once the server is past
//! `max_unsent_bytes`, has no more requests framed until clients read; a connection held back
//! resumes as soon as the reason clears, whichever order answers arrive and are written in.
//!
//! Shutdown (the `stop` flag): listeners close; idle connections close at once; a connection
//! with requests in flight gets their answers, the last saying `Connection: close`, then closes.
//! Connections still open after the pipeline's `drain_timeout` are dropped.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::backend::epoll::Epoll;
use super::backend::uring::{self, Uring};
use super::backend::{Backend, Event, Fill};
use super::completions::{Answer, Completions};
use super::connection::{Conn, Framing, Slot, Spares, Waiting, LINGER_TIME};
use super::fixed_replies;
use super::stats::HttpLive;
use crate::clock::now_ns;
use crate::config::{HttpIo, HttpPlan, Plan, SourcePlacement, SourcePlan};
use crate::engine::{Admission, Admit, Envelope, Origin, Poller};
use crate::metrics::LiveStats;
use crate::source::{Opened, RunsOn, Source, SourceError, ThreadBody};

/// The most requests one reactor has in the pipeline at once: the bound of its completion
/// queue. Past it, the reactor frames no more until answers come back.
const MAX_IN_FLIGHT: usize = 1 << 16;

/// The longest a reactor sleeps without looking at its deadlines and the drain flag.
const MAX_POLL_WAIT: Duration = Duration::from_millis(50);

/// Connections waiting to be accepted, per listener.
const BACKLOG: i32 = 4096;

/// How long a connection accepted at `max_connections` waits for another reactor to close an
/// idle connection for it before it is refused (a reactor only closes its own connections).
const ROOM_WAIT: Duration = Duration::from_secs(1);

/// Connections of one reactor waiting for room that way, at most; past it they are refused.
const MAX_WAITING_FOR_ROOM: usize = 64;

/// What the reactors share with the thread that stops them.
#[derive(Default)]
struct Control {
    draining: AtomicBool,
    /// When draining gives up on open connections.
    give_up_ns: AtomicU64,
    /// Reactors that have drained.
    drained: AtomicUsize,
    /// What the reactors count, live; `open` is also the `max_connections` cap's count.
    live: Arc<HttpLive>,
    /// Open connections by client address, for `max_connections_per_client`.
    per_client: Mutex<HashMap<IpAddr, usize>>,
    /// Idle connections a reactor at `max_connections` asked the others to close for it.
    room_wanted: AtomicUsize,
    /// How many reactors serve: with one, there is no other to ask for room.
    reactors: usize,
}

/// The HTTP source: serves the pipeline's `source` (an `http` one) as a [`Source`] of the run
/// layer, with its reactors in the entry pool's workers or on a thread of their own.
#[derive(Default)]
pub struct HttpSource {
    control: Arc<Control>,
    addr: Option<SocketAddr>,
    /// What wakes each reactor out of its poll.
    wakers: Vec<Arc<dyn Fn() + Send + Sync>>,
}

impl HttpSource {
    pub fn new() -> Self {
        HttpSource::default()
    }

    /// Builds a reactor with backend `make` on each listener, and says where they run.
    fn start<B: Backend + 'static>(
        &mut self,
        listeners: Vec<TcpListener>,
        http: &HttpPlan,
        make: impl Fn(TcpListener) -> io::Result<B>,
    ) -> Result<Opened, SourceError> {
        let mut built = Vec::new();
        for (i, listener) in listeners.into_iter().enumerate() {
            let failed = |e: io::Error| SourceError::new(format!("cannot set up the HTTP reactor: {e}"));
            built.push(Reactor::new(make(listener).map_err(failed)?, http, self.control.clone(), i as u32));
        }
        let origins = built.iter().map(|r| r.completions.clone() as Arc<dyn Origin>).collect();
        self.wakers = built.iter().map(|r| r.waker()).collect();
        let runs_on = match http.reactor {
            SourcePlacement::Workers => {
                RunsOn::Workers(built.into_iter().map(|r| Box::new(r) as Box<dyn Poller>).collect())
            }
            SourcePlacement::Thread => {
                let mut reactor = built.pop().expect("one reactor");
                let body: ThreadBody = Box::new(move |mut submitter| {
                    let mut admit = |batch: &mut Vec<Box<Envelope>>| submitter.submit_batch(batch, Admission::Policy);
                    while !reactor.is_drained() {
                        reactor.turn(None, &mut admit);
                    }
                });
                RunsOn::Thread { name: "seda-http", cpu: http.cpu, body }
            }
        };
        Ok(Opened { origins, runs_on })
    }
}

/// The backend `io` asks for: `auto` is io_uring if this kernel gives a ring (said in one log
/// line, with the reason when it does not); `uring` fails the run if it does not.
fn choose_io(io: HttpIo) -> Result<HttpIo, SourceError> {
    if io == HttpIo::Epoll {
        return Ok(io);
    }
    match uring::available() {
        Ok(()) if io == HttpIo::Auto => {
            eprintln!("seda: HTTP I/O: io_uring (\"io\": \"auto\", and this kernel allows it)");
            Ok(HttpIo::Uring)
        }
        Ok(()) => Ok(HttpIo::Uring),
        Err(e) if io == HttpIo::Auto => {
            eprintln!("seda: HTTP I/O: epoll (\"io\": \"auto\", and io_uring is not available: {e})");
            Ok(HttpIo::Epoll)
        }
        Err(e) => Err(SourceError::new(format!(
            "\"io\": \"uring\" but io_uring is not available: {e} (use \"epoll\" or \"auto\")"
        ))),
    }
}

impl Source for HttpSource {
    fn open(&mut self, plan: &Plan) -> Result<Opened, SourceError> {
        let SourcePlan::Http(http) = &plan.source else {
            return Err(SourceError::new("the HTTP source serves a pipeline whose source is `http`"));
        };
        raise_open_files_limit();
        let reactors = match http.reactor {
            SourcePlacement::Thread => 1,
            SourcePlacement::Workers => plan.pools[plan.stages[http.entry].pool].threads.len(),
        };
        let in_workers = if http.reactor == SourcePlacement::Workers { reactors } else { 0 };
        let live = Arc::new(HttpLive::new(in_workers));
        self.control = Arc::new(Control { reactors, live, ..Control::default() });
        // Every reactor's listener, bound before anything starts: a bad address fails the run here.
        let mut listeners = vec![listen(http.listen, reactors > 1)?];
        let addr = listeners[0].local_addr().map_err(|e| listen_error(http.listen, e))?;
        for _ in 1..reactors {
            listeners.push(listen(addr, true)?);
        }
        self.addr = Some(addr);
        match choose_io(http.io)? {
            HttpIo::Uring => self.start(listeners, http, |listener| Uring::new(listener, http.coalesce)),
            _ => self.start(listeners, http, |listener| Epoll::new(mio::net::TcpListener::from_std(listener))),
        }
    }

    fn listening(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// Listeners close; idle connections close at once; a connection with requests in flight
    /// gets their answers, then closes; what is still open after `drain_timeout` is dropped.
    fn stop(&mut self, drain_timeout: Duration) {
        let control = &self.control;
        control.give_up_ns.store(now_ns() + drain_timeout.as_nanos() as u64, Ordering::SeqCst);
        control.draining.store(true, Ordering::SeqCst);
        self.wakers.iter().for_each(|wake| wake());
        // Each reactor gives up by itself at the drain timeout.
        while control.drained.load(Ordering::SeqCst) < control.reactors {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    fn stats(&self) -> Option<Arc<dyn LiveStats>> {
        Some(self.control.live.clone())
    }
}

fn listen_error(addr: SocketAddr, e: io::Error) -> SourceError {
    SourceError::new(format!("cannot listen on {addr}: {e}"))
}

/// Raises this process's soft limit on open files to its hard limit: a server holds a
/// descriptor per connection, and the usual soft default (1024) is far below `max_connections`.
fn raise_open_files_limit() {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit and setrlimit read and write the struct given, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A non-blocking listener on `addr`; with `reuse_port`, one of several on the same port,
/// among which the kernel spreads new connections.
fn listen(addr: SocketAddr, reuse_port: bool) -> Result<TcpListener, SourceError> {
    let fail = |e| listen_error(addr, e);
    let socket = socket2::Socket::new(socket2::Domain::for_address(addr), socket2::Type::STREAM, None).map_err(fail)?;
    socket.set_reuse_address(true).map_err(fail)?;
    if reuse_port {
        socket.set_reuse_port(true).map_err(fail)?;
    }
    socket.set_nonblocking(true).map_err(fail)?;
    socket.bind(&addr.into()).map_err(fail)?;
    socket.listen(BACKLOG).map_err(fail)?;
    Ok(socket.into())
}

struct Reactor<B> {
    /// The I/O mechanism, and what it last reported.
    io: B,
    events: Vec<Event>,
    slots: Vec<Slot>,
    free_slots: Vec<usize>,
    open: usize,
    completions: Arc<Completions>,
    control: Arc<Control>,
    /// Recycled envelopes, and the framed requests of this turn waiting to be admitted.
    envelopes: Vec<Box<Envelope>>,
    admit: Vec<Box<Envelope>>,
    in_flight: usize,
    in_flight_cap: usize,
    /// Connections with answers to write since they were last flushed.
    dirty: Vec<usize>,
    /// Connections that stopped framing for lack of shared room (the reactor's in-flight cap,
    /// the server's `max_unsent_bytes`), to resume when there is room again. A connection held
    /// back by its own bounds (`max_pipelined`, its share of unsent answers) resumes when its
    /// answers are written instead.
    stalled: Vec<usize>,
    /// Bytes of answers this reactor holds for its clients (see [`Conn::held_bytes`]), and
    /// how much of it was last added to the server's count (`live.unsent_bytes`).
    held_bytes: usize,
    published_held_bytes: usize,
    /// Connections as they became idle (slot, generation, the idle deadline it got), oldest
    /// first; an entry whose connection has since done anything else is stale and skipped.
    idle_order: VecDeque<(usize, u32, u64)>,
    /// Connections accepted at `max_connections` with no idle connection of this reactor's to
    /// close, waiting (until the deadline) for another reactor to close one of its own.
    waiting_for_room: Vec<(TcpStream, IpAddr, u64)>,
    /// This reactor's number: with the reactors in the workers, its worker's in the entry pool.
    index: usize,
    /// Request ids: this reactor's number in the top bits, so ids are unique across reactors.
    next_id: u64,
    plan: HttpPlan,
    /// Its connections' spare busy parts, framing within the plan's request limits.
    spares: Spares,
    live: Arc<HttpLive>,
    /// Requests framed and answers taken this turn, added to `live` once per turn.
    framed: u64,
    answered: u64,
    sweep_every: u64,
    next_sweep: u64,
    draining: bool,
    drained: bool,
    /// The `Date` header's value, made anew when the second changes.
    date: String,
    date_second: u64,
}

impl<B: Backend> Reactor<B> {
    fn new(io: B, plan: &HttpPlan, control: Arc<Control>, id: u32) -> Self {
        let waker = io.waker();
        let in_flight_cap = plan.max_connections.saturating_mul(plan.max_pipelined).clamp(1, MAX_IN_FLIGHT);
        let live = control.live.clone();
        let shortest = [plan.idle_timeout, plan.body_timeout, plan.body_read_timeout, plan.answer_timeout]
            .into_iter()
            .chain([plan.send_timeout, LINGER_TIME])
            .fold(plan.header_timeout, Duration::min);
        let sweep_every = (shortest / 8).clamp(Duration::from_millis(5), Duration::from_millis(500)).as_nanos() as u64;
        Reactor {
            io,
            events: Vec::new(),
            slots: Vec::new(),
            free_slots: Vec::new(),
            open: 0,
            completions: Arc::new(Completions::new(in_flight_cap, waker)),
            control,
            envelopes: Vec::new(),
            admit: Vec::new(),
            in_flight: 0,
            in_flight_cap,
            dirty: Vec::new(),
            stalled: Vec::new(),
            held_bytes: 0,
            published_held_bytes: 0,
            idle_order: VecDeque::new(),
            waiting_for_room: Vec::new(),
            index: id as usize,
            next_id: u64::from(id) << 48,
            plan: plan.clone(),
            spares: Spares::new(plan.limits),
            live,
            framed: 0,
            answered: 0,
            sweep_every,
            next_sweep: now_ns() + sweep_every,
            draining: false,
            drained: false,
            date: String::new(),
            date_second: u64::MAX,
        }
    }

    fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        let completions = self.completions.clone();
        Arc::new(move || completions.wake())
    }

    fn is_drained(&self) -> bool {
        self.drained
    }

    /// One round: waits for readiness up to `timeout` (`None`: until the next deadline sweep),
    /// accepts, reads and frames, admits through `admit`, places answers, writes, and keeps the
    /// deadlines and the drain. Returns whether anything happened.
    fn turn(&mut self, timeout: Option<Duration>, admit: &mut dyn FnMut(&mut Vec<Box<Envelope>>)) -> bool {
        self.completions.claim();
        let now = now_ns();
        let until_sweep = Duration::from_nanos(self.next_sweep.saturating_sub(now));
        let mut wait = timeout.unwrap_or(until_sweep).min(until_sweep).min(MAX_POLL_WAIT);
        if !self.admit.is_empty() {
            // Framed after the last admission (a connection that resumed once its answers
            // were written): admit them now, not after a sleep.
            wait = Duration::ZERO;
        }
        // Taken out for the loop, which needs the reactor mutable.
        let mut events = std::mem::take(&mut self.events);
        self.io.wait(wait, self.in_flight > 0, &mut self.slots, &mut self.spares, &mut events);
        let mut busy = self.make_room_for_others();
        for event in events.drain(..) {
            busy = true;
            match event {
                Event::Accept => self.accept(),
                Event::Input(slot) => self.on_readable(slot),
                Event::Output(slot) => self.mark_dirty(slot),
                Event::Broken(slot) => {
                    if self.slots[slot].conn.is_some() {
                        HttpLive::count(&self.live.broken);
                        self.close(slot);
                    }
                }
            }
        }
        self.events = events;
        // Admit, then take answers (what admission itself turned away among them), and admit
        // what the answers made room for.
        for _ in 0..2 {
            if !self.admit.is_empty() {
                admit(&mut self.admit);
                busy = true;
            }
            busy |= self.take_answers();
        }
        // Before the answers leave: a client that has its answer finds it counted.
        self.publish_counts();
        self.write_dirty();
        self.io.flush();
        self.publish_counts();
        if !self.stalled.is_empty() && self.shared_room() {
            // Room again (clients took bytes here or at another reactor).
            self.resume_stalled();
        }
        if !self.waiting_for_room.is_empty() {
            self.admit_waiting_for_room(now_ns());
        }
        let now = now_ns();
        if now >= self.next_sweep {
            self.sweep(now);
            self.next_sweep = now + self.sweep_every;
        }
        if !self.draining && self.control.draining.load(Ordering::SeqCst) {
            self.start_draining();
        }
        // Answers still owed to closed connections are taken too, so every request framed is
        // seen back (or the drain timeout passes).
        if self.draining && !self.drained {
            let out_of_time = now >= self.control.give_up_ns.load(Ordering::SeqCst);
            if (self.open == 0 && self.in_flight == 0) || out_of_time {
                for slot in 0..self.slots.len() {
                    if self.slots[slot].conn.is_some() {
                        HttpLive::count(&self.live.dropped_at_shutdown);
                        self.close(slot);
                    }
                }
                self.drained = true;
                self.control.drained.fetch_add(1, Ordering::SeqCst);
            }
        }
        busy
    }

    /// Adds this turn's requests and answers to the live counts.
    fn publish_counts(&mut self) {
        if self.framed > 0 {
            self.live.requests.fetch_add(std::mem::take(&mut self.framed), Ordering::Relaxed);
        }
        if self.answered > 0 {
            self.live.answered.fetch_add(std::mem::take(&mut self.answered), Ordering::Relaxed);
        }
        if self.held_bytes != self.published_held_bytes {
            let (now, before) = (self.held_bytes as u64, self.published_held_bytes as u64);
            if now > before {
                self.live.unsent_bytes.fetch_add(now - before, Ordering::Relaxed);
            } else {
                self.live.unsent_bytes.fetch_sub(before - now, Ordering::Relaxed);
            }
            self.published_held_bytes = self.held_bytes;
        }
    }

    /// Whether the room all connections share lets a request be framed: the reactor's
    /// in-flight cap, and the server's `max_unsent_bytes` (what the other reactors hold as
    /// they last said, plus what this one holds now).
    fn shared_room(&self) -> bool {
        self.in_flight < self.in_flight_cap && self.under_unsent_bound()
    }

    /// Whether the bytes held for clients, server-wide, are under `max_unsent_bytes`.
    fn under_unsent_bound(&self) -> bool {
        let others = self.live.unsent_bytes.load(Ordering::Relaxed).saturating_sub(self.published_held_bytes as u64);
        others + (self.held_bytes as u64) < self.plan.max_unsent_bytes as u64
    }

    /// Frames again on the connections that stopped for lack of shared room.
    fn resume_stalled(&mut self) {
        for slot in std::mem::take(&mut self.stalled) {
            if let Some(conn) = self.slots[slot].conn.as_mut() {
                conn.stalled = false;
                self.on_readable(slot);
            }
        }
    }

    /// Adds the change in the bytes the connection holds to the reactor's count.
    fn account(&mut self, slot: usize) {
        if let Some(conn) = self.slots[slot].conn.as_mut() {
            let held = conn.held_bytes();
            self.held_bytes = self.held_bytes + held - conn.accounted;
            conn.accounted = held;
        }
    }

    fn accept(&mut self) {
        while let Some((stream, client)) = self.io.accept() {
            if !self.take_client_share(client) {
                // Refused: dropping the socket closes it.
                HttpLive::count(&self.live.refused_per_client);
                continue;
            }
            // At the cap, an idle keep-alive connection makes way for the new one.
            if self.take_connection() || (self.close_oldest_idle() && self.take_connection()) {
                self.add(stream, client);
            } else if self.control.reactors > 1 && self.waiting_for_room.len() < MAX_WAITING_FOR_ROOM {
                // None idle here: ask the other reactors to close one of theirs.
                self.control.room_wanted.fetch_add(1, Ordering::AcqRel);
                let deadline = now_ns() + nanos(ROOM_WAIT);
                self.waiting_for_room.push((stream, client, deadline));
            } else {
                self.refuse(client);
            }
        }
    }

    /// Counts a connection from `client` against `max_connections_per_client`, if there is
    /// room for it.
    fn take_client_share(&self, client: IpAddr) -> bool {
        let mut per_client = self.control.per_client.lock().unwrap();
        let open = per_client.entry(client).or_insert(0);
        if *open >= self.plan.max_connections_per_client {
            return false;
        }
        *open += 1;
        true
    }

    fn release_client_share(&self, client: IpAddr) {
        let mut per_client = self.control.per_client.lock().unwrap();
        if let Some(open) = per_client.get_mut(&client) {
            *open -= 1;
            if *open == 0 {
                per_client.remove(&client);
            }
        }
    }

    /// Counts a connection against `max_connections`, if there is room for it.
    fn take_connection(&self) -> bool {
        let cap = self.plan.max_connections as u64;
        self.live.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < cap).then_some(n + 1)).is_ok()
    }

    /// Refuses a connection accepted at the cap (the caller drops the socket, closing it).
    fn refuse(&self, client: IpAddr) {
        self.release_client_share(client);
        HttpLive::count(&self.live.refused);
    }

    /// Closes this reactor's connection idle the longest, if it has one idle. Returns whether
    /// it did.
    fn close_oldest_idle(&mut self) -> bool {
        match self.oldest_idle() {
            Some(slot) => {
                self.idle_order.pop_front();
                HttpLive::count(&self.live.idle_closed_for_room);
                self.close(slot);
                true
            }
            None => false,
        }
    }

    /// The connection idle the longest, at the front of `idle_order` once the stale entries
    /// before it are dropped.
    fn oldest_idle(&mut self) -> Option<usize> {
        while let Some(&(slot, generation, since)) = self.idle_order.front() {
            let idle = self.slots[slot].conn.as_ref().is_some_and(|c| {
                c.generation == generation
                    && c.waiting == Waiting::Idle
                    && c.deadline_ns == since
                    && c.wait_kind() == Waiting::Idle
            });
            if idle {
                return Some(slot);
            }
            self.idle_order.pop_front();
        }
        None
    }

    /// Closes idle connections of this reactor's that another reactor at the cap asked for.
    fn make_room_for_others(&mut self) -> bool {
        let mut closed = false;
        while self.control.room_wanted.load(Ordering::Acquire) > 0 && self.oldest_idle().is_some() {
            let wanted = |n: usize| n.checked_sub(1);
            if self.control.room_wanted.fetch_update(Ordering::AcqRel, Ordering::Acquire, wanted).is_err() {
                break;
            }
            closed |= self.close_oldest_idle();
        }
        closed
    }

    /// Connections waiting for room at the cap: in if there is room now, refused once their
    /// wait is over.
    fn admit_waiting_for_room(&mut self, now: u64) {
        let withdraw = |control: &Control| {
            let _ = control.room_wanted.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
        };
        for (stream, client, deadline) in std::mem::take(&mut self.waiting_for_room) {
            if self.take_connection() {
                // In (room was made for it, or a connection closed by itself meanwhile): its
                // request for room is withdrawn, so no idle connection is closed for nothing.
                withdraw(&self.control);
                self.add(stream, client);
            } else if now >= deadline {
                // No other reactor had an idle connection to close.
                withdraw(&self.control);
                self.refuse(client);
            } else {
                self.waiting_for_room.push((stream, client, deadline));
            }
        }
    }

    fn add(&mut self, stream: TcpStream, client: IpAddr) {
        HttpLive::count(&self.live.accepted);
        if let Some(by_worker) = self.live.accepted_by_worker.get(self.index) {
            HttpLive::count(by_worker);
        }
        let _ = stream.set_nodelay(true);
        let slot = self.free_slots.pop().unwrap_or_else(|| {
            self.slots.push(Slot { conn: None, generation: 0, in_pipeline: 0 });
            self.slots.len() - 1
        });
        // Generations wrap at 16 bits, what the tag keeps.
        let generation = (self.slots[slot].generation + 1) & 0xffff;
        self.slots[slot].generation = generation;
        let deadline = now_ns().saturating_add(nanos(self.plan.header_timeout));
        let conn = Conn::new(stream, client, generation, deadline);
        if self.io.watch(slot, &conn).is_err() {
            self.free_slots.push(slot);
            self.live.open.fetch_sub(1, Ordering::AcqRel);
            self.release_client_share(client);
            return;
        }
        self.slots[slot].conn = Some(conn);
        self.open += 1;
        self.on_readable(slot);
    }

    /// Frames what the connection has sent, up to its pipelining cap and the source's room,
    /// getting more from the backend as the framer needs it.
    fn on_readable(&mut self, slot: usize) {
        // (Framing adds next to nothing to the bytes held: the bound is checked once.)
        let under_unsent_bound = self.under_unsent_bound();
        let Slot { conn, in_pipeline, .. } = &mut self.slots[slot];
        let Some(conn) = conn.as_mut() else { return };
        if conn.waiting == Waiting::Linger {
            return self.discard(slot);
        }
        let generation = conn.generation;
        let mut env = self.envelopes.pop().unwrap_or_default();
        loop {
            // A client that does not read its answers gets no more requests framed until it does.
            let own_room = conn.has_room(self.plan.max_pipelined, self.plan.max_unsent_bytes_per_connection);
            let room = own_room && self.in_flight < self.in_flight_cap && under_unsent_bound;
            match conn.frame(env, room) {
                Framing::Request(mut framed) => {
                    let seq = conn.next_seq() - 1;
                    framed.req.reset(self.next_id);
                    self.next_id += 1;
                    framed.intended_ns = 0;
                    framed.tag = tag(slot, generation, seq);
                    self.in_flight += 1;
                    *in_pipeline += 1;
                    self.framed += 1;
                    self.admit.push(framed);
                    env = self.envelopes.pop().unwrap_or_default();
                }
                Framing::NeedBytes(unused) => match self.io.fill(slot, conn, &mut self.spares) {
                    Fill::Fed => env = unused,
                    Fill::Later => {
                        self.envelopes.push(unused);
                        break;
                    }
                    Fill::Broken => {
                        self.envelopes.push(unused);
                        HttpLive::count(&self.live.broken);
                        return self.close(slot);
                    }
                },
                Framing::Stopped(unused) => {
                    self.envelopes.push(unused);
                    // Held back: say so, so that it resumes as soon as the reason clears, in
                    // whichever order answers arrive and are written.
                    if !own_room {
                        conn.held_back = true;
                    } else if !room && !conn.stalled {
                        conn.stalled = true;
                        self.stalled.push(slot);
                    }
                    break;
                }
            }
        }
        let conn = self.slots[slot].conn.as_mut().unwrap();
        if conn.take_rejected() {
            HttpLive::count(&self.live.framing_rejects);
        }
        self.account(slot);
        self.mark_dirty(slot);
    }

    /// Reads and drops what a lingering client sends, and closes the connection once lingering
    /// is over (see [`Conn::linger_over`]).
    fn discard(&mut self, slot: usize) {
        let Some(conn) = self.slots[slot].conn.as_mut() else { return };
        loop {
            if conn.linger_over() {
                return self.close(slot);
            }
            match self.io.fill(slot, conn, &mut self.spares) {
                Fill::Fed => {}
                Fill::Later => return,
                Fill::Broken => return self.close(slot),
            }
        }
    }

    fn mark_dirty(&mut self, slot: usize) {
        if let Some(conn) = self.slots[slot].conn.as_mut().filter(|c| !c.dirty) {
            conn.dirty = true;
            self.dirty.push(slot);
        }
    }

    /// Places every ended request's answer with its connection. Returns whether there were any.
    fn take_answers(&mut self) -> bool {
        let (slots, free_slots, envelopes, dirty) =
            (&mut self.slots, &mut self.free_slots, &mut self.envelopes, &mut self.dirty);
        let (mut answered, mut late) = (0, 0);
        let held_bytes = &mut self.held_bytes;
        self.completions.drain(|env, answer: Answer| {
            answered += 1;
            let (slot, generation, seq16) = untag(env.tag);
            let Slot { conn, in_pipeline, .. } = &mut slots[slot];
            *in_pipeline -= 1;
            let live = conn.as_mut().filter(|c| c.generation == generation);
            if live.is_none() && *in_pipeline == 0 {
                // The last answer owed to a connection that has gone: the slot is free again.
                free_slots.push(slot);
            }
            match live {
                Some(conn) => {
                    // The full sequence number, from the 16 bits the tag keeps: answers owed
                    // span fewer than 2^16 numbers.
                    let first = conn.next_seq() - conn.owed() as u64;
                    let seq = first + u64::from(seq16.wrapping_sub(first as u16));
                    let result = conn.answer(seq, env, answer);
                    let held = conn.held_bytes();
                    *held_bytes = *held_bytes + held - conn.accounted;
                    conn.accounted = held;
                    match result {
                        Ok(()) if !conn.dirty => {
                            conn.dirty = true;
                            dirty.push(slot);
                        }
                        Ok(()) => {}
                        Err(env) => envelopes.push(env),
                    }
                }
                None => {
                    late += 1;
                    envelopes.push(env);
                }
            }
        });
        if late > 0 {
            self.live.late_answers_dropped.fetch_add(late, Ordering::Relaxed);
        }
        self.in_flight -= answered;
        if answered > 0 {
            self.answered += answered as u64;
            // Room again: connections that stopped for lack of it frame what they hold.
            if self.shared_room() {
                self.resume_stalled();
            }
        }
        answered > 0
    }

    /// Serialises and writes what each dirty connection can send, and closes the finished.
    fn write_dirty(&mut self) {
        let now = std::time::SystemTime::now();
        let second = now.duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        if second != self.date_second {
            self.date = seda_stages::http::http_date(now);
            self.date_second = second;
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        for &slot in &dirty {
            let Some(conn) = self.slots[slot].conn.as_mut() else { continue };
            conn.dirty = false;
            if conn.waiting == Waiting::Linger {
                continue;
            }
            let envelopes = &mut self.envelopes;
            conn.serialise(self.date.as_bytes(), |env| envelopes.push(env));
            if self.io.send(slot, conn).is_err() {
                HttpLive::count(&self.live.broken);
                self.close(slot);
                continue;
            }
            self.account(slot);
            self.update_deadline(slot);
            let conn = self.slots[slot].conn.as_mut().unwrap();
            if conn.finished() {
                if conn.wants_linger() {
                    self.linger(slot);
                } else {
                    self.close(slot);
                }
            } else if conn.held_back
                && conn.has_room(self.plan.max_pipelined, self.plan.max_unsent_bytes_per_connection)
            {
                // It had stopped framing for its own bounds (answers owed, unsent output), and
                // writing its answers made room: it frames what it holds now, not when some
                // later event happens to come (none may: its requests are all in its buffer).
                conn.held_back = false;
                self.on_readable(slot);
            }
        }
        // Keep what was marked meanwhile (a connection that framed again): it is written next turn.
        dirty.clear();
        let marked = std::mem::replace(&mut self.dirty, dirty);
        self.dirty.extend(marked);
    }

    /// What the connection now waits for, and until when. Every wait has a deadline: a head's
    /// and a body's whole time run from their start (later bytes do not extend them); the
    /// waits for a body's next bytes, for the next answer and for the client to read are
    /// measured from the last progress.
    fn update_deadline(&mut self, slot: usize) {
        let Some(conn) = self.slots[slot].conn.as_mut().filter(|c| c.waiting != Waiting::Linger) else { return };
        let waiting = conn.wait_kind();
        if waiting == Waiting::Idle {
            // Between requests it needs no framer nor output buffer: another connection may use
            // them meanwhile.
            conn.give_back_if_idle(&mut self.spares);
        }
        let progress = std::mem::take(&mut conn.progress);
        let moved = match waiting {
            Waiting::Body => progress.read,
            Waiting::Answers => progress.answered,
            Waiting::Send => progress.sent,
            Waiting::Head | Waiting::Idle | Waiting::Linger => false,
        };
        if waiting == conn.waiting && !moved {
            return;
        }
        let now = now_ns();
        let after = |timeout: Duration| now.saturating_add(nanos(timeout));
        let plan = &self.plan;
        if waiting != conn.waiting && waiting == Waiting::Body {
            conn.body_deadline_ns = after(plan.body_timeout);
        }
        conn.deadline_ns = match waiting {
            Waiting::Head => after(plan.header_timeout),
            Waiting::Body => after(plan.body_read_timeout).min(conn.body_deadline_ns),
            Waiting::Idle => after(plan.idle_timeout),
            Waiting::Answers => after(plan.answer_timeout),
            Waiting::Send => after(plan.send_timeout),
            Waiting::Linger => unreachable!("a lingering connection keeps its deadline"),
        };
        conn.waiting = waiting;
        if waiting == Waiting::Idle {
            self.idle_order.push_back((slot, conn.generation, conn.deadline_ns));
            if self.idle_order.len() > 2 * self.open + 64 {
                // Drop the stale entries, so the queue stays in proportion to the connections.
                let slots = &self.slots;
                self.idle_order.retain(|&(slot, generation, since)| {
                    slots[slot].conn.as_ref().is_some_and(|c| {
                        c.generation == generation && c.waiting == Waiting::Idle && c.deadline_ns == since
                    })
                });
            }
        }
    }

    /// Closes connections whose head or idle time ran out, and accepts what an earlier
    /// failure (out of descriptors) left waiting.
    fn sweep(&mut self, now: u64) {
        self.io.resume_accepting();
        self.accept();
        for slot in 0..self.slots.len() {
            let Some(conn) = self.slots[slot].conn.as_mut() else { continue };
            if now < conn.deadline_ns {
                continue;
            }
            match conn.waiting {
                Waiting::Head | Waiting::Body => {
                    conn.write_before_close(fixed_replies::REQUEST_TIMEOUT);
                    conn.linger_after();
                    let count = match conn.waiting {
                        Waiting::Head => &self.live.header_timeouts,
                        _ => &self.live.body_timeouts,
                    };
                    HttpLive::count(count);
                    self.linger(slot);
                    continue;
                }
                Waiting::Idle => HttpLive::count(&self.live.idle_closed),
                // Its requests still in the pipeline end there and are counted by the ledger;
                // their answers will be dropped.
                Waiting::Answers => HttpLive::count(&self.live.answer_timeouts),
                Waiting::Send => HttpLive::count(&self.live.send_timeouts),
                Waiting::Linger => {}
            }
            self.close(slot);
        }
    }

    /// Ends the connection with a lingering close (see [`Waiting::Linger`]): its reply is out,
    /// and what the client still sends is dropped until it closes, within bounds.
    fn linger(&mut self, slot: usize) {
        let Some(conn) = self.slots[slot].conn.as_mut() else { return };
        conn.start_linger();
        conn.deadline_ns = now_ns() + LINGER_TIME.as_nanos() as u64;
        self.discard(slot);
    }

    fn start_draining(&mut self) {
        self.draining = true;
        self.io.stop_listening();
        for (_stream, client, _) in std::mem::take(&mut self.waiting_for_room) {
            self.refuse(client);
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
        self.held_bytes -= conn.accounted;
        self.release_client_share(conn.peer);
        if conn.owed() > 0 {
            // Requests still in the pipeline end there and are counted; their answers will
            // find the slot empty and be dropped.
            HttpLive::count(&self.live.closed_with_requests_in_flight);
        }
        self.envelopes.extend(conn.take_ready());
        conn.give_back_on_close(&mut self.spares);
        // A slot with answers still to come waits for the last of them before it is reused.
        if self.slots[slot].in_pipeline == 0 {
            self.free_slots.push(slot);
        }
        self.io.release(slot, conn);
        self.open -= 1;
        self.live.open.fetch_sub(1, Ordering::AcqRel);
    }
}

impl<B: Backend> Poller for Reactor<B> {
    fn turn(&mut self, timeout: Option<Duration>, admit: &mut Admit<'_>) -> bool {
        Reactor::turn(self, timeout, &mut |batch| admit.submit(batch))
    }

    fn waker(&self) -> Arc<dyn Fn() + Send + Sync> {
        Reactor::waker(self)
    }

    fn precise_timeouts(&self) -> bool {
        self.io.precise_timeouts()
    }
}

/// Where an answer goes: the connection's slot, its generation, and the request's sequence
/// number on it (its low 16 bits).
fn tag(slot: usize, generation: u32, seq: u64) -> u64 {
    (slot as u64 & 0xffff_ffff) | (u64::from(generation & 0xffff) << 32) | ((seq & 0xffff) << 48)
}

/// A timeout in nanoseconds (validated timeouts are at most a day).
fn nanos(timeout: Duration) -> u64 {
    u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX)
}

fn untag(tag: u64) -> (usize, u32, u16) {
    ((tag & 0xffff_ffff) as usize, ((tag >> 32) & 0xffff) as u32, (tag >> 48) as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auto_takes_io_uring_exactly_when_the_kernel_gives_a_ring_and_uring_insists() {
        let available = uring::available().is_ok();
        let auto = choose_io(HttpIo::Auto).expect("auto always has a backend");
        assert_eq!(auto, if available { HttpIo::Uring } else { HttpIo::Epoll });
        assert_eq!(choose_io(HttpIo::Epoll).unwrap(), HttpIo::Epoll);
        match choose_io(HttpIo::Uring) {
            Ok(io) => assert!(available && io == HttpIo::Uring),
            Err(e) => assert!(!available && e.to_string().contains("io_uring is not available"), "{e}"),
        }
    }

    #[test]
    fn a_tag_gives_back_its_slot_generation_and_sequence_number() {
        let (slot, generation, seq) = (70_000, 0x1_2345, 0x1_0007);
        assert_eq!(untag(tag(slot, generation, seq)), (70_000, 0x2345, 0x0007));
    }
}
