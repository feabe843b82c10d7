//! The run directory: resolved config, metrics.jsonl, checkpoints (top-k), best model, run.json.

use kiln::jobs::JobOutput;
use kiln::store::DirStore;
use kiln::train::{
    CheckpointData, CheckpointSink, RankedCheckpoint, ResumePoint, TrainEvent, TrainerState,
    retain_top_k,
};
use kiln::train::{MetricPoint, points_of};
use kiln::{Config, KilnError, Result, TrainRunInfo};

use std::io::Write;
use std::path::{Path, PathBuf};

/// Writes a file atomically.
fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    kiln::store::write_atomic(path, bytes)
}

/// SHA-256 of a checkpoint file, in hex.
fn checksum(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn read(path: &Path) -> Result<Vec<u8>> {
    kiln::limits::read_file_limited(path, "run file")
}

/// The test split's predictions by the saved model.
pub const HOLDOUT_CSV: &str = "holdout.csv";

/// A job's result as `run.json` holds it (and `kiln train --json` prints it).
pub fn run_json(info: &TrainRunInfo) -> Result<String> {
    serde_json::to_string_pretty(info)
        .map_err(|e| KilnError::Internal(format!("cannot encode the result: {e}")))
}

/// The finished run's TrainRunInfo (a run counts as finished once it has one).
pub const RUN_JSON: &str = "run.json";

/// A run directory.
pub struct RunDir {
    /// Its path.
    pub root: PathBuf,
    keep_top_k: usize,
}

/// `metrics.jsonl`: one line per logged step and per evaluation, appended across resumes.
pub struct MetricsLog {
    file: std::fs::File,
}

impl MetricsLog {
    /// Opens `metrics.jsonl` in `root` for appending. A run resumed from the checkpoint at step
    /// `resumed_at` first drops the lines logged after it (that part of the run is trained
    /// again), so every step appears once.
    pub fn open(root: &Path, resumed_at: Option<u64>) -> Result<Self> {
        let path = root.join("metrics.jsonl");
        if let Some(step) = resumed_at
            && path.exists()
        {
            let text = String::from_utf8_lossy(&read(&path)?).into_owned();
            let kept: String = text
                .lines()
                .filter(|line| !logged_after(line, step))
                .map(|line| format!("{line}\n"))
                .collect();
            if kept.len() != text.len() {
                write(&path, kept.as_bytes())?;
            }
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| KilnError::io(format!("cannot open {}", path.display()), e))?;
        Ok(Self { file })
    }

    /// Appends an event (progress and evaluations only), with the time it was logged.
    pub fn log(&mut self, event: &TrainEvent) -> Result<()> {
        if matches!(event, TrainEvent::Progress(_) | TrainEvent::Evaluated(_)) {
            let mut line = serde_json::to_value(event)
                .map_err(|e| KilnError::Internal(format!("cannot encode event: {e}")))?;
            if let serde_json::Value::Object(fields) = &mut line {
                fields.insert(LOGGED_AT_KEY.into(), kiln::jobs::now_unix_ms().into());
            }
            writeln!(self.file, "{line}")
                .map_err(|e| KilnError::io("cannot append to metrics.jsonl", e))?;
        }
        Ok(())
    }
}

/// The key of a `metrics.jsonl` line that holds when it was logged (ms since the Unix epoch).
pub const LOGGED_AT_KEY: &str = "loggedAtMs";

/// A metric point as `metrics.jsonl` holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct LoggedPoint {
    /// The series, step and value.
    pub point: MetricPoint,
    /// When it was logged (ms since the Unix epoch); `None` on lines of runs from before Kiln
    /// recorded it.
    pub logged_at_ms: Option<i64>,
}

/// The metric points `RUN_DIR/metrics.jsonl` holds, in the order logged, as trackers log them
/// ([`points_of`] of each line). An unreadable line is an error naming the file and the line.
pub fn logged_points(dir: &Path) -> Result<Vec<LoggedPoint>> {
    let path = dir.join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).map_err(|e| {
        KilnError::io(
            format!(
                "cannot read {} (is {} a run directory?)",
                path.display(),
                dir.display()
            ),
            e,
        )
    })?;
    let mut points = Vec::new();
    for (index, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let not_a_metrics_line = |e: serde_json::Error| {
            KilnError::InvalidArgument(format!(
                "{} line {}: not a metrics line ({e})",
                path.display(),
                index + 1
            ))
        };
        let value: serde_json::Value = serde_json::from_str(line).map_err(not_a_metrics_line)?;
        let logged_at_ms = value.get(LOGGED_AT_KEY).and_then(serde_json::Value::as_i64);
        let event: TrainEvent = serde_json::from_value(value).map_err(not_a_metrics_line)?;
        points.extend(points_of(&event).into_iter().map(|point| LoggedPoint {
            point,
            logged_at_ms,
        }));
    }
    Ok(points)
}

