//! Weights trained in PyTorch, imported into a config network: the committed fixture
//! (`fixtures/make_pytorch_mlp.py` wrote it with PyTorch) gives PyTorch's outputs, and bad files
//! are errors naming the keys and shapes.
#![cfg(not(target_family = "wasm"))]

use burn::tensor::{Tensor, TensorData};
use kiln::Config;
use kiln::model::{Network, import_safetensors, resolve_layers};
use kiln::train::{CheckpointSink, MemoryCheckpoints, ResumePoint};
use std::collections::BTreeMap;

const FIXTURE: &[u8] = include_bytes!("fixtures/pytorch_mlp.safetensors");
const OUTPUTS: &str = include_str!("fixtures/pytorch_mlp.json");

fn network(layers: &str) -> Network {
    let config = Config::from_yaml_str(&format!("model: {{layers: {layers}}}")).expect("config");
    let device = kiln::backend::cpu_device();
    Network::build(&resolve_layers(&config.model), &[4], None, 3, &device).expect("network")
}

fn mlp() -> Network {
    network("[{linear: {out: 8}}, relu, {linear: {out: 8}}, relu, linear]")
}

fn map() -> BTreeMap<String, String> {
    [("fc1", "0"), ("fc2", "2"), ("head", "4")]
        .into_iter()
        .map(|(a, b)| (a.to_string(), b.to_string()))
        .collect()
}

#[test]
fn a_pytorch_mlp_gives_pytorchs_outputs() {
    let imported = import_safetensors(mlp(), FIXTURE, &map()).expect("imports");
    let expected: serde_json::Value = serde_json::from_str(OUTPUTS).expect("fixture json");
    let inputs: Vec<f32> = expected["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .flat_map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_f64().expect("f") as f32)
        })
        .collect();
    let rows = inputs.len() / 4;
    let x = Tensor::<2>::from_data(
        TensorData::new(inputs, [rows, 4]),
        &kiln::backend::cpu_device(),
    );
    let logits = imported
        .forward(x)
        .into_data()
        .try_to_vec::<f32>()
        .expect("f32");
    let want: Vec<f64> = expected["logits"]
        .as_array()
        .expect("logits")
        .iter()
        .flat_map(|row| {
            row.as_array()
                .expect("row")
                .iter()
                .map(|v| v.as_f64().expect("f"))
        })
        .collect();
    assert_eq!(logits.len(), want.len());
    for (i, (got, want)) in logits.iter().zip(&want).enumerate() {
        assert!(
            (*got as f64 - want).abs() < 1e-5,
            "output {i}: Kiln {got} vs PyTorch {want}"
        );
    }
}

#[test]
fn unmapped_keys_wrong_shapes_and_broken_files_are_named() {
    let unmapped = import_safetensors(mlp(), FIXTURE, &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        unmapped.contains("`fc1.weight`") && unmapped.contains("model.init_from.map"),
        "{unmapped}"
    );
    assert!(unmapped.contains("0.weight/0.bias (linear)"), "{unmapped}");

    let wider = network("[{linear: {out: 16}}, relu, {linear: {out: 8}}, relu, linear]");
    let shape = import_safetensors(wider, FIXTURE, &map())
        .unwrap_err()
        .to_string();
    assert!(
        shape.contains("key `fc1.weight` has shape [4, 8]") && shape.contains("[4, 16]"),
        "{shape}"
    );

    let truncated = import_safetensors(mlp(), &FIXTURE[..FIXTURE.len() - 10], &map()).unwrap_err();
    assert!(
        truncated
            .to_string()
            .contains("not a readable safetensors file"),
        "{truncated}"
    );
    let wrong_layer = network("[{linear: {out: 8}}, relu, {linear: {out: 8}}, gelu, linear]");
    let mut shifted = map();
    shifted.insert("head".into(), "3".into());
    let e = import_safetensors(wrong_layer, FIXTURE, &shifted)
        .unwrap_err()
        .to_string();
    assert!(e.contains("layer 3 is gelu and takes no `weight`"), "{e}");
}

/// A safetensors file of `keys`, each one f32 of value 0.
fn safetensors_of(keys: &[String]) -> Vec<u8> {
    let header: serde_json::Map<String, serde_json::Value> = keys
        .iter()
        .enumerate()
        .map(|(i, key)| {
            let entry = serde_json::json!({"dtype": "F32", "shape": [1], "data_offsets": [i * 4, i * 4 + 4]});
            (key.clone(), entry)
        })
        .collect();
    let header = serde_json::to_vec(&header).expect("header");
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend(header);
    out.extend(vec![0u8; keys.len() * 4]);
    out
}

