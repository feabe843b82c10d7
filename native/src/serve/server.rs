//! `kiln serve`: binds, recovers unfinished jobs, starts the training threads, serves the API,
//! and stops cleanly on SIGINT / SIGTERM.

use super::auth::{Gate, Tokens, require_token};
use super::body_limits::{BodyLimits, limit_bodies};
use super::claim_loop::{start_training_threads, stop_training_threads};
use super::hub::Hub;
use super::model_store::ServerModels;
use super::objects::Objects;
use super::problem::problems_everywhere;
use super::recorder::Recorder;
use super::registry::{Dialect, Registry, WorkerRow, now_ms, redact};
use super::runner::RunnerContext;
use super::scheduler::Scheduler;
use super::state::AppState;
use super::worker::{WorkerIdentity, worker_id};
use super::{datasets_api, heartbeat, jobs_api, listener, models_api, openapi, predictions_api};
use super::{federations_api, invites_api, rounds, secure_api, ui, workers_api};
use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::{HeaderName, HeaderValue, Method, header};
use axum::routing::{get, post};
use kiln::backend::DeviceChoice;
use kiln::store::DirStore;
use kiln::{KilnError, Result};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::TimeoutLayer;

/// Options of `kiln serve`.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    /// Address to bind.
    pub addr: SocketAddr,
    /// Registry, datasets, job runs and models.
    pub data_dir: PathBuf,
    /// Bearer tokens, one per line.
    pub token_file: Option<PathBuf>,
    /// Origins allowed by CORS.
    pub allow_origins: Vec<String>,
    /// Jobs training at once.
    pub max_concurrent_jobs: usize,
    /// Largest request body, in MiB.
    pub max_upload_mb: usize,
    /// Largest `POST /v1/models/{id}/predict` body, in MiB.
    pub max_json_mb: usize,
    /// Jobs waiting at most.
    pub max_queued_jobs: usize,
    /// The device jobs train and predict on (its backend labels the worker).
    pub device: DeviceChoice,
    /// The MLflow tracking server every training job logs to.
    pub mlflow: Option<String>,
    /// `postgres://…` (a fleet's shared registry); `None`: `DATA_DIR/kiln.db`.
    pub database: Option<String>,
    /// `file:///dir` or `s3://bucket/prefix`; `None`: `DATA_DIR`.
    pub objects: Option<String>,
    /// This worker's labels.
    pub labels: Vec<(String, String)>,
    /// How long a claim lasts without a heartbeat.
    pub lease: Duration,
}

/// How long a request (not an event stream) may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);

fn internal(context: &str, e: impl std::fmt::Display) -> KilnError {
    KilnError::Internal(format!("{context}: {e}"))
}

/// Runs the server until SIGINT or SIGTERM. Training uses `pool` (the CPU backend's threads).
pub fn serve(options: ServeOptions, pool: Arc<rayon::ThreadPool>) -> Result<()> {
    let tokens = match &options.token_file {
        Some(path) => Tokens::from_file(path)?,
        None => Tokens::default(),
    };
    if !tokens.required() && !options.addr.ip().is_loopback() {
        return Err(KilnError::InvalidArgument(format!(
            "--addr {}: without --token-file the server only binds a loopback address \
             (127.0.0.1, ::1); give --token-file to serve other hosts",
            options.addr
        )));
    }
    let origins = allowed_origins(&options.allow_origins)?;
    for dir in ["datasets", "jobs", "models"] {
        let path = options.data_dir.join(dir);
        std::fs::create_dir_all(&path)
            .map_err(|e| KilnError::io(format!("cannot create {}", path.display()), e))?;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| internal("cannot start the async runtime", e))?;
    let (registry, objects) = open_storage(&options, &runtime)?;
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(options.addr))
        .map_err(|e| KilnError::io(format!("cannot bind {}", options.addr), e))?;
    let bound = listener
        .local_addr()
        .map_err(|e| KilnError::io("cannot read the bound address", e))?;
    let runner = start_worker(&options, &runtime, &registry, objects, bound)?;
    let workers = start_training_threads(&runner, &pool, options.max_concurrent_jobs)?;
    let scheduler = runner.scheduler.clone();
    let recorder = runner.recorder.clone();
    let worker_id = runner.worker.id.clone();
    let streams = runner.hub.clone();
    let state = AppState {
        registry: registry.clone(),
        hub: runner.hub.clone(),
        scheduler: scheduler.clone(),
        runner,
        tokens,
        max_queued_jobs: options.max_queued_jobs,
    };
    let app = router(state, &options, origins);
    println!(
        "kiln serve: listening on http://{bound} (data in {}; worker {worker_id})",
        options.data_dir.display(),
    );
    let stopping = scheduler.clone();
    runtime.block_on(super::connections::serve_connections(
        listener,
        app,
        async move {
            shutdown_signal().await;
            tracing::info!(
                "stopping (running jobs checkpoint at the end of their epoch and \
                 resume at the next start)"
            );
            stopping.stop();
            streams.close_all();
        },
    ));
    stop_training_threads(&scheduler, workers);
    recorder.flush(Duration::from_secs(30));
    let _ = runtime.block_on(registry.worker_stopped(&worker_id));
    runtime.shutdown_timeout(Duration::from_secs(5));
    Ok(())
}

