//! `/connections`: add connections to a connector (its credentials by how it signs in, its
//! settings) or by type (API-key, basic, OAuth2 and `self`), test them, connect OAuth2 ones (the
//! provider's page and back), see their status and last error and the flows that use them,
//! delete them. Editing and replacing one in its flows is in `connection_edit`.

use std::collections::BTreeMap;

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{checked_id, connection_edit};
use crate::ui::session::{Fields, redirect_with_alert, redirect_with_notice};
use crate::ui::{Shared, UiError, UiResult, Viewer, back_or_fail};

const TYPES: [(&str, &str); 4] = [
    ("api_key", "API key"),
    ("basic", "User name and password"),
    ("oauth2", "OAuth2"),
    ("self", "This timix instance"),
];

/// Settings a connector connection's form has fields of its own for; its other settings'
/// errors are shown at the settings' JSON.
pub(super) const OWN_SETTING_FIELDS: [&str; 1] = ["settings.clientId"];

/// What the form is for: `?connector=slack` (a connector) or `?connector=type:basic` (a type).
#[derive(Debug, Default, Deserialize)]
pub struct Choice {
    connector: Option<String>,
}

/// The fields of a connection to a connector: how it signs in, its own settings, its address.
fn connector_form(listed: &Value, document: &Value) -> Value {
    let auth = listed["auth"]["type"]
        .as_str()
        .or_else(|| document["auth"]["type"].as_str())
        .unwrap_or("none");
    let settings = super::connectors::settings_of(document);
    let example: Map<String, Value> = settings
        .iter()
        .filter_map(|s| s["key"].as_str())
        .map(|key| (key.to_owned(), json!("…")))
        .collect();
    let example = if example.is_empty() {
        String::new()
    } else {
        Value::Object(example).to_string()
    };
    json!({
        "key": listed["key"],
        "label": listed["label"],
        "authType": auth,
        "isOauth": auth.starts_with("oauth2"),
        "isAuthorizationCode": auth == "oauth2",
        "baseUrl": document["baseUrl"],
        "settings": settings,
        "settingsExample": example,
    })
}

async fn render_list(
    ui: &Shared,
    viewer: &Viewer,
    status: StatusCode,
    choice: Option<&str>,
    extra: Value,
) -> UiResult {
    let connections = ui.items(viewer, "/connections?limit=200").await?;
    // timix itself is reached by type (`self`, or an API key to another timix).
    let connectors: Vec<Value> = ui
        .items(viewer, "/connectors")
        .await?
        .into_iter()
        .filter(|c| c["key"] != "timix")
        .collect();
    let chosen_connector = choice
        .and_then(|key| connectors.iter().find(|c| c["key"].as_str() == Some(key)))
        .cloned();
    let chosen = extra["form"]["type"]
        .as_str()
        .or_else(|| choice.and_then(|c| c.strip_prefix("type:")))
        .filter(|t| TYPES.iter().any(|(value, _)| value == t))
        .unwrap_or("api_key")
        .to_owned();
    let connector = match &chosen_connector {
        Some(listed) => {
            let key = checked_id(listed["key"].as_str().unwrap_or_default(), "connector")?;
            let document = ui.get(viewer, &format!("/connectors/{key}")).await?;
            Some(connector_form(listed, &document))
        }
        None => None,
    };
    let chosen_key = chosen_connector
        .as_ref()
        .and_then(|c| c["key"].as_str())
        .map(str::to_owned);
    let connector_choices: Vec<Value> = connectors
        .iter()
        .map(|c| {
            json!({
                "value": c["key"],
                "label": c["label"],
                "selected": chosen_key.is_some() && chosen_key.as_deref() == c["key"].as_str(),
            })
        })
        .collect();
    let type_choices: Vec<Value> = TYPES
        .iter()
        .map(|(value, label)| {
            json!({
                "value": format!("type:{value}"),
                "label": label,
                "selected": chosen_key.is_none() && *value == chosen,
            })
        })
        .collect();
    let types: Vec<Value> = TYPES
        .iter()
        .map(|(value, label)| json!({"value": value, "label": label, "selected": *value == chosen}))
        .collect();
    let mut context = json!({
        "nav": "connections",
        "connections": connections,
        "types": types,
        "connectorChoices": connector_choices,
        "typeChoices": type_choices,
        "connector": connector,
        "redirectUri": ui.app.oauth_redirect(),
    });
    super::merge(&mut context, extra);
    Ok(ui.page_with_status(status, viewer, "connections", context))
}

