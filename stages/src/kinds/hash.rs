//! `hash`: a SHA-256 digest over the payload (`rounds` times, each over the last digest),
//! written to the response body. Real, cache-touching compute.

use schemars::JsonSchema;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::{BuildError, Output, Outputs, Request, Stage, StageFactory, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    #[serde(default = "one")]
    rounds: u32,
}

fn one() -> u32 {
    1
}

/// The most rounds: each is a SHA-256 on the worker, which nothing can interrupt; 10,000 take
/// a few milliseconds.
pub const MAX_ROUNDS: u32 = 10_000;

pub struct Hash {
    rounds: u32,
}

impl Hash {
    pub fn new(params: Params) -> Result<Self, BuildError> {
        if params.rounds == 0 {
            return Err(BuildError::bad("rounds", "`rounds` must be at least 1"));
        }
        if params.rounds > MAX_ROUNDS {
            return Err(BuildError::bad(
                "rounds",
                format!("`rounds` must be at most {MAX_ROUNDS}, not {}", params.rounds),
            ));
        }
        Ok(Hash { rounds: params.rounds })
    }
}

impl StageFactory for Hash {
    fn outputs(&self) -> Outputs {
        Outputs::Single
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(Hash { rounds: self.rounds })
    }
}

impl Stage for Hash {
    fn handle(&mut self, req: &mut Request) -> Step {
        let mut digest = Sha256::digest(&req.payload);
        for _ in 1..self.rounds {
            digest = Sha256::digest(digest);
        }
        req.response.body.clear();
        req.response.body.extend_from_slice(&digest);
        Step::Next(Output::NEXT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_of_abc_is_the_fips_180_vector() {
        let mut stage = Hash::new(Params { rounds: 1 }).unwrap().instance(0);
        let mut req = Request { payload: b"abc".to_vec(), ..Request::default() };
        assert!(matches!(stage.handle(&mut req), Step::Next(Output::NEXT)));
        let hex: String = req.response.body.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }
}
