//! `nats_request`: sends the request's payload, and the attributes its params name as headers,
//! to a subject, and waits for the reply off the workers ([`seda_stages::AsyncOp`], completed
//! by the NATS runtime's thread). The reply's payload becomes the request's payload; a seda
//! worker's reply also brings its status and body as the response, so a `send` stage after
//! this one answers an HTTP client with what the worker answered.
//!
//! Failures, each with the HTTP status an HTTP source answers:
//! - no reply within `timeout_ms`: `nats timeout` (504);
//! - no subscriber on the subject: `nats no responders` (503);
//! - the worker's pipeline failed the request: `nats worker: ` and its reason, with its status;
//! - anything else (the connection closed, a payload over the server's limit): 502.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::client::RequestErrorKind;
use async_nats::{Client, HeaderMap, HeaderName, HeaderValue, Subject};
use bytes::Bytes;
use schemars::JsonSchema;
use seda_stages::{
    AsyncOp, BuildError, Completion, IoOp, Output, Outputs, Request, Stage, StageError, StageFactory, StageKind, Step,
};
use serde::Deserialize;

use super::client::{connect, runtime};
use super::wire::{self, Answer};

/// The params of `nats_request`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsRequestParams {
    /// The NATS server's URL, `nats://host:port`.
    #[serde(default = "super::default_server")]
    pub server: String,
    /// The subject the requests are sent to (no wildcards).
    pub subject: String,
    /// How long to wait for the reply; then the request fails with `nats timeout` (504).
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    /// Request attributes sent as message headers of the same name (a `nats` source makes them
    /// attributes again on the other side).
    #[serde(default)]
    pub headers: Vec<String>,
}

fn default_timeout_ms() -> u64 {
    5_000
}

/// The `nats_request` kind.
pub struct NatsRequest;

impl StageKind for NatsRequest {
    type Params = NatsRequestParams;
    const DESCRIPTION: &'static str =
        "sends the payload to a NATS subject and continues with the reply (request-reply across hosts)";

    fn build(params: NatsRequestParams) -> Result<Arc<dyn StageFactory>, BuildError> {
        super::check_server(&params.server).map_err(|e| BuildError::bad("server", e))?;
        super::check_subject(&params.subject, false).map_err(|e| BuildError::bad("subject", e))?;
        if params.timeout_ms == 0 || params.timeout_ms > crate::config::ranges::MAX_NATS_TIMEOUT_MS {
            let max = crate::config::ranges::MAX_NATS_TIMEOUT_MS;
            return Err(BuildError::bad("timeout_ms", format!("must be 1 to {max}, not {}", params.timeout_ms)));
        }
        let mut headers = Vec::with_capacity(params.headers.len());
        for name in &params.headers {
            let header = name
                .parse::<HeaderName>()
                .ok()
                .filter(|_| name.len() <= wire::MAX_ATTR_NAME && name != wire::STATUS && name != wire::ERROR)
                .ok_or_else(|| BuildError::bad("headers", format!("`{name}` cannot be a NATS header name")))?;
            headers.push((Arc::<str>::from(name.as_str()), header));
        }
        Ok(Arc::new(Shared {
            server: params.server,
            subject: Subject::from(params.subject),
            timeout: Duration::from_millis(params.timeout_ms),
            headers,
            client: OnceLock::new(),
        }))
    }
}

/// What every instance of one `nats_request` stage shares: its one client connection.
struct Shared {
    server: String,
    subject: Subject,
    timeout: Duration,
    /// (attribute, header) pairs.
    headers: Vec<(Arc<str>, HeaderName)>,
    /// Connected when the first instance is made (the pipeline starts), not when a config is
    /// only validated.
    client: OnceLock<Result<Client, String>>,
}

impl StageFactory for Shared {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        let client = self.client.get_or_init(|| connect(&self.server, "seda nats_request")).clone();
        Box::new(Requester {
            client: client.map_err(StageError::new),
            subject: self.subject.clone(),
            timeout: self.timeout,
            headers: self.headers.clone(),
        })
    }
}

struct Requester {
    client: Result<Client, StageError>,
    subject: Subject,
    timeout: Duration,
    headers: Vec<(Arc<str>, HeaderName)>,
}

impl Stage for Requester {
    fn handle(&mut self, req: &mut Request) -> Step {
        let client = match &self.client {
            Ok(client) => client.clone(),
            Err(e) => return Step::Fail(e.clone()),
        };
        let mut headers = HeaderMap::new();
        for (attr, header) in &self.headers {
            if let Some(value) = req.attrs.get(attr) {
                headers.insert(header.clone(), HeaderValue::from_lossy(value));
            }
        }
        let op = NatsOp {
            client,
            subject: self.subject.clone(),
            // The payload moves into the message with no copy.
            payload: Bytes::from(std::mem::take(&mut req.payload)),
            headers,
            timeout: self.timeout,
        };
        Step::Io(IoOp::Custom(Box::new(op)), Output::NEXT)
    }
}

/// One request in flight on the NATS runtime.
struct NatsOp {
    client: Client,
    subject: Subject,
    payload: Bytes,
    headers: HeaderMap,
    timeout: Duration,
}

impl AsyncOp for NatsOp {
    fn start(self: Box<Self>, done: Completion) {
        runtime().spawn(async move {
            let NatsOp { client, subject, payload, headers, timeout } = *self;
            let request = async_nats::Request::new().payload(payload).headers(headers).timeout(Some(timeout));
            match client.send_request(subject, request).await {
                Ok(reply) => finish(done, reply),
                Err(e) => match e.kind() {
                    RequestErrorKind::TimedOut => done.fail_with_status(504, StageError::new("nats timeout")),
                    RequestErrorKind::NoResponders => done.fail_with_status(503, StageError::new("nats no responders")),
                    _ => done.fail_with_status(502, StageError::new(wire::cut(&format!("nats request: {e}"), 256))),
                },
            }
        });
    }

    fn describe(&self) -> &str {
        "a NATS request"
    }
}

/// Continues the request with the reply, or fails it with the worker's reason.
fn finish(done: Completion, reply: async_nats::Message) {
    match wire::read_answer(reply.headers.as_ref()) {
        Answer::Failed { status, reason } => {
            done.fail_with_status(status, StageError::new(format!("nats worker: {reason}")))
        }
        Answer::Plain => done.complete(move |req: &mut Request| req.payload = Vec::from(reply.payload)),
        Answer::Response { status, content_type } => done.complete(move |req: &mut Request| {
            req.payload = Vec::from(reply.payload);
            req.response.status = status;
            req.response.body.clear();
            req.response.body.extend_from_slice(&req.payload);
            if let Some(content_type) = content_type {
                req.response.headers.set("Content-Type", content_type.as_bytes());
            }
        }),
    }
}