/// The registry (`--database`, else SQLite in the data directory) and the object store
/// (`--objects`, else the data directory).
fn open_storage(
    options: &ServeOptions,
    runtime: &tokio::runtime::Runtime,
) -> Result<(Registry, Objects)> {
    let registry = runtime
        .block_on(async {
            match &options.database {
                Some(url) => Registry::connect(url).await,
                None => Registry::open_file(&options.data_dir.join("kiln.db")).await,
            }
        })
        .map_err(|e| match &options.database {
            Some(url) => internal(&format!("cannot open the registry at {}", redact(url)), e),
            None => internal("cannot open the registry", e),
        })?;
    let objects = match &options.objects {
        Some(url) => Objects::open(url, &options.data_dir, runtime.handle().clone())?,
        None => Objects::data_dir(&options.data_dir, runtime.handle().clone())?,
    };
    if registry.dialect() == Dialect::Postgres && !objects.is_remote() {
        tracing::warn!(
            "the registry is shared but models, datasets and checkpoints \
             stay in this machine's {} — give every worker the same --objects URL so that any \
             of them can run any job and take jobs over",
            options.data_dir.display()
        );
    }
    Ok((registry, objects))
}

/// This worker: its identity, joined to the fleet (its earlier jobs requeued), its heartbeat
/// and (on PostgreSQL) its notifications started; what its training threads share.
fn start_worker(
    options: &ServeOptions,
    runtime: &tokio::runtime::Runtime,
    registry: &Registry,
    objects: Objects,
    bound: SocketAddr,
) -> Result<RunnerContext> {
    let mut labels: BTreeMap<String, String> = options.labels.iter().cloned().collect();
    labels.insert("backend".into(), options.device.kind.to_string());
    let worker = WorkerIdentity {
        id: worker_id(&options.data_dir)?,
        labels,
        lease: options.lease,
    };
    let hub = Hub::new(registry.clone(), worker.id.clone());
    let scheduler = Arc::new(Scheduler::new());
    let store = if objects.is_remote() {
        ServerModels::Objects(objects.clone())
    } else {
        ServerModels::Dir(DirStore::new(options.data_dir.join("models")))
    };
    let runner = RunnerContext {
        runtime: runtime.handle().clone(),
        hub: hub.clone(),
        scheduler: scheduler.clone(),
        data_dir: options.data_dir.clone(),
        store,
        objects,
        backend: options.device.kind,
        device: options.device,
        mlflow: options.mlflow.clone(),
        recorder: Recorder::start(runtime.handle(), hub.clone(), scheduler.clone()),
        worker: worker.clone(),
    };
    runtime.block_on(join_fleet(&runner, options, bound))?;
    runtime.spawn(round_clock(runner.clone()));
    runtime.spawn(heartbeat::beat(
        registry.clone(),
        worker.id.clone(),
        scheduler.clone(),
        worker.lease,
    ));
    if let (Dialect::Postgres, Some(url)) = (registry.dialect(), &options.database) {
        runtime.spawn(listener::listen(
            url.clone(),
            worker.id.clone(),
            hub,
            scheduler,
        ));
    }
    Ok(runner)
}

