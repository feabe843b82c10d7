//! The registry: jobs, datasets, job events, leases and workers, in the embedded SQLite file
//! `DATA_DIR/kiln.db` (WAL) or in PostgreSQL (`--database postgres://…`) — one set of queries
//! through sqlx's `Any` driver and one set of migrations (`native/migrations`), run at start-up.

use crate::serve::page::Page;
use kiln::JobStatus;
use serde::Serialize;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Executor, FromRow, Row};
use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

/// The migrations, embedded in the binary.
static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// Appends event `$2` (data `$3`) to job `$1` as its next number; with lease attempt `$4` > 0
/// only while that attempt holds the job. Returns the number.
const INSERT_EVENT: &str = "INSERT INTO events (job_id, seq, kind, data, attempt)
     SELECT $1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE job_id = $1), $2, $3, $4
     WHERE $4 = 0 OR EXISTS (SELECT 1 FROM jobs
         WHERE id = $1 AND attempt = $4 AND status = 'processing')
     RETURNING seq";

/// What a job is: a training run or a batch prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobKind {
    /// `trainingjob-<uuid>`: trains a model.
    Training,
    /// `bp-job-<uuid>`: predicts a dataset with a stored model.
    Prediction,
}

kiln::display_serde_name!(JobKind);

impl TryFrom<String> for JobKind {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        kiln::config::from_serde_name(&text)
            .ok_or_else(|| format!("`{text}` is not a job kind (training or prediction)"))
    }
}

/// What a batch prediction job predicts with: its spec, stored as the job's `config`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct PredictionSpec {
    /// The stored model's id.
    pub model: String,
}

/// How a job ends: what [`Registry::finish`] records.
#[derive(Debug, Clone, Copy)]
pub struct JobEnd<'a> {
    /// Completed, failed or cancelled.
    pub status: JobStatus,
    /// The result, for a completed job.
    pub result: Option<&'a serde_json::Value>,
    /// Why it failed or was cancelled.
    pub error: Option<&'a str>,
    /// Milliseconds since the epoch.
    pub finished_at: i64,
}

impl JobEnd<'_> {
    /// The final `status` event's data.
    pub fn event(&self) -> String {
        serde_json::json!({ "status": self.status, "error": self.error, "result": self.result })
            .to_string()
    }
}

/// Runs `write` again (at most 8 times more) while it fails because another writer took the
/// same next event number (an API call and the lease holder): the loser takes the one after.
async fn retry_on_number_race<T, F, Fut>(mut write: F) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let mut tries = 0;
    loop {
        match write().await {
            Err(sqlx::Error::Database(db)) if db.is_unique_violation() && tries < 8 => tries += 1,
            other => return other,
        }
    }
}

/// The SQL of a page's start (`$1` created_at and `$2` id of the cursor) and its ORDER BY.
pub(super) fn page_clause(page: &Page) -> (&'static str, &'static str) {
    if page.newest_first {
        (
            "created_at < $1 OR (created_at = $1 AND id < $2)",
            "created_at DESC, id DESC",
        )
    } else {
        (
            "created_at > $1 OR (created_at = $1 AND id > $2)",
            "created_at, id",
        )
    }
}

/// Which database engine holds the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The embedded file (one host).
    Sqlite,
    /// A PostgreSQL server (a fleet).
    Postgres,
}

/// A stored dataset's metadata.
#[derive(Debug, Clone)]
pub struct DatasetRow {
    /// `dataset-<uuid>`.
    pub id: String,
    /// `csv` or `safetensors`.
    pub format: String,
    /// Samples.
    pub rows: i64,
    /// JSON array: one sample's shape.
    pub sample_shape: String,
    /// CSV: whether the first line is a header.
    pub header: bool,
    /// CSV: the label column given at upload (JSON), if any.
    pub label_column: Option<String>,
    /// Size of the stored file.
    pub bytes: i64,
    /// Milliseconds since the epoch.
    pub created_at: i64,
}

impl FromRow<'_, AnyRow> for DatasetRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            format: row.try_get("format")?,
            rows: row.try_get("rows")?,
            sample_shape: row.try_get("sample_shape")?,
            header: row.try_get::<i64, _>("header")? != 0,
            label_column: row.try_get("label_column")?,
            bytes: row.try_get("bytes")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

