//! The event log: one row per change, appended in the change's own transaction, read in order.

use serde::Serialize;
use serde_json::{Map, Value};

use crate::access::auth::{Actor, Permission};
use crate::error::{Error, Result};
use crate::store::clock::{Millis, format_ms, now_ms};
use crate::store::db::{Backend, Db, Sql, Tx, row};
use crate::store::ids;

/// One entry of the log as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    /// Position in the log; strictly increasing in commit order.
    pub seq: i64,
    /// `evt_…`
    pub id: String,
    #[serde(rename = "type")]
    pub kind: String,
    pub occurred_at: String,
    pub organization_id: String,
    pub resource_id: String,
    /// The full resource after the change.
    pub data: Value,
    /// For updates: the fields that changed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed_fields: Option<Vec<String>>,
    /// For updates: the old values of the changed fields.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub previous: Option<Value>,
    /// The flow whose run made this change, if one did (not shown).
    #[serde(skip)]
    pub origin_flow: Option<String>,
    /// How deep in a chain of flows the change was made: 0 for a person's change (not shown).
    #[serde(skip)]
    pub origin_depth: i64,
    /// What the chain of flows that made this change began with (an event or a run id), if a
    /// flow made it (not shown).
    #[serde(skip)]
    pub origin_root: Option<String>,
}

/// What caused the changes being made: a flow's run (through its in-process steps), and how
/// deep that run is in a chain of flows. Set around a step's call; read by [`append`].
#[derive(Debug, Clone)]
pub struct Cause {
    pub flow_id: String,
    pub depth: i64,
    /// What the chain began with: the root event's id, or the run's own id.
    pub root: String,
}

tokio::task_local! {
    pub static CAUSE: Cause;
}

/// A change about to be logged.
pub struct NewEvent<'a> {
    pub org_id: &'a str,
    pub kind: String,
    pub resource_id: &'a str,
    pub data: Value,
    pub changed: Option<Changes>,
}

/// Fields that differ between two versions of a resource, with their old values.
#[derive(Debug, Clone, PartialEq)]
pub struct Changes {
    pub fields: Vec<String>,
    pub previous: Value,
}

