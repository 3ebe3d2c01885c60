//! `jetstream_publish`: publishes the request's payload (or its response) to a JetStream stream and continues only
//! once the stream has stored it (its publish acknowledgement), waiting off the workers. The
//! message id (`Nats-Msg-Id`) is the request's `id_attribute` (by default the `Nats-Msg-Id` a
//! `jetstream` source's message brought), so a retried publish of the same work is a duplicate
//! the stream drops within its duplicate window: a sink that is idempotent across redeliveries.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::{HeaderMap, HeaderValue, Subject};
use bytes::Bytes;
use schemars::JsonSchema;
use seda_stages::{
    AsyncOp, BuildError, Completion, IoOp, Output, Outputs, Request, Stage, StageError, StageFactory, StageKind, Step,
};
use serde::Deserialize;

use super::client::{connect, runtime};

/// The attribute set on a request whose publish the stream found a duplicate of.
pub const DUPLICATE: &str = "jetstream.duplicate";

/// The params of `jetstream_publish`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JetStreamPublishParams {
    /// The NATS server's URL, `nats://host:port`.
    #[serde(default = "super::default_server")]
    pub server: String,
    /// The subject to publish to (a stream must capture it).
    pub subject: String,
    /// The request attribute whose value is the message id; without it, no id is sent.
    #[serde(default = "default_id_attribute")]
    pub id_attribute: String,
    /// How long to wait for the stream's acknowledgement; then the request fails (504).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// What is published: the request's payload, or the response earlier stages built.
    #[serde(default)]
    pub publish: Published,
}

/// What `jetstream_publish` publishes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Published {
    /// The request's payload (it goes on unchanged).
    #[default]
    Payload,
    /// The response body earlier stages built (a result to store).
    Response,
}

fn default_id_attribute() -> String {
    "Nats-Msg-Id".into()
}

fn default_timeout_ms() -> u64 {
    5_000
}

/// The `jetstream_publish` kind.
pub struct JetStreamPublish;

impl StageKind for JetStreamPublish {
    type Params = JetStreamPublishParams;
    const DESCRIPTION: &'static str =
        "publishes the payload to a JetStream stream and continues once it is stored (deduplicated by message id)";

    fn build(params: JetStreamPublishParams) -> Result<Arc<dyn StageFactory>, BuildError> {
        super::check_server(&params.server).map_err(|e| BuildError::bad("server", e))?;
        super::check_subject(&params.subject, false).map_err(|e| BuildError::bad("subject", e))?;
        let max = crate::config::ranges::MAX_NATS_TIMEOUT_MS;
        if params.timeout_ms == 0 || params.timeout_ms > max {
            return Err(BuildError::bad("timeout_ms", format!("must be 1 to {max}, not {}", params.timeout_ms)));
        }
        Ok(Arc::new(Shared {
            server: params.server,
            subject: Subject::from(params.subject),
            id_attribute: params.id_attribute,
            timeout: Duration::from_millis(params.timeout_ms),
            publish: params.publish,
            context: OnceLock::new(),
        }))
    }
}

struct Shared {
    server: String,
    subject: Subject,
    id_attribute: String,
    timeout: Duration,
    publish: Published,
    /// Connected when the pipeline starts, not when a config is validated.
    context: OnceLock<Result<jetstream::Context, String>>,
}

impl StageFactory for Shared {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        let context = self
            .context
            .get_or_init(|| connect(&self.server, "seda jetstream_publish").map(super::client::jetstream))
            .clone();
        Box::new(Publisher {
            context: context.map_err(StageError::new),
            subject: self.subject.clone(),
            id_attribute: self.id_attribute.clone(),
            timeout: self.timeout,
            publish: self.publish,
        })
    }
}

struct Publisher {
    context: Result<jetstream::Context, StageError>,
    subject: Subject,
    id_attribute: String,
    timeout: Duration,
    publish: Published,
}

impl Stage for Publisher {
    fn handle(&mut self, req: &mut Request) -> Step {
        let context = match &self.context {
            Ok(context) => context.clone(),
            Err(e) => return Step::Fail(e.clone()),
        };
        let mut headers = HeaderMap::new();
        if let Some(id) = req.attrs.get(&self.id_attribute) {
            headers.insert("Nats-Msg-Id", HeaderValue::from_lossy(id));
        }
        let (payload, restore) = match self.publish {
            // Moved into the message with no copy, and back into the request after.
            Published::Payload => (Bytes::from(std::mem::take(&mut req.payload)), true),
            Published::Response => (Bytes::copy_from_slice(req.response.bytes()), false),
        };
        let op = PublishOp { context, subject: self.subject.clone(), restore, payload, headers, timeout: self.timeout };
        Step::Io(IoOp::Custom(Box::new(op)), Output::NEXT)
    }
}

struct PublishOp {
    context: jetstream::Context,
    subject: Subject,
    /// Whether the payload goes back into the request (it was taken from it).
    restore: bool,
    payload: Bytes,
    headers: HeaderMap,
    timeout: Duration,
}

impl AsyncOp for PublishOp {
    fn start(self: Box<Self>, done: Completion) {
        runtime().spawn(async move {
            let PublishOp { context, subject, restore, payload, headers, timeout } = *self;
            let stored = tokio::time::timeout(timeout, async {
                context.publish_with_headers(subject, headers, payload.clone()).await?.await
            })
            .await;
            match stored {
                Ok(Ok(ack)) => done.complete(move |req: &mut Request| {
                    if restore {
                        req.payload = Vec::from(payload);
                    }
                    if ack.duplicate {
                        req.attrs.set(DUPLICATE.into(), "true".into());
                    }
                }),
                Ok(Err(e)) => done.fail_with_status(
                    502,
                    StageError::new(super::wire::cut(&format!("jetstream publish: {e}"), super::wire::MAX_ERROR)),
                ),
                Err(_) => done.fail_with_status(504, StageError::new("jetstream publish timeout")),
            }
        });
    }

    fn describe(&self) -> &str {
        "a JetStream publish"
    }
}
