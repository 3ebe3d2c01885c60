//! `chaos`: fails or panics with configured probabilities, for fault tests. The draw is a hash
//! of the request id and `seed`, so a run's faults are reproducible and countable.

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{unit_interval, BuildError, Output, Outputs, Request, Stage, StageError, StageFactory, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default)]
    fail: f64,
    #[serde(default)]
    panic: f64,
    #[serde(default)]
    seed: u64,
}

#[derive(Clone)]
pub struct Chaos {
    fail: f64,
    panic: f64,
    seed: u64,
}

impl Chaos {
    pub fn new(p: Params) -> Result<Self, BuildError> {
        for (field, value) in [("fail", p.fail), ("panic", p.panic)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(BuildError::bad(field, format!("`{field}` is a probability in [0, 1], not {value}")));
            }
        }
        if p.fail + p.panic > 1.0 {
            return Err(BuildError::bad("fail", "`fail` + `panic` must be at most 1"));
        }
        Ok(Chaos { fail: p.fail, panic: p.panic, seed: p.seed })
    }

    /// What this stage does to request `id`: the single source of truth, also for tests.
    pub fn fate(&self, id: u64) -> Fate {
        let draw = unit_interval(id, self.seed);
        if draw < self.panic {
            Fate::Panic
        } else if draw < self.panic + self.fail {
            Fate::Fail
        } else {
            Fate::Pass
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fate {
    Pass,
    Fail,
    Panic,
}

impl StageFactory for Chaos {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

impl Stage for Chaos {
    fn handle(&mut self, req: &mut Request) -> Step {
        match self.fate(req.id) {
            Fate::Pass => Step::Next(Output::NEXT),
            Fate::Fail => Step::Fail(StageError::new("chaos: injected failure")),
            Fate::Panic => panic!("chaos: injected panic"),
        }
    }
}
