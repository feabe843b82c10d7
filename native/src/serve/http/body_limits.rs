//! Request body limits by kind of endpoint: uploads (datasets, models, federation updates) up to `--max-upload-mb`,
//! predictions up to `--max-json-mb`, every other JSON body a little over the config size
//! limit. A body whose `Content-Length` is already over its limit is answered `413` at once,
//! before any of it is read; one without a length is cut off where it passes the limit.

use crate::serve::problem::{ApiError, ProblemKind};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// The limits, in bytes.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Dataset and model uploads.
    pub upload: usize,
    /// `POST /v1/models/{id}/predict`.
    pub predict: usize,
    /// Every other body (job configs, batch prediction requests).
    pub json: usize,
}

impl BodyLimits {
    /// The limits for `--max-upload-mb` and `--max-json-mb`; other JSON bodies get twice the
    /// config size limit (a config is at most that, plus its tags and ids).
    pub fn new(max_upload_mb: usize, max_json_mb: usize) -> Self {
        Self {
            upload: max_upload_mb.saturating_mul(1 << 20),
            predict: max_json_mb.saturating_mul(1 << 20),
            json: kiln::limits::Limits::current()
                .max_config_bytes
                .saturating_mul(2)
                .saturating_add(64 << 10),
        }
    }

    /// The limit of a request, and the option that raises it.
    fn of(&self, method: &Method, path: &str) -> (usize, &'static str) {
        let upload = *method == Method::POST
            && (path == "/v1/datasets"
                || path == "/v1/models"
                || path.starts_with("/v1/federations/") && path.ends_with("/updates"));
        if upload {
            (self.upload, "--max-upload-mb")
        } else if path.starts_with("/v1/models/") && path.ends_with("/predict") {
            (self.predict, "--max-json-mb")
        } else {
            (self.json, "KILN_MAX_CONFIG_BYTES")
        }
    }
}

/// The middleware: a declared length over the limit is a `413` now; the body is otherwise
/// limited as it is read.
pub async fn limit_bodies(
    State(limits): State<BodyLimits>,
    request: Request,
    next: Next,
) -> Response {
    let (limit, option) = limits.of(request.method(), request.uri().path());
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared.filter(|&n| n > limit as u64) {
        let mut response = ApiError::new(
            ProblemKind::TooLarge,
            format!(
                "the request body is {length} bytes, over this endpoint's limit of {limit} \
                 bytes (raise it with {option})"
            ),
        )
        .into_response();
        // The body is never read: the connection cannot be reused.
        response.headers_mut().insert(
            header::CONNECTION,
            header::HeaderValue::from_static("close"),
        );
        return response;
    }
    let request = request.map(|body| Body::new(http_body_util::Limited::new(body, limit)));
    next.run(request).await
}
