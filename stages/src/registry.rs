//! The registry of stage kinds: the one place that maps a kind's name (`"kind": "hash"` in a
//! config) to the code that builds it. The built-in kinds register into it exactly as a user's
//! kinds do, so a user's kind gets everything a built-in gets: params parsed with serde and
//! checked with the JSON path of every error, a "did you mean", a line in `seda kinds`, its
//! params in `seda schema`, and every command that reads a config.
//!
//! ```
//! use std::sync::Arc;
//! use seda_stages::{BuildError, Output, Outputs, Registry, Request, Stage, StageFactory, StageKind, Step};
//!
//! #[derive(serde::Deserialize, schemars::JsonSchema)]
//! #[serde(deny_unknown_fields)]
//! struct TagParams {
//!     /// The attribute to set on every request.
//!     name: String,
//! }
//!
//! struct Tag(String);
//!
//! impl StageKind for Tag {
//!     type Params = TagParams;
//!     const DESCRIPTION: &'static str = "sets an attribute on every request";
//!     fn build(params: TagParams) -> Result<Arc<dyn StageFactory>, BuildError> {
//!         Ok(Arc::new(Tag(params.name)))
//!     }
//! }
//!
//! impl StageFactory for Tag {
//!     fn outputs(&self) -> Outputs {
//!         Outputs::Single
//!     }
//!     fn instance(&self, _worker: usize) -> Box<dyn Stage> {
//!         Box::new(Tag(self.0.clone()))
//!     }
//! }
//!
//! impl Stage for Tag {
//!     fn handle(&mut self, req: &mut Request) -> Step {
//!         req.attrs.set(self.0.as_str().into(), "yes".into());
//!         Step::Next(Output::NEXT)
//!     }
//! }
//!
//! let registry = Registry::builtin().with_kind::<Tag>("tag");
//! assert!(registry.kind("tag").is_some());
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::suggest::closest;
use crate::{BuildError, StageFactory};

/// A stage kind: its params, a one-line description, and how a factory is built from them.
pub trait StageKind: 'static {
    /// The kind's `params` in a config, parsed with serde (an absent `params` is `{}`).
    /// Deriving `JsonSchema` puts them in `seda schema` and `seda kinds NAME`.
    type Params: DeserializeOwned + JsonSchema;
    /// One line for `seda kinds`.
    const DESCRIPTION: &'static str;
    /// What a request must bring from its source for this kind to serve it.
    const NEEDS: Needs = Needs::Nothing;
    /// The factory, from params that parsed; params that parse but make no sense are a
    /// [`BuildError::bad`] naming the field.
    fn build(params: Self::Params) -> Result<Arc<dyn StageFactory>, BuildError>;
}

/// What a stage kind needs from the source its requests come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Needs {
    /// Any request will do.
    Nothing,
    /// An HTTP request whose response goes back to a client: only an HTTP source provides one.
    HttpRequest,
}

impl Needs {
    /// How a config's reader says what is needed.
    pub fn describe(self) -> &'static str {
        match self {
            Needs::Nothing => "nothing",
            Needs::HttpRequest => "an HTTP request to answer",
        }
    }
}

/// One registered kind.
#[derive(Clone)]
pub struct KindEntry {
    pub description: &'static str,
    pub needs: Needs,
    build: fn(&Value) -> Result<Arc<dyn StageFactory>, BuildError>,
    schema: fn(&mut SchemaGenerator) -> Schema,
}

impl KindEntry {
    /// The JSON Schema of the kind's params; `generator` collects the definitions it refers to.
    pub fn params_schema(&self, generator: &mut SchemaGenerator) -> Schema {
        (self.schema)(generator)
    }
}

/// Stage kinds by name.
#[derive(Clone, Default)]
pub struct Registry {
    kinds: BTreeMap<String, KindEntry>,
}

impl Registry {
    /// A registry with no kinds.
    pub fn empty() -> Self {
        Registry::default()
    }

    /// This registry with kind `K` under `name` (replacing a kind of that name).
    pub fn with_kind<K: StageKind>(mut self, name: &str) -> Self {
        let entry = KindEntry {
            description: K::DESCRIPTION,
            needs: K::NEEDS,
            build: build_kind::<K>,
            schema: |generator| generator.subschema_for::<K::Params>(),
        };
        self.kinds.insert(name.to_string(), entry);
        self
    }

    /// The kind called `name`.
    pub fn kind(&self, name: &str) -> Option<&KindEntry> {
        self.kinds.get(name)
    }

    /// Every kind, by name.
    pub fn kinds(&self) -> impl Iterator<Item = (&str, &KindEntry)> {
        self.kinds.iter().map(|(name, entry)| (name.as_str(), entry))
    }

    /// Builds the factory of kind `kind` from its params (`null` when the config has none).
    pub fn build(&self, kind: &str, params: &Value) -> Result<Arc<dyn StageFactory>, BuildError> {
        match self.kinds.get(kind) {
            Some(entry) => (entry.build)(params),
            None => Err(BuildError::UnknownKind {
                kind: kind.to_string(),
                suggestion: closest(kind, self.kinds.keys().map(String::as_str)).map(str::to_string),
            }),
        }
    }
}

fn build_kind<K: StageKind>(params: &Value) -> Result<Arc<dyn StageFactory>, BuildError> {
    K::build(parse(params)?)
}

/// Parses params into a kind's params struct; a missing `params` is an empty object. A failure
/// names the field it is at (`rounds`, `weights.a`), or none when it is about the params as a
/// whole (a missing field, params that are not an object).
fn parse<P: DeserializeOwned>(params: &Value) -> Result<P, BuildError> {
    let empty = Value::Object(Default::default());
    let params = if params.is_null() { &empty } else { params };
    serde_path_to_error::deserialize(params).map_err(|e| {
        let path = e.path().to_string();
        let field = (path != "." && !path.is_empty()).then_some(path);
        BuildError::BadParams { field, message: e.into_inner().to_string() }
    })
}