#[test]
fn many_or_long_unmatched_keys_make_a_short_message() {
    let keys: Vec<String> = (0..5000)
        .map(|i| format!("junk{i}.{}", "x".repeat(200)))
        .collect();
    let e = import_safetensors(mlp(), &safetensors_of(&keys), &BTreeMap::new())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("5000 key(s) of the file match no layer") && e.contains("and 4990 more"),
        "{e}"
    );
    assert!(e.len() < 3000, "{} bytes", e.len());
}

/// `n` samples of 4 features with labels like the fixture's training data: (x0 > 0) + (x1 > 0).
fn synthetic(n: usize) -> kiln::data::Loaded {
    let mut state = 12345u64;
    let mut next = || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as f32 / (1u64 << 31) as f32) * 4.0 - 2.0
    };
    let features: Vec<f32> = (0..n * 4).map(|_| next()).collect();
    let labels: Vec<u32> = features
        .chunks(4)
        .map(|x| u32::from(x[0] > 0.0) + u32::from(x[1] > 0.0))
        .collect();
    let samples =
        kiln::data::Dataset::new(features, kiln::data::Targets::Classes(labels), vec![4], 3)
            .expect("dataset");
    kiln::data::Loaded {
        samples,
        official_test: None,
        texts: None,
    }
}

fn linear_weight(network: &Network, layer: usize) -> Vec<f32> {
    match &network.layers[layer] {
        kiln::model::Layer::Linear(l) => {
            l.weight.val().into_data().try_to_vec::<f32>().expect("f32")
        }
        other => panic!("layer {layer} is {other:?}"),
    }
}

/// The fixture's MLP with its first two layers frozen (in two of the layer forms), started from
/// the fixture, trained `epochs` epochs.
fn frozen_config(epochs: usize) -> Config {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pytorch_mlp.safetensors"
    );
    Config::from_yaml_str(&format!(
        "seed: 3\ndata: {{source: inline, normalize: false}}\nmodel:\n  layers:\n    - {{linear: {{out: 8}}, trainable: false}}\n    - relu\n    - {{type: linear, out: 8, trainable: false}}\n    - relu\n    - linear\n  init_from: {{path: {fixture}, map: {{fc1: \"0\", fc2: \"2\", head: \"4\"}}}}\ntraining: {{num_passes: {epochs}, batch_size: 32, weight_optimization: {{learning_rate: 0.01}}}}\ncheckpoint: {{main_metric: val_loss}}\n"
    ))
    .expect("config")
}

/// Runs `config` as a job on 600 synthetic samples, checkpointing to and resuming from what
/// is given.
fn fine_tune(
    config: &Config,
    checkpoints: Option<&mut MemoryCheckpoints>,
    resume: Option<ResumePoint>,
) -> kiln::jobs::JobOutput {
    let splits = kiln::data::prepare(config, synthetic(600)).expect("splits");
    let store = kiln::store::MemoryStore::new();
    let job = kiln::Job::new();
    futures::executor::block_on(kiln::jobs::run_job(
        &job,
        kiln::jobs::JobRun {
            inputs: kiln::train::TrainInputs {
                config,
                splits: &splits,
                builder: &kiln::model::ConfigModel::default(),
                device: kiln::backend::cpu_device(),
                checkpoints: checkpoints.map(|c| c as &mut dyn CheckpointSink),
                resume,
                yield_now: None,
            },
            backend: "cpu".into(),
            store: &store,
            on_event: &mut |_| {},
            best_model_path: None,
            before_store: None,
            holdout: false,
            model_id: None,
        },
    ))
    .expect("fine-tunes")
}

/// The network of `weights` (burnpack), and the fixture's as imported.
fn tuned_and_pytorch(weights: &[u8]) -> (Network, Network) {
    let tuned = kiln::model::import_weights(mlp(), weights).expect("weights");
    let pytorch = import_safetensors(mlp(), FIXTURE, &map()).expect("imports");
    (tuned, pytorch)
}

