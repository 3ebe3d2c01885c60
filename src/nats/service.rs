//! The `nats` source in service mode: it subscribes to a subject in a queue group, so that N
//! hosts share its messages (the server gives each message to one member); each message becomes
//! a request, and the pipeline's answer is published to the message's reply subject, with its
//! status (`Seda-Status`) and, when the request did not complete, the reason (`Seda-Error`).
//!
//! 1. A task on the NATS runtime takes a message only with a permit of `max_in_flight`; a permit
//!    is given back when the message's answer is published. Messages it does not take wait in
//!    the client (and, past its buffer, the server counts this member a slow consumer): the
//!    bound holds whatever the senders do.
//! 2. The source's thread turns messages into requests (headers into attributes, checked by
//!    [`super::wire`]) and submits them in batches; the entry stage's queue policy applies.
//! 3. Each request ends exactly once at this source's origin, which answers it (a rejected,
//!    failed or timed-out request is answered too, with a reason), through a publishing task.
//! 4. Stop drains: unsubscribe (the server sends nothing more, what it had sent still arrives),
//!    submit and answer what was taken, flush the answers, exit; all of it within the drain
//!    timeout, so that a server that is gone cannot hold the stop. What is not answered by then
//!    is answered when the engine ends it, if the process is still there.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::{Client, HeaderMap, Message, Subject};
use bytes::Bytes;
use futures_util::StreamExt;
use seda_stages::Request;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::client::{connect, runtime};
use super::wire;
use crate::config::{Plan, SourcePlan};
use crate::engine::{Admission, Envelope, Origin, Outcome, RejectReason};
use crate::metrics::{LiveStats, SourceStats};
use crate::source::{Opened, RunsOn, Source, SourceError, ThreadBody};

/// Requests submitted at a time.
const BATCH: usize = 32;
/// How long stop waits for the server to confirm the last answers, at most (and never past the
/// drain timeout).
const FLUSH_WAIT: Duration = Duration::from_secs(1);

/// The `nats` source.
#[derive(Default)]
pub struct NatsSource {
    running: Option<Running>,
}

struct Running {
    service: Arc<Service>,
    client: Client,
    /// Tells the taking task to drain, and how long it may take.
    stop: Option<oneshot::Sender<Duration>>,
}

impl NatsSource {
    pub fn new() -> Self {
        NatsSource::default()
    }
}

/// What the source's parts share: the answers owed, and the counts.
struct Service {
    /// By request id: where its answer goes, and its permit.
    owed: Mutex<HashMap<u64, Owed>>,
    answers: mpsc::UnboundedSender<Answer>,
    stage_names: Vec<String>,
    max_in_flight: usize,
    permits: Arc<Semaphore>,
    /// Set when the subscription has ended (after stop, or the connection's end).
    unsubscribed: AtomicBool,
    taken: AtomicU64,
    answered: AtomicU64,
    /// Messages with no reply subject: run, and their answers dropped.
    no_reply: AtomicU64,
    /// Answers handed to the client.
    published: AtomicU64,
    /// Answers owed to a reply subject (published, or about to be).
    to_publish: AtomicU64,
}

struct Owed {
    reply: Option<Subject>,
    permit: OwnedSemaphorePermit,
}

/// One answer on its way out.
struct Answer {
    subject: Subject,
    headers: HeaderMap,
    payload: Bytes,
    permit: OwnedSemaphorePermit,
}

