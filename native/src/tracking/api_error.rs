//! A failed call to a tracking server or its artifact store.

/// A failed call, and whether trying again later may help (server unreachable, timed out,
/// 5xx, 429) or not (the server refused the request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    /// What went wrong, with the server's own message when it sent one.
    pub message: String,
    /// Whether a retry may succeed.
    pub retryable: bool,
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}
