//! Drafts: a change of a flow prepared without touching what is live. A draft is checked like
//! a flow (every problem a 422 with its path) and answers warnings besides: a variable that
//! the trigger's sample or an earlier step's sample does not have (`{{trigger.nme}}`), so a
//! typo shows at save instead of failing every run. Publishing makes it the next version.

use serde::Serialize;
use serde_json::{Value, json};

use super::check::Record;
use super::settings::Settings;
use super::{FlowInput, NOUN, samples, update};
use crate::access::auth::{Actor, Permission};
use crate::automation::manifest::Manifests;
use crate::automation::saving::Saving;
use crate::automation::template;
use crate::error::{Error, FieldError, Result};
use crate::store::clock::{format_ms, now_ms};
use crate::store::db::{Db, Sql, row};
use crate::store::patch::Patch;
use crate::store::rows;

/// A saved draft, with what is doubtful in it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Draft {
    pub name: String,
    #[schema(value_type = Object)]
    pub trigger: Value,
    #[schema(value_type = Vec<Object>)]
    pub steps: Value,
    pub settings: Settings,
    /// The live version when the draft was saved.
    pub based_on_version: i64,
    pub updated_at: String,
    /// Variables the samples do not have, each with the path of its field.
    #[schema(value_type = Vec<Object>)]
    pub warnings: Vec<FieldError>,
}

async fn flow_row(db: &Db, actor: &Actor, id: &str) -> Result<row::Row> {
    rows::live_row(db, "flows", actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))
}

fn no_draft() -> Error {
    Error::NotFound("draft")
}

/// `PUT /flows/{id}/draft`: checks the change laid over the live flow and keeps it as the
/// draft (replacing any earlier one). A webhook secret is not kept in a draft: change it on the
/// flow.
pub async fn save(
    db: &Db,
    saving: Saving<'_>,
    actor: &Actor,
    id: &str,
    input: FlowInput,
) -> Result<Draft> {
    actor.require(Permission::ManageFlows)?;
    if let Patch::Value(trigger) = &input.trigger
        && trigger.get("secret").is_some()
    {
        return Err(Error::validation(
            "trigger.secret",
            "not_in_draft",
            "a draft does not keep a webhook secret; set it on the flow (PATCH /flows/{id})",
        ));
    }
    if !input.is_enabled.is_absent() {
        return Err(Error::validation(
            "isEnabled",
            "not_in_draft",
            "a draft does not enable or disable the flow; use POST /flows/{id}/enable or /disable",
        ));
    }
    let row = flow_row(db, actor, id).await?;
    // Checked with the flow's secret, which the draft keeps using.
    let opened = row::get_opt_str(&row, "webhook_secret")?
        .map(|sealed| saving.vault.open_text(id, &sealed))
        .transpose()?;
    let current = Record::from_row(&row, opened)?;
    let connections = crate::automation::connections::kinds(db, actor.org_id()).await?;
    let rec = Record::apply(saving.manifests, &connections, input, Some(&current))?;
    let stored = json!({
        "name": rec.name,
        "trigger": rec.trigger.stored,
        "steps": rec.steps,
        "settings": rec.settings,
        "basedOnVersion": row::get_i64(&row, "version")?,
    });
    db.write_count(
        &Sql::new("UPDATE flows SET draft = ?, draft_updated_at = ? WHERE id = ?")
            .arg(stored.to_string())
            .arg(now_ms())
            .arg(id),
    )
    .await?;
    get(db, saving.manifests, actor, id).await
}

