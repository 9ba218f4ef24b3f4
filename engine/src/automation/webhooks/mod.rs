//! Webhooks (registered by integrators, signed, with a secret shown once) and REST hooks (the
//! subscriptions Zapier, Make and Workato create). Both are subscriptions to the event log; the
//! dispatcher turns each matching event into a delivery. This module holds the shared types and
//! checks; [`subscriptions`] stores the subscriptions, [`deliveries`] the deliveries and their
//! attempts. Sending is `timix-connectors`' job.

pub mod deliveries;
pub mod subscriptions;

pub use deliveries::{
    Attempt, DELIVERY_LIST, Delivery, DeliveryStatus, list_deliveries, retry_delivery,
};
pub use subscriptions::{
    create_webhook, delete_webhook, enabled_for, get_webhook, list_hooks, list_webhooks,
    rotate_secret, seal_plaintext_secrets, send_test, subscribe, subscription, unsubscribe,
    update_webhook,
};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::access::auth::Actor;
use crate::automation::connections::Vault;
use crate::automation::targets::Targets;
use crate::error::{Error, FieldError, Result};
use crate::store::clock::{Millis, format_ms, now_ms};
use crate::store::db::row;
use crate::store::list::{FilterKind, ListSpec};
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

/// The body of `POST /webhooks` (`url` required) and `PATCH /webhooks/{id}`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WebhookInput {
    /// An http(s) URL. The schema keeps to host names; a public IP address is accepted too,
    /// a private one or `localhost` only if the operator allows private targets.
    #[serde(default)]
    #[schema(value_type = String, required = true, max_length = 2048,
             pattern = r"^https?://(?![^/?#]*\.[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt](:|[/?#]|$))([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)+[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*(:[0-9]{1,4})?([/?#][!-~]*)?$",
             example = "https://example.com/timix")]
    pub url: Patch<String>,
    /// Event types, or `*` for all (the default).
    #[serde(default)]
    #[schema(value_type = Vec<EventSelector>, min_items = 1, example = json!(["customer.created"]))]
    pub events: Patch<Vec<String>>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub description: Patch<String>,
    #[serde(default)]
    #[schema(value_type = bool)]
    pub is_enabled: Patch<bool>,
}

/// The schema of an event type a subscription names: one of [`EVENT_TYPES`], or `*`.
pub struct EventSelector;

impl utoipa::PartialSchema for EventSelector {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::store::checks::one_of_schema(
            "An event type of the log, or `*` for every type.",
            std::iter::once("*").chain(EVENT_TYPES.iter().copied()),
        )
    }
}

impl utoipa::ToSchema for EventSelector {}

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
    /// An http(s) URL, as for a webhook.
    #[serde(alias = "target_url", alias = "url", alias = "hookUrl")]
    #[serde(rename = "targetUrl")]
    #[schema(value_type = String, required = true, max_length = 2048,
             pattern = r"^https?://(?![^/?#]*\.[Ll][Oo][Cc][Aa][Ll][Hh][Oo][Ss][Tt](:|[/?#]|$))([A-Za-z0-9]+(-[A-Za-z0-9]+)*\.)+[A-Za-z][A-Za-z0-9]*(-[A-Za-z0-9]+)*(:[0-9]{1,4})?([/?#][!-~]*)?$")]
    pub target_url: Option<String>,
    #[schema(value_type = EventSelector, required = true)]
    pub event: Option<String>,
    /// Exact-match conditions on the event's `data` fields.
    #[schema(value_type = Option<Object>)]
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
    conn: impl crate::store::db::QueryTarget,
    actor: &Actor,
    kind: &str,
    id: &str,
) -> Result<row::Row> {
    rows::live_row(conn, LIST.table, actor.org_id(), id)
        .await?
        .filter(|r| row::get_str(r, "kind").is_ok_and(|k| k == kind))
        .ok_or(Error::NotFound(if kind == "hook" {
            "hook"
        } else {
            "webhook"
        }))
}
