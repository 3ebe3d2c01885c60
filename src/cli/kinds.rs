//! `seda kinds`: the stage kinds a config may name, and one kind's params, read from the same
//! JSON Schema that `seda schema` prints.

use std::fmt::Write;
use std::process::ExitCode;

use schemars::SchemaGenerator;
use serde_json::Value;

use super::out;
use crate::stages::{closest, Needs, Registry};

/// Lists every kind with its description, or with `name` prints that kind's params.
pub fn kinds(registry: &Registry, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let Some(name) = name else {
        let width = registry.kinds().map(|(name, _)| name.len()).max().unwrap_or(0);
        let mut text = String::new();
        for (name, kind) in registry.kinds() {
            let _ = writeln!(text, "{name:width$}  {}", kind.description);
        }
        out(&text);
        return Ok(ExitCode::SUCCESS);
    };
    let Some(kind) = registry.kind(name) else {
        let hint = closest(name, registry.kinds().map(|(name, _)| name))
            .map_or(String::new(), |near| format!("; did you mean `{near}`?"));
        eprintln!("seda kinds: no stage kind `{name}`{hint} (`seda kinds` lists them)");
        return Ok(ExitCode::from(2));
    };
    let mut generator = SchemaGenerator::default();
    let schema = kind.params_schema(&mut generator).to_value();
    let definitions = generator.definitions().clone();
    let params = resolve(&schema, &definitions);
    let mut text = format!("{name}: {}\n", kind.description);
    if kind.needs != Needs::Nothing {
        let _ = writeln!(text, "needs: {}", kind.needs.describe());
    }
    let required: Vec<&str> =
        params["required"].as_array().map_or(Vec::new(), |r| r.iter().filter_map(Value::as_str).collect());
    match params["properties"].as_object().filter(|p| !p.is_empty()) {
        None => text.push_str("params: none\n"),
        Some(properties) => {
            text.push_str("params:\n");
            for (field, schema) in properties {
                let schema = resolve(schema, &definitions);
                let mut line = format!("  {field}: {}", type_of(&schema, &definitions));
                if required.contains(&field.as_str()) {
                    line.push_str(", required");
                } else if let Some(default) = schema.get("default") {
                    let _ = write!(line, ", default {default}");
                }
                if let Some(description) = schema.get("description").and_then(Value::as_str) {
                    let _ = write!(line, "\n      {}", description.replace('\n', "\n      "));
                }
                text.push_str(&line);
                text.push('\n');
            }
        }
    }
    out(&text);
    Ok(ExitCode::SUCCESS)
}

/// `schema` with a `$ref` to one of `definitions` replaced by the definition.
fn resolve(schema: &Value, definitions: &serde_json::Map<String, Value>) -> Value {
    match schema.get("$ref").and_then(Value::as_str).and_then(|r| r.rsplit('/').next()) {
        Some(name) => definitions.get(name).cloned().unwrap_or_else(|| schema.clone()),
        None => schema.clone(),
    }
}

/// A field's type in a word or two: `integer`, `string or null`, `map of integer`, `one of a, b`.
fn type_of(schema: &Value, definitions: &serde_json::Map<String, Value>) -> String {
    let schema = resolve(schema, definitions);
    if let Some(values) = schema.get("enum").and_then(Value::as_array) {
        let values: Vec<String> = values.iter().map(Value::to_string).collect();
        return format!("one of {}", values.join(", "));
    }
    if let Some(options) = schema.get("anyOf").or_else(|| schema.get("oneOf")).and_then(Value::as_array) {
        let words: Vec<String> = options.iter().map(|o| type_of(o, definitions)).collect();
        return words.join(" or ");
    }
    if let Some(constant) = schema.get("const") {
        return constant.to_string();
    }
    let word = |t: &Value| -> String {
        match t.as_str() {
            Some("array") => format!("list of {}", type_of(&schema["items"], definitions)),
            Some("object") => match schema.get("additionalProperties") {
                Some(v) if v.is_object() => format!("map of {}", type_of(v, definitions)),
                _ => "object".into(),
            },
            Some(other) => other.to_string(),
            None => "any".into(),
        }
    };
    match schema.get("type") {
        Some(Value::Array(types)) => types.iter().map(word).collect::<Vec<_>>().join(" or "),
        Some(t) => word(t),
        None => "any".into(),
    }
}
