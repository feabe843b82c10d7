//! A federation's rounds on the server: closing a round once its updates are in (or at its
//! timeout with enough of them), aggregating them into the next global model, evaluating it,
//! and storing the final model — exactly once per round, on whichever server gets there first,
//! and again after a crash (a server's hold on a round it aggregates runs out).

use super::federation_tracking;
use super::round_inputs::{RoundInputs, client_models, masked_inputs};
use super::secure_rounds::{self, Progress};
use crate::serve::federations::{
    FederationPlan, FederationRow, FederationStatus, RoundRow, SecureSettings, UpdateRow,
    global_model_key, moments_key, update_key,
};
use crate::serve::registry::now_ms;
use crate::serve::runner::RunnerContext;
use kiln::federated::{FlatWeights, ServerMoments, aggregate};
use kiln::model::SavedModel;
use kiln::{KilnError, Result};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;

/// How long a server holds a round it aggregates before another may take over.
const CLOSING_HOLD_MS: i64 = 120_000;
/// How often the round clock looks at the open federations.
pub const TICK: Duration = Duration::from_millis(500);

/// A federation's plan, read from its row.
pub fn plan_of(row: &FederationRow) -> Result<FederationPlan> {
    serde_json::from_str(&row.spec)
        .map_err(|e| KilnError::Internal(format!("federation {}: unreadable plan: {e}", row.id)))
}

fn registry_error(e: sqlx::Error) -> KilnError {
    KilnError::Internal(format!("registry: {e}"))
}

/// Records an event of a federation (kept for `GET …/events` and sent to its subscribers).
pub async fn publish(ctx: &RunnerContext, id: &str, kind: &str, data: Value) {
    if let Err(e) = ctx.hub.publish(id, kind, data.to_string(), 0).await {
        tracing::warn!("federation {id}: event {kind} not recorded: {e}");
    }
}

/// Ends a federation that has not ended, saying why, and tells its subscribers.
pub async fn end(
    ctx: &RunnerContext,
    id: &str,
    status: FederationStatus,
    why: &str,
) -> Result<bool> {
    let ended = ctx
        .hub
        .registry()
        .end_federation(id, status, why, now_ms())
        .await
        .map_err(registry_error)?;
    if ended {
        publish(ctx, id, "status", json!({"status": status, "error": why})).await;
        let (ctx, id) = (ctx.clone(), id.to_string());
        tokio::spawn(async move { federation_tracking::end_run(&ctx, &id, status).await });
    }
    Ok(ended)
}

/// One look at every open federation: rounds past their timeout close, open again or fail;
/// rounds whose aggregating server went away are aggregated here.
pub async fn tick(ctx: &RunnerContext) {
    let open = match ctx.hub.registry().open_federations().await {
        Ok(rows) => rows,
        Err(e) => {
            tracing::debug!("federations: cannot read the registry: {e}");
            return;
        }
    };
    for row in open {
        if let Err(e) = look_at(ctx, &row).await {
            tracing::warn!("federation {}: {e}", row.id);
        }
    }
}

async fn look_at(ctx: &RunnerContext, row: &FederationRow) -> Result<()> {
    if row.status != FederationStatus::Running {
        return Ok(());
    }
    let plan = plan_of(row)?;
    let now = now_ms();
    if row.closing_until.is_some_and(|until| until >= now) {
        return Ok(());
    }
    if let Some(settings) = &plan.secure_aggregation {
        return secure_step(ctx, row, &plan, settings).await;
    }
    let registry = ctx.hub.registry();
    let updates = registry
        .updates(&row.id, row.round)
        .await
        .map_err(registry_error)?
        .len() as i64;
    let timed_out = row
        .round_opened_at
        .is_some_and(|at| now - at >= plan.round_timeout_secs.saturating_mul(1000));
    if row.closing_until.is_some() || updates >= plan.clients_per_round {
        return close(ctx, row, &plan).await;
    }
    if !timed_out {
        return Ok(());
    }
    if updates >= plan.min_clients {
        announce_dropped(ctx, row, &silent_members(ctx, row).await?).await;
        return close(ctx, row, &plan).await;
    }
    if row.round_tries < plan.round_retries {
        let dropped = registry
            .reopen_round(&row.id, row.round, now)
            .await
            .map_err(registry_error)?;
        announce_dropped(ctx, row, &dropped).await;
        publish(
            ctx,
            &row.id,
            "warning",
            json!({"round": row.round, "message": format!(
                "round {} had {updates} of the {} updates it needs after {} s; it is open again (try {} of {})",
                row.round, plan.min_clients, plan.round_timeout_secs, row.round_tries + 2, plan.round_retries + 1
            )}),
        )
        .await;
        return Ok(());
    }
    let why = format!(
        "round {} had {updates} of the {} updates it needs after {} tries of {} s each",
        row.round,
        plan.min_clients,
        plan.round_retries + 1,
        plan.round_timeout_secs
    );
    end(ctx, &row.id, FederationStatus::Failed, &why).await?;
    Ok(())
}

