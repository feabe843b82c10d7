//! The residual MLP trained through Kiln's job API in wasm, in Node 20 (wasm-bindgen-test-runner
//! runs a test binary without `run_in_browser` in Node). Run with `make test-web`.
#![cfg(target_family = "wasm")]

use kiln::Config;
use kiln::data::load_and_prepare;
use kiln::store::{MemoryStore, load_model};
use kiln_example_custom_model::{DIGITS_CONFIG, ResidualMlpBuilder, Resumable, train};
use wasm_bindgen_test::*;

#[wasm_bindgen_test]
async fn trains_the_residual_mlp_in_wasm() {
    let config = Config::from_yaml_str(DIGITS_CONFIG).expect("valid config");
    let splits = load_and_prepare(&config).expect("digits");
    let store = MemoryStore::new();
    let builder = ResidualMlpBuilder {
        hidden: 32,
        blocks: 2,
    };
    let mut evaluations = 0;
    let output = train(
        &builder,
        &config,
        &splits,
        kiln::backend::cpu_device(),
        &store,
        Resumable::default(),
        &mut |event| {
            if matches!(event, kiln::train::TrainEvent::Evaluated(_)) {
                evaluations += 1;
            }
        },
    )
    .await
    .expect("trains");
    let accuracy = output.info.summary.final_metrics["test_accuracy"];
    assert!(accuracy >= 0.9, "test accuracy {accuracy}");
    assert_eq!(evaluations, 6);
    let saved = load_model(&store, &output.info.model_id)
        .await
        .expect("stored");
    assert_eq!(saved.header.architecture, "example.residual-mlp/32x2");
}
