//! The end of a tracked run: which files go up, how the job's outcome reads in MLflow, and
//! where what could not be sent is written down.

use super::{Artifact, RunEnd, TrackerReport};
use kiln::KilnError;
use std::io::Write;
use std::path::Path;

/// The file in a run directory that lists what the tracker could not send.
pub const TRACKING_LOG: &str = "tracking.log";

/// The run directory's files that go up as artifacts (those that exist): the best model, the
/// results, the test predictions and the resolved config.
pub fn run_dir_artifacts(root: &Path) -> Vec<Artifact> {
    ["best_model.kiln", "run.json", "holdout.csv", "config.yaml"]
        .into_iter()
        .map(|name| Artifact::File(root.join(name)))
        .collect()
}

/// A job's outcome as an MLflow run status.
pub fn run_end<T>(outcome: &Result<T, KilnError>) -> RunEnd {
    match outcome {
        Ok(_) => RunEnd::Finished,
        Err(KilnError::Cancelled) => RunEnd::Killed,
        Err(_) => RunEnd::Failed,
    }
}

/// The warning lines of a report (none when everything was sent), also appended to the run
/// directory's `tracking.log` with the time.
pub fn record_unsent(root: &Path, report: &TrackerReport) -> Vec<String> {
    let lines: Vec<String> = report
        .unsent
        .iter()
        .map(|what| format!("MLflow: not sent: {what}"))
        .collect();
    if lines.is_empty() {
        return lines;
    }
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    if let Ok(mut file) = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(root.join(TRACKING_LOG))
    {
        for line in &lines {
            let _ = writeln!(file, "{stamp} {line}");
        }
    }
    lines
}
