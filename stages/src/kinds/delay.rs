//! `delay`: waits `micros` on a timer of the completion layer, off any worker, then continues at
//! `next`. The simplest asynchronous operation.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{BuildError, IoOp, Output, Outputs, Request, Stage, StageFactory, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    micros: u64,
}

pub struct Delay {
    wait: Duration,
}

impl Delay {
    pub fn new(params: Params) -> Result<Self, BuildError> {
        if params.micros == 0 {
            return Err(BuildError::bad("micros", "`micros` must be at least 1 (use `noop` for no delay)"));
        }
        Ok(Delay { wait: Duration::from_micros(params.micros) })
    }
}

impl StageFactory for Delay {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(Delay { wait: self.wait })
    }
}

impl Stage for Delay {
    fn handle(&mut self, _req: &mut Request) -> Step {
        Step::Io(IoOp::Timer(self.wait), Output::NEXT)
    }
}
