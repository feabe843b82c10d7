//! `/v1/jobs`: submit, list, inspect, follow (SSE), cancel and delete training jobs.

use crate::serve::datasets::{check_remote_data, check_remote_run_settings, source_for_dataset};
use crate::serve::hub::is_terminal;
use crate::serve::listener::{CANCEL_CHANNEL, JOBS_CHANNEL};
use crate::serve::pagination::{Cursor, PageQuery, next_page_headers};
use crate::serve::problem::{ApiError, ProblemKind};
use crate::serve::registry::{DatasetRow, EventRow, JobEnd, JobKind, JobRow, now_ms};
use crate::serve::runner::remove_job_files;
use crate::serve::state::{AppState, blocking};
use crate::serve::worker::check_label;
use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use kiln::Config;
use kiln::JobStatus;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};
use std::convert::Infallible;
use std::time::Duration;
use tokio::sync::broadcast;
use utoipa::{IntoParams, ToSchema};

/// Most tags on a job, and longest key or value.
const MAX_TAGS: usize = 32;
const MAX_TAG_CHARS: usize = 128;

/// `POST /v1/jobs`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitJob {
    /// The config: an object with the YAML schema (`kiln schema`), or YAML/JSON text. A key
    /// repeated in one object is refused, as in YAML configs.
    #[serde(default, deserialize_with = "kiln::config::optional_strict_value")]
    #[schema(value_type = Object)]
    pub config: Option<Value>,
    /// An uploaded dataset's id (`dataset-…`) to train on.
    pub dataset: Option<String>,
    /// String tags, e.g. `{"team": "vision"}`.
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// The job's id, when the client hands it out itself (`trainingjob-<uuid v4>`, as the JS
    /// client does so `job.id` is known at once); default: a new random one.
    pub id: Option<String>,
    /// Where it may run: `{"labels": {"gpu": "h200"}}` — only workers with these labels
    /// (`kiln serve --label`) claim it. Adds to the config's `resources.labels`.
    #[schema(value_type = Object)]
    pub resources: Option<kiln::config::ResourcesConfig>,
}

/// A client-given job id: `trainingjob-` and a random (v4) UUID.
fn check_job_id(id: &str) -> Result<(), ApiError> {
    let uuid = id
        .strip_prefix("trainingjob-")
        .and_then(|u| uuid::Uuid::parse_str(u).ok());
    match uuid {
        Some(u)
            if u.get_version_num() == 4
                && u.hyphenated().to_string() == id["trainingjob-".len()..] =>
        {
            Ok(())
        }
        _ => Err(ApiError::bad_input(format!(
            "id: must be trainingjob-<random v4 uuid, lower case>, got {id:?}"
        ))),
    }
}

/// A job as the API shows it.
#[derive(Debug, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct JobView {
    /// `trainingjob-<uuid>` (training) or `bp-job-<uuid>` (batch prediction).
    pub id: String,
    /// `training` or `prediction`.
    pub kind: String,
    /// queued | processing | completed | failed | cancelled.
    pub status: String,
    /// The latest progress report.
    #[schema(value_type = Object)]
    pub progress: Option<Value>,
    /// The TrainRunInfo, once completed.
    #[schema(value_type = Object)]
    pub result: Option<Value>,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    /// The job's tags.
    pub tags: BTreeMap<String, String>,
    /// The dataset it trains on.
    pub dataset: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub created_at: i64,
    /// When it first started.
    pub started_at: Option<i64>,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// Where to follow it.
    pub tracking_url: String,
    /// The worker that holds (or last held) it.
    pub worker_id: Option<String>,
    /// How many times a worker has claimed it (more than 1: it was handed over).
    pub attempt: i64,
    /// The latest checkpoint its worker recorded: `{epoch, step, attempt}`.
    #[schema(value_type = Object)]
    pub checkpoint: Option<Value>,
    /// Labels a worker needs to claim it.
    pub requires: BTreeMap<String, String>,
    /// A cancel was asked for while it trains; its worker stops it before the next step.
    pub cancel_requested: bool,
}

