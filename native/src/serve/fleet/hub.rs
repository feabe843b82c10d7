//! Job events: every event is appended to the registry (so a reconnecting client can catch up
//! with `Last-Event-ID`, on any server of the fleet) and then handed to this server's live
//! subscribers of its job. Events written by other servers arrive through a PostgreSQL
//! notification (see `listener`), and are read from the registry and forwarded the same way.

use crate::serve::registry::{EventRow, JobEnd, Registry};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// The channel that announces a recorded event: payload `<origin worker>|<job id>`.
pub const EVENTS_CHANNEL: &str = "kiln_events";

#[derive(Debug)]
struct Live {
    sender: broadcast::Sender<EventRow>,
    /// The last event handed to the subscribers.
    last: i64,
}

/// Live subscribers per job.
#[derive(Debug, Clone)]
pub struct Hub {
    registry: Registry,
    origin: String,
    live: Arc<Mutex<HashMap<String, Live>>>,
}

/// Whether an event ends its job's stream (a `status` event with a final status).
pub fn is_terminal(event: &EventRow) -> bool {
    event.kind == "status"
        && serde_json::from_str::<serde_json::Value>(&event.data)
            .ok()
            .and_then(|v| v.get("status")?.as_str()?.parse::<kiln::JobStatus>().ok())
            .is_some_and(kiln::JobStatus::is_final)
}

impl Hub {
    /// A hub over the registry, for the worker `origin`.
    pub fn new(registry: Registry, origin: String) -> Self {
        Self {
            registry,
            origin,
            live: Arc::default(),
        }
    }

    fn senders(&self) -> std::sync::MutexGuard<'_, HashMap<String, Live>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an event and sends it to the job's subscribers (here, and on the other servers
    /// through a notification); a terminal event closes them. With `attempt` > 0 the event is
    /// written only while that lease attempt holds the job (`None`: refused).
    pub async fn publish(
        &self,
        job_id: &str,
        kind: &str,
        data: String,
        attempt: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        let Some(seq) = self
            .registry
            .append_event(job_id, kind, &data, attempt)
            .await?
        else {
            return Ok(None);
        };
        self.announce(
            job_id,
            EventRow {
                seq,
                kind: kind.to_string(),
                data,
                attempt,
            },
        )
        .await;
        Ok(Some(seq))
    }

    /// Ends a job (see [`Registry::finish`]: the job row and its final `status` event in one
    /// transaction) and sends that event to its subscribers, which it closes. Returns whether
    /// this call ended the job.
    pub async fn finish(
        &self,
        job_id: &str,
        end: &JobEnd<'_>,
        attempt: i64,
    ) -> Result<bool, sqlx::Error> {
        let Some(event) = self.registry.finish(job_id, end, attempt).await? else {
            return Ok(false);
        };
        self.announce(job_id, event).await;
        Ok(true)
    }

    /// Hands a recorded event to this server's subscribers and tells the other servers.
    async fn announce(&self, job_id: &str, event: EventRow) {
        self.deliver(job_id, vec![event]);
        // Followers elsewhere catch up from the registry (and every few seconds anyway), so a
        // lost notification only delays them.
        let _ = self
            .registry
            .notify(EVENTS_CHANNEL, &format!("{}|{job_id}", self.origin))
            .await;
    }

    fn deliver(&self, job_id: &str, events: Vec<EventRow>) {
        let mut senders = self.senders();
        let Some(live) = senders.get_mut(job_id) else {
            return;
        };
        let mut terminal = false;
        for event in events {
            if event.seq <= live.last {
                continue;
            }
            live.last = event.seq;
            terminal |= is_terminal(&event);
            let _ = live.sender.send(event);
        }
        if terminal {
            senders.remove(job_id);
        }
    }

    /// Hands the job's events recorded by another server to the subscribers here.
    pub async fn forward(&self, origin: &str, job_id: &str) {
        if origin == self.origin {
            return;
        }
        self.catch_up(job_id).await;
    }

    async fn catch_up(&self, job_id: &str) {
        let Some(last) = self.senders().get(job_id).map(|l| l.last) else {
            return;
        };
        if let Ok(events) = self.registry.events_after(job_id, last).await {
            self.deliver(job_id, events);
        }
    }

    /// Catches every followed job up from the registry (after notifications may have been
    /// missed: the database connection was lost).
    pub async fn catch_up_all(&self) {
        let jobs: Vec<String> = self.senders().keys().cloned().collect();
        for job in jobs {
            self.catch_up(&job).await;
        }
    }

    /// A receiver of the job's future events.
    pub fn subscribe(&self, job_id: &str) -> broadcast::Receiver<EventRow> {
        self.senders()
            .entry(job_id.to_string())
            .or_insert_with(|| Live {
                sender: broadcast::channel(1024).0,
                last: 0,
            })
            .sender
            .subscribe()
    }

    /// Ends every live stream (server shutdown): followers read what is recorded and stop.
    pub fn close_all(&self) {
        self.senders().clear();
    }

    /// The registry behind the hub.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}
