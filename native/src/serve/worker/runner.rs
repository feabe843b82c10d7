//! Runs one claimed job on a training thread: the same `run_job` the CLI uses, with the run
//! directory `DATA_DIR/jobs/<id>` (checkpoints, metrics.jsonl, results), every event recorded
//! under the job's lease, and — with a shared object store — every checkpoint and the results
//! copied there, so that any worker can take the job over.

use crate::local_run::{LocalRun, RunSink, run_locally};
use crate::run_dir::RunDir;
use crate::serve::datasets;
use crate::serve::hub::Hub;
use crate::serve::lease::{Lease, StopReason};
use crate::serve::mirror::{self, StoredCheckpoint};
use crate::serve::model_store::ServerModels;
use crate::serve::objects::Objects;
use crate::serve::recorder::{Record, Recorder};
use crate::serve::registry::{Claimed, JobKind, JobRow, PredictionSpec, retry_while_unreachable};
use crate::serve::scheduler::Scheduler;
use crate::serve::worker::WorkerIdentity;
use crate::tracking::{Artifact, RunEnd, run_end};
use kiln::backend::{BackendKind, DeviceChoice, native_device_at};
use kiln::data::{load_source, prepare};
use kiln::jobs::JobOutput;
use kiln::model::{Predictor, predictions_csv};
use kiln::store::ModelStore;
use kiln::store::load_model;
use kiln::train::{CheckpointData, CheckpointSink, TrainEvent};
use kiln::{Config, Job, JobStatus, KilnError, Result, TrainRunInfo};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;

/// The file a prediction job writes in its directory.
pub const OUTPUT_CSV: &str = "predictions.csv";

/// What every training thread shares.
#[derive(Debug, Clone)]
pub struct RunnerContext {
    /// The async runtime (for registry writes from the training thread).
    pub runtime: Handle,
    /// Events and the registry.
    pub hub: Hub,
    /// The jobs training here.
    pub scheduler: Arc<Scheduler>,
    /// `DATA_DIR`.
    pub data_dir: PathBuf,
    /// Models: `DATA_DIR/models` or the object store.
    pub store: ServerModels,
    /// Datasets, checkpoints and results.
    pub objects: Objects,
    /// `--backend` (or `--device`'s backend).
    pub backend: BackendKind,
    /// `--device`: the backend and adapter jobs run on.
    pub device: DeviceChoice,
    /// `--mlflow`: the tracking server training jobs log to.
    pub mlflow: Option<String>,
    /// Writes events and status changes in order, off the training threads.
    pub recorder: Recorder,
    /// This worker.
    pub worker: WorkerIdentity,
}

impl RunnerContext {
    /// The run directory of a job.
    pub fn job_dir(&self, id: &str) -> PathBuf {
        self.data_dir.join("jobs").join(id)
    }

    /// `message` with this server's data directory written as `<data dir>`: a job's error is
    /// shown over HTTP, which must not name a server-side path.
    pub fn without_server_paths(&self, message: &str) -> String {
        let root = self.data_dir.display().to_string();
        let absolute = std::fs::canonicalize(&self.data_dir)
            .map(|p| p.display().to_string())
            .unwrap_or_else(|_| root.clone());
        message
            .replace(&absolute, "<data dir>")
            .replace(&root, "<data dir>")
    }

    /// Records an event from the training thread (written in order, off the thread, while
    /// lease `attempt` holds the job).
    pub fn publish(&self, id: &str, kind: &str, data: serde_json::Value, attempt: i64) {
        self.recorder.send(Record::Event {
            job: id.to_string(),
            kind: kind.to_string(),
            data,
            attempt,
        });
    }

    /// Ends a job in the registry and sends its final `status` event.
    pub fn finish(
        &self,
        id: &str,
        status: JobStatus,
        result: Option<serde_json::Value>,
        error: Option<&str>,
        attempt: i64,
    ) {
        self.recorder.send(Record::Finish {
            job: id.to_string(),
            status,
            result,
            error: error.map(str::to_string),
            attempt,
            at: crate::serve::registry::now_ms(),
        });
    }
}

