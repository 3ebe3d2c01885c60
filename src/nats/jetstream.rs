//! The `jetstream` source: durable work. A durable pull consumer on a JetStream stream; each
//! message becomes a request, and is acknowledged only when its request has ended:
//!
//! 1. completed: `+ACK`, so the stream counts it done;
//! 2. rejected, failed or timed out: `-NAK` with `nak_delay_ms`, so the stream redelivers it
//!    later, to this host or another;
//! 3. failed on its `max_deliver`th delivery: published to `dead_letter_subject` with its last
//!    error (`Seda-Error`), then `+TERM`, so the stream stops redelivering it.
//!
//! Requests are numbered by the message's stream sequence, the same on every delivery.
//!
//! A message is never acknowledged when admitted (a crash would lose what was in flight): a host
//! that dies holds no acknowledgement back, and after `ack_wait_ms` the stream redelivers what it
//! held, counted as redelivered where it lands. Messages in flight are bounded twice: by the
//! consumer's `max_ack_pending` at the server (over all hosts) and by as many permits here (a
//! message is taken with one, given back when it is acknowledged), on top of the queues' own
//! bounds. Stopping stops pulling, answers (acknowledges) what was taken, and exits; what was
//! pulled and not taken is redelivered after `ack_wait_ms`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::consumer::{pull, AckPolicy, PullConsumer};
use async_nats::jetstream::{self, AckKind};
use async_nats::{Client, HeaderMap};
use futures_util::StreamExt;
use seda_stages::Request;
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

use super::client::{connect, runtime};
use super::wire;
use crate::config::{JetStreamPlan, Plan, SourcePlan};
use crate::engine::{Admission, Envelope, Origin, Outcome};
use crate::metrics::{LiveStats, SourceStats};
use crate::source::{Opened, RunsOn, Source, SourceError, ThreadBody};

/// Requests submitted at a time.
const BATCH: usize = 32;
/// How long opening waits for the server to answer (stream and consumer lookups).
const OPEN_WAIT: Duration = Duration::from_secs(10);
/// How often the consumer's pending count is read from the server.
const PENDING_EVERY: Duration = Duration::from_secs(1);

/// The `jetstream` source.
#[derive(Default)]
pub struct JetStreamSource {
    running: Option<Running>,
}

struct Running {
    shared: Arc<Shared>,
    client: Client,
    stop: Option<oneshot::Sender<()>>,
}

impl JetStreamSource {
    pub fn new() -> Self {
        JetStreamSource::default()
    }
}

struct Shared {
    /// By request id: the message, to acknowledge when the request ends, and its permit.
    owed: Mutex<HashMap<u64, Owed>>,
    acks: mpsc::UnboundedSender<Ack>,
    plan: JetStreamPlan,
    stage_names: Vec<String>,
    permits: Arc<Semaphore>,
    pulling_stopped: AtomicBool,
    taken: AtomicU64,
    acked: AtomicU64,
    nacked: AtomicU64,
    redelivered: AtomicU64,
    dead_lettered: AtomicU64,
    /// Deliveries of a message this host was still running (it outlived `ack_wait_ms`): sent
    /// back to wait, not run twice at once, and not admitted.
    already_running: AtomicU64,
    /// Acknowledgements decided (ended requests) and sent.
    decided: AtomicU64,
    sent: AtomicU64,
    /// The consumer's pending messages at the server, as last read.
    pending: AtomicU64,
}

struct Owed {
    message: jetstream::Message,
    permit: OwnedSemaphorePermit,
}

/// What to tell the stream about one message.
enum Ack {
    Done(jetstream::Message, OwnedSemaphorePermit),
    Retry(jetstream::Message, OwnedSemaphorePermit),
    DeadLetter(jetstream::Message, OwnedSemaphorePermit, String),
    /// A message that is no JetStream delivery: terminated.
    Drop(jetstream::Message, OwnedSemaphorePermit),
}

