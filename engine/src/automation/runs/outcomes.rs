//! Announcing how runs ended: a `run.succeeded` or `run.failed` event in the log for each
//! finished run (so webhooks, REST hooks and other flows can follow them: an error flow is a
//! flow on `run.failed`), and each flow's streak of failed runs, which disables the flow with
//! a `flow.disabled` event once it reaches the flow's `disableAfterFailures`.
//!
//! A run's end only marks it to be announced (no extra write on the run's path); announcing
//! happens in batches, by the one process that holds the dispatcher's lease. Every failed run
//! is announced; a succeeded run when it ends a flow's streak of failures or when its
//! organization follows successes (a flow on `run.succeeded`, or a webhook or REST hook that
//! wants it: see [`SuccessFollowers`]), so the busiest workload, runs that succeed with nobody
//! listening, logs nothing more than before.

use serde_json::{Value, json};

use super::{RunStatus, StepRecord, StepStatus, parse_steps, source_of};
use crate::automation::flows::{self, Settings};
use crate::automation::webhooks;
use crate::error::Result;
use crate::store::clock::{format_ms, now_ms};
use crate::store::db::{Db, Sql, Tx, row};
use crate::store::events::{self, Cause, NewEvent};

/// Runs announced per transaction.
const BATCH: i64 = 500;

/// How long a process trusts what it found out about an organization's followers: a flow or
/// hook on `run.succeeded` made elsewhere is seen within this.
const FOLLOWERS_TTL: std::time::Duration = std::time::Duration::from_secs(2);

/// Which organizations follow successful runs, as this process last found out.
#[derive(Debug, Default)]
pub struct SuccessFollowers {
    known: std::sync::Mutex<std::collections::HashMap<String, (bool, std::time::Instant)>>,
}

impl SuccessFollowers {
    /// Whether `org_id` has an enabled flow on `run.succeeded`, or an enabled webhook or REST
    /// hook that wants it (by name or `*`).
    pub async fn follows(&self, db: &Db, org_id: &str) -> Result<bool> {
        if let Some((follows, at)) = self.lock().get(org_id)
            && at.elapsed() < FOLLOWERS_TTL
        {
            return Ok(*follows);
        }
        let flow = Sql::new(
            "SELECT id FROM flows WHERE org_id = ? AND event_type = 'run.succeeded' \
             AND is_enabled = 1 AND deleted_at IS NULL LIMIT 1",
        )
        .arg(org_id)
        .fetch_optional(db)
        .await?;
        let follows = flow.is_some()
            || webhooks::enabled_for(db, org_id)
                .await?
                .iter()
                .any(|s| s.events.iter().any(|e| e == "*" || e == "run.succeeded"));
        self.lock()
            .insert(org_id.to_owned(), (follows, std::time::Instant::now()));
        Ok(follows)
    }

