//! An in-memory model store (tests, Node's default).

use super::{ModelStore, check_model_id};
use crate::error::Result;
use async_trait::async_trait;
use std::collections::BTreeMap;
use std::sync::Mutex;

/// Models kept in memory for the life of the process.
#[derive(Debug, Default)]
pub struct MemoryStore {
    models: Mutex<BTreeMap<String, Vec<u8>>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut BTreeMap<String, Vec<u8>>) -> T) -> T {
        let mut guard = self
            .models
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        f(&mut guard)
    }
}

#[async_trait(?Send)]
impl ModelStore for MemoryStore {
    async fn put(&self, id: &str, bytes: Vec<u8>) -> Result<()> {
        check_model_id(id)?;
        self.with(|m| m.insert(id.to_string(), bytes));
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.with(|m| m.get(id).cloned()))
    }

    async fn list(&self) -> Result<Vec<String>> {
        Ok(self.with(|m| m.keys().cloned().collect()))
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        Ok(self.with(|m| m.remove(id).is_some()))
    }
}