/// Removes everything a job left in the data directory and the object store. Files a run still
/// writes meanwhile are retried a few times; a run that ends later removes its own leftovers
/// (see [`run_claimed`]).
pub async fn remove_job_files(ctx: &RunnerContext, id: &str) -> Result<()> {
    if ctx.objects.is_remote() {
        ctx.objects.delete_all(&format!("jobs/{id}")).await?;
    }
    let dir = ctx.job_dir(id);
    let mut tries = 0;
    loop {
        let dir = dir.clone();
        let removed = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(&dir))
            .await
            .map_err(|e| KilnError::Internal(format!("removing a job's files: {e}")))?;
        match removed {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            // A file appeared while the directory was emptied: again, shortly.
            Err(_) if tries < 5 => {
                tries += 1;
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
            Err(e) => {
                return Err(KilnError::io(
                    format!("cannot remove the files of job {id}"),
                    e,
                ));
            }
        }
    }
}

/// The checkpoint a job's row records (written by `SharedCheckpoints::save`).
fn stored_checkpoint(row: &JobRow) -> Option<StoredCheckpoint> {
    serde_json::from_str(row.checkpoint.as_deref()?).ok()
}

/// Runs a job this worker has just claimed (with a claim sent at `asked`), to its end, or until
/// it hands it over or loses its lease.
pub fn run_claimed(ctx: &RunnerContext, claimed: Claimed, asked: Instant) {
    let row = claimed.row;
    let id = row.id.clone();
    let attempt = row.attempt;
    let lease = Arc::new(Lease::new(id.clone(), attempt, ctx.worker.lease, asked));
    let job = Job::with_id(id.clone());
    ctx.scheduler.started(&job, lease.clone());
    let mut assigned = serde_json::json!({
        "worker": ctx.worker.id,
        "attempt": attempt,
        "resumeFrom": stored_checkpoint(&row),
    });
    if claimed.previous_status == JobStatus::Processing {
        assigned["previousWorker"] = claimed.previous_worker.clone().into();
        assigned["reason"] = "the previous worker stopped renewing its lease".into();
    }
    ctx.publish(&id, "assigned", assigned, attempt);
    if ctx.scheduler.stopping() || ctx.scheduler.draining() {
        lease.stop_for(StopReason::Handover);
    }
    let outcome = if lease.stop_reason().is_some() {
        Err(KilnError::Cancelled)
    } else if row.kind == JobKind::Prediction {
        predict_batch(ctx, &row, &job, &lease)
    } else {
        train(ctx, &row, &job, &lease).and_then(|info| {
            serde_json::to_value(info).map_err(|e| KilnError::Internal(e.to_string()))
        })
    };
    ctx.scheduler.ended(&id);
    // Deleted while it ran (cancel, then DELETE, before this worker stopped): nothing of it
    // may stay behind, so what this run wrote since is removed now that it writes no more.
    if matches!(ctx.runtime.block_on(ctx.hub.registry().job(&id)), Ok(None)) {
        if let Err(e) = ctx.runtime.block_on(remove_job_files(ctx, &id)) {
            tracing::warn!("job {id} was deleted; its files: {e}");
        }
        return;
    }
    match (outcome, lease.stop_reason()) {
        (_, Some(StopReason::Lost)) => {
            tracing::info!("job {id}: stopped here; its lease is another worker's now");
        }
        (Ok(result), _) => ctx.finish(&id, JobStatus::Completed, Some(result), None, attempt),
        (Err(KilnError::Cancelled), Some(StopReason::Handover)) => {
            ctx.recorder.send(Record::Requeued {
                job: id.clone(),
                attempt,
                reason: if ctx.scheduler.stopping() {
                    format!(
                        "the server is stopping (worker {}); the job resumes from its latest \
                         checkpoint on the next worker to take it",
                        ctx.worker.id
                    )
                } else {
                    format!(
                        "worker {} is draining and handed the job over; it resumes from its \
                         latest checkpoint on the next worker to take it",
                        ctx.worker.id
                    )
                },
            });
        }
        (Err(KilnError::Cancelled), _) => {
            ctx.finish(
                &id,
                JobStatus::Cancelled,
                None,
                Some("the job was cancelled"),
                attempt,
            );
        }
        (Err(e), _) => {
            if !e.is_user_error() {
                tracing::warn!("job {id} failed: {e}");
            }
            let shown = ctx.without_server_paths(&e.to_string());
            ctx.finish(&id, JobStatus::Failed, None, Some(&shown), attempt);
        }
    }
}

