//! Why a flow did or did not start for an event, and running an event flow over a stretch of
//! the log it missed (a backfill). Both ask the questions the dispatcher asks, in its order,
//! and answer with the first that says no: `other_type`, `not_enabled`, `condition_false` (with
//! each filter's and each condition leaf's values), `own_change`, `chain_limit`,
//! `fanout_limit`; a backfill adds `duplicate` (the event started a run of the flow already).

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{LiveFlow, NOUN, condition_context, live};
use crate::access::auth::{Actor, Permission};
use crate::automation::run_admission::RunAdmission;
use crate::automation::runs::{self, Lineage, MAX_CHAIN_DEPTH, NewRun};
use crate::error::{Error, Result};
use crate::store::clock::{Millis, parse_instant};
use crate::store::db::{Db, Sql, row};
use crate::store::events::{self, Event, EventRange};

/// Most events one backfill goes through.
pub const MAX_BACKFILL: i64 = 5_000;

/// Why a flow does not start for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Reason {
    /// The flow was disabled, or enabled only after the event.
    NotEnabled,
    /// The flow's trigger is not this event type (or not an event trigger).
    OtherType,
    /// A filter did not match, or the condition was false (or could not be evaluated).
    ConditionFalse,
    /// The event is a change this flow's own run made.
    OwnChange,
    /// The change was made at the end of a chain of flows starting each other.
    ChainLimit,
    /// The chain of flows the change belongs to started its most runs.
    FanoutLimit,
    /// The run waits in the queue for its organization's or its flow's run budget.
    RateLimited,
    /// The event started a run of this flow already.
    Duplicate,
    /// Nothing says no, and there is no run: the dispatcher has not reached the event yet, or
    /// the run was deleted after the retention period.
    Pending,
}

/// The answer of `GET /flows/{id}/explain`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Explanation {
    pub event_id: String,
    pub flow_id: String,
    /// Whether a run of the flow was started for the event.
    pub started: bool,
    pub run_id: Option<String>,
    /// Why not (or, for a started run still queued by a run budget, `rate_limited`).
    pub reason: Option<Reason>,
    pub message: String,
    /// For `condition_false`: each filter `{field, expected, actual, result}` and each condition
    /// leaf `{left, op, right, result}` as evaluated.
    #[schema(value_type = Option<Object>)]
    pub evaluated: Option<Value>,
}

/// What the dispatcher's questions answer for one event, without looking for a run.
struct Verdict {
    reason: Option<Reason>,
    message: String,
    evaluated: Option<Value>,
}

fn no(reason: Reason, message: impl Into<String>) -> Verdict {
    Verdict {
        reason: Some(reason),
        message: message.into(),
        evaluated: None,
    }
}

/// Whether `event` matches the flow's trigger (type, filters, condition) and is not its own.
fn matches(flow: &LiveFlow, event: &Event) -> Verdict {
    if flow.trigger["type"] != "event"
        || flow.trigger["event"].as_str() != Some(event.kind.as_str())
    {
        let listens = flow.trigger["event"].as_str().map_or_else(
            || {
                format!(
                    "a {} trigger",
                    flow.trigger["type"].as_str().unwrap_or("other")
                )
            },
            |e| format!("{e} events"),
        );
        return no(
            Reason::OtherType,
            format!("the flow listens to {listens}, not {}", event.kind),
        );
    }
    let mut evaluated = json!({});
    if let Some(filters) = flow.trigger["filters"].as_object() {
        let checked: Vec<Value> = filters
            .iter()
            .map(|(field, expected)| {
                let actual = &event.data[field];
                json!({"field": field, "expected": expected, "actual": actual, "result": actual == expected})
            })
            .collect();
        let passed = checked.iter().all(|c| c["result"] == true);
        evaluated["filters"] = Value::Array(checked);
        if !passed {
            return Verdict {
                evaluated: Some(evaluated),
                ..no(
                    Reason::ConditionFalse,
                    "a filter of the trigger does not match the record",
                )
            };
        }
    }
    if let Some(condition) = &flow.condition {
        match condition.evaluate(&condition_context(event)) {
            Ok(e) if e.result => {}
            Ok(e) => {
                evaluated["condition"] = Value::Array(e.trace);
                return Verdict {
                    evaluated: Some(evaluated),
                    ..no(
                        Reason::ConditionFalse,
                        "the trigger's condition is false for this event",
                    )
                };
            }
            Err(reason) => {
                return no(
                    Reason::ConditionFalse,
                    format!("the trigger's condition could not be evaluated: {reason}"),
                );
            }
        }
    }
    if event.origin_flow.as_deref() == Some(flow.id.as_str()) {
        return no(
            Reason::OwnChange,
            "the change was made by this flow's own run; a flow never starts on its own changes",
        );
    }
    Verdict {
        reason: None,
        message: "the flow starts on this event".into(),
        evaluated: None,
    }
}

