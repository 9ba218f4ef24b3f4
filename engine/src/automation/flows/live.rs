//! Enabled flows as the workers need them: which flows listen to an event, own an inbound
//! token or run on a schedule, and what they record when a run fails or succeeds.

use serde_json::{Map, Value, json};

use super::condition::{self, Condition};
use super::json_column;
use super::program::{self, Block};
use super::settings::Settings;
use crate::access::auth::{Actor, ApiKeyRef, Conditions, Role};
use crate::automation::connections::Vault;
use crate::error::{Error, Problems, Result};
use crate::store::db::{Db, Sql, row};

#[derive(Debug, Clone)]
pub struct LiveFlow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub trigger: Value,
    /// The steps, parsed.
    pub program: Block,
    /// An event trigger's condition, parsed.
    pub condition: Option<Condition>,
    pub settings: Settings,
    /// The version of the definition above.
    pub version: i64,
    /// Its runs that failed in a row, as last counted.
    pub consecutive_failures: i64,
    pub created_by: String,
    /// An inbound webhook's signing secret, sealed (see [`LiveFlow::webhook_secret`]).
    sealed_secret: Option<String>,
    /// Events from before this instant do not start it.
    pub enabled_at: Option<i64>,
    /// The error shown on the flow, if any (a success clears it).
    pub last_error: Option<String>,
    /// Whether it is enabled (an inbound call may reach a disabled flow that listens for
    /// samples).
    pub is_enabled: bool,
    /// Until then its inbound calls are kept as samples, not runs.
    pub listen_until: Option<i64>,
}

pub(crate) fn live_from_row(r: &row::Row) -> Result<LiveFlow> {
    let id = row::get_str(r, "id")?;
    let (trigger, program, condition) =
        parsed(&id, json_column(r, "trigger")?, &json_column(r, "steps")?);
    Ok(LiveFlow {
        id,
        org_id: row::get_str(r, "org_id")?,
        name: row::get_str(r, "name")?,
        trigger,
        program,
        condition,
        settings: Settings::from_stored(&row::get_str(r, "settings")?),
        version: row::get_i64(r, "version")?,
        consecutive_failures: row::get_i64(r, "consecutive_failures")?,
        created_by: row::get_str(r, "created_by")?,
        sealed_secret: row::get_opt_str(r, "webhook_secret")?,
        enabled_at: row::get_opt_i64(r, "enabled_at")?,
        last_error: row::get_opt_str(r, "last_error")?,
        is_enabled: row::get_bool(r, "is_enabled")?,
        listen_until: row::get_opt_i64(r, "listen_until")?,
    })
}

impl LiveFlow {
    /// Whether its inbound calls are kept as samples now.
    pub fn listening_for_samples(&self) -> bool {
        self.listen_until
            .is_some_and(|until| until > crate::store::clock::now_ms())
    }
}

/// A stored definition parsed for running: the trigger, the program and an event trigger's
/// condition.
fn parsed(id: &str, trigger: Value, steps: &Value) -> (Value, Block, Option<Condition>) {
    let mut problems = Problems::default();
    let program = program::parse(&mut problems, steps, "steps", None);
    let condition = match trigger.get("condition") {
        None | Some(Value::Null) => None,
        Some(c) => condition::parse(&mut problems, c, "trigger.condition"),
    };
    // A stored flow was checked when saved; should one not parse any more, its runs fail
    // with the reason instead of the flow failing to load.
    let program = match program.filter(|_| problems.is_empty()) {
        Some(program) => program,
        None => {
            let reason = match problems.into_result() {
                Err(Error::Validation(errors)) => errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.message))
                    .collect::<Vec<_>>()
                    .join("; "),
                _ => "its steps do not parse".into(),
            };
            tracing::warn!(flow = %id, %reason, "A stored flow does not parse.");
            vec![program::Node {
                key: "definition".into(),
                kind: program::NodeKind::Stop {
                    status: program::StopStatus::Failed,
                    message: Some(Value::String(format!(
                        "the flow's definition is invalid: {reason}"
                    ))),
                },
            }]
        }
    };
    (trigger, program, condition)
}

impl LiveFlow {
    /// An inbound webhook's signing secret, opened.
    pub fn webhook_secret(&self, vault: &Vault) -> Result<Option<String>> {
        self.sealed_secret
            .as_deref()
            .map(|s| vault.open_text(&self.id, s))
            .transpose()
    }

