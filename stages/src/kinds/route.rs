//! `route`: chooses a named output, by weight or by a request attribute.
//!
//! - `{"weights": {"a": 3, "b": 1}}`: output `a` for about 3 in 4 requests. The choice is a hash
//!   of the request id, `seed` and how many weighted draws the request has had, so it is the
//!   same on every run, and a request that loops back to a route draws afresh each visit (with
//!   the id alone, a request that took a loop once would take it forever).
//! - `{"attribute": "tier", "cases": {"gold": "fast"}, "default": "slow"}`: the output named by
//!   the attribute's value, or `default` when the attribute is missing or has no case.

use std::collections::{BTreeMap, BTreeSet};

use schemars::JsonSchema;
use serde::Deserialize;

use crate::{splitmix64, BuildError, Output, Outputs, Request, Stage, StageFactory, Step};

#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Params {
    weights: Option<BTreeMap<String, u32>>,
    attribute: Option<String>,
    cases: Option<BTreeMap<String, String>>,
    default: Option<String>,
    #[serde(default)]
    seed: u64,
}

#[derive(Clone)]
pub struct Route {
    names: Vec<String>,
    rule: Rule,
}

#[derive(Clone)]
enum Rule {
    /// Cumulative weight bounds per output: output i wins when draw < bounds[i].
    Weights {
        bounds: Vec<u64>,
        total: u64,
        seed: u64,
    },
    Attribute {
        name: String,
        cases: Vec<(String, Output)>,
        default: Output,
    },
}

impl Route {
    pub fn new(p: Params) -> Result<Self, BuildError> {
        match (p.weights, p.attribute) {
            (Some(weights), None) => {
                if p.cases.is_some() || p.default.is_some() {
                    return Err(BuildError::bad("cases", "`cases` and `default` go with `attribute`, not `weights`"));
                }
                if weights.is_empty() {
                    return Err(BuildError::bad("weights", "`weights` names no output"));
                }
                let mut total = 0u64;
                let mut bounds = Vec::new();
                for w in weights.values() {
                    total += u64::from(*w);
                    bounds.push(total);
                }
                if total == 0 {
                    return Err(BuildError::bad("weights", "the weights add up to 0"));
                }
                let names = weights.into_keys().collect();
                Ok(Route { names, rule: Rule::Weights { bounds, total, seed: p.seed } })
            }
            (None, Some(name)) => {
                let cases = p.cases.unwrap_or_default();
                let default = p
                    .default
                    .ok_or_else(|| BuildError::bad("default", "routing by `attribute` needs a `default` output"))?;
                let names: Vec<String> =
                    cases.values().cloned().chain([default.clone()]).collect::<BTreeSet<_>>().into_iter().collect();
                let index = |n: &str| Output(names.iter().position(|x| x == n).unwrap() as u16);
                let rule = Rule::Attribute {
                    cases: cases.iter().map(|(value, out)| (value.clone(), index(out))).collect(),
                    default: index(&default),
                    name,
                };
                Ok(Route { names, rule })
            }
            (Some(_), Some(_)) => Err(BuildError::bad("weights", "give either `weights` or `attribute`, not both")),
            (None, None) => Err(BuildError::bad("weights", "give `weights` or `attribute` to route by")),
        }
    }

    fn choose(&self, req: &mut Request) -> Output {
        match &self.rule {
            Rule::Weights { bounds, total, seed } => {
                let draw = weighted_draw(req.id, *seed, req.draws) % total;
                req.draws = req.draws.wrapping_add(1);
                Output(bounds.iter().position(|&b| draw < b).unwrap() as u16)
            }
            Rule::Attribute { name, cases, default } => {
                req.attrs.get(name).and_then(|v| cases.iter().find(|(c, _)| c == v)).map_or(*default, |(_, out)| *out)
            }
        }
    }
}

/// The `visit`th weighted draw of request `id` under `seed`. The first (visit 0) is the hash of
/// the id and seed alone; later ones step along the same SplitMix64 sequence.
fn weighted_draw(id: u64, seed: u64, visit: u32) -> u64 {
    const STEP: u64 = 0x9e37_79b9_7f4a_7c15;
    splitmix64((id ^ splitmix64(seed)).wrapping_add(u64::from(visit).wrapping_mul(STEP)))
}

impl StageFactory for Route {
    fn outputs(&self) -> Outputs {
        Outputs::Named(self.names.clone())
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(self.clone())
    }
}

impl Stage for Route {
    fn handle(&mut self, req: &mut Request) -> Step {
        Step::Next(self.choose(req))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(json: &str) -> Result<Route, BuildError> {
        Route::new(serde_json::from_str(json).unwrap())
    }

    #[test]
    fn weights_split_requests_in_proportion() {
        let r = route(r#"{"weights": {"a": 3, "b": 1}}"#).unwrap();
        assert_eq!(r.outputs(), Outputs::Named(vec!["a".into(), "b".into()]));
        let mut counts = [0u32; 2];
        for id in 0..40_000 {
            let mut req = Request { id, ..Request::default() };
            counts[r.choose(&mut req).0 as usize] += 1;
        }
        // A fair hash puts 30,000 in `a`; 1% is about six standard deviations.
        assert!((29_600..=30_400).contains(&counts[0]), "{counts:?}");
        assert_eq!(counts[0] + counts[1], 40_000);
    }

    #[test]
    fn attribute_picks_its_case_or_the_default() {
        let r = route(r#"{"attribute": "tier", "cases": {"gold": "fast"}, "default": "slow"}"#).unwrap();
        assert_eq!(r.outputs(), Outputs::Named(vec!["fast".into(), "slow".into()]));
        let mut req = Request::default();
        assert_eq!(r.choose(&mut req), Output(1));
        req.attrs.set("tier".into(), "gold".into());
        assert_eq!(r.choose(&mut req), Output(0));
        req.attrs.set("tier".into(), "free".into());
        assert_eq!(r.choose(&mut req), Output(1));
    }

    #[test]
    fn a_request_that_comes_back_draws_afresh() {
        // Half the time back to the route: with the id alone a request that took `back` once
        // would take it on every visit and never leave.
        let r = route(r#"{"weights": {"back": 1, "out": 1}}"#).unwrap();
        let mut visits_to_leave = Vec::new();
        for id in 0..1_000 {
            let mut req = Request { id, ..Request::default() };
            let mut visits = 1;
            while r.choose(&mut req) == Output(0) {
                visits += 1;
                assert!(visits < 64, "request {id} loops");
            }
            visits_to_leave.push(visits);
        }
        assert!(visits_to_leave.iter().any(|&v| v > 1), "some requests take the loop");
        // The first visit draws as it always did: runs stay comparable.
        let mut req = Request { id: 7, ..Request::default() };
        let first = r.choose(&mut req);
        let mut again = Request { id: 7, ..Request::default() };
        assert_eq!(r.choose(&mut again), first, "the same request draws the same on every run");
        req.reset(7);
        assert_eq!(req.draws, 0, "a recycled request starts its draws over");
    }

    #[test]
    fn attribute_without_default_is_refused() {
        let err = route(r#"{"attribute": "tier", "cases": {"gold": "fast"}}"#).err().unwrap();
        assert_eq!(err, BuildError::bad("default", "routing by `attribute` needs a `default` output"));
    }
}