/// Whether a metrics line was logged after step `step` (an unreadable line is kept).
fn logged_after(line: &str, step: u64) -> bool {
    serde_json::from_str::<serde_json::Value>(line)
        .ok()
        .and_then(|v| v.get("step").and_then(serde_json::Value::as_u64))
        .is_some_and(|s| s > step)
}

impl RunDir {
    /// Creates (or reopens, when resuming) a run directory and writes the resolved config.
    pub fn open(root: PathBuf, config: &Config, keep_top_k: usize) -> Result<Self> {
        std::fs::create_dir_all(root.join("checkpoints"))
            .map_err(|e| KilnError::io(format!("cannot create {}", root.display()), e))?;
        let yaml = config.to_yaml()?;
        write(&root.join("config.yaml"), yaml.as_bytes())?;
        Ok(Self { root, keep_top_k })
    }

    /// The config a run was started with.
    pub fn load_config(root: &Path) -> Result<Config> {
        let path = root.join("config.yaml");
        if !path.exists() {
            return Err(KilnError::InvalidArgument(format!(
                "{} is not a Kiln run directory (no config.yaml)",
                root.display()
            )));
        }
        Config::from_file(&path)
    }

    fn index_path(&self) -> PathBuf {
        self.root.join("checkpoints").join("index.json")
    }

    fn index(root: &Path) -> Result<Vec<RankedCheckpoint>> {
        let path = root.join("checkpoints").join("index.json");
        if !path.exists() {
            return Ok(Vec::new());
        }
        serde_json::from_slice(&read(&path)?)
            .map_err(|e| KilnError::Model(format!("{} is corrupt: {e}", path.display())))
    }

    /// The newest intact checkpoint of the run in `root`, for a run of at most `max_epochs`
    /// epochs. A checkpoint whose files do not match their checksums, whose state does not
    /// parse or does not fit the run, or whose index entry names anything but its own
    /// directory is skipped for the one before it, with a warning in the returned point.
    /// Messages name checkpoints, never paths, so a server can show them.
    pub fn latest_checkpoint(root: &Path, max_epochs: usize) -> Result<ResumePoint> {
        let mut index = Self::index(root)?;
        if index.is_empty() {
            return Err(KilnError::InvalidArgument(format!(
                "{} has no checkpoint to resume from (checkpoint.every_epochs may be 0, or the \
                 run stopped before its first checkpoint)",
                root.display()
            )));
        }
        index.sort_by_key(|e| std::cmp::Reverse(e.epoch));
        let mut warnings = Vec::new();
        for entry in &index {
            match Self::load_checkpoint(root, entry, max_epochs) {
                Ok(mut point) => {
                    point.warnings = warnings;
                    return Ok(point);
                }
                Err(why) => warnings.push(format!(
                    "the checkpoint after epoch {} is unusable ({why}); trying an older one",
                    entry.epoch
                )),
            }
        }
        Err(KilnError::Model(format!(
            "no intact checkpoint to resume from: {}",
            warnings.join("; ")
        )))
    }

    /// One checkpoint, checked: its directory name, its files' checksums and its state.
    fn load_checkpoint(
        root: &Path,
        entry: &RankedCheckpoint,
        max_epochs: usize,
    ) -> std::result::Result<ResumePoint, String> {
        if entry.dir != Self::checkpoint_name(entry.epoch) {
            return Err(format!(
                "its index entry names {:?}, not its own directory",
                kiln::error::cut_short(&entry.dir)
            ));
        }
        if entry.epoch > max_epochs {
            return Err(format!(
                "it is after epoch {}, past the run's {max_epochs} epochs",
                entry.epoch
            ));
        }
        let dir = root.join("checkpoints").join(&entry.dir);
        let file = |name: &str| -> std::result::Result<Vec<u8>, String> {
            let bytes = read(&dir.join(name)).map_err(|_| format!("{name} cannot be read"))?;
            match entry.checksums.get(name) {
                Some(sum) if *sum != checksum(&bytes) => {
                    Err(format!("{name} does not match its checksum"))
                }
                _ => Ok(bytes),
            }
        };
        let state: TrainerState = serde_json::from_slice(&file("state.json")?)
            .map_err(|e| format!("state.json is corrupt: {e}"))?;
        if state.epochs_done != entry.epoch {
            return Err(format!(
                "state.json says {} epochs, its index entry {}",
                state.epochs_done, entry.epoch
            ));
        }
        let best = dir.join("best.bpk");
        Ok(ResumePoint {
            state,
            model_weights: file("model.bpk")?,
            optimizer: file("optimizer.bpk")?,
            best_weights: if best.exists() {
                Some(file("best.bpk")?)
            } else {
                None
            },
            warnings: Vec::new(),
        })
    }

