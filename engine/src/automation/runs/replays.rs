//! Replaying and cancelling runs. Any finished run can start again: from its failed step (what
//! succeeded keeps its output), from the start, or from any step path; on the version it ran
//! or on the flow's live one. Many at once by filter (up to [`MAX_BULK_REPLAY`]), committed
//! before the answer and executed in the background. A queued, waiting or running run can be
//! cancelled: a worker holding it stops at its next save, before its next step.

use serde::Deserialize;

use super::{
    REQUEUE_AFTER_MS, Run, RunStatus, StepRecord, StepStatus, get, steps_json, with_saved,
};
use crate::access::auth::{Actor, Permission};
use crate::automation::run_admission::RunAdmission;
use crate::error::{Error, Result};
use crate::store::clock::{Millis, now_ms, parse_instant};
use crate::store::db::{Db, Sql, Tx, row};

/// Most runs one bulk replay takes.
pub const MAX_BULK_REPLAY: usize = 5_000;

/// What a bulk replay queued: how many runs, and those that may begin now (for the caller to
/// hand to workers; the others wait in the queue for the run budget).
#[derive(Debug, Clone, Default)]
pub struct Replayed {
    pub count: usize,
    pub now: Vec<String>,
}

/// Which version a replay executes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum ReplayVersion {
    /// The version the run started with.
    #[default]
    Original,
    /// The flow's live version now.
    Live,
}

/// The body of `POST /runs/{id}/replay` (optional).
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ReplayInput {
    /// `failed` (the default for a failed run: its failed step again, what succeeded keeps its
    /// output), `start` (the default otherwise), or a step path (`check.then.project`,
    /// `each[3].task`): that step and everything after it again.
    pub from: Option<String>,
    pub version: Option<ReplayVersion>,
}

/// The body of `POST /runs/replay`.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BulkReplayInput {
    pub flow_id: String,
    /// `failed` (default), `succeeded`, `filtered` or `cancelled`.
    pub status: Option<String>,
    /// Runs created at or after this instant (RFC 3339 or a date).
    pub created_from: Option<String>,
    pub created_to: Option<String>,
    /// Only these runs (of the flow, and finished).
    pub ids: Option<Vec<String>>,
    /// As for one run; `failed` runs default to `failed`, others to `start`.
    pub from: Option<String>,
    pub version: Option<ReplayVersion>,
}

fn conflict(message: String) -> Error {
    Error::Conflict {
        code: "invalid_state",
        message,
    }
}

/// The records a run keeps when it starts again `from`; a step path that is not among them is
/// refused.
fn kept_records(
    status: RunStatus,
    steps: &[StepRecord],
    from: Option<&str>,
) -> Result<Vec<StepRecord>> {
    let from = from.unwrap_or(if status == RunStatus::Failed {
        "failed"
    } else {
        "start"
    });
    match from {
        "start" => Ok(Vec::new()),
        // What failed is executed again; what succeeded (or failed and was carried past)
        // keeps its output, and decisions already taken stay taken.
        "failed" => {
            if !steps.iter().any(|s| s.status == StepStatus::Failed) && status != RunStatus::Failed
            {
                return Err(Error::validation(
                    "from",
                    "invalid",
                    "the run has no failed step; replay it from start or from a step path",
                ));
            }
            Ok(steps
                .iter()
                .filter(|s| !matches!(s.status, StepStatus::Failed | StepStatus::Pending))
                .cloned()
                .collect())
        }
        path => {
            let within = |p: &str| {
                p == path
                    || p.strip_prefix(path)
                        .is_some_and(|rest| rest.starts_with(['.', '[']))
            };
            let Some(at) = steps.iter().position(|s| within(&s.path)) else {
                return Err(Error::validation(
                    "from",
                    "not_found",
                    format!(
                        "the run has no step at {path}; give a path of its steps, start or failed"
                    ),
                ));
            };
            let mut kept = steps[..at].to_vec();
            // A loop that holds the step runs again from there: its items before keep theirs.
            for record in &mut kept {
                let holds = path
                    .strip_prefix(record.path.as_str())
                    .is_some_and(|rest| rest.starts_with(['.', '[']));
                if holds && record.node == "forEach" {
                    record.status = StepStatus::Pending;
                    record.output = None;
                    record.finished_at = None;
                }
            }
            Ok(kept)
        }
    }
}

