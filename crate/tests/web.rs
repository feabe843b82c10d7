//! The engine in headless Chromium on WebGPU (SwiftShader here), through the same JS API the
//! npm package wraps. Run with `make test-web` (wasm-bindgen-test-runner + chromedriver).
#![cfg(target_family = "wasm")]

use kiln::web::{Kiln, TrainingJob};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use wasm_bindgen_test::*;

wasm_bindgen_test_configure!(run_in_browser);

/// A model store in memory, written in JS as a user would.
fn memory_store() -> JsValue {
    js_sys::eval(
        "(() => { const m = new Map(); return {
            get: async (id) => m.get(id),
            put: async (id, bytes) => { m.set(id, bytes); },
            list: async () => [...m.keys()],
            delete: async (id) => m.delete(id) }; })()",
    )
    .expect("store object")
}

fn field(value: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(value, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

async fn wait(job: &TrainingJob) -> Result<JsValue, JsValue> {
    JsFuture::from(job.wait_for_training()).await
}

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
    let kiln = Kiln::open("webgpu".into(), memory_store(), None)
        .await
        .expect("webgpu opens");
    let backend = kiln.backend().unwrap();
    assert_eq!(
        field(&backend, "kind").as_string().as_deref(),
        Some("webgpu")
    );
    let adapter = field(&backend, "adapter").as_string().unwrap_or_default();
    assert!(
        adapter.contains("BrowserWebGpu"),
        "not the browser's WebGPU: {adapter}"
    );

    let config = js_sys::JSON::parse(
        r#"{"training": {"num_passes": 1, "batch_size": 64, "log_every_steps": 5},
            "data": {"limit": 320}}"#,
    )
    .unwrap();
    let job = kiln
        .train(config, JsValue::UNDEFINED, None)
        .expect("job starts");
    assert_eq!(job.status(), "queued");
    let info = wait(&job).await.expect("training completes");
    assert_eq!(job.status(), "completed");
    assert_eq!(
        field(&info, "backend").as_string().as_deref(),
        Some("webgpu")
    );
    let metrics = field(&info, "finalMetrics");
    let loss = field(&metrics, "test_loss").as_f64().expect("test loss");
    assert!(
        loss.is_finite() && loss > 0.0 && loss < 2.5,
        "test loss {loss}"
    );

    let guid = field(&info, "modelId");
    let model: JsValue = JsFuture::from(kiln.preloaded_model(guid))
        .await
        .expect("model loads");
    assert!(!model.is_undefined());
}

#[wasm_bindgen_test]
async fn a_bad_config_is_a_js_error_naming_the_field() {
    let kiln = Kiln::open("cpu".into(), memory_store(), None)
        .await
        .unwrap();
    let config = js_sys::JSON::parse(r#"{"training": {"batch_size": 0}}"#).unwrap();
    let error = kiln
        .train(config, JsValue::UNDEFINED, None)
        .err()
        .expect("rejected");
    let error: js_sys::Error = error.dyn_into().expect("a real Error");
    assert!(String::from(error.message()).contains("training.batch_size"));
}