    fn lock(
        &self,
    ) -> std::sync::MutexGuard<'_, std::collections::HashMap<String, (bool, std::time::Instant)>>
    {
        self.known.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Announces up to [`BATCH`] finished runs; answers how many.
pub async fn announce(db: &Db) -> Result<usize> {
    let rows = Sql::new(
        "SELECT id, org_id, flow_id, source_key, status, error, steps, depth, root_id, created_at, \
         finished_at FROM runs WHERE announce = 1 ORDER BY finished_at LIMIT ?",
    )
    .arg(BATCH)
    .fetch_all(db)
    .await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut tx = events::begin_write(db).await?;
    let mut ids = Vec::with_capacity(rows.len());
    for r in &rows {
        let id = row::get_str(r, "id")?;
        let status: RunStatus = row::get_str(r, "status")?.parse()?;
        let flow_id = row::get_str(r, "flow_id")?;
        let org_id = row::get_str(r, "org_id")?;
        let kind = match status {
            RunStatus::Succeeded => "run.succeeded",
            RunStatus::Failed => "run.failed",
            _ => {
                ids.push(id);
                continue;
            }
        };
        let failed_step = (status == RunStatus::Failed)
            .then(|| parse_steps(&row::get_str(r, "steps")?).map(|steps| failed_step(&steps)))
            .transpose()?
            .flatten();
        let data = json!({
            "runId": id,
            "flowId": flow_id,
            "status": status.as_str(),
            "error": row::get_opt_str(r, "error")?,
            "failedStep": failed_step,
            "source": source_of(&row::get_str(r, "source_key")?),
            "createdAt": format_ms(row::get_i64(r, "created_at")?),
            "finishedAt": row::get_opt_i64(r, "finished_at")?.map(format_ms),
        });
        // Caused by the flow: it never starts itself, and a chain of error flows is as bounded
        // as any chain of flows.
        let cause = Cause {
            flow_id: flow_id.clone(),
            depth: row::get_i64(r, "depth")? + 1,
            root: row::get_opt_str(r, "root_id")?.unwrap_or_else(|| id.clone()),
        };
        let event = NewEvent {
            org_id: &org_id,
            kind: kind.into(),
            resource_id: &id,
            data,
            changed: None,
        };
        events::CAUSE
            .scope(cause, events::append(&mut tx, event))
            .await?;
        streak(&mut tx, &org_id, &flow_id, status == RunStatus::Failed).await?;
        ids.push(id);
    }
    let mut done = Sql::new("UPDATE runs SET announce = 0 WHERE id IN (");
    for (i, id) in ids.iter().enumerate() {
        done.push(if i == 0 { "?" } else { ", ?" })
            .bind(id.as_str());
    }
    done.push(")");
    done.execute(&mut tx).await?;
    tx.commit().await?;
    Ok(rows.len())
}

/// The step a failed run failed at: `{path, key, action, error}`.
fn failed_step(steps: &[StepRecord]) -> Option<Value> {
    steps
        .iter()
        .rev()
        .find(|s| s.status == StepStatus::Failed)
        .map(|s| json!({"path": s.path, "key": s.key, "action": s.action, "error": s.error}))
}

/// Counts a flow's failed runs in a row (a success ends the streak) and disables the flow when
/// the streak reaches its `disableAfterFailures`.
async fn streak(tx: &mut Tx, org_id: &str, flow_id: &str, failed: bool) -> Result<()> {
    if !failed {
        Sql::new(
            "UPDATE flows SET consecutive_failures = 0 WHERE id = ? AND consecutive_failures <> 0",
        )
        .arg(flow_id)
        .execute(&mut *tx)
        .await?;
        return Ok(());
    }
    let Some(r) = Sql::new(
        "UPDATE flows SET consecutive_failures = consecutive_failures + 1 WHERE id = ? \
         RETURNING consecutive_failures, is_enabled, settings, deleted_at",
    )
    .arg(flow_id)
    .fetch_optional(&mut *tx)
    .await?
    else {
        return Ok(());
    };
    let failures = row::get_i64(&r, "consecutive_failures")?;
    let limit = Settings::from_stored(&row::get_str(&r, "settings")?).disable_after_failures;
    let enabled = row::get_bool(&r, "is_enabled")? && row::get_opt_i64(&r, "deleted_at")?.is_none();
    if limit == 0 || failures < i64::from(limit) || !enabled {
        return Ok(());
    }
    let reason = format!(
        "disabled after {failures} failed runs in a row (settings.disableAfterFailures is {limit}); \
         fix the cause, then enable it again"
    );
    Sql::new(
        "UPDATE flows SET is_enabled = 0, enabled_at = NULL, last_error = ?, updated_at = ? WHERE id = ?",
    )
    .arg(&reason)
    .arg(now_ms())
    .arg(flow_id)
    .execute(&mut *tx)
    .await?;
    let flow = flows::reload(tx, flow_id).await?;
    events::append(
        tx,
        NewEvent {
            org_id,
            kind: "flow.disabled".into(),
            resource_id: flow_id,
            data: serde_json::to_value(&flow).unwrap_or(Value::Null),
            changed: None,
        },
    )
    .await?;
    tracing::warn!(flow = %flow_id, failures, "Flow disabled after failing runs.");
    Ok(())
}
