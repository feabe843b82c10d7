//! The dashboard: a page at `/`, `/jobs/{id}` (a job's trackingUrl) and `/federations/{id}`, built from the demo
//! page's style, chart and results modules and the npm package's event-stream reader, embedded
//! in the binary. The page holds no data: it calls the API, with the token it asks for.

use axum::extract::Path;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::serve::problem::ApiError;

const PAGE: &str = include_str!("../../../../www/dashboard.html");

/// `(name, content type, text)` of every file under `/ui/`.
const FILES: &[(&str, &str, &str)] = &[
    (
        "dashboard.js",
        "text/javascript",
        include_str!("../../../../www/dashboard.js"),
    ),
    (
        "dashboard-api.js",
        "text/javascript",
        include_str!("../../../../www/dashboard-api.js"),
    ),
    (
        "federation-view.js",
        "text/javascript",
        include_str!("../../../../www/federation-view.js"),
    ),
    (
        "chart.js",
        "text/javascript",
        include_str!("../../../../www/chart.js"),
    ),
    (
        "results.js",
        "text/javascript",
        include_str!("../../../../www/results.js"),
    ),
    (
        "sse.js",
        "text/javascript",
        include_str!("../../../../pkg/sse.js"),
    ),
    (
        "style.css",
        "text/css",
        include_str!("../../../../www/style.css"),
    ),
];

/// Only this origin's scripts, styles and API; inline styles for the confusion matrix colours.
const CSP: &str = "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; \
                   object-src 'none'; frame-ancestors 'none'; base-uri 'none'";

fn with_headers(content_type: &'static str, body: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /`, `GET /jobs/{id}` and `GET /federations/{id}`: the dashboard page.
pub async fn page() -> Response {
    with_headers("text/html; charset=utf-8", PAGE)
}

/// `GET /ui/{file}`: the page's scripts and style.
pub async fn file(Path(name): Path<String>) -> Result<Response, ApiError> {
    FILES
        .iter()
        .find(|(file, _, _)| *file == name)
        .map(|(_, content_type, text)| with_headers(content_type, text))
        .ok_or_else(|| ApiError::not_found(format!("no dashboard file {name}")))
}
