//! `respond`: the terminal stage. Sets the response status (and a fixed body, if configured)
//! and ends the request as completed.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{BuildError, Outputs, Request, Stage, StageFactory, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "ok")]
    status: u16,
    /// A fixed body; when absent, the body a previous stage wrote is kept.
    body: Option<String>,
}

fn ok() -> u16 {
    200
}

#[derive(Clone)]
pub struct Respond {
    status: u16,
    body: Option<Box<[u8]>>,
}

impl Respond {
    pub fn new(params: Params) -> Result<Self, BuildError> {
        let status = super::final_status(params.status)?;
        Ok(Respond { status, body: params.body.map(|b| b.into_bytes().into_boxed_slice()) })
    }
}

impl StageFactory for Respond {
    fn outputs(&self) -> Outputs {
        Outputs::Terminal
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

impl Stage for Respond {
    fn handle(&mut self, req: &mut Request) -> Step {
        req.response.status = self.status;
        if let Some(body) = &self.body {
            req.response.body.clear();
            req.response.body.extend_from_slice(body);
        }
        Step::Respond
    }
}
