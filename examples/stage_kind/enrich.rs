//! `enrich`: a stage kind of your own. It reads the request's payload as a JSON object (an empty
//! payload is `{}`), adds the fields its params name, takes a routing value from a field of the
//! object (or, failing that, from the request attribute of the same name), writes the enriched
//! object as the response body, and sends the request to the output named by that value.
//!
//! ```json
//! "enrich": {
//!   "kind": "enrich",
//!   "params": { "route_by": "tier", "routes": ["gold", "standard"], "add": { "region": "eu" } },
//!   "next": { "gold": "priority", "standard": "respond" }
//! }
//! ```

use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use seda::stages::schemars::JsonSchema;
use seda::stages::{BuildError, Output, Outputs, Request, Stage, StageError, StageFactory, StageKind, Step};

/// The params, parsed and checked by seda: an unknown field, a wrong type or a missing field is
/// reported by `seda validate` with its JSON path, like any built-in kind's.
#[derive(Deserialize, JsonSchema)]
#[schemars(crate = "seda::stages::schemars")]
#[serde(deny_unknown_fields)]
pub struct EnrichParams {
    /// The field (or request attribute) whose value picks the output.
    route_by: String,
    /// The outputs, one per routing value; a value that names none goes to the last.
    routes: Vec<String>,
    /// Fields added to every object.
    #[serde(default)]
    add: Map<String, Value>,
}

/// The factory: built once per pipeline, it makes one [`EnrichStage`] per worker.
pub struct Enrich {
    route_by: Arc<str>,
    routes: Arc<[String]>,
    add: Arc<Map<String, Value>>,
}

impl StageKind for Enrich {
    type Params = EnrichParams;
    const DESCRIPTION: &'static str = "adds fields to a JSON payload and routes it by one of its fields";

    fn build(params: EnrichParams) -> Result<Arc<dyn StageFactory>, BuildError> {
        if params.routes.is_empty() {
            return Err(BuildError::bad("routes", "`routes` needs at least one output"));
        }
        Ok(Arc::new(Enrich {
            route_by: params.route_by.into(),
            routes: params.routes.into(),
            add: Arc::new(params.add),
        }))
    }
}

impl StageFactory for Enrich {
    fn outputs(&self) -> Outputs {
        Outputs::Named(self.routes.to_vec())
    }

    fn instance(&self, _worker: usize) -> Box<dyn Stage> {
        Box::new(EnrichStage { route_by: self.route_by.clone(), routes: self.routes.clone(), add: self.add.clone() })
    }
}

/// One worker's instance: no locks, the params shared read-only.
pub struct EnrichStage {
    route_by: Arc<str>,
    routes: Arc<[String]>,
    add: Arc<Map<String, Value>>,
}

impl Stage for EnrichStage {
    fn handle(&mut self, req: &mut Request) -> Step {
        let mut object = if req.payload.is_empty() {
            Map::new()
        } else {
            match serde_json::from_slice::<Value>(&req.payload) {
                Ok(Value::Object(object)) => object,
                // Fails this request (counted by stage and error in the summary), not the run.
                _ => return Step::Fail(StageError::new("the payload is not a JSON object")),
            }
        };
        for (field, value) in self.add.iter() {
            object.insert(field.clone(), value.clone());
        }
        let value = match object.get(&*self.route_by) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => req.attrs.get(&self.route_by).map(str::to_string),
        };
        let route = value.and_then(|v| self.routes.iter().position(|r| *r == v)).unwrap_or(self.routes.len() - 1);
        req.response.status = 200;
        req.response.body = serde_json::to_vec(&object).expect("a JSON map serialises");
        Step::Next(Output(route as u16))
    }
}
