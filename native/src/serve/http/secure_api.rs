//! `/v1/federations/{id}/rounds/{round}/secure/…`: the steps of a securely aggregated round,
//! where the server only relays — public keys, sealed shares, the fixed sets of clients,
//! revealed shares — and never sees an update that is not masked.

use crate::serve::federations::{FederationPlan, FederationRow, FederationStatus, SecureSettings};
use crate::serve::federations_api::CreateFederation;
use crate::serve::problem::ApiError;
use crate::serve::rounds::{self, plan_of};
use crate::serve::secure_rounds::{self, Advertised, Roster};
use crate::serve::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use kiln::federated::secure::{FixedPoint, MAX_CLIENTS, Revealed, SealedShare};
use kiln::federated::{Aggregation, AggregationMethod, FlatWeights};
use kiln::model::SavedModel;
use serde::Deserialize;
use serde_json::{Value, json};

/// The secure-aggregation settings of a new federation, checked; `None` without it.
pub fn settings(
    body: &CreateFederation,
    aggregation: &Aggregation,
    clients_per_round: i64,
    min_clients: i64,
) -> Result<Option<SecureSettings>, ApiError> {
    if body.secure_aggregation != Some(true) {
        if body.secure_threshold.is_some() || body.secure_phase_secs.is_some() {
            return Err(ApiError::bad_input(
                "secureThreshold and securePhaseSecs need secureAggregation: true",
            ));
        }
        return Ok(None);
    }
    if matches!(
        aggregation.method,
        AggregationMethod::Median | AggregationMethod::TrimmedMean
    ) {
        return Err(ApiError::bad_input(format!(
            "aggregation.method: {} needs each client's update, which secure aggregation hides; \
             use fedavg, fedprox, fedadam or fedyogi",
            aggregation.method
        )));
    }
    if aggregation.clip_norm.is_none() {
        return Err(ApiError::bad_input(
            "aggregation.clipNorm: secure aggregation needs it (updates are clipped to it and \
             encoded as fixed-point numbers in a range it sets), e.g. 10",
        ));
    }
    if clients_per_round > MAX_CLIENTS as i64 {
        return Err(ApiError::bad_input(format!(
            "clientsPerRound: at most {MAX_CLIENTS} with secure aggregation, got {clients_per_round}"
        )));
    }
    let threshold = body
        .secure_threshold
        .unwrap_or((min_clients / 2 + 1).max(2));
    if threshold < 2 || threshold > min_clients {
        return Err(ApiError::bad_input(format!(
            "secureThreshold: must be in 2..=minClients ({min_clients}), got {threshold}"
        )));
    }
    let phase_secs = body.secure_phase_secs.unwrap_or(30);
    if !(1..=3600).contains(&phase_secs) {
        return Err(ApiError::bad_input(format!(
            "securePhaseSecs: must be in 1..=3600, got {phase_secs}"
        )));
    }
    Ok(Some(SecureSettings {
        threshold: threshold as usize,
        phase_secs,
    }))
}

/// The open, securely aggregated round `round` of federation `id`: its row, plan and settings.
async fn open_round(
    state: &AppState,
    id: &str,
    round: i64,
) -> Result<(FederationRow, FederationPlan, SecureSettings), ApiError> {
    let row = state
        .registry
        .federation(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no federation {id:?}")))?;
    let plan = plan_of(&row)?;
    let Some(settings) = plan.secure_aggregation else {
        return Err(ApiError::not_found(format!(
            "federation {id} does not aggregate securely"
        )));
    };
    if row.status != FederationStatus::Running || row.round != round {
        return Err(ApiError::conflict(format!(
            "round {round} of federation {id} is not open: the federation is {} at round {}",
            row.status, row.round
        )));
    }
    Ok((row, plan, settings))
}

/// Moves the round's steps on (the clients' polls drive them as the round clock does).
async fn advance(state: &AppState, row: &FederationRow, plan: &FederationPlan, s: &SecureSettings) {
    if let Err(e) = secure_rounds::advance(&state.runner, row, plan, s).await {
        tracing::warn!("federation {}: {e}", row.id);
    }
}

/// A JSON body as `T`, or a 400 naming what is wrong.
fn parse<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    serde_json::from_value(body).map_err(|e| ApiError::bad_input(e.to_string()))
}

fn check_participant(state_members: &[String], participant: &str) -> Result<(), ApiError> {
    if state_members.iter().any(|m| m == participant) {
        Ok(())
    } else {
        Err(ApiError::new(
            crate::serve::problem::ProblemKind::Protocol(StatusCode::FORBIDDEN),
            format!("{participant} is not a member of this round: check in first"),
        ))
    }
}

/// A member's index in the roster, or 403.
fn index_in(roster: &Roster, participant: &str) -> Result<u8, ApiError> {
    roster
        .members
        .iter()
        .find(|m| m.participant == participant)
        .map(|m| m.index)
        .ok_or_else(|| {
            ApiError::new(
                crate::serve::problem::ProblemKind::Protocol(StatusCode::FORBIDDEN),
                format!("{participant} is not in this round's roster (its keys came too late)"),
            )
        })
}

