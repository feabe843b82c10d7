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
/// half-written file behind (a link is followed to its file; a device, a pipe or `/dev/stdout`
/// is written in place). The temporary file has a unique name of its own in the same
/// directory (`.<name>.<uuid>.tmp`), so no other file is ever touched, and it is removed when
/// the write fails.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    match write_target(path) {
        Target::Stream => {
            use std::io::Write;
            return std::fs::OpenOptions::new()
                .append(true)
                .open(path)
                .and_then(|mut file| file.write_all(bytes))
                .map_err(|e| KilnError::io(format!("cannot write {}", path.display()), e));
        }
        Target::Through(real) => return write_atomic(&real, bytes),
        Target::Replace => {}
    }
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

/// How [`write_atomic`] writes to a path.
enum Target {
    /// A regular file or a new one: a temporary file renamed over it.
    Replace,
    /// A link to a regular file: the file it points to, replaced the same way (the link stays).
    Through(std::path::PathBuf),
    /// A device, a pipe, a socket, or a `/dev` or `/proc` name for one (`/dev/stdout`): written
    /// in place, appending, never replaced by a regular file.
    Stream,
}

fn write_target(path: &Path) -> Target {
    // A process's open files by number: `/dev/stdout` → `/proc/self/fd/1` and the like.
    let is_descriptor = |p: &Path| {
        p.starts_with("/dev/fd") || (p.starts_with("/proc") && p.to_string_lossy().contains("/fd/"))
    };
    let Ok(link) = std::fs::symlink_metadata(path) else {
        return Target::Replace;
    };
    if !link.file_type().is_symlink() {
        return if link.is_file() || link.is_dir() {
            Target::Replace // (a directory: the rename fails and says so)
        } else {
            Target::Stream
        };
    }
    let pointed = std::fs::read_link(path).unwrap_or_default();
    let regular = std::fs::metadata(path).is_ok_and(|m| m.is_file());
    match std::fs::canonicalize(path) {
        Ok(real) if regular && !is_descriptor(path) && !is_descriptor(&pointed) => {
            Target::Through(real)
        }
        _ => Target::Stream,
    }
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

    #[cfg(unix)]
    #[test]
    fn special_files_and_links_are_written_in_place_not_replaced() {
        let dir = std::env::temp_dir().join(format!("kiln-special-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).expect("dir");
        // A link to a regular file: the file gets the bytes, the link stays a link.
        let real = dir.join("real.csv");
        std::fs::write(&real, b"old").unwrap();
        let link = dir.join("link.csv");
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&real).unwrap(), b"new");
        // A character device stays one.
        write_atomic(Path::new("/dev/null"), b"gone").unwrap();
        assert!(!std::fs::metadata("/dev/null").unwrap().is_file());
        // A FIFO is written, not replaced by a regular file.
        let fifo = dir.join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status();
        if made.is_ok_and(|s| s.success()) {
            let reader = {
                let fifo = fifo.clone();
                std::thread::spawn(move || std::fs::read(fifo).unwrap())
            };
            write_atomic(&fifo, b"through the pipe").unwrap();
            assert_eq!(reader.join().unwrap(), b"through the pipe");
            assert!(!std::fs::symlink_metadata(&fifo).unwrap().is_file());
        }
        // A link to a descriptor (as /dev/stdout is) is written in place, never renamed over.
        let out = dir.join("captured");
        std::fs::write(&out, b"before;").unwrap();
        let stdout_like = dir.join("stdout");
        let file = std::fs::OpenOptions::new().append(true).open(&out).unwrap();
        use std::os::fd::AsRawFd;
        let fd_link = format!("/proc/self/fd/{}", file.as_raw_fd());
        std::os::unix::fs::symlink(&fd_link, &stdout_like).unwrap();
        write_atomic(&stdout_like, b"after").unwrap();
        assert!(
            std::fs::symlink_metadata(&stdout_like)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"before;after");
        drop(file);
        let _ = std::fs::remove_dir_all(&dir);
    }

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
