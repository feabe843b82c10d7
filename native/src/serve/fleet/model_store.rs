//! The server's model store: the directory store `DATA_DIR/models` by default, or objects
//! `models/<id>.kiln` in the `--objects` store, behind the engine's `ModelStore` trait.

use crate::serve::objects::Objects;
use async_trait::async_trait;
use kiln::store::{DirStore, ModelId, ModelStore, valid_ids};
use kiln::{KilnError, Result};

/// Where the server keeps models.
#[derive(Debug, Clone)]
pub enum ServerModels {
    /// `DATA_DIR/models`, one synced file per model.
    Dir(DirStore),
    /// The shared object store.
    Objects(Objects),
}

const PREFIX: &str = "models";
const EXT: &str = ".kiln";

fn key(id: &ModelId) -> String {
    format!("{PREFIX}/{id}{EXT}")
}

/// Runs an object-store call on the server's runtime, from whatever executor awaits it.
async fn on_runtime<T: Send + 'static>(
    objects: &Objects,
    call: impl FnOnce(Objects) -> futures::future::BoxFuture<'static, Result<T>>,
) -> Result<T> {
    let handle = objects.runtime().spawn(call(objects.clone()));
    handle
        .await
        .map_err(|e| KilnError::Internal(format!("object store task: {e}")))?
}

#[async_trait(?Send)]
impl ModelStore for ServerModels {
    async fn put(&self, id: &ModelId, bytes: Vec<u8>) -> Result<()> {
        match self {
            Self::Dir(dir) => dir.put(id, bytes).await,
            Self::Objects(objects) => {
                let key = key(id);
                on_runtime(objects, move |o| {
                    Box::pin(async move { o.put(&key, bytes.into()).await })
                })
                .await
            }
        }
    }

    async fn get(&self, id: &ModelId) -> Result<Option<Vec<u8>>> {
        match self {
            Self::Dir(dir) => dir.get(id).await,
            Self::Objects(objects) => {
                let key = key(id);
                let found =
                    on_runtime(objects, move |o| Box::pin(async move { o.get(&key).await }))
                        .await?;
                Ok(found.map(|b| b.to_vec()))
            }
        }
    }

    async fn list(&self) -> Result<Vec<ModelId>> {
        match self {
            Self::Dir(dir) => dir.list().await,
            Self::Objects(objects) => {
                let names =
                    on_runtime(objects, |o| Box::pin(async move { o.list(PREFIX).await })).await?;
                Ok(valid_ids(
                    names
                        .into_iter()
                        .filter_map(|n| n.strip_suffix(EXT).map(str::to_string)),
                ))
            }
        }
    }

    async fn delete(&self, id: &ModelId) -> Result<bool> {
        match self {
            Self::Dir(dir) => dir.delete(id).await,
            Self::Objects(objects) => {
                let key = key(id);
                on_runtime(objects, move |o| {
                    Box::pin(async move {
                        let existed = o.get(&key).await?.is_some();
                        o.delete(&key).await?;
                        Ok(existed)
                    })
                })
                .await
            }
        }
    }

    async fn check_writable(&self) -> Result<()> {
        match self {
            Self::Dir(dir) => dir.check_writable().await,
            Self::Objects(_) => Ok(()),
        }
    }
}