impl Source for NatsSource {
    fn open(&mut self, plan: &Plan) -> Result<Opened, SourceError> {
        let SourcePlan::Nats(nats) = &plan.source else {
            return Err(SourceError::new("the pipeline's source is not `nats`"));
        };
        let client = connect(&nats.server, "seda nats source").map_err(SourceError::new)?;
        let permits = Arc::new(Semaphore::new(nats.max_in_flight));
        let (answers, answers_rx) = mpsc::unbounded_channel();
        let service = Arc::new(Service {
            owed: Mutex::new(HashMap::with_capacity(nats.max_in_flight)),
            answers,
            stage_names: plan.stages.iter().map(|s| s.name.clone()).collect(),
            max_in_flight: nats.max_in_flight,
            permits: permits.clone(),
            unsubscribed: AtomicBool::new(false),
            taken: AtomicU64::new(0),
            answered: AtomicU64::new(0),
            no_reply: AtomicU64::new(0),
            published: AtomicU64::new(0),
            to_publish: AtomicU64::new(0),
        });
        let subscriber = runtime()
            .block_on(client.queue_subscribe(nats.subject.clone(), nats.queue_group.clone()))
            .map_err(|e| SourceError::new(format!("subscribing to `{}`: {e}", nats.subject)))?;
        // The subscription is in place at the server once it answers a flush; a server not up
        // yet is waited for in the background (the client subscribes once it connects).
        let _ = runtime().block_on(async { tokio::time::timeout(FLUSH_WAIT, client.flush()).await });

        let (messages_tx, messages) = flume::bounded(nats.max_in_flight);
        let (stop, stopped) = oneshot::channel();
        runtime().spawn(take_messages(subscriber, permits, messages_tx, stopped, service.clone()));
        runtime().spawn(publish_answers(client.clone(), answers_rx, service.clone()));

        let submitting = service.clone();
        let body: ThreadBody = Box::new(move |mut submitter| {
            let mut next_id = 1u64;
            let mut batch = Vec::with_capacity(BATCH);
            while let Ok(first) = messages.recv() {
                for (message, permit) in std::iter::once(first).chain(messages.try_iter().take(BATCH - 1)) {
                    batch.push(submitting.request(next_id, message, permit));
                    next_id += 1;
                }
                submitter.submit_batch(&mut batch, Admission::Policy);
            }
        });
        self.running = Some(Running { service: service.clone(), client, stop: Some(stop) });
        Ok(Opened {
            origins: vec![service as Arc<dyn Origin>],
            runs_on: RunsOn::Thread { name: "seda-nats-source", cpu: None, body },
        })
    }

    fn stop(&mut self, drain_timeout: Duration) {
        let Some(running) = self.running.as_mut() else { return };
        if let Some(stop) = running.stop.take() {
            let _ = stop.send(drain_timeout);
        }
        let until = Instant::now() + drain_timeout;
        let service = &running.service;
        let settled = || {
            service.unsubscribed.load(Ordering::Acquire)
                && service.owed.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
                && service.published.load(Ordering::Acquire) == service.to_publish.load(Ordering::Acquire)
        };
        while !settled() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        // Within the drain timeout too: a server that is gone never confirms.
        let wait = FLUSH_WAIT.min(until.saturating_duration_since(Instant::now()));
        let client = running.client.clone();
        let _ = runtime().block_on(async move { tokio::time::timeout(wait, client.flush()).await });
    }

    fn stats(&self) -> Option<Arc<dyn LiveStats>> {
        self.running.as_ref().map(|r| r.service.clone() as Arc<dyn LiveStats>)
    }
}

/// Step 1: takes messages, each with a permit, until stopped; then drains the subscription, for
/// at most the drain timeout (a server that is gone never confirms the drain).
async fn take_messages(
    mut subscriber: async_nats::Subscriber,
    permits: Arc<Semaphore>,
    messages: flume::Sender<(Message, OwnedSemaphorePermit)>,
    mut stop: oneshot::Receiver<Duration>,
    service: Arc<Service>,
) {
    // Far off until the stop: then the drain's deadline.
    let mut until = tokio::time::Instant::now() + Duration::from_secs(86_400 * 365);
    let mut draining = false;
    loop {
        let permit = tokio::select! {
            biased;
            drain = &mut stop, if !draining => {
                draining = true;
                until = tokio::time::Instant::now() + drain.unwrap_or_default();
                let _ = tokio::time::timeout_at(until, subscriber.drain()).await;
                continue;
            }
            permit = tokio::time::timeout_at(until, permits.clone().acquire_owned()) => match permit {
                Ok(Ok(permit)) => permit,
                _ => break,
            },
        };
        let message = tokio::select! {
            biased;
            drain = &mut stop, if !draining => {
                draining = true;
                until = tokio::time::Instant::now() + drain.unwrap_or_default();
                let _ = tokio::time::timeout_at(until, subscriber.drain()).await;
                continue;
            }
            message = tokio::time::timeout_at(until, subscriber.next()) => message,
        };
        let Ok(Some(message)) = message else { break };
        if messages.send_async((message, permit)).await.is_err() {
            break;
        }
    }
    service.unsubscribed.store(true, Ordering::Release);
}

/// Step 3's second half: publishes answers in the order they ended.
async fn publish_answers(client: Client, mut answers: mpsc::UnboundedReceiver<Answer>, service: Arc<Service>) {
    while let Some(Answer { subject, headers, payload, permit }) = answers.recv().await {
        let _ = client.publish_with_headers(subject, headers, payload).await;
        service.published.fetch_add(1, Ordering::AcqRel);
        drop(permit);
    }
}

