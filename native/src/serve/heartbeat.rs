//! The worker's heartbeat: renews the leases of the jobs it trains (a third of `--lease-secs`
//! apart), records that it is alive, and picks up cancel and drain requests; a lease it cannot
//! renew in time stops its job here before another worker may take it.

use super::lease::StopReason;
use super::registry::{Registry, now_ms};
use super::scheduler::Scheduler;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Runs until the runtime stops.
pub async fn beat(registry: Registry, worker: String, scheduler: Arc<Scheduler>, lease: Duration) {
    let renew_every = (lease / 3).max(Duration::from_millis(200));
    let mut tick = tokio::time::interval(Duration::from_millis(200).min(renew_every));
    let mut last_renewal = Instant::now() - renew_every;
    let mut drain_mode = 0;
    loop {
        tick.tick().await;
        // Stop what can no longer be renewed in time (the database is unreachable).
        for held in scheduler.leases() {
            if held.expiring() && !held.lost() {
                eprintln!(
                    "kiln serve: job {}: its lease could not be renewed in time; stopping it \
                     here (another worker resumes it from its latest checkpoint)",
                    held.job
                );
                scheduler.stop_job(&held.job, StopReason::Lost, false);
            }
        }
        if last_renewal.elapsed() < renew_every {
            continue;
        }
        last_renewal = Instant::now();
        let until = now_ms() + lease.as_millis() as i64;
        for held in scheduler.leases() {
            if held.lost() {
                continue;
            }
            match registry
                .renew(&held.job, &worker, held.attempt, until)
                .await
            {
                Ok(true) => held.renewed(),
                Ok(false) => {
                    eprintln!(
                        "kiln serve: job {}: its lease is held by another worker now; stopping it here",
                        held.job
                    );
                    scheduler.stop_job(&held.job, StopReason::Lost, false);
                }
                Err(_) => {} // retried at the next beat; `expiring` decides
            }
        }
        if let Ok(Some(mode)) = registry.worker_heartbeat(&worker).await
            && mode > drain_mode
        {
            drain_mode = mode;
            scheduler.drain(mode == 2);
        }
        if let Ok(cancelled) = registry.cancel_requests(&worker).await {
            for job in cancelled {
                scheduler.stop_job(&job, StopReason::Cancel, false);
            }
        }
    }
}
