//! Runs one queued job on a training thread: the same `run_job` the CLI uses, with the run
//! directory `DATA_DIR/jobs/<id>` (checkpoints, metrics.jsonl, results) and every event recorded.

use super::datasets;
use super::hub::Hub;
use super::recorder::{Record, Recorder};
use super::registry::JobRow;
use super::scheduler::Scheduler;
use crate::run_dir::{MetricsLog, RunDir};
use kiln::backend::{BackendKind, native_device};
use kiln::data::{load_source, prepare};
use kiln::jobs::{JobOutput, JobRun, run_job};
use kiln::model::{Predictor, predictions_csv};
use kiln::store::DirStore;
use kiln::store::load_model;
use kiln::train::TrainEvent;
use kiln::{Config, Job, KilnError, Result, TrainRunInfo};
use std::path::PathBuf;
use std::sync::Arc;
use tokio::runtime::Handle;

/// What every training thread shares.
#[derive(Debug, Clone)]
pub struct RunnerContext {
    /// The async runtime (for registry writes from the training thread).
    pub runtime: Handle,
    /// Events and the registry.
    pub hub: Hub,
    /// The queue.
    pub scheduler: Arc<Scheduler>,
    /// `DATA_DIR`.
    pub data_dir: PathBuf,
    /// `DATA_DIR/models`.
    pub store: DirStore,
    /// `--backend`.
    pub backend: BackendKind,
    /// Writes events and status changes in order, off the training threads.
    pub recorder: Recorder,
}

impl RunnerContext {
    /// The run directory of a job.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("jobs").join(id)
    }

    /// Records an event from the training thread (written in order, off the thread).
    pub fn publish(&self, id: &str, kind: &str, data: serde_json::Value) {
        self.recorder.send(Record::Event {
            job: id.to_string(),
            kind: kind.to_string(),
            data,
        });
    }

    /// Ends a job in the registry and sends its final `status` event.
    pub fn finish(
        &self,
        id: &str,
        status: &'static str,
        result: Option<serde_json::Value>,
        error: Option<&str>,
    ) {
        self.recorder.send(Record::Finish {
            job: id.to_string(),
            status,
            result,
            error: error.map(str::to_string),
        });
    }
}

/// Runs job `id` to its end (or, when the server stops, back into the queue).
pub fn run_queued(ctx: &RunnerContext, id: &str) {
    // Registered as running before its row is read: a cancel that comes in between either finds
    // it here (and cancels it) or has already marked the row cancelled (and it is skipped).
    let job = Job::with_id(id.to_string());
    ctx.scheduler.started(&job);
    let row = match ctx.runtime.block_on(ctx.hub.registry().job(id)) {
        Ok(Some(row)) if matches!(row.status.as_str(), "queued" | "processing") => row,
        Ok(_) => {
            ctx.scheduler.ended(id); // cancelled or deleted while queued
            return;
        }
        Err(e) => {
            eprintln!("kiln serve: cannot read job {id}: {e}");
            ctx.scheduler.ended(id);
            return;
        }
    };
    let outcome = if row.kind == "prediction" {
        predict_batch(ctx, &row, &job)
    } else {
        train(ctx, &row, &job).and_then(|info| {
            serde_json::to_value(info).map_err(|e| KilnError::Internal(e.to_string()))
        })
    };
    ctx.scheduler.ended(id);
    match outcome {
        Ok(result) => ctx.finish(id, "completed", Some(result), None),
        Err(KilnError::Cancelled) if ctx.scheduler.stopping() => {
            ctx.recorder.send(Record::Requeued {
                job: id.to_string(),
            });
        }
        Err(KilnError::Cancelled) => {
            ctx.finish(id, "cancelled", None, Some("the job was cancelled"));
        }
        Err(e) => {
            if !e.is_user_error() {
                eprintln!("kiln serve: job {id} failed: {e}");
            }
            ctx.finish(id, "failed", None, Some(&e.to_string()));
        }
    }
}

/// Rows predicted per pass (and per progress event) of a batch prediction.
const PREDICT_ROWS_PER_PASS: usize = 4096;

