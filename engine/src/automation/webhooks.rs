//! Webhooks (registered by integrators, signed, with a secret shown once) and REST hooks (the
//! subscriptions Zapier, Make and Workato create). Both are subscriptions to the event log; the
//! dispatcher turns each matching event into a delivery.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::access::auth::{Actor, Permission};
use crate::automation::connections::{SEALED_PREFIX, Vault};
use crate::automation::quotas::Counted;
use crate::automation::saving::Saving;
use crate::automation::targets::Targets;
use crate::error::{Error, FieldError, Problems, Result};
use crate::store::checks::{self, LONG_TEXT};
use crate::store::clock::{Millis, format_ms, format_opt, now_ms};
use crate::store::db::{Arg, Db, Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::list::{self, FilterKind, ListParams, ListSpec, Page};
use crate::store::patch::Patch;
use crate::store::rows;

/// Every event type a subscription may name (besides `*`): those of the log.
pub use crate::store::events::TYPES as EVENT_TYPES;

/// How long the old secret still signs after a rotation.
pub const ROTATION_OVERLAP_MS: i64 = 24 * 3600 * 1000;

pub const LIST: ListSpec = ListSpec {
    table: "subscriptions",
    sorts: &[],
    filters: &[("isEnabled", "is_enabled", FilterKind::Bool)],
    search: None,
    soft_delete: true,
};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    /// `whk_…`
    pub id: String,
    pub url: String,
    /// Event types, or `*` for all.
    pub events: Vec<String>,
    pub description: Option<String>,
    pub is_enabled: bool,
    /// Why it was disabled by timix (a `410`, or failing for five days).
    pub disabled_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The answer to a creation or a rotation: the only time the secret is shown.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebhookWithSecret {
    #[serde(flatten)]
    pub webhook: Webhook,
    /// `whsec_…`: verify signatures with it (Standard Webhooks).
    pub secret: String,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookInput {
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "https://example.com/timix")]
    pub url: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<String>>, example = json!(["customer.created"]))]
    pub events: Patch<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub description: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub is_enabled: Patch<bool>,
}

/// A REST hook as Zapier, Make and Workato see it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Hook {
    /// `hook_…`
    pub id: String,
    pub target_url: String,
    pub event: String,
    /// Exact-match conditions on the event's `data` fields.
    pub filters: Option<Value>,
    pub created_at: String,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HookInput {
    #[serde(alias = "target_url", alias = "url", alias = "hookUrl")]
    #[serde(rename = "targetUrl")]
    pub target_url: Option<String>,
    pub event: Option<String>,
    pub filters: Option<Value>,
}

/// A subscription as the dispatcher and the deliverer need it.
#[derive(Debug, Clone)]
pub struct Subscription {
    pub id: String,
    pub org_id: String,
    pub kind: String,
    pub url: String,
    pub events: Vec<String>,
    pub filters: Option<Value>,
    /// The signing secret, sealed (see [`Subscription::secrets`]).
    sealed_secret: String,
    /// The secret before the last rotation, sealed, while it still signs.
    sealed_previous: Option<String>,
    pub is_enabled: bool,
    pub failing_since: Option<Millis>,
    /// Events that occurred before the subscription existed are not sent to it.
    pub created_at: Millis,
}

impl Subscription {
    /// Whether an event of `kind` with `data` goes to this subscription.
    pub fn wants(&self, kind: &str, data: &Value) -> bool {
        if !self.is_enabled {
            return false;
        }
        if kind == "webhook.test" {
            // A test goes to the webhook it names only.
            return data.get("webhookId").and_then(Value::as_str) == Some(self.id.as_str());
        }
        let named = self.events.iter().any(|e| e == "*" || e == kind);
        let filtered = match &self.filters {
            Some(Value::Object(conditions)) => conditions
                .iter()
                .all(|(field, wanted)| data.get(field) == Some(wanted)),
            _ => true,
        };
        named && filtered
    }

    /// The secrets that sign a delivery, opened: the current one, and the one before a
    /// rotation while it still signs.
    pub fn secrets(&self, vault: &Vault) -> Result<Vec<String>> {
        std::iter::once(&self.sealed_secret)
            .chain(&self.sealed_previous)
            .map(|sealed| vault.open_text(&self.id, sealed))
            .collect()
    }

