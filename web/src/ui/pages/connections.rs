//! `/connections`: add API-key, basic, OAuth2 and `self` connections, test them, connect OAuth2
//! ones (the provider's page and back), see their status and last error, delete them.

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect};
use serde_json::{Map, Value, json};

use super::checked_id;
use crate::ui::session::{Fields, redirect_with_alert, redirect_with_notice};
use crate::ui::{Shared, UiError, UiResult, Viewer, back_or_fail};

const TYPES: [(&str, &str); 4] = [
    ("api_key", "API key"),
    ("basic", "User name and password"),
    ("oauth2", "OAuth2"),
    ("self", "This timix instance"),
];

async fn render_list(ui: &Shared, viewer: &Viewer, status: StatusCode, extra: Value) -> UiResult {
    let connections = ui.items(viewer, "/connections?limit=200").await?;
    let chosen = extra["form"]["type"]
        .as_str()
        .unwrap_or("api_key")
        .to_owned();
    let types: Vec<Value> = TYPES
        .iter()
        .map(|(value, label)| json!({"value": value, "label": label, "selected": *value == chosen}))
        .collect();
    let mut context = json!({
        "nav": "connections",
        "connections": connections,
        "types": types,
        "redirectUri": ui.app.oauth_redirect(),
    });
    super::merge(&mut context, extra);
    Ok(ui.page_with_status(status, viewer, "connections", context))
}

pub async fn list(State(ui): State<Shared>, viewer: Viewer) -> UiResult {
    render_list(&ui, &viewer, StatusCode::OK, json!({})).await
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

pub async fn create(
    State(ui): State<Shared>,
    viewer: Viewer,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    match ui.post(&viewer, "/connections", body(&fields)).await {
        Ok(created) => {
            let id = created["id"].as_str().unwrap_or_default();
            let next = if created["type"] == "oauth2" {
                "Connection added. Press Connect to authorize it with the provider."
            } else {
                "Connection added. Press Test to check that it works."
            };
            Ok(redirect_with_notice(&format!("/connections/{id}"), next))
        }
        Err(failure) => {
            // Secrets are never sent back into the page.
            let form: Map<String, Value> = fields
                .0
                .iter()
                .filter(|(k, _)| {
                    !matches!(k.as_str(), "apiKey" | "password" | "clientSecret" | "_csrf")
                })
                .map(|(k, v)| (k.clone(), json!(v)))
                .collect();
            let extra = json!({
                "error": failure.summary(),
                "fieldErrors": failure.fields,
                "form": form,
            });
            render_list(&ui, &viewer, StatusCode::UNPROCESSABLE_ENTITY, extra).await
        }
    }
}

pub async fn show(State(ui): State<Shared>, viewer: Viewer, Path(id): Path<String>) -> UiResult {
    let id = checked_id(&id, "connection")?;
    let connection = ui.get(&viewer, &format!("/connections/{id}")).await?;
    let flows = ui.items(&viewer, "/flows?limit=200").await?;
    let uses: Vec<&Value> = flows
        .iter()
        .filter(|f| {
            f["trigger"]["connectionId"].as_str() == Some(id)
                || f["steps"]
                    .as_array()
                    .is_some_and(|s| s.iter().any(|s| s["connectionId"].as_str() == Some(id)))
        })
        .collect();
    let context = json!({
        "nav": "connections",
        "connection": connection,
        "isOauth": connection["type"] == "oauth2",
        "settings": serde_json::to_string_pretty(&connection["settings"]).unwrap_or_default(),
        "usedBy": uses,
        "redirectUri": ui.app.oauth_redirect(),
    });
    Ok(ui.page(&viewer, "connection", context))
}

/// `test`, `connect` (OAuth2: off to the provider) and `delete`.
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
