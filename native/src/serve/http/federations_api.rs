//! `/v1/federations`: create, list, inspect, cancel and delete federations (admin), and the
//! client side of a round — join, check in, fetch the global model, send an update.

use crate::serve::federations::{
    FederationPlan, FederationRow, FederationStatus, UpdateRow, global_model_key, objects_prefix,
    update_key,
};
use crate::serve::jobs_api::{EventsQuery, check_tags, follow, parse_config};
use crate::serve::pagination::{PageQuery, headers_after};
use crate::serve::problem::ApiError;
use crate::serve::registry::now_ms;
use crate::serve::rounds::{self, plan_of};
use crate::serve::state::{AppState, blocking};
use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use kiln::federated::{Aggregation, FlatWeights};
use kiln::model::SavedModel;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::convert::Infallible;
use utoipa::{IntoParams, ToSchema};

/// Most rounds, clients per round and seconds per round a federation may ask for.
const MAX_ROUNDS: i64 = 100_000;
const MAX_CLIENTS_PER_ROUND: i64 = 10_000;
const MAX_ROUND_TIMEOUT_SECS: i64 = 7 * 24 * 3600;
const MAX_ROUND_RETRIES: i64 = 100;

/// `POST /v1/federations`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CreateFederation {
    /// The training config every client trains its rounds with (an object with the YAML
    /// schema, or YAML/JSON text); `training.num_passes` is the local epochs per round. Its
    /// `data` section is the clients' business: each trains on its own data.
    #[serde(default, deserialize_with = "kiln::config::optional_strict_value")]
    #[schema(value_type = Object)]
    pub config: Option<Value>,
    /// Rounds in all.
    pub rounds: i64,
    /// Clients taking part in one round, at most.
    pub clients_per_round: i64,
    /// Updates a round needs to close at its timeout (default: `clientsPerRound`).
    pub min_clients: Option<i64>,
    /// How long a round waits for its clients, in seconds (default 600).
    pub round_timeout_secs: Option<i64>,
    /// How many times a round short of `minClients` at its timeout opens again before the
    /// federation fails (default 2).
    pub round_retries: Option<i64>,
    /// How updates are aggregated (default: FedAvg).
    #[schema(value_type = Object)]
    pub aggregation: Option<Aggregation>,
    /// One sample's shape (`[64]`, or `[1, 28, 28]`); needed without `initModel`.
    pub input_shape: Option<Vec<usize>>,
    /// Classes (classification) or 1 (regression); needed without `initModel`.
    pub num_outputs: Option<usize>,
    /// A stored model to start from (its input shape, outputs and standardisation apply).
    pub init_model: Option<String>,
    /// An uploaded dataset every round's global model is evaluated on (`val_*` metrics).
    pub validation_dataset: Option<String>,
    /// String tags.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The server learns only each round's sum of updates (Bonawitz et al. 2017): needs
    /// `aggregation.clipNorm`, and not `median` or `trimmed_mean` (they need each update).
    pub secure_aggregation: Option<bool>,
    /// Secure aggregation: shares needed to remove a client's masks, and the fewest clients a
    /// round may sum (default: a majority of `minClients`, at least 2).
    pub secure_threshold: Option<i64>,
    /// Secure aggregation: how long each step after the key exchange waits for the clients, in
    /// seconds (default 30).
    pub secure_phase_secs: Option<i64>,
}

/// A federation as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FederationView {
    /// `fed-<uuid>`.
    pub id: String,
    /// waiting | running | completed | failed | cancelled.
    pub status: String,
    /// The open round (from 0; `rounds` once completed).
    pub round: i64,
    /// The open round's try, from 0 (a round short of clients at its timeout opens again).
    pub round_try: i64,
    /// Rounds in all.
    pub rounds: i64,
    /// Clients per round, at most.
    pub clients_per_round: i64,
    /// Updates a round needs at its timeout.
    pub min_clients: i64,
    /// Seconds a round waits for its clients.
    pub round_timeout_secs: i64,
    /// The aggregation rule.
    pub aggregation: String,
    /// Whether the server learns only each round's sum of updates.
    pub secure_aggregation: bool,
    /// The open round's members.
    pub participants: Vec<String>,
    /// Updates the open round has received.
    pub updates: usize,
    /// Every closed round: `{round, participants, examples, metrics, closedAt}`.
    #[schema(value_type = Vec<Object>)]
    pub history: Vec<Value>,
    /// The final model and its metrics, once completed (`trainedModel.modelId`).
    #[schema(value_type = Object)]
    pub result: Option<Value>,
    /// The final model's id (also in `result`), named like a training job's.
    #[schema(value_type = Object)]
    pub trained_model: Option<Value>,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    /// String tags.
    pub tags: BTreeMap<String, String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it ended.
    pub finished_at: Option<i64>,
}

