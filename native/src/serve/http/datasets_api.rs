//! `/v1/datasets`: upload (CSV or safetensors), list, delete.

use crate::serve::datasets::{CsvSettings, Format, dataset_key, inspect};
use crate::serve::pagination::{PageQuery, headers_after};
use crate::serve::problem::ApiError;
use crate::serve::registry::DatasetRow;
use crate::serve::state::{AppState, blocking};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A dataset as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DatasetView {
    /// `dataset-<uuid>`.
    pub id: String,
    /// `csv` or `safetensors`.
    pub format: String,
    /// Samples.
    pub rows: i64,
    /// One sample's shape.
    pub sample_shape: Vec<usize>,
    /// Bytes stored.
    pub bytes: i64,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
}

impl DatasetView {
    fn from_row(row: DatasetRow) -> Self {
        Self {
            sample_shape: serde_json::from_str(&row.sample_shape).unwrap_or_default(),
            id: row.id,
            format: row.format,
            rows: row.rows,
            bytes: row.bytes,
            created_at: row.created_at,
        }
    }
}

/// CSV settings of an upload.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UploadQuery {
    /// The label column: a header name or a 0-based index (default: the last column).
    pub label_column: Option<String>,
    /// Whether the first line is a header (default true).
    pub header: Option<bool>,
}

/// Uploads a dataset: `text/csv`, or `application/octet-stream` holding a safetensors file
/// with `features` (f32 or u8, `[n, …sample]`) and `labels` (i32 or f32, `[n]`).
#[utoipa::path(post, path = "/v1/datasets", params(UploadQuery),
    request_body(content = String, content_type = "text/csv"),
    responses((status = 201, body = DatasetView), (status = 400, body = crate::serve::problem::Problem, content_type = "application/problem+json"),
              (status = 413, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn upload(
    State(state): State<AppState>,
    Query(query): Query<UploadQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<DatasetView>), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let format = Format::from_content_type(content_type)?;
    let settings = CsvSettings::from_query(query.header, query.label_column);
    let objects = state.runner.objects.clone();
    let (row, body) = blocking(move || {
        let row = inspect(&body, format, &settings)?;
        if !objects.is_remote() {
            let file = objects.local_file(&dataset_key(&row.id, &row.format))?;
            kiln::store::write_atomic(&file, &body)?;
        }
        Ok((row, body))
    })
    .await?;
    if state.runner.objects.is_remote() {
        state
            .runner
            .objects
            .put(&dataset_key(&row.id, &row.format), body)
            .await?;
    }
    state.registry.insert_dataset(&row).await?;
    Ok((StatusCode::CREATED, Json(DatasetView::from_row(row))))
}

/// Lists datasets, one page at a time (oldest first unless `order=desc`); the next page's
/// cursor is in `X-Next-Cursor`.
#[utoipa::path(get, path = "/v1/datasets", params(PageQuery),
    responses((status = 200, body = Vec<DatasetView>), (status = 400, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<(HeaderMap, Json<Vec<DatasetView>>), ApiError> {
    let page = query.page()?;
    let rows = state.registry.datasets(&page).await?;
    let headers = headers_after("/v1/datasets", &page, &rows, |r| (r.created_at, &r.id));
    Ok((
        headers,
        Json(rows.into_iter().map(DatasetView::from_row).collect()),
    ))
}

/// Deletes a dataset no queued or training job uses.
#[utoipa::path(delete, path = "/v1/datasets/{id}", responses((status = 204), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json"), (status = 409, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = state
        .registry
        .dataset(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no dataset {id}")))?;
    if state.registry.dataset_in_use(&id).await? {
        return Err(ApiError::conflict(format!(
            "dataset {id} is used by a job that has not ended"
        )));
    }
    state.registry.delete_dataset(&id).await?;
    let key = dataset_key(&id, &row.format);
    state.runner.objects.delete(&key).await?;
    state.runner.objects.drop_cached(&key);
    Ok(StatusCode::NO_CONTENT)
}
