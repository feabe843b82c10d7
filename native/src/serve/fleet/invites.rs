//! Join tokens of federations: each lets its holder make one federation's client calls (join,
//! check in, fetch the global model, send updates) and nothing else. Stored as SHA-256 digests;
//! they expire, run out of uses, or are revoked.

use super::registry::Registry;
use serde::Serialize;
use sqlx::FromRow;

/// A join token's record (never the token itself).
#[derive(Debug, Clone, FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct InviteRow {
    /// `inv-<uuid>`.
    pub id: String,
    /// The federation it opens.
    pub federation_id: String,
    /// The token's SHA-256, hex.
    #[serde(skip)]
    pub token_digest: String,
    /// When it stops working (ms since the epoch), if ever.
    pub expires_at: Option<i64>,
    /// How many joins it allows, if limited.
    pub max_uses: Option<i64>,
    /// Joins made with it.
    pub uses: i64,
    /// 1 once revoked.
    pub revoked: i64,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

/// The hex SHA-256 of a token.
pub fn token_digest(token: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(token.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

type Outcome<T> = Result<T, sqlx::Error>;

impl Registry {
    /// Records a join token.
    pub async fn insert_invite(&self, invite: &InviteRow) -> Outcome<()> {
        sqlx::query(
            "INSERT INTO federation_invites
                 (id, federation_id, token_digest, expires_at, max_uses, uses, revoked, created_at)
             VALUES ($1, $2, $3, $4, $5, 0, 0, $6)",
        )
        .bind(&invite.id)
        .bind(&invite.federation_id)
        .bind(&invite.token_digest)
        .bind(invite.expires_at)
        .bind(invite.max_uses)
        .bind(invite.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The live join token (not revoked, not expired at `now`) whose digest is `digest`.
    pub async fn live_invite(&self, digest: &str, now: i64) -> Outcome<Option<InviteRow>> {
        sqlx::query_as(
            "SELECT * FROM federation_invites WHERE token_digest = $1 AND revoked = 0
               AND (expires_at IS NULL OR expires_at > $2)",
        )
        .bind(digest)
        .bind(now)
        .fetch_optional(self.pool())
        .await
    }

    /// Counts a join made with an invite; false when it has no use left.
    pub async fn use_invite(&self, id: &str) -> Outcome<bool> {
        let done = sqlx::query(
            "UPDATE federation_invites SET uses = uses + 1
             WHERE id = $1 AND revoked = 0 AND (max_uses IS NULL OR uses < max_uses)",
        )
        .bind(id)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// A federation's join tokens.
    pub async fn invites(&self, federation: &str) -> Outcome<Vec<InviteRow>> {
        sqlx::query_as(
            "SELECT * FROM federation_invites WHERE federation_id = $1 ORDER BY created_at, id",
        )
        .bind(federation)
        .fetch_all(self.pool())
        .await
    }

    /// Revokes a federation's join token; true if there was one to revoke.
    pub async fn revoke_invite(&self, federation: &str, id: &str) -> Outcome<bool> {
        let done = sqlx::query(
            "UPDATE federation_invites SET revoked = 1 WHERE id = $1 AND federation_id = $2",
        )
        .bind(id)
        .bind(federation)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }
}
