//! Duplicate keys in the config's JSON. A JSON parser keeps the last of two values for one key
//! and drops the other without a word, so a config that names `threads` twice runs with
//! whichever came last; this pass walks the text once more and reports each repeated key.

use std::cell::RefCell;
use std::collections::HashSet;
use std::fmt;

use serde::de::{DeserializeSeed, MapAccess, SeqAccess, Visitor};

use super::validate::key;
use super::ConfigError;

/// Every key given more than once in an object of `text`, at its JSON path, in document order.
/// Text that is not JSON has none (its parse error is reported elsewhere).
pub fn duplicate_keys(text: &str) -> Vec<ConfigError> {
    let found = RefCell::new(Vec::new());
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let _ = Walk { path: "$".into(), found: &found }.deserialize(&mut deserializer);
    found.into_inner()
}

/// Walks one value at `path`, noting repeated keys of the objects in it.
struct Walk<'a> {
    path: String,
    found: &'a RefCell<Vec<ConfigError>>,
}

impl<'de> DeserializeSeed<'de> for Walk<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Walk<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<(), E> {
        Ok(())
    }

    fn visit_i64<E>(self, _: i64) -> Result<(), E> {
        Ok(())
    }

    fn visit_u64<E>(self, _: u64) -> Result<(), E> {
        Ok(())
    }

    fn visit_f64<E>(self, _: f64) -> Result<(), E> {
        Ok(())
    }

    fn visit_str<E>(self, _: &str) -> Result<(), E> {
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        let mut index = 0;
        while seq.next_element_seed(Walk { path: format!("{}[{index}]", self.path), found: self.found })?.is_some() {
            index += 1;
        }
        Ok(())
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        let mut seen = HashSet::new();
        while let Some(name) = map.next_key::<String>()? {
            let path = key(&self.path, &name);
            if !seen.insert(name.clone()) {
                self.found.borrow_mut().push(ConfigError {
                    path: path.clone(),
                    message: format!("`{name}` is given twice"),
                    hint: Some("JSON keeps only the last value of a key: remove one".into()),
                });
            }
            map.next_value_seed(Walk { path, found: self.found })?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_repeated_key_is_found_at_its_path_and_others_are_not() {
        let text = r#"{"a": 1, "b": {"c": [{"d": 1, "d": 2}], "c": 3}, "a": 2, "e": [1, {"f": {}}]}"#;
        let paths: Vec<String> = duplicate_keys(text).into_iter().map(|e| e.path).collect();
        assert_eq!(paths, ["$.b.c[0].d", "$.b.c", "$.a"]);
        assert!(duplicate_keys(r#"{"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]}"#).is_empty());
        assert!(duplicate_keys("not json").is_empty());
    }
}
