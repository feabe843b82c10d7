//! The engine in headless Chromium on WebGPU (SwiftShader here), through the same JS API the
//! npm package wraps. Run with `make test-web` (wasm-bindgen-test-runner + chromedriver).
#![cfg(target_family = "wasm")]

mod common;

use common::{field, trains_predicts_and_reports};
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

#[wasm_bindgen_test]
async fn chromium_exposes_a_webgpu_adapter() {
    let gpu = field(&field(&js_sys::global(), "navigator"), "gpu");
    assert!(
        !gpu.is_undefined(),
        "navigator.gpu is missing: WebGPU is not enabled"
    );
    let request: js_sys::Function = field(&gpu, "requestAdapter").into();
    let adapter = JsFuture::from(js_sys::Promise::from(request.call0(&gpu).unwrap()))
        .await
        .unwrap();
    assert!(!adapter.is_null(), "requestAdapter() returned null");
}

#[wasm_bindgen_test]
async fn trains_on_webgpu_and_reports_it() {
    let backend = trains_predicts_and_reports("webgpu").await;
    let adapter = field(&backend, "adapter").as_string().unwrap_or_default();
    assert!(
        adapter.contains("BrowserWebGpu"),
        "not the browser's WebGPU: {adapter}"
    );
}

#[wasm_bindgen_test]
async fn trains_on_cpu_in_the_browser() {
    let backend = trains_predicts_and_reports("cpu").await;
    assert!(field(&backend, "adapter").is_null() || field(&backend, "adapter").is_undefined());
}

#[wasm_bindgen_test]
async fn a_bad_config_is_a_js_error_naming_the_field() {
    common::a_bad_config_is_an_error_naming_the_field().await;
}
