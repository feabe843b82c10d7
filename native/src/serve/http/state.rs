//! What every request handler shares.

use crate::serve::auth::Tokens;
use crate::serve::hub::Hub;
use crate::serve::registry::Registry;
use crate::serve::runner::RunnerContext;
use crate::serve::scheduler::Scheduler;
use std::sync::Arc;

/// The server's state, cloned into every handler.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Jobs, datasets and events.
    pub registry: Registry,
    /// Live event subscribers.
    pub hub: Hub,
    /// The jobs training here.
    pub scheduler: Arc<Scheduler>,
    /// Data directory, store, backend.
    pub runner: RunnerContext,
    /// The accepted tokens.
    pub tokens: Tokens,
    /// Jobs waiting at most, fleet-wide.
    pub max_queued_jobs: usize,
}

/// Runs blocking work (file and model-store I/O, inference) off the async reactor.
pub async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> kiln::Result<T> + Send + 'static,
) -> Result<T, crate::serve::problem::ApiError> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => result.map_err(Into::into),
        Err(e) => Err(crate::serve::problem::ApiError::internal(
            "blocking task",
            e,
        )),
    }
}
