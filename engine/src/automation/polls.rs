//! The state of poll triggers: one row per poll flow with its cursor (where its source was read
//! up to), when it polls next, and a lease so that one process polls a flow at a time; and the
//! items each flow has seen, so an item starts at most one run however often it is read.

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::automation::flows::{Flow, LiveFlow};
use crate::automation::run_admission::RunAdmission;
use crate::automation::runs;
use crate::error::Result;
use crate::store::clock::{Millis, now_ms};
use crate::store::db::{Db, Sql, Tx, row};

/// A poll flow's state as its poller reads it.
#[derive(Debug, Clone)]
pub struct PollState {
    pub flow_id: String,
    /// The cursor as saved (JSON), none before the first poll.
    pub cursor: Option<Value>,
    pub failures: u32,
    /// The lease this poller holds.
    pub token: String,
    /// What the cursor belongs to, and since when.
    pub basis: String,
    pub basis_at: Millis,
}

impl PollState {
    /// An item's key in the seen set and in its run's source: within this basis, so a new
    /// source's ids are not taken for an old source's.
    pub fn item_key(&self, key: &str) -> String {
        format!("{}:{key}", &self.basis[..self.basis.len().min(12)])
    }
}

/// What a cursor belongs to: the trigger and when the flow was enabled.
fn basis(flow: &Flow) -> String {
    let text = format!(
        "{}|{}",
        flow.trigger,
        flow.enabled_at.as_deref().unwrap_or("")
    );
    Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Keeps a flow's poll state in step with the flow (in the flow's write): an enabled poll flow
/// polls now; a new trigger or a new enabling starts the cursor again; other edits keep it.
pub async fn follow(tx: &mut Tx, flow: &Flow) -> Result<()> {
    if flow.trigger["type"] != "poll" || !flow.is_enabled {
        return Ok(());
    }
    let basis = basis(flow);
    let now = now_ms();
    let current = Sql::new("SELECT basis FROM poll_state WHERE flow_id = ?")
        .arg(flow.id.as_str())
        .fetch_optional(&mut *tx)
        .await?;
    match current {
        None => {
            Sql::new(
                "INSERT INTO poll_state (flow_id, basis, basis_at, next_poll_at) VALUES (?, ?, ?, ?)",
            )
            .arg(flow.id.as_str())
            .arg(basis)
            .arg(now)
            .arg(now)
                .execute(&mut *tx)
                .await?;
        }
        Some(r) if row::get_str(&r, "basis")? != basis => {
            Sql::new(
                "UPDATE poll_state SET basis = ?, basis_at = ?, cursor = NULL, failures = 0, \
                 last_error = NULL, next_poll_at = ? WHERE flow_id = ?",
            )
            .arg(basis)
            .arg(now)
            .arg(now)
            .arg(flow.id.as_str())
            .execute(&mut *tx)
            .await?;
        }
        Some(_) => {}
    }
    Ok(())
}

/// Whether some enabled poll flow is due now with its lease free (a read: the cheap check
/// before taking leases).
pub async fn any_due(db: &Db) -> Result<bool> {
    let now = now_ms();
    Ok(Sql::new(&format!("SELECT p.flow_id {DUE} LIMIT 1"))
        .arg(now)
        .arg(now)
        .fetch_optional(db)
        .await?
        .is_some())
}

const DUE: &str = "FROM poll_state p JOIN flows f ON f.id = p.flow_id \
    WHERE p.next_poll_at <= ? AND (p.lease_until IS NULL OR p.lease_until < ?) \
    AND f.is_enabled = 1 AND f.deleted_at IS NULL AND f.trigger_type = 'poll'";

/// Takes the lease for `lease_ms` on up to `limit` due flows (oldest due first) in one write;
/// flows another process is taking are skipped.
pub async fn lease_due(db: &Db, limit: i64, lease_ms: Millis) -> Result<Vec<PollState>> {
    let now = now_ms();
    let token = ulid::Ulid::generate().to_string();
    let mut sql = Sql::new(
        "UPDATE poll_state SET lease_until = ?, lease_token = ? WHERE flow_id IN (SELECT p.flow_id ",
    );
    sql.bind(now + lease_ms).bind(token.as_str());
    sql.push(DUE).bind(now).bind(now);
    sql.push(" ORDER BY p.next_poll_at LIMIT ?").bind(limit);
    if db.backend() == crate::Backend::Postgres {
        sql.push(" FOR UPDATE OF p SKIP LOCKED");
    }
    // Checked again on the row as it is now (Postgres re-reads it after a wait).
    sql.push(") AND next_poll_at <= ? AND (lease_until IS NULL OR lease_until < ?) RETURNING flow_id, cursor, failures, basis, basis_at")
        .bind(now)
        .bind(now);
    db.write(&sql)
        .await?
        .iter()
        .map(|r| {
            Ok(PollState {
                flow_id: row::get_str(r, "flow_id")?,
                cursor: row::get_opt_str(r, "cursor")?
                    .and_then(|text| serde_json::from_str(&text).ok()),
                failures: u32::try_from(row::get_i64(r, "failures")?).unwrap_or(u32::MAX),
                token: token.clone(),
                basis: row::get_str(r, "basis")?,
                basis_at: row::get_i64(r, "basis_at")?,
            })
        })
        .collect()
}

