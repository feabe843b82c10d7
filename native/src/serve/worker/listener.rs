//! PostgreSQL notifications between the servers of a fleet: recorded events (forwarded to this
//! server's followers), newly queued jobs (this worker's threads look for work), cancel and
//! drain requests. SQLite has one server, which needs none of this.

use crate::serve::hub::{EVENTS_CHANNEL, Hub};
use crate::serve::lease::StopReason;
use crate::serve::scheduler::Scheduler;
use sqlx::postgres::PgListener;
use std::sync::Arc;
use std::time::Duration;

/// A job was queued (or put back in the queue): payload its id.
pub const JOBS_CHANNEL: &str = "kiln_jobs";
/// A cancel was asked for: payload the job id.
pub const CANCEL_CHANNEL: &str = "kiln_cancel";
/// A worker was asked to drain: payload `<worker id>|<handover: 0 or 1>`.
pub const DRAIN_CHANNEL: &str = "kiln_drain";

/// Listens on `url` until the runtime stops, reconnecting when the connection drops.
pub async fn listen(url: String, worker: String, hub: Hub, scheduler: Arc<Scheduler>) {
    loop {
        if let Err(e) = listen_once(&url, &worker, &hub, &scheduler).await {
            tracing::warn!("notifications interrupted (reconnecting): {e}");
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// One connection's worth of notifications: returns when it fails.
async fn listen_once(
    url: &str,
    worker: &str,
    hub: &Hub,
    scheduler: &Scheduler,
) -> Result<(), sqlx::Error> {
    let mut listener = PgListener::connect(url).await?;
    let channels = [EVENTS_CHANNEL, JOBS_CHANNEL, CANCEL_CHANNEL, DRAIN_CHANNEL];
    listener.listen_all(channels).await?;
    // Whatever was announced while not listening is read from the registry.
    hub.catch_up_all().await;
    scheduler.wake();
    loop {
        match listener.try_recv().await? {
            Some(n) => handle(worker, hub, scheduler, n.channel(), n.payload()).await,
            // The connection was lost and re-established: catch up on what was missed.
            None => {
                hub.catch_up_all().await;
                scheduler.wake();
            }
        }
    }
}

async fn handle(worker: &str, hub: &Hub, scheduler: &Scheduler, channel: &str, payload: &str) {
    match channel {
        EVENTS_CHANNEL => {
            if let Some((origin, job)) = payload.split_once('|') {
                hub.forward(origin, job).await;
            }
        }
        JOBS_CHANNEL => scheduler.wake(),
        CANCEL_CHANNEL => {
            scheduler.stop_job(payload, StopReason::Cancel, false);
        }
        DRAIN_CHANNEL => {
            if let Some((target, handover)) = payload.split_once('|')
                && target == worker
            {
                scheduler.drain(handover == "1");
            }
        }
        _ => {}
    }
}
