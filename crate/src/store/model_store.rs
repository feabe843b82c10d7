//! The `ModelStore` trait and what every store does the same way: save, load, import, list.

use super::ModelId;
use crate::error::{KilnError, Result};
use crate::model::{ModelHeader, SavedModel};
use async_trait::async_trait;

/// Stores saved models as bytes under their model id. Ids are [`ModelId`]s, checked once
/// where they come in, so no implementation can be handed a path.
#[async_trait(?Send)]
pub trait ModelStore {
    /// Stores (or replaces) a model.
    async fn put(&self, id: &ModelId, bytes: Vec<u8>) -> Result<()>;
    /// The model's bytes, or `None` when there is no such model.
    async fn get(&self, id: &ModelId) -> Result<Option<Vec<u8>>>;
    /// Every stored model id, sorted (entries that are not valid ids are skipped).
    async fn list(&self) -> Result<Vec<ModelId>>;
    /// Removes a model; `false` when there was none.
    async fn delete(&self, id: &ModelId) -> Result<bool>;
    /// Fails when the store cannot take a model now (read-only, full, missing permissions), so
    /// a job can refuse to start instead of failing after hours of training.
    async fn check_writable(&self) -> Result<()> {
        Ok(())
    }
}

/// Parses the ids a store listed, sorted, dropping names that are not valid ids.
pub fn valid_ids(names: impl IntoIterator<Item = String>) -> Vec<ModelId> {
    let mut ids: Vec<ModelId> = names
        .into_iter()
        .filter_map(|name| ModelId::parse(&name).ok())
        .collect();
    ids.sort();
    ids
}

/// Saves a model under its id.
pub async fn save_model(store: &dyn ModelStore, model: &SavedModel) -> Result<()> {
    let id = ModelId::parse(&model.header.model_id)?;
    store.put(&id, model.to_bytes()?).await
}

/// Loads a model by id, with a clear error when it does not exist.
pub async fn load_model(store: &dyn ModelStore, id: &str) -> Result<SavedModel> {
    let id = ModelId::parse(id)?;
    let bytes = store.get(&id).await?.ok_or_else(|| {
        KilnError::Model(format!(
            "no model with id `{id}` in the model store (list them with `kiln models list` or \
             kiln.listModels())"
        ))
    })?;
    SavedModel::from_bytes(&bytes)
}

/// Checks exported model bytes (header, architecture, weights) and adds them to the store
/// under the id in their header. An id already in the store is refused unless `force`.
pub async fn import_into(
    store: &dyn ModelStore,
    bytes: Vec<u8>,
    force: bool,
    device: &burn::tensor::Device,
) -> Result<ModelId> {
    let saved = SavedModel::from_bytes(&bytes)?;
    let id = ModelId::parse(&saved.header.model_id)
        .map_err(|e| KilnError::Model(format!("the model's header holds a bad id: {e}")))?;
    saved.load_network(device)?;
    if !force && store.get(&id).await?.is_some() {
        return Err(KilnError::InvalidArgument(format!(
            "a model with id `{id}` is already in the store: delete it first, or import with \
             force (--force, importModel(bytes, {{ force: true }}))"
        )));
    }
    store.put(&id, bytes).await?;
    Ok(id)
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