impl Changes {
    /// Compares two serialised versions; `updatedAt` is bookkeeping, not a change.
    pub fn between(before: &Value, after: &Value) -> Changes {
        let empty = Map::new();
        let before = before.as_object().unwrap_or(&empty);
        let after = after.as_object().unwrap_or(&empty);
        let mut fields = Vec::new();
        let mut previous = Map::new();
        for (key, new) in after {
            if key == "updatedAt" {
                continue;
            }
            let old = before.get(key).unwrap_or(&Value::Null);
            if old != new {
                fields.push(key.clone());
                previous.insert(key.clone(), old.clone());
            }
        }
        Changes {
            fields,
            previous: Value::Object(previous),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

/// Every event type the log carries.
pub const TYPES: &[&str] = &[
    "customer.created",
    "customer.updated",
    "customer.deleted",
    "project.created",
    "project.updated",
    "project.deleted",
    "project.budget_threshold_reached",
    "task.created",
    "task.updated",
    "task.deleted",
    "subtask.created",
    "subtask.updated",
    "subtask.deleted",
    "time_entry.created",
    "time_entry.updated",
    "time_entry.deleted",
    "timer.started",
    "timer.stopped",
    "timesheet.submitted",
    "timesheet.approved",
    "timesheet.rejected",
    "invoice.created",
    "invoice.updated",
    "invoice.deleted",
    "invoice.issued",
    "invoice.paid",
    "invoice.voided",
    "holiday_profile.created",
    "holiday_profile.updated",
    "holiday_profile.deleted",
    "org_user.created",
    "org_user.updated",
    "org_user.deleted",
    "api_key.created",
    "api_key.revoked",
    "flow.created",
    "flow.updated",
    "flow.deleted",
    "flow.disabled",
    "run.succeeded",
    "run.failed",
    "connection.created",
    "connection.updated",
    "connection.deleted",
    "webhook.test",
    "webhook_endpoint.disabled",
];

/// The transaction-scoped advisory lock that orders appends to the log on Postgres.
const APPEND_LOCK: i64 = 7_146_201;

/// Opens a write transaction that will log events. On Postgres it takes the log's append lock
/// first: such transactions then run one after the other, so the row locks they take (an entry
/// before its timesheet, a project before its entries…) can never deadlock, and `seq` order is
/// commit order. On SQLite writers are serialised anyway.
pub async fn begin_write(db: &Db) -> Result<Tx> {
    let mut tx = db.begin().await?;
    if tx.backend() == Backend::Postgres {
        Sql::new("SELECT pg_advisory_xact_lock(?)")
            .arg(APPEND_LOCK)
            .execute(&mut tx)
            .await?;
    }
    Ok(tx)
}

/// Appends an event inside `tx`, which [`begin_write`] opened. On Postgres the log's append lock is
/// held until commit, so that `seq` order is commit order.
pub async fn append(tx: &mut Tx, event: NewEvent<'_>) -> Result<i64> {
    if tx.backend() == Backend::Postgres {
        // Delivered at commit to every process listening (duplicates in one transaction fold).
        // The lock is re-entrant: taking it again here keeps any caller safe.
        Sql::new("SELECT pg_advisory_xact_lock(?), pg_notify('timix_events', '')")
            .arg(APPEND_LOCK)
            .execute(&mut *tx)
            .await?;
    }
    let (changed_fields, previous) = match &event.changed {
        Some(c) => (
            Some(serde_json::to_string(&c.fields).map_err(json_error)?),
            Some(c.previous.to_string()),
        ),
        None => (None, None),
    };
    let cause = CAUSE.try_with(Cause::clone).ok();
    let row = Sql::new(
        "INSERT INTO events (id, org_id, type, occurred_at, resource_id, data, changed_fields, previous, \
         origin_flow, origin_depth, origin_root) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING seq",
    )
    .arg(ids::new_id(ids::EVENT))
    .arg(event.org_id)
    .arg(event.kind)
    .arg(now_ms())
    .arg(event.resource_id)
    .arg(event.data.to_string())
    .arg(changed_fields)
    .arg(previous)
    .arg(cause.as_ref().map(|c| c.flow_id.clone()))
    .arg(cause.as_ref().map_or(0, |c| c.depth))
    .arg(cause.map(|c| c.root))
    .fetch_one(&mut *tx)
    .await?;
    tx.note_event();
    row::get_i64(&row, "seq")
}

/// Logs the creation of `resource` as `{noun}.created`.
pub async fn created<T: Serialize>(
    tx: &mut Tx,
    org_id: &str,
    noun: &str,
    resource_id: &str,
    resource: &T,
) -> Result<()> {
    let data = serde_json::to_value(resource).map_err(json_error)?;
    append(
        tx,
        NewEvent {
            org_id,
            kind: format!("{noun}.created"),
            resource_id,
            data,
            changed: None,
        },
    )
    .await
    .map(drop)
}

/// Logs an update as `{noun}.updated` with the changed fields, unless nothing changed.
/// `(before, after)` is the resource as it was and as the write left it.
pub async fn updated<T: Serialize>(
    tx: &mut Tx,
    org_id: &str,
    noun: &str,
    resource_id: &str,
    (before, after): (&T, &T),
) -> Result<()> {
    let before = serde_json::to_value(before).map_err(json_error)?;
    let data = serde_json::to_value(after).map_err(json_error)?;
    let changes = Changes::between(&before, &data);
    if changes.is_empty() {
        return Ok(());
    }
    append(
        tx,
        NewEvent {
            org_id,
            kind: format!("{noun}.updated"),
            resource_id,
            data,
            changed: Some(changes),
        },
    )
    .await
    .map(drop)
}

/// Logs a deletion as `{noun}.deleted`, carrying the resource as it was.
pub async fn deleted<T: Serialize>(
    tx: &mut Tx,
    org_id: &str,
    noun: &str,
    resource_id: &str,
    last: &T,
) -> Result<()> {
    let data = serde_json::to_value(last).map_err(json_error)?;
    append(
        tx,
        NewEvent {
            org_id,
            kind: format!("{noun}.deleted"),
            resource_id,
            data,
            changed: None,
        },
    )
    .await
    .map(drop)
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Internal(format!("cannot serialise event data: {e}"))
}

/// What `GET /events` asks for.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub after: i64,
    pub types: Vec<String>,
    pub limit: i64,
}

impl EventQuery {
    pub const DEFAULT_LIMIT: i64 = 100;
    pub const MAX_LIMIT: i64 = 1000;

    /// Reads `after`, `types` and `limit` from query parameters.
    pub fn from_params(params: &[(String, String)]) -> Result<Self> {
        let mut query = EventQuery {
            after: 0,
            types: Vec::new(),
            limit: Self::DEFAULT_LIMIT,
        };
        for (name, value) in params {
            match name.as_str() {
                "after" => {
                    query.after = value
                        .parse()
                        .ok()
                        .filter(|v: &i64| *v >= 0)
                        .ok_or_else(|| {
                            Error::InvalidParameter(
                                "after must be a non-negative integer (an event seq)".into(),
                            )
                        })?
                }
                "types" => {
                    query.types = value
                        .split(',')
                        .map(str::trim)
                        .filter(|t| !t.is_empty())
                        .map(str::to_owned)
                        .collect()
                }
                "limit" => {
                    query.limit = value
                        .parse()
                        .ok()
                        .filter(|v| (1..=Self::MAX_LIMIT).contains(v))
                        .ok_or_else(|| {
                            Error::InvalidParameter(format!(
                                "limit must be an integer from 1 to {}",
                                Self::MAX_LIMIT
                            ))
                        })?
                }
                other => {
                    return Err(Error::InvalidParameter(format!(
                        "unknown parameter {}; expected after, types or limit",
                        crate::store::json::quote(other)
                    )));
                }
            }
        }
        Ok(query)
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    pub items: Vec<Event>,
    /// Pass as `after` to read on; equals `after` when nothing new was found.
    pub next_after: i64,
    pub has_more: bool,
}

/// Reads the caller's organization's log after a position.
pub async fn list(db: &Db, actor: &Actor, query: &EventQuery) -> Result<EventPage> {
    actor.require(Permission::ReadAll)?;
    let mut sql = Sql::new("SELECT * FROM events WHERE org_id = ? AND seq > ?")
        .arg(actor.org_id())
        .arg(query.after);
    if !query.types.is_empty() {
        sql.push(" AND type IN (");
        for (i, t) in query.types.iter().enumerate() {
            sql.push(if i == 0 { "?" } else { ", ?" }).bind(t);
        }
        sql.push(")");
    }
    if !actor.can(Permission::ReadFinancials) {
        // Invoices are for those who may read them, in the log as in `/invoices`.
        sql.push(" AND type NOT LIKE 'invoice.%'");
    }
    if !actor.can(Permission::ReadFlows) {
        // A flow's record carries its inbound URL, a credential; connections are flows' business.
        sql.push(
            " AND type NOT LIKE 'flow.%' AND type NOT LIKE 'run.%' AND type NOT LIKE 'connection.%'",
        );
    }
    sql.push(" ORDER BY seq LIMIT ?").bind(query.limit + 1);
    let rows = sql.fetch_all(db).await?;
    let has_more = rows.len() as i64 > query.limit;
    let items = rows
        .iter()
        .take(query.limit as usize)
        .map(event_from_row)
        .collect::<Result<Vec<_>>>()?;
    let next_after = items.last().map_or(query.after, |e| e.seq);
    Ok(EventPage {
        items,
        next_after,
        has_more,
    })
}

/// One event by id (for deliveries).
pub async fn by_id(db: &Db, id: &str) -> Result<Option<Event>> {
    Sql::new("SELECT * FROM events WHERE id = ?")
        .arg(id)
        .fetch_optional(db)
        .await?
        .map(|r| event_from_row(&r))
        .transpose()
}

/// Events of every organization after `seq`, in order (for the dispatcher).
pub async fn after(db: &Db, seq: i64, limit: i64) -> Result<Vec<Event>> {
    Sql::new("SELECT * FROM events WHERE seq > ? ORDER BY seq LIMIT ?")
        .arg(seq)
        .arg(limit)
        .fetch_all(db)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
}

/// A stretch of one organization's log of one event type: by position, by time, or both.
#[derive(Debug, Clone, Default)]
pub struct EventRange<'a> {
    pub org_id: &'a str,
    pub kind: &'a str,
    pub seq_from: Option<i64>,
    pub seq_to: Option<i64>,
    pub at_from: Option<Millis>,
    pub at_to: Option<Millis>,
}

/// The events of `range` in order, at most `limit`.
pub async fn in_range(db: &Db, range: &EventRange<'_>, limit: i64) -> Result<Vec<Event>> {
    let mut sql = Sql::new("SELECT * FROM events WHERE org_id = ? AND type = ?");
    sql.bind(range.org_id).bind(range.kind);
    let bounds = [
        (" AND seq >= ?", range.seq_from),
        (" AND seq <= ?", range.seq_to),
        (" AND occurred_at >= ?", range.at_from),
        (" AND occurred_at <= ?", range.at_to),
    ];
    for (clause, value) in bounds {
        if let Some(value) = value {
            sql.push(clause).bind(value);
        }
    }
    sql.push(" ORDER BY seq LIMIT ?").bind(limit);
    sql.fetch_all(db)
        .await?
        .iter()
        .map(event_from_row)
        .collect()
}

fn event_from_row(row: &row::Row) -> Result<Event> {
    let parse = |text: String| -> Result<Value> {
        serde_json::from_str(&text).map_err(|e| Error::Internal(format!("stored event data: {e}")))
    };
    Ok(Event {
        seq: row::get_i64(row, "seq")?,
        id: row::get_str(row, "id")?,
        kind: row::get_str(row, "type")?,
        occurred_at: format_ms(row::get_i64(row, "occurred_at")?),
        organization_id: row::get_str(row, "org_id")?,
        resource_id: row::get_str(row, "resource_id")?,
        data: parse(row::get_str(row, "data")?)?,
        changed_fields: row::get_opt_str(row, "changed_fields")?
            .map(|t| serde_json::from_str(&t))
            .transpose()
            .map_err(|e| Error::Internal(format!("stored event fields: {e}")))?,
        previous: row::get_opt_str(row, "previous")?.map(parse).transpose()?,
        origin_flow: row::get_opt_str(row, "origin_flow")?,
        origin_depth: row::get_i64(row, "origin_depth")?,
        origin_root: row::get_opt_str(row, "origin_root")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn changes_name_fields_and_old_values_but_not_updated_at() {
        let before = json!({"name": "A", "email": null, "updatedAt": "1", "n": 1});
        let after = json!({"name": "B", "email": "x@y.z", "updatedAt": "2", "n": 1});
        let c = Changes::between(&before, &after);
        assert_eq!(c.fields, vec!["email", "name"]);
        assert_eq!(c.previous, json!({"name": "A", "email": null}));
    }
}
