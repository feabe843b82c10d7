//! Request body limits by kind of endpoint: uploads (datasets, models) up to `--max-upload-mb`,
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
        let upload = *method == Method::POST && (path == "/v1/datasets" || path == "/v1/models");
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

/// The answer for a body that could not be read: over its limit (`413`), or cut off.
fn unreadable(e: &axum::Error) -> ApiError {
    let too_large = std::error::Error::source(e)
        .is_some_and(|s| s.is::<http_body_util::LengthLimitError>())
        || e.to_string().contains("length limit exceeded");
    if too_large {
        ApiError::new(
            ProblemKind::TooLarge,
            "the request body is larger than this endpoint takes (raise it with --max-json-mb)",
        )
    } else {
        ApiError::bad_input(format!("the request body could not be read: {e}"))
    }
}

/// A request body as a blocking [`std::io::Read`], for a parser on a blocking thread: the body
/// streams in through a channel of a few chunks, so a parser holds what it has made of the
/// body, never the whole body beside it.
pub struct BodyReader {
    chunks: tokio::sync::mpsc::Receiver<Result<bytes::Bytes, ApiError>>,
    current: bytes::Bytes,
    failure: Option<ApiError>,
}

impl BodyReader {
    /// Starts streaming `body` (on the current tokio runtime).
    pub fn new(body: Body) -> Self {
        use http_body_util::BodyExt;
        let (sender, chunks) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            let mut body = body;
            while let Some(frame) = body.frame().await {
                let chunk = match frame {
                    Ok(frame) => match frame.into_data() {
                        Ok(data) => Ok(data),
                        Err(_) => continue, // trailers
                    },
                    Err(e) => Err(unreadable(&e)),
                };
                let failed = chunk.is_err();
                if sender.send(chunk).await.is_err() || failed {
                    break;
                }
            }
        });
        Self {
            chunks,
            current: bytes::Bytes::new(),
            failure: None,
        }
    }

    /// Why the body ended early, if it did (a parse error then only repeats it).
    pub fn take_failure(&mut self) -> Option<ApiError> {
        self.failure.take()
    }
}

impl std::io::Read for BodyReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.chunks.blocking_recv() {
                Some(Ok(data)) => self.current = data,
                Some(Err(e)) => {
                    self.failure = Some(e);
                    return Err(std::io::Error::other("the request body could not be read"));
                }
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current[..n]);
        self.current = self.current.slice(n..);
        Ok(n)
    }
}
