//! `/v1/federations/{id}/invites`: join tokens (admin only) — a browser or an edge box that
//! takes part in a federation holds one of these, never the server's admin token.

use crate::serve::invites::{InviteRow, token_digest};
use crate::serve::problem::ApiError;
use crate::serve::registry::now_ms;
use crate::serve::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

/// The longest a join token may live, and the most joins it may allow.
const MAX_EXPIRY_SECS: i64 = 365 * 24 * 3600;
const MAX_USES: i64 = 1_000_000;

/// `POST /v1/federations/{id}/invites`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateInvite {
    /// Seconds until the token stops working (default: never).
    pub expires_in_secs: Option<i64>,
    /// How many clients may join with it (default: any number).
    pub max_uses: Option<i64>,
}

/// A fresh random token: `kjt_` and 256 random bits in hex.
fn fresh_token() -> String {
    let (a, b) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let mut bytes = Vec::with_capacity(32);
    bytes.extend_from_slice(a.as_bytes());
    bytes.extend_from_slice(b.as_bytes());
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("kjt_{hex}")
}

fn view(invite: &InviteRow) -> Value {
    json!({
        "id": invite.id,
        "federation": invite.federation_id,
        "expiresAt": invite.expires_at,
        "maxUses": invite.max_uses,
        "uses": invite.uses,
        "revoked": invite.revoked != 0,
        "createdAt": invite.created_at,
    })
}

async fn federation_exists(state: &AppState, id: &str) -> Result<(), ApiError> {
    match state.registry.federation(id).await? {
        Some(_) => Ok(()),
        None => Err(ApiError::not_found(format!(
            "no federation {}",
            kiln::error::cut_short(id)
        ))),
    }
}

/// Makes a join token for one federation: it can join, check in, fetch the global model and
/// send updates — nothing else. The token is shown once; the server keeps its digest.
#[utoipa::path(post, path = "/v1/federations/{id}/invites", request_body = CreateInvite,
    responses((status = 201, body = Object), (status = 400, body = crate::serve::problem::Problem, content_type = "application/problem+json"),
              (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Path(id): Path<String>,
    body: Option<Json<CreateInvite>>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    federation_exists(&state, &id).await?;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let now = now_ms();
    let expires_at = match body.expires_in_secs {
        Some(secs) if (1..=MAX_EXPIRY_SECS).contains(&secs) => Some(now + secs * 1000),
        Some(secs) => {
            return Err(ApiError::bad_input(format!(
                "expiresInSecs: must be in 1..={MAX_EXPIRY_SECS}, got {secs}"
            )));
        }
        None => None,
    };
    if let Some(uses) = body.max_uses.filter(|u| !(1..=MAX_USES).contains(u)) {
        return Err(ApiError::bad_input(format!(
            "maxUses: must be in 1..={MAX_USES}, got {uses}"
        )));
    }
    let token = fresh_token();
    let invite = InviteRow {
        id: format!("inv-{}", uuid::Uuid::new_v4()),
        federation_id: id,
        token_digest: token_digest(&token),
        expires_at,
        max_uses: body.max_uses,
        uses: 0,
        revoked: 0,
        created_at: now,
    };
    state.registry.insert_invite(&invite).await?;
    let mut shown = view(&invite);
    shown["token"] = Value::from(token);
    Ok((StatusCode::CREATED, Json(shown)))
}

/// A federation's join tokens (their records; never the tokens).
#[utoipa::path(get, path = "/v1/federations/{id}/invites", responses((status = 200, body = Vec<Object>), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    federation_exists(&state, &id).await?;
    let invites = state.registry.invites(&id).await?;
    Ok(Json(invites.iter().map(view).collect()))
}

/// Revokes a join token: every call made with it is refused from now on.
#[utoipa::path(delete, path = "/v1/federations/{id}/invites/{invite}", responses((status = 204), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn revoke(
    State(state): State<AppState>,
    Path((id, invite)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    if state.registry.revoke_invite(&id, &invite).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found(format!(
            "federation {} has no invite {}",
            kiln::error::cut_short(&id),
            kiln::error::cut_short(&invite)
        )))
    }
}
