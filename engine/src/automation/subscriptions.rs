//! Subscriptions of connectors' webhook triggers: which enabled flows need one made at the
//! system they watch, which ones are no longer wanted (the flow disabled, deleted, or given
//! another trigger) and must be ended there. A row is claimed before the request is sent, so
//! one process makes each; a claim left by a crash is taken again after a while.

use crate::automation::flows::LiveFlow;
use crate::error::Result;
use crate::store::clock::{Millis, now_ms};
use crate::store::db::{Db, Sql, row};

/// A claim older than this is taken to be abandoned.
const CLAIM_MS: Millis = 60_000;

/// A flow whose trigger needs a subscription, and the token of its inbound URL.
#[derive(Debug, Clone)]
pub struct Wanted {
    pub flow: LiveFlow,
    pub token: String,
    /// Failed attempts so far.
    pub failures: i64,
}

/// A subscription to end, with what it was made for.
#[derive(Debug, Clone)]
pub struct Unwanted {
    pub flow_id: String,
    pub org_id: String,
    pub connection_id: String,
    pub trigger: serde_json::Value,
    pub remote_id: Option<String>,
    pub failures: i64,
    /// Whether it was made at the system (a failed one was not: it is only forgotten).
    pub made: bool,
}

/// Enabled flows with a connector's webhook trigger and no subscription for it (or a failed
/// one due again), at most `limit`; each claimed for this process.
pub async fn claim_wanted(db: &Db, limit: i64) -> Result<Vec<Wanted>> {
    let now = now_ms();
    let rows = Sql::new(
        "SELECT f.*, s.failures AS sub_failures FROM flows f \
         LEFT JOIN trigger_subscriptions s ON s.flow_id = f.id \
         WHERE f.trigger_type = 'webhook' AND f.is_enabled = 1 AND f.deleted_at IS NULL \
         AND f.trigger LIKE '%\"connector\":%' \
         AND (s.flow_id IS NULL OR (s.status IN ('pending', 'failed') AND s.next_attempt_at <= ?)) \
         ORDER BY f.id LIMIT ?",
    )
    .arg(now)
    .arg(limit)
    .fetch_all(db)
    .await?;
    let mut wanted = Vec::new();
    for r in &rows {
        let flow = crate::automation::flows::live_from_row(r)?;
        let failures = row::get_opt_i64(r, "sub_failures")?.unwrap_or(0);
        let claimed = db
            .write_count(
                &Sql::new(
                    "INSERT INTO trigger_subscriptions (flow_id, org_id, connection_id, trigger, status, failures, \
                     next_attempt_at, updated_at) VALUES (?, ?, ?, ?, 'pending', ?, ?, ?) \
                     ON CONFLICT (flow_id) DO UPDATE SET status = 'pending', trigger = excluded.trigger, \
                     connection_id = excluded.connection_id, next_attempt_at = excluded.next_attempt_at, \
                     updated_at = excluded.updated_at \
                     WHERE trigger_subscriptions.status IN ('pending', 'failed') \
                     AND trigger_subscriptions.next_attempt_at <= ?",
                )
                .arg(flow.id.as_str())
                .arg(flow.org_id.as_str())
                .arg(flow.trigger["connectionId"].as_str().unwrap_or_default())
                .arg(flow.trigger.to_string())
                .arg(failures)
                .arg(now + CLAIM_MS)
                .arg(now)
                .arg(now),
            )
            .await?;
        if claimed == 1 {
            wanted.push(Wanted {
                token: row::get_opt_str(r, "webhook_token")?.unwrap_or_default(),
                flow,
                failures,
            });
        }
    }
    Ok(wanted)
}

/// Records a subscription made.
pub async fn made(db: &Db, flow_id: &str, remote_id: Option<&str>) -> Result<()> {
    db.write_count(
        &Sql::new(
            "UPDATE trigger_subscriptions SET status = 'active', remote_id = ?, failures = 0, \
             last_error = NULL, next_attempt_at = ?, updated_at = ? WHERE flow_id = ?",
        )
        .arg(remote_id)
        .arg(now_ms())
        .arg(now_ms())
        .arg(flow_id),
    )
    .await
    .map(drop)
}

