//! `/connectors`: the systems flows reach (timix, the catalogue, the operator's and the
//! organization's own); install one of the organization's own from its YAML document, see a
//! connector's actions, triggers and lookups, upload a new version, delete it.

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::checked_id;
use crate::ui::session::{Fields, redirect_with_notice};
use crate::ui::{ApiFailure, Shared, UiError, UiResult, Viewer, back_or_fail};

/// A document pasted into a form: YAML, or JSON (which YAML reads too).
fn parse(text: &str) -> Result<Value, String> {
    if text.trim().is_empty() {
        return Err("Paste the connector's document (YAML or JSON).".into());
    }
    yaml_serde::from_str::<Value>(text).map_err(|e| format!("The document is not valid YAML: {e}"))
}

/// A refusal the form shows (a document that does not fit, a key taken), rather than a page
/// of its own.
fn is_refusal(failure: &ApiFailure) -> bool {
    matches!(failure.status, 400 | 409 | 413 | 422)
}

/// Every problem the API found, with its path in the document as the API gave it.
fn problems(failure: &ApiFailure) -> Vec<Value> {
    failure
        .problems
        .iter()
        .map(|(field, message)| {
            // The document itself (a root that is not an object) has the empty path.
            let field = if field.is_empty() {
                "/"
            } else {
                field.as_str()
            };
            json!({"field": field, "message": message})
        })
        .collect()
}

/// What a refused document shows beside the form.
fn refused(failure: &ApiFailure, text: &str) -> Value {
    let problems = problems(failure);
    let error = if problems.is_empty() {
        crate::ui::session::capitalize(&failure.message)
    } else {
        format!(
            "The document has {}; each is listed below with its place in the document.",
            if problems.len() == 1 {
                "a problem".to_owned()
            } else {
                format!("{} problems", problems.len())
            }
        )
    };
    json!({"error": error, "problems": problems, "document": text})
}

fn status_of(failure: &ApiFailure) -> StatusCode {
    StatusCode::from_u16(failure.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY)
}

/// A connector as a row of the list: with its counts.
fn row(connector: &Value) -> Value {
    let mut row = connector.clone();
    let count = |name: &str| connector[name].as_array().map_or(0, Vec::len);
    if let Some(object) = row.as_object_mut() {
        object.insert("actionCount".into(), json!(count("actions")));
        object.insert("triggerCount".into(), json!(count("triggers")));
        object.insert("lookupCount".into(), json!(count("lookups")));
    }
    row
}

async fn render_list(ui: &Shared, viewer: &Viewer, status: StatusCode, extra: Value) -> UiResult {
    let connectors: Vec<Value> = ui
        .items(viewer, "/connectors")
        .await?
        .iter()
        .map(row)
        .collect();
    let mut context = json!({
        "nav": "connectors",
        "connectors": connectors,
    });
    super::merge(&mut context, extra);
    Ok(ui.page_with_status(status, viewer, "connectors", context))
}

pub async fn list(State(ui): State<Shared>, viewer: Viewer) -> UiResult {
    render_list(&ui, &viewer, StatusCode::OK, json!({})).await
}

/// Installs a connector from the YAML pasted in the form, through `POST /connectors`.
pub async fn install(
    State(ui): State<Shared>,
    viewer: Viewer,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let text = fields.raw("document");
    let document = match parse(text) {
        Ok(document) => document,
        Err(message) => {
            let extra = json!({"error": message, "document": text});
            return render_list(&ui, &viewer, StatusCode::UNPROCESSABLE_ENTITY, extra).await;
        }
    };
    match ui.post(&viewer, "/connectors", document).await {
        Ok(created) => {
            let key = created["key"].as_str().unwrap_or_default();
            let key = checked_id(key, "connector")?;
            Ok(redirect_with_notice(
                &format!("/connectors/{key}"),
                "Connector installed: flows can use its actions and triggers now. Make a \
                 connection to it to use them.",
            ))
        }
        Err(failure) if is_refusal(&failure) => {
            let extra = refused(&failure, text);
            render_list(&ui, &viewer, status_of(&failure), extra).await
        }
        Err(failure) => Err(failure.into()),
    }
}

/// A connector's own connection settings (`{key, title, description, required}` each), from
/// the JSON Schema in its document.
pub fn settings_of(document: &Value) -> Vec<Value> {
    let required = &document["settings"]["required"];
    document["settings"]["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, schema)| {
            json!({
                "key": name,
                "title": schema["title"],
                "description": schema["description"],
                "required": required.as_array().is_some_and(|r| r.contains(&json!(name))),
            })
        })
        .collect()
}

