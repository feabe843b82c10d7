//! Logs one run to MLflow from a thread of its own. The training loop only hands over points
//! (never waits); the thread creates the run, sends params and metrics in batches every couple
//! of seconds, retries with back-off while the server is down or slow, and at the end uploads
//! the artifacts, sets the final status and reports whatever it could not send.

use super::api_error::ApiError;
use super::mlflow_api::{MlflowApi, RunRef, TimedPoint, now_ms};
use super::mlflow_settings::MlflowSettings;
use crate::run_dir::{LoggedPoint, logged_points};
use kiln::train::TrainEvent;
use kiln::train::{MetricPoint, points_of};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// MLflow's `log-batch` limits per request.
const METRICS_PER_REQUEST: usize = 1000;
const PARAMS_PER_REQUEST: usize = 100;
const TAGS_PER_REQUEST: usize = 100;
/// Points waiting are sent at least this often.
const FLUSH_EVERY: Duration = Duration::from_secs(2);
/// Back-off between failed attempts: doubling from the first to the last.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const LAST_BACKOFF: Duration = Duration::from_secs(30);
/// One request's longest wait while training goes on.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Points held while the server is unreachable; beyond this the oldest are dropped (and
/// reported), so an absent server cannot grow memory without bound.
const MAX_WAITING_POINTS: usize = 1_000_000;

/// How the run ended, as MLflow names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunEnd {
    /// The job completed.
    Finished,
    /// The job failed.
    Failed,
    /// The job was cancelled or interrupted.
    Killed,
}

impl RunEnd {
    fn status(self) -> &'static str {
        match self {
            Self::Finished => "FINISHED",
            Self::Failed => "FAILED",
            Self::Killed => "KILLED",
        }
    }
}

/// A file to upload at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Artifact {
    /// A file on disk, uploaded under its own name (skipped when it does not exist).
    File(PathBuf),
    /// Bytes uploaded under a name.
    Bytes(String, Vec<u8>),
}

/// What the tracker managed, and what it could not send (one line each, empty when all went up).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrackerReport {
    /// The MLflow run, once created.
    pub run_id: Option<String>,
    /// What was not sent, and why.
    pub unsent: Vec<String>,
}

enum Message {
    /// Points as they are logged, stamped when handed over (the uploader may be busy with a
    /// slow server for a while before it reads them).
    Points(Vec<TimedPoint>),
    /// What a resumed run logged before its checkpoint, with when it was logged.
    History(Vec<LoggedPoint>),
    /// A line for the report: something that will not be sent.
    Unsent(String),
    Finish {
        end: Option<RunEnd>,
        artifacts: Vec<Artifact>,
        deadline: Instant,
    },
}

/// A run being logged to MLflow.
pub struct MlflowTracker {
    sender: Sender<Message>,
    thread: Option<JoinHandle<TrackerReport>>,
}

impl MlflowTracker {
    /// Starts logging: the run is created (or resumed) on the tracker's thread, in the
    /// background.
    pub fn start(settings: MlflowSettings) -> Self {
        let (sender, receiver) = channel();
        let thread = std::thread::Builder::new()
            .name("kiln-mlflow".into())
            .spawn(move || Uploader::new(settings).run(receiver))
            .ok();
        Self { sender, thread }
    }

    /// Hands over a training event's points (returns at once).
    pub fn log(&self, event: &TrainEvent) {
        let points = points_of(event);
        if !points.is_empty() {
            self.log_points(points);
        }
    }

    /// Hands over points (returns at once).
    pub fn log_points(&self, points: Vec<MetricPoint>) {
        let timestamp_ms = now_ms();
        let timed = points
            .into_iter()
            .map(|point| TimedPoint {
                point,
                timestamp_ms,
            })
            .collect();
        let _ = self.sender.send(Message::Points(timed));
    }

    /// Hands over what a resumed run logged before its checkpoint (the run directory `root`'s
    /// metrics.jsonl, read now: call it before training appends to the file). The tracker sends
    /// the steps its MLflow run lacks — those an earlier process computed but died (kill -9)
    /// before sending, or all of them when the run is new to MLflow — and skips those it has.
    /// Nothing is sent into a run named by `tracking.mlflow.run_id`: what that run holds is not
    /// this run's to complete.
    pub fn log_history(&self, root: &Path) {
        let message = match logged_points(root) {
            Ok(points) => Message::History(points),
            Err(e) => Message::Unsent(format!("the metrics logged before the checkpoint ({e})")),
        };
        let _ = self.sender.send(message);
    }

