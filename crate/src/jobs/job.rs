//! A job: its id, status, latest progress and result, shared by every clone of its handle.

use crate::error::KilnError;
use crate::train::{CancelToken, Progress, RunSummary};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum JobStatus {
    /// Created, not started.
    Queued,
    /// Training.
    Processing,
    /// Finished; the model is in the store.
    Completed,
    /// Stopped by an error (see the job's error).
    Failed,
    /// Stopped by `cancel`.
    Cancelled,
}

crate::display_serde_name!(JobStatus);

impl std::str::FromStr for JobStatus {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        crate::config::from_serde_name(text).ok_or_else(|| {
            format!(
                "`{text}` is not a job status (queued, processing, completed, failed or \
                 cancelled)"
            )
        })
    }
}

impl TryFrom<String> for JobStatus {
    type Error = String;

    fn try_from(text: String) -> std::result::Result<Self, String> {
        text.parse()
    }
}

impl JobStatus {
    /// Whether the job has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

/// The result of a completed job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TrainRunInfo {
    /// The job that produced it.
    pub job_id: String,
    /// The saved model's id (a GUID) in the model store.
    pub model_id: String,
    /// The same id as `modelId`, under the hosted-training API's name (`trained_model["guid"]`).
    #[serde(default)]
    pub guid: String,
    /// The run's name.
    pub name: String,
    /// The backend it trained on.
    pub backend: String,
    /// The best model's file, when the run wrote one.
    pub best_model_path: Option<String>,
    /// What the run measured (its fields appear at this level in JSON).
    #[serde(flatten)]
    pub summary: RunSummary,
}

#[derive(Debug)]
pub(super) struct JobState {
    pub(super) status: JobStatus,
    pub(super) progress: Option<Progress>,
    result: Option<TrainRunInfo>,
    error: Option<String>,
}

/// A handle on a training job; clones share the same job.
#[derive(Debug, Clone)]
pub struct Job {
    id: String,
    state: Arc<Mutex<JobState>>,
    cancel: CancelToken,
    pub(super) stop_at_epoch_end: CancelToken,
}

impl Default for Job {
    fn default() -> Self {
        Self::new()
    }
}

impl Job {
    /// A new queued job with id `trainingjob-<uuid>`.
    pub fn new() -> Self {
        Self {
            id: format!("trainingjob-{}", uuid::Uuid::new_v4()),
            state: Arc::new(Mutex::new(JobState {
                status: JobStatus::Queued,
                progress: None,
                result: None,
                error: None,
            })),
            cancel: CancelToken::new(),
            stop_at_epoch_end: CancelToken::new(),
        }
    }

    /// A new queued job with a given id (e.g. one a Web Worker's caller already handed out).
    pub fn with_id(id: String) -> Self {
        Self { id, ..Self::new() }
    }

    pub(super) fn with<T>(&self, f: impl FnOnce(&mut JobState) -> T) -> T {
        let mut guard = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(&mut guard)
    }

    /// The job id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The current status.
    pub fn status(&self) -> JobStatus {
        self.with(|s| s.status)
    }

    /// The latest progress report.
    pub fn progress(&self) -> Option<Progress> {
        self.with(|s| s.progress.clone())
    }

    /// The result, once completed.
    pub fn result(&self) -> Option<TrainRunInfo> {
        self.with(|s| s.result.clone())
    }

    /// Why the job failed or was cancelled.
    pub fn error(&self) -> Option<String> {
        self.with(|s| s.error.clone())
    }

    /// Requests cancellation; the loop stops before its next step.
    pub fn cancel(&self) {
        self.cancel.cancel();
    }

    /// The token the training loop checks.
    pub fn cancel_token(&self) -> CancelToken {
        self.cancel.clone()
    }

    /// Asks the loop to checkpoint at the end of the current epoch and stop there (it ends as
    /// cancelled; a server requeues it and resumes from that checkpoint).
    pub fn stop_at_epoch_end(&self) {
        self.stop_at_epoch_end.cancel();
    }

    /// Marks the job failed with a reason (used when it cannot even start).
    pub fn fail(&self, error: &KilnError) {
        self.finish(Err(error));
    }

    pub(super) fn finish(&self, outcome: std::result::Result<&TrainRunInfo, &KilnError>) {
        self.with(|s| match outcome {
            Ok(info) => {
                s.status = JobStatus::Completed;
                s.result = Some(info.clone());
            }
            Err(KilnError::Cancelled) => {
                s.status = JobStatus::Cancelled;
                s.error = Some("the job was cancelled".into());
            }
            Err(e) => {
                s.status = JobStatus::Failed;
                s.error = Some(e.to_string());
            }
        });
    }
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix_ms() -> u64 {
    web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
