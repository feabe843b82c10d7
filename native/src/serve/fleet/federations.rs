//! The registry's federations: which round is open, who takes part in it, which updates
//! arrived, what each closed round measured — and where a federation's objects live. Every
//! change of round is one conditional statement, so a round is closed exactly once however
//! many servers (or restarts) try.

use super::page::Page;
use super::registry::{Registry, page_clause};
use serde::{Deserialize, Serialize};
use sqlx::{FromRow, Row};

/// Where a federation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FederationStatus {
    /// Created; no client has joined yet.
    Waiting,
    /// Rounds are going on.
    Running,
    /// Every round closed; the final model is in the store.
    Completed,
    /// A round could not be completed (see its error).
    Failed,
    /// Cancelled by an admin.
    Cancelled,
}

kiln::display_serde_name!(FederationStatus);

impl FederationStatus {
    /// Whether it has ended.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Completed | Self::Failed | Self::Cancelled)
    }
}

impl TryFrom<String> for FederationStatus {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        kiln::config::from_serde_name(&text).ok_or_else(|| {
            format!(
                "`{text}` is not a federation status (waiting, running, completed, failed or \
                 cancelled)"
            )
        })
    }
}

/// A federation's row.
#[derive(Debug, Clone, FromRow)]
pub struct FederationRow {
    /// `fed-<uuid>`.
    pub id: String,
    /// Where it is in its life.
    #[sqlx(try_from = "String")]
    pub status: FederationStatus,
    /// Its plan (JSON): the training config, the round settings, the aggregation.
    pub spec: String,
    /// Rounds in all.
    pub rounds: i64,
    /// The open round, from 0 (`rounds` once every round closed).
    pub round: i64,
    /// When the open round opened (ms since the epoch).
    pub round_opened_at: Option<i64>,
    /// How many times the open round was opened again after a timeout without enough updates.
    pub round_tries: i64,
    /// While set, a server is aggregating the open round (until this time, ms): no update is
    /// taken, and another server may take over after it.
    pub closing_until: Option<i64>,
    /// JSON object of string tags.
    pub tags: String,
    /// Why it failed or was cancelled.
    pub error: Option<String>,
    /// Its result once completed (JSON: the final model's id, rounds, metrics).
    pub result: Option<String>,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// When it ended.
    pub finished_at: Option<i64>,
}

/// One client's update to a round, as recorded.
#[derive(Debug, Clone, FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UpdateRow {
    /// The client.
    pub participant: String,
    /// Its training examples.
    pub examples: i64,
    /// Its local metrics (JSON object).
    pub metrics: String,
    /// The update's size.
    pub bytes: i64,
    /// When it arrived.
    pub received_at: i64,
}

/// A closed round.
#[derive(Debug, Clone, FromRow, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoundRow {
    /// The round, from 0.
    pub round: i64,
    /// Clients whose updates were aggregated.
    pub participants: i64,
    /// Their training examples in all.
    pub examples: i64,
    /// The round's metrics (JSON object): clients' local metrics weighted by examples, and the
    /// global model's on the validation dataset.
    pub metrics: String,
    /// When it closed.
    pub closed_at: i64,
}

/// The object holding the global model that round `round` starts from.
pub fn global_model_key(id: &str, round: i64) -> String {
    format!("federations/{id}/global-{round}.kiln")
}

/// The object holding a client's update to a round.
pub fn update_key(id: &str, round: i64, participant: &str) -> String {
    format!("federations/{id}/round-{round}/{participant}.kiln")
}

/// The folder of a securely aggregated round's messages (keys, shares, the fixed sets,
/// revealed shares), one per try of the round.
pub fn secure_folder(id: &str, round: i64, round_try: i64) -> String {
    format!("federations/{id}/round-{round}/secure-{round_try}")
}

/// The object holding the server optimiser's moments after round `round - 1`.
pub fn moments_key(id: &str, round: i64) -> String {
    format!("federations/{id}/moments-{round}.bin")
}

/// The folder of every object of a federation.
pub fn objects_prefix(id: &str) -> String {
    format!("federations/{id}")
}

type Outcome<T> = Result<T, sqlx::Error>;