    /// Writes a finished job's files to the run in `root`: best model, final weights, holdout
    /// predictions, and run.json last (a run counts as finished once it has one).
    pub fn write_results(root: &Path, output: &JobOutput) -> Result<()> {
        write(&Self::best_model_path_in(root), &output.model.to_bytes()?)?;
        write(&root.join("final_weights.bpk"), &output.final_weights)?;
        if let Some(csv) = &output.holdout_csv {
            write(&root.join(HOLDOUT_CSV), csv.as_bytes())?;
        }
        write(&root.join(RUN_JSON), run_json(&output.info)?.as_bytes())
    }

    /// The directory name of the checkpoint after `epoch` epochs.
    pub fn checkpoint_name(epoch: usize) -> String {
        format!("epoch-{epoch:04}")
    }

    /// Makes `files` (name, bytes) the run's only checkpoint, after `epoch` epochs (a run taken
    /// over from another machine).
    pub fn adopt_checkpoint(root: &Path, epoch: usize, files: &[(&str, Vec<u8>)]) -> Result<()> {
        let name = Self::checkpoint_name(epoch);
        let dir = root.join("checkpoints").join(&name);
        for (file, bytes) in files {
            write(&dir.join(file), bytes)?;
        }
        let index = vec![RankedCheckpoint {
            dir: name,
            epoch,
            score: None,
            checksums: files
                .iter()
                .map(|(file, bytes)| (file.to_string(), checksum(bytes)))
                .collect(),
        }];
        let json = serde_json::to_vec_pretty(&index)
            .map_err(|e| KilnError::Internal(format!("cannot encode index: {e}")))?;
        write(&root.join("checkpoints").join("index.json"), &json)
    }

    /// Whether the run in `root` has a checkpoint to resume from.
    pub fn has_checkpoint(root: &Path) -> bool {
        root.join("checkpoints").join("index.json").exists()
    }

    pub fn best_model_path(&self) -> PathBuf {
        Self::best_model_path_in(&self.root)
    }

    fn best_model_path_in(root: &Path) -> PathBuf {
        root.join("best_model.kiln")
    }

    /// Refuses to resume a run that already finished (its run.json names its model).
    pub fn check_unfinished(root: &Path) -> Result<()> {
        let path = root.join(RUN_JSON);
        if !path.exists() {
            return Ok(());
        }
        let model = std::fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
            .and_then(|v| {
                v.get("modelId")
                    .and_then(|m| m.as_str())
                    .map(str::to_string)
            })
            .unwrap_or_else(|| "(see run.json)".into());
        Err(KilnError::InvalidArgument(format!(
            "{} already finished (model {model}); there is nothing to resume — start a new run \
             with another --out",
            root.display()
        )))
    }

    /// Takes the run directory's lock for the life of the returned file, so that two `kiln
    /// train` processes never write one run at once; the lock goes with the process, even on
    /// kill -9.
    pub fn lock(root: &Path) -> Result<std::fs::File> {
        std::fs::create_dir_all(root)
            .map_err(|e| KilnError::io(format!("cannot create {}", root.display()), e))?;
        let path = root.join(".lock");
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| KilnError::io(format!("cannot open {}", path.display()), e))?;
        match file.try_lock() {
            Ok(()) => Ok(file),
            Err(std::fs::TryLockError::WouldBlock) => Err(KilnError::InvalidArgument(format!(
                "{} is in use by another kiln process (wait for it to finish, or stop it first)",
                root.display()
            ))),
            Err(std::fs::TryLockError::Error(e)) => {
                Err(KilnError::io(format!("cannot lock {}", path.display()), e))
            }
        }
    }
}

