//! A model store in a directory: one `<id>.kiln` file per model, written atomically.

use super::{ModelId, ModelStore, valid_ids};
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

    /// The file a model id maps to (always inside the store's directory).
    pub fn path_of(&self, id: &ModelId) -> PathBuf {
        self.root.join(format!("{id}.{EXT}"))
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename, so a crash never leaves a
/// half-written file behind. The temporary file has a unique name of its own in the same
/// directory (`.<name>.<uuid>.tmp`), so no other file is ever touched, and it is removed when
/// the write fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::fs::create_dir_all(parent)
        .map_err(|e| KilnError::io(format!("cannot create {}", parent.display()), e))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.{}.tmp", uuid::Uuid::new_v4().simple()));
    let written = write_synced(&tmp, bytes)
        .map_err(|e| KilnError::io(format!("cannot write {}", tmp.display()), e))
        .and_then(|()| {
            std::fs::rename(&tmp, path)
                .map_err(|e| KilnError::io(format!("cannot move {} into place", path.display()), e))
        });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

fn write_synced(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

#[async_trait(?Send)]
impl ModelStore for DirStore {
    async fn put(&self, id: &ModelId, bytes: Vec<u8>) -> Result<()> {
        write_atomic(&self.path_of(id), &bytes)
    }

    async fn get(&self, id: &ModelId) -> Result<Option<Vec<u8>>> {
        match std::fs::read(self.path_of(id)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(KilnError::io(format!("cannot read model `{id}`"), e)),
        }
    }

    async fn list(&self) -> Result<Vec<ModelId>> {
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
        let names = entries.filter_map(|entry| entry.ok()).filter_map(|entry| {
            let path = entry.path();
            (path.extension()? == EXT).then(|| path.file_stem()?.to_str().map(str::to_string))?
        });
        Ok(valid_ids(names))
    }

    async fn delete(&self, id: &ModelId) -> Result<bool> {
        match std::fs::remove_file(self.path_of(id)) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(KilnError::io(format!("cannot delete model `{id}`"), e)),
        }
    }

    async fn check_writable(&self) -> Result<()> {
        let probe = self.root.join(format!(
            ".write-check.{}.tmp",
            uuid::Uuid::new_v4().simple()
        ));
        let result =
            std::fs::create_dir_all(&self.root).and_then(|()| write_synced(&probe, &[0u8; 4096]));
        let _ = std::fs::remove_file(&probe);
        result.map_err(|e| {
            KilnError::io(
                format!(
                    "the model store {} cannot take a model (checked before training)",
                    self.root.display()
                ),
                e,
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_leave_other_tmp_files_alone() {
        let dir = std::env::temp_dir().join(format!("kiln-atomic-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        let unrelated = dir.join("report.tmp");
        std::fs::write(&unrelated, b"keep me").expect("write");
        write_atomic(&dir.join("report.kiln"), b"model").expect("atomic write");
        assert_eq!(std::fs::read(&unrelated).expect("still there"), b"keep me");
        assert_eq!(
            std::fs::read(dir.join("report.kiln")).expect("written"),
            b"model"
        );
        let leftovers = std::fs::read_dir(&dir).expect("list").count();
        assert_eq!(leftovers, 2, "no temporary file left behind");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