impl Registry {
    /// Records a new federation.
    pub async fn insert_federation(&self, row: &FederationRow) -> Outcome<()> {
        sqlx::query(
            "INSERT INTO federations (id, status, spec, rounds, round, tags, created_at)
             VALUES ($1, $2, $3, $4, 0, $5, $6)",
        )
        .bind(&row.id)
        .bind(row.status.to_string())
        .bind(&row.spec)
        .bind(row.rounds)
        .bind(&row.tags)
        .bind(row.created_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// One federation.
    pub async fn federation(&self, id: &str) -> Outcome<Option<FederationRow>> {
        sqlx::query_as("SELECT * FROM federations WHERE id = $1")
            .bind(id)
            .fetch_optional(self.pool())
            .await
    }

    /// One page of federations in creation order.
    pub async fn federations(&self, page: &Page) -> Outcome<Vec<FederationRow>> {
        let (after, order) = page_clause(page);
        let sql = format!(
            "SELECT * FROM federations WHERE ($1 IS NULL OR {after}) ORDER BY {order} LIMIT $3"
        );
        let cursor = page.after.as_ref();
        sqlx::query_as(&sql)
            .bind(cursor.map(|c| c.created_at))
            .bind(cursor.map(|c| c.id.clone()))
            .bind(i64::from(page.limit))
            .fetch_all(self.pool())
            .await
    }

    /// The federations that have not ended (for the round clock).
    pub async fn open_federations(&self) -> Outcome<Vec<FederationRow>> {
        sqlx::query_as("SELECT * FROM federations WHERE status IN ('waiting', 'running')")
            .fetch_all(self.pool())
            .await
    }

    /// Starts a waiting federation's first round; true if this call started it.
    pub async fn start_federation(&self, id: &str, now: i64) -> Outcome<bool> {
        let done = sqlx::query(
            "UPDATE federations SET status = 'running', round_opened_at = $2
             WHERE id = $1 AND status = 'waiting'",
        )
        .bind(id)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Makes `participant` a member of the open round `round` while it has fewer than `most`
    /// members; true if it is one (now or already).
    pub async fn join_round(
        &self,
        id: &str,
        round: i64,
        participant: &str,
        most: i64,
        now: i64,
    ) -> Outcome<bool> {
        sqlx::query(
            "INSERT INTO federation_members (federation_id, round, participant, joined_at)
             SELECT $1, $2, $3, $5
             WHERE (SELECT COUNT(*) FROM federation_members WHERE federation_id = $1 AND round = $2) < $4
               AND NOT EXISTS (SELECT 1 FROM federation_members
                   WHERE federation_id = $1 AND round = $2 AND participant = $3)
               AND EXISTS (SELECT 1 FROM federations
                   WHERE id = $1 AND round = $2 AND status = 'running' AND closing_until IS NULL)",
        )
        .bind(id)
        .bind(round)
        .bind(participant)
        .bind(most)
        .bind(now)
        .execute(self.pool())
        .await?;
        self.is_member(id, round, participant).await
    }

    /// Whether `participant` takes part in round `round`.
    pub async fn is_member(&self, id: &str, round: i64, participant: &str) -> Outcome<bool> {
        self.participant_in("federation_members", id, round, participant)
            .await
    }

    /// Whether `participant` has a row in `table` (members or updates) for `round`.
    async fn participant_in(
        &self,
        table: &str,
        id: &str,
        round: i64,
        participant: &str,
    ) -> Outcome<bool> {
        let row = sqlx::query(&format!(
            "SELECT COUNT(*) FROM {table}
             WHERE federation_id = $1 AND round = $2 AND participant = $3"
        ))
        .bind(id)
        .bind(round)
        .bind(participant)
        .fetch_one(self.pool())
        .await?;
        Ok(row.try_get::<i64, _>(0)? > 0)
    }

    /// The members of a round.
    pub async fn members(&self, id: &str, round: i64) -> Outcome<Vec<String>> {
        let rows = sqlx::query(
            "SELECT participant FROM federation_members WHERE federation_id = $1 AND round = $2
             ORDER BY joined_at, participant",
        )
        .bind(id)
        .bind(round)
        .fetch_all(self.pool())
        .await?;
        rows.iter().map(|r| r.try_get::<String, _>(0)).collect()
    }

    /// Records a member's update to the open round `round`, unless the round has moved on or
    /// is being aggregated; true if it was recorded (false: it is stale, or a duplicate).
    pub async fn insert_update(&self, id: &str, round: i64, update: &UpdateRow) -> Outcome<bool> {
        let mut tx = self.pool().begin().await?;
        // PostgreSQL: the federation's row is share-locked until the update is in, so a server
        // claiming the round waits for it (and aggregates it), or — having claimed first — is
        // seen here and the update is refused. SQLite runs one writer at a time anyway.
        if self.dialect() == super::registry::Dialect::Postgres {
            let open = sqlx::query(
                "SELECT 1 FROM federations
                 WHERE id = $1 AND round = $2 AND status = 'running' AND closing_until IS NULL
                 FOR SHARE",
            )
            .bind(id)
            .bind(round)
            .fetch_optional(&mut *tx)
            .await?;
            if open.is_none() {
                return Ok(false);
            }
        }
        let done = sqlx::query(
            "INSERT INTO federation_updates
                 (federation_id, round, participant, examples, metrics, bytes, received_at)
             SELECT $1, $2, $3, $4, $5, $6, $7
             WHERE EXISTS (SELECT 1 FROM federations
                   WHERE id = $1 AND round = $2 AND status = 'running' AND closing_until IS NULL)
               AND NOT EXISTS (SELECT 1 FROM federation_updates
                   WHERE federation_id = $1 AND round = $2 AND participant = $3)",
        )
        .bind(id)
        .bind(round)
        .bind(&update.participant)
        .bind(update.examples)
        .bind(&update.metrics)
        .bind(update.bytes)
        .bind(update.received_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    /// Whether `participant` already sent its update to `round`.
    pub async fn has_update(&self, id: &str, round: i64, participant: &str) -> Outcome<bool> {
        self.participant_in("federation_updates", id, round, participant)
            .await
    }

    /// The updates a round received, in a fixed order (so aggregating them again gives the same
    /// model).
    pub async fn updates(&self, id: &str, round: i64) -> Outcome<Vec<UpdateRow>> {
        sqlx::query_as(
            "SELECT participant, examples, metrics, bytes, received_at FROM federation_updates
             WHERE federation_id = $1 AND round = $2 ORDER BY participant",
        )
        .bind(id)
        .bind(round)
        .fetch_all(self.pool())
        .await
    }

    /// Takes the job of aggregating the open round `round` until `until` (ms); true if this
    /// call took it (no other server holds it, or its hold ran out).
    pub async fn claim_round(&self, id: &str, round: i64, now: i64, until: i64) -> Outcome<bool> {
        let done = sqlx::query(
            "UPDATE federations SET closing_until = $4
             WHERE id = $1 AND round = $2 AND status = 'running'
               AND (closing_until IS NULL OR closing_until < $3)",
        )
        .bind(id)
        .bind(round)
        .bind(now)
        .bind(until)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Records what a closed round measured (once: a second record of the same round is
    /// ignored).
    pub async fn record_round(&self, id: &str, round: &RoundRow) -> Outcome<()> {
        sqlx::query(
            "INSERT INTO federation_rounds
                 (federation_id, round, participants, examples, metrics, closed_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (federation_id, round) DO NOTHING",
        )
        .bind(id)
        .bind(round.round)
        .bind(round.participants)
        .bind(round.examples)
        .bind(&round.metrics)
        .bind(round.closed_at)
        .execute(self.pool())
        .await?;
        Ok(())
    }

    /// The closed rounds, in order.
    pub async fn closed_rounds(&self, id: &str) -> Outcome<Vec<RoundRow>> {
        sqlx::query_as(
            "SELECT round, participants, examples, metrics, closed_at FROM federation_rounds
             WHERE federation_id = $1 ORDER BY round",
        )
        .bind(id)
        .fetch_all(self.pool())
        .await
    }

    /// Moves the federation from round `round` to the next (completing it after the last,
    /// with `result`); true if this call moved it — exactly one call per round does.
    pub async fn advance_round(
        &self,
        id: &str,
        round: i64,
        now: i64,
        result: Option<&str>,
    ) -> Outcome<bool> {
        let done = sqlx::query(
            "UPDATE federations SET round = round + 1, round_opened_at = $3, round_tries = 0,
                 closing_until = NULL,
                 status = CASE WHEN $4 IS NULL THEN status ELSE 'completed' END,
                 result = $4,
                 finished_at = CASE WHEN $4 IS NULL THEN NULL ELSE $3 END
             WHERE id = $1 AND round = $2 AND status = 'running'",
        )
        .bind(id)
        .bind(round)
        .bind(now)
        .bind(result)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Opens round `round` again from scratch (a securely aggregated round whose steps failed:
    /// its masked updates cannot be used with another try's masks): every member and update
    /// of the round is removed. Returns the members it had.
    pub async fn restart_round(&self, id: &str, round: i64, now: i64) -> Outcome<Vec<String>> {
        let members = self.members(id, round).await?;
        let mut tx = self.pool().begin().await?;
        if !Self::open_again(&mut tx, id, round, now).await? {
            return Ok(Vec::new());
        }
        for table in ["federation_members", "federation_updates"] {
            sqlx::query(&format!(
                "DELETE FROM {table} WHERE federation_id = $1 AND round = $2"
            ))
            .bind(id)
            .bind(round)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(members)
    }

    /// Counts another try of round `round` and restarts its clock, unless the round has moved
    /// on, ended or is being aggregated; true if it did.
    async fn open_again(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        id: &str,
        round: i64,
        now: i64,
    ) -> Outcome<bool> {
        let opened = sqlx::query(
            "UPDATE federations SET round_tries = round_tries + 1, round_opened_at = $3
             WHERE id = $1 AND round = $2 AND status = 'running' AND closing_until IS NULL",
        )
        .bind(id)
        .bind(round)
        .bind(now)
        .execute(&mut **tx)
        .await?;
        Ok(opened.rows_affected() > 0)
    }

    /// Opens round `round` again after a timeout without enough updates: the members that sent
    /// nothing are dropped (and returned), those that did keep their updates.
    pub async fn reopen_round(&self, id: &str, round: i64, now: i64) -> Outcome<Vec<String>> {
        let dropped: Vec<String> = sqlx::query(
            "SELECT participant FROM federation_members m
             WHERE federation_id = $1 AND round = $2 AND NOT EXISTS (
                 SELECT 1 FROM federation_updates u
                 WHERE u.federation_id = m.federation_id AND u.round = m.round
                   AND u.participant = m.participant)",
        )
        .bind(id)
        .bind(round)
        .fetch_all(self.pool())
        .await?
        .iter()
        .map(|r| r.try_get::<String, _>(0))
        .collect::<Outcome<_>>()?;
        let mut tx = self.pool().begin().await?;
        if !Self::open_again(&mut tx, id, round, now).await? {
            return Ok(Vec::new());
        }
        for participant in &dropped {
            sqlx::query(
                "DELETE FROM federation_members
                 WHERE federation_id = $1 AND round = $2 AND participant = $3",
            )
            .bind(id)
            .bind(round)
            .bind(participant)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(dropped)
    }

    /// Ends a federation that has not ended as `status` (failed or cancelled) saying why; true
    /// if this call ended it.
    pub async fn end_federation(
        &self,
        id: &str,
        status: FederationStatus,
        error: &str,
        now: i64,
    ) -> Outcome<bool> {
        let done = sqlx::query(
            "UPDATE federations SET status = $2, error = $3, finished_at = $4, closing_until = NULL
             WHERE id = $1 AND status IN ('waiting', 'running')",
        )
        .bind(id)
        .bind(status.to_string())
        .bind(error)
        .bind(now)
        .execute(self.pool())
        .await?;
        Ok(done.rows_affected() == 1)
    }

    /// Deletes a federation's rows (members, updates, rounds, join tokens, events and the
    /// federation) in one transaction; true if it existed.
    pub async fn delete_federation(&self, id: &str) -> Outcome<bool> {
        let mut tx = self.pool().begin().await?;
        for table in [
            "federation_members",
            "federation_updates",
            "federation_rounds",
        ] {
            sqlx::query(&format!("DELETE FROM {table} WHERE federation_id = $1"))
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        sqlx::query("DELETE FROM events WHERE job_id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        let done = sqlx::query("DELETE FROM federations WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() > 0)
    }
}

/// What a federation was created with, stored as its `spec`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FederationPlan {
    /// The training config every client trains its rounds with (`training.num_passes`: local
    /// epochs per round).
    pub config: kiln::Config,
    /// Rounds in all.
    pub rounds: i64,
    /// Clients taking part in one round, at most.
    pub clients_per_round: i64,
    /// Updates a round needs to close at its timeout.
    pub min_clients: i64,
    /// How long a round waits for its clients.
    pub round_timeout_secs: i64,
    /// How many times a round short of `min_clients` at its timeout is opened again before the
    /// federation fails.
    pub round_retries: i64,
    /// How updates are aggregated.
    pub aggregation: kiln::federated::Aggregation,
    /// An uploaded dataset the server evaluates every round's global model on.
    pub validation_dataset: Option<String>,
    /// The id the final model is stored under (in every round's global model's header too).
    pub model_id: String,
    /// Secure aggregation's settings, when the server may learn only each round's sum.
    #[serde(default)]
    pub secure_aggregation: Option<SecureSettings>,
}

/// How a federation aggregates securely.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecureSettings {
    /// Shares needed to remove a client's masks; also the fewest clients a round may sum.
    pub threshold: usize,
    /// How long each step after the keys waits for the clients, in seconds.
    pub phase_secs: i64,
}
