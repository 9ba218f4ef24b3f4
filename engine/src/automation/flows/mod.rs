//! Flows: "when this happens, do these steps". A trigger (an event of the log, an inbound
//! webhook, a cron schedule) and steps, each an action manifest with its input mapped by
//! templates from the trigger's record and earlier steps' outputs. A flow is checked whole
//! against the manifests before it is stored: every problem comes back with its field path.

use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::access::auth::{Actor, Permission};
use crate::automation::manifest::Manifests;
use crate::automation::quotas::Counted;
use crate::automation::saving::Saving;
use crate::error::{Error, Result};
use crate::store::clock::{format_ms, format_opt, now_ms};
use crate::store::db::{Db, Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::list::{self, FilterKind, ListParams, ListSpec, Page};
use crate::store::patch::Patch;
use crate::store::rows;

pub const NOUN: &str = "flow";
/// Where inbound webhook triggers are received, followed by the flow's token.
pub const INBOUND_PATH: &str = "/api/integration/v1/hooks/in/";
const TRIGGER_TYPES: [&str; 4] = ["event", "poll", "webhook", "schedule"];
/// How the sender of an inbound webhook signs its calls (`trigger.signature`): Standard
/// Webhooks, Stripe, GitHub, Slack, or the body-only HMAC of earlier versions.
pub const SIGNATURE_SCHEMES: [&str; 5] = ["standard", "stripe", "github", "slack", "hmac"];
/// The scheme of a new webhook trigger that has a secret and names no scheme.
pub const DEFAULT_SIGNATURE: &str = "standard";
/// The connections of an organization a flow may name, by id: their type and connector.
pub type ConnectionKinds =
    std::collections::BTreeMap<String, crate::automation::connections::ConnectionRef>;

pub const LIST: ListSpec = ListSpec {
    table: "flows",
    sorts: &[("name", "name")],
    filters: &[
        ("name", "name", FilterKind::Text),
        ("isEnabled", "is_enabled", FilterKind::Bool),
        ("triggerType", "trigger_type", FilterKind::Text),
        ("event", "event_type", FilterKind::Text),
    ],
    search: Some("name"),
    soft_delete: true,
};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Flow {
    /// `flw_…`
    pub id: String,
    #[schema(example = "New customer → project")]
    pub name: String,
    pub is_enabled: bool,
    /// `{type: "event", event, filters?}`, `{type: "webhook", signature, hasSecret, webhookUrl}`
    /// (`signature`: `standard`, `stripe`, `github`, `slack`, `hmac`, or null without a secret)
    /// or `{type: "schedule", schedule}`.
    #[schema(value_type = Object, example = json!({"type": "event", "event": "customer.created"}))]
    pub trigger: Value,
    /// The steps: actions `{key, action, connectionId, input, onError?, orCreate?}` and control
    /// nodes (`filter`, `if`, `switch`, `forEach`, `set`, `delay`, `stop`) with their `type`.
    #[schema(value_type = Vec<Object>, example = json!([{"key": "project", "action": "create_project", "connectionId": null, "input": {"customerId": "{{trigger.id}}", "name": "Onboarding {{trigger.name}}"}}]))]
    pub steps: Value,
    pub settings: Settings,
    /// The version of the definition (trigger, steps, settings) new runs start with: 1 when
    /// created, one more with each change of it. See `GET /flows/{id}/versions`.
    pub version: i64,
    /// Whether a draft is saved (`GET /flows/{id}/draft`).
    pub has_draft: bool,
    /// The user whose role the steps act with.
    pub created_by: String,
    pub enabled_at: Option<String>,
    pub last_error: Option<String>,
    /// When it last began a live run, to within a minute.
    pub last_triggered_at: Option<String>,
    /// Set when an enabled schedule or poll flow stopped firing when it should have: a fire
    /// time passed without its run, its poll is overdue, or its source failed at the last
    /// polls in a row.
    pub stalled: Option<watch::Stalled>,
    pub created_at: String,
    pub updated_at: String,
}

/// The body of `POST /flows` and `PATCH /flows/{id}`. On create `name`, `trigger` and `steps`
/// are required; a flow starts enabled unless `isEnabled` is false.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FlowInput {
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "New customer → project")]
    pub name: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub is_enabled: Patch<bool>,
    #[serde(default)]
    /// `{type: "event", event, filters?}`, `{type: "poll", connectionId, source, schedule}`,
    /// `{type: "webhook", signature?, secret?}` or `{type: "schedule", schedule}`. A webhook's
    /// `signature` names how its sender signs (`standard` (default with a secret), `stripe`,
    /// `github`, `slack` or `hmac`) and needs the `secret` it signs with (write-only).
    #[schema(value_type = Option<Object>, example = json!({"type": "webhook", "signature": "standard", "secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}))]
    pub trigger: Patch<Value>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<Object>>)]
    pub steps: Patch<Value>,
    /// `{timezone?, maxConcurrency?, maxRunsPerMinute?, disableAfterFailures?}`; fields not
    /// given keep their value.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub settings: Patch<Value>,
}

