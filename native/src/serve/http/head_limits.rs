//! Request head limits: a request whose header fields number more than [`MAX_HEADERS`] or
//! take more than [`MAX_HEAD_BYTES`] (with its target) is answered `431` problem+json and the
//! connection is closed.

use crate::serve::problem::{ProblemKind, problem_response};
use axum::extract::Request;
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;

/// The most header fields a request may have.
pub const MAX_HEADERS: usize = 100;

/// The most bytes a request's target and header fields may take together.
pub const MAX_HEAD_BYTES: usize = 64 << 10;

/// The size of a request head as counted against [`MAX_HEAD_BYTES`]: its target, and each
/// field's name, value and separators.
fn head_bytes(request: &Request) -> usize {
    let target = request
        .uri()
        .path_and_query()
        .map_or(0, |p| p.as_str().len());
    let fields: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    target + fields
}

/// The middleware.
pub async fn limit_heads(request: Request, next: Next) -> Response {
    let count = request.headers().len();
    let bytes = head_bytes(&request);
    let over = if count > MAX_HEADERS {
        Some(format!(
            "the request has {count} header fields; at most {MAX_HEADERS} are allowed"
        ))
    } else if bytes > MAX_HEAD_BYTES {
        Some(format!(
            "the request's target and header fields take {bytes} bytes; at most \
             {MAX_HEAD_BYTES} are allowed"
        ))
    } else {
        None
    };
    let Some(detail) = over else {
        return next.run(request).await;
    };
    let mut response = problem_response(ProblemKind::HeadersTooLarge, detail, None);
    response
        .headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    response
}
