//! `noop`: passes the request on untouched. The unit of engine overhead in benchmarks.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{Output, Outputs, Request, Stage, StageFactory, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {}

pub struct Noop;

impl Noop {
    pub fn new(_: Params) -> Self {
        Noop
    }
}

impl StageFactory for Noop {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(Noop)
    }
}

impl Stage for Noop {
    #[inline]
    fn handle(&mut self, _req: &mut Request) -> Step {
        Step::Next(Output::NEXT)
    }
}