pub async fn list(
    State(ui): State<Shared>,
    viewer: Viewer,
    Query(choice): Query<Choice>,
) -> UiResult {
    render_list(
        &ui,
        &viewer,
        StatusCode::OK,
        choice.connector.as_deref(),
        json!({}),
    )
    .await
}

/// The API's body for the form: only the fields of the chosen type.
fn body(fields: &Fields) -> Value {
    let kind = fields.get("type").unwrap_or("api_key");
    let mut settings = Map::new();
    let mut credentials = Map::new();
    let put = |map: &mut Map<String, Value>, key: &str, field: &str| {
        if let Some(value) = fields.get(field) {
            map.insert(key.into(), json!(value));
        }
    };
    match kind {
        "api_key" => {
            put(&mut credentials, "apiKey", "apiKey");
            put(&mut settings, "header", "header");
            // A prefix such as "Bearer " keeps its space: read it untrimmed.
            let prefix = fields.raw("prefix");
            if !prefix.is_empty() {
                settings.insert("prefix".into(), json!(prefix));
            }
        }
        "basic" => {
            put(&mut credentials, "username", "username");
            put(&mut credentials, "password", "password");
        }
        "oauth2" => {
            for key in ["authorizeUrl", "tokenUrl", "clientId"] {
                put(&mut settings, key, key);
            }
            if let Some(scopes) = fields.get("scopes") {
                let scopes: Vec<&str> =
                    scopes.split([' ', ',']).filter(|s| !s.is_empty()).collect();
                settings.insert("scopes".into(), json!(scopes));
            }
            put(&mut credentials, "clientSecret", "clientSecret");
        }
        _ => {}
    }
    let mut body = json!({"name": fields.get("name"), "type": kind});
    if kind != "self" {
        body["baseUrl"] = json!(fields.get("baseUrl"));
        body["credentials"] = Value::Object(credentials);
        if !settings.is_empty() {
            body["settings"] = Value::Object(settings);
        }
    }
    body
}

/// The API's body for a connection to the connector `key`, which signs in with `auth`: the
/// credentials of that, the client id of OAuth2, the settings' JSON and a base URL if given.
/// Settings that are not a JSON object are refused here, at their field.
fn connector_body(
    key: &str,
    auth: Option<&str>,
    fields: &Fields,
) -> Result<Value, BTreeMap<String, String>> {
    let mut errors = BTreeMap::new();
    let mut settings = Map::new();
    if let Some(text) = fields.get("settingsJson") {
        match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => settings = map,
            Ok(_) => {
                errors.insert(
                    "settings".to_owned(),
                    "Settings (JSON) must be an object: {\"name\": \"value\"}".to_owned(),
                );
            }
            Err(error) => {
                errors.insert(
                    "settings".to_owned(),
                    format!("Settings (JSON) is not valid JSON: {error}"),
                );
            }
        }
    }
    let mut credentials = Map::new();
    let put = |map: &mut Map<String, Value>, key: &str, field: &str| {
        if let Some(value) = fields.get(field) {
            map.insert(key.into(), json!(value));
        }
    };
    let needs_credentials = match auth {
        Some("api_key") => {
            put(&mut credentials, "apiKey", "apiKey");
            true
        }
        Some("bearer") => {
            put(&mut credentials, "token", "token");
            true
        }
        Some("basic") => {
            put(&mut credentials, "username", "username");
            put(&mut credentials, "password", "password");
            true
        }
        Some("oauth2" | "oauth2_client_credentials") => {
            put(&mut settings, "clientId", "clientId");
            put(&mut credentials, "clientSecret", "clientSecret");
            false
        }
        _ => false,
    };
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut body = json!({"name": fields.get("name"), "connector": key});
    // Left empty, the API names the credential that is missing.
    if needs_credentials || !credentials.is_empty() {
        body["credentials"] = Value::Object(credentials);
    }
    if !settings.is_empty() {
        body["settings"] = Value::Object(settings);
    }
    if let Some(url) = fields.get("baseUrl") {
        body["baseUrl"] = json!(url);
    }
    Ok(body)
}

