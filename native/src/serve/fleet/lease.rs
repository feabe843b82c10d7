//! A worker's lease on one job: the fencing token (`attempt`) its writes carry, when it was
//! last renewed, and why the worker stops training it, if it does.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

/// Why a worker stops a job before it ends on its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// A user cancelled it: it ends `cancelled`.
    Cancel,
    /// The worker stops or drains with hand-over: the job goes back to the queue at its
    /// checkpoint, for any worker.
    Handover,
    /// The lease is no longer this worker's (it could not renew it in time, or another worker
    /// holds it now): stop without writing anything.
    Lost,
}

/// One held lease.
#[derive(Debug)]
pub struct Lease {
    /// The job.
    pub job: String,
    /// The claim's number: writes for the job are accepted only while it is current.
    pub attempt: i64,
    duration: Duration,
    renewed: Mutex<Instant>,
    stop: AtomicU8,
}

impl Lease {
    /// A lease taken for `duration` by a claim sent at `asked` (the registry's expiry was
    /// computed then, so the local clock starts then too, never later).
    pub fn new(job: String, attempt: i64, duration: Duration, asked: Instant) -> Self {
        Self {
            job,
            attempt,
            duration,
            renewed: Mutex::new(asked),
            stop: AtomicU8::new(0),
        }
    }

    /// The lease was renewed by a request sent at `asked`.
    pub fn renewed(&self, asked: Instant) {
        let mut renewed = self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        *renewed = (*renewed).max(asked);
    }

    /// Whether this worker must stop on its own: a quarter of the lease before others may
    /// take the job, so that two workers never train it at once (clocks and heartbeats late
    /// by less than that margin).
    pub fn expiring(&self) -> bool {
        let renewed = *self.renewed.lock().unwrap_or_else(|p| p.into_inner());
        renewed.elapsed() > self.duration.mul_f64(0.75)
    }

    /// Records why the job stops; a lost lease overrides any other reason, and the first of
    /// the others stays.
    pub fn stop_for(&self, reason: StopReason) {
        let code = match reason {
            StopReason::Cancel => 1,
            StopReason::Handover => 2,
            StopReason::Lost => 3,
        };
        if reason == StopReason::Lost {
            self.stop.store(code, Ordering::SeqCst);
        } else {
            let _ = self
                .stop
                .compare_exchange(0, code, Ordering::SeqCst, Ordering::SeqCst);
        }
    }

    /// Why the job is stopping, if it is.
    pub fn stop_reason(&self) -> Option<StopReason> {
        match self.stop.load(Ordering::SeqCst) {
            1 => Some(StopReason::Cancel),
            2 => Some(StopReason::Handover),
            3 => Some(StopReason::Lost),
            _ => None,
        }
    }

    /// Whether the lease is lost (nothing more may be written for the job).
    pub fn lost(&self) -> bool {
        self.stop_reason() == Some(StopReason::Lost)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_lost_lease_overrides_and_the_first_other_reason_stays() {
        let lease = Lease::new("j".into(), 1, Duration::from_secs(30), Instant::now());
        assert_eq!(lease.stop_reason(), None);
        lease.stop_for(StopReason::Handover);
        lease.stop_for(StopReason::Cancel);
        assert_eq!(lease.stop_reason(), Some(StopReason::Handover));
        lease.stop_for(StopReason::Lost);
        assert!(lease.lost());
        lease.stop_for(StopReason::Cancel);
        assert!(lease.lost());
    }

    #[test]
    fn a_lease_expires_locally_before_others_may_take_it() {
        let asked = Instant::now();
        let lease = Lease::new("j".into(), 1, Duration::from_millis(40), asked);
        assert!(!lease.expiring());
        std::thread::sleep(Duration::from_millis(35));
        assert!(lease.expiring());
        // A renewal counts from when it was asked for, and an older answer changes nothing.
        lease.renewed(asked);
        assert!(lease.expiring());
        lease.renewed(Instant::now());
        assert!(!lease.expiring());
    }
}