/// How a run starts again: with the records it keeps, on a version (none: as it was), not
/// before an instant (none: now).
struct Again<'a> {
    steps: &'a [StepRecord],
    version: Option<i64>,
    not_before: Option<Millis>,
}

/// Queues a finished run again with `steps` kept, on `version` (none: as it was). False when
/// it was no longer `status` (another replay or a cancel came first).
async fn requeue(tx: &mut Tx, id: &str, status: RunStatus, again: Again<'_>) -> Result<bool> {
    let Again {
        steps,
        version,
        not_before,
    } = again;
    let now = now_ms();
    let changed = Sql::new(
        "UPDATE runs SET status = 'queued', steps = ?, error = NULL, next_attempt_at = ?, lease_until = ?, lease_token = NULL, \
         takeovers = 0, announce = 0, finished_at = NULL, flow_version = COALESCE(?, flow_version), updated_at = ? \
         WHERE id = ? AND status = ?",
    )
    .arg(steps_json(steps)?)
    .arg(not_before.unwrap_or(now))
    // Booked for later, it is the sweeper's when its time comes.
    .arg(not_before.is_none().then_some(now + REQUEUE_AFTER_MS))
    .arg(version)
    .arg(now)
    .arg(id)
    .arg(status.as_str())
    .execute(&mut *tx)
    .await?;
    Ok(changed == 1)
}

/// The live version of a flow, for a replay on it.
async fn live_version(tx: &mut Tx, flow_id: &str) -> Result<i64> {
    let flow = Sql::new("SELECT version FROM flows WHERE id = ? AND deleted_at IS NULL")
        .arg(flow_id)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound(crate::automation::flows::NOUN))?;
    row::get_i64(&flow, "version")
}

/// `POST /runs/{id}/replay`: queues a finished run again; the caller hands it to a worker.
pub async fn replay(db: &Db, actor: &Actor, id: &str, input: &ReplayInput) -> Result<Run> {
    actor.require(Permission::ManageFlows)?;
    let run = get(db, actor, id).await?;
    if !run.status.is_finished() {
        return Err(conflict(format!(
            "a {} run cannot be replayed; only a finished one (cancel it first)",
            run.status
        )));
    }
    let steps = kept_records(run.status, &run.steps, input.from.as_deref())?;
    let mut tx = db.begin().await?;
    let version = match input.version.unwrap_or_default() {
        ReplayVersion::Original => None,
        ReplayVersion::Live => Some(live_version(&mut tx, &run.flow_id).await?),
    };
    let again = Again {
        steps: &steps,
        version,
        not_before: None,
    };
    if !requeue(&mut tx, id, run.status, again).await? {
        return Err(conflict("the run changed meanwhile; read it again".into()));
    }
    tx.commit().await?;
    get(db, actor, id).await
}