/// `GET /flows/{id}/draft`, with its warnings as of now.
pub async fn get(db: &Db, manifests: &Manifests, actor: &Actor, id: &str) -> Result<Draft> {
    actor.require(Permission::ReadFlows)?;
    let row = flow_row(db, actor, id).await?;
    let text = row::get_opt_str(&row, "draft")?.ok_or_else(no_draft)?;
    let stored: Value =
        serde_json::from_str(&text).map_err(|e| Error::Internal(format!("stored draft: {e}")))?;
    let sample = samples::of_trigger(db, manifests, id, &stored["trigger"]).await?;
    let warnings = warnings(manifests, sample.as_ref(), &stored["steps"]);
    Ok(Draft {
        name: stored["name"].as_str().unwrap_or_default().to_owned(),
        trigger: super::shown_trigger(
            &stored["trigger"],
            row::get_opt_str(&row, "webhook_token")?.as_deref(),
            row::get_opt_str(&row, "webhook_secret")?.is_some(),
        ),
        steps: stored["steps"].clone(),
        settings: serde_json::from_value(stored["settings"].clone()).unwrap_or_default(),
        based_on_version: stored["basedOnVersion"].as_i64().unwrap_or(0),
        updated_at: format_ms(row::get_opt_i64(&row, "draft_updated_at")?.unwrap_or(0)),
        warnings,
    })
}

/// `DELETE /flows/{id}/draft`.
pub async fn discard(db: &Db, actor: &Actor, id: &str) -> Result<()> {
    actor.require(Permission::ManageFlows)?;
    flow_row(db, actor, id).await?;
    let dropped = db
        .write_count(
            &Sql::new("UPDATE flows SET draft = NULL, draft_updated_at = NULL WHERE id = ? AND draft IS NOT NULL")
                .arg(id),
        )
        .await?;
    if dropped == 0 {
        return Err(no_draft());
    }
    Ok(())
}

/// `POST /flows/{id}/draft/publish`: the draft becomes the flow's next version, and is gone.
pub async fn publish(db: &Db, saving: Saving<'_>, actor: &Actor, id: &str) -> Result<super::Flow> {
    actor.require(Permission::ManageFlows)?;
    let row = flow_row(db, actor, id).await?;
    let text = row::get_opt_str(&row, "draft")?.ok_or_else(no_draft)?;
    let stored: Value =
        serde_json::from_str(&text).map_err(|e| Error::Internal(format!("stored draft: {e}")))?;
    let trigger = stored["trigger"].clone();
    let input = FlowInput {
        name: Patch::Value(stored["name"].as_str().unwrap_or_default().to_owned()),
        trigger: Patch::Value(trigger),
        steps: Patch::Value(stored["steps"].clone()),
        settings: Patch::Value(stored["settings"].clone()),
        ..FlowInput::default()
    };
    let flow = update(db, saving, actor, id, input).await?;
    db.write_count(
        &Sql::new(
            "UPDATE flows SET draft = NULL, draft_updated_at = NULL WHERE id = ? AND draft = ?",
        )
        .arg(id)
        .arg(text),
    )
    .await?;
    super::get(db, actor, &flow.id).await
}

/// Variables of the steps' templates that the samples do not have: `trigger.…` against the
/// trigger's sample, `steps.<key>.…` against that action's manifest sample. Unknown samples
/// (no trigger sample, a step that is not an action) are not guessed at.
pub fn warnings(manifests: &Manifests, trigger: Option<&Value>, steps: &Value) -> Vec<FieldError> {
    let mut outputs = serde_json::Map::new();
    collect_outputs(manifests, steps, &mut outputs);
    let mut found = Vec::new();
    walk(steps, "steps".into(), &mut |at, text| {
        for variable in template::variables(text) {
            if let Some(message) = missing(&variable, trigger, &outputs) {
                found.push(FieldError {
                    field: at.to_owned(),
                    code: "unknown_variable".into(),
                    message,
                });
            }
        }
    });
    found
}

