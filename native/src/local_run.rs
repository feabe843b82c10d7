//! One training run in a local run directory, set up, trained and finished the same way for
//! `kiln train` and a `kiln serve` worker: the metrics log, the MLflow tracker (started, given
//! the history on resume, ended), the run directory's results written before the model goes to
//! the store. What differs between the two — a progress bar, or server events and uploads — is
//! a [`RunSink`]; a new artifact or sink is added here once.

use crate::run_dir::{MetricsLog, RunDir};
use crate::tracking::{
    Artifact, MlflowSettings, MlflowTracker, RunEnd, finish_tracked_run, run_end,
};
use burn::tensor::Device;
use kiln::data::Splits;
use kiln::jobs::{Job, JobOutput, JobRun, run_job};
use kiln::model::ConfigModel;
use kiln::store::{ModelId, ModelStore};
use kiln::train::{CheckpointSink, ResumePoint, TrainEvent, TrainInputs};
use kiln::{Config, Result};
use std::path::Path;

/// What a caller adds to a local run (every method but [`RunSink::event`] has a default).
pub trait RunSink {
    /// MLflow logging starts with these settings.
    fn tracking_started(&mut self, _settings: &MlflowSettings) {}

    /// Every training event, after the metrics log and the tracker have it.
    fn event(&mut self, event: &TrainEvent);

    /// After the run directory's results are written, before the model goes to the store; an
    /// error fails the run.
    fn results_written(&mut self, _root: &Path) -> Result<()> {
        Ok(())
    }

    /// How the tracked run ends; `None` leaves it open for whoever continues the job.
    fn tracked_end(&self, outcome: &Result<JobOutput>) -> Option<RunEnd> {
        Some(run_end(outcome))
    }

    /// Artifacts for the tracker beside the run directory's own files.
    fn extra_artifacts(&self, _outcome: &Result<JobOutput>) -> Vec<Artifact> {
        Vec::new()
    }

    /// What the tracker could not send, a line each.
    fn tracking_warnings(&mut self, lines: Vec<String>);
}

/// A run's settings.
pub struct LocalRun<'a> {
    /// The job the run is.
    pub job: &'a Job,
    /// Its validated config.
    pub config: &'a Config,
    /// Its prepared data.
    pub splits: &'a Splits,
    /// The device it trains on.
    pub device: Device,
    /// The backend's name, recorded in the result and the tracked run.
    pub backend: String,
    /// Where the model goes.
    pub store: &'a dyn ModelStore,
    /// The run directory (already opened by the caller, whose checkpoints write there).
    pub root: &'a Path,
    /// Where checkpoints go.
    pub checkpoints: &'a mut dyn CheckpointSink,
    /// Continue from here instead of starting fresh.
    pub resume: Option<ResumePoint>,
    /// The MLflow server to log to when the config names none (`--mlflow`).
    pub mlflow: Option<&'a str>,
    /// Recorded as the result's `best_model_path`.
    pub best_model_path: Option<String>,
    /// The id to store the model under (`None`: a fresh one).
    pub model_id: Option<ModelId>,
}

/// Trains `run` to its end in its run directory, telling `sink` what happens.
pub fn run_locally(run: LocalRun<'_>, sink: &mut dyn RunSink) -> Result<JobOutput> {
    let root = run.root;
    let mut metrics_log = MetricsLog::open(root, run.resume.as_ref().map(|r| r.state.step))?;
    let tracker = MlflowSettings::resolve(
        run.config,
        run.mlflow,
        run.job.id(),
        &run.backend,
        Some(root),
    )?
    .map(|settings| {
        sink.tracking_started(&settings);
        MlflowTracker::start(settings)
    });
    if let (Some(tracker), Some(_)) = (&tracker, &run.resume) {
        tracker.log_history(root);
    }
    let sink = std::cell::RefCell::new(sink);
    let mut log_error = None;
    let mut on_event = |event: &TrainEvent| {
        if let Some(tracker) = &tracker {
            tracker.log(event);
        }
        if let Err(e) = metrics_log.log(event) {
            log_error.get_or_insert(e);
        }
        sink.borrow_mut().event(event);
    };
    let mut write_results = |output: &JobOutput| {
        RunDir::write_results(root, output)?;
        sink.borrow_mut().results_written(root)
    };
    let outcome = futures::executor::block_on(run_job(
        run.job,
        JobRun {
            inputs: TrainInputs {
                config: run.config,
                splits: run.splits,
                builder: &ConfigModel::default(),
                device: run.device,
                checkpoints: Some(run.checkpoints),
                resume: run.resume,
                yield_now: None,
            },
            backend: run.backend.clone(),
            store: run.store,
            on_event: &mut on_event,
            best_model_path: run.best_model_path,
            before_store: Some(&mut write_results),
            holdout: true,
            model_id: run.model_id,
        },
    ));
    let sink = sink.into_inner();
    if let Some(tracker) = tracker {
        let end = sink.tracked_end(&outcome);
        let extra = sink.extra_artifacts(&outcome);
        sink.tracking_warnings(finish_tracked_run(tracker, &outcome, end, root, extra));
    }
    let output = outcome?;
    match log_error {
        Some(e) => Err(e),
        None => Ok(output),
    }
}
