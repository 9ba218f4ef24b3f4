//! Flows: "when this happens, do these steps". A trigger (an event of the log, an inbound
//! webhook, a cron schedule) and steps, each an action manifest with its input mapped by
//! templates from the trigger's record and earlier steps' outputs. A flow is checked whole
//! against the manifests before it is stored: every problem comes back with its field path.

use std::collections::BTreeSet;
use std::str::FromStr;

use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::access::auth::{Actor, Permission};
use crate::automation::connections::Vault;
use crate::automation::manifest::Manifests;
use crate::automation::quotas::Counted;
use crate::automation::saving::Saving;
use crate::automation::template;
use crate::error::{Error, FieldError, Problems, Result};
use crate::store::checks::{self, SHORT_TEXT};
use crate::store::clock::{format_ms, format_opt, now_ms};
use crate::store::db::{Db, Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::json;
use crate::store::list::{self, FilterKind, ListParams, ListSpec, Page};
use crate::store::patch::Patch;
use crate::store::rows;

pub const NOUN: &str = "flow";
/// Where inbound webhook triggers are received, followed by the flow's token.
pub const INBOUND_PATH: &str = "/api/integration/v1/hooks/in/";
pub const MAX_STEPS: usize = 25;
const TRIGGER_TYPES: [&str; 4] = ["event", "poll", "webhook", "schedule"];
/// How the sender of an inbound webhook signs its calls (`trigger.signature`): Standard
/// Webhooks, Stripe, GitHub, Slack, or the body-only HMAC of earlier versions.
pub const SIGNATURE_SCHEMES: [&str; 5] = ["standard", "stripe", "github", "slack", "hmac"];
/// The scheme of a new webhook trigger that has a secret and names no scheme.
pub const DEFAULT_SIGNATURE: &str = "standard";
/// The connections of an organization a flow may name: id → type.
pub type ConnectionKinds = std::collections::BTreeMap<String, String>;

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
    /// `[{key, action, connectionId, input}]`
    #[schema(value_type = Vec<Object>, example = json!([{"key": "project", "action": "create_project", "connectionId": null, "input": {"customerId": "{{trigger.id}}", "name": "Onboarding {{trigger.name}}"}}]))]
    pub steps: Value,
    /// The user whose role the steps act with.
    pub created_by: String,
    pub enabled_at: Option<String>,
    pub last_error: Option<String>,
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
}

/// A trigger as stored: its type, and the event type an event trigger listens to.
#[derive(Debug, Clone, PartialEq)]
struct CheckedTrigger {
    kind: String,
    event: Option<String>,
    /// As stored. A webhook's secret is not in it: it is sealed in its own column.
    stored: Value,
    /// A webhook's signing secret, in the clear only while the flow is checked and saved.
    secret: Option<String>,
}

/// The key a Standard Webhooks secret stands for: the base64 after `whsec_` (the prefix is
/// optional, as in the Standard Webhooks libraries).
pub fn standard_webhooks_key(secret: &str) -> Option<Vec<u8>> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .ok()
        .filter(|key| key.len() >= 16)
}

/// Checks a webhook trigger: its secret (kept from `current` when not given again) and the
/// scheme its sender signs with (kept likewise; `standard` for a new secret).
fn check_webhook(
    p: &mut Problems,
    object: &Map<String, Value>,
    current: Option<&CheckedTrigger>,
) -> Option<CheckedTrigger> {
    let current = current.filter(|c| c.kind == "webhook");
    let secret = match object.get("secret") {
        None => current.and_then(|c| c.secret.clone()),
        Some(Value::Null) => None,
        Some(Value::String(s)) if (16..=200).contains(&s.len()) => Some(s.clone()),
        Some(_) => {
            p.add(
                "trigger.secret",
                "invalid",
                "trigger.secret must be a string of 16 to 200 characters",
            );
            return None;
        }
    };
    let scheme = match object.get("signature") {
        None | Some(Value::Null) => secret.as_ref().map(|_| {
            current
                .and_then(|c| c.stored["signature"].as_str())
                .unwrap_or(DEFAULT_SIGNATURE)
                .to_owned()
        }),
        Some(Value::String(s)) if SIGNATURE_SCHEMES.contains(&s.as_str()) => Some(s.clone()),
        Some(_) => {
            p.add(
                "trigger.signature",
                "invalid",
                format!(
                    "trigger.signature must be one of {}",
                    SIGNATURE_SCHEMES.join(", ")
                ),
            );
            return None;
        }
    };
    match (&scheme, &secret) {
        (Some(scheme), None) => {
            p.add(
                "trigger.signature",
                "secret_required",
                format!(
                    "a {scheme} signature needs trigger.secret, the secret the sender signs with"
                ),
            );
            return None;
        }
        (Some(scheme), Some(secret))
            if scheme == "standard" && standard_webhooks_key(secret).is_none() =>
        {
            p.add(
                "trigger.secret",
                "invalid",
                "a Standard Webhooks secret is whsec_ followed by the base64 of at least 16 bytes",
            );
            return None;
        }
        _ => {}
    }
    Some(CheckedTrigger {
        kind: "webhook".into(),
        event: None,
        stored: json!({"type": "webhook", "signature": scheme}),
        secret,
    })
}