impl FlowInput {
    /// Whether it names a connector's action or trigger (`slack.post_message`): only then does
    /// checking it need the organization's connectors.
    pub fn names_a_connector(&self) -> bool {
        fn names(value: &Value) -> bool {
            match value {
                Value::Object(map) => map.iter().any(|(key, inner)| {
                    matches!((key.as_str(), inner), ("action" | "source", Value::String(s)) if s.contains('.'))
                        || names(inner)
                }),
                Value::Array(items) => items.iter().any(names),
                _ => false,
            }
        }
        [&self.trigger, &self.steps]
            .into_iter()
            .any(|part| matches!(part, Patch::Value(v) if names(v)))
    }
}

mod check;
pub mod condition;
pub mod drafts;
pub mod explain;
mod live;
pub mod program;
pub mod samples;
mod schedule;
pub mod settings;
pub mod versions;
pub mod watch;

use check::Record;
pub use check::standard_webhooks_key;
pub use live::*;
pub use schedule::{fire_times, parse_schedule};
pub use settings::Settings;

fn json_column(r: &row::Row, column: &str) -> Result<Value> {
    serde_json::from_str(&row::get_str(r, column)?)
        .map_err(|e| Error::Internal(format!("stored flow {column}: {e}")))
}

/// The trigger as the API shows it: a webhook's secret is never shown, its scheme and URL are.
fn shown_trigger(stored: &Value, token: Option<&str>, has_secret: bool) -> Value {
    let mut shown = stored.clone();
    if shown["type"] == "webhook"
        && let Some(object) = shown.as_object_mut()
    {
        object.remove("secret");
        object.entry("signature").or_insert(Value::Null);
        object.insert("hasSecret".into(), Value::Bool(has_secret));
        object.insert(
            "webhookUrl".into(),
            json!(token.map(|t| format!("{INBOUND_PATH}{t}"))),
        );
    }
    shown
}

