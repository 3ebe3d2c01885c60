//! `block`: holds its worker thread for `micros` (a sleep in the handler), then continues at
//! `next`. It stands for a call that blocks, a synchronous read or a blocking client library:
//! what a pool with `max_threads` grows for. (`delay` waits the same time off the workers.)

use std::time::Duration;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{BuildError, Output, Outputs, Request, Stage, StageFactory, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    micros: u64,
}

/// The longest block: a worker held longer than this is a mistake (a unit slip), and it would
/// hold a shutdown as long.
pub const MAX_MICROS: u64 = 10_000_000;

#[derive(Clone)]
pub struct Block {
    wait: Duration,
}

impl Block {
    pub fn new(params: Params) -> Result<Self, BuildError> {
        if params.micros == 0 || params.micros > MAX_MICROS {
            return Err(BuildError::bad(
                "micros",
                format!("`micros` must be from 1 to {MAX_MICROS} (ten seconds), not {}", params.micros),
            ));
        }
        Ok(Block { wait: Duration::from_micros(params.micros) })
    }
}

impl StageFactory for Block {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

impl Stage for Block {
    fn handle(&mut self, _req: &mut Request) -> Step {
        std::thread::sleep(self.wait);
        Step::Next(Output::NEXT)
    }
}

#[cfg(test)]
mod tests {
    use super::super::build;
    use serde_json::json;

    #[test]
    fn micros_must_be_from_one_to_ten_seconds() {
        for micros in [0, 10_000_001] {
            let error = build("block", &json!({ "micros": micros })).err().expect("out of range");
            assert!(error.to_string().contains("from 1 to 10000000"), "{error}");
        }
        assert!(build("block", &json!({ "micros": 10_000_000 })).is_ok());
    }

    #[test]
    fn it_holds_the_thread_for_its_time_and_goes_on() {
        let factory = build("block", &json!({ "micros": 2_000 })).unwrap();
        let mut stage = factory.instance(0);
        let started = std::time::Instant::now();
        let step = stage.handle(&mut crate::Request::default());
        assert!(started.elapsed() >= std::time::Duration::from_millis(2));
        assert!(matches!(step, crate::Step::Next(crate::Output::NEXT)));
    }
}
