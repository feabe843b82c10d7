//! Bearer tokens: read from `--token-file` (one per line), kept as SHA-256 digests and compared
//! in constant time.

use crate::serve::problem::{ApiError, ProblemKind};
use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::Response;
use kiln::{KilnError, Result};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use subtle::ConstantTimeEq;

/// The accepted tokens (digests only). Empty: no token needed (loopback servers).
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    digests: Arc<Vec<[u8; 32]>>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Reads a token file: one token per line; blank lines and `#` comments are skipped.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            KilnError::io(format!("--token-file: cannot read {}", path.display()), e)
        })?;
        let digests: Vec<[u8; 32]> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(digest)
            .collect();
        if digests.is_empty() {
            return Err(KilnError::InvalidArgument(format!(
                "--token-file: {} holds no token (one per line)",
                path.display()
            )));
        }
        Ok(Self {
            digests: Arc::new(digests),
        })
    }

    /// Whether any token is configured.
    pub fn required(&self) -> bool {
        !self.digests.is_empty()
    }

    /// Whether `token` is one of them (every digest is compared, in constant time).
    pub fn accepts(&self, token: &str) -> bool {
        let candidate = digest(token);
        self.digests
            .iter()
            .fold(subtle::Choice::from(0), |found, d| {
                found | d.ct_eq(&candidate)
            })
            .into()
    }
}

/// Middleware: every API endpoint but `/v1/health` needs `Authorization: Bearer <token>` when
/// the server has tokens.
pub async fn require_token(
    State(tokens): State<Tokens>,
    request: Request,
    next: Next,
) -> std::result::Result<Response, ApiError> {
    // Health, and the dashboard's page and files (they hold no data; the page asks for the
    // token and sends it with every API call). CORS preflights carry no credentials.
    let path = request.uri().path();
    let open = path == "/v1/health"
        || path == "/"
        || path.starts_with("/ui/")
        || (path.starts_with("/jobs/") && !path[6..].contains('/'))
        || request.method() == "OPTIONS";
    if tokens.required() && !open {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match given {
            None => {
                return Err(ApiError::new(
                    ProblemKind::Unauthorized,
                    "this server needs a token: send Authorization: Bearer <token>",
                ));
            }
            Some(token) if !tokens.accepts(token.trim()) => {
                return Err(ApiError::new(
                    ProblemKind::Unauthorized,
                    "the token is not one this server accepts",
                ));
            }
            Some(_) => {}
        }
    }
    Ok(next.run(request).await)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_read_one_per_line_and_compared_whole() {
        let dir = std::env::temp_dir().join(format!("kiln-tokens-{}", uuid::Uuid::new_v4()));
        std::fs::write(&dir, "# a comment\n\n  first  \nsecond\n").unwrap();
        let tokens = Tokens::from_file(&dir).unwrap();
        assert!(tokens.required());
        assert!(tokens.accepts("first") && tokens.accepts("second"));
        assert!(!tokens.accepts("firs") && !tokens.accepts("first ") && !tokens.accepts(""));
        assert!(!tokens.accepts("# a comment"));
        std::fs::write(&dir, "# only comments\n\n").unwrap();
        let empty = Tokens::from_file(&dir).unwrap_err().to_string();
        assert!(empty.contains("holds no token"), "{empty}");
        std::fs::remove_file(&dir).unwrap();
        assert!(!Tokens::default().required());
    }
}