pub async fn create(
    State(ui): State<Shared>,
    viewer: Viewer,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let connector = fields.get("connector").map(str::to_owned);
    let body = match connector.as_deref() {
        Some(key) => {
            // How the connector signs in decides which credentials are sent.
            let auth = match checked_id(key, "connector") {
                Ok(key) => ui
                    .get(&viewer, &format!("/connectors/{key}"))
                    .await
                    .ok()
                    .and_then(|d| d["auth"]["type"].as_str().map(str::to_owned)),
                Err(_) => None,
            };
            connector_body(key, auth.as_deref(), &fields)
        }
        None => Ok(body(&fields)),
    };
    let outcome = match body {
        Ok(body) => ui
            .post(&viewer, "/connections", body)
            .await
            .map_err(|failure| (failure.summary(), failure.fields)),
        Err(errors) => Err((
            "The settings are not a JSON object — see the highlighted field.".to_owned(),
            errors,
        )),
    };
    match outcome {
        Ok(created) => {
            let id = created["id"].as_str().unwrap_or_default();
            let next = if created["type"] == "oauth2" {
                "Connection added. Press Connect to authorize it with the provider."
            } else {
                "Connection added. Press Test to check that it works."
            };
            Ok(redirect_with_notice(&format!("/connections/{id}"), next))
        }
        Err((error, field_errors)) => {
            // Secrets are never sent back into the page.
            let form: Map<String, Value> = fields
                .0
                .iter()
                .filter(|(k, _)| {
                    !matches!(
                        k.as_str(),
                        "apiKey" | "password" | "clientSecret" | "token" | "_csrf"
                    )
                })
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            // A connector's own settings have no field each: their errors go to the JSON's.
            let settings_errors: Vec<Value> = field_errors
                .iter()
                .filter(|(k, _)| {
                    (k.as_str() == "settings" || k.starts_with("settings."))
                        && !OWN_SETTING_FIELDS.contains(&k.as_str())
                })
                .map(|(k, v)| json!({"field": k, "message": v}))
                .collect();
            let extra = json!({
                "error": error,
                "fieldErrors": field_errors,
                "settingsErrors": settings_errors,
                "form": form,
            });
            render_list(
                &ui,
                &viewer,
                StatusCode::UNPROCESSABLE_ENTITY,
                connector.as_deref(),
                extra,
            )
            .await
        }
    }
}

pub async fn show(State(ui): State<Shared>, viewer: Viewer, Path(id): Path<String>) -> UiResult {
    let id = checked_id(&id, "connection")?;
    render_one(&ui, &viewer, id, json!({})).await
}

/// A connection's page: its facts, the flows that use it, and the connections of the same
/// connector or type that could take its place in them.
pub(super) async fn render_one(ui: &Shared, viewer: &Viewer, id: &str, extra: Value) -> UiResult {
    let connection = ui.get(viewer, &format!("/connections/{id}")).await?;
    let uses = connection_edit::flows_using(ui, viewer, id).await?;
    let others = ui.items(viewer, "/connections?limit=200").await?;
    let mut context = json!({
        "nav": "connections",
        "connection": connection,
        "isOauth": connection["type"] == "oauth2",
        "settings": serde_json::to_string_pretty(&connection["settings"]).unwrap_or_default(),
        "usedBy": uses,
        "replacements": connection_edit::replacements(&connection, &others),
        "redirectUri": ui.app.oauth_redirect(),
    });
    super::merge(&mut context, extra);
    Ok(ui.page(viewer, "connection", context))
}

/// `test`, `connect` (OAuth2: off to the provider), `replace` (in the flows that use it) and
/// `delete`.
pub async fn act(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path((id, op)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "connection")?;
    let path = format!("/connections/{id}");
    match op.as_str() {
        "test" => {
            let tested = match ui.post(&viewer, &format!("{path}/test"), json!({})).await {
                Ok(tested) => tested,
                Err(failure) => return back_or_fail(&path, failure),
            };
            Ok(match tested["status"].as_str() {
                Some("ok") => redirect_with_notice(&path, "The test passed: the connection works."),
                _ => redirect_with_alert(
                    &path,
                    &format!(
                        "The test failed: {}",
                        tested["lastError"].as_str().unwrap_or("no reason given")
                    ),
                ),
            })
        }
        "connect" => {
            let (body, headers) = match ui
                .call(&viewer, "GET", &format!("{path}/authorize"), None)
                .await
            {
                Ok(answer) => answer,
                Err(failure) => return back_or_fail(&path, failure),
            };
            let location = headers
                .iter()
                .find(|(name, _)| name == "location")
                .map(|(_, v)| v.clone())
                .or_else(|| body["authorizeUrl"].as_str().map(str::to_owned))
                .ok_or_else(|| UiError::bad_request("the provider's address is missing"))?;
            Ok(Redirect::to(&location).into_response())
        }
        "replace" => connection_edit::replace(&ui, &viewer, id, &fields).await,
        "delete" => match ui.delete(&viewer, &path).await {
            Ok(_) => Ok(redirect_with_notice(
                "/connections",
                "The connection is deleted.",
            )),
            Err(failure) => back_or_fail(&path, failure),
        },
        _ => Err(UiError::not_found("action")),
    }
}
