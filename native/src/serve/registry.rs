//! The registry: jobs, datasets and job events in SQLite (WAL) at `DATA_DIR/kiln.db`.

use serde::Serialize;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{FromRow, Row};
use std::path::Path;

const SCHEMA: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS datasets (
        id TEXT PRIMARY KEY, format TEXT NOT NULL, rows INTEGER NOT NULL,
        sample_shape TEXT NOT NULL, header INTEGER NOT NULL, label_column TEXT,
        bytes INTEGER NOT NULL, created_at INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY, kind TEXT NOT NULL, status TEXT NOT NULL, config TEXT NOT NULL, dataset TEXT,
        tags TEXT NOT NULL, progress TEXT, result TEXT, error TEXT,
        created_at INTEGER NOT NULL, started_at INTEGER, finished_at INTEGER)",
    "CREATE TABLE IF NOT EXISTS events (
        job_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL, data TEXT NOT NULL,
        PRIMARY KEY (job_id, seq))",
];

/// A stored dataset's metadata.
#[derive(Debug, Clone, FromRow)]
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

/// A job row.
#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    /// `trainingjob-<uuid>` or `bp-job-<uuid>`.
    pub id: String,
    /// `training` or `prediction`.
    pub kind: String,
    /// queued | processing | completed | failed | cancelled.
    pub status: String,
    /// The validated config (JSON); for a prediction job `{"model": guid}`.
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
}

impl JobRow {
    /// A new queued job of `kind` (`training` or `prediction`).
    pub fn queued(
        id: String,
        kind: &str,
        config: String,
        dataset: Option<String>,
        tags: String,
    ) -> Self {
        Self {
            id,
            kind: kind.into(),
            status: "queued".into(),
            config,
            dataset,
            tags,
            progress: None,
            result: None,
            error: None,
            created_at: now_ms(),
            started_at: None,
            finished_at: None,
        }
    }
}

/// One recorded event of a job.
#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    /// Increasing per job, from 1.
    pub seq: i64,
    /// started | progress | evaluated | checkpoint | status | interrupted.
    pub kind: String,
    /// The event (JSON).
    pub data: String,
}

/// The registry's database.
#[derive(Debug, Clone)]
pub struct Registry {
    pool: SqlitePool,
}

/// Milliseconds since the epoch.
pub fn now_ms() -> i64 {
    kiln::jobs::now_unix_ms() as i64
}

impl Registry {
    /// Opens (creating if needed) `path` in WAL mode and makes the tables.
    pub async fn open(path: &Path) -> Result<Self, sqlx::Error> {
        let options = SqliteConnectOptions::new()
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(std::time::Duration::from_secs(10));
        let pool = SqlitePoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        for statement in SCHEMA {
            sqlx::query(statement).execute(&pool).await?;
        }
        Ok(Self { pool })
    }

    /// Records a dataset.
    pub async fn insert_dataset(&self, d: &DatasetRow) -> Result<(), sqlx::Error> {
        sqlx::query("INSERT INTO datasets VALUES (?, ?, ?, ?, ?, ?, ?, ?)")
            .bind(&d.id)
            .bind(&d.format)
            .bind(d.rows)
            .bind(&d.sample_shape)
            .bind(d.header)
            .bind(&d.label_column)
            .bind(d.bytes)
            .bind(d.created_at)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// One dataset.
    pub async fn dataset(&self, id: &str) -> Result<Option<DatasetRow>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM datasets WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Every dataset, oldest first.
    pub async fn datasets(&self) -> Result<Vec<DatasetRow>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM datasets ORDER BY rowid")
            .fetch_all(&self.pool)
            .await
    }

