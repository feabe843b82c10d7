//! Writes what training threads report (events, progress, status changes) to the registry on
//! the async runtime, one record after another in the order sent, so a training step never
//! waits for the database. Every record carries its lease attempt: a write the registry refuses
//! (the lease moved to another worker) stops the job here; a write that fails because the
//! database is unreachable (restarting) is retried until it goes through.

use super::hub::Hub;
use super::lease::StopReason;
use super::registry::retry_while_unreachable;
use super::scheduler::Scheduler;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

/// One thing to record.
#[derive(Debug)]
pub enum Record {
    /// An engine event (`kind`: started, progress, evaluated, checkpoint, …); a progress
    /// event also becomes the job's latest progress.
    Event {
        /// The job.
        job: String,
        /// The SSE event name.
        kind: String,
        /// The event as JSON.
        data: serde_json::Value,
        /// The lease attempt.
        attempt: i64,
    },
    /// The job started (or resumed) processing.
    Processing {
        /// The job.
        job: String,
        /// The lease attempt.
        attempt: i64,
    },
    /// The worker stops or hands the job over: it goes back to the queue.
    Requeued {
        /// The job.
        job: String,
        /// The lease attempt.
        attempt: i64,
        /// Why (the `interrupted` event's reason).
        reason: String,
    },
    /// The job ended.
    Finish {
        /// The job.
        job: String,
        /// completed | failed | cancelled.
        status: &'static str,
        /// The result (completed jobs).
        result: Option<serde_json::Value>,
        /// Why it failed or was cancelled.
        error: Option<String>,
        /// The lease attempt.
        attempt: i64,
        /// When it ended on its worker (ms since the epoch): the record is written later.
        at: i64,
    },
    /// Answers once everything sent before it is written.
    Flush(std::sync::mpsc::Sender<()>),
}

/// The sending side; clones share one writer.
#[derive(Debug, Clone)]
pub struct Recorder {
    records: mpsc::UnboundedSender<Record>,
}

impl Recorder {
    /// Starts the writer on `runtime`; jobs whose lease turns out lost are stopped through
    /// `scheduler`.
    pub fn start(runtime: &Handle, hub: Hub, scheduler: Arc<Scheduler>) -> Self {
        let (records, mut incoming) = mpsc::unbounded_channel();
        runtime.spawn(async move {
            while let Some(record) = incoming.recv().await {
                write_retrying(&hub, &scheduler, record).await;
            }
        });
        Self { records }
    }

    /// Queues a record (never blocks).
    pub fn send(&self, record: Record) {
        let _ = self.records.send(record);
    }

    /// Waits (at most `timeout`) until everything sent so far is written.
    pub fn flush(&self, timeout: Duration) {
        let (done, written) = std::sync::mpsc::channel();
        self.send(Record::Flush(done));
        let _ = written.recv_timeout(timeout);
    }
}

/// What became of one record.
enum Written {
    Done,
    /// The registry refused it: the lease is no longer this worker's.
    Refused,
}

/// How long the writer keeps retrying one statement while the database is unreachable.
const RETRY_FOR: Duration = Duration::from_secs(300);

async fn retrying<T, F, Fut>(statement: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    retry_while_unreachable(RETRY_FOR, statement).await
}

async fn write_retrying(hub: &Hub, scheduler: &Scheduler, record: Record) {
    let job = match &record {
        Record::Event { job, .. }
        | Record::Processing { job, .. }
        | Record::Requeued { job, .. }
        | Record::Finish { job, .. } => job.clone(),
        Record::Flush(done) => {
            let _ = done.send(());
            return;
        }
    };
    match write(hub, record).await {
        Ok(Written::Done) => {}
        Ok(Written::Refused) => {
            eprintln!(
                "kiln serve: job {job}: the registry refused a write — its lease is held by \
                 another worker now; stopping it here"
            );
            scheduler.stop_job(&job, StopReason::Lost, false);
        }
        Err(e) => eprintln!("kiln serve: cannot record for {job}: {e}"),
    }
}

fn refused_if_none(seq: Option<i64>) -> Written {
    match seq {
        Some(_) => Written::Done,
        None => Written::Refused,
    }
}

async fn write(hub: &Hub, record: Record) -> Result<Written, sqlx::Error> {
    let registry = hub.registry();
    match record {
        Record::Event {
            job,
            kind,
            data,
            attempt,
        } => {
            // A progress event is also the job's latest progress (without its tag).
            if kind == "progress" {
                let mut progress = data.clone();
                if let Some(fields) = progress.as_object_mut() {
                    fields.remove("event");
                }
                let progress = progress.to_string();
                retrying(|| registry.set_progress(&job, &progress, attempt)).await?;
            }
            let data = data.to_string();
            let seq = retrying(|| hub.publish(&job, &kind, data.clone(), attempt)).await?;
            Ok(refused_if_none(seq))
        }
        Record::Processing { job, attempt } => {
            let status = serde_json::json!({ "status": "processing" }).to_string();
            let seq = retrying(|| hub.publish(&job, "status", status.clone(), attempt)).await?;
            Ok(refused_if_none(seq))
        }
        Record::Requeued {
            job,
            attempt,
            reason,
        } => {
            let reason = serde_json::json!({ "reason": reason }).to_string();
            let seq =
                retrying(|| hub.publish(&job, "interrupted", reason.clone(), attempt)).await?;
            if seq.is_none() || !retrying(|| registry.release(&job, attempt)).await? {
                return Ok(Written::Refused);
            }
            let _ = registry.notify(super::listener::JOBS_CHANNEL, &job).await;
            Ok(Written::Done)
        }
        Record::Finish {
            job,
            status,
            result,
            error,
            attempt,
            at,
        } => {
            let result_json = result.as_ref().map(|r| r.to_string());
            let ended = retrying(|| {
                registry.finish(
                    &job,
                    status,
                    result_json.as_deref(),
                    error.as_deref(),
                    attempt,
                    at,
                )
            })
            .await?;
            // Only the call that ended the job announces it (a queued job may have been
            // cancelled already).
            if ended {
                let event =
                    serde_json::json!({ "status": status, "error": error, "result": result })
                        .to_string();
                retrying(|| hub.publish(&job, "status", event.clone(), 0)).await?;
            }
            Ok(Written::Done)
        }
        Record::Flush(done) => {
            let _ = done.send(());
            Ok(Written::Done)
        }
    }
}