/// A job row.
#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    /// `trainingjob-<uuid>` or `bp-job-<uuid>`.
    pub id: String,
    /// A training or a prediction job.
    #[sqlx(try_from = "String")]
    pub kind: JobKind,
    /// Where it is in its life.
    #[sqlx(try_from = "String")]
    pub status: JobStatus,
    /// The validated config (JSON); for a prediction job its [`PredictionSpec`].
    pub config: String,
    /// The dataset it trains on.
    pub dataset: Option<String>,
    /// JSON object of string tags.
    pub tags: String,
    /// The latest progress (JSON).
    pub progress: Option<String>,
    /// The TrainRunInfo (JSON), once completed.
    pub result: Option<String>,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// When it first started processing.
    pub started_at: Option<i64>,
    /// When it ended.
    pub finished_at: Option<i64>,
    /// The worker holding (or that last held) its lease.
    pub worker_id: Option<String>,
    /// How many times a worker has claimed it; the lease's fencing token.
    pub attempt: i64,
    /// When the current lease runs out (ms since the epoch).
    pub lease_until: Option<i64>,
    /// Labels a worker must have to claim it (JSON object).
    pub requires: String,
    /// The latest checkpoint recorded by its lease holder (JSON: epoch, step), if any.
    pub checkpoint: Option<String>,
    /// 1 once a cancel was asked for while it was training (on any server).
    pub cancel_requested: i64,
}

impl JobRow {
    /// A new queued job of `kind` that workers with `requires` labels may claim.
    pub fn queued(
        id: String,
        kind: JobKind,
        config: String,
        dataset: Option<String>,
        tags: String,
        requires: &BTreeMap<String, String>,
    ) -> Self {
        Self {
            id,
            kind,
            status: JobStatus::Queued,
            config,
            dataset,
            tags,
            progress: None,
            result: None,
            error: None,
            created_at: now_ms(),
            started_at: None,
            finished_at: None,
            worker_id: None,
            attempt: 0,
            lease_until: None,
            requires: serde_json::to_string(requires).unwrap_or_else(|_| "{}".into()),
            checkpoint: None,
            cancel_requested: 0,
        }
    }

    /// The labels a worker needs to claim it.
    pub fn required_labels(&self) -> BTreeMap<String, String> {
        serde_json::from_str(&self.requires).unwrap_or_default()
    }
}

/// One recorded event of a job.
#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    /// Increasing per job, from 1.
    pub seq: i64,
    /// started | progress | evaluated | checkpoint | status | interrupted | assigned | …
    pub kind: String,
    /// The event (JSON).
    pub data: String,
    /// The lease attempt that wrote it (0: written by an API call, not by a worker).
    pub attempt: i64,
}

/// A worker as it registers itself.
#[derive(Debug, Clone)]
pub struct WorkerRow {
    /// `worker-<uuid>`, kept in `DATA_DIR/worker-id` across restarts.
    pub id: String,
    /// The host name.
    pub host: String,
    /// The address its API listens on.
    pub addr: String,
    /// The backend it trains on.
    pub backend: String,
    /// Its labels (JSON object).
    pub labels: String,
    /// Jobs it trains at once.
    pub capacity: i64,
    /// When it (last) started.
    pub started_at: i64,
    /// Its last heartbeat.
    pub heartbeat_at: i64,
    /// 1 while it finishes its jobs and takes no new ones.
    pub draining: i64,
    /// When it stopped cleanly, if it did.
    pub stopped_at: Option<i64>,
    /// Its lease length (`--lease-secs`), ms: no heartbeat for this long and it is lost.
    pub lease_ms: i64,
}

impl FromRow<'_, AnyRow> for WorkerRow {
    fn from_row(row: &AnyRow) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            host: row.try_get("host")?,
            addr: row.try_get("addr")?,
            backend: row.try_get("backend")?,
            labels: row.try_get("labels")?,
            capacity: row.try_get("capacity")?,
            started_at: row.try_get("started_at")?,
            heartbeat_at: row.try_get("heartbeat_at")?,
            draining: row.try_get("draining")?,
            stopped_at: row.try_get("stopped_at")?,
            lease_ms: row.try_get("lease_ms")?,
        })
    }
}

