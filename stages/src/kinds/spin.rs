//! `spin`: burns `micros` microseconds of CPU, standing in for compute.

use std::time::{Duration, Instant};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{Output, Outputs, Request, Stage, StageFactory, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    /// CPU time to burn per request.
    micros: u64,
}

pub struct Spin {
    busy: Duration,
}

impl Spin {
    pub fn new(params: Params) -> Self {
        Spin { busy: Duration::from_micros(params.micros) }
    }
}

impl StageFactory for Spin {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(Spin { busy: self.busy })
    }
}

impl Stage for Spin {
    fn handle(&mut self, _req: &mut Request) -> Step {
        let start = Instant::now();
        while start.elapsed() < self.busy {
            std::hint::spin_loop();
        }
        Step::Next(Output::NEXT)
    }
}
