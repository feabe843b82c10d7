//! The end of a tracked run: which files go up, how the job's outcome reads in MLflow, and
//! where what could not be sent is written down.

use super::{Artifact, MlflowTracker, RunEnd, TrackerReport, finish_timeout};
use kiln::KilnError;
use kiln::jobs::JobOutput;
use kiln::train::test_points;
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

/// Ends a job's tracked run: a completed job's test metrics at its last step, the run
/// directory's files and `extra` as artifacts, the status `end`; returns the warning lines for
/// what was not sent (also appended to the run directory's `tracking.log`).
pub fn finish_tracked_run(
    tracker: MlflowTracker,
    outcome: &Result<JobOutput, KilnError>,
    end: Option<RunEnd>,
    root: &Path,
    extra: Vec<Artifact>,
) -> Vec<String> {
    if let Ok(output) = outcome {
        let summary = &output.info.summary;
        tracker.log_points(test_points(&summary.final_metrics, summary.steps));
    }
    let mut artifacts = run_dir_artifacts(root);
    artifacts.extend(extra);
    let report = tracker.finish(end, artifacts, finish_timeout());
    record_unsent(root, &report)
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