/// Checks a trigger; `current` (the flow's trigger before this change) keeps a webhook's secret
/// and scheme when the trigger is re-sent without them.
fn check_trigger(
    p: &mut Problems,
    manifests: &Manifests,
    connections: &ConnectionKinds,
    trigger: &Value,
    current: Option<&CheckedTrigger>,
) -> Option<CheckedTrigger> {
    let Some(object) = trigger.as_object() else {
        p.add(
            "trigger",
            "invalid",
            "trigger must be an object with a type",
        );
        return None;
    };
    let kind = object
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let allowed = |keys: &[&str]| {
        for key in object.keys() {
            if key != "type" && !keys.contains(&key.as_str()) {
                return Some(key.clone());
            }
        }
        None
    };
    let unknown = match kind {
        "event" => allowed(&["event", "filters"]),
        // What GET shows (`hasSecret`, `webhookUrl`) may come back in a re-save: ignored.
        "webhook" => allowed(&["secret", "signature", "hasSecret", "webhookUrl"]),
        "schedule" => allowed(&["schedule"]),
        "poll" => allowed(&["connectionId", "source", "schedule"]),
        _ => {
            p.add(
                "trigger.type",
                "invalid",
                format!("trigger.type must be one of {}", TRIGGER_TYPES.join(", ")),
            );
            return None;
        }
    };
    if let Some(key) = unknown {
        let key = json::shorten(&key);
        p.add(
            &format!("trigger.{key}"),
            "unknown_field",
            format!("{key} is not a field of a {kind} trigger"),
        );
        return None;
    }
    match kind {
        "event" => {
            let event = object
                .get("event")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if !events::TYPES.contains(&event)
                && !manifests.triggers.values().any(|t| t.event == event)
            {
                p.add(
                    "trigger.event",
                    "unknown_event",
                    format!(
                        "trigger.event must be an event type such as customer.created, not {}",
                        json::quote(event)
                    ),
                );
                return None;
            }
            let filters = object.get("filters").cloned().unwrap_or(json!({}));
            let scalar = |v: &Value| !matches!(v, Value::Object(_) | Value::Array(_));
            if !filters.as_object().is_some_and(|f| f.values().all(scalar)) {
                p.add(
                    "trigger.filters",
                    "invalid",
                    "trigger.filters must map fields of the event's record to the values they must have",
                );
                return None;
            }
            Some(CheckedTrigger {
                kind: kind.into(),
                event: Some(event.to_owned()),
                stored: json!({"type": "event", "event": event, "filters": filters}),
                secret: None,
            })
        }
        "webhook" => check_webhook(p, object, current),
        "poll" => check_poll(p, manifests, connections, object),
        _ => {
            let text = object
                .get("schedule")
                .and_then(Value::as_str)
                .unwrap_or_default();
            if let Err(message) = parse_schedule(text) {
                p.add("trigger.schedule", "invalid", message);
                return None;
            }
            Some(CheckedTrigger {
                kind: kind.into(),
                event: None,
                stored: json!({"type": "schedule", "schedule": text}),
                secret: None,
            })
        }
    }
}

