//! The same binding tests in Node 20 on the CPU backend (wasm-bindgen-test-runner runs a test
//! binary without `run_in_browser` in Node). Run with `make test-web`.
#![cfg(target_family = "wasm")]

mod common;

use common::field;
use kiln::web::Kiln;
use wasm_bindgen::JsCast;
use wasm_bindgen_test::*;

#[wasm_bindgen_test]
async fn trains_on_cpu_in_node() {
    let backend = common::trains_predicts_and_reports("cpu").await;
    assert!(field(&backend, "adapter").is_null() || field(&backend, "adapter").is_undefined());
}

#[wasm_bindgen_test]
async fn a_bad_config_is_a_js_error_naming_the_field() {
    common::a_bad_config_is_an_error_naming_the_field().await;
}

#[wasm_bindgen_test]
async fn webgpu_without_navigator_gpu_is_a_clear_error() {
    let error = match Kiln::open("webgpu".into(), common::memory_store(), None).await {
        Ok(_) => panic!("Node 20 has no WebGPU, yet webgpu opened"),
        Err(error) => error,
    };
    let error: js_sys::Error = error.dyn_into().expect("a real Error");
    let message = String::from(error.message());
    assert!(message.contains("backend: \"cpu\""), "{message}");
    assert!(
        message.contains("or a page that is not a secure context"),
        "{message}"
    );
    assert!(
        !message.contains("  "),
        "a message with a run of spaces: {message}"
    );
}