/// A job a worker has just claimed.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// The job after the claim (status processing, this worker's lease).
    pub row: JobRow,
    /// Its status before: queued, or processing when its previous holder's lease ran out.
    pub previous_status: JobStatus,
    /// The worker that held it before, if any.
    pub previous_worker: Option<String>,
}

/// The registry's database.
#[derive(Debug, Clone)]
pub struct Registry {
    pool: AnyPool,
    dialect: Dialect,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    kiln::jobs::now_unix_ms() as i64
}

/// The database's storage failing: what SQLite and PostgreSQL say when they cannot write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageFault {
    /// Out of space: SQLite's FULL (13), PostgreSQL's class 531 (disk full).
    Full,
    /// Not writable: SQLite's READONLY (8 and its extended codes).
    ReadOnly,
}

/// Whether a database error is its storage failing, and how.
pub fn storage_fault(e: &sqlx::Error) -> Option<StorageFault> {
    let sqlx::Error::Database(db) = e else {
        return None;
    };
    let code = db.code()?;
    let sqlite = code.parse::<u32>().ok().map(|c| c & 0xff);
    if sqlite == Some(13) || code.starts_with("531") {
        Some(StorageFault::Full)
    } else if sqlite == Some(8) || db.message().contains("readonly database") {
        Some(StorageFault::ReadOnly)
    } else {
        None
    }
}

/// Whether an error is the database being unreachable (restarting, network) or its storage
/// failing for a while, which a caller may retry, rather than a refused statement.
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed
        | sqlx::Error::Protocol(_)
        | sqlx::Error::Tls(_) => true,
        // PostgreSQL shutting down / starting up: class 57P (operator intervention) and 08
        // (connection exception); SQLite busy (5); either one's storage full or read-only.
        sqlx::Error::Database(db) => {
            storage_fault(e).is_some()
                || db.code().is_some_and(|c| {
                    c.starts_with("57P")
                        || c.starts_with("08")
                        || c.parse::<u32>().is_ok_and(|n| n & 0xff == 5)
                })
        }
        _ => false,
    }
}

/// When a statement last failed because its SQLite connection could not write: a connection
/// opened while the data directory was read-only stays read-only, so every connection older
/// than that is replaced.
static READ_ONLY_AT: std::sync::Mutex<Option<std::time::Instant>> = std::sync::Mutex::new(None);

/// Notes a failed statement: one refused by a read-only SQLite connection retires every
/// connection opened before it (see [`Registry::connect`]).
pub fn note_failure(e: &sqlx::Error) {
    if storage_fault(e) == Some(StorageFault::ReadOnly) {
        *READ_ONLY_AT
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(std::time::Instant::now());
    }
}

/// Whether a connection `age` old was opened before the last read-only failure.
fn opened_before_read_only_failure(age: Duration) -> bool {
    READ_ONLY_AT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .is_some_and(|failed| age >= failed.elapsed())
}