/// Each action step's sample output, by key (anywhere in the tree).
fn collect_outputs(manifests: &Manifests, value: &Value, out: &mut serde_json::Map<String, Value>) {
    match value {
        Value::Object(node) => {
            if let (Some(key), Some(action)) = (
                node.get("key").and_then(Value::as_str),
                node.get("action").and_then(Value::as_str),
            ) && let Some(manifest) = manifests.actions.get(action)
            {
                let mut sample = manifest.sample.clone();
                if node.get("orCreate").is_some()
                    && let Some(object) = sample.as_object_mut()
                {
                    object.insert("created".into(), json!(false));
                }
                out.insert(key.to_owned(), sample);
            } else if let Some(key) = node.get("key").and_then(Value::as_str) {
                // A control node: what it gives is not known from a sample.
                out.insert(key.to_owned(), Value::Null);
            }
            node.values()
                .for_each(|v| collect_outputs(manifests, v, out));
        }
        Value::Array(items) => items
            .iter()
            .for_each(|v| collect_outputs(manifests, v, out)),
        _ => {}
    }
}

/// Calls `each` with every string of `value` and its path.
fn walk(value: &Value, at: String, each: &mut dyn FnMut(&str, &str)) {
    match value {
        Value::String(text) => each(&at, text),
        Value::Object(map) => map
            .iter()
            .for_each(|(k, v)| walk(v, format!("{at}.{k}"), each)),
        Value::Array(items) => items
            .iter()
            .enumerate()
            .for_each(|(i, v)| walk(v, format!("{at}[{i}]"), each)),
        _ => {}
    }
}

/// Why `variable` is not in the samples, if it is not.
fn missing(
    variable: &str,
    trigger: Option<&Value>,
    outputs: &serde_json::Map<String, Value>,
) -> Option<String> {
    let segments: Vec<&str> = variable
        .split('.')
        .map(|s| s.trim_matches(['[', ']']))
        .collect();
    match segments.as_slice() {
        ["trigger", rest @ ..] => {
            let sample = trigger.filter(|t| t.as_object().is_some_and(|o| !o.is_empty()))?;
            let gap = first_gap(sample, rest)?;
            Some(format!("{variable}: the trigger's sample has no {gap}"))
        }
        ["steps", key, rest @ ..] => match outputs.get(*key) {
            None => Some(format!("{variable}: the flow has no step {key}")),
            Some(Value::Null) => None,
            Some(sample) => {
                let gap = first_gap(sample, rest)?;
                Some(format!(
                    "{variable}: the sample output of step {key} has no {gap}"
                ))
            }
        },
        _ => None,
    }
}

/// The first segment of `path` that `value` does not have (lists and unknown shapes pass).
fn first_gap(value: &Value, path: &[&str]) -> Option<String> {
    let mut at = value;
    for (i, segment) in path.iter().enumerate() {
        match at {
            Value::Object(map) => match map.get(*segment) {
                Some(next) => at = next,
                None => return Some(path[..=i].join(".")),
            },
            Value::Array(items) => match segment.parse::<usize>() {
                Ok(n) => match items.get(n) {
                    Some(next) => at = next,
                    None => return None,
                },
                Err(_) => return None,
            },
            _ => return None,
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_typo_in_a_trigger_variable_is_flagged_with_its_field() {
        let manifests = Manifests::default();
        let trigger = json!({"id": "cus_1", "name": "Acme", "address": {"city": "Berlin"}});
        let steps = json!([{"key": "s", "type": "set", "values": {
            "a": "{{trigger.nme}}", "b": "{{trigger.name}} {{trigger.address.city}}",
            "c": "{{steps.nope.id}}", "d": "{{trigger.address.zip}}"}}]);
        let found = warnings(&manifests, Some(&trigger), &steps);
        let fields: Vec<(&str, &str)> = found
            .iter()
            .map(|w| (w.field.as_str(), w.message.as_str()))
            .collect();
        assert_eq!(
            fields,
            [
                (
                    "steps[0].values.a",
                    "trigger.nme: the trigger's sample has no nme"
                ),
                (
                    "steps[0].values.c",
                    "steps.nope.id: the flow has no step nope"
                ),
                (
                    "steps[0].values.d",
                    "trigger.address.zip: the trigger's sample has no address.zip"
                ),
            ]
        );
        assert!(
            warnings(
                &manifests,
                None,
                &json!([{"key": "s", "type": "set", "values": {"a": "{{trigger.x}}"}}])
            )
            .is_empty()
        );
    }
}