fn occurred(event: &Event) -> Millis {
    parse_instant(&event.occurred_at).unwrap_or(0)
}

/// The run `event` started of `flow`, if any: its id, its status, and whether a run budget
/// holds it back (queued, never started, and due more than a moment after its creation).
async fn run_of(db: &Db, flow_id: &str, event_id: &str) -> Result<Option<(String, String, bool)>> {
    Sql::new(
        "SELECT id, status, CASE WHEN status = 'queued' AND started_at IS NULL \
         AND next_attempt_at > created_at + 1000 THEN 1 ELSE 0 END AS held \
         FROM runs WHERE flow_id = ? AND source_key = ?",
    )
    .arg(flow_id)
    .arg(event_id)
    .fetch_optional(db)
    .await?
    .map(|r| {
        Ok((
            row::get_str(&r, "id")?,
            row::get_str(&r, "status")?,
            row::get_i64(&r, "held")? == 1,
        ))
    })
    .transpose()
}

async fn flow_of(db: &Db, actor: &Actor, flow_id: &str) -> Result<LiveFlow> {
    live(db, flow_id)
        .await?
        .filter(|f| f.org_id == actor.org_id())
        .ok_or(Error::NotFound(NOUN))
}

/// `GET /flows/{id}/explain?eventId=`: whether the flow started a run for the event, and if
/// not, why. `fanout_limit` is the operator's limit on the runs one chain may start.
pub async fn explain(
    db: &Db,
    actor: &Actor,
    flow_id: &str,
    event_id: &str,
    fanout_limit: i64,
) -> Result<Explanation> {
    actor.require(Permission::ReadFlows)?;
    let flow = flow_of(db, actor, flow_id).await?;
    let event = events::by_id(db, event_id)
        .await?
        .filter(|e| e.organization_id == actor.org_id())
        .ok_or(Error::NotFound("event"))?;
    let answer = |verdict: Verdict, run_id: Option<String>| Explanation {
        event_id: event.id.clone(),
        flow_id: flow.id.clone(),
        started: run_id.is_some(),
        run_id,
        reason: verdict.reason,
        message: verdict.message,
        evaluated: verdict.evaluated,
    };
    if let Some((id, status, held)) = run_of(db, &flow.id, &event.id).await? {
        let verdict = if held {
            no(
                Reason::RateLimited,
                "a run was started; it waits in the queue for the organization's or the flow's run budget",
            )
        } else {
            Verdict {
                reason: None,
                message: format!("a run was started; it is {status}"),
                evaluated: None,
            }
        };
        return Ok(answer(verdict, Some(id)));
    }
    let mut verdict = matches(&flow, &event);
    if verdict.reason != Some(Reason::OtherType) {
        // In the dispatcher's order: a flow not enabled is asked nothing more.
        let enabled_before =
            flow.is_enabled && flow.enabled_at.is_some_and(|at| at <= occurred(&event));
        if !enabled_before {
            verdict = no(
                Reason::NotEnabled,
                if flow.is_enabled {
                    "the flow was enabled after the event"
                } else {
                    "the flow is disabled"
                },
            );
        }
    }
    if verdict.reason.is_none() {
        verdict = chain_verdict(db, &event, fanout_limit).await?;
    }
    Ok(answer(verdict, None))
}

/// Whether the chain of flows the event's change belongs to may start another run.
async fn chain_verdict(db: &Db, event: &Event, fanout_limit: i64) -> Result<Verdict> {
    if event.origin_depth >= MAX_CHAIN_DEPTH {
        return Ok(no(
            Reason::ChainLimit,
            format!(
                "the change was made by a chain of {MAX_CHAIN_DEPTH} flows starting each other, the longest allowed"
            ),
        ));
    }
    if let Some(root) = &event.origin_root
        && runs::count_of_root(db, root).await? >= fanout_limit
    {
        return Ok(no(
            Reason::FanoutLimit,
            format!(
                "the chain of flows this change belongs to started {fanout_limit} runs, the most one chain may"
            ),
        ));
    }
    Ok(no(
        Reason::Pending,
        "nothing stops the flow from starting on this event, and it has no run for it: the dispatcher has not reached the event yet, or the run was deleted after the retention period",
    ))
}

/// The body of `POST /flows/{id}/backfill`.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BackfillInput {
    /// The first event: a position in the log (`seq`, a number) or an instant.
    #[schema(value_type = Object)]
    pub from: Value,
    /// The last event (inclusive), likewise; the end of the log when absent.
    #[schema(value_type = Option<Object>)]
    pub to: Option<Value>,
    /// Only say what would start.
    #[serde(default)]
    pub dry_run: bool,
}

