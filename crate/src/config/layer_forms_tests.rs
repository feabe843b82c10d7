//! The three forms a layer may be written in, read through a whole config.

use crate::config::{Config, LayerSpec};
use crate::layers::{FrozenSpec, LinearSpec, ReluSpec};

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
    let frozen = |layer: LayerSpec| {
        LayerSpec::from(FrozenSpec {
            layer: Box::new(layer),
        })
    };
    let linear = LayerSpec::from(LinearSpec::new(Some(8)));
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
    assert_eq!(read[3], LayerSpec::from(ReluSpec {}));
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

#[test]
fn layers_inside_a_block_are_checked_like_the_top_level_ones() {
    let err = |yaml: &str| Config::from_yaml_str(yaml).unwrap_err().to_string();
    let prob = err(
        "model: {layers: [{linear: {out: 8}}, {residual: {layers: [{linear: {out: 8}}, {dropout: {prob: 2}}]}}, linear]}",
    );
    assert!(
        prob.contains("model.layers[1].layers[1].prob: must be in [0, 1), got 2"),
        "{prob}"
    );
    let stride = err(
        "model: {layers: [{residual: {layers: [{conv2d: {channels: 1, kernel: 3, stride: 0, padding: 1}}]}}, flatten, linear]}",
    );
    assert!(
        stride.contains("model.layers[0].layers[0].stride: must be >= 1, got 0"),
        "{stride}"
    );
    let frozen = err("model: {layers: [{gru: {hidden: 0}, trainable: false}, linear]}");
    assert!(
        frozen.contains("model.layers[0].hidden: must be >= 1, got 0"),
        "{frozen}"
    );
}