impl CheckpointSink for RunDir {
    fn save(&mut self, c: CheckpointData<'_>) -> Result<()> {
        let name = Self::checkpoint_name(c.state.epochs_done);
        let dir = self.root.join("checkpoints").join(&name);
        // Serialising the optimiser reads device memory synchronously: fine natively.
        let optimizer = c
            .optimizer
            .into_bytes()
            .map_err(|e| KilnError::Internal(format!("cannot serialise the optimizer: {e}")))?;
        let state = serde_json::to_vec_pretty(c.state)
            .map_err(|e| KilnError::Internal(format!("cannot encode state: {e}")))?;
        let mut files: Vec<(&str, &[u8])> = vec![
            ("model.bpk", c.model_weights),
            ("optimizer.bpk", &optimizer),
        ];
        if let Some(best) = c.best_weights {
            files.push(("best.bpk", best));
        }
        // state.json last: a checkpoint counts only once it is complete and indexed.
        files.push(("state.json", &state));
        let mut checksums = std::collections::BTreeMap::new();
        for (file, bytes) in files {
            write(&dir.join(file), bytes)?;
            checksums.insert(file.to_string(), checksum(bytes));
        }
        let mut index = Self::index(&self.root)?;
        index.retain(|e| e.dir != name);
        index.push(RankedCheckpoint {
            dir: name.clone(),
            epoch: c.state.epochs_done,
            score: c.score,
            checksums,
        });
        let (kept, dropped) = retain_top_k(index, self.keep_top_k, c.direction);
        let json = serde_json::to_vec_pretty(&kept)
            .map_err(|e| KilnError::Internal(format!("cannot encode index: {e}")))?;
        write(&self.index_path(), &json)?;
        for entry in dropped {
            let _ = std::fs::remove_dir_all(self.root.join("checkpoints").join(entry.dir));
        }
        Ok(())
    }

    fn last_location(&self) -> Option<String> {
        let index = Self::index(&self.root).ok()?;
        let latest = index.iter().max_by_key(|e| e.epoch)?;
        Some(
            self.root
                .join("checkpoints")
                .join(&latest.dir)
                .display()
                .to_string(),
        )
    }
}

/// The model store the CLI uses.
pub fn default_store(flag: Option<PathBuf>) -> DirStore {
    if let Some(dir) = flag {
        return DirStore::new(dir);
    }
    let home = std::env::var_os("KILN_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".kiln")))
        .unwrap_or_else(|| PathBuf::from(".kiln"));
    DirStore::new(home.join("models"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resumed_log_drops_the_lines_after_its_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("metrics.jsonl");
        let lines = [
            r#"{"event":"progress","step":10,"loss":1.0}"#,
            r#"{"event":"evaluated","step":20,"epoch":1}"#,
            r#"{"event":"progress","step":25,"loss":0.5}"#,
            "not json",
        ];
        std::fs::write(&path, lines.join("\n") + "\n").unwrap();
        MetricsLog::open(dir.path(), None).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 4);
        MetricsLog::open(dir.path(), Some(20)).unwrap();
        let kept = std::fs::read_to_string(&path).unwrap();
        assert_eq!(kept, format!("{}\n{}\n{}\n", lines[0], lines[1], lines[3]));
    }

    #[test]
    fn logged_points_carry_the_time_they_were_logged() {
        let dir = tempfile::tempdir().unwrap();
        // A line from before Kiln recorded the time.
        std::fs::write(
            dir.path().join("metrics.jsonl"),
            r#"{"event":"evaluated","epoch":1,"step":5,"metrics":{"val_loss":0.5}}"#.to_owned()
                + "\n",
        )
        .unwrap();
        let before = kiln::jobs::now_unix_ms() as i64;
        let mut log = MetricsLog::open(dir.path(), None).unwrap();
        let progress = kiln::train::Progress {
            step: 10,
            loss: 0.25,
            learning_rate: 0.001,
            ..Default::default()
        };
        log.log(&TrainEvent::Progress(progress)).unwrap();
        let after = kiln::jobs::now_unix_ms() as i64;
        let points = logged_points(dir.path()).unwrap();
        let old: Vec<_> = points.iter().filter(|p| p.point.step == 5).collect();
        assert_eq!(old.len(), 1);
        assert_eq!(old[0].logged_at_ms, None);
        let new: Vec<_> = points.iter().filter(|p| p.point.step == 10).collect();
        assert_eq!(new.len(), 2, "train_loss and learning_rate: {points:?}");
        for point in new {
            let at = point.logged_at_ms.expect("a logged time");
            assert!(
                (before..=after).contains(&at),
                "{before} <= {at} <= {after}"
            );
        }
    }
}