/// Says that `participants` were dropped from the open round of `row`.
async fn announce_dropped(ctx: &RunnerContext, row: &FederationRow, participants: &[String]) {
    for participant in participants {
        publish(
            ctx,
            &row.id,
            "clientDropped",
            json!({"round": row.round, "participant": participant, "why": "no update before the round's timeout"}),
        )
        .await;
    }
}

/// The members of the open round that sent no update.
async fn silent_members(ctx: &RunnerContext, row: &FederationRow) -> Result<Vec<String>> {
    let registry = ctx.hub.registry();
    let sent: Vec<String> = registry
        .updates(&row.id, row.round)
        .await
        .map_err(registry_error)?
        .into_iter()
        .map(|u| u.participant)
        .collect();
    Ok(registry
        .members(&row.id, row.round)
        .await
        .map_err(registry_error)?
        .into_iter()
        .filter(|m| !sent.contains(m))
        .collect())
}

/// A securely aggregated round: its steps moved on; aggregated once they are all done; started
/// again (or the federation failed, after its tries) when a step fell short of the threshold.
async fn secure_step(
    ctx: &RunnerContext,
    row: &FederationRow,
    plan: &FederationPlan,
    settings: &SecureSettings,
) -> Result<()> {
    if row.closing_until.is_some() {
        return close(ctx, row, plan).await;
    }
    let why = match secure_rounds::advance(ctx, row, plan, settings).await? {
        Progress::Pending => return Ok(()),
        Progress::Ready(_) => return close(ctx, row, plan).await,
        Progress::Failed(why) => why,
    };
    let why = format!("round {}: {why}", row.round);
    if row.round_tries >= plan.round_retries {
        let why = format!("{why} (after {} tries)", plan.round_retries + 1);
        end(ctx, &row.id, FederationStatus::Failed, &why).await?;
        return Ok(());
    }
    let members = ctx
        .hub
        .registry()
        .restart_round(&row.id, row.round, now_ms())
        .await
        .map_err(registry_error)?;
    if members.is_empty() {
        return Ok(());
    }
    publish(
        ctx,
        &row.id,
        "warning",
        json!({"round": row.round, "message": format!(
            "{why}; the round starts again (try {} of {})", row.round_tries + 2, plan.round_retries + 1
        )}),
    )
    .await;
    Ok(())
}

/// Closes the open round of `row` once its updates are all in (called after each update).
pub async fn close_if_full(ctx: &RunnerContext, id: &str) -> Result<()> {
    let Some(row) = ctx
        .hub
        .registry()
        .federation(id)
        .await
        .map_err(registry_error)?
    else {
        return Ok(());
    };
    if row.status != FederationStatus::Running || row.closing_until.is_some() {
        return Ok(());
    }
    let plan = plan_of(&row)?;
    if let Some(settings) = &plan.secure_aggregation {
        return secure_step(ctx, &row, &plan, settings).await;
    }
    let updates = ctx
        .hub
        .registry()
        .updates(id, row.round)
        .await
        .map_err(registry_error)?;
    if updates.len() as i64 >= plan.clients_per_round {
        close(ctx, &row, &plan).await?;
    }
    Ok(())
}

