//! S3 URLs and buckets, one place for the fleet's object store and MLflow's artifact roots:
//! `s3://bucket/prefix` split into its parts, and a bucket client configured from `AWS_*`.

use object_store::aws::{AmazonS3, AmazonS3Builder};
use object_store::{ClientOptions, RetryConfig};
use std::time::Duration;

/// The bucket and key prefix (no slashes around it) of an `s3://bucket/prefix` URL; `None`
/// for any other URL or an empty bucket.
pub fn s3_location(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    (!bucket.is_empty()).then(|| (bucket, prefix.trim_matches('/')))
}

/// An S3 bucket (any S3-compatible endpoint) with credentials, region and endpoint from the
/// usual `AWS_*` variables (region `us-east-1` when none is set; plain HTTP only for an
/// `http://` endpoint), bounded timeouts and a few retries. The error is the builder's message.
pub fn s3_bucket(bucket: &str) -> std::result::Result<AmazonS3, String> {
    let endpoint = std::env::var("AWS_ENDPOINT_URL").or_else(|_| std::env::var("AWS_ENDPOINT"));
    let mut builder = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_client_options(
            ClientOptions::new()
                .with_connect_timeout(Duration::from_secs(5))
                .with_timeout(Duration::from_secs(60))
                .with_allow_http(endpoint.is_ok_and(|e| e.starts_with("http://"))),
        )
        .with_retry(RetryConfig {
            max_retries: 3,
            retry_timeout: Duration::from_secs(20),
            ..RetryConfig::default()
        });
    if std::env::var_os("AWS_REGION").is_none() && std::env::var_os("AWS_DEFAULT_REGION").is_none()
    {
        builder = builder.with_region("us-east-1");
    }
    builder.build().map_err(|e| e.to_string())
}
