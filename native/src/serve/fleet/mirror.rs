//! Copies a job's run directory to and from the object store when the store is not `DATA_DIR`
//! itself: each checkpoint (state.json last) and the metrics so far as soon as it is written,
//! the results at the end; and, when another worker takes a job over, its recorded checkpoint
//! back into a fresh local run directory. Keys: `jobs/<id>/…`, laid out like the run directory,
//! except that checkpoints are kept per lease attempt (`checkpoints/attempt-<n>/epoch-<e>/…`):
//! a worker that lost its lease while an upload was under way can only write under its own
//! attempt, which the registry no longer points at — never into the checkpoint a new holder
//! resumes from or writes.

use crate::run_dir::{HOLDOUT_CSV, RunDir};
use crate::serve::objects::Objects;
use kiln::{KilnError, Result};
use std::path::Path;

/// The files of one checkpoint, `state.json` last (a checkpoint counts once it is there).
const CHECKPOINT_FILES: [&str; 4] = ["model.bpk", "optimizer.bpk", "best.bpk", "state.json"];

/// A run directory's files that go with every checkpoint: the metrics so far, and the MLflow
/// run a tracked job logs to (so the worker that takes it over logs into the same run).
const RUN_FILES: [&str; 2] = ["metrics.jsonl", crate::tracking::RUN_ID_FILE];

/// The files of a finished run that are kept.
const RESULT_FILES: [&str; 4] = [
    "metrics.jsonl",
    HOLDOUT_CSV,
    "final_weights.bpk",
    "run.json",
];

/// The key of a file of job `id`'s run.
pub fn job_key(id: &str, file: &str) -> String {
    format!("jobs/{id}/{file}")
}

/// One checkpoint of a job in the object store, written by lease `attempt` after `epoch` epochs
/// (`step` batches) — also what the job's registry row records (`jobs.checkpoint`, JSON).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct StoredCheckpoint {
    /// Epochs done.
    pub epoch: usize,
    /// Batches done.
    pub step: u64,
    /// The lease attempt that wrote it.
    pub attempt: i64,
}

impl StoredCheckpoint {
    /// The key of one of its files.
    fn key(&self, id: &str, file: &str) -> String {
        job_key(id, &format!("{}/{file}", self.folder()))
    }

    fn folder(&self) -> String {
        format!(
            "checkpoints/attempt-{}/{}",
            self.attempt,
            RunDir::checkpoint_name(self.epoch)
        )
    }
}

fn read_local(path: &Path) -> Result<Option<Vec<u8>>> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(KilnError::io(format!("cannot read {}", path.display()), e)),
    }
}

/// Uploads `checkpoint` of the run in `root` and the metrics so far.
pub fn upload_checkpoint(
    objects: &Objects,
    id: &str,
    root: &Path,
    checkpoint: StoredCheckpoint,
) -> Result<()> {
    let dir = root
        .join("checkpoints")
        .join(RunDir::checkpoint_name(checkpoint.epoch));
    for file in RUN_FILES {
        if let Some(bytes) = read_local(&root.join(file))? {
            objects.wait(objects.put(&job_key(id, file), bytes.into()))?;
        }
    }
    for file in CHECKPOINT_FILES {
        if let Some(bytes) = read_local(&dir.join(file))? {
            objects.wait(objects.put(&checkpoint.key(id, file), bytes.into()))?;
        }
    }
    Ok(())
}

/// Removes every checkpoint object of job `id` but `kept`'s: the one recorded before it, and
/// what was left by uploads that failed part-way or by a worker that lost the job before it
/// could record an upload (best effort: a leftover costs space only, and the next call tries
/// again).
pub fn drop_checkpoints_but(objects: &Objects, id: &str, kept: StoredCheckpoint) {
    let folder = job_key(id, "checkpoints");
    let kept = format!("{}/", kept.folder().trim_start_matches("checkpoints/"));
    let Ok(keys) = objects.wait(objects.list(&folder)) else {
        return;
    };
    for key in keys.iter().filter(|key| !key.starts_with(&kept)) {
        let _ = objects.wait(objects.delete(&format!("{folder}/{key}")));
    }
}

/// Makes `root` hold exactly the recorded `checkpoint` (none: a fresh start) and the metrics
/// written up to it, from the object store.
pub fn restore(
    objects: &Objects,
    id: &str,
    root: &Path,
    checkpoint: Option<StoredCheckpoint>,
) -> Result<()> {
    let clear = |path: &Path| match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(KilnError::io(format!("cannot clear {}", path.display()), e)),
    };
    clear(&root.join("checkpoints"))?;
    let _ = std::fs::remove_file(root.join("metrics.jsonl"));
    let Some(checkpoint) = checkpoint else {
        return Ok(());
    };
    let epoch = checkpoint.epoch;
    let mut files = Vec::new();
    for file in CHECKPOINT_FILES {
        if let Some(bytes) = objects.wait(objects.get(&checkpoint.key(id, file)))? {
            files.push((file, bytes.to_vec()));
        }
    }
    if !files.iter().any(|(f, _)| *f == "state.json") {
        return Err(KilnError::Model(format!(
            "the recorded checkpoint (epoch {epoch}) of job {id} is not in the object store ({})",
            objects.describe()
        )));
    }
    std::fs::create_dir_all(root)
        .map_err(|e| KilnError::io(format!("cannot create {}", root.display()), e))?;
    for file in RUN_FILES {
        if let Some(bytes) = objects.wait(objects.get(&job_key(id, file)))? {
            kiln::store::write_atomic(&root.join(file), &bytes)?;
        }
    }
    RunDir::adopt_checkpoint(root, epoch, &files)
}

/// Uploads a finished run's results.
pub fn upload_results(objects: &Objects, id: &str, root: &Path) -> Result<()> {
    for file in RESULT_FILES {
        if let Some(bytes) = read_local(&root.join(file))? {
            objects.wait(objects.put(&job_key(id, file), bytes.into()))?;
        }
    }
    Ok(())
}

/// Uploads one file of a run (a prediction job's output).
pub fn upload_file(objects: &Objects, id: &str, root: &Path, file: &str) -> Result<()> {
    if let Some(bytes) = read_local(&root.join(file))? {
        objects.wait(objects.put(&job_key(id, file), bytes.into()))?;
    }
    Ok(())
}
