//! A connection's edit page: rename it, give it new credentials (a rotated key), change its
//! settings or base URL, all through `PATCH /connections/{id}`; and replacing it with another
//! connection of the same connector and type in every flow that names it (`PATCH /flows/{id}`).

use std::collections::BTreeMap;

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use serde_json::{Map, Value, json};

use super::checked_id;
use super::connections::{OWN_SETTING_FIELDS, render_one};
use crate::ui::session::{Fields, redirect_with_alert, redirect_with_notice};
use crate::ui::{ApiFailure, Shared, UiResult, Viewer};

/// Form fields that hold secrets: never sent back into a page.
const SECRET_FIELDS: [&str; 5] = ["apiKey", "token", "password", "clientSecret", "_csrf"];

/// Whether a flow's trigger or steps, at any depth, name the connection `id`.
fn names_connection(value: &Value, id: &str) -> bool {
    match value {
        Value::Object(map) => map.iter().any(|(key, inner)| {
            (key == "connectionId" && inner.as_str() == Some(id)) || names_connection(inner, id)
        }),
        Value::Array(items) => items.iter().any(|item| names_connection(item, id)),
        _ => false,
    }
}

/// Makes every `connectionId` that names `old` name `new`; whether anything changed.
fn rename_connection(value: &mut Value, old: &str, new: &str) -> bool {
    let mut changed = false;
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if key == "connectionId" && inner.as_str() == Some(old) {
                    *inner = json!(new);
                    changed = true;
                } else {
                    changed |= rename_connection(inner, old, new);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                changed |= rename_connection(item, old, new);
            }
        }
        _ => {}
    }
    changed
}

/// Every flow of the organization, page after page.
async fn all_flows(ui: &Shared, viewer: &Viewer) -> Result<Vec<Value>, ApiFailure> {
    let mut flows = Vec::new();
    for page in 1..=100 {
        let body = ui
            .get(viewer, &format!("/flows?page={page}&pageSize=200"))
            .await?;
        flows.extend(body["items"].as_array().cloned().unwrap_or_default());
        if body["hasMore"] != Value::Bool(true) {
            break;
        }
    }
    Ok(flows)
}

/// The flows whose trigger or steps (nested ones too) name the connection `id`.
pub(super) async fn flows_using(
    ui: &Shared,
    viewer: &Viewer,
    id: &str,
) -> Result<Vec<Value>, ApiFailure> {
    Ok(all_flows(ui, viewer)
        .await?
        .into_iter()
        .filter(|f| names_connection(&f["trigger"], id) || names_connection(&f["steps"], id))
        .collect())
}

/// The connections that may take `connection`'s place in its flows: another connection to
/// the same connector, or for one made by type, another of that type.
pub(super) fn replacements(connection: &Value, candidates: &[Value]) -> Vec<Value> {
    candidates
        .iter()
        .filter(|c| {
            c["id"] != connection["id"]
                && c["connector"] == connection["connector"]
                && c["type"] == connection["type"]
        })
        .map(|c| json!({"id": c["id"], "name": c["name"], "status": c["status"]}))
        .collect()
}

/// `POST /connections/{id}/replace` with `with`: every flow that names this connection names
/// `with` instead; the page lists each flow with whether it changed.
pub(super) async fn replace(ui: &Shared, viewer: &Viewer, id: &str, fields: &Fields) -> UiResult {
    let path = format!("/connections/{id}");
    let Some(with) = fields.get("with") else {
        return Ok(redirect_with_alert(
            &path,
            "Choose the connection that takes its place.",
        ));
    };
    let with = checked_id(with, "connection")?;
    let connection = ui.get(viewer, &path).await?;
    let target = ui.get(viewer, &format!("/connections/{with}")).await?;
    if replacements(&connection, std::slice::from_ref(&target)).is_empty() {
        return Ok(redirect_with_alert(
            &path,
            "That connection cannot take its place: pick another connection to the same connector, of the same type.",
        ));
    }
    let mut results = Vec::new();
    for flow in flows_using(ui, viewer, id).await? {
        results.push(replace_in_flow(ui, viewer, flow, id, with).await);
    }
    let changed = results.iter().filter(|r| r["changed"] == true).count();
    let extra = json!({"replaced": {"with": target, "flows": results, "changed": changed}});
    render_one(ui, viewer, id, extra).await
}

