//! Bearer tokens: the admin tokens of `--token-file` (one per line), kept as SHA-256 digests
//! and compared in constant time; and federations' join tokens (in the registry, as digests),
//! each of which opens one federation's client calls and nothing else.

use crate::serve::invites::token_digest;
use crate::serve::problem::{ApiError, ProblemKind};
use crate::serve::registry::{Registry, now_ms};
use axum::extract::{Request, State};
use axum::http::{Method, header};
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

/// What the authentication layer checks tokens against.
#[derive(Debug, Clone)]
pub struct Gate {
    /// The admin tokens.
    pub tokens: Tokens,
    /// Where join tokens are.
    pub registry: Registry,
}

/// A request made with a federation's join token (not an admin token): the invite's id.
#[derive(Debug, Clone)]
pub struct InviteScope {
    /// `inv-<uuid>`.
    pub invite: String,
}

/// Whether a join token of federation `federation` may make this call: its client calls only.
fn client_call(method: &Method, path: &str, federation: &str) -> bool {
    let Some(rest) = path
        .strip_prefix("/v1/federations/")
        .and_then(|p| p.strip_prefix(federation))
        .and_then(|p| p.strip_prefix('/'))
    else {
        return false;
    };
    // `rounds/{round}/…`: the part after the round number.
    let in_round = rest
        .strip_prefix("rounds/")
        .and_then(|r| r.split_once('/'))
        .filter(|(round, _)| round.parse::<i64>().is_ok())
        .map(|(_, tail)| tail);
    match (method, in_round) {
        (&Method::POST, None) => rest == "join" || rest == "checkin",
        (&Method::GET, None) => rest == "model",
        (&Method::POST, Some(tail)) => {
            matches!(
                tail,
                "updates" | "secure/keys" | "secure/shares" | "secure/reveal"
            )
        }
        (&Method::GET, Some(tail)) => {
            matches!(tail, "secure/roster" | "secure/inbox" | "secure/survivors")
        }
        _ => false,
    }
}

/// Middleware: every API endpoint but `/v1/health` needs `Authorization: Bearer <token>` when
/// the server has tokens — an admin token, or for a federation's client calls its join token.
pub async fn require_token(
    State(gate): State<Gate>,
    mut request: Request,
    next: Next,
) -> std::result::Result<Response, ApiError> {
    // Health, and the dashboard's page and files (they hold no data; the page asks for the
    // token and sends it with every API call). CORS preflights carry no credentials.
    let path = request.uri().path();
    let open = path == "/v1/health"
        || path == "/"
        || path.starts_with("/ui/")
        || (path.starts_with("/jobs/") && !path[6..].contains('/'))
        || (path.starts_with("/federations/") && !path[13..].contains('/'))
        || request.method() == "OPTIONS";
    if gate.tokens.required() && !open {
        let given = request
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(|t| t.trim().to_string());
        let Some(token) = given else {
            return Err(ApiError::new(
                ProblemKind::Unauthorized,
                "this server needs a token: send Authorization: Bearer <token>",
            ));
        };
        if !gate.tokens.accepts(&token) {
            let invite = gate
                .registry
                .live_invite(&token_digest(&token), now_ms())
                .await?
                .ok_or_else(|| {
                    ApiError::new(
                        ProblemKind::Unauthorized,
                        "the token is not one this server accepts",
                    )
                })?;
            if !client_call(
                request.method(),
                request.uri().path(),
                &invite.federation_id,
            ) {
                return Err(ApiError::new(
                    ProblemKind::Protocol(axum::http::StatusCode::FORBIDDEN),
                    format!(
                        "a join token opens only federation {}'s client calls (join, checkin, \
                         model, updates)",
                        invite.federation_id
                    ),
                ));
            }
            request
                .extensions_mut()
                .insert(InviteScope { invite: invite.id });
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

    #[test]
    fn a_join_token_opens_only_its_federation_s_client_calls() {
        let fed = "fed-1";
        for (method, path) in [
            (Method::POST, "/v1/federations/fed-1/join"),
            (Method::POST, "/v1/federations/fed-1/checkin"),
            (Method::GET, "/v1/federations/fed-1/model"),
            (Method::POST, "/v1/federations/fed-1/rounds/3/updates"),
            (Method::POST, "/v1/federations/fed-1/rounds/3/secure/keys"),
            (Method::POST, "/v1/federations/fed-1/rounds/3/secure/shares"),
            (Method::POST, "/v1/federations/fed-1/rounds/3/secure/reveal"),
            (Method::GET, "/v1/federations/fed-1/rounds/3/secure/roster"),
            (Method::GET, "/v1/federations/fed-1/rounds/3/secure/inbox"),
            (
                Method::GET,
                "/v1/federations/fed-1/rounds/3/secure/survivors",
            ),
        ] {
            assert!(client_call(&method, path, fed), "{method} {path}");
        }
        for (method, path) in [
            (Method::GET, "/v1/federations/fed-1"),
            (Method::DELETE, "/v1/federations/fed-1"),
            (Method::POST, "/v1/federations/fed-1/cancel"),
            (Method::POST, "/v1/federations/fed-1/invites"),
            (Method::GET, "/v1/federations/fed-1/events"),
            (Method::POST, "/v1/federations/fed-12/join"),
            (Method::POST, "/v1/federations/fed-2/join"),
            (Method::POST, "/v1/federations/fed-1/rounds/x/updates"),
            (Method::POST, "/v1/federations/fed-1/rounds/3/updates/x"),
            (Method::GET, "/v1/federations/fed-1/rounds/3/secure/keys"),
            (Method::POST, "/v1/federations/fed-1/rounds/3/secure/roster"),
            (Method::GET, "/v1/federations/fed-2/rounds/3/secure/roster"),
            (Method::GET, "/v1/jobs"),
            (Method::POST, "/v1/federations"),
        ] {
            assert!(!client_call(&method, path, fed), "{method} {path}");
        }
    }
}
