//! Conversions between JS values and Kiln types, and Kiln errors as JS `Error`s.

use crate::config::Config;
use crate::data::{Loaded, dataset_from_labels, parse_table};
use crate::error::KilnError;
use serde::Serialize;
use wasm_bindgen::prelude::*;

/// A Kiln error as a JS `Error` whose message says what to do.
pub fn js_error(error: KilnError) -> JsValue {
    js_sys::Error::new(&error.to_string()).into()
}

/// A plain JS object (maps become objects) from a serialisable value.
pub fn to_js<T: Serialize>(value: &T) -> Result<JsValue, JsValue> {
    value
        .serialize(&serde_wasm_bindgen::Serializer::json_compatible())
        .map_err(|e| js_sys::Error::new(&format!("cannot convert a result to JS: {e}")).into())
}

/// A config from a JS object (same keys as the YAML), a YAML/JSON string, or `undefined`
/// (the embedded default), refused when it asks for what only native runs do (MLflow, ...).
pub fn config_from_js(value: &JsValue) -> Result<Config, KilnError> {
    let config = parse_config_from_js(value)?;
    config.check_runs_in_wasm()?;
    Ok(config)
}

fn parse_config_from_js(value: &JsValue) -> Result<Config, KilnError> {
    if value.is_undefined() || value.is_null() {
        return Config::embedded_default();
    }
    if let Some(text) = value.as_string() {
        return Config::from_str_auto(&text);
    }
    if !value.is_object() || value.is_function() {
        return Err(KilnError::Config(
            "the config must be a plain object, a YAML/JSON string or undefined".into(),
        ));
    }
    // Through JSON text, so the same size and depth limits apply as to a config file (and a
    // cyclic or exotic object is an error, not a crash).
    let text = js_sys::JSON::stringify(value)
        .ok()
        .and_then(|t| t.as_string())
        .ok_or_else(|| {
            KilnError::Config(
                "the config must be a plain object that JSON.stringify accepts (no cycles, \
                 BigInts or functions)"
                    .into(),
            )
        })?;
    Config::from_json_str(&text)
}

fn get(object: &JsValue, key: &str) -> JsValue {
    js_sys::Reflect::get(object, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// `data.features`: a `Float32Array`, or a `Uint8Array` / `Uint8ClampedArray` (image bytes, e.g.
/// canvas pixels) read as its values 0–255, so a page can hand over pixels without building a
/// float copy on its main thread.
fn features_from_js(features: &JsValue) -> Result<Vec<f32>, KilnError> {
    if features.is_instance_of::<js_sys::Float32Array>() {
        return Ok(js_sys::Float32Array::from(features.clone()).to_vec());
    }
    let bytes = if features.is_instance_of::<js_sys::Uint8Array>() {
        js_sys::Uint8Array::from(features.clone()).to_vec()
    } else if features.is_instance_of::<js_sys::Uint8ClampedArray>() {
        js_sys::Uint8ClampedArray::from(features.clone()).to_vec()
    } else {
        return Err(KilnError::InvalidArgument(
            "data must be { features: Float32Array | Uint8Array | Uint8ClampedArray, \
             labels: Int32Array | Float32Array, shape: [samples, ...sampleShape] } or { csv: string }"
                .into(),
        ));
    };
    Ok(bytes.into_iter().map(f32::from).collect())
}

/// The caller's data: `{ features, labels, shape }` or `{ csv }`; `None` when omitted.
pub fn data_from_js(value: &JsValue, config: &Config) -> Result<Option<Loaded>, KilnError> {
    if value.is_undefined() || value.is_null() {
        return Ok(None);
    }
    let csv = get(value, "csv");
    if let Some(text) = csv.as_string() {
        let set = parse_table(&text, config.data.header, "data.csv")?
            .into_dataset(config.data.label_column.as_ref(), config.task)?;
        return Ok(Some(Loaded {
            samples: set,
            official_test: None,
            texts: None,
        }));
    }
    let texts = get(value, "texts");
    if !texts.is_undefined() {
        return texts_from_js(&texts, &get(value, "labels")).map(Some);
    }
    let features = features_from_js(&get(value, "features"))?;
    let shape: Vec<usize> = serde_wasm_bindgen::from_value(get(value, "shape")).map_err(|_| {
        KilnError::InvalidArgument(
            "data.shape must be an array of positive integers, e.g. [1797, 64] or [60000, 1, 28, 28]"
                .into(),
        )
    })?;
    let Some((&rows, sample_shape)) = shape.split_first() else {
        return Err(KilnError::InvalidArgument(
            "data.shape must not be empty".into(),
        ));
    };
    crate::limits::checked_elements(&shape, "data.shape")?;
    let labels = get(value, "labels");
    let labels: Vec<f64> = if labels.is_instance_of::<js_sys::Int32Array>() {
        js_sys::Int32Array::from(labels)
            .to_vec()
            .into_iter()
            .map(f64::from)
            .collect()
    } else if labels.is_instance_of::<js_sys::Float32Array>() {
        js_sys::Float32Array::from(labels)
            .to_vec()
            .into_iter()
            .map(f64::from)
            .collect()
    } else {
        return Err(KilnError::InvalidArgument(
            "data.labels must be an Int32Array (classes) or a Float32Array".into(),
        ));
    };
    if labels.len() != rows {
        return Err(KilnError::InvalidArgument(format!(
            "data.labels has {} entries but data.shape[0] says {rows} samples",
            labels.len()
        )));
    }
    let samples = dataset_from_labels(
        features,
        sample_shape.to_vec(),
        &labels,
        config.task,
        &|i| format!("data.labels[{i}]"),
    )?;
    Ok(Some(Loaded {
        samples,
        official_test: None,
        texts: None,
    }))
}

/// `{ texts: string[], labels: string[] }`: labelled texts, tokenised as `config.data.text` says.
fn texts_from_js(texts: &JsValue, labels: &JsValue) -> Result<Loaded, KilnError> {
    let strings = |value: &JsValue, field: &str| -> Result<Vec<String>, KilnError> {
        serde_wasm_bindgen::from_value(value.clone()).map_err(|_| {
            KilnError::InvalidArgument(format!(
                "data.{field} must be an array of strings (data is {{ texts, labels }} for texts)"
            ))
        })
    };
    let texts = strings(texts, "texts")?;
    let labels = strings(labels, "labels")?;
    Loaded::from_texts(crate::data::LabelledTexts::new(texts, labels)?)
}
