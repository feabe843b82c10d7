//! A request body as a blocking reader, for a parser on a blocking thread.

use crate::serve::problem::{ApiError, ProblemKind};
use axum::body::Body;

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