impl JobView {
    /// The view of a stored row.
    pub fn from_row(row: JobRow) -> Self {
        let parse = |text: Option<String>| text.and_then(|t| serde_json::from_str(&t).ok());
        Self {
            tracking_url: format!("/jobs/{}", row.id),
            tags: serde_json::from_str(&row.tags).unwrap_or_default(),
            requires: row.required_labels(),
            worker_id: row.worker_id,
            attempt: row.attempt,
            cancel_requested: row.cancel_requested != 0,
            checkpoint: parse(row.checkpoint),
            progress: parse(row.progress),
            result: parse(row.result),
            id: row.id,
            kind: row.kind.to_string(),
            status: row.status.to_string(),
            error: row.error,
            dataset: row.dataset,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        }
    }
}

/// The config of a submitted job; with an uploaded dataset, a `data.source` naming its format
/// reads as the upload (see [`source_for_dataset`]).
pub fn parse_config(value: Option<Value>, dataset: Option<&DatasetRow>) -> kiln::Result<Config> {
    let mut value = match value {
        None | Some(Value::Null) => return Config::embedded_default(),
        Some(Value::String(text)) => Config::value_from_str_auto(&text)?,
        Some(object @ Value::Object(_)) => object,
        Some(other) => {
            return Err(kiln::KilnError::Config(format!(
                "config: must be an object or YAML/JSON text, got {}",
                kiln::error::cut_short(&other.to_string())
            )));
        }
    };
    if let Some(dataset) = dataset {
        source_for_dataset(&mut value, dataset)?;
    }
    Config::from_value(value)
}

pub fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if tags.len() > MAX_TAGS {
        return Err(ApiError::bad_input(format!(
            "tags: at most {MAX_TAGS} tags, got {}",
            tags.len()
        )));
    }
    for (key, value) in tags {
        if key.is_empty()
            || key.chars().count() > MAX_TAG_CHARS
            || value.chars().count() > MAX_TAG_CHARS
        {
            return Err(ApiError::bad_input(format!(
                "tags.{key}: keys must be 1–{MAX_TAG_CHARS} characters and values at most \
                 {MAX_TAG_CHARS}"
            )));
        }
    }
    Ok(())
}

