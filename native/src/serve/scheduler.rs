//! The job queue: FIFO, bounded, served by `--max-concurrent-jobs` training threads.

use kiln::Job;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};

/// Queued job ids and the jobs now training.
#[derive(Debug)]
pub struct Scheduler {
    queue: Mutex<VecDeque<String>>,
    wake: Condvar,
    running: Mutex<HashMap<String, Job>>,
    max_queue: usize,
    stopping: AtomicBool,
}

/// The queue already holds its maximum.
#[derive(Debug)]
pub struct QueueFull(pub usize);

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Scheduler {
    /// An empty queue that holds at most `max_queue` waiting jobs.
    pub fn new(max_queue: usize) -> Self {
        Self {
            queue: Mutex::default(),
            wake: Condvar::new(),
            running: Mutex::default(),
            max_queue,
            stopping: AtomicBool::new(false),
        }
    }

    /// Appends a job, unless the queue is full (restarts pass `force` for jobs already
    /// accepted before the restart).
    pub fn submit(&self, id: String, force: bool) -> Result<(), QueueFull> {
        let mut queue = lock(&self.queue);
        if !force && queue.len() >= self.max_queue {
            return Err(QueueFull(self.max_queue));
        }
        queue.push_back(id);
        self.wake.notify_one();
        Ok(())
    }

    /// Takes a queued job out; true if it was waiting.
    pub fn remove_queued(&self, id: &str) -> bool {
        let mut queue = lock(&self.queue);
        let before = queue.len();
        queue.retain(|q| q != id);
        queue.len() != before
    }

    /// Waits for the next job; `None` once the server is stopping.
    pub fn next(&self) -> Option<String> {
        let mut queue = lock(&self.queue);
        loop {
            if self.stopping() {
                return None;
            }
            if let Some(id) = queue.pop_front() {
                return Some(id);
            }
            queue = self.wake.wait(queue).unwrap_or_else(|p| p.into_inner());
        }
    }

    /// Records a job as training.
    pub fn started(&self, job: &Job) {
        lock(&self.running).insert(job.id().to_string(), job.clone());
    }

    /// Forgets a job that ended.
    pub fn ended(&self, id: &str) {
        lock(&self.running).remove(id);
    }

    /// Cancels a training job; false if it is not training here.
    pub fn cancel_running(&self, id: &str) -> bool {
        match lock(&self.running).get(id) {
            Some(job) => {
                job.cancel();
                true
            }
            None => false,
        }
    }

    /// Stops taking jobs; the training ones checkpoint at the end of their epoch and stop.
    pub fn stop(&self) {
        self.stopping.store(true, Ordering::SeqCst);
        for job in lock(&self.running).values() {
            job.stop_at_epoch_end();
        }
        self.wake.notify_all();
    }

    /// Stops the training jobs before their next step (when an epoch takes too long to wait for;
    /// they resume from their latest checkpoint).
    pub fn stop_now(&self) {
        for job in lock(&self.running).values() {
            job.cancel();
        }
    }

    /// Whether the server is stopping.
    pub fn stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }
}