async fn view_of(state: &AppState, row: FederationRow) -> Result<FederationView, ApiError> {
    let plan = plan_of(&row)?;
    let registry = &state.registry;
    let participants = registry.members(&row.id, row.round).await?;
    let updates = registry.updates(&row.id, row.round).await?.len();
    let history = registry
        .closed_rounds(&row.id)
        .await?
        .into_iter()
        .map(|r| {
            json!({
                "round": r.round,
                "participants": r.participants,
                "examples": r.examples,
                "metrics": serde_json::from_str::<Value>(&r.metrics).unwrap_or(Value::Null),
                "closedAt": r.closed_at,
            })
        })
        .collect();
    let result: Option<Value> = row
        .result
        .as_deref()
        .and_then(|r| serde_json::from_str(r).ok());
    Ok(FederationView {
        trained_model: result
            .as_ref()
            .map(|r| json!({"modelId": r["modelId"], "guid": r["modelId"]})),
        result,
        id: row.id,
        status: row.status.to_string(),
        round: row.round,
        round_try: row.round_tries,
        rounds: row.rounds,
        clients_per_round: plan.clients_per_round,
        min_clients: plan.min_clients,
        round_timeout_secs: plan.round_timeout_secs,
        aggregation: plan.aggregation.method.to_string(),
        secure_aggregation: plan.secure_aggregation.is_some(),
        participants,
        updates,
        history,
        error: row.error,
        tags: serde_json::from_str(&row.tags).unwrap_or_default(),
        created_at: row.created_at,
        finished_at: row.finished_at,
    })
}

