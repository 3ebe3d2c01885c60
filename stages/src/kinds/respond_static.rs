//! `respond_static`: a fixed response, for benchmarks and health checks.
//! `{"status": 200, "body": "hello", "content_type": "text/plain"}`
//!
//! The body is built once, when the stage is, and shared by every response (`response.shared`),
//! so answering costs no copy and no allocation. Terminal.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{BuildError, Outputs, Request, Stage, StageFactory, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "ok")]
    status: u16,
    #[serde(default)]
    body: String,
    /// Sent as `Content-Type` when given.
    content_type: Option<String>,
}

fn ok() -> u16 {
    200
}

#[derive(Clone)]
pub struct RespondStatic {
    status: u16,
    body: Arc<[u8]>,
    content_type: Option<Box<[u8]>>,
}

impl RespondStatic {
    pub fn new(params: Params) -> Result<Self, BuildError> {
        super::final_status(params.status)?;
        if let Some(bad) = params.content_type.as_deref().filter(|t| t.is_empty() || t.contains(['\r', '\n', '\0'])) {
            return Err(BuildError::bad("content_type", format!("`{}` is not a header value", bad.escape_debug())));
        }
        Ok(RespondStatic {
            status: params.status,
            body: params.body.into_bytes().into(),
            content_type: params.content_type.map(|t| t.into_bytes().into()),
        })
    }
}

impl StageFactory for RespondStatic {
    fn outputs(&self) -> Outputs {
        Outputs::Terminal
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

impl Stage for RespondStatic {
    fn handle(&mut self, req: &mut Request) -> Step {
        let response = &mut req.response;
        response.status = self.status;
        if let Some(content_type) = &self.content_type {
            response.headers.set("Content-Type", content_type);
        }
        response.shared = Some(self.body.clone());
        Step::Respond
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kinds::test_support::{header, http_request};

    fn build(params: serde_json::Value) -> Result<RespondStatic, BuildError> {
        RespondStatic::new(serde_json::from_value(params).unwrap())
    }

    #[test]
    fn every_response_shares_the_one_body() {
        let factory = build(json!({"status": 201, "body": "hello", "content_type": "text/plain"})).unwrap();
        let (mut one, mut two) = (factory.instance(0), factory.instance(1));
        let mut a = http_request("GET", "/", &[]);
        let mut b = http_request("GET", "/", &[]);
        assert!(matches!(one.handle(&mut a), Step::Respond));
        assert!(matches!(two.handle(&mut b), Step::Respond));
        assert_eq!(a.response.status, 201);
        assert_eq!(a.response.bytes(), b"hello");
        assert_eq!(header(&a, "Content-Type").as_deref(), Some("text/plain"));
        let (a, b) = (a.response.shared.unwrap(), b.response.shared.unwrap());
        assert!(Arc::ptr_eq(&a, &b) && Arc::ptr_eq(&a, &factory.body));
    }

    #[test]
    fn defaults_are_an_empty_200_without_content_type() {
        let mut req = Request::default();
        build(json!({})).unwrap().instance(0).handle(&mut req);
        assert_eq!(req.response.status, 200);
        assert!(req.response.bytes().is_empty());
        assert!(req.response.headers.is_empty());
    }

    #[test]
    fn bad_params_name_their_field() {
        assert_eq!(
            build(json!({"status": 42})).err().unwrap(),
            BuildError::bad("status", "status 42 is not a final HTTP status (200-599)")
        );
        assert_eq!(
            build(json!({"status": 100})).err().unwrap(),
            BuildError::bad("status", "status 100 is informational (1xx), not a final answer: use 200-599")
        );
        assert_eq!(
            build(json!({"status": 600})).err().unwrap(),
            BuildError::bad("status", "status 600 is not a final HTTP status (200-599)")
        );
        assert_eq!(
            build(json!({"content_type": "text/plain\r\nX-Evil: 1"})).err().unwrap(),
            BuildError::bad("content_type", "`text/plain\\r\\nX-Evil: 1` is not a header value")
        );
    }
}
