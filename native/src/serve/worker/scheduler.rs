//! This worker's side of the queue: the jobs it trains now (with their leases), when its
//! training threads look for work, and whether it takes new jobs (not while stopping or
//! draining). The queue itself is the registry's `jobs` table.

use crate::serve::lease::{Lease, StopReason};
use kiln::Job;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

/// A job training here.
#[derive(Debug, Clone)]
struct Running {
    job: Job,
    lease: Arc<Lease>,
}

/// The jobs training on this worker, and when its threads look for more.
#[derive(Debug, Default)]
pub struct Scheduler {
    running: Mutex<HashMap<String, Running>>,
    woken: Mutex<bool>,
    wake: Condvar,
    stopping: AtomicBool,
    draining: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Scheduler {
    /// Nothing running yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tells the training threads to look for a job now (one was queued, or a lease ran out).
    pub fn wake(&self) {
        *lock(&self.woken) = true;
        self.wake.notify_all();
    }

    /// Waits until woken or `timeout` passes.
    pub fn wait(&self, timeout: Duration) {
        let mut woken = lock(&self.woken);
        if !*woken {
            woken = self
                .wake
                .wait_timeout(woken, timeout)
                .map(|(g, _)| g)
                .unwrap_or_else(|p| p.into_inner().0);
        }
        *woken = false;
    }

    /// Records a job as training here under `lease`.
    pub fn started(&self, job: &Job, lease: Arc<Lease>) {
        lock(&self.running).insert(
            job.id().to_string(),
            Running {
                job: job.clone(),
                lease,
            },
        );
    }

    /// Forgets a job that stopped here.
    pub fn ended(&self, id: &str) {
        lock(&self.running).remove(id);
    }

    /// Whether a job is training here.
    pub fn runs(&self, id: &str) -> bool {
        lock(&self.running).contains_key(id)
    }

    /// The leases held now.
    pub fn leases(&self) -> Vec<Arc<Lease>> {
        lock(&self.running)
            .values()
            .map(|r| r.lease.clone())
            .collect()
    }

    /// Stops a job training here for `reason`: before its next step, or (`at_epoch_end`) once
    /// its epoch is done and checkpointed. False if it is not training here.
    pub fn stop_job(&self, id: &str, reason: StopReason, at_epoch_end: bool) -> bool {
        match lock(&self.running).get(id) {
            Some(running) => {
                running.lease.stop_for(reason);
                if at_epoch_end {
                    running.job.stop_at_epoch_end();
                } else {
                    running.job.cancel();
                }
                true
            }
            None => false,
        }
    }

    /// Cancels a job training here; false if it is not training here.
    pub fn cancel_running(&self, id: &str) -> bool {
        self.stop_job(id, StopReason::Cancel, false)
    }

    /// Takes no new jobs; with `handover`, the training ones also stop at the end of their
    /// epoch and go back to the queue (otherwise they finish here).
    pub fn drain(&self, handover: bool) {
        self.draining.store(true, Ordering::SeqCst);
        if handover {
            self.hand_over_all(true);
        }
        self.wake();
    }

    fn hand_over_all(&self, at_epoch_end: bool) {
        let ids: Vec<String> = lock(&self.running).keys().cloned().collect();
        for id in ids {
            self.stop_job(&id, StopReason::Handover, at_epoch_end);
        }
    }

    /// Whether this worker is draining.
    pub fn draining(&self) -> bool {
        self.draining.load(Ordering::SeqCst)
    }

    /// Stops taking jobs; the training ones checkpoint at the end of their epoch and go back to
    /// the queue.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        self.hand_over_all(true);
        self.wake();
    }

    /// Stops the training jobs before their next step (when an epoch takes too long to wait for;
    /// they resume from their latest checkpoint).
    pub fn stop_now(&self) {
        self.hand_over_all(false);
    }

    /// Whether the server is stopping.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}