#[test]
fn fine_tuning_with_frozen_first_layers_keeps_them_bit_identical_and_trains_the_head() {
    let output = fine_tune(&frozen_config(6), None, None);
    let (tuned, pytorch) = tuned_and_pytorch(&output.final_weights);
    for layer in [0, 2] {
        assert_eq!(
            linear_weight(&tuned, layer),
            linear_weight(&pytorch, layer),
            "layer {layer} changed"
        );
    }
    assert_ne!(
        linear_weight(&tuned, 4),
        linear_weight(&pytorch, 4),
        "the head did not train"
    );
    let history = &output.info.summary.history;
    let (first, last) = (
        &history[0].metrics["val_loss"],
        &history[history.len() - 1].metrics["val_loss"],
    );
    assert!(last < first, "val_loss {first} → {last}");
}

#[test]
fn frozen_layers_stay_frozen_after_resuming_from_a_checkpoint() {
    let config = frozen_config(4);
    let mut sink = MemoryCheckpoints::default();
    let whole = fine_tune(&config, Some(&mut sink), None);
    let resumed = fine_tune(&config, None, Some(sink.points[1].clone()));
    let (tuned, pytorch) = tuned_and_pytorch(&resumed.final_weights);
    for layer in [0, 2] {
        assert_eq!(
            linear_weight(&tuned, layer),
            linear_weight(&pytorch, layer),
            "layer {layer} trained after resuming"
        );
    }
    assert_eq!(resumed.final_weights, whole.final_weights);
}

/// The fixture's MLP from the fixture, one plain-SGD step over the whole training split.
fn one_sgd_step(learning_rate: f64, groups: &str) -> Network {
    let fixture = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/pytorch_mlp.safetensors"
    );
    let config = Config::from_yaml_str(&format!(
        "seed: 3\ndata: {{source: inline, normalize: false, shuffle: false}}\nmodel:\n  layers: [{{linear: {{out: 8}}}}, relu, {{linear: {{out: 8}}}}, relu, linear]\n  init_from: {{path: {fixture}, map: {{fc1: \"0\", fc2: \"2\", head: \"4\"}}}}\ntraining: {{num_passes: 1, batch_size: 420, optimizer: sgd, lr: {learning_rate}, layer_groups: {groups}}}\n"
    ))
    .expect("config");
    let output = fine_tune(&config, None, None);
    kiln::model::import_weights(mlp(), &output.final_weights).expect("weights")
}

#[test]
fn layer_groups_scale_their_layers_learning_rate() {
    let grouped = one_sgd_step(
        0.1,
        "[{layers: [0], lr_multiplier: 0.5}, {layers: [2], lr_multiplier: 0}]",
    );
    let half_rate = one_sgd_step(0.05, "[]");
    let full_rate = one_sgd_step(0.1, "[]");
    let pytorch = import_safetensors(mlp(), FIXTURE, &map()).expect("imports");
    // One step from the same weights: layer 0 moved as at half the rate, layer 2 not at all,
    // the head as at the full rate.
    assert_eq!(linear_weight(&grouped, 0), linear_weight(&half_rate, 0));
    assert_ne!(linear_weight(&grouped, 0), linear_weight(&full_rate, 0));
    assert_eq!(linear_weight(&grouped, 2), linear_weight(&pytorch, 2));
    assert_ne!(linear_weight(&full_rate, 2), linear_weight(&pytorch, 2));
    assert_eq!(linear_weight(&grouped, 4), linear_weight(&full_rate, 4));

    let error = |groups: &str| {
        Config::from_yaml_str(&format!(
            "model: {{layers: [{{linear: {{out: 4}}}}, relu, linear]}}\ntraining: {{layer_groups: {groups}}}"
        ))
        .unwrap_err()
        .to_string()
    };
    let e = error("[{layers: [5], lr_multiplier: 0.1}]");
    assert!(
        e.contains("training.layer_groups[0].layers[0]: must be a layer index below 3"),
        "{e}"
    );
    let e = error("[{layers: [0], lr_multiplier: 0.1}, {layers: [2, 0], lr_multiplier: 1}]");
    assert!(
        e.contains("training.layer_groups[1].layers[1]")
            && e.contains("already in training.layer_groups[0]"),
        "{e}"
    );
    let e = error("[{layers: [0], lr_multiplier: -1}]");
    assert!(
        e.contains("training.layer_groups[0].lr_multiplier: must be >= 0"),
        "{e}"
    );
}
