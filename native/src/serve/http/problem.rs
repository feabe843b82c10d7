//! Errors as `application/problem+json` (RFC 9457), with a stable `type` per kind.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use kiln::KilnError;
use serde::Serialize;
use utoipa::ToSchema;

/// The kinds of error the API answers with; each has a status and a stable `type` URI.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemKind {
    /// 400: the request is wrong (config, data, parameters).
    BadInput,
    /// 401: no token, or a wrong one.
    Unauthorized,
    /// 404: no such job, dataset, model or route.
    NotFound,
    /// 409: the request conflicts with the resource's state.
    Conflict,
    /// 413: the body is larger than `--max-upload-mb`.
    TooLarge,
    /// 429: the job queue is full.
    QueueFull,
    /// 431: the request's header fields are too many or too large.
    HeadersTooLarge,
    /// 408: the request took longer than the server allows.
    Timeout,
    /// 503: the server's storage (its disk or its database) cannot be written just now.
    StorageUnavailable,
    /// 507: the server's disk (or its database's) is full.
    StorageFull,
    /// 405, 415 and other protocol errors.
    Protocol(StatusCode),
    /// 500: a fault on the server (logged; no details to the client).
    Internal,
}

impl ProblemKind {
    fn status(self) -> StatusCode {
        match self {
            Self::BadInput => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound => StatusCode::NOT_FOUND,
            Self::Conflict => StatusCode::CONFLICT,
            Self::TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::QueueFull => StatusCode::TOO_MANY_REQUESTS,
            Self::HeadersTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            Self::Timeout => StatusCode::REQUEST_TIMEOUT,
            Self::StorageUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::StorageFull => StatusCode::INSUFFICIENT_STORAGE,
            Self::Protocol(status) => status,
            Self::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Self::BadInput => "bad-input",
            Self::Unauthorized => "unauthorized",
            Self::NotFound => "not-found",
            Self::Conflict => "conflict",
            Self::TooLarge => "too-large",
            Self::QueueFull => "queue-full",
            Self::HeadersTooLarge => "headers-too-large",
            Self::Timeout => "timeout",
            Self::StorageUnavailable => "storage-unavailable",
            Self::StorageFull => "storage-full",
            Self::Protocol(_) => "protocol",
            Self::Internal => "internal",
        }
    }

    /// The kind an HTTP status stands for (for responses axum or tower made).
    pub fn from_status(status: StatusCode) -> Self {
        match status {
            StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY => Self::BadInput,
            StatusCode::UNAUTHORIZED => Self::Unauthorized,
            StatusCode::NOT_FOUND => Self::NotFound,
            StatusCode::CONFLICT => Self::Conflict,
            StatusCode::PAYLOAD_TOO_LARGE => Self::TooLarge,
            StatusCode::TOO_MANY_REQUESTS => Self::QueueFull,
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => Self::HeadersTooLarge,
            StatusCode::REQUEST_TIMEOUT => Self::Timeout,
            StatusCode::INSUFFICIENT_STORAGE => Self::StorageFull,
            s if s.is_server_error() => Self::Internal,
            s => Self::Protocol(s),
        }
    }
}

/// The problem document.
#[derive(Debug, Serialize, ToSchema)]
pub struct Problem {
    /// A stable URI naming the kind of problem, e.g. `urn:kiln:problem:bad-input`.
    #[serde(rename = "type")]
    pub kind: String,
    /// A short summary of the kind.
    pub title: String,
    /// The HTTP status.
    pub status: u16,
    /// What went wrong, for people (the same message the CLI and JS would give).
    pub detail: String,
}

