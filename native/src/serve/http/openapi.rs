//! The OpenAPI document, generated from the handlers' annotations.

use crate::serve::{
    datasets_api, federations_api, invites_api, jobs_api, models_api, predictions_api, problem,
    secure_api, workers_api,
};
use axum::Json;
use serde::Serialize;
use utoipa::{OpenApi, ToSchema};

/// `GET /v1/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: &'static str,
    /// The server's version.
    pub version: &'static str,
    /// The backend jobs train on.
    pub backend: String,
}

/// The API description.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Kiln job server",
        description = "Train, follow and serve Kiln models over HTTP."
    ),
    paths(
        health,
        jobs_api::submit,
        jobs_api::list,
        jobs_api::show,
        jobs_api::cancel,
        jobs_api::delete,
        jobs_api::events,
        jobs_api::metrics,
        jobs_api::holdout,
        predictions_api::submit,
        predictions_api::show,
        predictions_api::output,
        datasets_api::upload,
        datasets_api::list,
        datasets_api::delete,
        models_api::list,
        models_api::download,
        models_api::info,
        models_api::import,
        models_api::delete,
        models_api::predict,
        workers_api::list,
        workers_api::drain,
        federations_api::create,
        federations_api::list,
        federations_api::show,
        federations_api::cancel,
        federations_api::events,
        federations_api::delete,
        federations_api::join,
        federations_api::check_in,
        federations_api::model,
        federations_api::submit_update,
        secure_api::keys,
        secure_api::roster,
        secure_api::shares,
        secure_api::inbox,
        secure_api::survivors,
        secure_api::reveal,
        invites_api::create,
        invites_api::list,
        invites_api::revoke,
    ),
    components(schemas(problem::Problem, Health))
)]
pub struct ApiDoc;

/// Liveness (no token needed).
#[utoipa::path(get, path = "/v1/health", responses((status = 200, body = Health)))]
pub async fn health(
    axum::extract::State(state): axum::extract::State<crate::serve::state::AppState>,
) -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
        backend: state.runner.backend.to_string(),
    })
}

/// `GET /v1/openapi.json`.
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}
