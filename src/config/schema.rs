//! The JSON Schema of the config format (`seda schema`), so that an editor can check and
//! complete a pipeline as it is written. It is derived from the same serde types that parse a
//! config, so it cannot drift from them, and each stage's `params` get the schema of its kind's
//! params, a user's kinds included.

use schemars::SchemaGenerator;
use serde_json::{json, Value};

use super::model::{AdminConfig, PipelineConfig, PoolConfig, SourceConfig, StageConfig};
use crate::stages::Registry;

/// The schema of a pipeline config whose stages may be of the kinds of `registry`.
pub fn schema(registry: &Registry) -> Value {
    let mut generator = SchemaGenerator::default();
    let source = generator.subschema_for::<SourceConfig>();
    let pool = generator.subschema_for::<PoolConfig>();
    let stage = generator.subschema_for::<StageConfig>();
    let admin = generator.subschema_for::<AdminConfig>();
    let names: Vec<&str> = registry.kinds().map(|(name, _)| name).collect();
    // A stage's params depend on its kind: one `if kind is K then params match K's` per kind.
    let mut stage_rules = vec![stage.to_value(), json!({ "properties": { "kind": { "enum": names } } })];
    for (name, kind) in registry.kinds() {
        let params = kind.params_schema(&mut generator);
        stage_rules.push(json!({
            "if": { "properties": { "kind": { "const": name } }, "required": ["kind"] },
            "then": { "properties": { "params": params.to_value() } },
        }));
    }
    let mut root = generator.into_root_schema_for::<PipelineConfig>().to_value();
    let properties = &mut root["properties"];
    properties["source"] = source.to_value();
    properties["pools"] = json!({ "type": "object", "additionalProperties": pool.to_value(), "default": {} });
    properties["stages"] = json!({ "type": "object", "additionalProperties": { "allOf": stage_rules } });
    properties["admin"] = json!({ "anyOf": [admin.to_value(), { "type": "null" }] });
    root["title"] = json!("seda pipeline");
    root
}