/// Aggregates the open round and moves the federation on, if this server gets to.
async fn close(ctx: &RunnerContext, row: &FederationRow, plan: &FederationPlan) -> Result<()> {
    let registry = ctx.hub.registry();
    let now = now_ms();
    let claimed = registry
        .claim_round(&row.id, row.round, now, now + CLOSING_HOLD_MS)
        .await
        .map_err(registry_error)?;
    if !claimed {
        return Ok(());
    }
    let outcome = aggregate_round(ctx, row, plan).await;
    let (next, round) = match outcome {
        Ok(done) => done,
        Err(e) => {
            let why = format!("round {} could not be aggregated: {e}", row.round);
            end(ctx, &row.id, FederationStatus::Failed, &why).await?;
            return Ok(());
        }
    };
    registry
        .record_round(&row.id, &round)
        .await
        .map_err(registry_error)?;
    let result = if row.round + 1 >= plan.rounds {
        Some(store_final(ctx, plan, &next).await?)
    } else {
        None
    };
    let moved = registry
        .advance_round(&row.id, row.round, now_ms(), result.as_deref())
        .await
        .map_err(registry_error)?;
    if !moved {
        return Ok(());
    }
    announce_closed(ctx, row, &round, result.as_deref()).await;
    let (ctx, id, plan, finished) = (ctx.clone(), row.id.clone(), plan.clone(), result.is_some());
    tokio::spawn(async move {
        federation_tracking::log_round(&ctx, &id, &plan, &round, finished).await;
    });
    Ok(())
}

/// Stores the final model in the model store; the federation's result (JSON).
async fn store_final(
    ctx: &RunnerContext,
    plan: &FederationPlan,
    model: &SavedModel,
) -> Result<String> {
    let (stored, store) = (model.clone(), ctx.store.clone());
    tokio::task::spawn_blocking(move || {
        futures::executor::block_on(kiln::store::save_model(&store, &stored))
    })
    .await
    .map_err(|e| KilnError::Internal(format!("storing the final model: {e}")))??;
    Ok(json!({
        "modelId": plan.model_id,
        "guid": plan.model_id,
        "rounds": plan.rounds,
        "finalMetrics": model.header.metrics,
    })
    .to_string())
}

/// Tells the federation's followers that a round closed, and what comes next: the next round,
/// or the federation's completion with its `result`.
async fn announce_closed(
    ctx: &RunnerContext,
    row: &FederationRow,
    round: &RoundRow,
    result: Option<&str>,
) {
    let metrics: Value = serde_json::from_str(&round.metrics).unwrap_or(Value::Null);
    publish(
        ctx,
        &row.id,
        "roundClosed",
        json!({"round": row.round, "participants": round.participants, "examples": round.examples, "metrics": metrics}),
    )
    .await;
    match result {
        Some(result) => {
            let result: Value = serde_json::from_str(result).unwrap_or(Value::Null);
            publish(
                ctx,
                &row.id,
                "status",
                json!({"status": "completed", "result": result}),
            )
            .await;
        }
        None => {
            publish(
                ctx,
                &row.id,
                "roundStarted",
                json!({"round": row.round + 1}),
            )
            .await;
        }
    }
}