/// Saves one flow with `new` in place of `old`, sending only the parts that change.
async fn replace_in_flow(
    ui: &Shared,
    viewer: &Viewer,
    mut flow: Value,
    old: &str,
    new: &str,
) -> Value {
    let mut body = Map::new();
    for part in ["trigger", "steps"] {
        let mut value = flow[part].take();
        if rename_connection(&mut value, old, new) {
            body.insert(part.into(), value);
        }
    }
    let flow_id = flow["id"].as_str().unwrap_or_default();
    let outcome = ui
        .call(
            viewer,
            "PATCH",
            &format!("/flows/{flow_id}"),
            Some(Value::Object(body)),
        )
        .await;
    json!({
        "id": flow["id"],
        "name": flow["name"],
        "changed": outcome.is_ok(),
        "error": outcome.err().map(|failure| failure.summary()),
    })
}

/// A connection being edited, with its connector's document when it was made for one.
struct Editing {
    connection: Value,
    document: Option<Value>,
}

/// A form the API (or the page) refused: why, the problems by field, what was typed.
struct Refusal {
    message: String,
    fields: BTreeMap<String, String>,
    form: Value,
}

async fn load(ui: &Shared, viewer: &Viewer, id: &str) -> UiResult<Editing> {
    let connection = ui.get(viewer, &format!("/connections/{id}")).await?;
    let document = match connection["connector"].as_str() {
        Some(key) => {
            let key = checked_id(key, "connector")?;
            Some(ui.get(viewer, &format!("/connectors/{key}")).await?)
        }
        None => None,
    };
    Ok(Editing {
        connection,
        document,
    })
}

/// The settings a connection to a connector was given: the connector's own, and OAuth2
/// addresses other than the connector's (a sandbox's).
fn own_settings(connection: &Value, document: &Value) -> Map<String, Value> {
    let own: Vec<String> = super::connectors::settings_of(document)
        .iter()
        .filter_map(|s| s["key"].as_str().map(str::to_owned))
        .collect();
    connection["settings"]
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, value)| {
            own.contains(key)
                || (matches!(key.as_str(), "authorizeUrl" | "tokenUrl")
                    && document["auth"][key.as_str()] != **value)
        })
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect()
}

/// The form's values as the connection has them now.
fn current_form(editing: &Editing) -> Value {
    let c = &editing.connection;
    let settings = &c["settings"];
    let scopes: Vec<&str> = settings["scopes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let settings_json = match &editing.document {
        Some(document) => {
            let own = own_settings(c, document);
            if own.is_empty() {
                String::new()
            } else {
                serde_json::to_string_pretty(&own).unwrap_or_default()
            }
        }
        None => String::new(),
    };
    json!({
        "name": c["name"],
        "baseUrl": c["baseUrl"],
        "header": settings["header"],
        "prefix": settings["prefix"],
        "authorizeUrl": settings["authorizeUrl"],
        "tokenUrl": settings["tokenUrl"],
        "clientId": settings["clientId"],
        "scopes": scopes.join(" "),
        "settingsJson": settings_json,
    })
}

async fn render_edit(
    ui: &Shared,
    viewer: &Viewer,
    editing: &Editing,
    refusal: Option<Refusal>,
) -> UiResult {
    let status = if refusal.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    let kind = editing.connection["type"].as_str().unwrap_or_default();
    let mut context = json!({
        "nav": "connections",
        "connection": editing.connection,
        "isOauth": kind.starts_with("oauth2"),
        "isAuthorizationCode": kind == "oauth2",
        "connector": editing.document.as_ref().map(|d| json!({
            "key": d["key"],
            "label": d["label"],
            "baseUrl": d["baseUrl"],
            "settings": super::connectors::settings_of(d),
        })),
        "form": current_form(editing),
        "redirectUri": ui.app.oauth_redirect(),
    });
    if let Some(refusal) = refusal {
        // A connector's own settings have no field each: their errors go to the JSON's.
        let settings_errors: Vec<Value> = refusal
            .fields
            .iter()
            .filter(|(k, _)| {
                editing.document.is_some()
                    && (k.as_str() == "settings" || k.starts_with("settings."))
                    && !OWN_SETTING_FIELDS.contains(&k.as_str())
            })
            .map(|(k, v)| json!({"field": k, "message": v}))
            .collect();
        super::merge(
            &mut context,
            json!({
                "error": refusal.message,
                "fieldErrors": refusal.fields,
                "settingsErrors": settings_errors,
                "form": refusal.form,
            }),
        );
    }
    Ok(ui.page_with_status(status, viewer, "connection_edit", context))
}