/// A job (of either kind) by id, or a 404.
pub async fn find(state: &AppState, id: &str) -> Result<JobRow, ApiError> {
    state
        .registry
        .job(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no job {id}")))
}

/// Submits a training job; it is queued FIFO and returned at once.
#[utoipa::path(post, path = "/v1/jobs", request_body = SubmitJob,
    responses((status = 202, body = JobView), (status = 400, body = crate::serve::problem::Problem, content_type = "application/problem+json"),
              (status = 429, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn submit(
    State(state): State<AppState>,
    Json(body): Json<SubmitJob>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    check_tags(&body.tags)?;
    if let Some(id) = &body.id {
        check_job_id(id)?;
        if state.registry.job(id).await?.is_some() {
            return Err(ApiError::conflict(format!(
                "a job with id {id} already exists"
            )));
        }
    }
    let dataset = match &body.dataset {
        Some(id) => Some(state.registry.dataset(id).await?.ok_or_else(|| {
            ApiError::bad_input(format!(
                "dataset: no dataset {:?} (upload one with POST /v1/datasets)",
                kiln::error::cut_short(id)
            ))
        })?),
        None => None,
    };
    let config = parse_config(body.config, dataset.as_ref())?;
    check_remote_data(&config, dataset.is_some())?;
    check_remote_run_settings(&config, state.runner.mlflow.as_deref())?;
    let mut requires = config.resources.labels.clone();
    for (key, value) in body.resources.map(|r| r.labels).unwrap_or_default() {
        requires.insert(key, value);
    }
    for (key, value) in &requires {
        check_label(key, value)
            .map_err(|why| ApiError::bad_input(format!("resources.labels.{key}: {why}")))?;
    }
    let config_json =
        serde_json::to_string(&config).map_err(|e| ApiError::internal("encoding a config", e))?;
    let row = JobRow::queued(
        body.id.unwrap_or_else(|| kiln::Job::new().id().to_string()),
        JobKind::Training,
        config_json,
        body.dataset,
        serde_json::to_string(&body.tags).unwrap_or_else(|_| "{}".into()),
        &requires,
    );
    enqueue(&state, &row).await?;
    Ok((StatusCode::ACCEPTED, Json(JobView::from_row(row))))
}

/// Records a new job and queues it: `503` while the server stops, `429` when the queue is full.
pub async fn enqueue(state: &AppState, row: &JobRow) -> Result<(), ApiError> {
    if state.scheduler.stopping() {
        return Err(ApiError::new(
            ProblemKind::Protocol(StatusCode::SERVICE_UNAVAILABLE),
            "the server is stopping and takes no new jobs",
        ));
    }
    // The bound is fleet-wide: the queue is the registry's.
    let waiting = state.registry.queued_count().await?;
    if waiting >= state.max_queued_jobs as i64 {
        let mut error = ApiError::new(
            ProblemKind::QueueFull,
            format!("the job queue is full ({waiting} waiting); retry later"),
        );
        error.retry_after = Some(30);
        return Err(error);
    }
    state.registry.insert_job(row).await?;
    state
        .hub
        .publish(
            &row.id,
            "status",
            serde_json::json!({ "status": "queued" }).to_string(),
            0,
        )
        .await?;
    state.scheduler.wake();
    let _ = state.registry.notify(JOBS_CHANNEL, &row.id).await;
    Ok(())
}

/// Filters of `GET /v1/jobs`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct JobFilter {
    /// Only jobs with this status.
    pub status: Option<String>,
    /// Only jobs with this tag, as `key:value`.
    pub tag: Option<String>,
}

/// Lists training jobs, one page at a time (oldest first unless `order=desc`); the next
/// page's cursor is in `X-Next-Cursor`.
#[utoipa::path(get, path = "/v1/jobs", params(JobFilter, PageQuery),
    responses((status = 200, body = Vec<JobView>), (status = 400, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn list(
    State(state): State<AppState>,
    Query(filter): Query<JobFilter>,
    Query(query): Query<PageQuery>,
) -> Result<(HeaderMap, Json<Vec<JobView>>), ApiError> {
    let tag = match filter.tag.as_deref() {
        Some(t) => Some(t.split_once(':').ok_or_else(|| {
            ApiError::bad_input(format!(
                "tag: must be key:value, got {:?}",
                kiln::error::cut_short(t)
            ))
        })?),
        None => None,
    };
    let status = filter
        .status
        .as_deref()
        .map(str::parse::<JobStatus>)
        .transpose()
        .map_err(|e| ApiError::bad_input(format!("status: {e}")))?;
    let page = query.page()?;
    let mut scan = page.clone();
    let mut views = Vec::new();
    // Tags are filtered here, so a page is filled from as many registry pages as it takes.
    let next = loop {
        let rows = state
            .registry
            .jobs(JobKind::Training, status, &scan)
            .await?;
        let full = rows.len() == scan.limit as usize;
        let mut last = None;
        for row in rows {
            last = Some(Cursor {
                created_at: row.created_at,
                id: row.id.clone(),
            });
            let view = JobView::from_row(row);
            if tag.is_none_or(|(k, val)| view.tags.get(k).is_some_and(|x| x == val)) {
                views.push(view);
                if views.len() == page.limit as usize {
                    break;
                }
            }
        }
        if views.len() == page.limit as usize || !full {
            break (views.len() == page.limit as usize)
                .then_some(last)
                .flatten();
        }
        scan.after = last;
    };
    let mut extra = String::new();
    for (key, value) in [("status", &filter.status), ("tag", &filter.tag)] {
        if let Some(value) = value {
            let value: String = form_urlencoded::byte_serialize(value.as_bytes()).collect();
            extra.push_str(&format!("&{key}={value}"));
        }
    }
    let headers = next_page_headers("/v1/jobs", &page, next.as_ref(), &extra);
    Ok((headers, Json(views)))
}

/// One job.
#[utoipa::path(get, path = "/v1/jobs/{id}", responses((status = 200, body = JobView), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn show(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<JobView>, ApiError> {
    Ok(Json(JobView::from_row(find(&state, &id).await?)))
}

/// Cancels a queued or training job (idempotent); 409 for a job that completed or failed.
#[utoipa::path(post, path = "/v1/jobs/{id}/cancel", responses((status = 202, body = JobView), (status = 409, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JobView>), ApiError> {
    let row = find(&state, &id).await?;
    match row.status {
        JobStatus::Cancelled => {}
        JobStatus::Processing if row.lease_until.is_some() => {
            // Its worker stops it before the next step and records it cancelled: here at
            // once, elsewhere through a notification or, at the latest, its next heartbeat.
            state.registry.request_cancel(&id).await?;
            if !state.scheduler.cancel_running(&id) {
                let _ = state.registry.notify(CANCEL_CHANNEL, &id).await;
            }
        }
        JobStatus::Queued | JobStatus::Processing => {
            // Queued (or held by nobody): ended here, unless a worker claims it first — then
            // it is cancelled there as above.
            let end = JobEnd {
                status: kiln::JobStatus::Cancelled,
                result: None,
                error: Some("the job was cancelled"),
                finished_at: now_ms(),
            };
            if !state.hub.finish(&id, &end, 0).await? {
                state.registry.request_cancel(&id).await?;
                if !state.scheduler.cancel_running(&id) {
                    let _ = state.registry.notify(CANCEL_CHANNEL, &id).await;
                }
            }
        }
        other => {
            return Err(ApiError::conflict(format!(
                "job {id} has already ended ({other}); nothing to cancel"
            )));
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(JobView::from_row(find(&state, &id).await?)),
    ))
}

/// Deletes a job that has ended, with its events and run directory.
#[utoipa::path(delete, path = "/v1/jobs/{id}", responses((status = 204), (status = 409, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn delete(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let row = find(&state, &id).await?;
    if !row.status.is_final() {
        return Err(ApiError::conflict(format!(
            "job {id} is {}; cancel it first",
            row.status
        )));
    }
    state.registry.delete_job(&id).await?;
    remove_job_files(&state.runner, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The run's metric lines (`metrics.jsonl`: progress and evaluations), as a JSON array.
#[utoipa::path(get, path = "/v1/jobs/{id}/metrics", responses((status = 200, body = Vec<Object>)))]
pub async fn metrics(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<Vec<Value>>, ApiError> {
    find(&state, &id).await?;
    let text = job_file(&state, &id, "metrics.jsonl")
        .await?
        .unwrap_or_default();
    let lines = String::from_utf8_lossy(&text)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .collect();
    Ok(Json(lines))
}

/// The finished job's holdout predictions: its test split predicted by the saved model, as CSV
/// (`row,label,prediction` then one probability per class).
#[utoipa::path(get, path = "/v1/jobs/{id}/holdout", responses((status = 200, content_type = "text/csv"), (status = 404, body = crate::serve::problem::Problem, content_type = "application/problem+json"), (status = 409, body = crate::serve::problem::Problem, content_type = "application/problem+json")))]
pub async fn holdout(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let row = find(&state, &id).await?;
    completed_job_csv(
        &state,
        &row,
        crate::run_dir::HOLDOUT_CSV,
        "holdout predictions",
        "it has no test split (data.split's test fraction is 0)",
    )
    .await
}

/// A CSV file a completed job wrote in its directory: `409` before it completed, `404` (with
/// `missing` as the reason) when there is none.
pub async fn completed_job_csv(
    state: &AppState,
    row: &JobRow,
    file: &str,
    what: &str,
    missing: &str,
) -> Result<Response, ApiError> {
    let id = &row.id;
    if row.status != JobStatus::Completed {
        return Err(ApiError::conflict(format!(
            "job {id} is {}: its {what} exist once it has completed",
            row.status
        )));
    }
    let csv = job_file(state, id, file)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("job {id} has no {what}: {missing}")))?;
    Ok(([(header::CONTENT_TYPE, "text/csv")], csv).into_response())
}

/// A file of a job's run: this machine's run directory while the job trains here, otherwise
/// the object store's copy (which, with the default store, is that same directory).
async fn job_file(state: &AppState, id: &str, file: &str) -> Result<Option<Vec<u8>>, ApiError> {
    let objects = &state.runner.objects;
    if objects.is_remote() && state.scheduler.runs(id) {
        let path = state.runner.job_dir(id).join(file);
        return blocking(move || match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(kiln::KilnError::io(
                format!("cannot read {}", path.display()),
                e,
            )),
        })
        .await;
    }
    Ok(objects
        .get(&crate::serve::mirror::job_key(id, file))
        .await?
        .map(|b| b.to_vec()))
}

/// Where a reconnecting client left off: `Last-Event-ID`, or `?after=`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EventsQuery {
    /// Send only events after this id.
    pub after: Option<i64>,
}