/// The next global model from round `row.round`'s updates, and the round's record. The same
/// updates give the same model, so a round aggregated again after a crash is the same round.
async fn aggregate_round(
    ctx: &RunnerContext,
    row: &FederationRow,
    plan: &FederationPlan,
) -> Result<(SavedModel, RoundRow)> {
    let registry = ctx.hub.registry();
    let mut updates = registry
        .updates(&row.id, row.round)
        .await
        .map_err(registry_error)?;
    let unmasking = match &plan.secure_aggregation {
        Some(settings) => match secure_rounds::advance(ctx, row, plan, settings).await? {
            Progress::Ready(unmasking) => {
                // Only the survivors' masked updates are in the sum.
                updates.retain(|u| {
                    unmasking.roster.members.iter().any(|m| {
                        m.participant == u.participant && unmasking.survivors.contains(&m.index)
                    })
                });
                Some(*unmasking)
            }
            _ => return Err(KilnError::Training("the secure steps are not done".into())),
        },
        None => None,
    };
    if updates.is_empty() {
        return Err(KilnError::Training("no update arrived".into()));
    }
    let objects = &ctx.objects;
    let (global_bytes, clients) = round_objects(ctx, row, &updates).await?;
    let clients = match unmasking {
        Some(unmasking) => RoundInputs::Masked(masked_inputs(&unmasking, &updates, clients)?),
        None => RoundInputs::Models(clients),
    };
    let moments = match row.round {
        0 => None,
        r => objects.get(&moments_key(&row.id, r)).await?,
    };
    let settings = plan.aggregation.clone();
    let validation = validation_file(ctx, plan.validation_dataset.as_deref()).await?;
    let id = row.id.clone();
    let round = row.round;
    let (next, moments, validation_metrics) = tokio::task::spawn_blocking(move || {
        combine(
            &id,
            round,
            &global_bytes,
            &clients,
            &settings,
            moments.as_deref(),
            validation,
        )
    })
    .await
    .map_err(|e| KilnError::Internal(format!("aggregation task: {e}")))??;
    if let Some(moments) = moments {
        objects
            .put(&moments_key(&row.id, row.round + 1), moments.into())
            .await?;
    }
    let mut metrics = weighted_metrics(&updates);
    for (name, value) in validation_metrics {
        metrics.insert(name, value);
    }
    let mut next = next;
    next.header.metrics = metrics.clone();
    next.header.created_unix_ms = now_ms() as u64;
    objects
        .put(
            &global_model_key(&row.id, row.round + 1),
            next.to_bytes()?.into(),
        )
        .await?;
    let record = RoundRow {
        round: row.round,
        participants: updates.len() as i64,
        examples: updates.iter().map(|u| u.examples).sum(),
        metrics: serde_json::to_string(&metrics).unwrap_or_else(|_| "{}".into()),
        closed_at: now_ms(),
    };
    Ok((next, record))
}

/// The objects a round is aggregated from: the global model it started from and every update
/// with its example count.
async fn round_objects(
    ctx: &RunnerContext,
    row: &FederationRow,
    updates: &[UpdateRow],
) -> Result<(bytes::Bytes, Vec<(bytes::Bytes, i64)>)> {
    let objects = &ctx.objects;
    let missing = |what: String| KilnError::Internal(format!("{what} is missing"));
    let global = objects
        .get(&global_model_key(&row.id, row.round))
        .await?
        .ok_or_else(|| missing(format!("the global model of round {}", row.round)))?;
    let mut clients = Vec::with_capacity(updates.len());
    for update in updates {
        let bytes = objects
            .get(&update_key(&row.id, row.round, &update.participant))
            .await?
            .ok_or_else(|| missing(format!("the update of {}", update.participant)))?;
        clients.push((bytes, update.examples));
    }
    Ok((global, clients))
}

/// The validation dataset's file and row, when there is one.
pub async fn validation_file(
    ctx: &RunnerContext,
    dataset: Option<&str>,
) -> Result<Option<(std::path::PathBuf, crate::serve::registry::DatasetRow)>> {
    let Some(id) = dataset else {
        return Ok(None);
    };
    let row = ctx
        .hub
        .registry()
        .dataset(id)
        .await
        .map_err(registry_error)?
        .ok_or_else(|| KilnError::Data(format!("the validation dataset {id} was deleted")))?;
    let key = crate::serve::datasets::dataset_key(&row.id, &row.format);
    let objects = ctx.objects.clone();
    let path = tokio::task::spawn_blocking(move || objects.local_file(&key))
        .await
        .map_err(|e| KilnError::Internal(format!("dataset task: {e}")))??;
    Ok(Some((path, row)))
}

type Combined = (SavedModel, Option<Vec<u8>>, BTreeMap<String, f64>);