/// `POST /runs/replay`: queues every finished run of a flow that matches, at most
/// [`MAX_BULK_REPLAY`]; answers their ids (committed) for the caller to hand to workers.
pub async fn replay_many(
    db: &Db,
    admission: &RunAdmission,
    actor: &Actor,
    input: &BulkReplayInput,
) -> Result<Replayed> {
    actor.require(Permission::ManageFlows)?;
    let flow = crate::automation::flows::live(db, &input.flow_id)
        .await?
        .filter(|f| f.org_id == actor.org_id())
        .ok_or(Error::NotFound(crate::automation::flows::NOUN))?;
    let status: RunStatus = match input.status.as_deref() {
        None => RunStatus::Failed,
        Some(text) => text
            .parse()
            .ok()
            .filter(|s: &RunStatus| s.is_finished())
            .ok_or_else(|| {
                Error::validation(
                    "status",
                    "invalid",
                    "status is one of failed, succeeded, filtered, cancelled",
                )
            })?,
    };
    let instant = |field: &str, value: &Option<String>| -> Result<Option<i64>> {
        value
            .as_deref()
            .map(|v| {
                parse_instant(v).ok_or_else(|| {
                    Error::validation(
                        field,
                        "invalid",
                        format!("{field} must be an RFC 3339 timestamp or a date"),
                    )
                })
            })
            .transpose()
    };
    let from = instant("createdFrom", &input.created_from)?;
    let to = instant("createdTo", &input.created_to)?;
    // Tests are someone's experiments: a bulk replay performs live runs only.
    let mut sql = Sql::new(
        "SELECT id, steps FROM runs WHERE org_id = ? AND flow_id = ? AND status = ? AND mode = 'live'",
    );
    sql.bind(actor.org_id())
        .bind(input.flow_id.as_str())
        .bind(status.as_str());
    if let Some(from) = from {
        sql.push(" AND created_at >= ?").bind(from);
    }
    if let Some(to) = to {
        sql.push(" AND created_at <= ?").bind(to);
    }
    if let Some(ids) = &input.ids {
        if ids.is_empty() || ids.len() > MAX_BULK_REPLAY {
            return Err(Error::validation(
                "ids",
                "invalid",
                format!("ids holds 1 to {MAX_BULK_REPLAY} run ids"),
            ));
        }
        sql.push(" AND id IN (");
        for (i, id) in ids.iter().enumerate() {
            sql.push(if i == 0 { "?" } else { ", ?" }).bind(id.as_str());
        }
        sql.push(")");
    }
    sql.push(" ORDER BY created_at, id LIMIT ?")
        .bind(MAX_BULK_REPLAY as i64 + 1);
    let rows = sql.fetch_all(db).await?;
    if rows.len() > MAX_BULK_REPLAY {
        return Err(Error::validation(
            "",
            "too_many",
            format!(
                "more than {MAX_BULK_REPLAY} runs match; narrow the filter (createdFrom, createdTo, ids)"
            ),
        ));
    }
    let mut replayed = Vec::with_capacity(rows.len());
    for chunk in rows.chunks(250) {
        let mut tx = db.begin().await?;
        let version = match input.version.unwrap_or_default() {
            ReplayVersion::Original => None,
            ReplayVersion::Live => Some(live_version(&mut tx, &input.flow_id).await?),
        };
        for r in chunk {
            let id = row::get_str(r, "id")?;
            let steps = super::parse_steps(&row::get_str(r, "steps")?)?;
            // A step path this run did not reach: it starts over.
            let kept = kept_records(status, &steps, input.from.as_deref()).unwrap_or_default();
            // Held to the organization's run budget: beyond it a run waits in the queue.
            let wait = admission.book(actor.org_id()).await?;
            let wait = wait.max(super::throttled(&mut tx, &flow).await?);
            let again = Again {
                steps: &kept,
                version,
                not_before: wait,
            };
            if requeue(&mut tx, &id, status, again).await? {
                replayed.push((id, wait.is_none()));
            } else {
                admission.refund(actor.org_id());
            }
        }
        tx.commit().await?;
    }
    Ok(Replayed {
        count: replayed.len(),
        now: replayed
            .into_iter()
            .filter_map(|(id, now)| now.then_some(id))
            .collect(),
    })
}

/// `POST /runs/{id}/cancel`: a queued, waiting or running run is cancelled now; a worker that
/// holds it stops at its next save, before its next step.
pub async fn cancel(db: &Db, actor: &Actor, id: &str) -> Result<Run> {
    actor.require(Permission::ManageFlows)?;
    let run = get(db, actor, id).await?;
    if run.status.is_finished() {
        return Err(conflict(format!(
            "a {} run cannot be cancelled; it is finished",
            run.status
        )));
    }
    let now = now_ms();
    let mut tx = db.begin().await?;
    // What a worker saved of a running run goes into its row with it.
    // Locked until the cancel commits (on Postgres): a worker's save cannot slip in between.
    let mut read = Sql::new("SELECT steps FROM runs WHERE id = ?");
    read.bind(id);
    if tx.backend() == crate::store::db::Backend::Postgres {
        read.push(" FOR UPDATE");
    }
    let stored = read.fetch_one(&mut tx).await?;
    let (steps, _) = with_saved(
        &mut tx,
        id,
        super::parse_steps(&row::get_str(&stored, "steps")?)?,
    )
    .await?;
    let message = format!("cancelled by {}", actor.user_id);
    let changed = Sql::new(
        "UPDATE runs SET status = 'cancelled', steps = ?, error = ?, lease_until = NULL, lease_token = NULL, \
         finished_at = ?, updated_at = ? WHERE id = ? AND status IN ('queued', 'waiting', 'running')",
    )
    .arg(steps_json(&steps)?)
    .arg(message)
    .arg(now)
    .arg(now)
    .arg(id)
    .execute(&mut tx)
    .await?;
    if changed == 0 {
        return Err(conflict("the run finished meanwhile".into()));
    }
    Sql::new("DELETE FROM run_steps WHERE run_id = ?")
        .arg(id)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    get(db, actor, id).await
}
