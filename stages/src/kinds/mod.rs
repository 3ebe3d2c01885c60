//! The built-in stage kinds, one file each, and [`build`], which turns a kind name and its JSON
//! params into a factory.

mod chaos;
mod delay;
mod file_cache;
mod gzip;
mod hash;
mod http_route;
mod noop;
mod respond;
mod respond_static;
mod route;
mod send;
mod spin;
mod static_file;
#[cfg(test)]
mod test_support;

pub use gzip::accepts_gzip;

use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::{BuildError, StageFactory};

/// Every kind [`build`] knows, for help texts and suggestions.
pub const KINDS: &[&str] = &[
    "chaos",
    "delay",
    "file_cache",
    "gzip",
    "hash",
    "http_route",
    "noop",
    "respond",
    "respond_static",
    "route",
    "send",
    "spin",
    "static_file",
];

/// Builds the factory of stage kind `kind` from its params (`null` when the config has none).
pub fn build(kind: &str, params: &Value) -> Result<Arc<dyn StageFactory>, BuildError> {
    Ok(match kind {
        "chaos" => Arc::new(chaos::Chaos::new(parse(params)?)?),
        "delay" => Arc::new(delay::Delay::new(parse(params)?)?),
        "file_cache" => Arc::new(file_cache::FileCache::new(parse(params)?)?),
        "gzip" => Arc::new(gzip::Gzip::new(parse(params)?)?),
        "hash" => Arc::new(hash::Hash::new(parse(params)?)?),
        "http_route" => Arc::new(http_route::HttpRoute::new(parse(params)?)?),
        "noop" => Arc::new(noop::Noop::new(parse(params)?)),
        "respond" => Arc::new(respond::Respond::new(parse(params)?)),
        "respond_static" => Arc::new(respond_static::RespondStatic::new(parse(params)?)?),
        "route" => Arc::new(route::Route::new(parse(params)?)?),
        "send" => Arc::new(send::SendResponse::new(parse(params)?)),
        "spin" => Arc::new(spin::Spin::new(parse(params)?)),
        "static_file" => Arc::new(static_file::StaticFile::new(parse(params)?)?),
        _ => {
            return Err(BuildError::UnknownKind {
                kind: kind.to_string(),
                suggestion: closest(kind, KINDS.iter().copied()).map(str::to_string),
            })
        }
    })
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

/// The candidate nearest to `word` by edit distance, if it is near enough to be a typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|&(d, c)| d <= 2.max(c.len() / 3) && d < c.len().max(word.len()))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance between two strings, by characters.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = diagonal + usize::from(ca != cb);
            diagonal = row[j + 1];
            row[j + 1] = substitute.min(row[j] + 1).min(diagonal + 1);
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_counts_single_edits() {
        assert_eq!(edit_distance("respond", "respnd"), 1);
        assert_eq!(edit_distance("noop", "nop"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }

    #[test]
    fn unknown_kind_suggests_the_nearest() {
        let err = build("hsah", &Value::Null).err().unwrap();
        assert_eq!(err.to_string(), "unknown stage kind `hsah`; did you mean `hash`?");
        let err = build("zzzzzzzz", &Value::Null).err().unwrap();
        assert_eq!(err.to_string(), "unknown stage kind `zzzzzzzz`");
    }

    /// The params error of building `kind` from `params`, which must fail.
    fn bad_params(kind: &str, params: Value) -> BuildError {
        build(kind, &params).err().unwrap()
    }

    #[test]
    fn serde_errors_in_params_name_their_field() {
        assert_eq!(
            bad_params("noop", serde_json::json!({ "bogus": 1 })),
            BuildError::bad("bogus", "unknown field `bogus`, there are no fields")
        );
        assert_eq!(
            bad_params("hash", serde_json::json!({ "rounds": "four" })),
            BuildError::bad("rounds", "invalid type: string \"four\", expected u32")
        );
        assert_eq!(
            bad_params("route", serde_json::json!({ "weights": { "a": -1 } })),
            BuildError::bad("weights.a", "invalid value: integer `-1`, expected u32")
        );
    }

    #[test]
    fn serde_errors_about_the_params_as_a_whole_name_no_field() {
        assert_eq!(
            bad_params("spin", Value::Null),
            BuildError::BadParams { field: None, message: "missing field `micros`".into() }
        );
        assert_eq!(
            bad_params("hash", serde_json::json!("fast")),
            BuildError::BadParams {
                field: None,
                message: "invalid type: string \"fast\", expected struct Params".into()
            }
        );
    }
}