    /// How an inbound webhook's sender signs (`standard`, `stripe`, `github`, `slack`,
    /// `hmac`); none when the flow has no secret.
    pub fn signature(&self) -> Option<&str> {
        self.trigger["signature"].as_str()
    }
}

/// Seals the inbound webhook secrets earlier versions kept in plaintext (in `webhook_secret`,
/// and a copy inside the stored trigger, which is dropped) and names their scheme on the
/// trigger: `hmac`, the body-only signature their senders use, so they keep working. A value is
/// taken for sealed only when it opens, so a plaintext secret that looks sealed is sealed too.
/// Idempotent; answers how many flows it changed.
pub async fn seal_plaintext_secrets(db: &Db, vault: &Vault) -> Result<u64> {
    let rows =
        Sql::new("SELECT id, trigger, webhook_secret FROM flows WHERE trigger_type = 'webhook'")
            .fetch_all(db)
            .await?;
    let mut changed = 0;
    for r in &rows {
        let id = row::get_str(r, "id")?;
        let text = row::get_str(r, "trigger")?;
        let secret = row::get_opt_str(r, "webhook_secret")?;
        let mut trigger: Value = serde_json::from_str(&text)
            .map_err(|e| Error::Internal(format!("stored flow trigger: {e}")))?;
        let Some(object) = trigger.as_object_mut() else {
            continue;
        };
        object.remove("secret");
        let scheme = match (&secret, object.get("signature")) {
            (Some(_), Some(Value::String(s))) => json!(s),
            (Some(_), _) => json!("hmac"),
            (None, _) => Value::Null,
        };
        object.insert("signature".into(), scheme);
        let sealed = match &secret {
            Some(s) if !vault.is_sealed_text(&id, s) => Some(vault.seal_text(&id, s)?),
            other => other.clone(),
        };
        let upgraded = trigger.to_string();
        if upgraded == text && sealed == secret {
            continue;
        }
        // Only the row as read: a flow saved meanwhile (by a process already sealing) stays.
        changed += db
            .write_count(
                &Sql::new(
                    "UPDATE flows SET trigger = ?, webhook_secret = ? WHERE id = ? AND trigger = ? \
                     AND COALESCE(webhook_secret, '') = COALESCE(?, '')",
                )
                .arg(upgraded)
                .arg(sealed)
                .arg(&id)
                .arg(text)
                .arg(secret),
            )
            .await?;
    }
    Ok(changed)
}

/// Refuses to start a run that could not do anything: the organization is read-only (403
/// `organization_read_only`, as for its writes), or the owner whose role the steps act with is
/// removed or deactivated (409 `flow_owner_inactive`).
pub async fn check_runnable(db: &Db, flow: &LiveFlow) -> Result<()> {
    runnable_actor(db, flow).await.map(drop)
}

/// [`check_runnable`], answering the actor the flow's steps act as (its owner, on the flow's
/// behalf), read with the same two queries.
pub async fn runnable_actor(db: &Db, flow: &LiveFlow) -> Result<Actor> {
    let organization = crate::access::organizations::find(db, &flow.org_id).await?;
    let owner = Sql::new(
        "SELECT email AS owner_email, name AS owner_name, role AS owner_role, \
         is_active AS owner_is_active FROM org_users WHERE id = ? AND org_id = ? AND deleted_at IS NULL",
    )
    .arg(&flow.created_by)
    .arg(&flow.org_id)
    .fetch_optional(db)
    .await?;
    actor_of(flow, organization, owner.as_ref())
}

/// The actor a flow's steps act as, from its organization and its owner's row (`owner_`
/// columns; none when the owner is removed): refused as [`check_runnable`] says.
fn actor_of(
    flow: &LiveFlow,
    organization: crate::access::organizations::Organization,
    owner: Option<&row::Row>,
) -> Result<Actor> {
    if organization.billing_state == crate::access::organizations::BillingState::ReadOnly {
        return Err(Error::Forbidden {
            code: "organization_read_only",
            message: "the organization is read-only: its flows start no runs".into(),
        });
    }
    let owner = match owner {
        Some(row) if row::get_bool(row, "owner_is_active")? => row,
        _ => {
            return Err(Error::Conflict {
                code: "flow_owner_inactive",
                message:
                    "the flow's owner (whose role its steps act with) is removed or deactivated: \
                          reactivate them, or have an active admin create the flow again"
                        .into(),
            });
        }
    };
    let role = Role::parse(&row::get_str(owner, "owner_role")?)
        .ok_or_else(|| Error::Internal("unknown role stored".into()))?;
    Ok(Actor {
        organization,
        user_id: flow.created_by.clone(),
        user_email: row::get_str(owner, "owner_email")?,
        user_name: row::get_str(owner, "owner_name")?,
        role,
        api_key: acting_key(flow),
        conditions: Conditions::default(),
    })
}