    pub(crate) fn from_row(r: &row::Row) -> Result<Self> {
        let now = now_ms();
        let previous_until = row::get_opt_i64(r, "previous_secret_until")?;
        Ok(Self {
            id: row::get_str(r, "id")?,
            org_id: row::get_str(r, "org_id")?,
            kind: row::get_str(r, "kind")?,
            url: row::get_str(r, "url")?,
            events: parse_json(&row::get_str(r, "events")?)?,
            filters: row::get_opt_str(r, "filters")?
                .map(|f| parse_json(&f))
                .transpose()?,
            sealed_secret: row::get_str(r, "secret")?,
            sealed_previous: row::get_opt_str(r, "previous_secret")?
                .filter(|_| previous_until.is_some_and(|t| t > now)),
            is_enabled: row::get_bool(r, "is_enabled")?,
            failing_since: row::get_opt_i64(r, "failing_since")?,
            created_at: row::get_i64(r, "created_at")?,
        })
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(text: &str) -> Result<T> {
    serde_json::from_str(text).map_err(|e| Error::Internal(format!("stored JSON: {e}")))
}

fn webhook_from_row(r: &row::Row) -> Result<Webhook> {
    Ok(Webhook {
        id: row::get_str(r, "id")?,
        url: row::get_str(r, "url")?,
        events: parse_json(&row::get_str(r, "events")?)?,
        description: row::get_opt_str(r, "description")?,
        is_enabled: row::get_bool(r, "is_enabled")?,
        disabled_reason: row::get_opt_str(r, "disabled_reason")?,
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

fn hook_from_row(r: &row::Row) -> Result<Hook> {
    let events: Vec<String> = parse_json(&row::get_str(r, "events")?)?;
    Ok(Hook {
        id: row::get_str(r, "id")?,
        target_url: row::get_str(r, "url")?,
        event: events.into_iter().next().unwrap_or_default(),
        filters: row::get_opt_str(r, "filters")?
            .map(|f| parse_json(&f))
            .transpose()?,
        created_at: format_ms(row::get_i64(r, "created_at")?),
    })
}

/// `whsec_` + base64 of 32 random bytes.
pub fn new_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("whsec_{}", STANDARD.encode(bytes))
}

/// An http(s) URL with a host, not naming a private address outright (unless the operator
/// allows it). Where a name leads is checked when delivering (SSRF guard).
fn check_url(targets: Targets, field: &str, url: &str) -> Result<String, FieldError> {
    let url = url.trim();
    targets.check(field, url)?;
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    match rest {
        Some(rest)
            if !rest.is_empty()
                && !rest.starts_with('/')
                && url.len() <= 2048
                && !url.contains(char::is_whitespace) =>
        {
            Ok(url.to_owned())
        }
        _ => Err(FieldError::new(
            field,
            "invalid",
            format!("{field} must be an http or https URL"),
        )),
    }
}

fn check_events(field: &str, events: &[String]) -> Result<(), FieldError> {
    if events.is_empty() {
        return Err(FieldError::new(
            field,
            "required",
            format!("{field} needs at least one event type or *"),
        ));
    }
    match events
        .iter()
        .find(|e| *e != "*" && !EVENT_TYPES.contains(&e.as_str()))
    {
        Some(bad) => Err(FieldError::new(
            field,
            "invalid",
            format!("unknown event type {}", crate::store::json::quote(bad)),
        )),
        None => Ok(()),
    }
}

async fn live_subscription(
    runner: impl crate::store::db::Runner,
    actor: &Actor,
    kind: &str,
    id: &str,
) -> Result<row::Row> {
    rows::live_row(runner, LIST.table, actor.org_id(), id)
        .await?
        .filter(|r| row::get_str(r, "kind").is_ok_and(|k| k == kind))
        .ok_or(Error::NotFound(if kind == "hook" {
            "hook"
        } else {
            "webhook"
        }))
}

pub async fn list_webhooks(db: &Db, actor: &Actor, params: &ListParams) -> Result<Page<Webhook>> {
    actor.require(Permission::ManageWebhooks)?;
    // Hooks live in the same table; this list shows webhooks only.
    let fixed = [("kind", Arg::from("webhook"))];
    list::list_where(db, actor.org_id(), &LIST, params, &fixed, webhook_from_row).await
}

pub async fn get_webhook(db: &Db, actor: &Actor, id: &str) -> Result<Webhook> {
    actor.require(Permission::ManageWebhooks)?;
    webhook_from_row(&live_subscription(db, actor, "webhook", id).await?)
}

pub async fn create_webhook(
    db: &Db,
    saving: Saving<'_>,
    actor: &Actor,
    input: WebhookInput,
) -> Result<WebhookWithSecret> {
    actor.require(Permission::ManageWebhooks)?;
    let mut p = Problems::default();
    let url = match input.url {
        Patch::Value(u) => p.take(check_url(saving.targets, "url", &u)),
        _ => {
            p.push(FieldError::required("url"));
            None
        }
    };
    let events = input
        .events
        .into_option()
        .unwrap_or_else(|| vec!["*".to_owned()]);
    p.take(check_events("events", &events));
    let description = p
        .take(checks::opt_text(
            "description",
            input.description.into_option(),
            LONG_TEXT,
        ))
        .flatten();
    let is_enabled = input.is_enabled.into_option().unwrap_or(true);
    p.into_result()?;
    let url = url.ok_or_else(|| Error::Internal("url missing after validation".into()))?;
    let secret = new_secret();
    let mut tx = db.begin().await?;
    saving
        .quotas
        .check(&mut tx, actor.org_id(), Counted::Webhooks)
        .await?;
    let id = insert(
        &mut tx,
        saving.vault,
        actor,
        NewSubscription {
            kind: "webhook",
            url: &url,
            events: &events,
            description,
            filters: None,
            is_enabled,
            secret: &secret,
        },
    )
    .await?;
    let row = Sql::new("SELECT * FROM subscriptions WHERE id = ?")
        .arg(&id)
        .fetch_one(&mut tx)
        .await?;
    let webhook = webhook_from_row(&row)?;
    crate::access::idempotency::record(&mut tx, actor, 201, &webhook).await?;
    tx.commit().await?;
    Ok(WebhookWithSecret { webhook, secret })
}

/// A subscription about to be stored.
struct NewSubscription<'a> {
    kind: &'a str,
    url: &'a str,
    events: &'a [String],
    description: Option<String>,
    filters: Option<&'a Value>,
    is_enabled: bool,
    /// In the clear: sealed on the way in.
    secret: &'a str,
}

async fn insert(
    tx: &mut Tx,
    vault: &Vault,
    actor: &Actor,
    new: NewSubscription<'_>,
) -> Result<String> {
    let NewSubscription {
        kind,
        url,
        events,
        description,
        filters,
        is_enabled,
        secret,
    } = new;
    let id = ids::new_id(if kind == "hook" { "hook" } else { "whk" });
    let sealed = vault.seal_text(&id, secret)?;
    let now = now_ms();
    Sql::new(
        "INSERT INTO subscriptions (id, org_id, kind, url, events, description, filters, is_enabled, secret, \
         created_by, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(actor.org_id())
    .arg(kind)
    .arg(url)
    .arg(serde_json::to_string(events).map_err(|e| Error::Internal(e.to_string()))?)
    .arg(description)
    .arg(filters.map(Value::to_string))
    .arg(is_enabled)
    .arg(sealed)
    .arg(&actor.user_id)
    .arg(now)
    .arg(now)
    .execute(&mut *tx)
    .await?;
    Ok(id)
}

pub async fn update_webhook(
    db: &Db,
    targets: Targets,
    actor: &Actor,
    id: &str,
    input: WebhookInput,
) -> Result<Webhook> {
    actor.require(Permission::ManageWebhooks)?;
    let mut tx = db.begin().await?;
    let row = live_subscription(&mut tx, actor, "webhook", id).await?;
    let before = webhook_from_row(&row)?;
    actor.check_if_match(&before)?;
    let mut p = Problems::default();
    let url = match input.url {
        Patch::Absent => Some(before.url.clone()),
        Patch::Null => {
            p.push(FieldError::required("url"));
            None
        }
        Patch::Value(u) => p.take(check_url(targets, "url", &u)),
    };
    let events =
        checks::patch_required(&mut p, "events", input.events, Some(before.events.clone()));
    if let Some(events) = &events {
        p.take(check_events("events", events));
    }
    let description = p.take(checks::opt_text(
        "description",
        input.description.apply(before.description.clone()),
        LONG_TEXT,
    ));
    let is_enabled = checks::patch_required(
        &mut p,
        "isEnabled",
        input.is_enabled,
        Some(before.is_enabled),
    );
    p.into_result()?;
    let (Some(url), Some(events), Some(description), Some(is_enabled)) =
        (url, events, description, is_enabled)
    else {
        return Err(Error::Internal(
            "webhook fields missing after validation".into(),
        ));
    };
    // Re-enabling clears timix's reason and the failure streak.
    Sql::new(
        "UPDATE subscriptions SET url = ?, events = ?, description = ?, is_enabled = ?, \
         disabled_reason = CASE WHEN ? = 1 THEN NULL ELSE disabled_reason END, \
         failing_since = CASE WHEN ? = 1 THEN NULL ELSE failing_since END, updated_at = ? WHERE id = ?",
    )
    .arg(url)
    .arg(serde_json::to_string(&events).map_err(|e| Error::Internal(e.to_string()))?)
    .arg(description)
    .arg(is_enabled)
    .arg(is_enabled && !before.is_enabled)
    .arg(is_enabled && !before.is_enabled)
    .arg(now_ms())
    .arg(id)
    .execute(&mut tx)
    .await?;
    let row = Sql::new("SELECT * FROM subscriptions WHERE id = ?")
        .arg(id)
        .fetch_one(&mut tx)
        .await?;
    let after = webhook_from_row(&row)?;
    crate::access::idempotency::record(&mut tx, actor, 200, &after).await?;
    tx.commit().await?;
    Ok(after)
}

pub async fn delete_webhook(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(Permission::ManageWebhooks)?;
    let mut tx = db.begin().await?;
    live_subscription(&mut tx, actor, "webhook", id).await?;
    rows::soft_delete(&mut tx, LIST.table, id, now_ms()).await?;
    tx.commit().await
}

/// A new secret; the old one keeps signing (a second signature) for 24 hours.
pub async fn rotate_secret(
    db: &Db,
    vault: &Vault,
    actor: &Actor,
    id: &str,
) -> Result<WebhookWithSecret> {
    actor.require(Permission::ManageWebhooks)?;
    let mut tx = db.begin().await?;
    let row = live_subscription(&mut tx, actor, "webhook", id).await?;
    // Sealed for this row, it moves to the other column as it is.
    let old = row::get_str(&row, "secret")?;
    let secret = new_secret();
    let now = now_ms();
    Sql::new(
        "UPDATE subscriptions SET secret = ?, previous_secret = ?, previous_secret_until = ?, updated_at = ? WHERE id = ?",
    )
    .arg(vault.seal_text(id, &secret)?)
    .arg(old)
    .arg(now + ROTATION_OVERLAP_MS)
    .arg(now)
    .arg(id)
    .execute(&mut tx)
    .await?;
    let row = Sql::new("SELECT * FROM subscriptions WHERE id = ?")
        .arg(id)
        .fetch_one(&mut tx)
        .await?;
    let webhook = webhook_from_row(&row)?;
    tx.commit().await?;
    Ok(WebhookWithSecret { webhook, secret })
}

/// Logs a `webhook.test` event that only this webhook receives.
pub async fn send_test(db: &Db, actor: &Actor, id: &str) -> Result<Value> {
    actor.require(Permission::ManageWebhooks)?;
    let mut tx = events::begin_write(db).await?;
    live_subscription(&mut tx, actor, "webhook", id).await?;
    let data = serde_json::json!({"webhookId": id, "message": "This is a test event from timix."});
    let seq = events::append(
        &mut tx,
        events::NewEvent {
            org_id: actor.org_id(),
            kind: "webhook.test".into(),
            resource_id: id,
            data: data.clone(),
            changed: None,
        },
    )
    .await?;
    tx.commit().await?;
    Ok(serde_json::json!({"webhookId": id, "eventSeq": seq}))
}

/// `POST /hooks`: the same target and event again answers the existing hook (`false`: not created).
pub async fn subscribe(
    db: &Db,
    saving: Saving<'_>,
    actor: &Actor,
    input: HookInput,
) -> Result<(Hook, bool)> {
    actor.require(Permission::ManageWebhooks)?;
    let mut p = Problems::default();
    let url = match input.target_url {
        Some(u) => p.take(check_url(saving.targets, "targetUrl", &u)),
        None => {
            p.push(FieldError::required("targetUrl"));
            None
        }
    };
    let event = match input.event {
        Some(e) => p.take(check_events("event", std::slice::from_ref(&e)).map(|_| e)),
        None => {
            p.push(FieldError::required("event"));
            None
        }
    };
    if let Some(filters) = &input.filters
        && !filters.is_object()
        && !filters.is_null()
    {
        p.add(
            "filters",
            "invalid",
            "filters must be an object of field: value conditions",
        );
    }
    p.into_result()?;
    let (Some(url), Some(event)) = (url, event) else {
        return Err(Error::Internal(
            "hook fields missing after validation".into(),
        ));
    };
    let filters = input.filters.filter(|f| !f.is_null());
    let events = vec![event];
    let events_json = serde_json::to_string(&events).map_err(|e| Error::Internal(e.to_string()))?;
    let mut tx = db.begin().await?;
    let existing = Sql::new(
        "SELECT * FROM subscriptions WHERE org_id = ? AND kind = 'hook' AND url = ? AND events = ? AND deleted_at IS NULL",
    )
    .arg(actor.org_id())
    .arg(&url)
    .arg(&events_json)
    .fetch_optional(&mut tx)
    .await?;
    if let Some(row) = existing {
        return Ok((hook_from_row(&row)?, false));
    }
    saving
        .quotas
        .check(&mut tx, actor.org_id(), Counted::Hooks)
        .await?;
    let id = insert(
        &mut tx,
        saving.vault,
        actor,
        NewSubscription {
            kind: "hook",
            url: &url,
            events: &events,
            description: None,
            filters: filters.as_ref(),
            is_enabled: true,
            secret: &new_secret(),
        },
    )
    .await?;
    let row = Sql::new("SELECT * FROM subscriptions WHERE id = ?")
        .arg(&id)
        .fetch_one(&mut tx)
        .await?;
    let hook = hook_from_row(&row)?;
    crate::access::idempotency::record(&mut tx, actor, 201, &hook).await?;
    tx.commit().await?;
    Ok((hook, true))
}

pub async fn list_hooks(db: &Db, actor: &Actor) -> Result<Vec<Hook>> {
    actor.require(Permission::ManageWebhooks)?;
    let rows = Sql::new(
        "SELECT * FROM subscriptions WHERE org_id = ? AND kind = 'hook' AND deleted_at IS NULL ORDER BY created_at DESC, id DESC",
    )
    .arg(actor.org_id())
    .fetch_all(db)
    .await?;
    rows.iter().map(hook_from_row).collect()
}

/// `DELETE /hooks/{id}`: succeeds also when the hook is already gone.
pub async fn unsubscribe(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(Permission::ManageWebhooks)?;
    let mut tx = db.begin().await?;
    if live_subscription(&mut tx, actor, "hook", id).await.is_ok() {
        rows::soft_delete(&mut tx, LIST.table, id, now_ms()).await?;
    }
    tx.commit().await
}

/// Seals the signing secrets (current and previous) earlier versions kept in plaintext.
/// Idempotent; answers how many subscriptions it changed.
pub async fn seal_plaintext_secrets(db: &Db, vault: &Vault) -> Result<u64> {
    // Every secret here was made by timix (`whsec_…`), so the mark alone tells sealed ones.
    let sealed_like = format!("{SEALED_PREFIX}%");
    let rows = Sql::new(
        "SELECT id, secret, previous_secret FROM subscriptions WHERE secret NOT LIKE ? \
         OR previous_secret NOT LIKE ?",
    )
    .arg(sealed_like.as_str())
    .arg(sealed_like.as_str())
    .fetch_all(db)
    .await?;
    let mut changed = 0;
    for r in &rows {
        let id = row::get_str(r, "id")?;
        let secret = row::get_str(r, "secret")?;
        let previous = row::get_opt_str(r, "previous_secret")?;
        let seal = |value: &str| -> Result<String> {
            if value.starts_with(SEALED_PREFIX) {
                Ok(value.to_owned())
            } else {
                vault.seal_text(&id, value)
            }
        };
        let sealed_previous = previous.as_deref().map(seal).transpose()?;
        // Only the row as read: a rotation meanwhile (by a process already sealing) stays.
        changed += db
            .write_count(
                &Sql::new(
                    "UPDATE subscriptions SET secret = ?, previous_secret = ? WHERE id = ? AND secret = ? \
                     AND COALESCE(previous_secret, '') = COALESCE(?, '')",
                )
                .arg(seal(&secret)?)
                .arg(sealed_previous)
                .arg(&id)
                .arg(&secret)
                .arg(previous),
            )
            .await?;
    }
    Ok(changed)
}

/// Every enabled subscription of an organization (for the dispatcher).
pub async fn enabled_for(
    runner: impl crate::store::db::Runner,
    org_id: &str,
) -> Result<Vec<Subscription>> {
    let rows = Sql::new(
        "SELECT * FROM subscriptions WHERE org_id = ? AND is_enabled = 1 AND deleted_at IS NULL",
    )
    .arg(org_id)
    .fetch_all(runner)
    .await?;
    rows.iter().map(Subscription::from_row).collect()
}

pub async fn subscription(db: &Db, id: &str) -> Result<Option<Subscription>> {
    Sql::new("SELECT * FROM subscriptions WHERE id = ? AND deleted_at IS NULL")
        .arg(id)
        .fetch_optional(db)
        .await?
        .map(|r| Subscription::from_row(&r))
        .transpose()
}

/// A delivery with its attempts, for `GET /webhooks/{id}/deliveries`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// `dlv_…`
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `succeeded`, `failed` (will retry) or `dead` (gave up; retry by hand).
    pub status: String,
    pub next_attempt_at: Option<String>,
    pub attempts: Vec<Attempt>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub number: i64,
    pub started_at: String,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    /// The start of the receiver's answer.
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

pub const DELIVERY_LIST: ListSpec = ListSpec {
    table: "deliveries",
    sorts: &[],
    filters: &[
        ("status", "status", FilterKind::Text),
        ("eventType", "event_type", FilterKind::Text),
    ],
    search: None,
    soft_delete: false,
};

pub async fn list_deliveries(
    db: &Db,
    actor: &Actor,
    webhook_id: &str,
    params: &ListParams,
) -> Result<Page<Delivery>> {
    actor.require(Permission::ManageWebhooks)?;
    live_subscription(db, actor, "webhook", webhook_id).await?;
    let fixed = [("subscription_id", Arg::from(webhook_id))];
    let mut page = list::list_where(
        db,
        actor.org_id(),
        &DELIVERY_LIST,
        params,
        &fixed,
        delivery_from_row,
    )
    .await?;
    for item in page.items.iter_mut() {
        if let list::Item::Live(delivery) = item {
            delivery.attempts = attempts(db, &delivery.id).await?;
        }
    }
    Ok(page)
}

fn delivery_from_row(r: &row::Row) -> Result<Delivery> {
    Ok(Delivery {
        id: row::get_str(r, "id")?,
        event_id: row::get_str(r, "event_id")?,
        event_type: row::get_str(r, "event_type")?,
        status: row::get_str(r, "status")?,
        next_attempt_at: format_opt(row::get_opt_i64(r, "next_attempt_at")?),
        attempts: Vec::new(),
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

async fn attempts(db: &Db, delivery_id: &str) -> Result<Vec<Attempt>> {
    let rows = Sql::new("SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY number")
        .arg(delivery_id)
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Attempt {
                number: row::get_i64(r, "number")?,
                started_at: format_ms(row::get_i64(r, "started_at")?),
                duration_ms: row::get_i64(r, "duration_ms")?,
                status_code: row::get_opt_i64(r, "status_code")?,
                response_excerpt: row::get_opt_str(r, "response_excerpt")?,
                error: row::get_opt_str(r, "error")?,
            })
        })
        .collect()
}

/// Makes a delivery of this webhook due again now; returns it. The caller enqueues it.
pub async fn retry_delivery(
    db: &Db,
    actor: &Actor,
    webhook_id: &str,
    delivery_id: &str,
) -> Result<Delivery> {
    actor.require(Permission::ManageWebhooks)?;
    live_subscription(db, actor, "webhook", webhook_id).await?;
    let now = now_ms();
    let changed = Sql::new(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ? \
         WHERE id = ? AND subscription_id = ? AND org_id = ?",
    )
    .arg(now)
    .arg(now)
    .arg(delivery_id)
    .arg(webhook_id)
    .arg(actor.org_id())
    .execute(db)
    .await?;
    if changed == 0 {
        return Err(Error::NotFound("delivery"));
    }
    let row = Sql::new("SELECT * FROM deliveries WHERE id = ?")
        .arg(delivery_id)
        .fetch_one(db)
        .await?;
    let mut delivery = delivery_from_row(&row)?;
    delivery.attempts = attempts(db, delivery_id).await?;
    Ok(delivery)
}