    /// Ends the run: sends what is left, uploads `artifacts`, sets the status to `end` (`None`
    /// leaves the run running, for a job that goes on elsewhere), waiting at most `within`
    /// for the server — also when a request to a slow server is still under way — and returns
    /// what could not be sent.
    pub fn finish(
        mut self,
        end: Option<RunEnd>,
        artifacts: Vec<Artifact>,
        within: Duration,
    ) -> TrackerReport {
        let deadline = Instant::now() + within;
        let _ = self.sender.send(Message::Finish {
            end,
            artifacts,
            deadline,
        });
        // The tracker answers by the deadline unless a request is still waiting on the server;
        // then it is left behind (a grace second later) and reported as such.
        let Some(thread) = self.thread.take() else {
            return stopped("the MLflow tracker could not be started");
        };
        let grace = deadline + Duration::from_secs(1);
        while !thread.is_finished() && Instant::now() < grace {
            std::thread::sleep(Duration::from_millis(20));
        }
        if !thread.is_finished() {
            return stopped(&format!(
                "whatever was still waiting (the tracking server had not answered within {} s)",
                within.as_secs_f64()
            ));
        }
        thread
            .join()
            .unwrap_or_else(|_| stopped("the MLflow tracker stopped unexpectedly; nothing more"))
    }
}

fn stopped(what: &str) -> TrackerReport {
    TrackerReport {
        run_id: None,
        unsent: vec![what.to_string()],
    }
}

/// The tracker thread's state.
struct Uploader {
    settings: MlflowSettings,
    api: Result<MlflowApi, ApiError>,
    run: Option<RunRef>,
    params: Vec<(String, String)>,
    tags: Vec<(String, String)>,
    points: VecDeque<TimedPoint>,
    dropped_points: u64,
    non_finite: u64,
    refused: Vec<String>,
    /// A refusal that ends all sending (the run cannot be created).
    broken: Option<String>,
    last_error: Option<ApiError>,
    backoff: Duration,
    next_try: Instant,
}

impl Uploader {
    fn new(settings: MlflowSettings) -> Self {
        Self {
            api: MlflowApi::new(&settings.uri),
            params: settings.params.clone(),
            tags: Vec::new(),
            settings,
            run: None,
            points: VecDeque::new(),
            dropped_points: 0,
            non_finite: 0,
            refused: Vec::new(),
            broken: None,
            last_error: None,
            backoff: FIRST_BACKOFF,
            next_try: Instant::now(),
        }
    }

    fn run(mut self, receiver: Receiver<Message>) -> TrackerReport {
        loop {
            let wait = self.next_try.saturating_duration_since(Instant::now());
            match receiver.recv_timeout(wait.max(Duration::from_millis(50))) {
                Ok(Message::Points(points)) => self.hold(points.into_iter()),
                Ok(Message::History(points)) => {
                    if self.settings.run_id.is_none() || self.settings.continues_own_run {
                        // Each point at the time it was logged, not now: a back-filled step
                        // keeps its place in time in MLflow's charts.
                        let now = now_ms();
                        self.hold(points.into_iter().map(|logged| TimedPoint {
                            point: logged.point,
                            timestamp_ms: logged.logged_at_ms.unwrap_or(now),
                        }));
                    }
                }
                Ok(Message::Unsent(line)) => self.refused.push(line),
                Ok(Message::Finish {
                    end,
                    artifacts,
                    deadline,
                }) => return self.finish(end, artifacts, deadline),
                Err(RecvTimeoutError::Timeout) => {}
                // The run's owner went away without finishing (a panic): say so to the server.
                Err(RecvTimeoutError::Disconnected) => {
                    let deadline = Instant::now() + Duration::from_secs(5);
                    return self.finish(Some(RunEnd::Killed), Vec::new(), deadline);
                }
            }
            if Instant::now() >= self.next_try {
                self.attempt(REQUEST_TIMEOUT);
            }
        }
    }

    fn hold(&mut self, points: impl Iterator<Item = TimedPoint>) {
        for timed in points {
            if !timed.point.value.is_finite() {
                self.non_finite += 1;
                continue;
            }
            if self.points.len() >= MAX_WAITING_POINTS {
                self.points.pop_front();
                self.dropped_points += 1;
            }
            self.points.push_back(timed);
        }
    }

    fn has_work(&self) -> bool {
        self.run.is_none()
            || !self.params.is_empty()
            || !self.tags.is_empty()
            || !self.points.is_empty()
    }

    /// One round of sending; schedules the next by its outcome.
    fn attempt(&mut self, timeout: Duration) {
        if self.broken.is_some() || !self.has_work() {
            self.next_try = Instant::now() + FLUSH_EVERY;
            return;
        }
        match self.send_waiting(timeout) {
            Ok(()) => {
                self.backoff = FIRST_BACKOFF;
                self.next_try = Instant::now() + FLUSH_EVERY;
            }
            Err(e) => {
                self.next_try = Instant::now() + self.backoff;
                self.backoff = (self.backoff * 2).min(LAST_BACKOFF);
                self.last_error = Some(e);
            }
        }
    }