/// Closes, reopens or fails federation rounds as their timeouts pass (on every server: a round
/// is closed once, by whichever gets there first).
async fn round_clock(runner: RunnerContext) {
    let mut clock = tokio::time::interval(rounds::TICK);
    clock.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        clock.tick().await;
        rounds::tick(&runner).await;
    }
}

/// Registers this worker (again, after a restart) and puts the jobs its previous run held
/// back in the queue at once — without waiting for their leases to run out — each with an
/// `interrupted` event; they resume from their latest checkpoint.
async fn join_fleet(
    runner: &RunnerContext,
    options: &ServeOptions,
    bound: SocketAddr,
) -> Result<()> {
    let registry = runner.hub.registry();
    let worker = &runner.worker;
    let now = now_ms();
    let row = WorkerRow {
        id: worker.id.clone(),
        host: hostname(),
        addr: bound.to_string(),
        backend: options.device.kind.to_string(),
        labels: serde_json::to_string(&worker.labels).unwrap_or_else(|_| "{}".into()),
        capacity: options.max_concurrent_jobs as i64,
        started_at: now,
        heartbeat_at: now,
        draining: 0,
        stopped_at: None,
        lease_ms: worker.lease.as_millis() as i64,
    };
    registry
        .register_worker(&row)
        .await
        .map_err(|e| internal("cannot register this worker", e))?;
    let released = registry
        .release_all_of(&worker.id)
        .await
        .map_err(|e| internal("cannot read the registry", e))?;
    for job in released {
        let reason = if job.checkpoint.is_some()
            || crate::run_dir::RunDir::has_checkpoint(&runner.job_dir(&job.id))
        {
            "the server stopped while the job was training; it resumes from its latest checkpoint"
        } else {
            "the server stopped while the job was training; it starts again (no checkpoint yet)"
        };
        runner
            .hub
            .publish(
                &job.id,
                "interrupted",
                serde_json::json!({ "reason": reason, "worker": worker.id }).to_string(),
                0,
            )
            .await
            .map_err(|e| internal("cannot record an event", e))?;
    }
    Ok(())
}

/// The machine's name, for `GET /v1/workers`.
fn hostname() -> String {
    std::fs::read_to_string("/etc/hostname")
        .map(|h| h.trim().to_string())
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown".into())
}

/// The CORS origins `--allow-origin` names: `None` for none, `AllowOrigin::any()` for `*` (with
/// a warning: any web page may then call the API, with a token it has), else the list.
fn allowed_origins(given: &[String]) -> Result<Option<AllowOrigin>> {
    if given.iter().any(|o| o.trim() == "*") {
        tracing::warn!(
            "--allow-origin '*' lets pages from any origin call this API \
             (they still need a token when the server has one; no cookies or credentials are \
             ever allowed)"
        );
        return Ok(Some(AllowOrigin::any()));
    }
    let mut origins = Vec::new();
    for origin in given {
        origins.push(HeaderValue::from_str(origin).map_err(|_| {
            KilnError::InvalidArgument(format!(
                "--allow-origin: {:?} is not a valid origin (e.g. https://app.example.com, or * \
                 for any)",
                kiln::error::cut_short(origin)
            ))
        })?);
    }
    Ok((!origins.is_empty()).then(|| AllowOrigin::list(origins)))
}

