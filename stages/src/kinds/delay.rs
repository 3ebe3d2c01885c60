//! `delay`: waits `micros` on a timer of the completion layer, then continues at `next`, without
//! holding a worker while it waits. The simplest asynchronous operation.

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{BuildError, IoOp, Output, Outputs, Request, Stage, StageFactory, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    micros: u64,
}

/// The longest wait: a timer longer than this is a mistake (a unit slip), not a pipeline.
pub const MAX_MICROS: u64 = 3_600_000_000;

pub struct Delay {
    wait: Duration,
}

impl Delay {
    pub fn new(params: Params) -> Result<Self, BuildError> {
        if params.micros == 0 {
            return Err(BuildError::bad("micros", "`micros` must be at least 1 (use `noop` for no delay)"));
        }
        if params.micros > MAX_MICROS {
            return Err(BuildError::bad(
                "micros",
                format!("`micros` must be at most {MAX_MICROS} (one hour), not {}", params.micros),
            ));
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
