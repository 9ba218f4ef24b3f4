//! Runs: one execution of a flow, started once per (flow, source) — an event, an inbound
//! webhook call, a test. A run and every step's input, output, error, attempts and timings are
//! stored as it goes, so a crash loses nothing: a worker claims a due run with a lease, and a
//! run whose lease ran out is claimed again and resumes at its first unfinished step.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::access::auth::{Actor, Permission};
use crate::automation::flows::LiveFlow;
use crate::error::{Error, Result};
use crate::store::clock::{Millis, format_ms, format_opt, now_ms};
use crate::store::db::{Db, QueryTarget, Sql, row};
use crate::store::ids;
use crate::store::json;
use crate::store::list::{self, FilterKind, ListParams, ListSpec, Page};

mod status;

pub use status::{RunStatus, StepStatus};

pub const NOUN: &str = "run";

pub const LIST: ListSpec = ListSpec {
    table: "runs",
    sorts: &[("status", "status")],
    filters: &[
        ("flowId", "flow_id", FilterKind::Text),
        ("status", "status", FilterKind::Text),
    ],
    search: None,
    soft_delete: false,
};

/// One step of a run as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub key: String,
    pub action: String,
    /// `pending`, `succeeded` or `failed`.
    #[schema(value_type = String)]
    pub status: StepStatus,
    /// The rendered input, as validated and sent.
    #[schema(value_type = Option<Object>)]
    pub input: Option<Value>,
    #[schema(value_type = Option<Object>)]
    pub output: Option<Value>,
    /// `{code, message, status?, details?}` of the last failure.
    #[schema(value_type = Option<Object>)]
    pub error: Option<Value>,
    pub attempts: u32,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// `run_…`
    pub id: String,
    pub flow_id: String,
    /// `queued`, `running`, `succeeded` or `failed`.
    #[schema(value_type = String)]
    pub status: RunStatus,
    /// The record or payload that started it.
    #[schema(value_type = Object)]
    pub trigger: Value,
    pub steps: Vec<StepRecord>,
    /// Why it failed.
    pub error: Option<String>,
    /// When a retry is due, while queued.
    pub next_attempt_at: Option<String>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub updated_at: String,
}

fn steps_of(r: &row::Row) -> Result<Vec<StepRecord>> {
    let mut steps: Vec<StepRecord> = serde_json::from_str(&row::get_str(r, "steps")?)
        .map_err(|e| Error::Internal(format!("stored run steps: {e}")))?;
    steps.iter_mut().for_each(StepRecord::clip);
    Ok(steps)
}

fn trigger_of(r: &row::Row) -> Result<Value> {
    let mut trigger = serde_json::from_str(&row::get_str(r, "trigger")?)
        .map_err(|e| Error::Internal(format!("stored run trigger: {e}")))?;
    // Runs stored before payloads were limited may nest deeper; answers never do.
    json::clip(&mut trigger);
    Ok(trigger)
}

impl StepRecord {
    /// Cuts what came from outside (another service's answer) to [`json::MAX_DEPTH`] levels.
    fn clip(&mut self) {
        for value in [&mut self.input, &mut self.output, &mut self.error]
            .into_iter()
            .flatten()
        {
            json::clip(value);
        }
    }
}