/// Writes a participant's message unless it sent one already (409).
async fn store_once(
    state: &AppState,
    key: &str,
    value: &impl serde::Serialize,
) -> Result<(), ApiError> {
    let bytes = serde_json::to_vec(value).map_err(|e| ApiError::internal("encoding", e))?;
    if !state.runner.objects.put_new(key, bytes.into()).await? {
        return Err(ApiError::conflict(
            "this participant already sent this step's message",
        ));
    }
    Ok(())
}

/// `POST …/secure/keys` `{participant, keys: {cipher, mask}}`: step 1.
#[utoipa::path(post, path = "/v1/federations/{id}/rounds/{round}/secure/keys", request_body = Object, responses((status = 202, body = Object), (status = 409, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn keys(
    State(state): State<AppState>,
    Path((id, round)): Path<(String, i64)>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let advertised: Advertised = parse(body)?;
    let (row, _, _) = open_round(&state, &id, round).await?;
    let members = state.registry.members(&id, round).await?;
    check_participant(&members, &advertised.participant)?;
    for (name, key) in [
        ("cipher", &advertised.keys.cipher),
        ("mask", &advertised.keys.mask),
    ] {
        if key.len() != 64 || !key.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ApiError::bad_input(format!(
                "keys.{name}: must be 32 bytes in hex"
            )));
        }
    }
    let folder = secure_rounds::folder(&row);
    if state
        .runner
        .objects
        .get(&format!("{folder}/roster.json"))
        .await?
        .is_some()
    {
        return Err(ApiError::conflict(format!(
            "the roster of round {round} is already fixed"
        )));
    }
    let key = format!("{folder}/keys/{}.json", advertised.participant);
    store_once(&state, &key, &advertised).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"round": round, "try": row.round_tries})),
    ))
}

/// `GET …/secure/roster`: `{ready, try}`, and once fixed `threshold`, `members`, `context`.
#[utoipa::path(get, path = "/v1/federations/{id}/rounds/{round}/secure/roster", responses((status = 200, body = Object)))]
pub async fn roster(
    State(state): State<AppState>,
    Path((id, round)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    let (row, plan, settings) = open_round(&state, &id, round).await?;
    advance(&state, &row, &plan, &settings).await;
    let fixed = secure_rounds::fixings(&state.runner, &secure_rounds::folder(&row)).await?;
    Ok(Json(match fixed.roster {
        Some(r) => json!({"ready": true, "try": row.round_tries, "threshold": r.threshold,
                          "members": r.members, "context": r.context}),
        None => json!({"ready": false, "try": row.round_tries}),
    }))
}

/// `POST …/secure/shares` `{participant, shares: [{from, to, sealed}]}`: step 2, one sealed
/// share for every other member of the roster.
#[utoipa::path(post, path = "/v1/federations/{id}/rounds/{round}/secure/shares", request_body = Object, responses((status = 202, body = Object), (status = 409, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn shares(
    State(state): State<AppState>,
    Path((id, round)): Path<(String, i64)>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        participant: String,
        shares: Vec<SealedShare>,
    }
    let body: Body = parse(body)?;
    let (row, _, _) = open_round(&state, &id, round).await?;
    let folder = secure_rounds::folder(&row);
    let fixed = secure_rounds::fixings(&state.runner, &folder).await?;
    let roster = fixed.roster.ok_or_else(|| {
        ApiError::conflict(format!("the roster of round {round} is not fixed yet"))
    })?;
    let me = index_in(&roster, &body.participant)?;
    let mut to: Vec<u8> = body.shares.iter().map(|s| s.to).collect();
    to.sort_unstable();
    to.dedup();
    let complete = to.len() == body.shares.len()
        && to.len() + 1 == roster.members.len()
        && body
            .shares
            .iter()
            .all(|s| s.from == me && s.to != me && s.sealed.len() <= 1024)
        && to
            .iter()
            .all(|t| roster.members.iter().any(|m| m.index == *t));
    if !complete {
        return Err(ApiError::bad_input(
            "shares: one sealed share from this client to every other member of the roster",
        ));
    }
    if fixed.sharers.is_some() {
        return Err(ApiError::conflict(format!(
            "the shares of round {round} are already relayed"
        )));
    }
    let key = format!("{folder}/shares/{}.json", body.participant);
    store_once(&state, &key, &body.shares).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"round": round, "try": row.round_tries})),
    ))
}

/// `?participant=` of `GET …/secure/inbox`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct InboxQuery {
    /// Whose shares.
    pub participant: String,
}

