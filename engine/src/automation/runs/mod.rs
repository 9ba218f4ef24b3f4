//! Runs: one execution of a flow, started once per (flow, source) — an event, an inbound
//! webhook call, a test. A run and every step's input, output, error, attempts and timings are
//! stored as it goes, so a crash loses nothing: a worker claims a due run with a lease, and a
//! run whose lease ran out is claimed again and resumes at its first unfinished step.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::auth::{Actor, Permission};
use crate::automation::flows::LiveFlow;
use crate::error::{Error, Result};
use crate::store::clock::{Millis, format_ms, format_opt, now_ms};
use crate::store::db::{Db, QueryTarget, Sql, row};
use crate::store::ids;
use crate::store::json;
use crate::store::list::{self, FilterKind, ListParams, ListSpec, Page};

pub mod outcomes;
mod replays;
mod status;

pub use replays::*;

pub use status::{RunStatus, StepStatus};

pub const NOUN: &str = "run";

pub const LIST: ListSpec = ListSpec {
    table: "runs",
    sorts: &[("status", "status")],
    filters: &[
        ("flowId", "flow_id", FilterKind::Text),
        ("status", "status", FilterKind::Text),
        ("mode", "mode", FilterKind::Text),
        ("eventId", "source_key", FilterKind::Text),
        ("resourceId", "resource_id", FilterKind::Text),
        ("createdFrom", "created_at", FilterKind::Since),
        ("createdTo", "created_at", FilterKind::Until),
    ],
    search: None,
    soft_delete: false,
};

/// One executed node of a run as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct StepRecord {
    pub key: String,
    /// Where in the flow, and for which loop item: `project`, `check.then.project`,
    /// `each[3].task`, `find.onError.notify`.
    #[serde(default)]
    pub path: String,
    /// The node's type: `action`, `filter`, `if`, `switch`, `forEach`, `set`, `delay`, `stop`.
    #[serde(rename = "type", default = "action_type")]
    pub node: String,
    /// The action manifest, for an action.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub action: String,
    /// `pending`, `succeeded`, `failed`, `skipped` or `continued` (failed, and `onError` went
    /// on).
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

/// Whether a run is the flow at work or someone trying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub enum RunMode {
    Live,
    Test,
}

impl RunMode {
    pub fn as_str(self) -> &'static str {
        match self {
            RunMode::Live => "live",
            RunMode::Test => "test",
        }
    }
}

/// How a test run runs: an action whose step key is pinned is not performed (its output is the
/// pinned one); a dry run performs no action at all (the others give their manifest's sample)
/// and waits at no delay.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TestOptions {
    #[serde(default)]
    pub dry_run: bool,
    /// Outputs by step key, used instead of performing those steps' actions.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub pinned: serde_json::Map<String, Value>,
    /// Steps to run instead of the version's (a draft under test, or the one step tested).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub steps: Option<Value>,
    /// What earlier steps gave, for a step tested alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<StepContext>,
}

/// What a step tested alone sees besides `trigger`: earlier steps' outputs by key and, for a
/// step inside a loop, the loop's item and index.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepContext {
    /// The record the trigger gives; the flow's latest sample when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub trigger: Option<Value>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub steps: serde_json::Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub item: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<usize>,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Run {
    /// `run_…`
    pub id: String,
    pub flow_id: String,
    /// `queued`, `running`, `waiting`, `succeeded`, `failed`, `filtered` or `cancelled`.
    #[schema(value_type = String)]
    pub status: RunStatus,
    /// What started it: `{kind: event, eventId}`, `{kind: webhook, deliveryId}`, `{kind: poll,
    /// itemId}`, `{kind: schedule, firedAt}` or `{kind: test}`.
    #[schema(value_type = Object)]
    pub source: Value,
    /// The version of the flow it executes (null for runs from before versions).
    pub flow_version: Option<i64>,
    /// `live`, or `test` when started to try the flow.
    pub mode: RunMode,
    /// Whether it performed no action (a test's dry run).
    pub dry_run: bool,
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

fn action_type() -> String {
    "action".into()
}

