//! `/v1/workers`: the fleet's workers (backend, labels, running jobs, last heartbeat) and
//! draining one for maintenance.

use crate::serve::listener::DRAIN_CHANNEL;
use crate::serve::problem::ApiError;
use crate::serve::registry::now_ms;
use crate::serve::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use utoipa::{IntoParams, ToSchema};

/// A worker as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerView {
    /// `worker-<uuid>`.
    pub id: String,
    /// Its host name.
    pub host: String,
    /// The address its API listens on.
    pub addr: String,
    /// cpu, wgpu or cuda.
    pub backend: String,
    /// What it offers (`--label`, and `backend`).
    pub labels: BTreeMap<String, String>,
    /// Jobs it trains at once.
    pub capacity: i64,
    /// The jobs it holds now.
    pub running_jobs: Vec<String>,
    /// When it (last) started, ms since the epoch.
    pub started_at: i64,
    /// Its last heartbeat, ms since the epoch.
    pub last_heartbeat: i64,
    /// running | draining | stopped | lost (no heartbeat for the length of its own lease).
    pub state: String,
}

/// Lists every worker that has joined the registry.
#[utoipa::path(get, path = "/v1/workers", responses((status = 200, body = Vec<WorkerView>)))]
pub async fn list(State(state): State<AppState>) -> Result<Json<Vec<WorkerView>>, ApiError> {
    let now = now_ms();
    let views = state
        .registry
        .workers()
        .await?
        .into_iter()
        .map(|(w, running_jobs)| WorkerView {
            state: if w.stopped_at.is_some_and(|s| s >= w.started_at) {
                "stopped"
            } else if now - w.heartbeat_at > w.lease_ms {
                "lost"
            } else if w.draining > 0 {
                "draining"
            } else {
                "running"
            }
            .into(),
            labels: serde_json::from_str(&w.labels).unwrap_or_default(),
            id: w.id,
            host: w.host,
            addr: w.addr,
            backend: w.backend,
            capacity: w.capacity,
            running_jobs,
            started_at: w.started_at,
            last_heartbeat: w.heartbeat_at,
        })
        .collect();
    Ok(Json(views))
}

/// How a worker drains.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DrainQuery {
    /// `true`: its running jobs stop at the end of their epoch (checkpointed) and go back to
    /// the queue for other workers; default: it finishes them.
    #[serde(default)]
    pub handover: bool,
}

/// Drains a worker: it takes no new jobs and finishes (or hands over) its running ones; it
/// takes jobs again once restarted.
#[utoipa::path(post, path = "/v1/workers/{id}/drain", params(DrainQuery),
    responses((status = 202), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn drain(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<DrainQuery>,
) -> Result<StatusCode, ApiError> {
    if !state.registry.set_draining(&id, query.handover).await? {
        return Err(ApiError::not_found(format!("no worker {id}")));
    }
    if id == state.runner.worker.id {
        state.scheduler.drain(query.handover);
    } else {
        let payload = format!("{id}|{}", u8::from(query.handover));
        let _ = state.registry.notify(DRAIN_CHANNEL, &payload).await;
    }
    Ok(StatusCode::ACCEPTED)
}