/// The federation endpoints: admin calls, join tokens, and the clients' round calls.
fn federation_routes() -> Router<AppState> {
    Router::new()
        .route(
            "/v1/federations",
            post(federations_api::create).get(federations_api::list),
        )
        .route(
            "/v1/federations/{id}",
            get(federations_api::show).delete(federations_api::delete),
        )
        .route("/v1/federations/{id}/cancel", post(federations_api::cancel))
        .route("/v1/federations/{id}/events", get(federations_api::events))
        .route(
            "/v1/federations/{id}/invites",
            post(invites_api::create).get(invites_api::list),
        )
        .route(
            "/v1/federations/{id}/invites/{invite}",
            axum::routing::delete(invites_api::revoke),
        )
        .route("/v1/federations/{id}/join", post(federations_api::join))
        .route(
            "/v1/federations/{id}/checkin",
            post(federations_api::check_in),
        )
        .route("/v1/federations/{id}/model", get(federations_api::model))
        .route(
            "/v1/federations/{id}/rounds/{round}/updates",
            post(federations_api::submit_update),
        )
        .route(
            "/v1/federations/{id}/rounds/{round}/secure/keys",
            post(secure_api::keys),
        )
        .route(
            "/v1/federations/{id}/rounds/{round}/secure/roster",
            get(secure_api::roster),
        )
        .route(
            "/v1/federations/{id}/rounds/{round}/secure/shares",
            post(secure_api::shares),
        )
        .route(
            "/v1/federations/{id}/rounds/{round}/secure/inbox",
            get(secure_api::inbox),
        )
        .route(
            "/v1/federations/{id}/rounds/{round}/secure/survivors",
            get(secure_api::survivors),
        )
        .route(
            "/v1/federations/{id}/rounds/{round}/secure/reveal",
            post(secure_api::reveal),
        )
}

fn router(state: AppState, options: &ServeOptions, origins: Option<AllowOrigin>) -> Router {
    let api = Router::new()
        .route("/", get(ui::page))
        .route("/jobs/{id}", get(ui::page))
        .route("/federations/{id}", get(ui::page))
        .route("/ui/{file}", get(ui::file))
        .route("/v1/health", get(openapi::health))
        .route("/v1/openapi.json", get(openapi::document))
        .route(
            "/v1/datasets",
            post(datasets_api::upload).get(datasets_api::list),
        )
        .route(
            "/v1/datasets/{id}",
            axum::routing::delete(datasets_api::delete),
        )
        .route("/v1/jobs", post(jobs_api::submit).get(jobs_api::list))
        .route(
            "/v1/jobs/{id}",
            get(jobs_api::show).delete(jobs_api::delete),
        )
        .route("/v1/jobs/{id}/cancel", post(jobs_api::cancel))
        .route("/v1/jobs/{id}/events", get(jobs_api::events))
        .route("/v1/jobs/{id}/metrics", get(jobs_api::metrics))
        .route("/v1/jobs/{id}/holdout", get(jobs_api::holdout))
        .merge(federation_routes())
        .route("/v1/workers", get(workers_api::list))
        .route("/v1/workers/{id}/drain", post(workers_api::drain))
        .route("/v1/predictions", post(predictions_api::submit))
        .route("/v1/predictions/{id}", get(predictions_api::show))
        .route("/v1/predictions/{id}/output", get(predictions_api::output))
        .route("/v1/models", get(models_api::list).post(models_api::import))
        .route(
            "/v1/models/{model_id}",
            get(models_api::download).delete(models_api::delete),
        )
        .route("/v1/models/{model_id}/info", get(models_api::info))
        .route("/v1/models/{model_id}/predict", post(models_api::predict))
        .layer(axum::middleware::from_fn_with_state(
            BodyLimits::new(options.max_upload_mb, options.max_json_mb),
            limit_bodies,
        ))
        .layer(axum::middleware::from_fn_with_state(
            Gate {
                tokens: state.tokens.clone(),
                registry: state.registry.clone(),
            },
            require_token,
        ))
        .layer(DefaultBodyLimit::max(
            options.max_upload_mb.saturating_mul(1 << 20),
        ))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            REQUEST_TIMEOUT,
        ))
        .layer(axum::middleware::from_fn(super::head_limits::limit_heads))
        .layer(axum::middleware::map_response(problems_everywhere))
        .with_state(state);
    let Some(origins) = origins else {
        return api;
    };
    api.layer(
        CorsLayer::new()
            .allow_origin(origins)
            .allow_methods([Method::GET, Method::POST, Method::DELETE])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                HeaderName::from_static("last-event-id"),
            ]),
    )
}

async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => {},
        () = terminate => {},
    }
}