/// The aggregation itself (blocking work): the next global model, the server optimiser's
/// moments and the validation metrics (`val_*`).
fn combine(
    id: &str,
    round: i64,
    global_bytes: &[u8],
    clients: &RoundInputs,
    settings: &kiln::federated::Aggregation,
    moments: Option<&[u8]>,
    validation: Option<(std::path::PathBuf, crate::serve::registry::DatasetRow)>,
) -> Result<Combined> {
    let global = SavedModel::from_bytes(global_bytes)?;
    let global_weights = FlatWeights::from_burnpack("the global model", &global.weights)?;
    let (models, settings) = client_models(&global_weights, clients, settings)?;
    let moments = match moments {
        Some(bytes) => Some(read_moments(bytes)?),
        None => None,
    };
    let (next_weights, moments) = aggregate(&global_weights, &models, &settings, moments)?;
    let next = SavedModel {
        header: global.header.clone(),
        weights: next_weights.to_burnpack()?,
    };
    let moments = match moments {
        Some(m) => Some(write_moments(&m)?),
        None => None,
    };
    let metrics = match validation {
        Some((path, row)) => evaluate_on(&next, &path, &row).map_err(|e| {
            KilnError::Data(format!("federation {id} round {round}: validation: {e}"))
        })?,
        None => BTreeMap::new(),
    };
    Ok((next, moments, metrics))
}

/// The moments as one burnpack: `m.<name>` and `v.<name>` tensors.
fn write_moments(moments: &ServerMoments) -> Result<Vec<u8>> {
    let mut all = moments.m.clone();
    for t in &mut all.tensors {
        t.name = format!("m.{}", t.name);
    }
    for t in &moments.v.tensors {
        let mut t = t.clone();
        t.name = format!("v.{}", t.name);
        all.tensors.push(t);
    }
    all.to_burnpack()
}

fn read_moments(bytes: &[u8]) -> Result<ServerMoments> {
    let all = FlatWeights::from_burnpack("the server optimiser's moments", bytes)?;
    let split = |prefix: &str| FlatWeights {
        tensors: all
            .tensors
            .iter()
            .filter_map(|t| {
                t.name
                    .strip_prefix(prefix)
                    .map(|name| kiln::federated::NamedValues {
                        name: name.to_string(),
                        ..t.clone()
                    })
            })
            .collect(),
    };
    Ok(ServerMoments {
        m: split("m."),
        v: split("v."),
    })
}

/// The global model's metrics on the validation dataset, as `val_<metric>`.
fn evaluate_on(
    model: &SavedModel,
    path: &std::path::Path,
    row: &crate::serve::registry::DatasetRow,
) -> Result<BTreeMap<String, f64>> {
    let config = &model.header.config;
    let loaded = crate::serve::datasets::load(path, row, config)?;
    let set = crate::models_cmd::for_model(model, loaded.samples)?;
    let device = kiln::backend::cpu_device();
    let network = model.load_network(&device)?;
    let report = futures::executor::block_on(kiln::train::evaluate(
        &network,
        &set,
        config.training.batch_size,
        &config.validation.metrics,
        &device,
        None,
    ))?;
    Ok(report
        .metrics
        .into_iter()
        .map(|(name, value)| (format!("val_{name}"), value))
        .collect())
}

/// The clients' local metrics, averaged weighted by their examples.
fn weighted_metrics(updates: &[UpdateRow]) -> BTreeMap<String, f64> {
    let mut sums: BTreeMap<String, (f64, f64)> = BTreeMap::new();
    for update in updates {
        let metrics: BTreeMap<String, f64> =
            serde_json::from_str(&update.metrics).unwrap_or_default();
        let weight = update.examples.max(1) as f64;
        for (name, value) in metrics {
            if value.is_finite() {
                let entry = sums.entry(format!("clients_{name}")).or_default();
                entry.0 += value * weight;
                entry.1 += weight;
            }
        }
    }
    sums.into_iter()
        .map(|(name, (sum, weight))| (name, sum / weight))
        .collect()
}