/// A federation by id, or a 404.
async fn find(state: &AppState, id: &str) -> Result<FederationRow, ApiError> {
    state
        .registry
        .federation(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no federation {}", kiln::error::cut_short(id))))
}

fn in_range(field: &str, value: i64, low: i64, high: i64) -> Result<i64, ApiError> {
    if (low..=high).contains(&value) {
        Ok(value)
    } else {
        Err(ApiError::bad_input(format!(
            "{field}: must be in {low}..={high}, got {value}"
        )))
    }
}

/// The round settings of a request, checked.
fn round_settings(body: &CreateFederation) -> Result<(i64, i64, i64, i64, i64), ApiError> {
    let rounds = in_range("rounds", body.rounds, 1, MAX_ROUNDS)?;
    let per_round = in_range(
        "clientsPerRound",
        body.clients_per_round,
        1,
        MAX_CLIENTS_PER_ROUND,
    )?;
    let min_clients = in_range(
        "minClients",
        body.min_clients.unwrap_or(per_round),
        1,
        per_round,
    )?;
    let timeout = in_range(
        "roundTimeoutSecs",
        body.round_timeout_secs.unwrap_or(600),
        1,
        MAX_ROUND_TIMEOUT_SECS,
    )?;
    let retries = in_range(
        "roundRetries",
        body.round_retries.unwrap_or(2),
        0,
        MAX_ROUND_RETRIES,
    )?;
    Ok((rounds, per_round, min_clients, timeout, retries))
}

/// The first global model: the stored `initModel`, or the config's network made fresh.
async fn first_model(
    state: &AppState,
    body: &CreateFederation,
    config: &kiln::Config,
    model_id: &str,
) -> Result<SavedModel, ApiError> {
    if let Some(init) = &body.init_model {
        let id = kiln::store::ModelId::parse(init)
            .map_err(|_| ApiError::bad_input(format!("initModel: no model {init:?}")))?;
        let store = state.runner.store.clone();
        let bytes = blocking(move || {
            futures::executor::block_on(kiln::store::ModelStore::get(&store, &id))
        })
        .await?
        .ok_or_else(|| ApiError::bad_input(format!("initModel: no model {init:?}")))?;
        let mut model = SavedModel::from_bytes(&bytes)?;
        if model.header.vocabulary.is_some() {
            return Err(ApiError::bad_input(
                "initModel: federated training of text models is not supported yet",
            ));
        }
        model.header.model_id = model_id.to_string();
        model.header.config = config.clone();
        let device = kiln::backend::cpu_device();
        model.load_network(&device).map_err(|e| {
            ApiError::bad_input(format!(
                "initModel: its weights do not fit the config's network: {e}"
            ))
        })?;
        return Ok(model);
    }
    let (Some(shape), Some(outputs)) = (&body.input_shape, body.num_outputs) else {
        return Err(ApiError::bad_input(
            "inputShape and numOutputs: both are needed without initModel (the server has no \
             data to read them from), e.g. inputShape: [64], numOutputs: 10",
        ));
    };
    kiln::model::SampleShape::from_dims(shape)
        .map_err(|e| ApiError::bad_input(format!("inputShape: {e}")))?;
    if outputs == 0 || outputs > 1_000_000 {
        return Err(ApiError::bad_input(format!(
            "numOutputs: must be in 1..=1000000, got {outputs}"
        )));
    }
    let (config, shape, id) = (config.clone(), shape.clone(), model_id.to_string());
    let model = blocking(move || {
        futures::executor::block_on(kiln::federated::initial_model(
            &config, &shape, outputs, &id,
        ))
    })
    .await?;
    Ok(model)
}

/// The feature statistics of the validation dataset: the standardisation every client applies.
async fn validation_statistics(
    state: &AppState,
    body: &CreateFederation,
    config: &kiln::Config,
) -> Result<kiln::data::Normalization, ApiError> {
    let dataset = body.validation_dataset.as_deref();
    let Some((path, row)) = rounds::validation_file(&state.runner, dataset).await? else {
        return Err(ApiError::bad_input("validationDataset: none given"));
    };
    let config = config.clone();
    let stats = blocking(move || {
        let loaded = crate::serve::datasets::load(&path, &row, &config)?;
        Ok(kiln::data::Normalization::fit(&loaded.samples))
    })
    .await?;
    Ok(stats)
}

/// Creates a federation: its plan, its first global model; it waits for its first client.
#[utoipa::path(post, path = "/v1/federations", request_body = CreateFederation,
    responses((status = 202, body = FederationView), (status = 400, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn create(
    State(state): State<AppState>,
    Json(body): Json<CreateFederation>,
) -> Result<(StatusCode, Json<FederationView>), ApiError> {
    check_tags(&body.tags)?;
    let (rounds, clients_per_round, min_clients, round_timeout_secs, round_retries) =
        round_settings(&body)?;
    let aggregation = body.aggregation.clone().unwrap_or_default();
    aggregation.validate("aggregation")?;
    let trimmed = (min_clients as f64 * aggregation.trim).floor();
    if aggregation.method == kiln::federated::AggregationMethod::TrimmedMean && trimmed < 1.0 {
        return Err(ApiError::bad_input(format!(
            "aggregation.trim: {} of a round of {min_clients} clients (minClients) drops no \
             update at either end; use at least {:.3}",
            aggregation.trim,
            1.0 / min_clients as f64
        )));
    }
    let secure_aggregation =
        crate::serve::secure_api::settings(&body, &aggregation, clients_per_round, min_clients)?;
    let mut config = aggregation.client_config(parse_config(body.config.clone(), None)?);
    // Standardisation must agree across clients: with `data.normalize`, its statistics come
    // from the validation dataset (or the initModel's); a client never standardises alone.
    let standardise = config.data.normalize && body.init_model.is_none();
    config.data.normalize = false;
    if let Some(dataset) = &body.validation_dataset
        && state.registry.dataset(dataset).await?.is_none()
    {
        return Err(ApiError::bad_input(format!(
            "validationDataset: no dataset {:?} (upload one with POST /v1/datasets)",
            kiln::error::cut_short(dataset)
        )));
    }
    let uuid = uuid::Uuid::new_v4();
    let id = format!("fed-{uuid}");
    let model_id = uuid::Uuid::new_v4().to_string();
    let mut model = first_model(&state, &body, &config, &model_id).await?;
    if standardise && body.validation_dataset.is_some() {
        model.header.normalization = Some(validation_statistics(&state, &body, &config).await?);
    }
    state
        .runner
        .objects
        .put(&global_model_key(&id, 0), model.to_bytes()?.into())
        .await?;
    let plan = FederationPlan {
        config,
        rounds,
        clients_per_round,
        min_clients,
        round_timeout_secs,
        round_retries,
        aggregation,
        validation_dataset: body.validation_dataset.clone(),
        model_id,
        secure_aggregation,
    };
    let row = FederationRow {
        id: id.clone(),
        status: FederationStatus::Waiting,
        spec: serde_json::to_string(&plan).map_err(|e| ApiError::internal("encoding a plan", e))?,
        rounds,
        round: 0,
        round_opened_at: None,
        round_tries: 0,
        closing_until: None,
        tags: serde_json::to_string(&body.tags).unwrap_or_else(|_| "{}".into()),
        error: None,
        result: None,
        created_at: now_ms(),
        finished_at: None,
    };
    state.registry.insert_federation(&row).await?;
    rounds::publish(&state.runner, &id, "status", json!({"status": "waiting"})).await;
    Ok((StatusCode::ACCEPTED, Json(view_of(&state, row).await?)))
}

/// Lists federations, one page at a time (`X-Next-Cursor` names the next).
#[utoipa::path(get, path = "/v1/federations", params(PageQuery), responses((status = 200, body = Vec<FederationView>)))]
pub async fn list(
    State(state): State<AppState>,
    Query(query): Query<PageQuery>,
) -> Result<(HeaderMap, Json<Vec<FederationView>>), ApiError> {
    let page = query.page()?;
    let rows = state.registry.federations(&page).await?;
    let headers = headers_after("/v1/federations", &page, &rows, |r| (r.created_at, &r.id));
    let mut views = Vec::with_capacity(rows.len());
    for row in rows {
        views.push(view_of(&state, row).await?);
    }
    Ok((headers, Json(views)))
}

/// One federation: its status, open round, participants and every closed round's metrics.
#[utoipa::path(get, path = "/v1/federations/{id}", responses((status = 200, body = FederationView), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<FederationView>, ApiError> {
    let row = find(&state, &id).await?;
    Ok(Json(view_of(&state, row).await?))
}

/// Cancels a federation that has not ended.
#[utoipa::path(post, path = "/v1/federations/{id}/cancel", responses((status = 200, body = FederationView), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<FederationView>, ApiError> {
    find(&state, &id).await?;
    rounds::end(&state.runner, &id, FederationStatus::Cancelled, "cancelled").await?;
    Ok(Json(view_of(&state, find(&state, &id).await?).await?))
}

/// Deletes an ended federation with its global models and updates (its final model stays in
/// the model store).
#[utoipa::path(delete, path = "/v1/federations/{id}", responses((status = 204), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json"), (status = 409, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = find(&state, &id).await?;
    if !row.status.is_final() {
        return Err(ApiError::conflict(format!(
            "federation {id} is {}; cancel it first",
            row.status
        )));
    }
    state.registry.delete_federation(&id).await?;
    state
        .runner
        .objects
        .delete_all(&objects_prefix(&id))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Server-Sent Events of a federation: `status`, `roundStarted`, `clientJoined`,
/// `updateReceived`, `clientDropped`, `roundClosed` (with the round's metrics), `warning`;
/// its history after `Last-Event-ID`, then live, ending after the final `status`.
#[utoipa::path(get, path = "/v1/federations/{id}/events", params(EventsQuery), responses((status = 200, content_type = "text/event-stream"), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    find(&state, &id).await?;
    // Subscribe before reading the status and the history, so nothing falls between them.
    let live = state.hub.subscribe(&id);
    let ended = find(&state, &id).await?.status.is_final();
    follow(state, id, live, ended, &query, &headers).await
}

