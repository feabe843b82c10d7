//! Running a job: train, save the best model, predict the hold-out split, record the outcome.

use super::holdout::holdout_csv;
use super::job::{Job, JobStatus, TrainRunInfo, now_unix_ms};
use crate::error::Result;
use crate::model::{ConfigModel, ModelBuilder, ModelHeader, Predictor, SavedModel};
use crate::store::{ModelId, ModelStore, save_model};
use crate::train::{TrainEvent, TrainInputs, TrainRequest, train};

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
