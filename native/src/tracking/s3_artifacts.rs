//! Artifacts of MLflow runs whose artifact root is an S3 bucket (`mlflow server
//! --default-artifact-root s3://…`, not proxied by the tracking server): uploaded straight to
//! the bucket, as MLflow's own clients do, with the `AWS_*` credentials and endpoint of this
//! process. Only objects under the run's own artifact URI are written.

use super::api_error::ApiError;
use object_store::path::Path as Key;
use object_store::{ObjectStoreExt, PutPayload};
use std::time::Duration;

/// Uploads `bytes` as artifact `name` under `prefix` in `bucket` (the run's S3 artifact URI
/// `uri`, parsed by [`crate::s3::s3_location`]), within `timeout`.
pub fn upload(
    uri: &str,
    (bucket, prefix): (&str, &str),
    name: &str,
    bytes: Vec<u8>,
    timeout: Duration,
) -> Result<(), ApiError> {
    let failed = |why: String, retryable: bool| ApiError {
        message: format!("artifact {name}: cannot upload to {uri}: {why}"),
        retryable,
    };
    let key = if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}/{name}")
    };
    let key = Key::parse(&key).map_err(|e| failed(e.to_string(), false))?;
    let store = crate::s3::s3_bucket(bucket).map_err(|e| failed(e, false))?;
    // A runtime of its own, on a thread of its own: callers may be inside another runtime.
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| failed(format!("no runtime: {e}"), false))?;
                runtime.block_on(async {
                    match tokio::time::timeout(timeout, store.put(&key, PutPayload::from(bytes)))
                        .await
                    {
                        Ok(Ok(_)) => Ok(()),
                        Ok(Err(e)) => Err(failed(e.to_string(), true)),
                        Err(_) => Err(failed(format!("no answer within {timeout:?}"), true)),
                    }
                })
            })
            .join()
            .unwrap_or_else(|_| Err(failed("the upload thread panicked".into(), false)))
    })
}
