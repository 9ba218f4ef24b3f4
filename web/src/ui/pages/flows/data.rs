//! The data panel: the trigger's sample and each earlier step's output as a tree of labelled
//! values ("Name: Acme Ltd"), each with the variable that inserts it (`{{trigger.name}}`).
//! The trigger's sample is the flow's latest captured one, else its manifest's; a step's
//! output is the one of the flow's latest run, else its action's sample.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::ui::{Shared, Viewer};

/// Rows of one tree, at most: a sample is for seeing the shape, not for reading it all.
const MAX_ROWS: usize = 60;
/// Levels of nesting shown.
const MAX_DEPTH: usize = 3;

/// What a saved flow has seen: its latest sample and its latest run's step outputs.
#[derive(Default)]
pub struct Seen {
    pub trigger: Option<Value>,
    /// Outputs by step key.
    pub outputs: BTreeMap<String, Value>,
}

impl Seen {
    pub async fn load(ui: &Shared, viewer: &Viewer, flow_id: &str) -> Seen {
        let trigger = ui
            .items(viewer, &format!("/flows/{flow_id}/samples"))
            .await
            .ok()
            .and_then(|items| items.into_iter().next())
            .map(|s| s["data"].clone());
        let runs = ui
            .items(viewer, &format!("/runs?flowId={flow_id}&pageSize=1"))
            .await
            .unwrap_or_default();
        let mut outputs = BTreeMap::new();
        for step in runs
            .first()
            .and_then(|r| r["steps"].as_array())
            .into_iter()
            .flatten()
        {
            if let (Some(key), Some(output)) = (step["key"].as_str(), step.get("output"))
                && !output.is_null()
            {
                outputs.insert(key.to_owned(), output.clone());
            }
        }
        Seen { trigger, outputs }
    }
}

/// One panel section: a title, where its data came from, and its rows.
pub fn section(title: &str, origin: &str, prefix: &str, data: &Value) -> Value {
    let mut rows = Vec::new();
    rows_of(prefix, data, 0, &mut rows);
    json!({"heading": title, "origin": origin, "rows": rows, "truncated": rows.len() >= MAX_ROWS})
}

fn rows_of(prefix: &str, data: &Value, depth: usize, rows: &mut Vec<Value>) {
    let Value::Object(map) = data else { return };
    for (key, value) in map {
        if rows.len() >= MAX_ROWS {
            return;
        }
        let path = format!("{prefix}.{key}");
        let label = humanize(key);
        match value {
            Value::Object(_) if depth + 1 < MAX_DEPTH => {
                rows.push(json!({"depth": depth, "label": label, "group": true}));
                rows_of(&path, value, depth + 1, rows);
            }
            Value::Array(items)
                if depth + 1 < MAX_DEPTH && items.first().is_some_and(Value::is_object) =>
            {
                rows.push(json!({"depth": depth, "label": format!("{label} (list of {}; the first:)", items.len()), "group": true}));
                rows_of(&format!("{path}.[0]"), &items[0], depth + 1, rows);
            }
            _ => rows.push(json!({
                "depth": depth,
                "label": label,
                "value": shown(value),
                "path": path,
                "template": format!("{{{{{path}}}}}"),
            })),
        }
    }
}

/// Inside a loop: the item (the first of a JSON list, to see its shape) and its index.
pub fn loop_section(items: &str) -> Value {
    let first = serde_json::from_str::<Value>(items.trim())
        .ok()
        .and_then(|list| list.as_array().and_then(|l| l.first().cloned()));
    let mut rows = Vec::new();
    match &first {
        Some(item @ Value::Object(_)) => {
            rows.push(json!({"depth": 0, "label": "Item", "group": true}));
            rows_of("item", item, 1, &mut rows);
        }
        Some(item) => rows.push(json!({"depth": 0, "label": "Item", "value": shown(item), "path": "item", "template": "{{item}}"})),
        None => rows.push(json!({"depth": 0, "label": "Item", "value": "(each item of the list)", "path": "item", "template": "{{item}}"})),
    }
    rows.push(json!({"depth": 0, "label": "Index", "value": "0, 1, 2…", "path": "index", "template": "{{index}}"}));
    json!({"heading": "The loop's item", "origin": "the first item", "rows": rows, "truncated": false})
}

/// `customerId` → `Customer id`, `created_at` → `Created at`, `id` → `ID`.
pub fn humanize(key: &str) -> String {
    if key == "id" {
        return "ID".into();
    }
    let mut words = String::new();
    for (i, c) in key.chars().enumerate() {
        if c == '_' || c == '-' {
            words.push(' ');
        } else if c.is_uppercase() && i > 0 {
            words.push(' ');
            words.extend(c.to_lowercase());
        } else if i == 0 {
            words.extend(c.to_uppercase());
        } else {
            words.push(c);
        }
    }
    words
}

/// A value as the panel shows it: texts as they are, empty as "(empty)", short.
fn shown(value: &Value) -> String {
    let text = match value {
        Value::Null => "(empty)".to_owned(),
        Value::String(s) if s.is_empty() => "(empty)".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.chars().count() > 60 {
        format!("{}…", text.chars().take(59).collect::<String>())
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_becomes_labelled_rows_with_their_variables() {
        let data = json!({"name": "Acme Ltd", "customerId": "cus_1", "address": {"city": "Oslo"}});
        let section = section("Trigger", "sample", "trigger", &data);
        let rows = section["rows"].as_array().unwrap();
        let name = rows.iter().find(|r| r["label"] == "Name").unwrap();
        assert_eq!(name["value"], "Acme Ltd");
        assert_eq!(name["template"], "{{trigger.name}}");
        assert!(rows.iter().any(|r| r["path"] == "trigger.address.city"));
        assert!(rows.iter().any(|r| r["label"] == "Customer id"));
    }
}