pub(crate) fn from_row(r: &row::Row) -> Result<Run> {
    let status: RunStatus = row::get_str(r, "status")?.parse()?;
    Ok(Run {
        id: row::get_str(r, "id")?,
        flow_id: row::get_str(r, "flow_id")?,
        next_attempt_at: (status == RunStatus::Queued)
            .then(|| row::get_i64(r, "next_attempt_at").map(format_ms))
            .transpose()?,
        status,
        trigger: trigger_of(r)?,
        steps: steps_of(r)?,
        error: row::get_opt_str(r, "error")?,
        created_at: format_ms(row::get_i64(r, "created_at")?),
        started_at: format_opt(row::get_opt_i64(r, "started_at")?),
        finished_at: format_opt(row::get_opt_i64(r, "finished_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

pub async fn list(db: &Db, actor: &Actor, params: &ListParams) -> Result<Page<Run>> {
    // Admins only: a run holds its trigger record (an invoice, say) and its steps' inputs.
    actor.require(Permission::ReadFlows)?;
    list::list(db, actor.org_id(), &LIST, params, from_row).await
}

pub async fn get(db: &Db, actor: &Actor, id: &str) -> Result<Run> {
    actor.require(Permission::ReadFlows)?;
    let row = Sql::new("SELECT * FROM runs WHERE id = ? AND org_id = ?")
        .arg(id)
        .arg(actor.org_id())
        .fetch_optional(db)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    from_row(&row)
}

/// The steps of a new run: every step of the flow, pending.
fn pending_steps(flow: &LiveFlow) -> Vec<StepRecord> {
    flow.steps
        .as_array()
        .into_iter()
        .flatten()
        .map(|s| StepRecord {
            key: s["key"].as_str().unwrap_or_default().to_owned(),
            action: s["action"].as_str().unwrap_or_default().to_owned(),
            status: StepStatus::Pending,
            input: None,
            output: None,
            error: None,
            attempts: 0,
            started_at: None,
            finished_at: None,
        })
        .collect()
}

/// How long a queued run waits for the job that was queued for it before the sweeper runs it
/// itself (the job may be late, or lost with a crashed process).
pub const REQUEUE_AFTER_MS: i64 = 5_000;

/// Where a new run stands in a chain of flows: how deep (0 when a person's change, a call or a
/// schedule started it) and what the chain began with (an event id; none when the run itself
/// is the start of its chain).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Lineage {
    pub depth: i64,
    pub root: Option<String>,
}

/// What a new run is: the flow it runs, the source that started it (unique per flow: a source
/// starts one run at most), the trigger data it begins with and its place in a chain of flows.
#[derive(Debug, Clone, Copy)]
pub struct NewRun<'a> {
    pub flow: &'a LiveFlow,
    pub source_key: &'a str,
    pub trigger: &'a Value,
    pub lineage: &'a Lineage,
}

/// Queues `run`, unless its source already started one. Returns the new run's id; queue a job
/// for it.
pub async fn start(conn: impl QueryTarget, run: &NewRun<'_>) -> Result<Option<String>> {
    start_at(conn, run, None).await
}

/// [`start`] for a run that may not begin before `not_before` when one is given (its
/// organization's run budget is spent until then): it waits in the queue, and the sweeper takes
/// it when its time comes.
pub async fn start_at(
    conn: impl QueryTarget,
    run: &NewRun<'_>,
    not_before: Option<Millis>,
) -> Result<Option<String>> {
    let begin = not_before.map_or(Begin::Now, Begin::Later);
    let (sql, run) = insertion(run, begin)?;
    Ok((sql.execute(conn).await? == 1).then_some(run.id))
}

/// [`start`] for the process that executes the run at once: the run is created already
/// claimed by it for `lease_ms` (no separate claim write). Should the process die, the lease
/// runs out and the sweeper takes the run.
pub async fn start_claimed(
    conn: impl QueryTarget,
    run: &NewRun<'_>,
    lease_ms: i64,
) -> Result<Option<ClaimedRun>> {
    let (sql, run) = insertion(run, Begin::Claimed(lease_ms))?;
    Ok((sql.execute(conn).await? == 1).then_some(run))
}

/// [`start_claimed`] as a write of its own (committed with others waiting at the same time).
pub async fn start_claimed_now(
    db: &Db,
    run: &NewRun<'_>,
    lease_ms: i64,
) -> Result<Option<ClaimedRun>> {
    let (sql, run) = insertion(run, Begin::Claimed(lease_ms))?;
    Ok((db.write_count(&sql).await? == 1).then_some(run))
}

/// How a new run begins: queued now, queued until an instant, or claimed by its creator for a
/// lease.
#[derive(Debug, Clone, Copy)]
enum Begin {
    Now,
    Later(Millis),
    Claimed(i64),
}

/// The statement that creates a run (nothing when the source already started one), and the
/// run it creates.
fn insertion(new: &NewRun<'_>, begin: Begin) -> Result<(Sql, ClaimedRun)> {
    let NewRun {
        flow,
        source_key,
        trigger,
        lineage,
    } = *new;
    let id = ids::new_id(ids::RUN);
    let now = now_ms();
    let steps = pending_steps(flow);
    let (status, next_attempt_at, lease_until, token) = match begin {
        Begin::Claimed(lease_ms) => (
            RunStatus::Running,
            now,
            Some(now + lease_ms),
            Some(ulid::Ulid::generate().to_string()),
        ),
        // Queued now: not swept before the job or lane had its chance.
        Begin::Now => (RunStatus::Queued, now, Some(now + REQUEUE_AFTER_MS), None),
        // Queued for later: the sweeper takes it when its time comes.
        Begin::Later(at) => (RunStatus::Queued, at, None, None),
    };
    let root = lineage.root.clone().unwrap_or_else(|| id.clone());
    // A polled item comes from outside: kept to the depth everything else is.
    let mut trigger = trigger.clone();
    json::clip(&mut trigger);
    let sql = Sql::new(
        "INSERT INTO runs (id, org_id, flow_id, source_key, status, trigger, steps, depth, root_id, \
         next_attempt_at, lease_until, lease_token, created_at, started_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (flow_id, source_key) DO NOTHING",
    )
    .arg(&id)
    .arg(flow.org_id.as_str())
    .arg(flow.id.as_str())
    .arg(source_key)
    .arg(status.as_str())
    .arg(trigger.to_string())
    .arg(steps_json(&steps)?)
    .arg(lineage.depth)
    .arg(root.as_str())
    .arg(next_attempt_at)
    .arg(lease_until)
    .arg(token.clone())
    .arg(now)
    .arg(token.as_ref().map(|_| now))
    .arg(now);
    let run = ClaimedRun {
        id,
        token: token.unwrap_or_default(),
        flow_id: flow.id.clone(),
        trigger,
        steps,
        depth: lineage.depth,
        root,
        takeovers: 0,
    };
    Ok((sql, run))
}

/// A run a worker holds: its flow, trigger and steps so far.
#[derive(Debug, Clone)]
pub struct ClaimedRun {
    pub id: String,
    /// This claim: every later write of the holder names it, so a worker whose run was taken
    /// over (its lease ran out) writes nothing more.
    pub token: String,
    pub flow_id: String,
    pub trigger: Value,
    pub steps: Vec<StepRecord>,
    /// How deep in a chain of flows: 0 when a person's change started it.
    pub depth: i64,
    /// What its chain began with: an event id, or this run's own id.
    pub root: String,
    /// How often its lease ran out since it last made progress (its worker stopped).
    pub takeovers: i64,
}

/// Lease expiries without progress after which a run is poisoned: it stopped its worker (a
/// crash, a kill) that often, so it is failed instead of being taken again.
pub const POISONED_AFTER: i64 = 2;

/// Takes a run for `lease_ms` if it is due (queued and its time has come) or abandoned
/// (running with an expired lease). None when another worker has it or it is finished.
pub async fn claim(db: &Db, id: &str, lease_ms: i64) -> Result<Option<ClaimedRun>> {
    let now = now_ms();
    let token = ulid::Ulid::generate().to_string();
    let taken = db
        .write_count(
            &Sql::new(
                "UPDATE runs SET status = 'running', lease_until = ?, lease_token = ?, \
                 takeovers = takeovers + CASE WHEN status = 'running' THEN 1 ELSE 0 END, \
                 started_at = COALESCE(started_at, ?), updated_at = ? WHERE id = ? \
                 AND ((status = 'queued' AND next_attempt_at <= ?) OR (status = 'running' AND lease_until < ?))",
            )
            .arg(now + lease_ms)
            .arg(token.as_str())
            .arg(now)
            .arg(now)
            .arg(id)
            .arg(now)
            .arg(now),
        )
        .await?;
    if taken == 0 {
        return Ok(None);
    }
    let row = Sql::new("SELECT * FROM runs WHERE id = ?")
        .arg(id)
        .fetch_one(db)
        .await?;
    Ok(Some(ClaimedRun {
        id: id.to_owned(),
        token,
        flow_id: row::get_str(&row, "flow_id")?,
        trigger: trigger_of(&row)?,
        steps: steps_of(&row)?,
        depth: row::get_i64(&row, "depth")?,
        root: row::get_opt_str(&row, "root_id")?.unwrap_or_else(|| id.to_owned()),
        takeovers: row::get_i64(&row, "takeovers")?,
    }))
}

/// The steps as stored: values from outside are cut to [`json::MAX_DEPTH`] levels, so that
/// every stored run can be read back (the parser stops at 128) and shown.
fn steps_json(steps: &[StepRecord]) -> Result<String> {
    let mut kept = steps.to_vec();
    kept.iter_mut().for_each(StepRecord::clip);
    serde_json::to_string(&kept).map_err(|e| Error::Internal(e.to_string()))
}

/// Saves the steps after one of them finished, extending the lease. False when the run is no
/// longer this claim's: the caller stops.
pub async fn save_steps(
    db: &Db,
    run: &ClaimedRun,
    steps: &[StepRecord],
    lease_ms: i64,
) -> Result<bool> {
    let now = now_ms();
    db.write_count(
        &Sql::new(
            "UPDATE runs SET steps = ?, lease_until = ?, takeovers = 0, updated_at = ? \
             WHERE id = ? AND status = 'running' AND lease_token = ?",
        )
        .arg(steps_json(steps)?)
        .arg(now + lease_ms)
        .arg(now)
        .arg(run.id.as_str())
        .arg(run.token.as_str()),
    )
    .await
    .map(|n| n == 1)
}

/// Extends the lease of a run this claim holds; false when it no longer does.
pub async fn renew(db: &Db, run: &ClaimedRun, lease_ms: i64) -> Result<bool> {
    db.write_count(
        &Sql::new(
            "UPDATE runs SET lease_until = ? WHERE id = ? AND status = 'running' AND lease_token = ?",
        )
        .arg(now_ms() + lease_ms)
        .arg(run.id.as_str())
        .arg(run.token.as_str()),
    )
    .await
    .map(|n| n == 1)
}

/// Puts a run back in the queue until `at` (a retryable failure), if this claim still holds it.
pub async fn retry_at(db: &Db, run: &ClaimedRun, steps: &[StepRecord], at: Millis) -> Result<()> {
    db.write_count(
        &Sql::new(
            "UPDATE runs SET status = 'queued', steps = ?, next_attempt_at = ?, lease_until = NULL, \
             lease_token = NULL, takeovers = 0, updated_at = ? WHERE id = ? AND lease_token = ?",
        )
        .arg(steps_json(steps)?)
        .arg(at)
        .arg(now_ms())
        .arg(run.id.as_str())
        .arg(run.token.as_str()),
    )
    .await
    .map(drop)
}

/// Ends a run: `succeeded`, or `failed` with the reason, if this claim still holds it.
pub async fn finish(
    db: &Db,
    run: &ClaimedRun,
    steps: &[StepRecord],
    error: Option<&str>,
) -> Result<()> {
    let now = now_ms();
    db.write_count(
        &Sql::new(
            "UPDATE runs SET status = ?, steps = ?, error = ?, lease_until = NULL, lease_token = NULL, \
             finished_at = ?, updated_at = ? WHERE id = ? AND lease_token = ?",
        )
        .arg(if error.is_some() { RunStatus::Failed } else { RunStatus::Succeeded }.as_str())
        .arg(steps_json(steps)?)
        .arg(error)
        .arg(now)
        .arg(now)
        .arg(run.id.as_str())
        .arg(run.token.as_str()),
    )
    .await
    .map(drop)
}

/// Runs to execute now: queued ones whose time has come and that no job was queued for lately,
/// and running ones whose worker vanished (their lease ran out). Each is marked so that the
/// next sweep leaves it alone meanwhile.
pub async fn take_due(db: &Db, limit: i64) -> Result<Vec<String>> {
    let now = now_ms();
    let due = "((status = 'queued' AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?)) \
               OR (status = 'running' AND lease_until < ?))";
    // A read first: most sweeps find nothing, and a read does not queue behind the writer.
    let mut any = Sql::new("SELECT id FROM runs WHERE ");
    any.push(due).bind(now).bind(now).bind(now);
    any.push(" LIMIT 1");
    if any.fetch_optional(db).await?.is_none() {
        return Ok(Vec::new());
    }
    let mut sql = Sql::new(
        "UPDATE runs SET status = 'queued', next_attempt_at = CASE WHEN status = 'running' THEN ? ELSE next_attempt_at END, \
         takeovers = takeovers + CASE WHEN status = 'running' THEN 1 ELSE 0 END, \
         lease_until = ?, lease_token = NULL WHERE id IN (SELECT id FROM runs WHERE ",
    );
    sql.bind(now).bind(now + REQUEUE_AFTER_MS);
    sql.push(due).bind(now).bind(now).bind(now);
    sql.push(" ORDER BY next_attempt_at LIMIT ?").bind(limit);
    if db.backend() == crate::Backend::Postgres {
        // Rows another sweeper is taking are skipped, not waited for and taken again.
        sql.push(" FOR UPDATE SKIP LOCKED");
    }
    // Checked again on the row as it is now (Postgres re-reads it after a wait).
    sql.push(") AND ").push(due).bind(now).bind(now).bind(now);
    sql.push(" RETURNING id");
    db.write(&sql)
        .await?
        .iter()
        .map(|r| row::get_str(r, "id"))
        .collect()
}

/// `POST /runs/{id}/replay`: a failed run starts again from its first failed step (the steps
/// before it keep their outputs).
pub async fn replay(db: &Db, actor: &Actor, id: &str) -> Result<Run> {
    actor.require(Permission::ManageFlows)?;
    let run = get(db, actor, id).await?;
    if run.status != RunStatus::Failed {
        return Err(Error::Conflict {
            code: "invalid_state",
            message: format!("a {} run cannot be replayed; only a failed one", run.status),
        });
    }
    let mut steps = run.steps.clone();
    for step in steps
        .iter_mut()
        .filter(|s| s.status != StepStatus::Succeeded)
    {
        step.status = StepStatus::Pending;
        step.attempts = 0;
        step.error = None;
        step.finished_at = None;
    }
    let now = now_ms();
    db.write_count(
        &Sql::new(
            "UPDATE runs SET status = 'queued', steps = ?, error = NULL, next_attempt_at = ?, lease_until = NULL, takeovers = 0, \
             finished_at = NULL, updated_at = ? WHERE id = ? AND status = 'failed'",
        )
        .arg(steps_json(&steps)?)
        .arg(now)
        .arg(now)
        .arg(id),
    )
    .await?;
    get(db, actor, id).await
}

/// How many runs a chain that began with `root` (an event or a run) has started so far.
pub async fn count_of_root(conn: impl QueryTarget, root: &str) -> Result<i64> {
    let row = Sql::new("SELECT COUNT(*) AS n FROM runs WHERE root_id = ?")
        .arg(root)
        .fetch_one(conn)
        .await?;
    row::get_i64(&row, "n")
}

/// Finished runs deleted per statement, so that a purge never holds a long lock.
const PURGE_BATCH: i64 = 1000;

/// Deletes runs that finished (succeeded or failed) more than `retention_ms` ago, in batches, at
/// most `max_batches` of them per call. Queued and running runs are never touched.
pub async fn purge_finished(db: &Db, retention_ms: Millis, max_batches: u32) -> Result<u64> {
    let cutoff = now_ms() - retention_ms;
    let mut purged = 0;
    for _ in 0..max_batches {
        let deleted = Sql::new(
            "DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE status IN ('succeeded', 'failed') \
             AND finished_at < ? LIMIT ?)",
        )
        .arg(cutoff)
        .arg(PURGE_BATCH)
        .execute(db)
        .await?;
        purged += deleted;
        if (deleted as i64) < PURGE_BATCH {
            break;
        }
    }
    Ok(purged)
}