fn parse_steps(text: &str) -> Result<Vec<StepRecord>> {
    let mut steps: Vec<StepRecord> = serde_json::from_str(text)
        .map_err(|e| Error::Internal(format!("stored run steps: {e}")))?;
    for step in &mut steps {
        step.clip();
        // Records from before paths existed: a top-level step's path is its key.
        if step.path.is_empty() {
            step.path = step.key.clone();
        }
    }
    Ok(steps)
}

fn steps_of(r: &row::Row) -> Result<Vec<StepRecord>> {
    parse_steps(&row::get_str(r, "steps")?)
}

/// Lays the records saved since the run row was written (`run_steps`) over its records: a
/// record of the same path replaces the older one, a new path is added in order.
fn merge(steps: &mut Vec<StepRecord>, saved: Vec<StepRecord>) {
    let mut at: std::collections::HashMap<String, usize> = steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.path.clone(), i))
        .collect();
    for record in saved {
        match at.get(&record.path) {
            Some(&i) => steps[i] = record,
            None => {
                at.insert(record.path.clone(), steps.len());
                steps.push(record);
            }
        }
    }
}

/// The run's records with those saved since its row was written; and how many saves that was.
async fn with_saved(
    conn: impl QueryTarget,
    run_id: &str,
    mut steps: Vec<StepRecord>,
) -> Result<(Vec<StepRecord>, i64)> {
    let rows = Sql::new("SELECT seq, steps FROM run_steps WHERE run_id = ? ORDER BY seq")
        .arg(run_id)
        .fetch_all(conn)
        .await?;
    let mut last = 0;
    for r in &rows {
        last = row::get_i64(r, "seq")?;
        merge(&mut steps, parse_steps(&row::get_str(r, "steps")?)?);
    }
    Ok((steps, last))
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

/// What a run's source key says started it.
fn source_of(key: &str) -> Value {
    match key.split_once(':') {
        Some(("inbound", id)) => json!({"kind": "webhook", "deliveryId": id}),
        Some(("poll", item)) => json!({"kind": "poll", "itemId": item}),
        Some(("schedule", at)) => json!({"kind": "schedule", "firedAt": at}),
        Some(("test", _)) => json!({"kind": "test"}),
        _ if key.starts_with(ids::EVENT) => json!({"kind": "event", "eventId": key}),
        _ => json!({"kind": "other"}),
    }
}

fn test_of(r: &row::Row) -> Result<Option<TestOptions>> {
    row::get_opt_str(r, "test")?
        .map(|text| {
            serde_json::from_str(&text)
                .map_err(|e| Error::Internal(format!("stored run test: {e}")))
        })
        .transpose()
}

pub(crate) fn from_row(r: &row::Row) -> Result<Run> {
    let status: RunStatus = row::get_str(r, "status")?.parse()?;
    Ok(Run {
        id: row::get_str(r, "id")?,
        flow_id: row::get_str(r, "flow_id")?,
        source: source_of(&row::get_str(r, "source_key")?),
        flow_version: row::get_opt_i64(r, "flow_version")?,
        mode: if row::get_str(r, "mode")? == "test" {
            RunMode::Test
        } else {
            RunMode::Live
        },
        dry_run: test_of(r)?.is_some_and(|t| t.dry_run),
        next_attempt_at: matches!(status, RunStatus::Queued | RunStatus::Waiting)
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
    let mut run = from_row(&row)?;
    if run.status == RunStatus::Running {
        run.steps = with_saved(db, id, std::mem::take(&mut run.steps)).await?.0;
    }
    Ok(run)
}

/// When a new run of `flow` may start under its `maxRunsPerMinute`: none when now (or when the
/// flow has no such setting), else the instant a minute after the last run that fills the
/// minute before it. Runs so queued start in the order they came, never more than the setting
/// in any minute. Call it in the transaction that starts the run: on Postgres it holds a lock
/// on the flow's throttle until that commits, so that two processes do not both take the last
/// slot.
pub async fn throttled(tx: &mut crate::store::db::Tx, flow: &LiveFlow) -> Result<Option<Millis>> {
    let Some(per_minute) = flow.settings.max_runs_per_minute else {
        return Ok(None);
    };
    if tx.backend() == crate::Backend::Postgres {
        Sql::new("SELECT pg_advisory_xact_lock(hashtext(?))")
            .arg(format!("throttle:{}", flow.id))
            .execute(&mut *tx)
            .await?;
    }
    let now = now_ms();
    // The starts (or start times booked) of the latest `per_minute` runs; waiting runs (at a
    // delay) started long ago.
    let nth = Sql::new(
        "SELECT next_attempt_at FROM runs WHERE flow_id = ? AND status <> 'waiting' AND mode = 'live' \
         AND next_attempt_at > ? ORDER BY next_attempt_at DESC LIMIT 1 OFFSET ?",
    )
    .arg(flow.id.as_str())
    .arg(now - 60_000)
    .arg(i64::from(per_minute) - 1)
    .fetch_optional(&mut *tx)
    .await?;
    Ok(match nth {
        Some(r) => Some(row::get_i64(&r, "next_attempt_at")? + 60_000).filter(|at| *at > now),
        None => None,
    })
}

/// How long a queued run waits for the job that was queued for it before the sweeper runs it
/// itself (the job may be late, or lost with a crashed process).
pub const REQUEUE_AFTER_MS: i64 = 5_000;

/// How many flows may start each other in a row (A's step makes the event that starts B…).
pub const MAX_CHAIN_DEPTH: i64 = 5;

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
    /// How a test run runs; none for a live run.
    pub test: Option<&'a TestOptions>,
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

/// On Postgres, for a process that executes no runs itself: the run is created open to every
/// worker and offered to them (`NOTIFY`, sent when it commits) by one statement, committed with
/// others. Returns the new run's id; none when its source already started one.
pub async fn start_offered(db: &Db, run: &NewRun<'_>) -> Result<Option<String>> {
    let (insert, run) = insertion(run, Begin::Offered)?;
    let mut sql = Sql::new("WITH created AS (");
    sql.append(&insert).push(&format!(
        " RETURNING 1) SELECT pg_notify('{}', '') FROM created",
        crate::store::db::RUNS_CHANNEL
    ));
    Ok((db.write_count(&sql).await? == 1).then_some(run.id))
}

/// How a new run begins: queued now, queued until an instant, claimed by its creator for a
/// lease, or open to every worker at once.
#[derive(Debug, Clone, Copy)]
enum Begin {
    Now,
    Later(Millis),
    Claimed(i64),
    Offered,
}

/// The statement that creates a run (nothing when the source already started one), and the
/// run it creates.
fn insertion(new: &NewRun<'_>, begin: Begin) -> Result<(Sql, ClaimedRun)> {
    let NewRun {
        flow,
        source_key,
        trigger,
        lineage,
        test,
    } = *new;
    let id = ids::new_id(ids::RUN);
    let now = now_ms();
    let steps = Vec::new();
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
        // Queued now, for the first worker that takes it.
        Begin::Offered => (RunStatus::Queued, now, None, None),
    };
    let root = lineage.root.clone().unwrap_or_else(|| id.clone());
    // A polled item comes from outside: kept to the depth everything else is.
    let mut trigger = trigger.clone();
    json::clip(&mut trigger);
    let sql = Sql::new(
        "INSERT INTO runs (id, org_id, flow_id, source_key, status, trigger, steps, depth, root_id, \
         next_attempt_at, lease_until, lease_token, created_at, started_at, updated_at, flow_version, mode, test, resource_id) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (flow_id, source_key) DO NOTHING",
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
    .arg(now)
    .arg(flow.version)
    .arg(if test.is_some() { RunMode::Test } else { RunMode::Live }.as_str())
    .arg(test.map(|t| serde_json::to_string(t).unwrap_or_default()))
    .arg(resource_of(&trigger));
    let run = ClaimedRun {
        id,
        token: token.unwrap_or_default(),
        flow_id: flow.id.clone(),
        trigger,
        steps,
        depth: lineage.depth,
        root,
        takeovers: 0,
        saves: 0,
        flow_version: Some(flow.version),
        test: test.cloned(),
    };
    Ok((sql, run))
}

/// The id of the record a run started with, when its trigger data is one (`runs?resourceId=`).
fn resource_of(trigger: &Value) -> Option<&str> {
    trigger["id"].as_str().filter(|id| id.len() <= 64)
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
    /// The last of its saves in `run_steps` (0: none since its row was written).
    pub saves: i64,
    /// The version of the flow it executes; none for runs from before versions (the live one).
    pub flow_version: Option<i64>,
    /// How a test run runs.
    pub test: Option<TestOptions>,
}

/// Lease expiries without progress after which a run is poisoned: it stopped its worker (a
/// crash, a kill) that often, so it is failed instead of being taken again.
pub const POISONED_AFTER: i64 = 2;

/// Takes a run for `lease_ms` if it is due (queued or waiting, and its time has come) or
/// abandoned (running with an expired lease). None when another worker has it, it is finished,
/// or its flow's `maxConcurrency` runs are running already, or an older run of the flow waits
/// for the slot (runs of such a flow start in the order they came).
pub async fn claim(db: &Db, id: &str, lease_ms: i64) -> Result<Option<ClaimedRun>> {
    let now = now_ms();
    let token = ulid::Ulid::generate().to_string();
    // The claim, for any run (`FREE_SLOT`) or for one of a flow without a limit.
    let update = |any_flow: bool| {
        let mut sql = Sql::new(
            "UPDATE runs SET status = 'running', lease_until = ?, lease_token = ?, \
             takeovers = takeovers + CASE WHEN status = 'running' THEN 1 ELSE 0 END, \
             started_at = COALESCE(started_at, ?), updated_at = ? WHERE id = ? \
             AND ((status IN ('queued', 'waiting') AND next_attempt_at <= ?) OR (status = 'running' AND lease_until < ?)) AND ",
        )
        .arg(now + lease_ms)
        .arg(token.as_str())
        .arg(now)
        .arg(now)
        .arg(id)
        .arg(now)
        .arg(now);
        if any_flow {
            sql.push(FREE_SLOT).bind(now).bind(now);
        } else {
            sql.push(UNLIMITED_FLOW);
        }
        sql.push(" RETURNING *");
        sql
    };
    let taken = if db.backend() == crate::Backend::Postgres {
        // A run of a flow without `maxConcurrency` is taken by one statement: its row's lock
        // keeps two workers from both taking it.
        match db.write(&update(false)).await?.pop() {
            None => claim_slot(db, &update(true), id).await?,
            taken => taken,
        }
    } else {
        // SQLite's writes are serial: nothing else can take the slot meanwhile.
        db.write(&update(true)).await?.pop()
    };
    match taken {
        Some(row) => claimed(db, &row, token, now).await.map(Some),
        None => Ok(None),
    }
}

/// The run a claim at `now` with `token` took, from its row as the claim left it.
async fn claimed(db: &Db, row: &row::Row, token: String, now: Millis) -> Result<ClaimedRun> {
    let id = row::get_str(row, "id")?;
    // A run this very claim started (its start is now) has saved nothing yet: `run_steps` is
    // read only for one started before.
    let (steps, saves) = if row::get_opt_i64(row, "started_at")? == Some(now) {
        (steps_of(row)?, 0)
    } else {
        with_saved(db, &id, steps_of(row)?).await?
    };
    Ok(ClaimedRun {
        token,
        flow_id: row::get_str(row, "flow_id")?,
        trigger: trigger_of(row)?,
        steps,
        depth: row::get_i64(row, "depth")?,
        root: row::get_opt_str(row, "root_id")?.unwrap_or_else(|| id.clone()),
        takeovers: row::get_i64(row, "takeovers")?,
        saves,
        flow_version: row::get_opt_i64(row, "flow_version")?,
        test: test_of(row)?,
        id,
    })
}

/// The claim's condition for a run whose flow has no `maxConcurrency`.
const UNLIMITED_FLOW: &str = "NOT EXISTS (SELECT 1 FROM flows f WHERE f.id = runs.flow_id AND f.max_concurrency IS NOT NULL)";

/// The claim's condition for any run: a running one (taken over) keeps its slot; a due one
/// takes a slot if its flow has one free and no older run of the flow waits for it.
const FREE_SLOT: &str = "(status = 'running' OR NOT EXISTS (SELECT 1 FROM flows f WHERE f.id = runs.flow_id \
     AND f.max_concurrency IS NOT NULL AND ( \
       (SELECT COUNT(*) FROM runs r WHERE r.flow_id = runs.flow_id AND r.status = 'running' AND r.lease_until >= ?) >= f.max_concurrency \
       OR EXISTS (SELECT 1 FROM runs o WHERE o.flow_id = runs.flow_id AND o.status = 'queued' AND o.next_attempt_at <= ? \
         AND (o.created_at < runs.created_at OR (o.created_at = runs.created_at AND o.id < runs.id))))))";

/// On Postgres, claims a run of a limited flow: the claims of one flow's runs are taken one
/// at a time, so that two never both take its last slot.
async fn claim_slot(db: &Db, update: &Sql, id: &str) -> Result<Option<row::Row>> {
    let mut tx = db.begin().await?;
    Sql::new(
        "SELECT pg_advisory_xact_lock(hashtext('runs:' || COALESCE((SELECT flow_id FROM runs WHERE id = ?), '')))",
    )
    .arg(id)
    .execute(&mut tx)
    .await?;
    let taken = update.fetch_optional(&mut tx).await?;
    tx.commit().await?;
    Ok(taken)
}

/// The oldest due run of a flow waiting in the queue: the next to take a slot its
/// `maxConcurrency` frees.
pub async fn next_in_line(db: &Db, flow_id: &str) -> Result<Option<String>> {
    Sql::new(
        "SELECT id FROM runs WHERE flow_id = ? AND status = 'queued' AND next_attempt_at <= ? \
         ORDER BY created_at, id LIMIT 1",
    )
    .arg(flow_id)
    .arg(now_ms())
    .fetch_optional(db)
    .await?
    .map(|r| row::get_str(&r, "id"))
    .transpose()
}

/// The runs waiting for a worker of any process: how many queued runs are due, and how long
/// the one that has waited longest has been due (zero when none waits). For `/metrics`: the
/// count reads every waiting run's index entry.
pub async fn waiting(db: &Db) -> Result<(i64, Duration)> {
    let now = now_ms();
    let row = Sql::new(
        "SELECT COUNT(*) AS n, MIN(next_attempt_at) AS oldest FROM runs \
         WHERE status = 'queued' AND next_attempt_at <= ?",
    )
    .arg(now)
    .fetch_one(db)
    .await?;
    let oldest = row::get_opt_i64(&row, "oldest")?;
    Ok((row::get_i64(&row, "n")?, waited_since(oldest, now)))
}

/// How long the queued run that has waited longest for a worker has been due (zero when none
/// waits): one step down the `runs_due` index, cheap enough for every inbound call of a
/// process that runs no workers.
pub async fn longest_wait(db: &Db) -> Result<Duration> {
    let now = now_ms();
    let oldest = Sql::new(
        "SELECT next_attempt_at FROM runs WHERE status = 'queued' AND next_attempt_at <= ? \
         ORDER BY next_attempt_at LIMIT 1",
    )
    .arg(now)
    .fetch_optional(db)
    .await?
    .map(|r| row::get_i64(&r, "next_attempt_at"))
    .transpose()?;
    Ok(waited_since(oldest, now))
}

fn waited_since(due: Option<Millis>, now: Millis) -> Duration {
    due.map_or(Duration::ZERO, |due| {
        Duration::from_millis(u64::try_from(now - due).unwrap_or(0))
    })
}

/// The steps as stored: values from outside are cut to [`json::MAX_DEPTH`] levels, so that
/// every stored run can be read back (the parser stops at 128) and shown.
fn steps_json(steps: &[StepRecord]) -> Result<String> {
    let mut kept = steps.to_vec();
    kept.iter_mut().for_each(StepRecord::clip);
    serde_json::to_string(&kept).map_err(|e| Error::Internal(e.to_string()))
}

/// Saves all of a run's records in its row and extends the lease (one statement, committed with
/// others waiting at the same time). False when the run is no longer this claim's: the caller
/// stops. Only for a run with no save in `run_steps` (they would lie over these).
pub async fn save_all_steps(
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

/// Saves the records that changed since the last save (`changed`, as save number `seq`) and
/// extends the lease, in one transaction. False when the run is no longer this claim's: the
/// caller stops.
pub async fn save_steps(
    db: &Db,
    run: &ClaimedRun,
    changed: &[StepRecord],
    seq: i64,
    lease_ms: i64,
) -> Result<bool> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    let held = Sql::new(
        "UPDATE runs SET lease_until = ?, takeovers = 0, updated_at = ? \
         WHERE id = ? AND status = 'running' AND lease_token = ?",
    )
    .arg(now + lease_ms)
    .arg(now)
    .arg(run.id.as_str())
    .arg(run.token.as_str())
    .execute(&mut tx)
    .await?;
    if held != 1 {
        return Ok(false);
    }
    Sql::new("INSERT INTO run_steps (run_id, seq, steps) VALUES (?, ?, ?)")
        .arg(run.id.as_str())
        .arg(seq)
        .arg(steps_json(changed)?)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(true)
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

/// How a worker lets go of a run it holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Release<'a> {
    /// Back in the queue until then (a retryable failure).
    RetryAt(Millis),
    /// Waiting at a `delay` until then, no worker holding it.
    WaitUntil(Millis),
    /// Over: `succeeded`, `filtered` or `cancelled`, or `failed` with the reason; `announce`:
    /// its outcome goes to the event log (see [`outcomes`]).
    Finish {
        status: RunStatus,
        error: Option<&'a str>,
        announce: bool,
    },
}

/// Lets go of a run this claim holds, writing all its records (the saves in `run_steps` are
/// dropped with the same commit). Nothing happens when the claim no longer holds it.
pub async fn release(
    db: &Db,
    run: &ClaimedRun,
    steps: &[StepRecord],
    saved: bool,
    how: Release<'_>,
) -> Result<()> {
    let now = now_ms();
    let sql = match how {
        Release::RetryAt(at) | Release::WaitUntil(at) => Sql::new(
            "UPDATE runs SET status = ?, steps = ?, next_attempt_at = ?, lease_until = NULL, \
             lease_token = NULL, takeovers = 0, updated_at = ? WHERE id = ? AND lease_token = ?",
        )
        .arg(if matches!(how, Release::WaitUntil(_)) { RunStatus::Waiting } else { RunStatus::Queued }.as_str())
        .arg(steps_json(steps)?)
        .arg(at)
        .arg(now)
        .arg(run.id.as_str())
        .arg(run.token.as_str()),
        Release::Finish {
            status,
            error,
            announce,
        } => Sql::new(
            "UPDATE runs SET status = ?, steps = ?, error = ?, lease_until = NULL, lease_token = NULL, \
             announce = ?, finished_at = ?, updated_at = ? WHERE id = ? AND lease_token = ?",
        )
        .arg(status.as_str())
        .arg(steps_json(steps)?)
        .arg(error)
        .arg(i64::from(announce))
        .arg(now)
        .arg(now)
        .arg(run.id.as_str())
        .arg(run.token.as_str()),
    };
    if !saved {
        // The common case (no save since the row was written): one statement, committed with
        // others waiting at the same time.
        return db.write_count(&sql).await.map(drop);
    }
    let mut tx = db.begin().await?;
    if sql.execute(&mut tx).await? == 1 {
        Sql::new("DELETE FROM run_steps WHERE run_id = ?")
            .arg(run.id.as_str())
            .execute(&mut tx)
            .await?;
    }
    tx.commit().await
}

/// Ends a run: `succeeded`, or `failed` with the reason, if this claim still holds it.
pub async fn finish(
    db: &Db,
    run: &ClaimedRun,
    steps: &[StepRecord],
    error: Option<&str>,
) -> Result<()> {
    let status = if error.is_some() {
        RunStatus::Failed
    } else {
        RunStatus::Succeeded
    };
    let how = Release::Finish {
        status,
        error,
        announce: error.is_some(),
    };
    release(db, run, steps, run.saves > 0, how).await
}

/// Offers queued runs to the workers of every process at once (Postgres, from a process with
/// no workers of its own): they become due for the sweepers now, instead of after the time a
/// job's worker would have had, and the sweepers listening on `timix_runs` wake. One statement;
/// the workers compete for the runs with [`take_due`] (`SKIP LOCKED`), so no queued job is
/// needed per run.
pub async fn offer(db: &Db, ids: &[String]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let mut sql = Sql::new(
        "WITH opened AS (UPDATE runs SET lease_until = NULL WHERE status = 'queued' AND id IN (",
    );
    for (n, id) in ids.iter().enumerate() {
        sql.push(if n == 0 { "?" } else { ", ?" }).bind(id.as_str());
    }
    sql.push(&format!(
        ") RETURNING 1) SELECT pg_notify('{}', '') WHERE EXISTS (SELECT 1 FROM opened)",
        crate::store::db::RUNS_CHANNEL
    ));
    db.write(&sql).await?;
    Ok(())
}

/// What a sweep took: runs claimed for the sweeping worker, and runs marked for a claim of
/// their own ([`claim`]), those of flows with `maxConcurrency`, whose limit holds there.
#[derive(Debug, Default)]
pub struct Swept {
    pub claimed: Vec<ClaimedRun>,
    pub marked: Vec<String>,
}

/// Runs to execute now, at most `limit`: queued ones whose time has come and that no job was
/// queued for lately, and running ones whose worker vanished (their lease ran out). One
/// statement claims them for `lease_ms`; a run of a flow with `maxConcurrency` is only marked,
/// so that the next sweep leaves it alone while its own claim looks at the flow's slots.
pub async fn take_due(db: &Db, limit: i64, lease_ms: i64) -> Result<Swept> {
    let now = now_ms();
    // A read first: most sweeps find nothing, and a read does not queue behind the writer.
    let mut any = Sql::new("SELECT id FROM (");
    push_due(&mut any, now, 1, false);
    any.push(") AS open LIMIT 1");
    if any.fetch_optional(db).await?.is_none() {
        return Ok(Swept::default());
    }
    // The runs to take are chosen once (materialized), then claimed or marked. Their rows are
    // locked meanwhile (Postgres; SQLite's statement has the database to itself), so they are
    // still due when taken.
    let token = ulid::Ulid::generate().to_string();
    let mut sql = Sql::new("WITH due AS MATERIALIZED (SELECT id, ");
    sql.push(LIMITED_FLOW);
    sql.push(" AS limited FROM (");
    // Rows another sweeper is taking are skipped on Postgres, not waited for and taken again.
    push_due(
        &mut sql,
        now,
        limit,
        db.backend() == crate::Backend::Postgres,
    );
    sql.push(") AS open ORDER BY next_attempt_at LIMIT ?) ")
        .bind(limit);
    // A limited flow's run: marked as before a claim of its own. Any other: claimed, as
    // `claim` does.
    sql.push(
        "UPDATE runs SET \
         status = CASE WHEN due.limited = 0 THEN 'running' WHEN runs.status = 'waiting' THEN 'waiting' ELSE 'queued' END, \
         next_attempt_at = CASE WHEN due.limited = 1 AND runs.status = 'running' THEN ? ELSE runs.next_attempt_at END, \
         takeovers = runs.takeovers + CASE WHEN runs.status = 'running' THEN 1 ELSE 0 END, \
         lease_until = CASE WHEN due.limited = 0 THEN ? ELSE ? END, \
         lease_token = CASE WHEN due.limited = 0 THEN ? ELSE NULL END, \
         started_at = CASE WHEN due.limited = 0 THEN COALESCE(runs.started_at, ?) ELSE runs.started_at END, \
         updated_at = CASE WHEN due.limited = 0 THEN ? ELSE runs.updated_at END \
         FROM due WHERE runs.id = due.id",
    )
    .bind(now)
    .bind(now + lease_ms)
    .bind(now + REQUEUE_AFTER_MS)
    .bind(token.as_str())
    .bind(now)
    .bind(now);
    // The run's columns only (SQLite returns no others from an `UPDATE … FROM`).
    sql.push(if db.backend() == crate::Backend::Postgres {
        " RETURNING runs.*"
    } else {
        " RETURNING *"
    });
    let mut swept = Swept::default();
    for row in db.write(&sql).await? {
        if row::get_opt_str(&row, "lease_token")?.as_deref() == Some(token.as_str()) {
            swept
                .claimed
                .push(claimed(db, &row, token.clone(), now).await?);
        } else {
            swept.marked.push(row::get_str(&row, "id")?);
        }
    }
    Ok(swept)
}

/// 1 for a run (`open`, a due run in [`take_due`]) whose flow has a `maxConcurrency`, else 0.
const LIMITED_FLOW: &str = "(CASE WHEN EXISTS (SELECT 1 FROM flows f WHERE f.id = open.flow_id \
     AND f.max_concurrency IS NOT NULL) THEN 1 ELSE 0 END)";

/// Appends the runs due at `now` (`id`, `flow_id` and `next_attempt_at`), at most `limit` of each kind:
/// queued and waiting ones whose time has come and that nobody took lately, and running ones
/// whose lease ran out. Each kind is read alone, in the order of `runs_due` (status, then
/// time): a plain index scan stops at the first rows it needs and marks the dead entries it
/// passes (every change of status leaves one until vacuum) so that later sweeps skip them,
/// where a scan of all three at once visited every dead entry on every sweep.
fn push_due(sql: &mut Sql, now: Millis, limit: i64, skip_locked: bool) {
    let lock = if skip_locked {
        " FOR UPDATE SKIP LOCKED"
    } else {
        ""
    };
    for (n, status) in ["queued", "waiting"].into_iter().enumerate() {
        sql.push(if n == 0 { "" } else { " UNION ALL " });
        sql.push(&format!(
            "SELECT id, flow_id, next_attempt_at FROM (SELECT id, flow_id, next_attempt_at FROM runs WHERE status = '{status}' \
             AND next_attempt_at <= ? AND (lease_until IS NULL OR lease_until < ?) \
             ORDER BY next_attempt_at LIMIT ?{lock}) AS {status}"
        ))
        .bind(now)
        .bind(now)
        .bind(limit);
    }
    sql.push(&format!(
        " UNION ALL SELECT id, flow_id, next_attempt_at FROM (SELECT id, flow_id, next_attempt_at FROM runs \
         WHERE status = 'running' AND lease_until < ? ORDER BY next_attempt_at LIMIT ?{lock}) AS abandoned"
    ))
    .bind(now)
    .bind(limit);
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
            "DELETE FROM runs WHERE id IN (SELECT id FROM runs WHERE status IN ('succeeded', 'failed', 'filtered', 'cancelled') \
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

#[cfg(test)]
mod tests {
    use super::*;

    fn record(path: &str, status: StepStatus) -> StepRecord {
        StepRecord {
            key: path.rsplit('.').next().unwrap_or(path).to_owned(),
            path: path.to_owned(),
            node: "action".into(),
            action: "create_task".into(),
            status,
            input: None,
            output: None,
            error: None,
            attempts: 1,
            started_at: None,
            finished_at: None,
        }
    }

    #[test]
    fn records_from_before_paths_read_as_top_level_actions() {
        let stored = r#"[{"key": "project", "action": "create_project", "status": "pending", "input": null,
            "output": null, "error": null, "attempts": 0, "startedAt": null, "finishedAt": null}]"#;
        let steps = parse_steps(stored).unwrap();
        assert_eq!(steps[0].path, "project");
        assert_eq!(steps[0].node, "action");
        assert_eq!(steps[0].status, StepStatus::Pending);
    }

    #[test]
    fn saved_records_lie_over_the_row_by_path_and_new_ones_follow_in_order() {
        let mut steps = vec![
            record("each", StepStatus::Pending),
            record("each[0].task", StepStatus::Succeeded),
        ];
        merge(
            &mut steps,
            vec![
                record("each[1].task", StepStatus::Succeeded),
                record("each", StepStatus::Succeeded),
            ],
        );
        let paths: Vec<(&str, StepStatus)> =
            steps.iter().map(|s| (s.path.as_str(), s.status)).collect();
        assert_eq!(
            paths,
            [
                ("each", StepStatus::Succeeded),
                ("each[0].task", StepStatus::Succeeded),
                ("each[1].task", StepStatus::Succeeded),
            ]
        );
    }

    #[test]
    fn sources_say_what_started_a_run() {
        assert_eq!(source_of("evt_01ABC")["kind"], "event");
        assert_eq!(source_of("inbound:msg_1")["deliveryId"], "msg_1");
        assert_eq!(source_of("poll:42")["itemId"], "42");
        assert_eq!(
            source_of("schedule:2026-12-06T09:00:00.000Z")["kind"],
            "schedule"
        );
        assert_eq!(source_of("test:01ABC")["kind"], "test");
    }
}