impl Source for JetStreamSource {
    fn open(&mut self, plan: &Plan) -> Result<Opened, SourceError> {
        let SourcePlan::JetStream(js) = &plan.source else {
            return Err(SourceError::new("the pipeline's source is not `jetstream`"));
        };
        let client = connect(&js.server, "seda jetstream source").map_err(SourceError::new)?;
        let context = super::client::jetstream(client.clone());
        let config = pull::Config {
            durable_name: Some(js.consumer.clone()),
            ack_policy: AckPolicy::Explicit,
            ack_wait: js.ack_wait,
            // Unlimited on the server: seda counts the deliveries and dead-letters a message
            // whose `max_deliver`th delivery fails. A server that stopped delivering at
            // `max_deliver` would abandon, neither acknowledged nor dead-lettered, a message
            // whose last delivery went to a host that died, or came back while another host
            // still ran it, or whose dead letter could not be stored.
            max_deliver: -1,
            max_ack_pending: js.max_ack_pending as i64,
            filter_subject: js.filter_subject.clone().unwrap_or_default(),
            ..Default::default()
        };
        let consumer: PullConsumer = runtime()
            .block_on(async {
                tokio::time::timeout(OPEN_WAIT, async {
                    let stream = context.get_stream(&js.stream).await.map_err(|e| e.to_string())?;
                    stream.get_or_create_consumer(&js.consumer, config).await.map_err(|e| e.to_string())
                })
                .await
                .map_err(|_| format!("no answer from {} within {OPEN_WAIT:?}", js.server))?
            })
            .map_err(|e: String| {
                SourceError::new(format!("stream `{}`, consumer `{}`: {e}", js.stream, js.consumer))
            })?;
        let permits = Arc::new(Semaphore::new(js.max_ack_pending));
        let (acks, acks_rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared {
            owed: Mutex::new(HashMap::with_capacity(js.max_ack_pending)),
            acks,
            plan: js.clone(),
            stage_names: plan.stages.iter().map(|s| s.name.clone()).collect(),
            permits: permits.clone(),
            pulling_stopped: AtomicBool::new(false),
            taken: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            nacked: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            already_running: AtomicU64::new(0),
            decided: AtomicU64::new(0),
            sent: AtomicU64::new(0),
            pending: AtomicU64::new(0),
        });
        let (messages_tx, messages) = flume::bounded(js.max_ack_pending);
        let (stop, stopped) = oneshot::channel();
        runtime().spawn(pull_messages(consumer, permits, messages_tx, stopped, shared.clone()));
        runtime().spawn(send_acks(context, acks_rx, shared.clone()));

        let submitting = shared.clone();
        let body: ThreadBody = Box::new(move |mut submitter| {
            let mut batch = Vec::with_capacity(BATCH);
            while let Ok(first) = messages.recv() {
                for (message, permit) in std::iter::once(first).chain(messages.try_iter().take(BATCH - 1)) {
                    batch.extend(submitting.request(message, permit));
                }
                submitter.submit_batch(&mut batch, Admission::Policy);
            }
        });
        self.running = Some(Running { shared: shared.clone(), client, stop: Some(stop) });
        Ok(Opened {
            origins: vec![shared as Arc<dyn Origin>],
            runs_on: RunsOn::Thread { name: "seda-jetstream", cpu: None, body },
        })
    }

    fn stop(&mut self, drain_timeout: Duration) {
        let Some(running) = self.running.as_mut() else { return };
        if let Some(stop) = running.stop.take() {
            let _ = stop.send(());
        }
        let until = Instant::now() + drain_timeout;
        let shared = &running.shared;
        let settled = || {
            shared.pulling_stopped.load(Ordering::Acquire)
                && shared.owed.lock().unwrap_or_else(|e| e.into_inner()).is_empty()
                && shared.sent.load(Ordering::Acquire) == shared.decided.load(Ordering::Acquire)
        };
        while !settled() && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
        let wait = Duration::from_secs(1).min(until.saturating_duration_since(Instant::now()));
        let client = running.client.clone();
        let _ = runtime().block_on(async move { tokio::time::timeout(wait, client.flush()).await });
    }

    fn stats(&self) -> Option<Arc<dyn LiveStats>> {
        self.running.as_ref().map(|r| r.shared.clone() as Arc<dyn LiveStats>)
    }
}

/// Pulls messages, each with a permit, until stopped; reads the consumer's pending count.
async fn pull_messages(
    mut consumer: PullConsumer,
    permits: Arc<Semaphore>,
    messages: flume::Sender<(jetstream::Message, OwnedSemaphorePermit)>,
    mut stop: oneshot::Receiver<()>,
    shared: Arc<Shared>,
) {
    let batch = shared.plan.max_ack_pending.min(256);
    let mut pulled = match consumer.stream().max_messages_per_batch(batch).messages().await {
        Ok(pulled) => pulled,
        Err(_) => {
            shared.pulling_stopped.store(true, Ordering::Release);
            return;
        }
    };
    let mut next_pending = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_pending {
            if let Ok(info) = consumer.info().await {
                shared.pending.store(info.num_pending, Ordering::Relaxed);
            }
            next_pending = tokio::time::Instant::now() + PENDING_EVERY;
        }
        let permit = tokio::select! {
            biased;
            _ = &mut stop => break,
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let message = tokio::select! {
            biased;
            _ = &mut stop => break,
            message = tokio::time::timeout(PENDING_EVERY, pulled.next()) => message,
        };
        match message {
            Ok(Some(Ok(message))) => {
                if messages.send_async((message, permit)).await.is_err() {
                    break;
                }
            }
            // A pull that failed (the server restarting): the stream pulls again.
            Ok(Some(Err(_))) | Err(_) => {}
            Ok(None) => break,
        }
    }
    shared.pulling_stopped.store(true, Ordering::Release);
}

