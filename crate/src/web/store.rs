//! A model store implemented in JavaScript (IndexedDB in browsers, memory or files in Node):
//! an object with async `get`, `put`, `list` and `delete`.

use crate::error::{KilnError, Result};
use crate::store::{ModelId, ModelStore, valid_ids};
use async_trait::async_trait;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

/// Wraps a JS store object.
pub struct JsStore {
    object: JsValue,
}

impl JsStore {
    /// Checks that `object` has the four methods.
    pub fn new(object: JsValue) -> Result<Self> {
        for name in ["get", "put", "list", "delete"] {
            let method = js_sys::Reflect::get(&object, &JsValue::from_str(name))
                .unwrap_or(JsValue::UNDEFINED);
            if !method.is_function() {
                return Err(KilnError::InvalidArgument(format!(
                    "the model store must have async get/put/list/delete methods; `{name}` is missing"
                )));
            }
        }
        Ok(Self { object })
    }

    async fn call(&self, name: &str, args: &[JsValue]) -> Result<JsValue> {
        let method: js_sys::Function = js_sys::Reflect::get(&self.object, &JsValue::from_str(name))
            .map_err(|_| KilnError::Internal(format!("store.{name} vanished")))?
            .into();
        let array: js_sys::Array = args.iter().collect();
        let result = method
            .apply(&self.object, &array)
            .map_err(|e| store_error(name, &e))?;
        JsFuture::from(js_sys::Promise::resolve(&result))
            .await
            .map_err(|e| store_error(name, &e))
    }
}

fn store_error(name: &str, error: &JsValue) -> KilnError {
    let message = error
        .dyn_ref::<js_sys::Error>()
        .map(|e| String::from(e.message()))
        .or_else(|| error.as_string())
        .unwrap_or_else(|| format!("{error:?}"));
    KilnError::Io {
        context: format!("model store `{name}` failed"),
        source: std::io::Error::other(message),
    }
}

#[async_trait(?Send)]
impl ModelStore for JsStore {
    async fn put(&self, id: &ModelId, bytes: Vec<u8>) -> Result<()> {
        let array = js_sys::Uint8Array::from(bytes.as_slice());
        self.call("put", &[JsValue::from_str(id.as_str()), array.into()])
            .await?;
        Ok(())
    }

    async fn get(&self, id: &ModelId) -> Result<Option<Vec<u8>>> {
        let value = self.call("get", &[JsValue::from_str(id.as_str())]).await?;
        if value.is_undefined() || value.is_null() {
            return Ok(None);
        }
        if value.is_instance_of::<js_sys::Uint8Array>()
            || value.is_instance_of::<js_sys::ArrayBuffer>()
        {
            return Ok(Some(js_sys::Uint8Array::new(&value).to_vec()));
        }
        Err(KilnError::Model(format!(
            "the store returned something other than bytes for `{id}`"
        )))
    }

    async fn list(&self) -> Result<Vec<ModelId>> {
        let value = self.call("list", &[]).await?;
        let names: Vec<String> = js_sys::Array::from(&value)
            .iter()
            .filter_map(|v| v.as_string())
            .collect();
        Ok(valid_ids(names))
    }

    async fn delete(&self, id: &ModelId) -> Result<bool> {
        let value = self
            .call("delete", &[JsValue::from_str(id.as_str())])
            .await?;
        Ok(value.as_bool().unwrap_or(false))
    }
}
