//! A federation client's local round from JS: the package's `joinFederation` runs the protocol
//! (HTTP, identity, retries) and hands each round's global model here to train on the page's
//! own backend. Only the trained model and the example count go back to JS — the data never
//! leaves this call.

use super::convert::{data_from_js, js_error, to_js};
use super::kiln::{Kiln, next_tick};
use crate::error::KilnError;
use crate::federated::{local_config, prepare_local, train_round};
use crate::model::SavedModel;
use crate::train::{CancelToken, YieldFn};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// A JS `Error` whose `phase` says where the round failed: `"data"` (this client's data does not
/// fit the federation's model — every round would fail the same way) or `"training"` (this
/// round's training failed, e.g. it diverged from this global model).
fn phase_error(error: KilnError, phase: &str) -> JsValue {
    let error = js_error(error);
    let _ = js_sys::Reflect::set(&error, &"phase".into(), &phase.into());
    error
}

#[wasm_bindgen]
impl Kiln {
    /// Trains one federated round: `global` is the round's global model (`.kiln` bytes from the
    /// server), `data` the client's own samples (`{ features, labels, shape }` or `{ csv }`,
    /// read the way the federation's config reads data). Resolves with `{ update, examples,
    /// metrics }`: the trained model's bytes, the training examples it saw per epoch and its
    /// local metrics. `onEvent` (optional) gets the engine's events as a job's `onEvent` does.
    /// A failure rejects with an `Error` whose `phase` is `"data"` or `"training"`.
    #[wasm_bindgen(js_name = trainRound)]
    pub fn train_round(
        &self,
        global: js_sys::Uint8Array,
        data: JsValue,
        on_event: Option<js_sys::Function>,
    ) -> js_sys::Promise {
        let shared = self.shared.clone();
        future_to_promise(async move {
            let global = SavedModel::from_bytes(&global.to_vec()).map_err(js_error)?;
            let data_error = |e| phase_error(e, "data");
            let config =
                local_config(&global, global.header.config.data.clone()).map_err(data_error)?;
            let loaded = data_from_js(&data, &config)
                .map_err(data_error)?
                .ok_or_else(|| {
                    data_error(KilnError::InvalidArgument(
                        "joinFederation needs this client's data: { features, labels, shape } or \
                         { csv }"
                            .into(),
                    ))
                })?;
            let splits = prepare_local(&global, &config, loaded).map_err(data_error)?;
            let yield_fn: &YieldFn = &next_tick;
            let mut events = |event: crate::train::TrainEvent| {
                if let (Some(listener), Ok(value)) = (&on_event, to_js(&event)) {
                    // A throwing listener must not stop training.
                    let _ = listener.call1(&JsValue::NULL, &value);
                }
            };
            let update = train_round(
                &global,
                &config,
                &splits,
                shared.device.clone(),
                &mut events,
                CancelToken::new(),
                Some(yield_fn),
            )
            .await
            .map_err(|e| phase_error(e, "training"))?;
            let bytes = update.model.to_bytes().map_err(js_error)?;
            let out = js_sys::Object::new();
            let set = |key: &str, value: &JsValue| js_sys::Reflect::set(&out, &key.into(), value);
            set("update", &js_sys::Uint8Array::from(bytes.as_slice()).into())?;
            set("examples", &JsValue::from(update.examples as f64))?;
            set("metrics", &to_js(&update.model.header.metrics)?)?;
            Ok(out.into())
        })
    }
}
