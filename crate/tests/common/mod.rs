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

/// Whether a test has handed the digits over yet (each test binary is one wasm instance).
static DIGITS_HANDED_OVER: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Hands the digits file to the module as the npm package does (these tests build Kiln as the
/// package does, without `embedded-digits`). The first time, it first checks that training on
/// digits without them is refused with an error saying how to get them.
pub fn provide_digits_for(kiln: &Kiln, config: &JsValue) {
    let data: JsValue = js_sys::Object::new().into();
    assert!(
        !Kiln::needs_digits(config.clone(), data),
        "a job given its data never needs the digits"
    );
    let first = !DIGITS_HANDED_OVER.swap(true, std::sync::atomic::Ordering::Relaxed);
    assert_eq!(
        Kiln::needs_digits(config.clone(), JsValue::UNDEFINED),
        first,
        "the module has the digits only once they were handed over"
    );
    if first {
        let error: js_sys::Error = kiln
            .train(config.clone(), JsValue::UNDEFINED, None, None, None, None)
            .err()
            .expect("training on digits that were not handed over is refused")
            .dyn_into()
            .expect("a real Error");
        let message = String::from(error.message());
        assert!(
            message.contains("does not embed the digits") && message.contains("digits.csv.gz"),
            "{message}"
        );
        Kiln::provide_digits(b"0,1\n").expect_err("a file that is not the digits is refused");
        assert!(Kiln::needs_digits(config.clone(), JsValue::UNDEFINED));
        Kiln::provide_digits(include_bytes!("../../data/digits.csv.gz"))
            .expect("the digits file is taken");
    }
    assert!(!Kiln::needs_digits(config.clone(), JsValue::UNDEFINED));
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
    provide_digits_for(&kiln, &config);
    let job = kiln
        .train(config, JsValue::UNDEFINED, None, None, None, None)
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
    assert!(
        !Kiln::needs_digits(config.clone(), JsValue::UNDEFINED),
        "a bad config fetches nothing: train throws its error"
    );
    let error = kiln
        .train(config.clone(), JsValue::UNDEFINED, None, None, None, None)
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
