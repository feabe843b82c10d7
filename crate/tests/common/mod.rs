//! Shared by the wasm tests in Chromium (`web.rs`) and in Node (`node.rs`): the same checks of
//! the bindings, on whichever backend the caller opens.
#![allow(dead_code)]

use kiln::web::{Kiln, TrainingJob};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// A model store in memory, written in JS as a user would.
pub fn memory_store() -> JsValue {
    js_sys::eval(
        "(() => { const m = new Map(); return {
            get: async (id) => m.get(id),
            put: async (id, bytes) => { m.set(id, bytes); },
            list: async () => [...m.keys()],
            delete: async (id) => m.delete(id) }; })()",
    )
    .expect("store object")
}

/// `value[key]`, or `undefined`.
pub fn field(value: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(value, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

async fn wait(job: &TrainingJob) -> Result<JsValue, JsValue> {
    JsFuture::from(job.wait_for_training()).await
}

/// Opens `backend`, trains a short digits run, checks the job and the result, loads the model
/// and predicts with it. Returns the backend info object.
pub async fn trains_predicts_and_reports(backend: &str) -> JsValue {
    let kiln = Kiln::open(backend.into(), memory_store(), None)
        .await
        .expect("backend opens");
    let info = kiln.backend().unwrap();
    assert_eq!(field(&info, "kind").as_string().as_deref(), Some(backend));

    let config = js_sys::JSON::parse(
        r#"{"training": {"num_passes": 1, "batch_size": 64, "log_every_steps": 5},
            "data": {"limit": 320}}"#,
    )
    .unwrap();
    let job = kiln
        .train(config, JsValue::UNDEFINED, None, None)
        .expect("job starts");
    assert!(job.id().starts_with("trainingjob-"));
    assert_eq!(job.status(), "queued");
    let result = wait(&job).await.expect("training completes");
    assert_eq!(job.status(), "completed");
    assert_eq!(
        field(&result, "backend").as_string().as_deref(),
        Some(backend)
    );
    let loss = field(&field(&result, "finalMetrics"), "test_loss")
        .as_f64()
        .expect("test loss");
    assert!(
        loss.is_finite() && loss > 0.0 && loss < 2.5,
        "test loss {loss}"
    );

    let model = JsFuture::from(kiln.preloaded_model(field(&result, "modelId")))
        .await
        .expect("model loads");
    let predict: js_sys::Function = field(&model, "predict").into();
    let features = js_sys::Float32Array::new_with_length(64 * 2);
    features.fill(3.0, 0, 128);
    let outputs = predict
        .call2(&model, &features, &JsValue::UNDEFINED)
        .expect("predict starts");
    let outputs: js_sys::Float32Array = JsFuture::from(js_sys::Promise::from(outputs))
        .await
        .expect("predict resolves")
        .dyn_into()
        .expect("a Float32Array");
    let outputs = outputs.to_vec();
    assert_eq!(outputs.len(), 20, "2 samples × 10 classes");
    for sample in outputs.chunks(10) {
        let sum: f32 = sample.iter().sum();
        assert!((sum - 1.0).abs() < 1e-4, "probabilities sum to {sum}");
    }
    info
}

/// A bad config is rejected before any work, as a real `Error` naming the field.
pub async fn a_bad_config_is_an_error_naming_the_field() {
    let kiln = Kiln::open("cpu".into(), memory_store(), None)
        .await
        .unwrap();
    let config = js_sys::JSON::parse(r#"{"training": {"batch_size": 0}}"#).unwrap();
    let error = kiln
        .train(config.clone(), JsValue::UNDEFINED, None, None)
        .err()
        .expect("rejected");
    let error: js_sys::Error = error.dyn_into().expect("a real Error");
    assert!(String::from(error.message()).contains("training.batch_size"));
    let error: js_sys::Error = Kiln::validate_config(config)
        .err()
        .expect("validateConfig rejects it too")
        .dyn_into()
        .expect("a real Error");
    assert!(String::from(error.message()).contains("training.batch_size"));
    assert!(Kiln::validate_config(JsValue::UNDEFINED).is_ok());
}