    fn api(&self) -> Result<&MlflowApi, ApiError> {
        self.api.as_ref().map_err(Clone::clone)
    }

    /// Creates (or resumes) the run when needed, then sends params, tags and points in batches.
    /// A batch the server refuses is dropped and reported; a retryable failure stops the round.
    fn send_waiting(&mut self, timeout: Duration) -> Result<(), ApiError> {
        let run_id = self.ensure_run(timeout)?;
        while !self.params.is_empty() {
            let n = self.params.len().min(PARAMS_PER_REQUEST);
            let result = self
                .api()?
                .log_batch(&run_id, &[], &self.params[..n], &[], timeout);
            self.settle(result, n, "params")?;
            self.params.drain(..n);
        }
        while !self.tags.is_empty() {
            let n = self.tags.len().min(TAGS_PER_REQUEST);
            let result = self
                .api()?
                .log_batch(&run_id, &[], &[], &self.tags[..n], timeout);
            self.settle(result, n, "tags")?;
            self.tags.drain(..n);
        }
        if self.settings.continues_own_run
            && let Some(run) = &self.run
            && !run.latest_steps.is_empty()
        {
            // A resumed run re-trains the steps after its checkpoint: MLflow has those already.
            let logged = &run.latest_steps;
            self.points.retain(|p| {
                logged
                    .get(&p.point.name)
                    .is_none_or(|&last| p.point.step > last)
            });
        }
        while !self.points.is_empty() {
            let n = self.points.len().min(METRICS_PER_REQUEST);
            let batch: Vec<TimedPoint> = self.points.iter().take(n).cloned().collect();
            let result = self.api()?.log_batch(&run_id, &batch, &[], &[], timeout);
            self.settle(result, n, "metric values")?;
            self.points.drain(..n);
        }
        Ok(())
    }

    /// Passes a retryable failure on; records a refusal (the batch is then dropped).
    fn settle(
        &mut self,
        result: Result<(), ApiError>,
        n: usize,
        what: &str,
    ) -> Result<(), ApiError> {
        match result {
            Err(e) if e.retryable => Err(e),
            Err(e) => {
                self.refused
                    .push(format!("{n} {what} refused by the server ({e})"));
                Ok(())
            }
            Ok(()) => Ok(()),
        }
    }

    fn ensure_run(&mut self, timeout: Duration) -> Result<String, ApiError> {
        if let Some(run) = &self.run {
            return Ok(run.run_id.clone());
        }
        let api = self.api()?;
        let outcome = match &self.settings.run_id {
            Some(run_id) => api.resume_run(run_id, timeout).map(|run| (run, true)),
            None => api
                .experiment_id(&self.settings.experiment, timeout)
                .and_then(|experiment| {
                    api.create_run(
                        &experiment,
                        &self.settings.run_name,
                        &self.settings.tags,
                        timeout,
                    )
                })
                .map(|run| (run, false)),
        };
        let (run, resumed) = match outcome {
            Ok(found) => found,
            Err(e) if !e.retryable => {
                self.broken = Some(e.message.clone());
                return Err(e);
            }
            Err(e) => return Err(e),
        };
        if resumed {
            // A run logged into again gets this job's tags as well.
            self.tags = self.settings.tags.clone();
        }
        if let Some(file) = &self.settings.run_id_file {
            let record = serde_json::json!({ "runId": run.run_id, "uri": self.settings.uri });
            let _ = kiln::store::write_atomic(file, record.to_string().as_bytes());
        }
        let id = run.run_id.clone();
        self.run = Some(run);
        Ok(id)
    }

    fn finish(
        mut self,
        end: Option<RunEnd>,
        artifacts: Vec<Artifact>,
        deadline: Instant,
    ) -> TrackerReport {
        let left = |deadline: Instant| deadline.saturating_duration_since(Instant::now());
        // Everything waiting, retried with back-off until the deadline.
        while self.broken.is_none() && self.has_work() && !left(deadline).is_zero() {
            self.attempt(left(deadline).min(REQUEST_TIMEOUT));
            if self.has_work() && self.broken.is_none() {
                let pause = self.next_try.saturating_duration_since(Instant::now());
                if pause >= left(deadline) {
                    break;
                }
                std::thread::sleep(pause);
            }
        }
        let mut unsent_artifacts = Vec::new();
        if self.settings.log_artifacts {
            for artifact in artifacts {
                if let Err(e) = self.upload(&artifact, deadline) {
                    unsent_artifacts.push(format!("artifact {} ({e})", artifact_name(&artifact)));
                }
            }
        }
        let mut status_error = None;
        if let Some(end) = end {
            status_error = self.set_status(end, deadline).err();
        }
        self.report(end, unsent_artifacts, status_error)
    }

