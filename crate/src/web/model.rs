//! `Model`: a trained model loaded for inference and export.

use super::convert::{js_error, to_js};
use crate::error::KilnError;
use crate::model::{Predictor, summary};
use std::rc::Rc;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

/// A loaded model.
#[wasm_bindgen]
pub struct Model {
    predictor: Rc<Predictor>,
}

impl Model {
    /// Wraps a predictor.
    pub fn new(predictor: Predictor) -> Self {
        Self {
            predictor: Rc::new(predictor),
        }
    }
}

#[wasm_bindgen]
impl Model {
    /// The model id.
    #[wasm_bindgen(getter, js_name = modelId)]
    pub fn model_id(&self) -> String {
        self.predictor.saved.header.model_id.clone()
    }

    /// `{ modelId, name, task, inputShape, numOutputs, createdUnixMs, metrics }`.
    #[wasm_bindgen(getter)]
    pub fn info(&self) -> Result<JsValue, JsValue> {
        to_js(&summary(&self.predictor.saved.header))
    }

    /// Predicts `features` (row-major samples). `shape` is optional (`[rows, ...sample]`) and
    /// checked when given. Resolves with a `Float32Array` of `rows × numOutputs` class
    /// probabilities (classification) or values (regression).
    pub fn predict(&self, features: js_sys::Float32Array, shape: JsValue) -> js_sys::Promise {
        let predictor = self.predictor.clone();
        future_to_promise(async move {
            let features = features.to_vec();
            if !shape.is_undefined() && !shape.is_null() {
                let shape: Vec<usize> = serde_wasm_bindgen::from_value(shape).map_err(|_| {
                    js_error(KilnError::InvalidArgument(
                        "shape must be an array of positive integers".into(),
                    ))
                })?;
                let sample_len = predictor.sample_len();
                let count = crate::limits::checked_elements(&shape, "shape").map_err(js_error)?;
                let per_sample =
                    crate::limits::checked_elements(shape.get(1..).unwrap_or(&[]), "shape")
                        .map_err(js_error)?;
                if shape.len() < 2 || count != features.len() || per_sample != sample_len {
                    return Err(js_error(KilnError::InvalidArgument(format!(
                        "shape {shape:?} does not fit {} values for a model whose samples have \
                         shape {:?}",
                        features.len(),
                        predictor.saved.header.input_shape
                    ))));
                }
            }
            let out = predictor.predict(&features).await.map_err(js_error)?;
            Ok(js_sys::Float32Array::from(out.as_slice()).into())
        })
    }

    /// Predicts texts with a text model (tokenised with its saved vocabulary). Resolves with a
    /// `Float32Array` of `texts.length × numOutputs` class probabilities.
    #[wasm_bindgen(js_name = predictTexts)]
    pub fn predict_texts(&self, texts: JsValue) -> js_sys::Promise {
        let predictor = self.predictor.clone();
        future_to_promise(async move {
            let texts: Vec<String> = serde_wasm_bindgen::from_value(texts).map_err(|_| {
                js_error(KilnError::InvalidArgument(
                    "texts must be an array of strings".into(),
                ))
            })?;
            let out = predictor.predict_texts(&texts).await.map_err(js_error)?;
            Ok(js_sys::Float32Array::from(out.as_slice()).into())
        })
    }

    /// The portable bytes (the format `kiln models export` writes and `import` reads).
    pub fn export(&self) -> js_sys::Promise {
        let predictor = self.predictor.clone();
        future_to_promise(async move {
            let bytes = predictor.saved.to_bytes().map_err(js_error)?;
            Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
        })
    }
}
