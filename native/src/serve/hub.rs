//! Job events: every event is appended to the registry (so a reconnecting client can catch up
//! with `Last-Event-ID`) and then handed to the live subscribers of its job.

use super::registry::{EventRow, Registry};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::broadcast;

/// Live subscribers per job.
#[derive(Debug, Clone)]
pub struct Hub {
    registry: Registry,
    live: Arc<Mutex<HashMap<String, broadcast::Sender<EventRow>>>>,
}

/// Whether an event ends its job's stream (a `status` event with a final status).
pub fn is_terminal(event: &EventRow) -> bool {
    event.kind == "status"
        && serde_json::from_str::<serde_json::Value>(&event.data)
            .ok()
            .and_then(|v| v.get("status").and_then(|s| s.as_str()).map(str::to_string))
            .is_some_and(|s| matches!(s.as_str(), "completed" | "failed" | "cancelled"))
}

impl Hub {
    /// A hub over the registry.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            live: Arc::default(),
        }
    }

    fn senders(&self) -> std::sync::MutexGuard<'_, HashMap<String, broadcast::Sender<EventRow>>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records an event and sends it to the job's subscribers; a terminal event closes them.
    pub async fn publish(
        &self,
        job_id: &str,
        kind: &str,
        data: String,
    ) -> Result<i64, sqlx::Error> {
        let seq = self.registry.append_event(job_id, kind, &data).await?;
        let event = EventRow {
            seq,
            kind: kind.to_string(),
            data,
        };
        let terminal = is_terminal(&event);
        let mut senders = self.senders();
        if let Some(sender) = senders.get(job_id) {
            let _ = sender.send(event);
        }
        if terminal {
            senders.remove(job_id);
        }
        Ok(seq)
    }

    /// A receiver of the job's future events.
    pub fn subscribe(&self, job_id: &str) -> broadcast::Receiver<EventRow> {
        self.senders()
            .entry(job_id.to_string())
            .or_insert_with(|| broadcast::channel(1024).0)
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
