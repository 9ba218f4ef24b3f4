//! A flow checked whole against the manifests before it is stored: its trigger (event, poll,
//! webhook, schedule) and its steps, every problem with its field path.

use serde_json::{Map, Value, json};

use super::settings::Settings;
use super::{
    ConnectionKinds, DEFAULT_SIGNATURE, FlowInput, SIGNATURE_SCHEMES, TRIGGER_TYPES, condition,
    json_column, parse_schedule, program,
};
use crate::automation::connections::ConnectionKind;
use crate::automation::connectors::TriggerHow;
use crate::automation::manifest::Manifests;
use crate::error::{Error, FieldError, Problems, Result};
use crate::store::checks::{self, SHORT_TEXT};
use crate::store::db::row;
use crate::store::events;
use crate::store::json;
use crate::store::patch::Patch;

/// A trigger as stored: its type, and the event type an event trigger listens to.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct CheckedTrigger {
    pub(super) kind: String,
    pub(super) event: Option<String>,
    /// As stored. A webhook's secret is not in it: it is sealed in its own column.
    pub(super) stored: Value,
    /// A webhook's signing secret, in the clear only while the flow is checked and saved.
    pub(super) secret: Option<String>,
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

/// Checks a webhook trigger a connector subscribes to (`source: github.issue_event`): the
/// connector's trigger, a connection to it, the trigger's input. The sender signs with the
/// connector's scheme and a secret timix makes (kept across saves) and gives it when it
/// subscribes.
fn check_connector_webhook(
    p: &mut Problems,
    manifests: &Manifests,
    connections: &ConnectionKinds,
    object: &Map<String, Value>,
    current: Option<&CheckedTrigger>,
) -> Option<CheckedTrigger> {
    let before = p.len();
    let key = object
        .get("source")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let connection = object
        .get("connectionId")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let found = connections.get(connection);
    if found.is_none() {
        p.add(
            "trigger.connectionId",
            if connection.is_empty() {
                "required"
            } else {
                "not_found"
            },
            "trigger.connectionId must name a connection to the trigger's connector",
        );
    }
    let Some((loaded, name)) = manifests.connector_of(key) else {
        p.add(
            "trigger.source",
            "unknown_manifest",
            format!("{key:?} is not a trigger of a connector; see GET /connectors"),
        );
        return None;
    };
    let Some(TriggerHow::Webhook { signature, .. }) = loaded.trigger(name).map(|t| &t.how) else {
        p.add(
            "trigger.source",
            "unknown_manifest",
            format!(
                "{name} is not a webhook trigger of {}",
                loaded.connector.label
            ),
        );
        return None;
    };
    if let Some(c) = found
        && c.connector.as_deref() != Some(loaded.connector.key.as_str())
    {
        p.add(
            "trigger.connectionId",
            "invalid",
            format!(
                "{key} subscribes through a connection to {}",
                loaded.connector.label
            ),
        );
    }
    let input = object.get("input").cloned().unwrap_or(json!({}));
    if !input.is_object() {
        p.add(
            "trigger.input",
            "invalid",
            "trigger.input must be an object",
        );
    } else {
        for (path, message) in loaded.check_trigger_input(name, &input) {
            p.add(
                &format!("trigger.input{}", path.replace('/', ".")),
                "invalid",
                message,
            );
        }
    }
    if p.len() != before {
        return None;
    }
    let scheme = signature.as_deref().filter(|s| *s != "none");
    // The secret the sender signs with: made once, kept while the trigger signs the same way.
    let secret = scheme.map(|scheme| {
        current
            .filter(|c| c.stored["signature"].as_str() == Some(scheme))
            .and_then(|c| c.secret.clone())
            .unwrap_or_else(|| new_signing_secret(scheme))
    });
    Some(CheckedTrigger {
        kind: "webhook".into(),
        event: None,
        stored: json!({"type": "webhook", "signature": scheme, "source": key, "connectionId": connection,
                       "input": input, "connector": loaded.version_id}),
        secret,
    })
}