/// Records a failed attempt to make or end a subscription; the next is due at `next_at`.
pub async fn failed(
    db: &Db,
    flow_id: &str,
    error: &str,
    failures: i64,
    next_at: Millis,
) -> Result<()> {
    db.write_count(
        &Sql::new(
            "UPDATE trigger_subscriptions SET status = CASE WHEN status = 'ending' THEN 'ending' ELSE 'failed' END, \
             failures = ?, last_error = ?, next_attempt_at = ?, updated_at = ? WHERE flow_id = ?",
        )
        .arg(failures)
        .arg(error)
        .arg(next_at)
        .arg(now_ms())
        .arg(flow_id),
    )
    .await
    .map(drop)
}

/// Subscriptions no flow wants any more (its flow disabled, deleted or given another
/// trigger), due now, at most `limit`; each claimed for this process.
pub async fn claim_unwanted(db: &Db, limit: i64) -> Result<Vec<Unwanted>> {
    let now = now_ms();
    let rows = Sql::new(
        "SELECT s.* FROM trigger_subscriptions s LEFT JOIN flows f ON f.id = s.flow_id \
         WHERE s.status IN ('active', 'ending', 'failed') AND s.next_attempt_at <= ? \
         AND (f.id IS NULL OR f.deleted_at IS NOT NULL OR f.is_enabled = 0 OR f.trigger <> s.trigger) \
         ORDER BY s.flow_id LIMIT ?",
    )
    .arg(now)
    .arg(limit)
    .fetch_all(db)
    .await?;
    let mut unwanted = Vec::new();
    for r in &rows {
        let flow_id = row::get_str(r, "flow_id")?;
        let claimed = db
            .write_count(
                &Sql::new(
                    "UPDATE trigger_subscriptions SET status = 'ending', next_attempt_at = ?, updated_at = ? \
                     WHERE flow_id = ? AND next_attempt_at <= ? AND status IN ('active', 'ending', 'failed')",
                )
                .arg(now + CLAIM_MS)
                .arg(now)
                .arg(flow_id.as_str())
                .arg(now),
            )
            .await?;
        if claimed == 1 {
            unwanted.push(Unwanted {
                flow_id,
                org_id: row::get_str(r, "org_id")?,
                connection_id: row::get_str(r, "connection_id")?,
                trigger: serde_json::from_str(&row::get_str(r, "trigger")?).unwrap_or_default(),
                remote_id: row::get_opt_str(r, "remote_id")?,
                failures: row::get_i64(r, "failures")?,
                made: row::get_str(r, "status")? != "failed",
            });
        }
    }
    Ok(unwanted)
}

/// Takes back subscriptions that were being ended (their end failed) when their flow wants
/// them again as they are: enabled again with the same trigger. They were never ended.
pub async fn revive(db: &Db) -> Result<()> {
    // A read first: most rounds find nothing being ended, and a write is dearer.
    let ending =
        Sql::new("SELECT flow_id FROM trigger_subscriptions WHERE status = 'ending' LIMIT 1")
            .fetch_optional(db)
            .await?;
    if ending.is_none() {
        return Ok(());
    }
    db.write_count(&Sql::new(
        "UPDATE trigger_subscriptions SET status = 'active', failures = 0, last_error = NULL \
         WHERE status = 'ending' AND flow_id IN (SELECT f.id FROM flows f WHERE f.id = trigger_subscriptions.flow_id \
         AND f.is_enabled = 1 AND f.deleted_at IS NULL AND f.trigger = trigger_subscriptions.trigger)",
    ))
    .await
    .map(drop)
}

/// Forgets a subscription that was ended (or cannot be).
pub async fn ended(db: &Db, flow_id: &str) -> Result<()> {
    db.write_count(&Sql::new("DELETE FROM trigger_subscriptions WHERE flow_id = ?").arg(flow_id))
        .await
        .map(drop)
}

/// The state of a flow's subscription, for the flow's page: `(status, lastError)`.
pub async fn state_of(db: &Db, flow_id: &str) -> Result<Option<(String, Option<String>)>> {
    Sql::new("SELECT status, last_error FROM trigger_subscriptions WHERE flow_id = ?")
        .arg(flow_id)
        .fetch_optional(db)
        .await?
        .map(|r| {
            Ok((
                row::get_str(&r, "status")?,
                row::get_opt_str(&r, "last_error")?,
            ))
        })
        .transpose()
}