impl Service {
    /// Step 2: a message as a request.
    fn request(&self, id: u64, message: Message, permit: OwnedSemaphorePermit) -> Box<Envelope> {
        self.taken.fetch_add(1, Ordering::Relaxed);
        let mut req = Request { id, payload: Vec::from(message.payload), ..Request::default() };
        wire::headers_to_attrs(message.headers.as_ref(), &mut req);
        if message.reply.is_none() {
            self.no_reply.fetch_add(1, Ordering::Relaxed);
        }
        let owed = Owed { reply: message.reply, permit };
        self.owed.lock().unwrap_or_else(|e| e.into_inner()).insert(id, owed);
        Envelope::new(req)
    }

    fn stage(&self, stage: usize) -> &str {
        self.stage_names.get(stage).map_or("?", String::as_str)
    }

    /// The status and, for a request that did not complete, the reason its answer carries.
    fn describe(&self, env: &Envelope, outcome: &Outcome) -> (u16, Option<String>) {
        let chosen = env.req.response.status;
        match outcome {
            Outcome::Completed if chosen == 0 => (500, Some("the pipeline ended without a status".into())),
            Outcome::Completed => (chosen, None),
            Outcome::Rejected(reason) => {
                let why = match *reason {
                    RejectReason::QueueFull { stage } => format!("stage `{}`'s queue is full", self.stage(stage)),
                    RejectReason::BlockTimeout { stage } => {
                        format!("stage `{}`'s queue stayed full", self.stage(stage))
                    }
                    RejectReason::DroppedOldest { stage } => {
                        format!("dropped from stage `{}`'s full queue", self.stage(stage))
                    }
                    RejectReason::IoFull { stage } => {
                        format!("stage `{}`: the completion layer is full", self.stage(stage))
                    }
                    RejectReason::Overload { stage, controller } => {
                        format!("overload: stage `{}`'s {} shed it", self.stage(stage), controller.name())
                    }
                    RejectReason::ShuttingDown => "shutting down".into(),
                };
                (503, Some(format!("rejected: {why}")))
            }
            Outcome::Failed { stage, error } => {
                let status = if (400..600).contains(&chosen) { chosen } else { 500 };
                (status, Some(format!("failed at `{}`: {error}", self.stage(*stage))))
            }
            Outcome::TimedOut { stage } => (504, Some(format!("timed out at `{}`", self.stage(*stage)))),
        }
    }
}

impl Origin for Service {
    fn finish(&self, env: Box<Envelope>, outcome: &Outcome) {
        let Some(Owed { reply, permit }) = self.owed.lock().unwrap_or_else(|e| e.into_inner()).remove(&env.req.id)
        else {
            return;
        };
        self.answered.fetch_add(1, Ordering::Relaxed);
        let Some(subject) = reply else { return };
        let (status, error) = self.describe(&env, outcome);
        let mut headers = HeaderMap::new();
        headers.insert(wire::STATUS, async_nats::HeaderValue::from(status));
        let payload = match error {
            Some(error) => {
                headers.insert(wire::ERROR, wire::cut(&error, wire::MAX_ERROR));
                Bytes::new()
            }
            None => {
                if let Some(content_type) = env.req.response.headers.get("Content-Type") {
                    headers.insert(wire::CONTENT_TYPE, String::from_utf8_lossy(content_type).as_ref());
                }
                Bytes::copy_from_slice(env.req.response.bytes())
            }
        };
        self.to_publish.fetch_add(1, Ordering::AcqRel);
        // The publishing task outlives every request: it ends with the runtime.
        let _ = self.answers.send(Answer { subject, headers, payload, permit });
    }
}

impl LiveStats for Service {
    fn read(&self) -> SourceStats {
        let mut stats = SourceStats { kind: "nats".into(), ..SourceStats::default() };
        for (name, count) in [
            ("taken", &self.taken),
            ("answered", &self.answered),
            ("no_reply", &self.no_reply),
            ("published", &self.published),
        ] {
            stats.counts.insert(name.into(), count.load(Ordering::Relaxed));
        }
        let in_flight = self.max_in_flight - self.permits.available_permits();
        stats.levels.insert("in_flight".into(), in_flight as u64);
        stats
    }
}