/// The local file of a stored dataset (a cached copy when the store is shared).
fn dataset_file(ctx: &RunnerContext, dataset: &str, format: &str) -> Result<PathBuf> {
    ctx.objects
        .local_file(&datasets::dataset_key(dataset, format))
}

/// Refuses to go on once the lease is lost: nothing more is written for the job.
fn check_lease(lease: &Lease) -> Result<()> {
    if lease.lost() {
        return Err(KilnError::Cancelled);
    }
    Ok(())
}

/// Rows predicted per pass (and per progress event) of a batch prediction.
const PREDICT_ROWS_PER_PASS: usize = 4096;

/// A batch prediction job: the model over the dataset's features, written as CSV.
fn predict_batch(
    ctx: &RunnerContext,
    row: &JobRow,
    job: &Job,
    lease: &Lease,
) -> Result<serde_json::Value> {
    let id = row.id.as_str();
    let spec: PredictionSpec = serde_json::from_str(&row.config)
        .map_err(|e| KilnError::Internal(format!("prediction job spec: {e}")))?;
    let model_id = spec.model;
    let saved = futures::executor::block_on(load_model(&ctx.store, &model_id))?;
    let dataset = row.dataset.clone().unwrap_or_default();
    let found = ctx
        .runtime
        .block_on(ctx.hub.registry().dataset(&dataset))
        .map_err(|e| KilnError::Internal(format!("registry: {e}")))?
        .ok_or_else(|| KilnError::Data(format!("dataset {dataset} was deleted")))?;
    let sample_len: usize = saved.header.input_shape.iter().product();
    let file = dataset_file(ctx, &dataset, &found.format)?;
    let features = datasets::prediction_features(&file, &found, sample_len)?;
    ctx.recorder.send(Record::Processing {
        job: id.to_string(),
        attempt: lease.attempt,
    });
    let (task, outputs) = (saved.task(), saved.header.num_outputs);
    let predictor = Predictor::new(saved, &native_device_at(ctx.device)?)?;
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
            lease.attempt,
        );
    }
    let dir = ctx.job_dir(id);
    std::fs::create_dir_all(&dir)
        .map_err(|e| KilnError::io(format!("cannot create {}", dir.display()), e))?;
    let csv = predictions_csv(&values, outputs, task);
    kiln::store::write_atomic(&dir.join(OUTPUT_CSV), csv.as_bytes())?;
    check_lease(lease)?;
    if ctx.objects.is_remote() {
        mirror::upload_file(&ctx.objects, id, &dir, OUTPUT_CSV)?;
    }
    Ok(serde_json::json!({
        "model": model_id,
        "rows": rows,
        "outputUrl": format!("/v1/predictions/{id}/output"),
    }))
}