/// A new secret for a sender to sign with: a Standard Webhooks one (`whsec_` and base64), or
/// 32 random characters.
fn new_signing_secret(scheme: &str) -> String {
    use base64::Engine as _;
    use rand::RngExt;
    let bytes: [u8; 24] = rand::rng().random();
    let text = base64::engine::general_purpose::STANDARD.encode(bytes);
    if scheme == "standard" {
        format!("whsec_{text}")
    } else {
        text.replace(['+', '/', '='], "")
    }
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
        "event" => allowed(&["event", "filters", "condition"]),
        // What GET shows (`hasSecret`, `webhookUrl`) may come back in a re-save: ignored.
        "webhook" => allowed(&[
            "secret",
            "signature",
            "hasSecret",
            "webhookUrl",
            "source",
            "connectionId",
            "input",
            "connector",
        ]),
        "schedule" => allowed(&["schedule"]),
        "poll" => allowed(&["connectionId", "source", "schedule", "input", "connector"]),
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
            let mut stored = json!({"type": "event", "event": event, "filters": filters});
            match object.get("condition") {
                None | Some(Value::Null) => {}
                Some(c) => {
                    stored["condition"] = condition::parse(p, c, "trigger.condition")?.to_json()
                }
            }
            Some(CheckedTrigger {
                kind: kind.into(),
                event: Some(event.to_owned()),
                stored,
                secret: None,
            })
        }
        "webhook" if object.get("source").is_some_and(|s| !s.is_null()) => {
            check_connector_webhook(p, manifests, connections, object, current)
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
    let found = connections.get(connection);
    if found.is_none() {
        p.add(
            "trigger.connectionId",
            if connection.is_empty() { "required" } else { "not_found" },
            "trigger.connectionId must name a connection of this organization (self polls this instance)",
        );
    }
    let kind = found.map(|c| c.kind);
    let schedule = object
        .get("schedule")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if let Err(message) = parse_schedule(schedule) {
        p.add("trigger.schedule", "invalid", message);
    }
    let mut stored = json!({"type": "poll", "connectionId": connection, "schedule": schedule});
    let source = match object.get("source") {
        Some(Value::String(key)) if key.contains('.') => {
            let input = object.get("input").cloned().unwrap_or(json!({}));
            if let Some(version) = check_connector_source(p, manifests, found, key, &input) {
                stored["input"] = input;
                stored["connector"] = json!(version);
            }
            Some(json!(key))
        }
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
            if kind == Some(ConnectionKind::This) {
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
                "trigger.source must be a trigger manifest key (new_customer), a connector's trigger (slack.new_message) or an HTTP source {url, items, id, …}",
            );
            None
        }
    };
    if object.get("input").is_some_and(|i| !i.is_null())
        && stored["input"].is_null()
        && !p.has("trigger")
    {
        p.add(
            "trigger.input",
            "unknown_field",
            "input is the fields of a connector's trigger (source: slack.new_message)",
        );
    }
    stored["source"] = source.unwrap_or(Value::Null);
    (p.len() == before).then(|| CheckedTrigger {
        kind: "poll".into(),
        event: None,
        stored,
        secret: None,
    })
}

/// Checks a connector's poll trigger as a flow's source: it exists, its connection is to that
/// connector, its input fits the trigger's schema. The connector's version, to keep.
fn check_connector_source(
    p: &mut Problems,
    manifests: &Manifests,
    connection: Option<&crate::automation::connections::ConnectionRef>,
    key: &str,
    input: &Value,
) -> Option<String> {
    let Some((loaded, name)) = manifests.connector_of(key) else {
        p.add(
            "trigger.source",
            "unknown_manifest",
            format!("{key:?} is not a trigger of a connector; see GET /connectors"),
        );
        return None;
    };
    let poll = loaded.trigger(name).filter(|t| {
        matches!(
            t.how,
            crate::automation::connectors::TriggerHow::Poll { .. }
        )
    });
    if poll.is_none() {
        p.add(
            "trigger.source",
            "unknown_manifest",
            format!("{name} is not a poll trigger of {}", loaded.connector.label),
        );
        return None;
    }
    if let Some(c) = connection
        && c.connector.as_deref() != Some(loaded.connector.key.as_str())
    {
        p.add(
            "trigger.connectionId",
            "invalid",
            format!(
                "{key} reads through a connection to {}",
                loaded.connector.label
            ),
        );
    }
    if !input.is_object() {
        p.add(
            "trigger.input",
            "invalid",
            "trigger.input must be an object",
        );
        return None;
    }
    for (path, message) in loaded.check_trigger_input(name, input) {
        let field = format!("trigger.input{}", path.replace('/', "."));
        p.add(&field, "invalid", message);
    }
    Some(loaded.version_id.clone())
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

/// Checks the steps against the manifests (see [`program::parse`]); the steps as stored.
fn check_steps(
    p: &mut Problems,
    manifests: &Manifests,
    connections: &ConnectionKinds,
    steps: &Value,
) -> Option<Value> {
    let names = program::Names {
        manifests,
        connections,
    };
    program::parse(p, steps, "steps", Some(&names)).map(|block| program::block_to_json(&block))
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Record {
    pub(super) name: String,
    pub(super) is_enabled: bool,
    pub(super) trigger: CheckedTrigger,
    pub(super) steps: Value,
    pub(super) settings: Settings,
}

impl Record {
    pub(crate) fn apply(
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
        let current_settings = cur.map(|c| c.settings.clone()).unwrap_or_default();
        let settings = match input.settings {
            Patch::Absent => Some(current_settings),
            Patch::Null => Some(Settings::default()),
            Patch::Value(s) => Settings::apply(&mut p, &s, &current_settings),
        };
        p.into_result()?;
        let missing = || Error::Internal("flow fields missing after validation".into());
        Ok(Record {
            name: name.ok_or_else(missing)?,
            is_enabled: is_enabled.ok_or_else(missing)?,
            trigger: trigger.ok_or_else(missing)?,
            steps: steps.ok_or_else(missing)?,
            settings: settings.ok_or_else(missing)?,
        })
    }

    /// A stored flow, with its webhook secret as opened by the caller.
    pub(super) fn from_row(r: &row::Row, secret: Option<String>) -> Result<Self> {
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
            settings: Settings::from_stored(&row::get_str(r, "settings")?),
        })
    }
}