/// What a flow's steps act through: the flow, as if it were a key of its owner.
pub fn acting_key(flow: &LiveFlow) -> ApiKeyRef {
    ApiKeyRef {
        id: format!("flow:{}", flow.id),
        name: flow.name.clone(),
        prefix: String::new(),
        expires_at: None,
    }
}

/// Enabled flows of an organization listening to `event_type`.
pub async fn listening(
    conn: impl crate::store::db::QueryTarget,
    org_id: &str,
    event_type: &str,
) -> Result<Vec<LiveFlow>> {
    Sql::new(
        "SELECT * FROM flows WHERE org_id = ? AND event_type = ? AND is_enabled = 1 AND deleted_at IS NULL",
    )
    .arg(org_id)
    .arg(event_type)
    .fetch_all(conn)
    .await?
    .iter()
    .map(live_from_row)
    .collect()
}

/// A flow's columns with its organization's (`org_…`) and its owner's (`owner_…`, NULL when
/// the owner is removed): what a run needs besides the flow, in the flow's statement.
const WITH_ORGANIZATION_AND_OWNER: &str = "SELECT f.*, o.name AS org_name, o.plan AS org_plan, \
     o.billing_state AS org_billing_state, o.currency AS org_currency, o.timezone AS org_timezone, \
     o.week_starts_on AS org_week_starts_on, o.created_at AS org_created_at, \
     o.updated_at AS org_updated_at, u.email AS owner_email, u.name AS owner_name, \
     u.role AS owner_role, u.is_active AS owner_is_active \
     FROM flows f JOIN organizations o ON o.id = f.org_id \
     LEFT JOIN org_users u ON u.id = f.created_by AND u.org_id = f.org_id AND u.deleted_at IS NULL";

/// The parts of a [`WITH_ORGANIZATION_AND_OWNER`] row; the owner's columns when there is one.
fn with_organization_and_owner(
    found: &row::Row,
) -> Result<(
    LiveFlow,
    crate::access::organizations::Organization,
    Option<&row::Row>,
)> {
    let flow = live_from_row(found)?;
    let organization = crate::access::organizations::Organization::from_columns(found, "org_")?;
    // No owner row: the LEFT JOIN's columns are NULL.
    let owner = row::get_opt_str(found, "owner_email")?.map(|_| found);
    Ok((flow, organization, owner))
}

/// The flow behind an inbound webhook token (enabled, or listening for samples), and whether
/// it can run: the actor its steps act as, or why not (as [`runnable_actor`]). One query: an
/// inbound call reads nothing else before its run is written.
pub async fn by_token(db: &Db, token: &str) -> Result<Option<(LiveFlow, Result<Actor>)>> {
    let mut sql = Sql::new(WITH_ORGANIZATION_AND_OWNER);
    sql.push(
        " WHERE f.webhook_token = ? AND (f.is_enabled = 1 OR f.listen_until > ?) \
         AND f.deleted_at IS NULL",
    )
    .bind(token)
    .bind(crate::store::clock::now_ms());
    let Some(found) = sql.fetch_optional(db).await? else {
        return Ok(None);
    };
    let (flow, organization, owner) = with_organization_and_owner(&found)?;
    let actor = actor_of(&flow, organization, owner);
    Ok(Some((flow, actor)))
}

/// A flow by id as a run that started on `version` executes it (its definition then, the rest
/// as now; the live one when `version` is it or is not kept), with the actor its steps act as
/// or why there is none (as [`crate::access::auth::acting_user`] answers). The flow, its
/// organization and its owner are one statement; an older version's definition is a second.
pub async fn for_run(
    db: &Db,
    id: &str,
    version: Option<i64>,
) -> Result<Option<(LiveFlow, Result<Actor>)>> {
    let mut sql = Sql::new(WITH_ORGANIZATION_AND_OWNER);
    sql.push(" WHERE f.id = ? AND f.deleted_at IS NULL")
        .bind(id);
    let Some(found) = sql.fetch_optional(db).await? else {
        return Ok(None);
    };
    let (flow, organization, owner) = with_organization_and_owner(&found)?;
    let actor =
        crate::access::auth::acting_as(organization, &flow.created_by, owner, acting_key(&flow));
    Ok(Some((as_of(db, flow, version).await?, actor)))
}