/// The id of the model job `job_id` trains: the same on every run of the job (a job claimed
/// again after a crash or an outage overwrites its model, never adds a second), and as hard to
/// guess as the job's id. A UUID from a SHA-256 of the job id.
pub fn model_id_of_job(job_id: &str) -> kiln::store::ModelId {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("kiln-model-of-job:{job_id}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    let id = uuid::Builder::from_random_bytes(bytes)
        .into_uuid()
        .to_string();
    kiln::store::ModelId::parse(&id).unwrap_or_else(|_| kiln::store::ModelId::random())
}

/// The result of a run of job `id` that already finished — its `run.json` is stored and so is
/// the model it names — when a job whose end could not be recorded (the registry was away) is
/// claimed again: it then ends with that result, without training or storing anything again.
fn finished_before(ctx: &RunnerContext, id: &str) -> Option<TrainRunInfo> {
    let bytes = if ctx.objects.is_remote() {
        ctx.objects
            .wait(
                ctx.objects
                    .get(&mirror::job_key(id, crate::run_dir::RUN_JSON)),
            )
            .ok()??
            .to_vec()
    } else {
        std::fs::read(ctx.job_dir(id).join(crate::run_dir::RUN_JSON)).ok()?
    };
    let info: TrainRunInfo = serde_json::from_slice(&bytes).ok()?;
    let model = kiln::store::ModelId::parse(&info.model_id).ok()?;
    futures::executor::block_on(ctx.store.get(&model))
        .ok()
        .flatten()
        .map(|_| info)
}

fn train(ctx: &RunnerContext, row: &JobRow, job: &Job, lease: &Lease) -> Result<TrainRunInfo> {
    let id = row.id.as_str();
    if let Some(info) = finished_before(ctx, id) {
        ctx.publish(
            id,
            "warning",
            serde_json::json!({ "event": "warning", "message": "this job had finished on an \
                earlier lease, but its end could not be recorded then; it ends now with that \
                result, without training again" }),
            lease.attempt,
        );
        return Ok(info);
    }
    let config = Config::from_json_str(&row.config)?;
    datasets::check_remote_run_settings(&config, ctx.mlflow.as_deref())?;
    let loaded = match &row.dataset {
        Some(dataset) => {
            let found = ctx
                .runtime
                .block_on(ctx.hub.registry().dataset(dataset))
                .map_err(|e| KilnError::Internal(format!("registry: {e}")))?
                .ok_or_else(|| KilnError::Data(format!("dataset {dataset} was deleted")))?;
            let file = dataset_file(ctx, dataset, &found.format)?;
            datasets::load(&file, &found, &config)?
        }
        None => load_source(&config)?,
    };
    let splits = prepare(&config, loaded)?;
    let device = native_device_at(ctx.device)?;
    let root = ctx.job_dir(id);
    if ctx.objects.is_remote() {
        // The recorded checkpoint is the truth: this machine's copy may be older, or from a
        // lease that was lost.
        mirror::restore(&ctx.objects, id, &root, stored_checkpoint(row))?;
    }
    let resume = if RunDir::has_checkpoint(&root) {
        Some(RunDir::latest_checkpoint(
            &root,
            config.training.num_passes,
        )?)
    } else {
        None
    };
    let run_dir = RunDir::open(root.clone(), &config, config.checkpoint.save_top_k)?;
    let mut checkpoints = SharedCheckpoints {
        run_dir,
        ctx,
        lease,
        recorded: stored_checkpoint(row),
    };
    ctx.recorder.send(Record::Processing {
        job: id.to_string(),
        attempt: lease.attempt,
    });
    let mut server = ServerSink { ctx, id, lease };
    let output = run_locally(
        LocalRun {
            job,
            config: &config,
            splits: &splits,
            device,
            backend: ctx.backend.to_string(),
            store: &ctx.store,
            root: &root,
            checkpoints: &mut checkpoints,
            resume,
            mlflow: ctx.mlflow.as_deref(),
            best_model_path: None,
            model_id: Some(model_id_of_job(id)),
        },
        &mut server,
    )?;
    Ok(output.info)
}

/// A server worker's part of a run: every event published to the job's stream, the results
/// uploaded to a shared object store, the tracker's warnings as `warning` events, and a tracked
/// run left open when the job goes on elsewhere.
struct ServerSink<'a> {
    ctx: &'a RunnerContext,
    id: &'a str,
    lease: &'a Lease,
}