pub(crate) fn from_row(r: &row::Row) -> Result<Flow> {
    let rec = Record::from_row(r, None)?;
    let token = row::get_opt_str(r, "webhook_token")?;
    let has_secret = row::get_opt_str(r, "webhook_secret")?.is_some();
    Ok(Flow {
        id: row::get_str(r, "id")?,
        name: rec.name,
        is_enabled: rec.is_enabled,
        trigger: shown_trigger(&rec.trigger.stored, token.as_deref(), has_secret),
        steps: rec.steps,
        settings: rec.settings,
        version: row::get_i64(r, "version")?,
        has_draft: row::get_opt_str(r, "draft")?.is_some(),
        created_by: row::get_str(r, "created_by")?,
        enabled_at: format_opt(row::get_opt_i64(r, "enabled_at")?),
        last_error: row::get_opt_str(r, "last_error")?,
        last_triggered_at: format_opt(row::get_opt_i64(r, "last_triggered_at")?),
        stalled: None,
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

fn new_token() -> String {
    let mut rng = rand::rng();
    (0..32)
        .map(|_| {
            let i = rng.random_range(0..62u8);
            char::from(match i {
                0..=9 => b'0' + i,
                10..=35 => b'a' + i - 10,
                _ => b'A' + i - 36,
            })
        })
        .collect()
}

pub async fn list(db: &Db, actor: &Actor, params: &ListParams) -> Result<Page<Flow>> {
    // Admins only: a flow's inbound URL is a credential, and its steps act as its owner.
    actor.require(Permission::ReadFlows)?;
    let mut page = list::list(db, actor.org_id(), &LIST, params, from_row).await?;
    let mut shown = Vec::with_capacity(page.items.len());
    for item in &mut page.items {
        if let list::Item::Live(flow) = item {
            shown.push(flow);
        }
    }
    watch::annotate(db, shown).await?;
    Ok(page)
}

pub async fn get(db: &Db, actor: &Actor, id: &str) -> Result<Flow> {
    actor.require(Permission::ReadFlows)?;
    let row = rows::live_row(db, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let mut flow = from_row(&row)?;
    watch::annotate(db, [&mut flow]).await?;
    Ok(flow)
}

/// Keeps the connector versions a flow is saved with (found in its definition by id), so that
/// its runs find them whatever becomes of the connectors.
async fn remember_connectors(tx: &mut Tx, manifests: &Manifests, rec: &Record) -> Result<()> {
    let mut ids = std::collections::BTreeSet::new();
    pinned(&rec.steps, &mut ids);
    pinned(&rec.trigger.stored, &mut ids);
    if ids.is_empty() {
        return Ok(());
    }
    let used: Vec<&crate::automation::connectors::Loaded> = manifests
        .connectors
        .values()
        .filter(|c| ids.contains(c.version_id.as_str()))
        .map(|c| &**c)
        .collect();
    crate::automation::connectors::store::remember(tx, &used).await
}

/// The connector versions (`connector: cnv_…`) named anywhere in a definition.
fn pinned<'v>(value: &'v Value, out: &mut std::collections::BTreeSet<&'v str>) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                match (key.as_str(), inner) {
                    ("connector", Value::String(id)) => {
                        out.insert(id);
                    }
                    _ => pinned(inner, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|i| pinned(i, out)),
        _ => {}
    }
}

pub async fn create(db: &Db, saving: Saving<'_>, actor: &Actor, input: FlowInput) -> Result<Flow> {
    let Saving {
        manifests,
        vault,
        quotas,
        ..
    } = saving;
    actor.require(Permission::ManageFlows)?;
    let mut tx = events::begin_write(db).await?;
    let connections = crate::automation::connections::kinds(&mut tx, actor.org_id()).await?;
    let rec = Record::apply(manifests, &connections, input, None)?;
    quotas
        .check(&mut tx, actor.org_id(), Counted::Flows)
        .await?;
    let id = ids::new_id(ids::FLOW);
    let now = now_ms();
    let token = (rec.trigger.kind == "webhook").then(new_token);
    let secret = rec
        .trigger
        .secret
        .as_deref()
        .map(|s| vault.seal_text(&id, s))
        .transpose()?;
    Sql::new(
        "INSERT INTO flows (id, org_id, name, is_enabled, trigger_type, event_type, trigger, steps, settings, \
         max_concurrency, webhook_token, webhook_secret, created_by, enabled_at, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(actor.org_id())
    .arg(&rec.name)
    .arg(rec.is_enabled)
    .arg(&rec.trigger.kind)
    .arg(rec.trigger.event.clone())
    .arg(rec.trigger.stored.to_string())
    .arg(rec.steps.to_string())
    .arg(rec.settings.to_stored())
    .arg(rec.settings.max_concurrency.map(i64::from))
    .arg(token)
    .arg(secret)
    .arg(actor.user_id.as_str())
    .arg(rec.is_enabled.then_some(now))
    .arg(now)
    .arg(now)
    .execute(&mut tx)
    .await?;
    versions::keep(&mut tx, &id, 1, &rec, &actor.user_id).await?;
    remember_connectors(&mut tx, manifests, &rec).await?;
    let flow = reload(&mut tx, &id).await?;
    crate::automation::polls::follow(&mut tx, &flow).await?;
    events::created(&mut tx, actor.org_id(), NOUN, &id, &flow).await?;
    crate::access::idempotency::record(
        &mut tx,
        actor,
        crate::access::idempotency::Answer::Created,
        &flow,
    )
    .await?;
    tx.commit().await?;
    Ok(flow)
}

/// What the watch says of a flow before a change, so that the answer, and the representation
/// an `If-Match` is checked against, are the ones `GET` shows.
struct Watched {
    stalled: Option<watch::Stalled>,
}

impl Watched {
    fn shown(&self, flow: &Flow) -> Flow {
        Flow {
            stalled: self.stalled.clone(),
            ..flow.clone()
        }
    }
}

async fn watched_now(db: &Db, actor: &Actor, id: &str) -> Result<Watched> {
    let flow = get(db, actor, id).await?;
    Ok(Watched {
        stalled: flow.stalled,
    })
}

/// A flow as stored now, inside `tx`.
pub(crate) async fn reload(tx: &mut Tx, id: &str) -> Result<Flow> {
    from_row(
        &Sql::new("SELECT * FROM flows WHERE id = ?")
            .arg(id)
            .fetch_one(&mut *tx)
            .await?,
    )
}

pub async fn update(
    db: &Db,
    saving: Saving<'_>,
    actor: &Actor,
    id: &str,
    input: FlowInput,
) -> Result<Flow> {
    let Saving {
        manifests, vault, ..
    } = saving;
    actor.require(Permission::ManageFlows)?;
    let watched = watched_now(db, actor, id).await?;
    let mut tx = events::begin_write(db).await?;
    let row = rows::live_row(&mut tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let before = from_row(&row)?;
    actor.check_if_match(&watched.shown(&before))?;
    let sealed = row::get_opt_str(&row, "webhook_secret")?;
    let opened = sealed
        .as_deref()
        .map(|s| vault.open_text(id, s))
        .transpose()?;
    let current = Record::from_row(&row, opened)?;
    let connections = crate::automation::connections::kinds(&mut tx, actor.org_id()).await?;
    let rec = Record::apply(manifests, &connections, input, Some(&current))?;
    if rec == current {
        return Ok(watched.shown(&before));
    }
    // An unchanged secret keeps its sealed value; a new one is sealed.
    let sealed = match &rec.trigger.secret {
        None => None,
        Some(s) if current.trigger.secret.as_ref() == Some(s) => sealed,
        Some(s) => Some(vault.seal_text(id, s)?),
    };
    let token = match (
        rec.trigger.kind.as_str(),
        row::get_opt_str(&row, "webhook_token")?,
    ) {
        ("webhook", Some(token)) => Some(token),
        ("webhook", None) => Some(new_token()),
        _ => None,
    };
    let version = if versions::differs(&rec, &current) {
        versions::keep(&mut tx, id, before.version + 1, &rec, &actor.user_id).await?;
        remember_connectors(&mut tx, manifests, &rec).await?;
        before.version + 1
    } else {
        before.version
    };
    let enabled_at = match (current.is_enabled, rec.is_enabled) {
        (false, true) => Some(now_ms()),
        (_, true) => row::get_opt_i64(&row, "enabled_at")?,
        (_, false) => None,
    };
    Sql::new(
        "UPDATE flows SET name = ?, is_enabled = ?, trigger_type = ?, event_type = ?, trigger = ?, steps = ?, \
         settings = ?, max_concurrency = ?, webhook_token = ?, webhook_secret = ?, enabled_at = ?, last_error = ?, \
         consecutive_failures = CASE WHEN ? = 1 THEN 0 ELSE consecutive_failures END, version = ?, updated_at = ? WHERE id = ?",
    )
    .arg(&rec.name)
    .arg(rec.is_enabled)
    .arg(&rec.trigger.kind)
    .arg(rec.trigger.event.clone())
    .arg(rec.trigger.stored.to_string())
    .arg(rec.steps.to_string())
    .arg(rec.settings.to_stored())
    .arg(rec.settings.max_concurrency.map(i64::from))
    .arg(token)
    .arg(sealed)
    .arg(enabled_at)
    .arg(if rec.is_enabled { before.last_error.clone() } else { None })
    // Enabled again: its failure streak starts over.
    .arg(i64::from(!current.is_enabled && rec.is_enabled))
    .arg(version)
    .arg(now_ms())
    .arg(id)
    .execute(&mut tx)
    .await?;
    let after = reload(&mut tx, id).await?;
    crate::automation::polls::follow(&mut tx, &after).await?;
    events::updated(&mut tx, actor.org_id(), NOUN, id, (&before, &after)).await?;
    crate::access::idempotency::record(
        &mut tx,
        actor,
        crate::access::idempotency::Answer::Changed,
        &after,
    )
    .await?;
    tx.commit().await?;
    let mut after = after;
    watch::annotate(db, [&mut after]).await?;
    Ok(after)
}

/// `POST /flows/{id}/enable|disable`.
pub async fn set_enabled(
    db: &Db,
    saving: Saving<'_>,
    actor: &Actor,
    id: &str,
    enabled: bool,
) -> Result<Flow> {
    let input = FlowInput {
        is_enabled: Patch::Value(enabled),
        ..FlowInput::default()
    };
    update(db, saving, actor, id, input).await
}

pub async fn delete(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(Permission::ManageFlows)?;
    let watched = watched_now(db, actor, id).await?;
    let mut tx = events::begin_write(db).await?;
    let row = rows::live_row(&mut tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let last = from_row(&row)?;
    actor.check_if_match(&watched.shown(&last))?;
    let now = now_ms();
    // The token is freed with the flow: its inbound URL answers 404 from now on.
    Sql::new(
        "UPDATE flows SET is_enabled = 0, webhook_token = NULL, deleted_at = ?, updated_at = ? WHERE id = ?",
    )
    .arg(now)
    .arg(now)
    .arg(id)
    .execute(&mut tx)
    .await?;
    events::deleted(&mut tx, actor.org_id(), NOUN, id, &last).await?;
    tx.commit().await
}

#[cfg(test)]
#[path = "../fuzz/flows.rs"]
mod fuzz;