/// Tells the stream how each taken message ended.
async fn send_acks(context: jetstream::Context, mut acks: mpsc::UnboundedReceiver<Ack>, shared: Arc<Shared>) {
    let delay = shared.plan.nak_delay;
    while let Some(ack) = acks.recv().await {
        match ack {
            Ack::Done(message, _permit) => {
                let _ = message.ack().await;
            }
            Ack::Drop(message, _permit) => {
                let _ = message.ack_with(AckKind::Term).await;
            }
            Ack::Retry(message, _permit) => {
                let _ = message.ack_with(AckKind::Nak(Some(delay))).await;
            }
            Ack::DeadLetter(message, _permit, error) => {
                let mut headers = HeaderMap::new();
                headers.insert(wire::ERROR, wire::cut(&error, wire::MAX_ERROR));
                headers.insert("Seda-Subject", message.subject.as_str());
                if let Some(id) = message.headers.as_ref().and_then(|h| h.get("Nats-Msg-Id")) {
                    headers.insert("Nats-Msg-Id", id.as_str());
                }
                let subject = shared.plan.dead_letter_subject.clone();
                // Terminated only once the dead letter is stored, so that a crash in between
                // redelivers it rather than loses it.
                let stored = match context.publish_with_headers(subject, headers, message.payload.clone()).await {
                    Ok(ack) => ack.await.is_ok(),
                    Err(_) => false,
                };
                let kind = if stored { AckKind::Term } else { AckKind::Nak(Some(delay)) };
                let _ = message.ack_with(kind).await;
            }
        }
        shared.sent.fetch_add(1, Ordering::AcqRel);
    }
}

impl Shared {
    /// A message as a request whose id is the message's stream sequence: the same on every
    /// delivery, so that what a stage decides by request id (a `chaos` draw) it decides the same
    /// way each time. A message delivered again while this host still runs it (it outlived
    /// `ack_wait_ms`) is not run twice at once: it is sent back to wait.
    fn request(&self, message: jetstream::Message, permit: OwnedSemaphorePermit) -> Option<Box<Envelope>> {
        self.taken.fetch_add(1, Ordering::Relaxed);
        let Ok((id, delivered)) = message.info().map(|info| (info.stream_sequence, info.delivered)) else {
            // Not a JetStream delivery (no sequence to answer it by): terminated.
            self.decided.fetch_add(1, Ordering::AcqRel);
            let _ = self.acks.send(Ack::Drop(message, permit));
            return None;
        };
        if delivered > 1 {
            self.redelivered.fetch_add(1, Ordering::Relaxed);
        }
        let mut owed = self.owed.lock().unwrap_or_else(|e| e.into_inner());
        if owed.contains_key(&id) {
            drop(owed);
            self.already_running.fetch_add(1, Ordering::Relaxed);
            self.decided.fetch_add(1, Ordering::AcqRel);
            let _ = self.acks.send(Ack::Retry(message, permit));
            return None;
        }
        let mut req = Request { id, payload: message.payload.to_vec(), ..Request::default() };
        wire::headers_to_attrs(message.headers.as_ref(), &mut req);
        owed.insert(id, Owed { message, permit });
        Some(Envelope::new(req))
    }

    fn stage(&self, stage: usize) -> &str {
        self.stage_names.get(stage).map_or("?", String::as_str)
    }

    /// Why a request did not complete, for a dead letter.
    fn reason(&self, outcome: &Outcome) -> String {
        match outcome {
            Outcome::Completed => String::new(),
            Outcome::Rejected(reason) => format!("rejected: {reason:?}"),
            Outcome::Failed { stage, error } => format!("failed at `{}`: {error}", self.stage(*stage)),
            Outcome::TimedOut { stage } => format!("timed out at `{}`", self.stage(*stage)),
        }
    }
}

impl Origin for Shared {
    fn finish(&self, env: Box<Envelope>, outcome: &Outcome) {
        let Some(Owed { message, permit }) = self.owed.lock().unwrap_or_else(|e| e.into_inner()).remove(&env.req.id)
        else {
            return;
        };
        let ack = if matches!(outcome, Outcome::Completed) {
            self.acked.fetch_add(1, Ordering::Relaxed);
            Ack::Done(message, permit)
        } else if message.info().is_ok_and(|info| info.delivered >= self.plan.max_deliver as i64) {
            self.dead_lettered.fetch_add(1, Ordering::Relaxed);
            Ack::DeadLetter(message, permit, self.reason(outcome))
        } else {
            self.nacked.fetch_add(1, Ordering::Relaxed);
            Ack::Retry(message, permit)
        };
        self.decided.fetch_add(1, Ordering::AcqRel);
        let _ = self.acks.send(ack);
    }
}

impl LiveStats for Shared {
    fn read(&self) -> SourceStats {
        let mut stats = SourceStats { kind: "jetstream".into(), ..SourceStats::default() };
        for (name, count) in [
            ("taken", &self.taken),
            ("acked", &self.acked),
            ("nacked", &self.nacked),
            ("redelivered", &self.redelivered),
            ("dead_lettered", &self.dead_lettered),
            ("already_running", &self.already_running),
        ] {
            stats.counts.insert(name.into(), count.load(Ordering::Relaxed));
        }
        let in_flight = self.plan.max_ack_pending - self.permits.available_permits();
        stats.levels.insert("in_flight".into(), in_flight as u64);
        stats.levels.insert("pending".into(), self.pending.load(Ordering::Relaxed));
        stats
    }
}