/// Checks a poll trigger: a connection, a source (a trigger manifest, or an HTTP source) and a
/// cron schedule.
fn check_poll(
    p: &mut Problems,
    manifests: &Manifests,
    connections: &ConnectionKinds,
    object: &Map<String, Value>,
) -> Option<CheckedTrigger> {
    let before = p.len();
    let connection = object
        .get("connectionId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let kind = connections.get(connection);
    if kind.is_none() {
        p.add(
            "trigger.connectionId",
            if connection.is_empty() { "required" } else { "not_found" },
            "trigger.connectionId must name a connection of this organization (self polls this instance)",
        );
    }
    let schedule = object
        .get("schedule")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Err(message) = parse_schedule(schedule) {
        p.add("trigger.schedule", "invalid", message);
    }
    let source = match object.get("source") {
        Some(Value::String(key)) => {
            if !manifests.triggers.contains_key(key) {
                p.add(
                    "trigger.source",
                    "unknown_manifest",
                    format!(
                        "{key:?} is not a trigger; see GET /manifests, or describe an HTTP source"
                    ),
                );
            }
            Some(json!(key))
        }
        Some(Value::Object(http)) => {
            if kind.is_some_and(|k| k == "self") {
                p.add(
                    "trigger.source",
                    "invalid",
                    "an HTTP source is read through a connection with a base URL, not self",
                );
            }
            check_http_source(p, http)
        }
        _ => {
            p.add(
                "trigger.source",
                "required",
                "trigger.source must be a trigger manifest key (new_customer) or an HTTP source {url, items, id, …}",
            );
            None
        }
    };
    (p.len() == before).then(|| CheckedTrigger {
        kind: "poll".into(),
        event: None,
        stored: json!({"type": "poll", "connectionId": connection, "source": source, "schedule": schedule}),
        secret: None,
    })
}

/// An HTTP source: `{url, query?, items?, id?, version?, since?: {param, field}, next?: {param,
/// field}}`, completed with its defaults.
fn check_http_source(p: &mut Problems, http: &Map<String, Value>) -> Option<Value> {
    let at = "trigger.source";
    let before = p.len();
    for key in http.keys() {
        if !["url", "query", "items", "id", "version", "since", "next"].contains(&key.as_str()) {
            let key = json::shorten(key);
            p.add(
                &format!("{at}.{key}"),
                "unknown_field",
                format!("{key} is not a field of an HTTP source"),
            );
        }
    }
    let text = |p: &mut Problems, key: &str, default: Option<&str>| -> Option<String> {
        match http.get(key) {
            None | Some(Value::Null) => default.map(str::to_owned),
            Some(Value::String(s)) if s.len() <= 2_000 => Some(s.clone()),
            Some(_) => {
                p.add(
                    &format!("{at}.{key}"),
                    "invalid",
                    format!("{key} must be a text"),
                );
                None
            }
        }
    };
    let url = text(p, "url", None).unwrap_or_default();
    let absolute = url::Url::parse(&url).is_ok_and(|u| matches!(u.scheme(), "http" | "https"));
    if !url.starts_with('/') && !absolute {
        p.add(
            &format!("{at}.url"),
            "invalid",
            "url must be a path below the connection's base URL (/v1/contacts) or an absolute URL on it",
        );
    }
    let query = http.get("query").cloned().unwrap_or(json!({}));
    if !query
        .as_object()
        .is_some_and(|q| q.values().all(Value::is_string))
    {
        p.add(
            &format!("{at}.query"),
            "invalid",
            "query must map parameter names to texts",
        );
    }
    let items = text(p, "items", Some("items"));
    let id = text(p, "id", Some("id")).filter(|s| !s.is_empty());
    if id.is_none() && !p.has(&format!("{at}.id")) {
        p.add(
            &format!("{at}.id"),
            "invalid",
            "id names the field that identifies an item",
        );
    }
    let version = text(p, "version", None).filter(|s| !s.is_empty());
    let mut pair = |name: &str| -> Option<Value> {
        let value = http.get(name)?;
        let ok = value.as_object().is_some_and(|o| {
            o.len() == 2
                && ["param", "field"].iter().all(|k| {
                    o.get(*k)
                        .and_then(Value::as_str)
                        .is_some_and(|s| !s.is_empty())
                })
        });
        if !ok {
            p.add(
                &format!("{at}.{name}"),
                "invalid",
                format!(
                    "{name} must be {{param, field}}: the query parameter and the answer's field"
                ),
            );
        }
        Some(value.clone())
    };
    let since = pair("since");
    let next = pair("next");
    (p.len() == before).then(|| {
        json!({"url": url, "query": query, "items": items, "id": id, "version": version, "since": since, "next": next})
    })
}

/// A cron expression: five fields (minute first) or six and seven (seconds first).
pub fn parse_schedule(text: &str) -> std::result::Result<cron::Schedule, String> {
    let fields = text.split_whitespace().count();
    let full = if fields == 5 {
        // Classic crontab: weekdays 0–7 with Sunday 0 (and 7); the parser counts 1–7 from Sunday.
        let mut parts: Vec<String> = text.split_whitespace().map(str::to_owned).collect();
        parts[4] = crontab_weekdays(&parts[4]);
        format!("0 {}", parts.join(" "))
    } else {
        text.to_owned()
    };
    if !(5..=7).contains(&fields) {
        return Err(format!(
            "{} is not a cron expression: give 5 fields (minute hour day month weekday)",
            json::quote(text)
        ));
    }
    cron::Schedule::from_str(&full).map_err(|e| {
        format!(
            "{} is not a cron expression: {}",
            json::quote(text),
            json::shorten(&e.to_string())
        )
    })
}

/// Renumbers the numeric weekdays of a crontab day-of-week field (`1-5`, `0,6`, `*/2`) from
/// Sunday = 0 to the parser's Sunday = 1; names (`Mon-Fri`) and `*` stay as they are.
fn crontab_weekdays(field: &str) -> String {
    let shift = |n: &str| match n.parse::<u8>() {
        Ok(d) if d <= 7 => ((d % 7) + 1).to_string(),
        _ => n.to_owned(),
    };
    field
        .split(',')
        .map(|item| {
            let (range, step) = match item.split_once('/') {
                Some((r, s)) => (r, Some(s)),
                None => (item, None),
            };
            let range = match range.split_once('-') {
                Some((a, b)) => format!("{}-{}", shift(a), shift(b)),
                None => shift(range),
            };
            match step {
                Some(s) => format!("{range}/{s}"),
                None => range,
            }
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Checks the steps against the manifests: known actions, unique keys, required inputs
/// present, no unknown inputs, every template parsing.
fn check_steps(
    p: &mut Problems,
    manifests: &Manifests,
    connections: &ConnectionKinds,
    steps: &Value,
) -> Option<Value> {
    let Some(list) = steps.as_array() else {
        p.add("steps", "invalid", "steps must be a list");
        return None;
    };
    if list.is_empty() || list.len() > MAX_STEPS {
        p.add(
            "steps",
            "invalid",
            format!("a flow has from 1 to {MAX_STEPS} steps"),
        );
        return None;
    }
    let mut keys = BTreeSet::new();
    let mut out = Vec::with_capacity(list.len());
    let before = p.len();
    for (i, step) in list.iter().enumerate() {
        let at = format!("steps[{i}]");
        let Some(step) = step.as_object() else {
            p.add(&at, "invalid", format!("{at} must be an object"));
            continue;
        };
        for key in step.keys() {
            if !["key", "action", "connectionId", "input"].contains(&key.as_str()) {
                let key = json::shorten(key);
                p.add(
                    &format!("{at}.{key}"),
                    "unknown_field",
                    format!("{key} is not a field of a step"),
                );
            }
        }
        let key = step.get("key").and_then(Value::as_str).unwrap_or_default();
        let key_ok = !key.is_empty()
            && key.len() <= 64
            && key.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            && key.starts_with(|c: char| c.is_ascii_alphabetic());
        if !key_ok {
            p.add(
                &format!("{at}.key"),
                "invalid",
                "a step key is a name of letters, digits and underscores, starting with a letter",
            );
        } else if !keys.insert(key.to_owned()) {
            p.add(
                &format!("{at}.key"),
                "duplicate",
                format!("{key} names two steps"),
            );
        }
        let action_key = step
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let Some(action) = manifests.actions.get(action_key) else {
            p.add(
                &format!("{at}.action"),
                "unknown_manifest",
                format!(
                    "{} is not an action; see GET /manifests",
                    json::quote(action_key)
                ),
            );
            continue;
        };
        let connection = match step.get("connectionId") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) if connections.contains_key(id) => {
                if connections[id] == "self" && action.request.url.is_some() {
                    p.add(
                        &format!("{at}.connectionId"),
                        "invalid",
                        format!("{action_key} calls a URL: give it a connection with a base URL, or none"),
                    );
                }
                Some(id.clone())
            }
            Some(_) => {
                p.add(
                    &format!("{at}.connectionId"),
                    "not_found",
                    "connectionId does not name a connection of this organization",
                );
                None
            }
        };
        let input = step.get("input").cloned().unwrap_or(json!({}));
        let Some(fields) = input.as_object() else {
            p.add(&format!("{at}.input"), "invalid", "input must be an object");
            continue;
        };
        let properties = action.input["properties"].as_object();
        let closed = action.input["additionalProperties"] == Value::Bool(false);
        for name in fields.keys() {
            if closed && properties.is_none_or(|props| !props.contains_key(name)) {
                let name = json::shorten(name);
                p.add(
                    &format!("{at}.input.{name}"),
                    "unknown_field",
                    format!("{name} is not an input of {action_key}"),
                );
            }
        }
        for required in action.input["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !fields.contains_key(name) {
                p.add(
                    &format!("{at}.input.{name}"),
                    "required",
                    format!("{name} is required by {action_key}"),
                );
            }
        }
        if let Err((path, e)) = template::check_value(&input, &format!("{at}.input")) {
            p.add(&path, "template", e.0);
        }
        out.push(
            json!({"key": key, "action": action_key, "connectionId": connection, "input": input}),
        );
    }
    (p.len() == before).then_some(Value::Array(out))
}

#[derive(Debug, Clone, PartialEq)]
struct Record {
    name: String,
    is_enabled: bool,
    trigger: CheckedTrigger,
    steps: Value,
}

impl Record {
    fn apply(
        manifests: &Manifests,
        connections: &ConnectionKinds,
        input: FlowInput,
        cur: Option<&Record>,
    ) -> Result<Self> {
        let mut p = Problems::default();
        let name = checks::patch_required(&mut p, "name", input.name, cur.map(|c| c.name.clone()));
        let name = p.take(checks::required_text("name", name, SHORT_TEXT));
        let is_enabled = checks::patch_required(
            &mut p,
            "isEnabled",
            input.is_enabled,
            Some(cur.is_none_or(|c| c.is_enabled)),
        );
        let trigger = match input.trigger {
            Patch::Absent => cur.map(|c| c.trigger.clone()),
            Patch::Null => None,
            Patch::Value(t) => {
                check_trigger(&mut p, manifests, connections, &t, cur.map(|c| &c.trigger))
            }
        };
        if trigger.is_none() && !p.has("trigger") {
            p.push(FieldError::required("trigger"));
        }
        let steps = match input.steps {
            Patch::Absent => cur.map(|c| c.steps.clone()),
            Patch::Null => None,
            Patch::Value(s) => check_steps(&mut p, manifests, connections, &s),
        };
        if steps.is_none() && !p.has("steps") {
            p.push(FieldError::required("steps"));
        }
        p.into_result()?;
        let missing = || Error::Internal("flow fields missing after validation".into());
        Ok(Record {
            name: name.ok_or_else(missing)?,
            is_enabled: is_enabled.ok_or_else(missing)?,
            trigger: trigger.ok_or_else(missing)?,
            steps: steps.ok_or_else(missing)?,
        })
    }

    /// A stored flow, with its webhook secret as opened by the caller.
    fn from_row(r: &row::Row, secret: Option<String>) -> Result<Self> {
        Ok(Self {
            name: row::get_str(r, "name")?,
            is_enabled: row::get_bool(r, "is_enabled")?,
            trigger: CheckedTrigger {
                kind: row::get_str(r, "trigger_type")?,
                event: row::get_opt_str(r, "event_type")?,
                stored: json_column(r, "trigger")?,
                secret,
            },
            steps: json_column(r, "steps")?,
        })
    }
}

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
        created_by: row::get_str(r, "created_by")?,
        enabled_at: format_opt(row::get_opt_i64(r, "enabled_at")?),
        last_error: row::get_opt_str(r, "last_error")?,
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
    list::list(db, actor.org_id(), &LIST, params, from_row).await
}

