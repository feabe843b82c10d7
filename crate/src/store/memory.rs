//! An in-memory model store (tests, Node's default).

use super::{ModelId, ModelStore};
use crate::error::Result;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Models kept in memory for the life of the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    models: Mutex<BTreeMap<ModelId, Vec<u8>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<ModelId, Vec<u8>>) -> T) -> T {
        let mut guard = self
            .models
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        f(&mut guard)
    }
}

#[async_trait(?Send)]
impl ModelStore for MemoryStore {
    async fn put(&self, id: &ModelId, bytes: Vec<u8>) -> Result<()> {
        self.with(|m| m.insert(id.clone(), bytes));
        Ok(())
    }

    async fn get(&self, id: &ModelId) -> Result<Option<Vec<u8>>> {
        Ok(self.with(|m| m.get(id).cloned()))
    }

    async fn list(&self) -> Result<Vec<ModelId>> {
        Ok(self.with(|m| m.keys().cloned().collect()))
    }

    async fn delete(&self, id: &ModelId) -> Result<bool> {
        Ok(self.with(|m| m.remove(id).is_some()))
    }
}