pub async fn edit_form(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> UiResult {
    let id = checked_id(&id, "connection")?;
    let editing = load(&ui, &viewer, id).await?;
    render_edit(&ui, &viewer, &editing, None).await
}

pub async fn save(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "connection")?;
    let editing = load(&ui, &viewer, id).await?;
    // What was typed goes back into a refused form, secrets left out.
    let form: Map<String, Value> = fields
        .0
        .iter()
        .filter(|(k, _)| !SECRET_FIELDS.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let form = Value::Object(form);
    let body = match edit_body(&editing, &fields) {
        Ok(body) => body,
        Err(errors) => {
            let refusal = Refusal {
                message: "The settings are not a JSON object — see the highlighted field.".into(),
                fields: errors,
                form,
            };
            return render_edit(&ui, &viewer, &editing, Some(refusal)).await;
        }
    };
    let path = format!("/connections/{id}");
    match ui.call(&viewer, "PATCH", &path, Some(body)).await {
        Ok((after, _)) => Ok(redirect_with_notice(
            &path,
            saved_notice(&editing.connection, &after),
        )),
        Err(failure) if matches!(failure.status, 400 | 409 | 422) => {
            let refusal = Refusal {
                message: failure.summary(),
                fields: failure.fields,
                form,
            };
            render_edit(&ui, &viewer, &editing, Some(refusal)).await
        }
        Err(failure) => Err(failure.into()),
    }
}

/// What to do next after a save: authorize again when the tokens were dropped, test when the
/// credentials or where they go changed.
fn saved_notice(before: &Value, after: &Value) -> &'static str {
    if before["isAuthorized"] == true && after["isAuthorized"] != true {
        "Saved. Its tokens were for the old client or provider: press Connect to authorize it again."
    } else if after["status"] == "untested" {
        "Saved. Press Test to check that it works with the new credentials or settings."
    } else {
        "Saved."
    }
}

/// The body of `PATCH /connections/{id}`: the name, and only what the form changes of the
/// base URL, settings and credentials (credentials left empty are kept).
fn edit_body(editing: &Editing, fields: &Fields) -> Result<Value, BTreeMap<String, String>> {
    let connection = &editing.connection;
    let kind = connection["type"].as_str().unwrap_or_default();
    let mut body = json!({"name": fields.get("name")});
    if kind == "self" {
        return Ok(body);
    }
    let base_url = fields.get("baseUrl");
    let base_url_changed = base_url != connection["baseUrl"].as_str();
    let settings = match &editing.document {
        // Emptied, a connector connection's base URL is the connector's again, made from
        // its settings: sending them makes the API work it out.
        Some(document) => connector_settings(connection, document, fields, base_url.is_none())?,
        None => typed_settings(connection, fields),
    };
    if base_url_changed && (base_url.is_some() || editing.document.is_none()) {
        body["baseUrl"] = json!(base_url);
    }
    if let Some(settings) = settings {
        body["settings"] = settings;
    }
    let credentials = new_credentials(kind, fields);
    if !credentials.is_empty() {
        body["credentials"] = Value::Object(credentials);
    }
    Ok(body)
}