    /// Deletes a dataset's row; true if it existed.
    pub async fn delete_dataset(&self, id: &str) -> Result<bool, sqlx::Error> {
        let done = sqlx::query("DELETE FROM datasets WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Whether a job that has not ended uses the dataset.
    pub async fn dataset_in_use(&self, id: &str) -> Result<bool, sqlx::Error> {
        let row = sqlx::query(
            "SELECT COUNT(*) FROM jobs WHERE dataset = ? AND status IN ('queued', 'processing')",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get::<i64, _>(0) > 0)
    }

    /// Records a new queued job.
    pub async fn insert_job(&self, job: &JobRow) -> Result<(), sqlx::Error> {
        sqlx::query(
            "INSERT INTO jobs (id, kind, status, config, dataset, tags, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(&job.id)
        .bind(&job.kind)
        .bind(&job.status)
        .bind(&job.config)
        .bind(&job.dataset)
        .bind(&job.tags)
        .bind(job.created_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// One job.
    pub async fn job(&self, id: &str) -> Result<Option<JobRow>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await
    }

    /// Jobs of one kind, oldest first, optionally with one status.
    pub async fn jobs(&self, kind: &str, status: Option<&str>) -> Result<Vec<JobRow>, sqlx::Error> {
        sqlx::query_as(
            "SELECT * FROM jobs WHERE kind = ?1 AND (?2 IS NULL OR status = ?2) ORDER BY rowid",
        )
        .bind(kind)
        .bind(status)
        .fetch_all(&self.pool)
        .await
    }

    /// Jobs that had not ended when the server last stopped, in submission order.
    pub async fn unfinished_jobs(&self) -> Result<Vec<JobRow>, sqlx::Error> {
        sqlx::query_as("SELECT * FROM jobs WHERE status IN ('queued', 'processing') ORDER BY rowid")
            .fetch_all(&self.pool)
            .await
    }

    /// Marks a job processing (keeping its first start time), unless it has ended meanwhile.
    pub async fn mark_processing(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query(
            "UPDATE jobs SET status = 'processing', started_at = COALESCE(started_at, ?)
             WHERE id = ? AND status IN ('queued', 'processing')",
        )
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Puts an interrupted job back in the queue (server shutdown).
    pub async fn mark_queued(&self, id: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE jobs SET status = 'queued' WHERE id = ?")
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records the latest progress.
    pub async fn set_progress(&self, id: &str, progress: &str) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE jobs SET progress = ? WHERE id = ?")
            .bind(progress)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Ends a job: `status` with its result or error. Only a job that has not ended changes;
    /// returns whether this call ended it.
    pub async fn finish(
        &self,
        id: &str,
        status: &str,
        result: Option<&str>,
        error: Option<&str>,
    ) -> Result<bool, sqlx::Error> {
        let done = sqlx::query(
            "UPDATE jobs SET status = ?, result = ?, error = ?, finished_at = ?
             WHERE id = ? AND status IN ('queued', 'processing')",
        )
        .bind(status)
        .bind(result)
        .bind(error)
        .bind(now_ms())
        .bind(id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Deletes a job and its events.
    pub async fn delete_job(&self, id: &str) -> Result<(), sqlx::Error> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("DELETE FROM events WHERE job_id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM jobs WHERE id = ?")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await
    }

    /// Appends an event; returns its sequence number.
    pub async fn append_event(
        &self,
        job_id: &str,
        kind: &str,
        data: &str,
    ) -> Result<i64, sqlx::Error> {
        let row = sqlx::query(
            "INSERT INTO events (job_id, seq, kind, data)
             VALUES (?1, (SELECT COALESCE(MAX(seq), 0) + 1 FROM events WHERE job_id = ?1), ?2, ?3)
             RETURNING seq",
        )
        .bind(job_id)
        .bind(kind)
        .bind(data)
        .fetch_one(&self.pool)
        .await?;
        Ok(row.get::<i64, _>(0))
    }

    /// A job's events after `after`, in order.
    pub async fn events_after(
        &self,
        job_id: &str,
        after: i64,
    ) -> Result<Vec<EventRow>, sqlx::Error> {
        let rows = sqlx::query(
            "SELECT seq, kind, data FROM events WHERE job_id = ? AND seq > ? ORDER BY seq",
        )
        .bind(job_id)
        .bind(after)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|r| EventRow {
                seq: r.get(0),
                kind: r.get(1),
                data: r.get(2),
            })
            .collect())
    }
}