/// An API error: a kind and a message.
#[derive(Debug)]
pub struct ApiError {
    /// The kind.
    pub kind: ProblemKind,
    /// The message.
    pub detail: String,
    /// Seconds to wait before retrying (429).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error of `kind` with `detail`.
    pub fn new(kind: ProblemKind, detail: impl Into<String>) -> Self {
        Self {
            kind,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// 400.
    pub fn bad_input(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::BadInput, detail)
    }

    /// 404.
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::NotFound, detail)
    }

    /// 409.
    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(ProblemKind::Conflict, detail)
    }

    /// 500: logs the cause with its context; the client only hears that it happened.
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!("internal error ({context}): {cause}");
        Self::new(
            ProblemKind::Internal,
            format!("internal error ({context}); see the server log"),
        )
    }
}

impl ApiError {
    /// The answer for the server's own storage failing: full (507) or not writable (503), with
    /// a `Retry-After`; its cause (with paths) goes to the log only.
    fn storage(full: bool, cause: impl std::fmt::Display) -> Self {
        tracing::warn!("storage: {cause}");
        let mut error = if full {
            Self::new(
                ProblemKind::StorageFull,
                "the server's storage is full; nothing was changed — try again once space is freed",
            )
        } else {
            Self::new(
                ProblemKind::StorageUnavailable,
                "the server's storage is read-only just now; nothing was changed — try again \
                 shortly",
            )
        };
        error.retry_after = Some(30);
        error
    }
}

/// Whether an I/O error is the server's storage failing (full, or read-only): `Some(full)`.
fn storage_failure(e: &std::io::Error) -> Option<bool> {
    match e.kind() {
        std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded => Some(true),
        std::io::ErrorKind::ReadOnlyFilesystem => Some(false),
        _ => None,
    }
}

impl From<KilnError> for ApiError {
    fn from(e: KilnError) -> Self {
        if let KilnError::Io { source, .. } = &e
            && let Some(full) = storage_failure(source)
        {
            return Self::storage(full, e);
        }
        if e.is_user_error() {
            Self::bad_input(e.to_string())
        } else {
            Self::internal("engine", e)
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        crate::serve::registry::note_failure(&e);
        if let Some(fault) = crate::serve::registry::storage_fault(&e) {
            return Self::storage(fault == crate::serve::registry::StorageFault::Full, e);
        }
        if crate::serve::registry::is_transient(&e) {
            tracing::warn!("registry: {e}");
            let mut error = Self::new(
                ProblemKind::StorageUnavailable,
                "the server's database cannot be reached just now; try again shortly",
            );
            error.retry_after = Some(5);
            return error;
        }
        Self::internal("registry", e)
    }
}

/// The response for a kind and message.
pub fn problem_response(kind: ProblemKind, detail: String, retry_after: Option<u64>) -> Response {
    let status = kind.status();
    let body = Problem {
        kind: format!("urn:kiln:problem:{}", kind.slug()),
        title: status.canonical_reason().unwrap_or("error").to_string(),
        status: status.as_u16(),
        detail,
    };
    let mut response = (status, Json(body)).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json"),
    );
    if let Some(seconds) = retry_after {
        headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    if kind == ProblemKind::Unauthorized {
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    }
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        problem_response(self.kind, self.detail, self.retry_after)
    }
}

/// Turns every other error response (axum's rejections, unknown routes, timeouts, body limits)
/// into a problem document with the same message.
pub async fn problems_everywhere(response: Response) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/problem+json"));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let body = axum::body::to_bytes(response.into_body(), 64 * 1024)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&body).trim().to_string();
    let detail = match (status, text.is_empty()) {
        (StatusCode::PAYLOAD_TOO_LARGE, _) => {
            "the request body is larger than this server accepts (--max-upload-mb)".to_string()
        }
        (StatusCode::NOT_FOUND, true) => "no such endpoint (see /v1/openapi.json)".to_string(),
        (StatusCode::METHOD_NOT_ALLOWED, true) => {
            "this endpoint does not take that method (see /v1/openapi.json)".to_string()
        }
        (StatusCode::REQUEST_TIMEOUT, true) => "the request took too long".to_string(),
        (_, true) => status.canonical_reason().unwrap_or("error").to_string(),
        (_, false) => text,
    };
    problem_response(ProblemKind::from_status(status), detail, None)
}