/// A connector connection's settings from the form's JSON (and OAuth2 client id), when they
/// differ from what it has or `resend` asks for them.
fn connector_settings(
    connection: &Value,
    document: &Value,
    fields: &Fields,
    resend: bool,
) -> Result<Option<Value>, BTreeMap<String, String>> {
    let refuse = |message: String| Err(BTreeMap::from([("settings".to_owned(), message)]));
    let mut given = match fields.get("settingsJson") {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(map)) => map,
            Ok(_) => {
                return refuse("Settings (JSON) must be an object: {\"name\": \"value\"}".into());
            }
            Err(error) => return refuse(format!("Settings (JSON) is not valid JSON: {error}")),
        },
    };
    let is_oauth = connection["type"]
        .as_str()
        .is_some_and(|t| t.starts_with("oauth2"));
    let client_id = fields.get("clientId");
    let client_changed = is_oauth && client_id != connection["settings"]["clientId"].as_str();
    if given == own_settings(connection, document) && !client_changed && !resend {
        return Ok(None);
    }
    // Settings given replace the connection's: the client id goes with them.
    if let (true, Some(id)) = (is_oauth, client_id) {
        given.insert("clientId".into(), json!(id));
    }
    Ok(Some(Value::Object(given)))
}

/// The settings of a connection made by type, from the form's fields, when they changed.
fn typed_settings(connection: &Value, fields: &Fields) -> Option<Value> {
    let before = connection["settings"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let mut after = before.clone();
    let mut set = |key: &str, value: Option<Value>| match value {
        Some(value) => after.insert(key.to_owned(), value),
        None => after.remove(key),
    };
    match connection["type"].as_str() {
        Some("api_key") => {
            set("header", fields.get("header").map(|h| json!(h)));
            // A prefix such as "Bearer " keeps its space.
            set("prefix", Some(json!(fields.raw("prefix"))));
        }
        Some("oauth2" | "oauth2_client_credentials") => {
            for key in ["authorizeUrl", "tokenUrl", "clientId"] {
                set(key, fields.get(key).map(|v| json!(v)));
            }
            let scopes: Vec<&str> = fields
                .get("scopes")
                .unwrap_or_default()
                .split([' ', ','])
                .filter(|s| !s.is_empty())
                .collect();
            set("scopes", Some(json!(scopes)));
        }
        _ => return None,
    }
    (after != before).then_some(Value::Object(after))
}

/// The credentials typed into the form, by how the connection signs in; none when all were
/// left empty (the stored ones are kept).
fn new_credentials(kind: &str, fields: &Fields) -> Map<String, Value> {
    let names: &[&str] = match kind {
        "api_key" => &["apiKey"],
        "bearer" => &["token"],
        "basic" => &["username", "password"],
        "oauth2" | "oauth2_client_credentials" => &["clientSecret"],
        _ => &[],
    };
    if names.iter().all(|name| fields.get(name).is_none()) {
        return Map::new();
    }
    // All of them, so that the API names one left out.
    names
        .iter()
        .map(|name| ((*name).to_owned(), json!(fields.get(name))))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_connection_is_found_and_renamed_at_any_depth() {
        let mut steps = json!([
            {"key": "a", "action": "create_project", "connectionId": "con_old", "input": {}},
            {"key": "check", "type": "if", "condition": {}, "then": [
                {"key": "b", "action": "create_task", "connectionId": "con_old", "input": {}}
            ], "else": [
                {"key": "c", "action": "create_task", "connectionId": "con_other", "input": {}}
            ]}
        ]);
        assert!(names_connection(&steps, "con_old"));
        assert!(!names_connection(&steps, "con_new"));
        assert!(rename_connection(&mut steps, "con_old", "con_new"));
        assert!(!names_connection(&steps, "con_old"));
        assert_eq!(steps[1]["then"][0]["connectionId"], "con_new");
        assert_eq!(steps[1]["else"][0]["connectionId"], "con_other");
        assert!(!rename_connection(&mut steps, "con_old", "con_new"));
    }

    #[test]
    fn only_the_same_connector_and_type_may_replace_a_connection() {
        let slack = json!({"id": "con_1", "connector": "slack", "type": "bearer"});
        let candidates = [
            json!({"id": "con_1", "connector": "slack", "type": "bearer"}),
            json!({"id": "con_2", "connector": "slack", "type": "bearer", "name": "B"}),
            json!({"id": "con_3", "connector": null, "type": "bearer"}),
            json!({"id": "con_4", "connector": "github", "type": "bearer"}),
        ];
        let ids: Vec<Value> = replacements(&slack, &candidates)
            .into_iter()
            .map(|c| c["id"].clone())
            .collect();
        assert_eq!(ids, vec![json!("con_2")]);
    }
}
