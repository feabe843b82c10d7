//! A model store in a directory: one `<id>.kiln` file per model, written atomically.

use super::{ModelStore, check_model_id};
use crate::error::{KilnError, Result};
use async_trait::async_trait;
use std::path::{Path, PathBuf};

/// File extension of stored models.
const EXT: &str = "kiln";

/// Models stored as files in a directory.
#[derive(Debug, Clone)]
pub struct DirStore {
    root: PathBuf,
}

impl DirStore {
    /// A store rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// The directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file a model id maps to.
    pub fn path_of(&self, id: &str) -> PathBuf {
        self.root.join(format!("{id}.{EXT}"))
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash never leaves a
/// half-written file behind.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| KilnError::io(format!("cannot create {}", parent.display()), e))?;
    }
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes)
        .map_err(|e| KilnError::io(format!("cannot write {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path)
        .map_err(|e| KilnError::io(format!("cannot move {} into place", path.display()), e))
}

#[async_trait(?Send)]
impl ModelStore for DirStore {
    async fn put(&self, id: &str, bytes: Vec<u8>) -> Result<()> {
        check_model_id(id)?;
        write_atomic(&self.path_of(id), &bytes)
    }

    async fn get(&self, id: &str) -> Result<Option<Vec<u8>>> {
        check_model_id(id)?;
        match std::fs::read(self.path_of(id)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(KilnError::io(format!("cannot read model `{id}`"), e)),
        }
    }

    async fn list(&self) -> Result<Vec<String>> {
        let entries = match std::fs::read_dir(&self.root) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(KilnError::io(
                    format!("cannot list {}", self.root.display()),
                    e,
                ));
            }
        };
        let mut ids: Vec<String> = entries
            .filter_map(|entry| entry.ok())
            .filter_map(|entry| {
                let path = entry.path();
                (path.extension()? == EXT)
                    .then(|| path.file_stem()?.to_str().map(str::to_string))?
            })
            .collect();
        ids.sort();
        Ok(ids)
    }

    async fn delete(&self, id: &str) -> Result<bool> {
        check_model_id(id)?;
        match std::fs::remove_file(self.path_of(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(KilnError::io(format!("cannot delete model `{id}`"), e)),
        }
    }
}
