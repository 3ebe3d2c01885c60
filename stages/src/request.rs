//! The request: the state a pipeline carries from stage to stage.

use std::sync::Arc;

use crate::{FileBody, FileRead, Headers, HttpRequest};

/// One request travelling through a pipeline.
///
/// Requests are recycled by the engine: [`Request::reset`] clears them but keeps their buffers'
/// capacity, so a steady stream of requests does not allocate.
#[derive(Debug, Default)]
#[repr(C)] // id and response status first: the engine keeps them in the request's hot cache line
pub struct Request {
    /// Unique within a run; sources number their requests.
    pub id: u64,
    /// What the terminal stage answers.
    pub response: Response,
    /// The request body (the generator fills it with `payload_bytes` bytes).
    pub payload: Vec<u8>,
    /// Attributes set by the source, read by stages such as `route`.
    pub attrs: Attrs,
    /// The HTTP request head, for requests from an HTTP source (empty otherwise).
    pub http: HttpRequest,
    /// The outcome of the last [`crate::IoOp::ReadFile`], until a stage takes it.
    pub file: Option<FileRead>,
    /// How many weighted draws (`route` by weight) this request has had. Each draw mixes it in,
    /// so a request that comes back to a route draws afresh instead of repeating its choice.
    pub draws: u32,
}

impl Request {
    /// Clears everything but the payload, keeping all capacity for reuse. (Inlined into the
    /// generator, another crate: it runs once a request.)
    #[inline(always)]
    pub fn reset(&mut self, id: u64) {
        self.id = id;
        self.response.status = 0;
        // Only written when not already empty: an untouched line stays in the owner's cache.
        if !self.response.body.is_empty() {
            self.response.body.clear();
        }
        if !self.attrs.is_empty() {
            self.attrs.clear();
        }
        if !self.response.headers.is_empty() {
            self.response.headers.clear();
        }
        if self.response.shared.is_some() {
            self.response.shared = None;
        }
        if self.response.file.is_some() {
            self.response.file = None;
        }
        if self.file.is_some() {
            self.file = None;
        }
        if self.draws != 0 {
            self.draws = 0;
        }
    }
}

/// The answer a request ends with.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
#[repr(C)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// Extra headers (`Content-Type`, ...); an HTTP source writes the framing ones itself.
    pub headers: Headers,
    /// A body shared with other responses (a cached file, a fixed answer), sent instead of
    /// `body` when set, so it is not copied per request.
    pub shared: Option<Arc<[u8]>>,
    /// A body sent from an open file (a large static file), sent instead of `shared` and
    /// `body` when set; for a HEAD, only its length is used.
    pub file: Option<FileBody>,
}

impl Response {
    /// The bytes to send: `shared` when set, else `body`.
    pub fn bytes(&self) -> &[u8] {
        self.shared.as_deref().unwrap_or(&self.body)
    }

    /// The length of the body to send, wherever it is.
    pub fn body_len(&self) -> u64 {
        match &self.file {
            Some(file) => file.len,
            None => self.bytes().len() as u64,
        }
    }

    /// Answers `status` with a short plain-text body (an error page) and no other headers,
    /// reusing the body's buffer.
    pub fn set_text(&mut self, status: u16, text: &str) {
        self.status = status;
        self.shared = None;
        self.file = None;
        self.body.clear();
        self.body.extend_from_slice(text.as_bytes());
        self.headers.clear();
        self.headers.set("Content-Type", b"text/plain; charset=utf-8");
    }
}

/// Request attributes: a few name/value pairs. Shared strings, so that setting an attribute
/// from a fixed set of values (as the generator does) does not allocate.
#[derive(Debug, Default, Clone)]
pub struct Attrs(Vec<(Arc<str>, Arc<str>)>);

impl Attrs {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| &**n == name).map(|(_, v)| &**v)
    }

    /// Sets `name` to `value`, replacing an earlier value.
    pub fn set(&mut self, name: Arc<str>, value: Arc<str>) {
        match self.0.iter_mut().find(|(n, _)| *n == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name, value)),
        }
    }

    pub fn clear(&mut self) {
        self.0.clear();
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
