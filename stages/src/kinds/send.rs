//! `send`: ends a request with the response earlier stages built (Haboob's send stage, after a
//! cache or a file read). It changes nothing; a request that reaches it with no status set is a
//! wiring mistake and fails here, named, rather than going out as an anonymous `500`.
//!
//! (`respond` is not reused for this: without params it sets `200`, which would overwrite a
//! `404` or `304` built upstream.)

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{Outputs, Request, Stage, StageError, StageFactory, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {}

pub struct SendResponse;

impl SendResponse {
    pub fn new(_: Params) -> Self {
        SendResponse
    }
}

impl StageFactory for SendResponse {
    fn outputs(&self) -> Outputs {
        Outputs::Terminal
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(SendResponse)
    }
}

impl Stage for SendResponse {
    fn handle(&mut self, req: &mut Request) -> Step {
        if req.response.status == 0 {
            return Step::Fail(StageError::new("no stage before `send` set a response status"));
        }
        Step::Respond
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_the_response_as_built() {
        let mut req = Request::default();
        req.response.set_text(404, "Not Found\n");
        let before = req.response.clone();
        assert!(matches!(SendResponse.handle(&mut req), Step::Respond));
        assert_eq!(req.response, before);
    }

    #[test]
    fn a_response_never_built_fails_by_name() {
        let mut req = Request::default();
        match SendResponse.handle(&mut req) {
            Step::Fail(e) => assert_eq!(e.to_string(), "no stage before `send` set a response status"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