/// Runs one registry statement, again and again (with back-off up to 2 s) while the database
/// is unreachable, for at most `limit`.
pub async fn retry_while_unreachable<T, F, Fut>(
    limit: Duration,
    mut statement: F,
) -> Result<T, sqlx::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, sqlx::Error>>,
{
    let started = std::time::Instant::now();
    let mut pause = Duration::from_millis(100);
    loop {
        match statement().await {
            Err(e) if is_transient(&e) && started.elapsed() < limit => {
                note_failure(&e);
                outage_began(&e);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Ok(value) => {
                outage_ended();
                return Ok(value);
            }
            other => return other,
        }
    }
}

/// This process's view of registry outages: whether one is going on, and whether (and when)
/// the last one was announced in the log.
struct Outage {
    ongoing: bool,
    announced: bool,
    announced_at: Option<std::time::Instant>,
}

/// How long after announcing an outage a new one (connections that fail and succeed by turns,
/// say) goes unannounced.
const OUTAGE_QUIET: Duration = Duration::from_secs(60);

static OUTAGE: std::sync::Mutex<Outage> = std::sync::Mutex::new(Outage {
    ongoing: false,
    announced: false,
    announced_at: None,
});

/// Says once per outage that the registry cannot be written, and why (at most once a minute
/// while it comes and goes).
fn outage_began(e: &sqlx::Error) {
    let mut outage = OUTAGE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if outage.ongoing {
        return;
    }
    outage.ongoing = true;
    if outage
        .announced_at
        .is_none_or(|at| at.elapsed() >= OUTAGE_QUIET)
    {
        outage.announced = true;
        outage.announced_at = Some(std::time::Instant::now());
        tracing::warn!(
            "the registry cannot be written ({e}); holding its writes and retrying \
             until it can"
        );
    }
}

/// Says once that an announced outage ended.
fn outage_ended() {
    let mut outage = OUTAGE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if !outage.ongoing {
        return;
    }
    outage.ongoing = false;
    if std::mem::take(&mut outage.announced) {
        tracing::info!("the registry is writable again; held writes go on");
    }
}

impl Registry {
    /// Opens the registry at `url` (`sqlite://…` or `postgres://…`) and runs the migrations.
    pub async fn connect(url: &str) -> Result<Self, sqlx::Error> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Dialect::Postgres
        } else if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else {
            return Err(sqlx::Error::Configuration(
                format!(
                    "--database: {:?} is not a postgres:// or sqlite: URL",
                    redact(url)
                )
                .into(),
            ));
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(if dialect == Dialect::Sqlite { 8 } else { 10 })
            .acquire_timeout(Duration::from_secs(10));
        if dialect == Dialect::Sqlite {
            // A connection opened while the file could not be written stays read-only for
            // good (it still reads): every connection older than a read-only failure is
            // retired, and connections are recycled now and then, so the registry recovers by
            // itself once writes work again.
            options = options
                .max_lifetime(Duration::from_secs(60))
                .before_acquire(|_, meta| {
                    let keep = !opened_before_read_only_failure(meta.age);
                    Box::pin(async move { Ok(keep) })
                })
                .after_connect(|conn, _| {
                    Box::pin(async move {
                        conn.execute("PRAGMA busy_timeout = 10000; PRAGMA synchronous = NORMAL")
                            .await?;
                        Ok(())
                    })
                });
        }
        let pool = options.connect(url).await?;
        if dialect == Dialect::Sqlite {
            sqlx::query("PRAGMA journal_mode = WAL")
                .execute(&pool)
                .await?;
        }
        MIGRATOR.run(&pool).await?;
        Ok(Self { pool, dialect })
    }

    /// Opens (creating if needed) the embedded SQLite file at `path`.
    pub async fn open_file(path: &Path) -> Result<Self, sqlx::Error> {
        Self::connect(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// The connection pool, for the queries of the registry's other tables (federations).
    pub(super) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Which engine this is.
    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Records a dataset.
    pub async fn insert_dataset(&self, d: &DatasetRow) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO datasets (id, format, rows, sample_shape, header, label_column, bytes, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&d.id)
            .bind(&d.format)
            .bind(d.rows)
            .bind(&d.sample_shape)
            .bind(i64::from(d.header))
            .bind(&d.label_column)
            .bind(d.bytes)
            .bind(d.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// One dataset.
    pub async fn dataset(&self, id: &str) -> Result<Option<DatasetRow>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM datasets WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// One page of datasets in creation order.
    pub async fn datasets(&self, page: &Page) -> Result<Vec<DatasetRow>, sqlx::Error> {
        let (after, order) = page_clause(page);
        let sql = format!(
            "SELECT * FROM datasets WHERE ($1 IS NULL OR {after}) ORDER BY {order} LIMIT $3"
        );
        let cursor = page.after.as_ref();
        sqlx::query_as(&sql)
            .bind(cursor.map(|c| c.created_at))
            .bind(cursor.map(|c| c.id.clone()))
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await
    }

    /// Deletes a dataset's row; true if it existed.
    pub async fn delete_dataset(&self, id: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM datasets WHERE id = $1")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether a job that has not ended uses the dataset.
    pub async fn dataset_in_use(&self, id: &str) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM jobs WHERE dataset = $1 AND status IN ('queued', 'processing')",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    /// Records a new queued job.
    pub async fn insert_job(&self, job: &JobRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO jobs (id, kind, status, config, dataset, tags, created_at, requires)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&job.id)
        .bind(job.kind.to_string())
        .bind(job.status.to_string())
        .bind(&job.config)
        .bind(&job.dataset)
        .bind(&job.tags)
        .bind(job.created_at)
        .bind(&job.requires)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Jobs waiting in the queue (fleet-wide).
    pub async fn queued_count(&self) -> Result<i64, sqlx::Error> {
        let row = sqlx::query("SELECT COUNT(*) FROM jobs WHERE status = 'queued'")
            .fetch_one(&self.pool)
            .await?;
        row.try_get::<i64, _>(0)
    }

    /// One job.
    pub async fn job(&self, id: &str) -> Result<Option<JobRow>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM jobs WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// One page of the jobs of one kind, optionally with one status.
    pub async fn jobs(
        &self,
        kind: JobKind,
        status: Option<JobStatus>,
        page: &Page,
    ) -> Result<Vec<JobRow>, sqlx::Error> {
        let (after, order) = page_clause(page);
        let sql = format!(
            "SELECT * FROM jobs WHERE ($1 IS NULL OR {after}) AND kind = $3 \
             AND ($4 IS NULL OR status = $4) ORDER BY {order} LIMIT $5"
        );
        let cursor = page.after.as_ref();
        sqlx::query_as(&sql)
            .bind(cursor.map(|c| c.created_at))
            .bind(cursor.map(|c| c.id.clone()))
            .bind(kind.to_string())
            .bind(status.map(|s| s.to_string()))
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await
    }

    /// Claims the oldest job this worker may run — queued, or processing with a lease that ran
    /// out — with a lease until `lease_until`. On PostgreSQL the candidates are locked with
    /// `FOR UPDATE SKIP LOCKED`, so workers claiming at once never wait on or take the same
    /// row; the update itself re-checks the row's state either way.
    pub async fn claim(
        &self,
        worker: &str,
        labels: &BTreeMap<String, String>,
        lease_until: i64,
    ) -> Result<Option<Claimed>, sqlx::Error> {
        let now = now_ms();
        match self.dialect {
            Dialect::Postgres => {
                let mut tx = self.pool.begin().await?;
                let candidates = candidates(now, " FOR UPDATE SKIP LOCKED")
                    .fetch_all(&mut *tx)
                    .await?;
                for (id, previous_status, previous_worker) in matching(candidates, labels)? {
                    let row = take(worker, lease_until, now, &id)
                        .fetch_optional(&mut *tx)
                        .await?;
                    if let Some(row) = row {
                        tx.commit().await?;
                        return Ok(Some(Claimed {
                            row,
                            previous_status,
                            previous_worker,
                        }));
                    }
                }
                tx.commit().await?;
            }
            // One statement at a time: SQLite has one writer, and the update re-checks the row
            // (a read transaction upgraded to a write one would fail instead of waiting).
            Dialect::Sqlite => {
                let candidates = candidates(now, "").fetch_all(&self.pool).await?;
                for (id, previous_status, previous_worker) in matching(candidates, labels)? {
                    let row = take(worker, lease_until, now, &id)
                        .fetch_optional(&self.pool)
                        .await?;
                    if let Some(row) = row {
                        return Ok(Some(Claimed {
                            row,
                            previous_status,
                            previous_worker,
                        }));
                    }
                }
            }
        }
        Ok(None)
    }

    /// Renews a lease; false when `worker` no longer holds attempt `attempt` of the job.
    pub async fn renew(
        &self,
        id: &str,
        worker: &str,
        attempt: i64,
        lease_until: i64,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE jobs SET lease_until = $1
             WHERE id = $2 AND worker_id = $3 AND attempt = $4 AND status = 'processing'",
        )
        .bind(lease_until)
        .bind(id)
        .bind(worker)
        .bind(attempt)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Puts a job its holder stops training (shutdown, drain) back in the queue; false when the
    /// lease was no longer this holder's.
    pub async fn release(&self, id: &str, attempt: i64) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE jobs SET status = 'queued', lease_until = NULL
             WHERE id = $1 AND attempt = $2 AND status = 'processing'",
        )
        .bind(id)
        .bind(attempt)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Jobs this worker's previous run held when it stopped (it restarted): back in the queue
    /// at once, without waiting for their leases to run out. Returns them.
    pub async fn release_all_of(&self, worker: &str) -> Result<Vec<JobRow>, sqlx::Error> {
        sqlx::query_as(
            "UPDATE jobs SET status = 'queued', lease_until = NULL
             WHERE worker_id = $1 AND status = 'processing' RETURNING *",
        )
        .bind(worker)
        .fetch_all(&self.pool)
        .await
    }

    /// Records the latest checkpoint of the lease holder's run; false (nothing recorded) when
    /// the lease is no longer attempt `attempt`.
    pub async fn record_checkpoint(
        &self,
        id: &str,
        attempt: i64,
        checkpoint: &str,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE jobs SET checkpoint = $1
             WHERE id = $2 AND attempt = $3 AND status = 'processing'",
        )
        .bind(checkpoint)
        .bind(id)
        .bind(attempt)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records the latest progress (only while `attempt` holds the lease; 0: unconditionally).
    pub async fn set_progress(
        &self,
        id: &str,
        progress: &str,
        attempt: i64,
    ) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE jobs SET progress = $1 WHERE id = $2 AND ($3 = 0 OR attempt = $3)")
            .bind(progress)
            .bind(id)
            .bind(attempt)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Asks the worker training a job to cancel it (it sees the request on its next heartbeat,
    /// or at once through a notification).
    pub async fn request_cancel(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE jobs SET cancel_requested = 1 WHERE id = $1 AND status = 'processing'")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The jobs held by `worker` that were asked to cancel.
    pub async fn cancel_requests(&self, worker: &str) -> Result<Vec<String>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT id FROM jobs WHERE worker_id = $1 AND status = 'processing'
             AND cancel_requested = 1",
        )
        .bind(worker)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|r| r.try_get::<String, _>(0)).collect()
    }

    /// Ends a job as `end` says and appends its final `status` event in the same transaction, so
    /// that no reader sees the job ended without that event, nor can a worker that dies in
    /// between leave it without one. Only a job that has not ended changes, and, for `attempt` >
    /// 0, only while that attempt holds the lease; returns the event when this call ended the
    /// job (`None`: it had ended already).
    pub async fn finish(
        &self,
        id: &str,
        end: &JobEnd<'_>,
        attempt: i64,
    ) -> Result<Option<EventRow>, sqlx::Error> {
        let result = end.result.map(|r| r.to_string());
        let data = end.event();
        retry_on_number_race(|| async {
            let mut tx = self.pool.begin().await?;
            let ended = sqlx::query(
                "UPDATE jobs SET status = $1, result = $2, error = $3, finished_at = $4,
                     lease_until = NULL
                 WHERE id = $5 AND status IN ('queued', 'processing') AND ($6 = 0 OR attempt = $6)",
            )
            .bind(end.status.to_string())
            .bind(result.as_deref())
            .bind(end.error)
            .bind(end.finished_at)
            .bind(id)
            .bind(attempt)
            .execute(&mut *tx)
            .await?;
            if ended.rows_affected() == 0 {
                tx.rollback().await?;
                return Ok(None);
            }
            // A failure (a lost number race included) drops `tx`, which rolls the end back.
            let seq: Option<i64> = sqlx::query(INSERT_EVENT)
                .bind(id)
                .bind("status")
                .bind(&data)
                .bind(0_i64)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get(0))
                .transpose()?;
            tx.commit().await?;
            Ok(seq.map(|seq| EventRow {
                seq,
                kind: "status".into(),
                data: data.clone(),
                attempt: 0,
            }))
        })
        .await
    }

    /// Deletes a job and its events.
    pub async fn delete_job(&self, id: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM events WHERE job_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM jobs WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Appends an event; returns its sequence number. With `attempt` > 0 it is written only
    /// while that attempt holds the job's lease (`None`: refused — the lease moved on).
    pub async fn append_event(
        &self,
        job_id: &str,
        kind: &str,
        data: &str,
        attempt: i64,
    ) -> Result<Option<i64>, sqlx::Error> {
        retry_on_number_race(|| async {
            sqlx::query(INSERT_EVENT)
                .bind(job_id)
                .bind(kind)
                .bind(data)
                .bind(attempt)
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get::<i64, _>(0))
                .transpose()
        })
        .await
    }

    /// A job's events after `after`, in order.
    pub async fn events_after(
        &self,
        job_id: &str,
        after: i64,
    ) -> Result<Vec<EventRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT seq, kind, data, attempt FROM events WHERE job_id = $1 AND seq > $2
             ORDER BY seq",
        )
        .bind(job_id)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|r| {
                Ok(EventRow {
                    seq: r.try_get(0)?,
                    kind: r.try_get(1)?,
                    data: r.try_get(2)?,
                    attempt: r.try_get(3)?,
                })
            })
            .collect()
    }

    /// Registers (or re-registers, after a restart) a worker, not draining.
    pub async fn register_worker(&self, w: &WorkerRow) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM workers WHERE id = $1")
            .bind(&w.id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO workers (id, host, addr, backend, labels, capacity, started_at,
                 heartbeat_at, draining, stopped_at, lease_ms)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 0, NULL, $9)",
        )
        .bind(&w.id)
        .bind(&w.host)
        .bind(&w.addr)
        .bind(&w.backend)
        .bind(&w.labels)
        .bind(w.capacity)
        .bind(w.started_at)
        .bind(w.heartbeat_at)
        .bind(w.lease_ms)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// Records a worker's heartbeat; returns its drain request (0: none, 1: finish the running
    /// jobs, 2: hand them over; `None`: the row is gone).
    pub async fn worker_heartbeat(&self, id: &str) -> Result<Option<i64>, sqlx::Error> {
        let row =
            sqlx::query("UPDATE workers SET heartbeat_at = $1 WHERE id = $2 RETURNING draining")
                .bind(now_ms())
                .bind(id)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| r.try_get::<i64, _>(0)).transpose()
    }

    /// Asks a worker to drain (`handover`: its running jobs go back to the queue at their next
    /// epoch end); false when there is no such worker.
    pub async fn set_draining(&self, id: &str, handover: bool) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("UPDATE workers SET draining = $1 WHERE id = $2")
            .bind(if handover { 2_i64 } else { 1 })
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Records a clean stop.
    pub async fn worker_stopped(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE workers SET stopped_at = $1 WHERE id = $2")
            .bind(now_ms())
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Every worker, with the ids of the jobs it holds.
    pub async fn workers(&self) -> Result<Vec<(WorkerRow, Vec<String>)>, sqlx::Error> {
        let workers: Vec<WorkerRow> =
            sqlx::query_as("SELECT * FROM workers ORDER BY started_at, id")
                .fetch_all(&self.pool)
                .await?;
        let held = sqlx::query(
            "SELECT worker_id, id FROM jobs WHERE status = 'processing'
             AND worker_id IS NOT NULL ORDER BY created_at, id",
        )
        .fetch_all(&self.pool)
        .await?;
        let mut by_worker: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in held {
            by_worker
                .entry(row.try_get(0)?)
                .or_default()
                .push(row.try_get(1)?);
        }
        Ok(workers
            .into_iter()
            .map(|w| {
                let jobs = by_worker.remove(&w.id).unwrap_or_default();
                (w, jobs)
            })
            .collect())
    }

    /// Sends a PostgreSQL notification (nothing on SQLite, where every server is this one).
    pub async fn notify(&self, channel: &str, payload: &str) -> Result<(), sqlx::Error> {
        if self.dialect == Dialect::Postgres {
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(channel)
                .bind(payload)
                .execute(&self.pool)
                .await?;
        }
        Ok(())
    }
}

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;
type AnyQueryAs<'q, T> = sqlx::query::QueryAs<'q, sqlx::Any, T, sqlx::any::AnyArguments<'q>>;

