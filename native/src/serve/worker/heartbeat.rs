//! The worker's heartbeat: renews the leases of the jobs it trains (a third of `--lease-secs`
//! apart), records that it is alive, and picks up cancel and drain requests; a lease it cannot
//! renew in time stops its job here before another worker may take it.

use crate::serve::lease::StopReason;
use crate::serve::registry::{Registry, now_ms};
use crate::serve::scheduler::Scheduler;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::timeout;

/// Runs until the runtime stops.
pub async fn beat(registry: Registry, worker: String, scheduler: Arc<Scheduler>, lease: Duration) {
    tokio::join!(
        stop_expiring(&scheduler),
        renew(&registry, &worker, &scheduler, lease)
    );
}

/// Stops, here, the jobs whose leases could not be renewed in time (the database is
/// unreachable or slow) — checked on its own clock, whatever the renewals are waiting for.
async fn stop_expiring(scheduler: &Scheduler) {
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tick.tick().await;
        for held in scheduler.leases() {
            if held.expiring() && !held.lost() {
                tracing::warn!(
                    "job {}: its lease could not be renewed in time; stopping it \
                     here (another worker resumes it from its latest checkpoint)",
                    held.job
                );
                scheduler.stop_job(&held.job, StopReason::Lost, false);
            }
        }
    }
}

/// Renews the held leases a third of a lease apart, records the worker's heartbeat and picks
/// up drain and cancel requests; each registry call gives up after a third of a lease (it is
/// tried again at the next beat).
async fn renew(registry: &Registry, worker: &str, scheduler: &Scheduler, lease: Duration) {
    let every = (lease / 3).max(Duration::from_millis(200));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut drain_mode = 0;
    loop {
        tick.tick().await;
        for held in scheduler.leases() {
            if held.lost() {
                continue;
            }
            // The registry's expiry and the local one both count from before the request.
            let asked = Instant::now();
            let until = now_ms() + lease.as_millis() as i64;
            match timeout(
                every,
                registry.renew(&held.job, worker, held.attempt, until),
            )
            .await
            {
                Ok(Ok(true)) => held.renewed(asked),
                Ok(Ok(false)) => {
                    tracing::warn!(
                        "job {}: its lease is held by another worker now; stopping it here",
                        held.job
                    );
                    scheduler.stop_job(&held.job, StopReason::Lost, false);
                }
                _ => {} // retried at the next beat; `stop_expiring` decides
            }
        }
        if let Ok(Ok(Some(mode))) = timeout(every, registry.worker_heartbeat(worker)).await
            && mode > drain_mode
        {
            drain_mode = mode;
            scheduler.drain(mode == 2);
        }
        if let Ok(Ok(cancelled)) = timeout(every, registry.cancel_requests(worker)).await {
            for job in cancelled {
                scheduler.stop_job(&job, StopReason::Cancel, false);
            }
        }
    }
}