/// One event of a backfill.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackfillItem {
    pub event_id: String,
    pub seq: i64,
    pub occurred_at: String,
    pub would_start: bool,
    pub reason: Option<Reason>,
    /// The run started (or, for `duplicate`, the run it started before).
    pub run_id: Option<String>,
}

/// The answer of `POST /flows/{id}/backfill`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Backfill {
    pub dry_run: bool,
    /// Events that start (or would start) a run.
    pub count: usize,
    /// Whether the range holds more than [`MAX_BACKFILL`] events: backfill again from the
    /// last `seq` + 1.
    pub truncated: bool,
    pub events: Vec<BackfillItem>,
}

/// Reads `from`/`to` as a position or an instant.
fn bound(field: &str, value: &Value) -> Result<(Option<i64>, Option<Millis>)> {
    match value {
        Value::Number(n) => n.as_i64().filter(|n| *n >= 0).map(|n| (Some(n), None)),
        Value::String(s) => match s.parse::<i64>() {
            Ok(n) => (n >= 0).then_some((Some(n), None)),
            Err(_) => parse_instant(s).map(|at| (None, Some(at))),
        },
        _ => None,
    }
    .ok_or_else(|| {
        Error::validation(
            field,
            "invalid",
            format!("{field} is a position in the event log (seq) or an RFC 3339 instant"),
        )
    })
}

/// `POST /flows/{id}/backfill`: runs an event flow over a stretch of its organization's log as
/// if the events came now (enabled or not; a person's action, so no chain limits), never twice
/// for one event. Answers each event, and the runs started for the caller to hand to workers.
pub async fn backfill(
    db: &Db,
    admission: &RunAdmission,
    actor: &Actor,
    flow_id: &str,
    input: &BackfillInput,
) -> Result<(Backfill, Vec<String>)> {
    actor.require(Permission::ManageFlows)?;
    let flow = flow_of(db, actor, flow_id).await?;
    let Some(kind) = flow.trigger["event"]
        .as_str()
        .filter(|_| flow.trigger["type"] == "event")
    else {
        return Err(Error::validation(
            "trigger",
            "not_event",
            "only a flow with an event trigger can be backfilled",
        ));
    };
    let (seq_from, at_from) = bound("from", &input.from)?;
    let (seq_to, at_to) = match &input.to {
        Some(to) => bound("to", to)?,
        None => (None, None),
    };
    let range = EventRange {
        org_id: &flow.org_id,
        kind,
        seq_from,
        seq_to,
        at_from,
        at_to,
    };
    let mut found = events::in_range(db, &range, MAX_BACKFILL + 1).await?;
    let truncated = found.len() as i64 > MAX_BACKFILL;
    found.truncate(MAX_BACKFILL as usize);
    let mut items = Vec::with_capacity(found.len());
    let mut to_start = Vec::new();
    for event in &found {
        let mut verdict = matches(&flow, event);
        let earlier = run_of(db, &flow.id, &event.id).await?.map(|r| r.0);
        if verdict.reason.is_none() && earlier.is_some() {
            verdict = no(Reason::Duplicate, "");
        }
        if verdict.reason.is_none() {
            to_start.push(items.len());
        }
        items.push(BackfillItem {
            event_id: event.id.clone(),
            seq: event.seq,
            occurred_at: event.occurred_at.clone(),
            would_start: verdict.reason.is_none(),
            reason: verdict.reason,
            run_id: earlier,
        });
    }
    let mut started = Vec::new();
    if !input.dry_run {
        for chunk in to_start.chunks(250) {
            let mut tx = db.begin().await?;
            for &i in chunk {
                let event = &found[i];
                let lineage = Lineage::default();
                let new_run = NewRun {
                    flow: &flow,
                    source_key: &event.id,
                    trigger: &event.data,
                    lineage: &lineage,
                    test: None,
                };
                // Held to the organization's and the flow's run budgets like any other run:
                // beyond them it waits in the queue.
                let wait = admission.book(&flow.org_id).await?;
                let wait = wait.max(runs::throttled(&mut tx, &flow).await?);
                // The event's own run, unique per flow: a second backfill starts nothing.
                match runs::start_at(&mut tx, &new_run, wait).await? {
                    Some(id) => {
                        items[i].run_id = Some(id.clone());
                        // One booked for later is taken by the sweeper when its time comes.
                        if wait.is_none() {
                            started.push(id);
                        }
                    }
                    None => {
                        admission.refund(&flow.org_id);
                        items[i].would_start = false;
                        items[i].reason = Some(Reason::Duplicate);
                    }
                }
            }
            tx.commit().await?;
        }
    }
    let count = items.iter().filter(|i| i.would_start).count();
    Ok((
        Backfill {
            dry_run: input.dry_run,
            count,
            truncated,
            events: items,
        },
        started,
    ))
}