/// `POST /v1/federations/{id}/join`.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Join {
    /// The id this client had before (kept across reloads and restarts); none: a new one.
    pub participant: Option<String>,
}

/// A participant id: `p-` and a random (v4) UUID.
fn check_participant(id: &str) -> Result<(), ApiError> {
    let uuid = id
        .strip_prefix("p-")
        .and_then(|u| uuid::Uuid::parse_str(u).ok());
    match uuid {
        Some(u) if u.get_version_num() == 4 && u.hyphenated().to_string() == id[2..] => Ok(()),
        _ => Err(ApiError::bad_input(format!(
            "participant: must be p-<random v4 uuid, lower case> as join handed out, got {:?}",
            kiln::error::cut_short(id)
        ))),
    }
}

/// Joins a federation: the participant id this client uses from now on (the one it had, when
/// it rejoins), and the federation.
#[utoipa::path(post, path = "/v1/federations/{id}/join", request_body = Join, responses((status = 200, body = Object), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn join(
    State(state): State<AppState>,
    Path(id): Path<String>,
    scope: Option<axum::Extension<crate::serve::auth::InviteScope>>,
    body: Option<Json<Join>>,
) -> Result<Json<Value>, ApiError> {
    let row = find(&state, &id).await?;
    if let Some(axum::Extension(scope)) = scope
        && !state.registry.use_invite(&scope.invite).await?
    {
        return Err(ApiError::new(
            crate::serve::problem::ProblemKind::Protocol(StatusCode::FORBIDDEN),
            "this join token has no joins left (maxUses); ask for another",
        ));
    }
    let participant = match body.and_then(|Json(b)| b.participant) {
        Some(p) => {
            check_participant(&p)?;
            p
        }
        None => format!("p-{}", uuid::Uuid::new_v4()),
    };
    let plan = plan_of(&row)?;
    let secure = plan.secure_aggregation.map(|s| {
        json!({"threshold": s.threshold, "phaseSecs": s.phase_secs, "clipNorm": plan.aggregation.clip_norm})
    });
    Ok(Json(json!({
        "participant": participant,
        "federation": view_of(&state, row).await?,
        "config": plan.config,
        "secureAggregation": secure,
    })))
}

