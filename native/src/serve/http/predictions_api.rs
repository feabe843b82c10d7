//! `/v1/predictions`: batch prediction jobs (`bp-job-<uuid>`) — a stored model over an uploaded
//! dataset, queued like training jobs, with a CSV result.

use crate::serve::jobs_api::{JobView, completed_job_csv, enqueue, find};
use crate::serve::problem::ApiError;
use crate::serve::registry::{JobKind, JobRow, PredictionSpec};
use crate::serve::state::{AppState, blocking};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use kiln::store::ModelId;
use serde::Deserialize;
use utoipa::ToSchema;

use crate::serve::runner::OUTPUT_CSV;

/// `POST /v1/predictions`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitPrediction {
    /// The stored model's id.
    pub model: String,
    /// An uploaded dataset's id: its features are predicted (a label column, if any, is ignored).
    pub dataset: String,
}

/// Queues a batch prediction job.
#[utoipa::path(post, path = "/v1/predictions", request_body = SubmitPrediction,
    responses((status = 202, body = JobView), (status = 400, body = crate::serve::problem::Problem, content_type = "application/problem+json"), (status = 429, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn submit(
    State(state): State<AppState>,
    Json(body): Json<SubmitPrediction>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let model =
        ModelId::parse(&body.model).map_err(|e| ApiError::bad_input(format!("model: {e}")))?;
    let store = state.runner.store.clone();
    let id = model.clone();
    let exists = blocking(move || {
        futures::executor::block_on(kiln::store::ModelStore::get(&store, &id)).map(|b| b.is_some())
    })
    .await?;
    if !exists {
        return Err(ApiError::bad_input(format!("model: no model {model}")));
    }
    if state.registry.dataset(&body.dataset).await?.is_none() {
        return Err(ApiError::bad_input(format!(
            "dataset: no dataset {:?} (upload one with POST /v1/datasets)",
            body.dataset
        )));
    }
    let row = JobRow::queued(
        format!("bp-job-{}", uuid::Uuid::new_v4()),
        JobKind::Prediction,
        serde_json::to_string(&PredictionSpec {
            model: model.to_string(),
        })
        .map_err(|e| ApiError::internal("prediction job spec", e))?,
        Some(body.dataset),
        "{}".into(),
        &Default::default(),
    );
    enqueue(&state, &row).await?;
    Ok((StatusCode::ACCEPTED, Json(JobView::from_row(row))))
}

/// A prediction job (as `/v1/jobs/{id}` shows it).
#[utoipa::path(get, path = "/v1/predictions/{id}", responses((status = 200, body = JobView), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    let row = find(&state, &id).await?;
    if row.kind != JobKind::Prediction {
        return Err(ApiError::not_found(format!("no prediction job {id}")));
    }
    Ok(Json(JobView::from_row(row)))
}

/// The predictions as CSV: one row per sample, `prediction,p0,…` (classification) or
/// `prediction` (regression).
#[utoipa::path(get, path = "/v1/predictions/{id}/output", responses((status = 200, content_type = "text/csv"), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json"), (status = 409, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn output(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    if row.kind != JobKind::Prediction {
        return Err(ApiError::not_found(format!("no prediction job {id}")));
    }
    completed_job_csv(
        &state,
        &row,
        OUTPUT_CSV,
        "predictions",
        "its output file is missing",
    )
    .await
}
