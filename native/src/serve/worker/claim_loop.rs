//! The worker's training threads: each claims the oldest job this worker may run, runs it, and
//! again, until the server stops; stopping lets running jobs checkpoint at their epoch end.

use crate::serve::registry::now_ms;
use crate::serve::runner::{RunnerContext, run_claimed};
use crate::serve::scheduler::Scheduler;
use kiln::{KilnError, Result};
use std::sync::Arc;
use std::time::Duration;

/// How long stopping waits for running jobs to reach their epoch end and checkpoint.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// `count` threads that claim queued jobs and train them on `pool`.
pub fn start_training_threads(
    runner: &RunnerContext,
    pool: &Arc<rayon::ThreadPool>,
    count: usize,
) -> Result<Vec<std::thread::JoinHandle<()>>> {
    (0..count)
        .map(|i| {
            let runner = runner.clone();
            let pool = pool.clone();
            std::thread::Builder::new()
                .name(format!("kiln-job-{i}"))
                .spawn(move || claim_and_run(&runner, &pool))
                .map_err(|e| KilnError::Internal(format!("cannot start a training thread: {e}")))
        })
        .collect()
}

/// Stops the training threads: jobs finish their epoch and checkpoint; one that takes longer
/// than [`SHUTDOWN_GRACE`] is stopped at its next step and resumes from its previous checkpoint.
pub fn stop_training_threads(scheduler: &Scheduler, workers: Vec<std::thread::JoinHandle<()>>) {
    scheduler.stop();
    let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
    while workers.iter().any(|w| !w.is_finished()) && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    scheduler.stop_now();
    for worker in workers {
        let _ = worker.join();
    }
}

/// One training thread: claims the oldest job this worker may run, runs it, and again, until
/// the server stops; looks again when woken (a job was queued) or every poll interval (a
/// lease may have run out).
fn claim_and_run(runner: &RunnerContext, pool: &rayon::ThreadPool) {
    let poll = (runner.worker.lease / 4).clamp(Duration::from_millis(100), Duration::from_secs(1));
    let registry = runner.hub.registry();
    let mut failing = false;
    while !runner.scheduler.stopping() {
        if runner.scheduler.draining() {
            runner.scheduler.wait(poll);
            continue;
        }
        let asked = std::time::Instant::now();
        let until = now_ms() + runner.worker.lease.as_millis() as i64;
        let claimed = runner.runtime.block_on(registry.claim(
            &runner.worker.id,
            &runner.worker.labels,
            until,
        ));
        match claimed {
            Ok(Some(job)) => {
                failing = false;
                pool.install(|| run_claimed(runner, job, asked));
            }
            Ok(None) => {
                failing = false;
                runner.scheduler.wait(poll);
            }
            Err(e) => {
                crate::serve::registry::note_failure(&e);
                if !failing {
                    tracing::warn!("cannot look for queued jobs (retrying): {e}");
                }
                failing = true;
                runner.scheduler.wait(Duration::from_secs(1));
            }
        }
    }
}
