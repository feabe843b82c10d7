//! The object store (`--objects URL`): models, datasets, checkpoints and job results as whole
//! objects, through the `object_store` crate — `file:///dir`, or `s3://bucket/prefix` (any
//! S3-compatible endpoint; credentials, region and endpoint from the usual `AWS_*` variables).
//! Without `--objects` the store is `DATA_DIR` itself, laid out as before: no copies are made.

use crate::s3::{s3_bucket, s3_location};
use bytes::Bytes;
use futures::TryStreamExt;
use kiln::{KilnError, Result};
use object_store::local::LocalFileSystem;
use object_store::path::Path as Key;
use object_store::prefix::PrefixStore;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tokio::runtime::Handle;

/// Where a server keeps its objects.
#[derive(Debug, Clone)]
pub struct Objects {
    store: Arc<dyn ObjectStore>,
    /// `None`: the store is `DATA_DIR` itself.
    url: Option<String>,
    data_dir: PathBuf,
    runtime: Handle,
}

fn store_error(what: &str, key: &str, e: object_store::Error) -> KilnError {
    KilnError::io(
        format!("object store: cannot {what} {key}"),
        std::io::Error::other(e.to_string()),
    )
}

impl Objects {
    /// The default: objects are files under `data_dir`.
    pub fn data_dir(data_dir: &Path, runtime: Handle) -> Result<Self> {
        let store = LocalFileSystem::new_with_prefix(data_dir).map_err(|e| {
            KilnError::io(
                format!("cannot use {}", data_dir.display()),
                std::io::Error::other(e.to_string()),
            )
        })?;
        Ok(Self {
            store: Arc::new(store),
            url: None,
            data_dir: data_dir.to_path_buf(),
            runtime,
        })
    }

    /// The store `--objects url` names.
    pub fn open(url: &str, data_dir: &Path, runtime: Handle) -> Result<Self> {
        let bad = |why: &str| {
            KilnError::InvalidArgument(format!(
                "--objects {url:?}: {why} (allowed: file:///absolute/dir or s3://bucket/prefix)"
            ))
        };
        let store: Arc<dyn ObjectStore> = if let Some(dir) = url.strip_prefix("file://") {
            if !dir.starts_with('/') {
                return Err(bad("a file:// URL needs an absolute directory"));
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| KilnError::io(format!("cannot create {dir}"), e))?;
            Arc::new(
                LocalFileSystem::new_with_prefix(dir)
                    .map_err(|e| bad(&e.to_string()))?
                    .with_automatic_cleanup(true),
            )
        } else if url.starts_with("s3://") {
            let (bucket, prefix) = s3_location(url).ok_or_else(|| bad("no bucket"))?;
            let s3 = s3_bucket(bucket).map_err(|e| bad(&e))?;
            if prefix.is_empty() {
                Arc::new(s3)
            } else {
                Arc::new(PrefixStore::new(s3, prefix))
            }
        } else {
            return Err(bad("unknown scheme"));
        };
        Ok(Self {
            store,
            url: Some(url.to_string()),
            data_dir: data_dir.to_path_buf(),
            runtime,
        })
    }

    /// The runtime its calls run on.
    pub fn runtime(&self) -> &Handle {
        &self.runtime
    }

    /// Whether objects live somewhere other than `DATA_DIR` (so run directories are copied).
    pub fn is_remote(&self) -> bool {
        self.url.is_some()
    }

    /// What to call the store in messages.
    pub fn describe(&self) -> String {
        match &self.url {
            Some(url) => url.clone(),
            None => self.data_dir.display().to_string(),
        }
    }

    fn key(key: &str) -> Result<Key> {
        Key::parse(key).map_err(|e| KilnError::Internal(format!("object key {key:?}: {e}")))
    }

    /// Stores a whole object (readers see the old one or the new one, never part of one).
    pub async fn put(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.store
            .put(&Self::key(key)?, PutPayload::from_bytes(bytes))
            .await
            .map_err(|e| store_error("write", key, e))?;
        Ok(())
    }

    /// Stores an object only if there is none under `key` yet; `false` when there was one (it
    /// is left as it is). Servers of a fleet agree through it on what is written first.
    pub async fn put_new(&self, key: &str, bytes: Bytes) -> Result<bool> {
        let options = object_store::PutOptions::from(object_store::PutMode::Create);
        match self
            .store
            .put_opts(&Self::key(key)?, PutPayload::from_bytes(bytes), options)
            .await
        {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(store_error("create", key, e)),
        }
    }

    /// An object's bytes, or `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<Bytes>> {
        match self.store.get(&Self::key(key)?).await {
            Ok(found) => Ok(Some(
                found
                    .bytes()
                    .await
                    .map_err(|e| store_error("read", key, e))?,
            )),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(store_error("read", key, e)),
        }
    }

    /// Removes an object (none there is fine).
    pub async fn delete(&self, key: &str) -> Result<()> {
        match self.store.delete(&Self::key(key)?).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(store_error("delete", key, e)),
        }
    }

    /// The keys under `prefix` (a folder), relative to it.
    pub async fn list(&self, prefix: &str) -> Result<Vec<String>> {
        let folder = Self::key(prefix)?;
        let metas: Vec<_> = self
            .store
            .list(Some(&folder))
            .try_collect()
            .await
            .map_err(|e| store_error("list", prefix, e))?;
        Ok(metas
            .into_iter()
            .filter_map(|m| {
                m.location.prefix_match(&folder).map(|parts| {
                    parts
                        .map(|p| p.as_ref().to_string())
                        .collect::<Vec<_>>()
                        .join("/")
                })
            })
            .collect())
    }

    /// Removes every object under `prefix`.
    pub async fn delete_all(&self, prefix: &str) -> Result<()> {
        for rest in self.list(prefix).await? {
            self.delete(&format!("{prefix}/{rest}")).await?;
        }
        Ok(())
    }

    /// Runs an object-store call from a training thread (outside the async runtime).
    pub fn wait<T>(&self, call: impl std::future::Future<Output = Result<T>>) -> Result<T> {
        self.runtime.block_on(call)
    }

    /// A local file with the object's bytes: the file itself in `DATA_DIR`, or a copy in
    /// `DATA_DIR/cache` (fetched once; used for objects that never change, like datasets).
    pub fn local_file(&self, key: &str) -> Result<PathBuf> {
        if !self.is_remote() {
            return Ok(self.data_dir.join(key));
        }
        let path = self.data_dir.join("cache").join(key);
        if !path.exists() {
            let bytes = self
                .wait(self.get(key))?
                .ok_or_else(|| KilnError::Data(format!("object store: {key} is missing")))?;
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| KilnError::io(format!("cannot create {}", parent.display()), e))?;
            }
            kiln::store::write_atomic(&path, &bytes)?;
        }
        Ok(path)
    }

    /// Forgets a cached copy (the object was deleted).
    pub fn drop_cached(&self, key: &str) {
        if self.is_remote() {
            let _ = std::fs::remove_file(self.data_dir.join("cache").join(key));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_uris_split_into_bucket_and_prefix() {
        assert_eq!(
            s3_location("s3://mlruns/1/abc/artifacts/"),
            Some(("mlruns", "1/abc/artifacts"))
        );
        assert_eq!(s3_location("s3://mlruns"), Some(("mlruns", "")));
        assert_eq!(s3_location("s3:///x"), None);
        assert_eq!(s3_location("file:///tmp/mlruns"), None);
    }
}