/// A batch prediction job: the model over the dataset's features, written as CSV.
fn predict_batch(ctx: &RunnerContext, row: &JobRow, job: &Job) -> Result<serde_json::Value> {
    let id = row.id.as_str();
    let spec: serde_json::Value = serde_json::from_str(&row.config)
        .map_err(|e| KilnError::Internal(format!("prediction job spec: {e}")))?;
    let model_id = spec["model"].as_str().unwrap_or_default().to_string();
    let saved = futures::executor::block_on(load_model(&ctx.store, &model_id))?;
    let dataset = row.dataset.clone().unwrap_or_default();
    let found = ctx
        .runtime
        .block_on(ctx.hub.registry().dataset(&dataset))
        .map_err(|e| KilnError::Internal(format!("registry: {e}")))?
        .ok_or_else(|| KilnError::Data(format!("dataset {dataset} was deleted")))?;
    let sample_len: usize = saved.header.input_shape.iter().product();
    let file = datasets::file_of(&ctx.data_dir.join("datasets"), &dataset, &found.format);
    let features = datasets::prediction_features(&file, &found, sample_len)?;
    ctx.recorder.send(Record::Processing {
        job: id.to_string(),
    });
    let (task, outputs) = (saved.task(), saved.header.num_outputs);
    let predictor = Predictor::new(saved, &native_device(ctx.backend)?)?;
    let rows = features.len() / sample_len.max(1);
    let mut values = Vec::with_capacity(rows * outputs);
    for chunk in features.chunks(PREDICT_ROWS_PER_PASS * sample_len.max(1)) {
        if job.cancel_token().is_cancelled() {
            return Err(KilnError::Cancelled);
        }
        values.extend(futures::executor::block_on(predictor.predict(chunk))?);
        let done = values.len() / outputs.max(1);
        ctx.publish(
            id,
            "progress",
            serde_json::json!({ "event": "progress", "rowsDone": done, "rows": rows }),
        );
    }
    let dir = ctx.job_dir(id);
    std::fs::create_dir_all(&dir)
        .map_err(|e| KilnError::io(format!("cannot create {}", dir.display()), e))?;
    let csv = predictions_csv(&values, outputs, task);
    kiln::store::write_atomic(
        &dir.join(super::predictions_api::OUTPUT_CSV),
        csv.as_bytes(),
    )?;
    Ok(serde_json::json!({
        "model": model_id,
        "rows": rows,
        "outputUrl": format!("/v1/predictions/{id}/output"),
    }))
}

fn train(ctx: &RunnerContext, row: &JobRow, job: &Job) -> Result<TrainRunInfo> {
    let id = row.id.as_str();
    let config = Config::from_json_str(&row.config)?;
    let loaded = match &row.dataset {
        Some(dataset) => {
            let found = ctx
                .runtime
                .block_on(ctx.hub.registry().dataset(dataset))
                .map_err(|e| KilnError::Internal(format!("registry: {e}")))?
                .ok_or_else(|| KilnError::Data(format!("dataset {dataset} was deleted")))?;
            let file = datasets::file_of(&ctx.data_dir.join("datasets"), dataset, &found.format);
            datasets::load(&file, &found, &config)?
        }
        None => load_source(&config)?,
    };
    let splits = prepare(&config, loaded)?;
    let device = native_device(ctx.backend)?;
    let root = ctx.job_dir(id);
    let resume = if RunDir::has_checkpoint(&root) {
        Some(RunDir::latest_checkpoint(&root)?)
    } else {
        None
    };
    let mut run_dir = RunDir::open(root.clone(), &config, config.checkpoint.save_top_k)?;
    let mut metrics_log = MetricsLog::open(&root)?;
    ctx.recorder.send(Record::Processing {
        job: id.to_string(),
    });
    let mut log_error = None;
    let mut on_event = |event: &TrainEvent| {
        if let Err(e) = metrics_log.log(event) {
            log_error.get_or_insert(e);
        }
        let Ok(value) = serde_json::to_value(event) else {
            return;
        };
        let kind = value
            .get("event")
            .and_then(|k| k.as_str())
            .unwrap_or("event")
            .to_string();
        ctx.publish(id, &kind, value);
    };
    let mut write_results = |output: &JobOutput| RunDir::write_results(&root, output);
    let output = futures::executor::block_on(run_job(
        job,
        JobRun {
            config: &config,
            splits: &splits,
            device,
            backend: ctx.backend.name().into(),
            store: &ctx.store,
            checkpoints: Some(&mut run_dir),
            resume,
            on_event: &mut on_event,
            best_model_path: None,
            yield_now: None,
            before_store: Some(&mut write_results),
            holdout: true,
        },
    ))?;
    if let Some(e) = log_error {
        return Err(e);
    }
    Ok(output.info)
}