/// Any flow (enabled or not) by id.
pub async fn live(db: &Db, id: &str) -> Result<Option<LiveFlow>> {
    Sql::new("SELECT * FROM flows WHERE id = ? AND deleted_at IS NULL")
        .arg(id)
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(live_from_row)
        .transpose()
}

/// `flow` (as it is now) with its definition as it was at `version`, when that is another and
/// is kept.
async fn as_of(db: &Db, mut flow: LiveFlow, version: Option<i64>) -> Result<LiveFlow> {
    let Some(version) = version.filter(|v| *v != flow.version) else {
        return Ok(flow);
    };
    if let Some(kept) = super::versions::definition(db, &flow.id, version).await? {
        let (trigger, program, condition) = parsed(&flow.id, kept.trigger, &kept.steps);
        flow.trigger = trigger;
        flow.program = program;
        flow.condition = condition;
        flow.settings = kept.settings;
        flow.version = version;
    }
    Ok(flow)
}

/// `flow` running `steps` instead of its own (a draft under test).
pub fn with_steps(mut flow: LiveFlow, steps: &Value) -> LiveFlow {
    let (_, program, _) = parsed(&flow.id, Value::Null, steps);
    flow.program = program;
    flow
}

/// Whether an event's record matches a trigger's filters (each field equal).
pub fn matches_filters(trigger: &Value, data: &Value) -> bool {
    trigger["filters"]
        .as_object()
        .is_none_or(|filters| filters.iter().all(|(field, value)| &data[field] == value))
}

/// What an event trigger's condition sees: the record as `trigger`, and the event as `event`
/// (`{type, changedFields, previous}`, the last two empty for other than updates).
pub fn condition_context(event: &crate::store::events::Event) -> Value {
    json!({
        "trigger": event.data,
        "event": {
            "type": event.kind,
            "changedFields": event.changed_fields.clone().unwrap_or_default(),
            "previous": event.previous.clone().unwrap_or_else(|| json!({})),
        },
    })
}

/// Whether `event` starts `flow`: its filters match and its condition holds. A condition that
/// cannot be evaluated (values that do not compare) starts nothing; the reason is returned.
pub fn starts_on(flow: &LiveFlow, event: &crate::store::events::Event) -> Result<bool, String> {
    if !matches_filters(&flow.trigger, &event.data) {
        return Ok(false);
    }
    match &flow.condition {
        None => Ok(true),
        Some(condition) => condition
            .evaluate(&condition_context(event))
            .map(|e| e.result),
    }
}

/// Shows the last error on a flow (or clears it), so a failing flow is visible where it is
/// configured.
pub async fn note_error(db: &Db, id: &str, error: Option<&str>) -> Result<()> {
    // Unchanged errors are not written again: a busy failing flow costs no extra writes.
    db.write_count(
        &Sql::new(
            "UPDATE flows SET last_error = ? WHERE id = ? AND COALESCE(last_error, '') <> COALESCE(?, '')",
        )
        .arg(error)
        .arg(id)
        .arg(error),
    )
    .await
    .map(drop)
}

/// Keeps the map of an object's fields for templates (`flow` in a step's context).
pub fn context_of(flow: &LiveFlow) -> Value {
    let mut map = Map::new();
    map.insert("id".into(), json!(flow.id));
    map.insert("name".into(), json!(flow.name));
    Value::Object(map)
}

/// Enabled flows with a schedule trigger, across organizations (the scheduler's view).
pub async fn scheduled(db: &Db) -> Result<Vec<LiveFlow>> {
    Sql::new(
        "SELECT * FROM flows WHERE trigger_type = 'schedule' AND is_enabled = 1 AND deleted_at IS NULL",
    )
    .fetch_all(db)
    .await?
    .iter()
    .map(live_from_row)
    .collect()
}

/// Each organization's time zone (schedules are read in it unless a flow names its own).
pub async fn organization_zones(db: &Db) -> Result<std::collections::HashMap<String, String>> {
    Sql::new("SELECT id, timezone FROM organizations")
        .fetch_all(db)
        .await?
        .iter()
        .map(|r| Ok((row::get_str(r, "id")?, row::get_str(r, "timezone")?)))
        .collect()
}