pub async fn get(db: &Db, actor: &Actor, id: &str) -> Result<Flow> {
    actor.require(Permission::ReadFlows)?;
    let row = rows::live_row(db, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    from_row(&row)
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
        "INSERT INTO flows (id, org_id, name, is_enabled, trigger_type, event_type, trigger, steps, webhook_token, \
         webhook_secret, created_by, enabled_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(actor.org_id())
    .arg(&rec.name)
    .arg(rec.is_enabled)
    .arg(&rec.trigger.kind)
    .arg(rec.trigger.event.clone())
    .arg(rec.trigger.stored.to_string())
    .arg(rec.steps.to_string())
    .arg(token)
    .arg(secret)
    .arg(actor.user_id.as_str())
    .arg(rec.is_enabled.then_some(now))
    .arg(now)
    .arg(now)
    .execute(&mut tx)
    .await?;
    let flow = reload(&mut tx, &id).await?;
    crate::automation::polls::follow(&mut tx, &flow).await?;
    events::created(&mut tx, actor.org_id(), NOUN, &id, &flow).await?;
    crate::access::idempotency::record(&mut tx, actor, 201, &flow).await?;
    tx.commit().await?;
    Ok(flow)
}

async fn reload(tx: &mut Tx, id: &str) -> Result<Flow> {
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
    let mut tx = events::begin_write(db).await?;
    let row = rows::live_row(&mut tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let before = from_row(&row)?;
    actor.check_if_match(&before)?;
    let sealed = row::get_opt_str(&row, "webhook_secret")?;
    let opened = sealed
        .as_deref()
        .map(|s| vault.open_text(id, s))
        .transpose()?;
    let current = Record::from_row(&row, opened)?;
    let connections = crate::automation::connections::kinds(&mut tx, actor.org_id()).await?;
    let rec = Record::apply(manifests, &connections, input, Some(&current))?;
    if rec == current {
        return Ok(before);
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
    let enabled_at = match (current.is_enabled, rec.is_enabled) {
        (false, true) => Some(now_ms()),
        (_, true) => row::get_opt_i64(&row, "enabled_at")?,
        (_, false) => None,
    };
    Sql::new(
        "UPDATE flows SET name = ?, is_enabled = ?, trigger_type = ?, event_type = ?, trigger = ?, steps = ?, \
         webhook_token = ?, webhook_secret = ?, enabled_at = ?, last_error = ?, updated_at = ? WHERE id = ?",
    )
    .arg(&rec.name)
    .arg(rec.is_enabled)
    .arg(&rec.trigger.kind)
    .arg(rec.trigger.event.clone())
    .arg(rec.trigger.stored.to_string())
    .arg(rec.steps.to_string())
    .arg(token)
    .arg(sealed)
    .arg(enabled_at)
    .arg(if rec.is_enabled { before.last_error.clone() } else { None })
    .arg(now_ms())
    .arg(id)
    .execute(&mut tx)
    .await?;
    let after = reload(&mut tx, id).await?;
    crate::automation::polls::follow(&mut tx, &after).await?;
    events::updated(&mut tx, actor.org_id(), NOUN, id, &before, &after).await?;
    crate::access::idempotency::record(&mut tx, actor, 200, &after).await?;
    tx.commit().await?;
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
    let mut tx = events::begin_write(db).await?;
    let row = rows::live_row(&mut tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let last = from_row(&row)?;
    actor.check_if_match(&last)?;
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

/// An enabled flow as the runner needs it.
#[derive(Debug, Clone)]
pub struct LiveFlow {
    pub id: String,
    pub org_id: String,
    pub name: String,
    pub trigger: Value,
    pub steps: Value,
    pub created_by: String,
    /// An inbound webhook's signing secret, sealed (see [`LiveFlow::webhook_secret`]).
    sealed_secret: Option<String>,
    /// Events from before this instant do not start it.
    pub enabled_at: Option<i64>,
    /// The error shown on the flow, if any (a success clears it).
    pub last_error: Option<String>,
}

fn live_from_row(r: &row::Row) -> Result<LiveFlow> {
    Ok(LiveFlow {
        id: row::get_str(r, "id")?,
        org_id: row::get_str(r, "org_id")?,
        name: row::get_str(r, "name")?,
        trigger: json_column(r, "trigger")?,
        steps: json_column(r, "steps")?,
        created_by: row::get_str(r, "created_by")?,
        sealed_secret: row::get_opt_str(r, "webhook_secret")?,
        enabled_at: row::get_opt_i64(r, "enabled_at")?,
        last_error: row::get_opt_str(r, "last_error")?,
    })
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
    let organization = crate::access::organizations::find(db, &flow.org_id).await?;
    if organization.billing_state == crate::access::organizations::BillingState::ReadOnly {
        return Err(Error::Forbidden {
            code: "organization_read_only",
            message: "the organization is read-only: its flows start no runs".into(),
        });
    }
    let active = Sql::new(
        "SELECT is_active FROM org_users WHERE id = ? AND org_id = ? AND deleted_at IS NULL",
    )
    .arg(&flow.created_by)
    .arg(&flow.org_id)
    .fetch_optional(db)
    .await?
    .map(|r| row::get_bool(&r, "is_active"))
    .transpose()?;
    if active != Some(true) {
        return Err(Error::Conflict {
            code: "flow_owner_inactive",
            message: "the flow's owner (whose role its steps act with) is removed or deactivated: \
                      reactivate them, or have an active admin create the flow again"
                .into(),
        });
    }
    Ok(())
}

/// Enabled flows of an organization listening to `event_type`.
pub async fn listening(
    runner: impl crate::store::db::Runner,
    org_id: &str,
    event_type: &str,
) -> Result<Vec<LiveFlow>> {
    Sql::new(
        "SELECT * FROM flows WHERE org_id = ? AND event_type = ? AND is_enabled = 1 AND deleted_at IS NULL",
    )
    .arg(org_id)
    .arg(event_type)
    .fetch_all(runner)
    .await?
    .iter()
    .map(live_from_row)
    .collect()
}

/// The enabled flow behind an inbound webhook token.
pub async fn by_token(db: &Db, token: &str) -> Result<Option<LiveFlow>> {
    Sql::new(
        "SELECT * FROM flows WHERE webhook_token = ? AND is_enabled = 1 AND deleted_at IS NULL",
    )
    .arg(token)
    .fetch_optional(db)
    .await?
    .as_ref()
    .map(live_from_row)
    .transpose()
}

/// Any flow (enabled or not) by id, for running it.
pub async fn live(db: &Db, id: &str) -> Result<Option<LiveFlow>> {
    Sql::new("SELECT * FROM flows WHERE id = ? AND deleted_at IS NULL")
        .arg(id)
        .fetch_optional(db)
        .await?
        .as_ref()
        .map(live_from_row)
        .transpose()
}

/// Whether an event's record matches a trigger's filters (each field equal).
pub fn matches_filters(trigger: &Value, data: &Value) -> bool {
    trigger["filters"]
        .as_object()
        .is_none_or(|filters| filters.iter().all(|(field, value)| &data[field] == value))
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

#[cfg(test)]
#[path = "fuzz/flows.rs"]
mod fuzz;

#[cfg(test)]
mod tests {
    use chrono::{Datelike, TimeZone, Utc, Weekday};

    use super::*;

    #[test]
    fn five_field_weekdays_count_from_sunday_zero() {
        let weekdays = |text: &str| -> Vec<Weekday> {
            let from = Utc.with_ymd_and_hms(2026, 11, 22, 0, 0, 0).unwrap();
            parse_schedule(text)
                .unwrap()
                .after(&from)
                .take(7)
                .map(|t| t.weekday())
                .collect()
        };
        use Weekday::*;
        assert_eq!(
            weekdays("0 9 * * 1-5"),
            vec![Mon, Tue, Wed, Thu, Fri, Mon, Tue]
        );
        assert_eq!(weekdays("0 9 * * 0")[..2], [Sun, Sun]);
        assert_eq!(weekdays("0 9 * * 7")[..2], [Sun, Sun]);
        assert_eq!(weekdays("0 9 * * Mon-Fri")[..2], [Mon, Tue]);
        assert_eq!(crontab_weekdays("*/2"), "*/2");
        assert_eq!(crontab_weekdays("0,6"), "1,7");
        assert!(parse_schedule("every tuesday").is_err());
    }
}
