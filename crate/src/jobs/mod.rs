//! Jobs: every training run has an id, a status, the latest progress and a result.

use crate::error::{KilnError, Result};
use crate::model::{ConfigModel, ModelBuilder, ModelHeader, Predictor, SavedModel};
use crate::store::{ModelId, ModelStore, save_model};
use crate::train::{
    CancelToken, Progress, RunSummary, TrainEvent, TrainInputs, TrainRequest, train,
};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, Mutex};

mod holdout;
pub use holdout::holdout_csv;

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
struct JobState {
    status: JobStatus,
    progress: Option<Progress>,
    result: Option<TrainRunInfo>,
    error: Option<String>,
}

/// A handle on a training job; clones share the same job.
#[derive(Debug, Clone)]
pub struct Job {
    id: String,
    state: Arc<Mutex<JobState>>,
    cancel: CancelToken,
    stop_at_epoch_end: CancelToken,
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

    fn with<T>(&self, f: impl FnOnce(&mut JobState) -> T) -> T {
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

    fn finish(&self, outcome: std::result::Result<&TrainRunInfo, &KilnError>) {
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

/// A hook that gets a finished job's output before its model goes to the store.
pub type BeforeStore<'a> = dyn FnMut(&JobOutput) -> Result<()> + 'a;

/// Everything a job run needs besides the job itself. `B` builds the model.
pub struct JobRun<'a, B: ModelBuilder = ConfigModel> {
    /// What to train, on what, and where checkpoints go.
    pub inputs: TrainInputs<'a, 'a, B>,
    /// A name for the backend, recorded in the result.
    pub backend: String,
    /// Where the trained model is saved.
    pub store: &'a dyn ModelStore,
    /// Also receives every event.
    pub on_event: &'a mut dyn FnMut(&TrainEvent),
    /// Recorded as the result's `best_model_path`.
    pub best_model_path: Option<String>,
    /// Called with the finished job's output before the model goes to the store, so a run
    /// directory keeps its own results even when the store then fails.
    pub before_store: Option<&'a mut BeforeStore<'a>>,
    /// Also predict the test split with the saved model (`JobOutput::holdout_csv`).
    pub holdout: bool,
    /// The id to save the model under (a job server derives it from the job, so that a job
    /// run twice stores one model); `None`: a fresh random id.
    pub model_id: Option<ModelId>,
}

/// Runs a job to its end: trains, saves the best model to the store, and records the outcome
/// on the job. The returned error (if any) is also the job's error.
pub async fn run_job<B: ModelBuilder>(job: &Job, run: JobRun<'_, B>) -> Result<JobOutput> {
    job.with(|s| s.status = JobStatus::Processing);
    let outcome = run_inner(job, run).await;
    job.finish(outcome.as_ref().map(|out| &out.info));
    outcome
}

/// What a completed job produced.
#[derive(Debug, Clone)]
pub struct JobOutput {
    /// The result summary.
    pub info: TrainRunInfo,
    /// The saved (best) model, as stored.
    pub model: SavedModel,
    /// The weights at the end of training (burnpack).
    pub final_weights: Vec<u8>,
    /// The saved model's predictions on the test split (when asked for and there is one).
    pub holdout_csv: Option<String>,
}

async fn run_inner<B: ModelBuilder>(job: &Job, run: JobRun<'_, B>) -> Result<JobOutput> {
    let JobRun {
        inputs,
        backend,
        store,
        on_event,
        best_model_path,
        before_store,
        holdout,
        model_id,
    } = run;
    store.check_writable().await?;
    let (config, splits, builder, device) = (
        inputs.config,
        inputs.splits,
        inputs.builder,
        inputs.device.clone(),
    );
    let progress_job = job.clone();
    let mut events = |event: TrainEvent| {
        if let TrainEvent::Progress(p) = &event {
            progress_job.with(|s| s.progress = Some(p.clone()));
        }
        on_event(&event);
    };
    let outcome = train(TrainRequest {
        inputs,
        events: &mut events,
        cancel: job.cancel_token(),
        stop_at_epoch_end: job.stop_at_epoch_end.clone(),
    })
    .await?;
    let model_id = model_id.unwrap_or_else(ModelId::random).to_string();
    let saved = SavedModel {
        header: ModelHeader {
            model_id: model_id.clone(),
            name: config.name.clone(),
            architecture: builder.architecture(),
            created_unix_ms: now_unix_ms(),
            kiln_version: env!("CARGO_PKG_VERSION").into(),
            config: config.clone(),
            input_shape: splits.train.sample_shape.clone(),
            num_outputs: splits.train.num_outputs,
            normalization: splits.normalization.clone(),
            metrics: outcome.summary.final_metrics.clone(),
            vocabulary: splits.vocabulary.clone(),
        },
        weights: outcome.best_weights,
    };
    let holdout_csv = match (&splits.test, holdout) {
        (Some(test), true) => {
            let predictor = Predictor::with_builder(saved.clone(), builder, &device)?;
            Some(holdout_csv(&predictor, test, &splits.test_rows).await?)
        }
        _ => None,
    };
    let output = JobOutput {
        info: TrainRunInfo {
            job_id: job.id().to_string(),
            guid: model_id.clone(),
            model_id,
            name: config.name.clone(),
            backend,
            best_model_path,
            summary: outcome.summary,
        },
        model: saved,
        final_weights: outcome.final_weights,
        holdout_csv,
    };
    if let Some(before_store) = before_store {
        before_store(&output)?;
    }
    save_model(store, &output.model).await?;
    Ok(output)
}

/// Milliseconds since the Unix epoch (0 if the clock is before it).
pub fn now_unix_ms() -> u64 {
    web_time::SystemTime::now()
        .duration_since(web_time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
