//! What operators watch: whether the database is ready, and the state of the background work
//! (queues, outcomes, poll lag) read from the database at scrape time, so every process of one
//! database reports the same numbers whichever of them did the work.

use crate::error::Result;
use crate::store::clock::now_ms;
use crate::store::db::{Db, Sql, row};

/// At most this many poll flows are reported one by one (the most lagging first), so a scrape
/// stays small whatever the number of flows.
pub const MAX_POLL_FLOWS: i64 = 500;

/// Why the service is not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady {
    DatabaseUnreachable(String),
    MigrationsPending,
}

impl NotReady {
    /// What an unauthenticated caller may be told (no database error text).
    pub fn public_message(&self) -> &'static str {
        match self {
            NotReady::DatabaseUnreachable(_) => "the database is unreachable",
            NotReady::MigrationsPending => "database migrations are pending",
        }
    }
}

impl std::fmt::Display for NotReady {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NotReady::DatabaseUnreachable(e) => write!(f, "the database is unreachable: {e}"),
            NotReady::MigrationsPending => f.write_str("database migrations are pending"),
        }
    }
}

/// Ready: the database answers and every migration this binary knows of is applied.
pub async fn readiness(db: &Db) -> std::result::Result<(), NotReady> {
    Sql::new("SELECT 1")
        .fetch_one(db)
        .await
        .map_err(|e| NotReady::DatabaseUnreachable(e.to_string()))?;
    match db.migrations_applied().await {
        Ok(true) => Ok(()),
        Ok(false) => Err(NotReady::MigrationsPending),
        Err(e) => Err(NotReady::DatabaseUnreachable(e.to_string())),
    }
}

/// How many rows of a table are in each status.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ByStatus(pub Vec<(String, i64)>);

impl ByStatus {
    pub fn get(&self, status: &str) -> i64 {
        self.0
            .iter()
            .find(|(s, _)| s == status)
            .map_or(0, |(_, n)| *n)
    }
}

/// A poll flow's distance from its last successful read of its source.
#[derive(Debug, Clone, PartialEq)]
pub struct PollLag {
    pub flow_id: String,
    pub seconds: f64,
}

/// The background work, as the database holds it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkStats {
    /// Runs by status (`queued`, `running`, `succeeded`, `failed`).
    pub runs: ByStatus,
    /// Seconds since the oldest queued run was created (0 when none waits).
    pub oldest_queued_run_seconds: f64,
    /// Deliveries by status (`pending`, `sending`, `failed` awaiting a retry, `succeeded`, `dead`).
    pub deliveries: ByStatus,
    /// Seconds since the oldest delivery still to be made was created (0 when none waits).
    pub oldest_pending_delivery_seconds: f64,
    /// Enabled poll flows, the most lagging first, at most [`MAX_POLL_FLOWS`].
    pub poll_lag: Vec<PollLag>,
}

/// Reads [`WorkStats`]: a few grouped counts over indexed columns.
pub async fn work_stats(db: &Db) -> Result<WorkStats> {
    let now = now_ms();
    let age = |oldest: Option<i64>| oldest.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
    let oldest_run = Sql::new("SELECT MIN(created_at) FROM runs WHERE status = 'queued'")
        .fetch_one(db)
        .await?;
    let oldest_delivery = Sql::new(
        "SELECT MIN(created_at) FROM deliveries WHERE status IN ('pending', 'sending', 'failed')",
    )
    .fetch_one(db)
    .await?;
    Ok(WorkStats {
        runs: by_status(db, "runs").await?,
        oldest_queued_run_seconds: age(first_opt_i64(&oldest_run)?),
        deliveries: by_status(db, "deliveries").await?,
        oldest_pending_delivery_seconds: age(first_opt_i64(&oldest_delivery)?),
        poll_lag: poll_lag(db, now).await?,
    })
}

fn first_opt_i64(r: &row::Row) -> Result<Option<i64>> {
    use sqlx::Row;
    Ok(r.try_get::<Option<i64>, _>(0)?)
}

async fn by_status(db: &Db, table: &str) -> Result<ByStatus> {
    let rows = Sql::new(&format!(
        "SELECT status, COUNT(*) AS n FROM {table} GROUP BY status ORDER BY status"
    ))
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| Ok((row::get_str(r, "status")?, row::get_i64(r, "n")?)))
        .collect::<Result<Vec<_>>>()
        .map(ByStatus)
}

/// Enabled poll flows: now minus their last successful poll (or, never polled successfully,
/// minus when they were enabled).
async fn poll_lag(db: &Db, now: i64) -> Result<Vec<PollLag>> {
    let rows = Sql::new(
        "SELECT f.id AS flow_id, COALESCE(p.last_succeeded_at, f.enabled_at, f.created_at) AS since \
         FROM flows f LEFT JOIN poll_state p ON p.flow_id = f.id \
         WHERE f.trigger_type = 'poll' AND f.is_enabled = ? AND f.deleted_at IS NULL \
         ORDER BY since, f.id LIMIT ?",
    )
    .arg(true)
    .arg(MAX_POLL_FLOWS)
    .fetch_all(db)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(PollLag {
                flow_id: row::get_str(r, "flow_id")?,
                seconds: (now - row::get_i64(r, "since")?).max(0) as f64 / 1000.0,
            })
        })
        .collect()
}