/// The oldest claimable jobs: queued, or processing with a lease that ran out.
fn candidates(now: i64, lock: &str) -> AnyQuery<'static> {
    // The statement text is one of two constants, so it may live as long as the program.
    let sql: &'static str = if lock.is_empty() {
        CANDIDATES
    } else {
        CANDIDATES_LOCKED
    };
    sqlx::query(sql).bind(now)
}

const CANDIDATES: &str = "SELECT id, status, requires, worker_id FROM jobs
     WHERE status = 'queued'
        OR (status = 'processing' AND (lease_until IS NULL OR lease_until < $1))
     ORDER BY created_at, id LIMIT 64";
const CANDIDATES_LOCKED: &str = "SELECT id, status, requires, worker_id FROM jobs
     WHERE status = 'queued'
        OR (status = 'processing' AND (lease_until IS NULL OR lease_until < $1))
     ORDER BY created_at, id LIMIT 64 FOR UPDATE SKIP LOCKED";

/// The candidates whose required labels the worker has: (id, status, previous worker).
fn matching(
    candidates: Vec<AnyRow>,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<(String, JobStatus, Option<String>)>, sqlx::Error> {
    let mut out = Vec::new();
    for candidate in candidates {
        let requires: BTreeMap<String, String> =
            serde_json::from_str(&candidate.try_get::<String, _>("requires")?).unwrap_or_default();
        if requires.iter().all(|(k, v)| labels.get(k) == Some(v)) {
            out.push((
                candidate.try_get("id")?,
                JobStatus::try_from(candidate.try_get::<String, _>("status")?)
                    .map_err(|e| sqlx::Error::Decode(e.into()))?,
                candidate.try_get("worker_id")?,
            ));
        }
    }
    Ok(out)
}

/// Takes one candidate with a new lease (attempt + 1), re-checking that it is still claimable.
fn take<'q>(worker: &'q str, lease_until: i64, now: i64, id: &'q str) -> AnyQueryAs<'q, JobRow> {
    sqlx::query_as(
        "UPDATE jobs SET status = 'processing', worker_id = $1, attempt = attempt + 1,
             lease_until = $2, started_at = COALESCE(started_at, $3), cancel_requested = 0
         WHERE id = $4 AND (status = 'queued'
             OR (status = 'processing' AND (lease_until IS NULL OR lease_until < $3)))
         RETURNING *",
    )
    .bind(worker)
    .bind(lease_until)
    .bind(now)
    .bind(id)
}

/// A database URL with its password replaced, for messages.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            match userinfo.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job's end and its final `status` event are written together, once.
    #[test]
    fn a_job_ends_with_its_final_event_in_the_same_write_and_only_once() {
        let dir = tempfile::tempdir().expect("temp dir");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let registry = Registry::open_file(&dir.path().join("registry.db"))
                .await
                .expect("registry");
            let id = "trainingjob-1";
            let job = JobRow::queued(
                id.into(),
                JobKind::Training,
                "{}".into(),
                None,
                "{}".into(),
                &BTreeMap::new(),
            );
            registry.insert_job(&job).await.expect("insert");
            let seq = registry.append_event(id, "started", "{}", 0).await;
            assert_eq!(seq.expect("append"), Some(1));
            let result = serde_json::json!({ "epochs": 1 });
            let end = JobEnd {
                status: kiln::JobStatus::Completed,
                result: Some(&result),
                error: None,
                finished_at: 42,
            };
            let written = registry.finish(id, &end, 0).await.expect("finish");
            assert_eq!(written.as_ref().map(|e| e.seq), Some(2));
            let row = registry.job(id).await.expect("read").expect("the job");
            assert_eq!(row.status, JobStatus::Completed);
            assert_eq!(row.result.as_deref(), Some("{\"epochs\":1}"));
            assert_eq!(row.finished_at, Some(42));
            let events = registry.events_after(id, 0).await.expect("events");
            let last = events.last().expect("events");
            assert_eq!((last.seq, last.kind.as_str()), (2, "status"));
            assert_eq!(last.data, end.event());
            assert_eq!(written.map(|e| e.data), Some(end.event()));
            // A second end (a cancel racing the completion) changes nothing and adds no event.
            let cancelled = JobEnd {
                status: kiln::JobStatus::Cancelled,
                error: Some("the job was cancelled"),
                ..end
            };
            assert!(
                registry
                    .finish(id, &cancelled, 0)
                    .await
                    .expect("finish")
                    .is_none()
            );
            assert_eq!(registry.events_after(id, 0).await.expect("events").len(), 2);
            let row = registry.job(id).await.expect("read").expect("the job");
            assert_eq!(row.status, JobStatus::Completed);
            // An attempt that does not hold the job cannot end it.
            let other = "trainingjob-2";
            registry
                .insert_job(&JobRow {
                    id: other.into(),
                    ..job
                })
                .await
                .expect("insert");
            assert!(
                registry
                    .finish(other, &end, 7)
                    .await
                    .expect("finish")
                    .is_none()
            );
            assert!(
                registry
                    .events_after(other, 0)
                    .await
                    .expect("events")
                    .is_empty()
            );
        });
    }
}