/// `POST /v1/federations/{id}/checkin`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CheckIn {
    /// The participant id `join` handed out.
    pub participant: String,
}

/// What a client should do now: `train` round `round` (fetch the model, send an update),
/// `wait` (the round is full, or its update is in: check in again), or stop — `completed`,
/// `failed`, `cancelled`.
#[utoipa::path(post, path = "/v1/federations/{id}/checkin", request_body = CheckIn, responses((status = 200, body = Object), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn check_in(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Json(body): Json<CheckIn>,
) -> Result<Json<Value>, ApiError> {
    check_participant(&body.participant)?;
    let mut row = find(&state, &id).await?;
    if row.status == FederationStatus::Waiting
        && state.registry.start_federation(&id, now_ms()).await?
    {
        rounds::publish(&state.runner, &id, "status", json!({"status": "running"})).await;
        rounds::publish(&state.runner, &id, "roundStarted", json!({"round": 0})).await;
        row = find(&state, &id).await?;
    }
    let action = if row.status.is_final() {
        row.status.to_string()
    } else if row.closing_until.is_some()
        || state
            .registry
            .has_update(&id, row.round, &body.participant)
            .await?
    {
        "wait".to_string()
    } else {
        let plan = plan_of(&row)?;
        let was = state
            .registry
            .is_member(&id, row.round, &body.participant)
            .await?;
        let member = was
            || state
                .registry
                .join_round(
                    &id,
                    row.round,
                    &body.participant,
                    plan.clients_per_round,
                    now_ms(),
                )
                .await?;
        if member && !was {
            rounds::publish(
                &state.runner,
                &id,
                "clientJoined",
                json!({"round": row.round, "participant": body.participant}),
            )
            .await;
        }
        if member { "train" } else { "wait" }.to_string()
    };
    Ok(Json(json!({
        "action": action,
        "round": row.round,
        "rounds": row.rounds,
        "status": row.status,
        "error": row.error,
        "result": row.result.as_deref().and_then(|r| serde_json::from_str::<Value>(r).ok()),
        "modelUrl": format!("/v1/federations/{id}/model"),
    })))
}

/// `?round=` of `GET …/model`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ModelQuery {
    /// The round whose starting model to fetch (default: the open round's, or the final one).
    pub round: Option<i64>,
}

/// The global model (`.kiln` bytes) that a round starts from; after the last round, the final
/// model.
#[utoipa::path(get, path = "/v1/federations/{id}/model", params(ModelQuery), responses((status = 200, content_type = "application/octet-stream"), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn model(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(query): Query<ModelQuery>,
) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    let round = query.round.unwrap_or(row.round);
    if round < 0 || round > row.round {
        return Err(ApiError::not_found(format!(
            "federation {id} has no model of round {round} (its rounds so far: 0..={})",
            row.round
        )));
    }
    let bytes = state
        .runner
        .objects
        .get(&global_model_key(&id, round))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(format!("federation {id}: no model of round {round}"))
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{id}-{round}.kiln\""),
            ),
            (
                header::HeaderName::from_static("x-kiln-round"),
                round.to_string(),
            ),
        ],
        bytes,
    )
        .into_response())
}

/// `?participant=&examples=` of `POST …/rounds/{round}/updates`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct UpdateQuery {
    /// The participant id.
    pub participant: String,
    /// The training examples the update was trained on (FedAvg's weight).
    pub examples: i64,
}

