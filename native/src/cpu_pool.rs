//! The CPU thread pool a command runs in, and its orderly end: the pool's threads are joined
//! before the process exits.
//!
//! A pool that is merely dropped lets its threads wind down while `main` returns, so a thread
//! can still be freeing its allocator caches while `exit` runs the shared libraries'
//! destructors. With wgpu on lavapipe that race aborted the process after a finished run
//! ("double free or corruption", one run in 10–20): libEGL, loaded while wgpu probes for a
//! GPU, frees its tables at exit in the arena the exiting pool thread was flushing.

use kiln::{KilnError, Result};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The stack of a pool thread: the command itself runs on one, so a main thread's usual 8 MiB.
const STACK_BYTES: usize = 8 << 20;

/// How long the end of a command waits for the pool's threads; a thread still held by
/// something that outlives the command (it should not happen) is left to the exit after that.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The threads a pool started, kept so that they can be joined.
type Threads = Arc<Mutex<Vec<JoinHandle<()>>>>;

/// A CPU pool whose threads are joined when this is dropped (after the last handle to the
/// pool itself is gone).
pub struct CpuPool {
    pool: Option<Arc<rayon::ThreadPool>>,
    threads: Threads,
    join_timeout: Duration,
}

impl CpuPool {
    /// `threads` threads, else rayon's default (`$RAYON_NUM_THREADS`, else every core).
    pub fn new(threads: Option<u16>) -> Result<Self> {
        let started = Threads::default();
        let record = started.clone();
        let pool = rayon::ThreadPoolBuilder::new()
            // 0: rayon's default.
            .num_threads(threads.map_or(0, usize::from))
            .stack_size(STACK_BYTES)
            .spawn_handler(move |thread| {
                let mut builder = std::thread::Builder::new();
                if let Some(name) = thread.name() {
                    builder = builder.name(name.to_owned());
                }
                if let Some(bytes) = thread.stack_size() {
                    builder = builder.stack_size(bytes);
                }
                let handle = builder.spawn(|| thread.run())?;
                lock(&record).push(handle);
                Ok(())
            })
            .build()
            .map_err(|e| KilnError::Internal(format!("cannot start the CPU thread pool: {e}")))?;
        Ok(Self {
            pool: Some(Arc::new(pool)),
            threads: started,
            join_timeout: JOIN_TIMEOUT,
        })
    }

    /// A handle to the pool (the server hands it to its training threads).
    pub fn handle(&self) -> Arc<rayon::ThreadPool> {
        // `pool` is only taken in `drop`.
        self.pool.clone().unwrap_or_else(|| unreachable!())
    }

    /// Lets go of the pool and waits (at most the join timeout) for its threads to end; how
    /// many were joined and how many were still running.
    fn finish(&mut self) -> (usize, usize) {
        // The last handle gone, rayon tells the threads to finish; then they are waited for.
        drop(self.pool.take());
        let deadline = Instant::now() + self.join_timeout;
        let threads = std::mem::take(&mut *lock(&self.threads));
        let (mut joined, mut running) = (0, 0);
        for thread in threads {
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(1));
            }
            if thread.is_finished() {
                // A pool thread's panic was already reported by rayon's handler.
                let _ = thread.join();
                joined += 1;
            } else {
                running += 1;
            }
        }
        (joined, running)
    }
}

impl Drop for CpuPool {
    fn drop(&mut self) {
        self.finish();
    }
}

/// The list of threads, even if a thread panicked while holding it.
fn lock(threads: &Threads) -> std::sync::MutexGuard<'_, Vec<JoinHandle<()>>> {
    threads
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_of_the_pool_joins_its_threads() {
        let mut pool = CpuPool::new(Some(3)).unwrap();
        let handle = pool.handle();
        assert_eq!(handle.install(rayon::current_num_threads), 3);
        drop(handle);
        assert_eq!(pool.finish(), (3, 0));
    }

    #[test]
    fn a_handle_kept_elsewhere_delays_the_end_only_up_to_the_timeout() {
        let mut pool = CpuPool::new(Some(2)).unwrap();
        pool.join_timeout = Duration::from_millis(300);
        let kept = pool.handle();
        let started = Instant::now();
        assert_eq!(pool.finish(), (0, 2));
        assert!(started.elapsed() >= pool.join_timeout);
        assert_eq!(kept.install(rayon::current_num_threads), 2);
    }
}
