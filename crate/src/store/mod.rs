//! The model store: a byte-level key-value trait with memory and directory implementations.
//! The browser (IndexedDB) and Node implement the same trait at the edges.

mod dir;
mod memory;

pub use dir::{DirStore, write_atomic};
pub use memory::MemoryStore;

use crate::error::{KilnError, Result};
use crate::model::{ModelHeader, SavedModel};
use async_trait::async_trait;

/// Stores saved models as bytes under their model id.
#[async_trait(?Send)]
pub trait ModelStore {
    /// Stores (or replaces) a model.
    async fn put(&self, id: &str, bytes: Vec<u8>) -> Result<()>;
    /// The model's bytes, or `None` when there is no such model.
    async fn get(&self, id: &str) -> Result<Option<Vec<u8>>>;
    /// Every stored model id, sorted.
    async fn list(&self) -> Result<Vec<String>>;
    /// Removes a model; `false` when there was none.
    async fn delete(&self, id: &str) -> Result<bool>;
}

/// Model ids are GUIDs or simple names: letters, digits, `-` and `_` only, so they are safe
/// as file names and database keys.
pub fn check_model_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(KilnError::InvalidArgument(format!(
            "`{id}` is not a valid model id (letters, digits, `-` and `_`, at most 128)"
        )))
    }
}

/// Saves a model under its id.
pub async fn save_model(store: &dyn ModelStore, model: &SavedModel) -> Result<()> {
    check_model_id(&model.header.model_id)?;
    store.put(&model.header.model_id, model.to_bytes()?).await
}

/// Loads a model by id, with a clear error when it does not exist.
pub async fn load_model(store: &dyn ModelStore, id: &str) -> Result<SavedModel> {
    check_model_id(id)?;
    let bytes = store.get(id).await?.ok_or_else(|| {
        KilnError::Model(format!(
            "no model with id `{id}` in the model store (list them with `kiln models list` or \
             kiln.listModels())"
        ))
    })?;
    SavedModel::from_bytes(&bytes)
}

/// The headers of every stored model (models that fail to parse are skipped).
pub async fn list_models(store: &dyn ModelStore) -> Result<Vec<ModelHeader>> {
    let mut headers = Vec::new();
    for id in store.list().await? {
        if let Some(bytes) = store.get(&id).await?
            && let Ok(model) = SavedModel::from_bytes(&bytes)
        {
            headers.push(model.header);
        }
    }
    Ok(headers)
}
