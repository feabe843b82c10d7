//! Writes what training threads report (events, progress, status changes) to the registry on
//! the async runtime, one record after another in the order sent, so a training step does not
//! wait for the database. The queue is bounded: once [`QUEUE_CAPACITY`] records wait (the
//! database is slow or restarting), a training thread's next record waits for room, so an
//! outage holds training back instead of growing memory without bound, and no record is
//! dropped. Every record carries its lease attempt: a write the registry refuses (the lease
//! moved to another worker) stops the job here; a write that fails because the database is
//! unreachable (restarting) is retried until it goes through.

use crate::serve::hub::Hub;
use crate::serve::lease::StopReason;
use crate::serve::registry::{JobEnd, retry_while_unreachable};
use crate::serve::scheduler::Scheduler;
use std::sync::Arc;
use std::time::Duration;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

/// How many records may wait for the writer before senders wait for room.
pub const QUEUE_CAPACITY: usize = 10_000;

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
        status: kiln::JobStatus,
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
    records: mpsc::Sender<Record>,
}

impl Recorder {
    /// Starts the writer on `runtime`; jobs whose lease turns out lost are stopped through
    /// `scheduler`.
    pub fn start(runtime: &Handle, hub: Hub, scheduler: Arc<Scheduler>) -> Self {
        Self::with_capacity(runtime, hub, scheduler, QUEUE_CAPACITY)
    }

    fn with_capacity(
        runtime: &Handle,
        hub: Hub,
        scheduler: Arc<Scheduler>,
        capacity: usize,
    ) -> Self {
        let (records, mut incoming) = mpsc::channel(capacity);
        runtime.spawn(async move {
            let mut refused = std::collections::HashSet::new();
            while let Some(record) = incoming.recv().await {
                write_retrying(&hub, &scheduler, record, &mut refused).await;
            }
        });
        Self { records }
    }

    /// Queues a record. Called from training threads (never from async code): when the queue
    /// is full it waits until the writer has made room.
    pub fn send(&self, record: Record) {
        match self.records.try_send(record) {
            Ok(()) | Err(TrySendError::Closed(_)) => {}
            Err(TrySendError::Full(record)) if Handle::try_current().is_err() => {
                let _ = self.records.blocking_send(record);
            }
            Err(TrySendError::Full(record)) => {
                // Async code must not block its runtime thread: queue from a task instead.
                let records = self.records.clone();
                tokio::spawn(async move {
                    let _ = records.send(record).await;
                });
            }
        }
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

/// Writes one record. A write the registry refuses (the lease is another worker's now) stops
/// the job here and is said once per job, however many of its records were still queued.
async fn write_retrying(
    hub: &Hub,
    scheduler: &Scheduler,
    record: Record,
    refused: &mut std::collections::HashSet<String>,
) {
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
            if refused.len() > 10_000 {
                refused.clear(); // a bound on memory; at worst a job is named twice
            }
            if refused.insert(job.clone()) {
                tracing::warn!(
                    "job {job}: the registry refused a write — its lease is held by \
                     another worker now; stopping it here (its later records are dropped too)"
                );
            }
            scheduler.stop_job(&job, StopReason::Lost, false);
        }
        Err(e) => tracing::warn!("cannot record for {job}: {e}"),
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
            let _ = registry
                .notify(crate::serve::listener::JOBS_CHANNEL, &job)
                .await;
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
            let end = JobEnd {
                status,
                result: result.as_ref(),
                error: error.as_deref(),
                finished_at: at,
            };
            // The final event goes with the job's end, or not at all (a queued job may have
            // been cancelled already). A job's end is retried for as long as it takes: a
            // finished job must never look unfinished (and be claimed again) for want of it.
            retry_while_unreachable(Duration::MAX, || hub.finish(&job, &end, attempt)).await?;
            Ok(Written::Done)
        }
        Record::Flush(done) => {
            let _ = done.send(());
            Ok(Written::Done)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::registry::Registry;

    /// A full queue makes the sender wait for the writer; every record is written, in order.
    #[test]
    fn a_full_queue_holds_the_sender_until_the_writer_makes_room() {
        let dir = tempfile::tempdir().expect("temp dir");
        let writer = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let registry = writer
            .block_on(Registry::open_file(&dir.path().join("registry.db")))
            .expect("registry");
        let hub = Hub::new(registry.clone(), "test-worker".into());
        // The writer task runs only while the test drives `writer`: until then nothing is
        // taken off the queue.
        let recorder = Recorder::with_capacity(writer.handle(), hub, Arc::default(), 3);
        let sender = recorder.clone();
        let sent = std::thread::spawn(move || {
            for step in 0..5 {
                sender.send(Record::Event {
                    job: "job-1".into(),
                    kind: "note".into(),
                    data: serde_json::json!({ "step": step }),
                    attempt: 0,
                });
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        assert!(
            !sent.is_finished(),
            "the 4th record must wait while 3 are queued"
        );
        writer.block_on(async {
            while !sent.is_finished() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        sent.join().expect("sender");
        let flushed = recorder.clone();
        let flush = std::thread::spawn(move || flushed.flush(Duration::from_secs(10)));
        writer.block_on(async {
            while !flush.is_finished() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        let events = writer
            .block_on(registry.events_after("job-1", 0))
            .expect("events");
        let steps: Vec<i64> = events
            .iter()
            .map(|e| {
                serde_json::from_str::<serde_json::Value>(&e.data).expect("json")["step"]
                    .as_i64()
                    .expect("step")
            })
            .collect();
        assert_eq!(steps, vec![0, 1, 2, 3, 4]);
    }
}