impl RunSink for ServerSink<'_> {
    fn event(&mut self, event: &TrainEvent) {
        let Ok(value) = serde_json::to_value(event) else {
            return;
        };
        let kind = value
            .get("event")
            .and_then(|k| k.as_str())
            .unwrap_or("event")
            .to_string();
        self.ctx.publish(self.id, &kind, value, self.lease.attempt);
    }

    fn results_written(&mut self, root: &std::path::Path) -> Result<()> {
        check_lease(self.lease)?;
        if self.ctx.objects.is_remote() {
            with_retries(|| mirror::upload_results(&self.ctx.objects, self.id, root))?;
        }
        Ok(())
    }

    fn tracked_end(&self, outcome: &Result<JobOutput>) -> Option<RunEnd> {
        match (outcome, self.lease.stop_reason()) {
            // Handed over or lost: the worker that takes the job on logs into the same run.
            (Err(KilnError::Cancelled), Some(StopReason::Handover | StopReason::Lost)) => None,
            _ => Some(run_end(outcome)),
        }
    }

    fn extra_artifacts(&self, outcome: &Result<JobOutput>) -> Vec<Artifact> {
        let Ok(output) = outcome else {
            return Vec::new();
        };
        kiln::store::ModelId::parse(&output.info.model_id)
            .ok()
            .and_then(|model| {
                futures::executor::block_on(self.ctx.store.get(&model))
                    .ok()
                    .flatten()
            })
            .map(|bytes| vec![Artifact::Bytes("best_model.kiln".into(), bytes)])
            .unwrap_or_default()
    }

    fn tracking_warnings(&mut self, lines: Vec<String>) {
        for line in lines {
            self.ctx.publish(
                self.id,
                "warning",
                serde_json::json!({ "event": "warning", "message": line }),
                self.lease.attempt,
            );
        }
    }
}

/// Tries an object-store call three times, a second and then two apart.
fn with_retries<T>(mut call: impl FnMut() -> Result<T>) -> Result<T> {
    let mut pause = Duration::from_secs(1);
    let mut tries = 1;
    loop {
        match call() {
            Err(e) if tries < 3 => {
                tracing::warn!("{e}; trying again");
                std::thread::sleep(pause);
                pause *= 2;
                tries += 1;
            }
            other => return other,
        }
    }
}

/// A server job's checkpoints: written to its run directory, copied to the shared object store
/// (when there is one), then recorded in the registry under the job's lease — so a checkpoint
/// is recorded only once it is all there, and only by the lease holder.
struct SharedCheckpoints<'a> {
    run_dir: RunDir,
    ctx: &'a RunnerContext,
    lease: &'a Lease,
    /// The checkpoint recorded last.
    recorded: Option<StoredCheckpoint>,
}

impl CheckpointSink for SharedCheckpoints<'_> {
    fn save(&mut self, checkpoint: CheckpointData<'_>) -> Result<()> {
        check_lease(self.lease)?;
        let (epoch, step) = (checkpoint.state.epochs_done, checkpoint.state.step);
        self.run_dir.save(checkpoint)?;
        let (ctx, id, attempt) = (self.ctx, self.lease.job.as_str(), self.lease.attempt);
        let stored = StoredCheckpoint {
            epoch,
            step,
            attempt,
        };
        if ctx.objects.is_remote() {
            let root = self.run_dir.root.clone();
            if let Err(e) = with_retries(|| {
                check_lease(self.lease)?;
                mirror::upload_checkpoint(&ctx.objects, id, &root, stored)
            }) {
                check_lease(self.lease)?;
                // Training goes on; the next checkpoint tries again. Nothing is recorded, so a
                // worker taking over resumes from the last checkpoint that is really there.
                ctx.publish(
                    id,
                    "checkpointFailed",
                    serde_json::json!({
                        "event": "checkpointFailed",
                        "epoch": epoch,
                        "step": step,
                        "error": e.to_string(),
                        "recordedEpoch": self.recorded.map(|c| c.epoch),
                    }),
                    attempt,
                );
                return Ok(());
            }
        }
        let record = serde_json::to_string(&stored)
            .map_err(|e| KilnError::Internal(format!("cannot encode checkpoint record: {e}")))?;
        let recorded = ctx
            .runtime
            .block_on(retry_while_unreachable(Duration::from_secs(60), || {
                ctx.hub.registry().record_checkpoint(id, attempt, &record)
            }));
        match recorded {
            Ok(true) => {
                if ctx.objects.is_remote() && self.recorded != Some(stored) {
                    mirror::drop_checkpoints_but(&ctx.objects, id, stored);
                }
                self.recorded = Some(stored);
                Ok(())
            }
            Ok(false) => {
                self.lease.stop_for(StopReason::Lost);
                Err(KilnError::Cancelled)
            }
            Err(e) => Err(KilnError::Internal(format!(
                "cannot record checkpoint {epoch} in the registry: {e}"
            ))),
        }
    }

    fn last_location(&self) -> Option<String> {
        self.run_dir.last_location()
    }
}