struct Follow {
    state: AppState,
    id: String,
    pending: VecDeque<EventRow>,
    live: broadcast::Receiver<EventRow>,
    last: i64,
    closed: bool,
    done: bool,
}

/// How long a follower waits for a live event before reading the registry itself.
const CATCH_UP_EVERY: Duration = Duration::from_secs(3);

fn to_sse(event: &EventRow) -> Event {
    Event::default()
        .id(event.seq.to_string())
        .event(event.kind.clone())
        .data(event.data.clone())
}

impl Follow {
    async fn next(mut self) -> Option<(Result<Event, Infallible>, Self)> {
        loop {
            if self.done {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                if event.seq <= self.last {
                    continue;
                }
                self.last = event.seq;
                self.done = is_terminal(&event);
                return Some((Ok(to_sse(&event)), self));
            }
            if self.closed {
                return None;
            }
            // Every few seconds without news, the registry is read anyway (a notification from
            // another server may have been lost).
            let received = tokio::time::timeout(CATCH_UP_EVERY, self.live.recv()).await;
            let Ok(received) = received else {
                let missed = self.state.registry.events_after(&self.id, self.last).await;
                self.pending.extend(missed.unwrap_or_default());
                continue;
            };
            match received {
                Ok(event) => self.pending.push_back(event),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    let missed = self.state.registry.events_after(&self.id, self.last).await;
                    self.pending.extend(missed.unwrap_or_default());
                }
                Err(broadcast::error::RecvError::Closed) => {
                    let rest = self.state.registry.events_after(&self.id, self.last).await;
                    self.pending.extend(rest.unwrap_or_default());
                    self.closed = true;
                }
            }
        }
    }
}

