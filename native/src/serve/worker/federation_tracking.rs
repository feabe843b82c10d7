//! A federation as one MLflow run (`kiln serve --mlflow URI`): created when its first round
//! closes (its params: the config and the federation's settings), one step per round (that
//! round's metrics), ended with the federation. The run id is kept in the object store, written
//! once, so every server of a fleet logs into the same run. Tracking never holds a round up: a
//! tracking server that fails is a warning in the server's log.

use crate::serve::federations::{FederationPlan, FederationStatus, RoundRow};
use crate::serve::runner::RunnerContext;
use crate::tracking::{MlflowApi, TimedPoint, flatten_config};
use kiln::train::MetricPoint;
use std::collections::BTreeMap;
use std::time::Duration;

/// How long one tracking call may take.
const TIMEOUT: Duration = Duration::from_secs(10);

/// One tracking call sequence at a time in this process: a federation's run is created once
/// and its rounds are logged in order.
static IN_TURN: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn run_key(id: &str) -> String {
    format!("federations/{id}/mlflow-run.json")
}

/// The federation's run id: the one kept, or a new run (kept now).
async fn run_id(
    ctx: &RunnerContext,
    uri: &str,
    id: &str,
    plan: &FederationPlan,
) -> Result<String, String> {
    let key = run_key(id);
    if let Some(bytes) = ctx.objects.get(&key).await.map_err(|e| e.to_string())? {
        return Ok(String::from_utf8_lossy(&bytes).into_owned());
    }
    let (uri, fed, config) = (uri.to_string(), id.to_string(), plan.config.clone());
    let mut params = flatten_config(&config);
    params.extend([
        ("federation.rounds".to_string(), plan.rounds.to_string()),
        (
            "federation.clients_per_round".to_string(),
            plan.clients_per_round.to_string(),
        ),
        (
            "federation.aggregation".to_string(),
            plan.aggregation.method.to_string(),
        ),
        (
            "federation.secure_aggregation".to_string(),
            plan.secure_aggregation.is_some().to_string(),
        ),
    ]);
    let created = tokio::task::spawn_blocking(move || -> Result<String, String> {
        let api = MlflowApi::new(&uri).map_err(|e| e.message)?;
        let experiment = config
            .tracking
            .mlflow
            .as_ref()
            .and_then(|m| m.experiment.clone())
            .unwrap_or_else(|| config.name.clone());
        let experiment = api
            .experiment_id(&experiment, TIMEOUT)
            .map_err(|e| e.message)?;
        let tags = [
            ("kiln.federation_id".to_string(), fed.clone()),
            (
                "kiln.version".to_string(),
                env!("CARGO_PKG_VERSION").to_string(),
            ),
        ];
        let run = api
            .create_run(
                &experiment,
                &format!("{} ({fed})", config.name),
                &tags,
                TIMEOUT,
            )
            .map_err(|e| e.message)?;
        for chunk in params.chunks(100) {
            api.log_batch(&run.run_id, &[], chunk, &[], TIMEOUT)
                .map_err(|e| e.message)?;
        }
        Ok(run.run_id)
    })
    .await
    .map_err(|e| e.to_string())??;
    let kept = ctx
        .objects
        .put_new(&key, created.clone().into_bytes().into())
        .await
        .map_err(|e| e.to_string())?;
    if kept {
        return Ok(created);
    }
    // Another server created one at the same time: its run is the federation's; ours goes.
    let orphan = created.clone();
    let uri = uri_of(ctx);
    let _ = tokio::task::spawn_blocking(move || {
        MlflowApi::new(&uri).and_then(|api| api.delete_run(&orphan, TIMEOUT))
    })
    .await;
    let bytes = ctx
        .objects
        .get(&key)
        .await
        .map_err(|e| e.to_string())?
        .ok_or("the run id vanished")?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

fn uri_of(ctx: &RunnerContext) -> String {
    ctx.mlflow.clone().unwrap_or_default()
}

/// Logs a closed round's metrics at step `round + 1`; ends the run when `finished`.
pub async fn log_round(
    ctx: &RunnerContext,
    id: &str,
    plan: &FederationPlan,
    round: &RoundRow,
    finished: bool,
) {
    let Some(uri) = ctx.mlflow.clone() else {
        return;
    };
    let metrics: BTreeMap<String, f64> = serde_json::from_str(&round.metrics).unwrap_or_default();
    let step = (round.round + 1) as u64;
    let now = crate::serve::registry::now_ms();
    let mut points: Vec<TimedPoint> = metrics
        .into_iter()
        .filter(|(_, v)| v.is_finite())
        .map(|(name, value)| TimedPoint {
            point: MetricPoint { name, step, value },
            timestamp_ms: now,
        })
        .collect();
    for (name, value) in [
        ("participants", round.participants as f64),
        ("examples", round.examples as f64),
    ] {
        points.push(TimedPoint {
            point: MetricPoint {
                name: name.to_string(),
                step,
                value,
            },
            timestamp_ms: now,
        });
    }
    let _turn = IN_TURN.lock().await;
    let outcome = async {
        let run = run_id(ctx, &uri, id, plan).await?;
        tokio::task::spawn_blocking(move || -> Result<(), String> {
            let api = MlflowApi::new(&uri).map_err(|e| e.message)?;
            api.log_batch(&run, &points, &[], &[], TIMEOUT)
                .map_err(|e| e.message)?;
            if finished {
                api.set_status(&run, "FINISHED", Some(now), TIMEOUT)
                    .map_err(|e| e.message)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| e.to_string())?
    };
    if let Err(e) = outcome.await {
        tracing::warn!("federation {id}: MLflow: {e}");
    }
}

/// Ends the federation's run as FAILED or KILLED (when it has one).
pub async fn end_run(ctx: &RunnerContext, id: &str, status: FederationStatus) {
    let Some(uri) = ctx.mlflow.clone() else {
        return;
    };
    let _turn = IN_TURN.lock().await;
    let Ok(Some(bytes)) = ctx.objects.get(&run_key(id)).await else {
        return;
    };
    let run = String::from_utf8_lossy(&bytes).into_owned();
    let state = match status {
        FederationStatus::Cancelled => "KILLED",
        FederationStatus::Completed => "FINISHED",
        _ => "FAILED",
    };
    let now = crate::serve::registry::now_ms();
    let ended = tokio::task::spawn_blocking(move || {
        MlflowApi::new(&uri)
            .and_then(|api| api.set_status(&run, state, Some(now), TIMEOUT))
            .map_err(|e| e.message)
    })
    .await;
    if let Ok(Err(e)) = ended {
        tracing::warn!("federation {id}: MLflow: {e}");
    }
}