/// `GET …/secure/inbox?participant=`: `{ready, try}`, and once the shares are relayed the
/// clients whose shares went out (`sharers`) and the shares sealed for this one.
#[utoipa::path(get, path = "/v1/federations/{id}/rounds/{round}/secure/inbox", params(InboxQuery), responses((status = 200, body = Object)))]
pub async fn inbox(
    State(state): State<AppState>,
    Path((id, round)): Path<(String, i64)>,
    Query(query): Query<InboxQuery>,
) -> Result<Json<Value>, ApiError> {
    let (row, plan, settings) = open_round(&state, &id, round).await?;
    advance(&state, &row, &plan, &settings).await;
    let folder = secure_rounds::folder(&row);
    let fixed = secure_rounds::fixings(&state.runner, &folder).await?;
    let (Some(roster), Some(sharers)) = (fixed.roster, fixed.sharers) else {
        return Ok(Json(json!({"ready": false, "try": row.round_tries})));
    };
    let me = index_in(&roster, &query.participant)?;
    let inbox = secure_rounds::inbox(&state.runner, &folder, &roster, &sharers, me).await?;
    Ok(Json(
        json!({"ready": true, "try": row.round_tries, "sharers": sharers.indices, "shares": inbox}),
    ))
}

/// `GET …/secure/survivors`: `{ready, try}`, and once fixed the clients whose masked updates
/// arrived.
#[utoipa::path(get, path = "/v1/federations/{id}/rounds/{round}/secure/survivors", responses((status = 200, body = Object)))]
pub async fn survivors(
    State(state): State<AppState>,
    Path((id, round)): Path<(String, i64)>,
) -> Result<Json<Value>, ApiError> {
    let (row, plan, settings) = open_round(&state, &id, round).await?;
    advance(&state, &row, &plan, &settings).await;
    let fixed = secure_rounds::fixings(&state.runner, &secure_rounds::folder(&row)).await?;
    Ok(Json(match fixed.survivors {
        Some(f) => json!({"ready": true, "try": row.round_tries, "survivors": f.indices}),
        None => json!({"ready": false, "try": row.round_tries}),
    }))
}

/// `POST …/secure/reveal` `{participant, revealed: [{of, secret, share}]}`: step 4.
#[utoipa::path(post, path = "/v1/federations/{id}/rounds/{round}/secure/reveal", request_body = Object, responses((status = 202, body = Object), (status = 409, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn reveal(
    State(state): State<AppState>,
    Path((id, round)): Path<(String, i64)>,
    Json(body): Json<Value>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Body {
        participant: String,
        revealed: Vec<Revealed>,
    }
    let body: Body = parse(body)?;
    let (row, _, _) = open_round(&state, &id, round).await?;
    let folder = secure_rounds::folder(&row);
    let fixed = secure_rounds::fixings(&state.runner, &folder).await?;
    let (Some(roster), Some(survivors)) = (fixed.roster, fixed.survivors) else {
        return Err(ApiError::conflict(format!(
            "the survivors of round {round} are not fixed yet"
        )));
    };
    let me = index_in(&roster, &body.participant)?;
    if !survivors.indices.contains(&me) {
        return Err(ApiError::conflict(format!(
            "{} sent no masked update to round {round}",
            body.participant
        )));
    }
    let mut of: Vec<u8> = body.revealed.iter().map(|r| r.of).collect();
    of.sort_unstable();
    of.dedup();
    if of.len() != body.revealed.len() || body.revealed.iter().any(|r| r.share.x != me) {
        return Err(ApiError::bad_input(
            "revealed: at most one share per client, each at this client's own point",
        ));
    }
    let key = format!("{folder}/reveals/{}.json", body.participant);
    store_once(&state, &key, &body.revealed).await?;
    let runner = state.runner.clone();
    tokio::spawn(async move {
        if let Err(e) = rounds::close_if_full(&runner, &id).await {
            tracing::warn!("federation {id}: {e}");
        }
    });
    Ok((StatusCode::ACCEPTED, Json(json!({"round": round}))))
}

/// Checks a masked update (step 3) before it is stored: its client's shares went out, and it
/// holds one ring element (8 bytes, little-endian) per weight of the round's global model.
pub async fn check_masked(
    state: &AppState,
    row: &FederationRow,
    participant: &str,
    body: &Bytes,
) -> Result<(), ApiError> {
    let fixed = secure_rounds::fixings(&state.runner, &secure_rounds::folder(row)).await?;
    let (Some(roster), Some(sharers)) = (fixed.roster, fixed.sharers) else {
        return Err(ApiError::conflict(
            "a masked update comes after the shares are relayed (GET …/secure/inbox)",
        ));
    };
    let me = index_in(&roster, participant)?;
    if !sharers.indices.contains(&me) {
        return Err(ApiError::conflict(format!(
            "{participant}'s shares did not go out in time: its update cannot be unmasked"
        )));
    }
    let global = state
        .runner
        .objects
        .get(&crate::serve::federations::global_model_key(
            &row.id, row.round,
        ))
        .await?
        .ok_or_else(|| ApiError::internal("the round's global model", "missing"))?;
    let weights = FlatWeights::from_burnpack(
        "the global model",
        &SavedModel::from_bytes(&global)?.weights,
    )?;
    if body.len() != weights.len() * 8 {
        return Err(ApiError::bad_input(format!(
            "a masked update holds {} bytes (8 per weight of the model), got {}",
            weights.len() * 8,
            body.len()
        )));
    }
    // The encoding the clients use must exist for this federation.
    let plan = plan_of(row)?;
    FixedPoint::new(plan.aggregation.clip_norm.unwrap_or(0.0))?;
    Ok(())
}