/// Server-Sent Events of a job: its history after `Last-Event-ID`, then the live stream, ending
/// after the final `status` event. Heartbeats every 10 s.
#[utoipa::path(get, path = "/v1/jobs/{id}/events", params(EventsQuery), responses((status = 200, content_type = "text/event-stream")))]
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

/// The Server-Sent Events of a job or a federation (`id`): its history after `Last-Event-ID`
/// (or `?after=`), then the live stream `live` (subscribed to before `ended` was read), ending
/// after a final `status` event; `ended`: it had already ended. Heartbeats every 10 s.
pub async fn follow(
    state: AppState,
    id: String,
    live: broadcast::Receiver<EventRow>,
    ended: bool,
    query: &EventsQuery,
    headers: &HeaderMap,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>> + use<>>, ApiError> {
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok())
        .or(query.after)
        .unwrap_or(0);
    let history = state.registry.events_after(&id, last).await?;
    let follow = Follow {
        closed: ended,
        state,
        id,
        pending: history.into(),
        live,
        last,
        done: false,
    };
    let stream = futures::stream::unfold(follow, Follow::next);
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(10))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_job_ids_are_random_v4_uuids_in_lower_case() {
        let fresh = kiln::Job::new().id().to_string();
        assert!(check_job_id(&fresh).is_ok());
        for bad in [
            "trainingjob-../../etc",
            "trainingjob-00000000-0000-1000-8000-000000000000",
            &fresh.to_uppercase(),
            "bp-job-6f1c2a4e-8a9b-4c3d-9e2f-1a2b3c4d5e6f",
            "trainingjob-",
            &format!("{fresh}/x"),
        ] {
            assert!(check_job_id(bad).is_err(), "{bad} accepted");
        }
    }

    #[test]
    fn tags_are_bounded() {
        let mut tags = BTreeMap::new();
        tags.insert("team".to_string(), "vision".to_string());
        assert!(check_tags(&tags).is_ok());
        tags.insert(String::new(), "x".into());
        assert!(check_tags(&tags).is_err());
        let many: BTreeMap<_, _> = (0..=MAX_TAGS)
            .map(|i| (i.to_string(), String::new()))
            .collect();
        assert!(check_tags(&many).is_err());
    }
}