/// A client's update to an open round: its locally trained model (`.kiln` bytes, the global
/// model's architecture). Refused when the round has moved on or is being aggregated (409),
/// when the client is not a member of the round (403), twice (409), or when the weights do not
/// fit or are not finite (400).
#[utoipa::path(post, path = "/v1/federations/{id}/rounds/{round}/updates", params(UpdateQuery),
    request_body(content = Vec<u8>, content_type = "application/octet-stream"),
    responses((status = 202, body = Object), (status = 400, body = crate::serve::problem::Problem, content_type = "application/problem+json"),
              (status = 403, body = crate::serve::problem::Problem, content_type = "application/problem+json"),
              (status = 409, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn submit_update(
    State(state): State<AppState>,
    Path((id, round)): Path<(String, i64)>,
    Query(query): Query<UpdateQuery>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    check_participant(&query.participant)?;
    let examples = in_range("examples", query.examples, 1, i64::from(u32::MAX))?;
    let row = find(&state, &id).await?;
    let participant = query.participant;
    if row.status != FederationStatus::Running || row.round != round || row.closing_until.is_some()
    {
        return Err(ApiError::conflict(format!(
            "round {round} of federation {id} takes no updates: the federation is {} at round {}{}",
            row.status,
            row.round,
            if row.closing_until.is_some() {
                " (being aggregated)"
            } else {
                ""
            }
        )));
    }
    if !state.registry.is_member(&id, round, &participant).await? {
        return Err(ApiError::new(
            crate::serve::problem::ProblemKind::Protocol(StatusCode::FORBIDDEN),
            format!("{participant} is not a member of round {round}: check in first"),
        ));
    }
    if state.registry.has_update(&id, round, &participant).await? {
        return Err(ApiError::conflict(format!(
            "{participant} already sent its update to round {round}"
        )));
    }
    let global = state
        .runner
        .objects
        .get(&global_model_key(&id, round))
        .await?
        .ok_or_else(|| ApiError::internal("the round's global model", "missing"))?;
    let upload = body.clone();
    let metrics = match plan_of(&row)?.secure_aggregation {
        Some(_) => {
            crate::serve::secure_api::check_masked(&state, &row, &participant, &body).await?;
            BTreeMap::new()
        }
        None => blocking(move || check_update(&global, &upload)).await?,
    };
    let size = body.len() as i64;
    state
        .runner
        .objects
        .put(&update_key(&id, round, &participant), body)
        .await?;
    let update = UpdateRow {
        participant: participant.clone(),
        examples,
        metrics: serde_json::to_string(&metrics).unwrap_or_else(|_| "{}".into()),
        bytes: size,
        received_at: now_ms(),
    };
    if !state.registry.insert_update(&id, round, &update).await? {
        return Err(ApiError::conflict(format!(
            "round {round} of federation {id} closed before this update was recorded"
        )));
    }
    rounds::publish(
        &state.runner,
        &id,
        "updateReceived",
        json!({"round": round, "participant": participant, "examples": examples, "bytes": size}),
    )
    .await;
    let runner = state.runner.clone();
    let fed = id.clone();
    tokio::spawn(async move {
        if let Err(e) = rounds::close_if_full(&runner, &fed).await {
            tracing::warn!("federation {fed}: {e}");
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({"round": round, "participant": participant})),
    ))
}

/// Checks an update against the round's global model: the same architecture and layout,
/// finite weights. Returns its local metrics (finite ones).
fn check_update(global: &[u8], upload: &[u8]) -> kiln::Result<BTreeMap<String, f64>> {
    let global = SavedModel::from_bytes(global)?;
    let update = SavedModel::from_bytes(upload)
        .map_err(|e| kiln::KilnError::Model(format!("the update is not a .kiln model: {e}")))?;
    if update.header.architecture != global.header.architecture
        || update.header.input_shape != global.header.input_shape
        || update.header.num_outputs != global.header.num_outputs
    {
        return Err(kiln::KilnError::Model(format!(
            "the update is a {} model of shape {:?} → {}, but the federation's is {} {:?} → {}",
            update.header.architecture,
            update.header.input_shape,
            update.header.num_outputs,
            global.header.architecture,
            global.header.input_shape,
            global.header.num_outputs
        )));
    }
    let global_weights = FlatWeights::from_burnpack("the global model", &global.weights)?;
    let weights = FlatWeights::from_burnpack("the update", &update.weights)?;
    global_weights.check_same_layout("the update", &weights)?;
    Ok(update
        .header
        .metrics
        .into_iter()
        .filter(|(_, v)| v.is_finite())
        .collect())
}
