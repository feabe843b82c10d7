//! JSON read into a `serde_json::Value` that refuses duplicate object keys, as YAML configs do
//! (serde_json keeps the last one silently).

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};
use std::fmt;

/// A JSON value in which no object repeats a key; deserializing one with a repeated key fails
/// with "duplicate key `KEY`" (its field path is added by `serde_path_to_error` or the caller).
#[derive(Debug, Clone, PartialEq)]
pub struct StrictValue(pub Value);

impl<'de> Deserialize<'de> for StrictValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor).map(StrictValue)
    }
}

/// Deserializes an optional config field (`Option<Value>`) through [`StrictValue`], for
/// `#[serde(deserialize_with = "...")]` on request bodies.
pub fn optional_strict_value<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Value>, D::Error> {
    Ok(Option::<StrictValue>::deserialize(deserializer)?.map(|v| v.0))
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Number::from_f64(v).map_or(Value::Null, Value::Number))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(StrictValue(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom(format_args!(
                    "duplicate key `{}`",
                    crate::error::cut_short(&key)
                )));
            }
            let StrictValue(value) = map.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Parses JSON text, refusing duplicate keys.
pub fn parse(text: &str) -> serde_json::Result<Value> {
    serde_json::from_str::<StrictValue>(text).map(|v| v.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicate_keys_are_refused_at_any_depth() {
        let e = parse(r#"{"seed": 1, "seed": 2}"#).unwrap_err().to_string();
        assert!(e.contains("duplicate key `seed`"), "{e}");
        let e = parse(r#"{"training": {"num_passes": 1, "num_passes": 3}}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate key `num_passes`"), "{e}");
        let e = parse(r#"[{"a": 1}, {"b": [{"c": 1, "c": 1}]}]"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("duplicate key `c`"), "{e}");
    }

    #[test]
    fn reads_the_same_values_as_serde_json() {
        let text =
            r#"{"a": [1, -2, 3.5, true, null, "x\u0041"], "b": {"c": 18446744073709551615}}"#;
        assert_eq!(
            parse(text).unwrap(),
            serde_json::from_str::<Value>(text).unwrap()
        );
    }
}