/// An item of a connector's list: an object of the document, or a key alone (timix's).
fn item(value: &Value) -> Value {
    match value {
        Value::String(key) => json!({"key": key}),
        other => other.clone(),
    }
}

/// The document without what the API adds to it, as YAML to edit for a new version.
fn as_yaml(document: &Value) -> String {
    let mut document = document.clone();
    if let Some(object) = document.as_object_mut() {
        for added in ["source", "versionId", "revision"] {
            object.remove(added);
        }
    }
    yaml_serde::to_string(&document).unwrap_or_default()
}

async fn render_show(
    ui: &Shared,
    viewer: &Viewer,
    key: &str,
    status: StatusCode,
    extra: Value,
) -> UiResult {
    let document = ui.get(viewer, &format!("/connectors/{key}")).await?;
    let list = |name: &str| -> Vec<Value> {
        document[name]
            .as_array()
            .into_iter()
            .flatten()
            .map(item)
            .collect()
    };
    // Actions as steps name them: `notes.add_note`; timix's keep their own keys.
    let actions: Vec<Value> = list("actions")
        .into_iter()
        .map(|mut a| {
            let own = a["key"].as_str().unwrap_or_default().to_owned();
            let qualified = if key == "timix" || own.contains('.') {
                own
            } else {
                format!("{key}.{own}")
            };
            if let Some(object) = a.as_object_mut() {
                object.insert("qualified".into(), json!(qualified));
            }
            a
        })
        .collect();
    let triggers = list("triggers");
    let lookups: Vec<Value> = match &document["lookups"] {
        Value::Object(map) => map
            .iter()
            .map(|(name, spec)| json!({"key": name, "label": spec["label"]}))
            .collect(),
        Value::Array(names) => names.iter().map(item).collect(),
        _ => Vec::new(),
    };
    let settings = settings_of(&document);
    // Only a web address is linked.
    let docs = document["docs"]
        .as_str()
        .filter(|d| d.starts_with("https://") || d.starts_with("http://"))
        .map(str::to_owned);
    let is_own = document["source"] == "organization";
    let auth_type = document["auth"]["type"].clone();
    let yaml = if is_own {
        as_yaml(&document)
    } else {
        String::new()
    };
    let mut context = json!({
        "nav": "connectors",
        "connector": document,
        "authType": auth_type,
        "docsUrl": docs,
        "actions": actions,
        "triggers": triggers,
        "lookups": lookups,
        "settings": settings,
        "isOwn": is_own,
        "canConnect": key != "timix",
        "document": yaml,
    });
    super::merge(&mut context, extra);
    Ok(ui.page_with_status(status, viewer, "connector", context))
}

pub async fn show(State(ui): State<Shared>, viewer: Viewer, Path(key): Path<String>) -> UiResult {
    let key = checked_id(&key, "connector")?;
    render_show(&ui, &viewer, key, StatusCode::OK, json!({})).await
}

/// `version` (a new version of the organization's connector, through `PUT`) and `delete`.
pub async fn act(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path((key, op)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let key = checked_id(&key, "connector")?;
    let path = format!("/connectors/{key}");
    match op.as_str() {
        "version" => {
            let text = fields.raw("document");
            let document = match parse(text) {
                Ok(document) => document,
                Err(message) => {
                    let extra = json!({"error": message, "document": text});
                    let status = StatusCode::UNPROCESSABLE_ENTITY;
                    return render_show(&ui, &viewer, key, status, extra).await;
                }
            };
            match ui.put(&viewer, &path, document).await {
                Ok(saved) => Ok(redirect_with_notice(
                    &path,
                    &format!(
                        "Version {} saved. Flows keep the version they were saved with until \
                         they are saved again.",
                        saved["version"].as_str().unwrap_or("")
                    ),
                )),
                Err(failure) if is_refusal(&failure) => {
                    let extra = refused(&failure, text);
                    render_show(&ui, &viewer, key, status_of(&failure), extra).await
                }
                Err(failure) => Err(failure.into()),
            }
        }
        "delete" => match ui.delete(&viewer, &path).await {
            Ok(_) => Ok(redirect_with_notice(
                "/connectors",
                "The connector is deleted.",
            )),
            Err(failure) => back_or_fail(&path, failure),
        },
        _ => Err(UiError::not_found("action")),
    }
}