/// One item a poll read: its dedupe key and the record that starts a run.
#[derive(Debug, Clone)]
pub struct Item {
    pub key: String,
    pub record: Value,
}

/// What one successful poll read, and when the next one is due.
#[derive(Debug, Clone)]
pub struct Polled {
    pub items: Vec<Item>,
    /// The first read of a source without a time cursor: what is there now is old.
    pub baseline: bool,
    pub cursor: Value,
    pub next_poll_at: Millis,
}

/// Saves a successful poll in one transaction: the items not seen before are marked seen and
/// (unless a baseline) start runs, each when its organization's run budget allows; the cursor
/// moves; the lease is let go. Nothing is saved when the lease was lost meanwhile (another
/// poller carries on). Returns the new runs.
pub async fn save(
    db: &Db,
    admission: &RunAdmission,
    flow: &LiveFlow,
    state: &PollState,
    polled: &Polled,
) -> Result<Vec<String>> {
    let Polled {
        items,
        baseline,
        cursor,
        next_poll_at,
    } = polled;
    let (baseline, next_poll_at) = (*baseline, *next_poll_at);
    let now = now_ms();
    let mut tx = db.begin().await?;
    let held = Sql::new(
        "UPDATE poll_state SET cursor = ?, failures = 0, last_error = NULL, last_polled_at = ?, \
         last_succeeded_at = ?, next_poll_at = ?, lease_until = NULL, lease_token = NULL \
         WHERE flow_id = ? AND lease_token = ? AND basis = ?",
    )
    .arg(cursor.to_string())
    .arg(now)
    .arg(now)
    .arg(next_poll_at)
    .arg(flow.id.as_str())
    .arg(state.token.as_str())
    .arg(state.basis.as_str())
    .execute(&mut tx)
    .await?;
    if held == 0 {
        return Ok(Vec::new());
    }
    let mut started = Vec::new();
    for item in items {
        let fresh = Sql::new(
            "INSERT INTO poll_seen (flow_id, item_key, seen_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
        )
        .arg(flow.id.as_str())
        .arg(state.item_key(&item.key))
        .arg(now)
        .execute(&mut tx)
        .await?;
        if fresh == 1 && !baseline {
            let source = format!("poll:{}", state.item_key(&item.key));
            let wait = admission.book(&flow.org_id).await?;
            let wait = wait.max(runs::throttled(&mut tx, flow).await?);
            let lineage = runs::Lineage::default();
            let new_run = runs::NewRun {
                flow,
                source_key: &source,
                trigger: &item.record,
                lineage: &lineage,
                test: None,
            };
            let run = runs::start_at(&mut tx, &new_run, wait).await?;
            // One booked for later is taken by the sweeper when its time comes.
            if wait.is_none() {
                started.extend(run);
            }
        }
    }
    tx.commit().await?;
    Ok(started)
}

/// Records a failed poll: the error, one more failure, when to try again; the lease is let go.
pub async fn failed(db: &Db, state: &PollState, error: &str, next_poll_at: Millis) -> Result<()> {
    db.write_count(
        &Sql::new(
            "UPDATE poll_state SET failures = failures + 1, last_error = ?, last_polled_at = ?, \
             next_poll_at = ?, lease_until = NULL, lease_token = NULL WHERE flow_id = ? AND lease_token = ?",
        )
        .arg(error)
        .arg(now_ms())
        .arg(next_poll_at)
        .arg(state.flow_id.as_str())
        .arg(state.token.as_str()),
    )
    .await
    .map(drop)
}

/// Forgets seen items no poll can ask about again: those of a flow deleted, and those of an
/// earlier basis (a changed trigger or a new enabling reads from scratch under a new one).
pub async fn purge_stale_seen(db: &Db) -> Result<u64> {
    Sql::new(
        "DELETE FROM poll_seen WHERE NOT EXISTS (SELECT 1 FROM poll_state s \
         JOIN flows f ON f.id = s.flow_id \
         WHERE s.flow_id = poll_seen.flow_id AND f.deleted_at IS NULL \
         AND substr(poll_seen.item_key, 1, 12) = substr(s.basis, 1, 12))",
    )
    .execute(db)
    .await
}
