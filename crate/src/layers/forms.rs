//! The three ways a layer may be written in a config: `{type: linear, out: 64}`,
//! `{linear: {out: 64}}`, and — for a layer without parameters — its bare name, `relu`.

use super::registry::LayerSpec;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Reads `model.layers`, accepting every form, and names the layer index in errors.
pub fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<LayerSpec>, D::Error> {
    let layers = Vec::<Value>::deserialize(deserializer)?;
    layers
        .into_iter()
        .enumerate()
        .map(|(i, layer)| {
            let tagged = tagged_form(layer)
                .and_then(trainable_form)
                .map_err(|why| D::Error::custom(format!("[{i}]: {why}")))?;
            serde_json::from_value(tagged).map_err(|e| D::Error::custom(format!("[{i}]: {e}")))
        })
        .collect()
}

/// The `{type: kind, ...params}` form of any accepted form.
fn tagged_form(layer: Value) -> Result<Value, String> {
    match layer {
        Value::String(kind) => Ok(Value::Object(Map::from_iter([(
            "type".to_string(),
            Value::String(kind),
        )]))),
        Value::Object(map) if map.contains_key("type") => Ok(Value::Object(map)),
        Value::Object(mut map) if map.len() - usize::from(map.contains_key("trainable")) == 1 => {
            let trainable = map.remove("trainable");
            let (kind, params) = map.into_iter().next().unwrap_or_default();
            let mut params = match params {
                Value::Object(params) => params,
                Value::Null => Map::new(),
                other => {
                    return Err(format!(
                        "`{kind}: {other}`: the parameters of a `{{{kind}: {{...}}}}` layer are a \
                         map (e.g. `{{linear: {{out: 64}}}}`)"
                    ));
                }
            };
            if params.contains_key("type") {
                return Err(format!("`{kind}`'s parameters may not have a `type` field"));
            }
            params.insert("type".into(), Value::String(kind));
            if let Some(trainable) = trainable {
                params.insert("trainable".into(), trainable);
            }
            Ok(Value::Object(params))
        }
        other => Err(format!(
            "a layer is a name (`relu`), `{{linear: {{out: 64}}}}` or `{{type: linear, out: 64}}`, \
             got {other}"
        )),
    }
}

/// `{type: kind, ..., trainable: false}` → `{type: frozen, layer: {type: kind, ...}}`.
fn trainable_form(tagged: Value) -> Result<Value, String> {
    let Value::Object(mut map) = tagged else {
        return Ok(tagged);
    };
    match map.remove("trainable") {
        None | Some(Value::Bool(true)) => Ok(Value::Object(map)),
        Some(Value::Bool(false)) => Ok(serde_json::json!({"type": "frozen", "layer": map})),
        Some(other) => Err(format!("`trainable` is true or false, got {other}")),
    }
}

/// The JSON Schema of `model.layers`: each item in any of the three forms, derived from the
/// tagged form's variants.
pub fn schema(generator: &mut SchemaGenerator) -> Schema {
    let tagged = LayerSpec::json_schema(generator);
    let variants: Vec<&Value> = tagged
        .get("oneOf")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .collect();
    let mut bare = Vec::new();
    let mut keyed = Vec::new();
    let mut tagged_forms = Vec::new();
    for variant in variants {
        let mut with_trainable = variant.clone();
        if let Some(properties) = with_trainable
            .get_mut("properties")
            .and_then(Value::as_object_mut)
        {
            properties.insert("trainable".into(), trainable_schema());
        }
        tagged_forms.push(with_trainable);
        let Some(kind) = variant
            .pointer("/properties/type")
            .and_then(|t| t.get("const").or_else(|| t.pointer("/enum/0")))
            .and_then(Value::as_str)
        else {
            continue;
        };
        let (mut params, required) = parameters(variant);
        params.insert("trainable".into(), trainable_schema());
        if required.is_empty() {
            bare.push(kind.to_string());
        }
        let mut params_schema = serde_json::json!({
            "type": if required.is_empty() { serde_json::json!(["object", "null"]) } else { serde_json::json!("object") },
            "properties": params,
            "additionalProperties": false,
        });
        if !required.is_empty() {
            params_schema["required"] = Value::from(required);
        }
        keyed.push(serde_json::json!({
            "type": "object",
            "properties": {kind: params_schema, "trainable": trainable_schema()},
            "required": [kind],
            "additionalProperties": false,
        }));
    }
    // The tagged form's variants, each with `trainable` (LayerSpec itself has no such field:
    // `trainable: false` is read as a `frozen` wrapper).
    generator.subschema_for::<LayerSpec>();
    let mut items = vec![
        serde_json::json!({ "oneOf": tagged_forms }),
        serde_json::json!({
            "description": "A layer without required parameters, by name.",
            "type": "string",
            "enum": bare,
        }),
    ];
    items.extend(keyed);
    json_schema!({
        "type": "array",
        "description": "Layers, applied in order. Each is `{type: kind, ...params}`, \
            `{kind: {params}}`, or — for a layer without required parameters — its bare name.",
        "items": {"anyOf": items}
    })
}

/// `trainable`, accepted by every form of a layer.
fn trainable_schema() -> Value {
    serde_json::json!({
        "type": "boolean",
        "description": "false freezes the layer: no gradient, no optimiser update, its weights kept \
            as loaded (fine-tuning a head on imported weights).",
    })
}

/// The schema of a `residual` block's layers: the tagged form by reference, names and
/// `{kind: {params}}` maps (spelled out at `model.layers`).
pub fn nested_schema(generator: &mut SchemaGenerator) -> Schema {
    let tagged_ref = generator.subschema_for::<LayerSpec>();
    json_schema!({
        "type": "array",
        "description": "The block's layers, in the forms `model.layers` takes.",
        "items": {
            "anyOf": [
                tagged_ref,
                {"type": "string"},
                {"type": "object", "minProperties": 1, "maxProperties": 1}
            ]
        }
    })
}

/// A tagged variant's parameters (every property but `type`) and the required ones.
fn parameters(variant: &Value) -> (Map<String, Value>, Vec<Value>) {
    let mut params = variant
        .get("properties")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    params.remove("type");
    let required = variant
        .get("required")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|name| *name != "type")
        .cloned()
        .collect();
    (params, required)
}
