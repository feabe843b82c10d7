//! The three ways a layer may be written in a config: `{type: linear, out: 64}`,
//! `{linear: {out: 64}}`, and — for a layer without parameters — its bare name, `relu`.

use super::schema::LayerSpec;
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

#[cfg(test)]
mod tests {
    use crate::config::{Config, LayerSpec};

    fn layers(yaml: &str) -> Vec<LayerSpec> {
        Config::from_yaml_str(yaml)
            .expect("valid config")
            .model
            .layers
    }

    #[test]
    fn bare_names_and_kind_maps_read_like_the_tagged_form() {
        let tagged = layers(
            "model: {layers: [{type: linear, out: 64}, {type: relu}, {type: dropout, prob: 0.1}, {type: linear}]}",
        );
        let short = layers(
            "model: {layers: [{linear: {out: 64}}, relu, {dropout: {prob: 0.1}}, {linear: {}}]}",
        );
        let nulls = layers(
            "model:\n  layers:\n    - linear: {out: 64}\n    - relu\n    - dropout: {prob: 0.1}\n    - linear:\n",
        );
        assert_eq!(short, tagged);
        assert_eq!(nulls, tagged);
        let json = Config::from_json_str(
            r#"{"model": {"layers": [{"linear": {"out": 64}}, "relu", {"dropout": {"prob": 0.1}}, {"type": "linear"}]}}"#,
        )
        .expect("valid JSON config");
        assert_eq!(json.model.layers, tagged);
    }

    #[test]
    fn trainable_false_freezes_a_layer_in_any_form() {
        let frozen = |layer: LayerSpec| LayerSpec::Frozen {
            layer: Box::new(layer),
        };
        let linear = LayerSpec::Linear {
            out: Some(8),
            bias: true,
        };
        let read = layers(
            "model: {layers: [{linear: {out: 8}, trainable: false}, {type: linear, out: 8, trainable: false}, {linear: {out: 8, trainable: false}}, {type: relu, trainable: true}, linear]}",
        );
        assert_eq!(
            read[..3],
            [
                frozen(linear.clone()),
                frozen(linear.clone()),
                frozen(linear)
            ]
        );
        assert_eq!(read[3], LayerSpec::Relu);
        let e = Config::from_yaml_str("model: {layers: [{type: relu, trainable: 0}]}").unwrap_err();
        assert!(
            e.to_string().contains("`trainable` is true or false"),
            "{e}"
        );
    }

    #[test]
    fn residual_blocks_take_every_form_inside() {
        let short = layers(
            "model: {layers: [{linear: {out: 8}}, {residual: {layers: [{linear: {out: 8}}, relu]}}, linear]}",
        );
        let tagged = layers(
            "model: {layers: [{type: linear, out: 8}, {type: residual, layers: [{type: linear, out: 8}, {type: relu}]}, {type: linear}]}",
        );
        assert_eq!(short, tagged);
    }

    #[test]
    fn errors_name_the_layer_and_what_is_wrong() {
        let err = |yaml: &str| Config::from_yaml_str(yaml).unwrap_err().to_string();
        let unknown = err("model: {layers: [relu, rellu]}");
        assert!(
            unknown.contains("model.layers") && unknown.contains("[1]"),
            "{unknown}"
        );
        assert!(unknown.contains("rellu"), "{unknown}");
        let missing = err("model: {layers: [dropout]}");
        assert!(
            missing.contains("[0]") && missing.contains("prob"),
            "{missing}"
        );
        let scalar = err("model: {layers: [{linear: 64}]}");
        assert!(scalar.contains("are a map"), "{scalar}");
        let two = err("model: {layers: [{linear: {out: 3}, relu: {}}]}");
        assert!(two.contains("a layer is a name"), "{two}");
    }

    #[test]
    fn the_schema_lists_bare_names_without_required_parameters() {
        let schema = Config::json_schema();
        let items = &schema["$defs"]["ModelConfig"]["properties"]["layers"]["items"]["anyOf"];
        let bare: Vec<&str> = items[1]["enum"]
            .as_array()
            .expect("bare names")
            .iter()
            .filter_map(|v| v.as_str())
            .collect();
        let expected = [
            "linear",
            "flatten",
            "relu",
            "gelu",
            "tanh",
            "sigmoid",
            "batch_norm",
            "layer_norm",
            "mean_pool",
            "max_pool",
            "positional_encoding",
        ];
        assert_eq!(bare, expected);
        let keyed = &items.as_array().expect("forms")[2..];
        assert_eq!(keyed.len(), 21);
        let dropout = keyed
            .iter()
            .find(|form| form["required"][0] == "dropout")
            .expect("the dropout form");
        assert_eq!(dropout["properties"]["dropout"]["required"][0], "prob");
        assert!(!bare.contains(&"dropout") && !bare.contains(&"conv2d"));
    }
}