    fn upload(&self, artifact: &Artifact, deadline: Instant) -> Result<(), ApiError> {
        let run = self.run.as_ref().ok_or_else(|| self.no_run())?;
        let (name, bytes) = match artifact {
            Artifact::File(path) => {
                if !path.exists() {
                    return Ok(());
                }
                let bytes = std::fs::read(path).map_err(|e| ApiError {
                    message: format!("cannot read {}: {e}", path.display()),
                    retryable: false,
                })?;
                (artifact_name(artifact), bytes)
            }
            Artifact::Bytes(name, bytes) => (name.clone(), bytes.clone()),
        };
        let api = self.api()?;
        retry_until(deadline, || {
            let timeout = deadline
                .saturating_duration_since(Instant::now())
                .min(REQUEST_TIMEOUT * 3);
            api.upload_artifact(run, &name, bytes.clone(), timeout)
        })
    }

    fn set_status(&self, end: RunEnd, deadline: Instant) -> Result<(), ApiError> {
        let run = self.run.as_ref().ok_or_else(|| self.no_run())?;
        let api = self.api()?;
        retry_until(deadline, || {
            let timeout = deadline
                .saturating_duration_since(Instant::now())
                .min(REQUEST_TIMEOUT);
            api.set_status(&run.run_id, end.status(), Some(now_ms()), timeout)
        })
    }

    fn no_run(&self) -> ApiError {
        ApiError {
            message: "the MLflow run was never created".into(),
            retryable: false,
        }
    }

    fn report(
        self,
        end: Option<RunEnd>,
        artifacts: Vec<String>,
        status: Option<ApiError>,
    ) -> TrackerReport {
        let reason = self
            .broken
            .clone()
            .or_else(|| self.last_error.as_ref().map(|e| e.message.clone()))
            .unwrap_or_else(|| "no answer in time".into());
        let mut unsent = Vec::new();
        if self.run.is_none() {
            unsent.push(format!(
                "the MLflow run was never created on {} ({reason})",
                self.settings.uri
            ));
        }
        if !self.params.is_empty() {
            unsent.push(format!("{} params ({reason})", self.params.len()));
        }
        if !self.tags.is_empty() {
            unsent.push(format!("{} tags ({reason})", self.tags.len()));
        }
        if !self.points.is_empty() {
            let mut series: Vec<&str> = self.points.iter().map(|p| p.point.name.as_str()).collect();
            series.sort_unstable();
            series.dedup();
            unsent.push(format!(
                "{} metric values of {} from step {} ({reason})",
                self.points.len(),
                series.join(", "),
                self.points.front().map_or(0, |p| p.point.step)
            ));
        }
        if self.dropped_points > 0 {
            unsent.push(format!(
                "{} older metric values dropped while the server was unreachable (at most \
                 {MAX_WAITING_POINTS} are held)",
                self.dropped_points
            ));
        }
        if self.non_finite > 0 {
            unsent.push(format!(
                "{} metric values that were NaN or infinite (MLflow's JSON cannot hold them)",
                self.non_finite
            ));
        }
        unsent.extend(self.refused);
        unsent.extend(artifacts);
        if let (Some(end), Some(e)) = (end, status) {
            unsent.push(format!("the run's final status {} ({e})", end.status()));
        }
        TrackerReport {
            run_id: self.run.map(|r| r.run_id),
            unsent,
        }
    }
}

fn artifact_name(artifact: &Artifact) -> String {
    match artifact {
        Artifact::File(path) => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "artifact".into()),
        Artifact::Bytes(name, _) => name.clone(),
    }
}

/// Calls `call` until it succeeds, fails for good, or the deadline comes (back-off between).
fn retry_until(
    deadline: Instant,
    mut call: impl FnMut() -> Result<(), ApiError>,
) -> Result<(), ApiError> {
    let mut pause = FIRST_BACKOFF;
    loop {
        if deadline <= Instant::now() {
            return Err(ApiError {
                message: "out of time waiting for the tracking server".into(),
                retryable: true,
            });
        }
        match call() {
            Ok(()) => return Ok(()),
            Err(e) if !e.retryable => return Err(e),
            Err(e) => {
                if Instant::now() + pause >= deadline {
                    return Err(e);
                }
                std::thread::sleep(pause);
                pause = (pause * 2).min(LAST_BACKOFF);
            }
        }
    }
}
