//! Writes what training threads report (events, progress, status changes) to the registry on
//! the async runtime, one record after another in the order sent, so a training step never
//! waits for SQLite.

use super::hub::Hub;
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
    },
    /// The job started (or resumed) processing.
    Processing {
        /// The job.
        job: String,
    },
    /// The server is stopping: the job goes back to the queue.
    Requeued {
        /// The job.
        job: String,
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
    /// Starts the writer on `runtime`.
    pub fn start(runtime: &Handle, hub: Hub) -> Self {
        let (records, mut incoming) = mpsc::unbounded_channel();
        runtime.spawn(async move {
            while let Some(record) = incoming.recv().await {
                write(&hub, record).await;
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

async fn write(hub: &Hub, record: Record) {
    let registry = hub.registry();
    let (job, outcome) = match record {
        Record::Event { job, kind, data } => {
            // A progress event is also the job's latest progress (without its tag).
            let mut outcome = Ok(());
            if kind == "progress" {
                let mut progress = data.clone();
                if let Some(fields) = progress.as_object_mut() {
                    fields.remove("event");
                }
                outcome = registry.set_progress(&job, &progress.to_string()).await;
            }
            if outcome.is_ok() {
                outcome = hub.publish(&job, &kind, data.to_string()).await.map(drop);
            }
            (job, outcome)
        }
        Record::Processing { job } => {
            let mut outcome = registry.mark_processing(&job).await;
            if outcome.is_ok() {
                let status = serde_json::json!({ "status": "processing" }).to_string();
                outcome = hub.publish(&job, "status", status).await.map(drop);
            }
            (job, outcome)
        }
        Record::Requeued { job } => {
            let mut outcome = registry.mark_queued(&job).await;
            if outcome.is_ok() {
                let reason = serde_json::json!({ "reason": "the server is stopping; the job resumes from its latest checkpoint when it starts again" });
                outcome = hub
                    .publish(&job, "interrupted", reason.to_string())
                    .await
                    .map(drop);
            }
            (job, outcome)
        }
        Record::Finish {
            job,
            status,
            result,
            error,
        } => {
            let result_json = result.as_ref().map(|r| r.to_string());
            let ended = registry
                .finish(&job, status, result_json.as_deref(), error.as_deref())
                .await;
            // Only the call that ended the job announces it (a queued job may have been
            // cancelled already).
            let outcome = match ended {
                Ok(true) => {
                    let event =
                        serde_json::json!({ "status": status, "error": error, "result": result });
                    hub.publish(&job, "status", event.to_string())
                        .await
                        .map(drop)
                }
                Ok(false) => Ok(()),
                Err(e) => Err(e),
            };
            (job, outcome)
        }
        Record::Flush(done) => {
            let _ = done.send(());
            return;
        }
    };
    if let Err(e) = outcome {
        eprintln!("kiln serve: cannot record for {job}: {e}");
    }
}
