//! "Only if…" and "for each…" around a step: the builder's form for the flow language's `if`
//! and `forEach` nodes (API.md section 8). A step with a condition is stored as an `if` whose
//! `then` is that step (`<key>_if`); with a list, as a `forEach` over it (`<key>_each`), the
//! condition inside the loop. A stored flow of that shape comes back as the same form; other
//! `if` and `forEach` nodes are nodes of the tree (`tree.rs`).

use serde_json::{Value, json};

use super::as_text as text;

/// The condition and the loop of one step, as the form holds them.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Control {
    pub left: String,
    pub op: String,
    pub right: String,
    /// A template of a list (`{{trigger.lines}}`) or a JSON list.
    pub items: String,
}

/// The comparisons offered, in the words the builder shows.
pub const OPS: &[(&str, &str)] = &[
    ("equals", "is"),
    ("notEquals", "is not"),
    ("contains", "contains"),
    ("notContains", "does not contain"),
    ("startsWith", "starts with"),
    ("endsWith", "ends with"),
    ("gt", "is more than"),
    ("gte", "is at least"),
    ("lt", "is less than"),
    ("lte", "is at most"),
    ("before", "is before"),
    ("after", "is after"),
    ("isEmpty", "is empty"),
    ("isNotEmpty", "is not empty"),
    ("exists", "exists"),
    ("notExists", "does not exist"),
    ("matches", "matches the pattern"),
];

impl Control {
    pub fn has_condition(&self) -> bool {
        !self.left.trim().is_empty() || !self.op.is_empty()
    }

    pub fn has_loop(&self) -> bool {
        !self.items.trim().is_empty()
    }

    /// The ops offered, the chosen one selected.
    pub fn op_options(&self) -> Vec<Value> {
        OPS.iter()
            .map(|(value, label)| json!({"value": value, "label": label, "selected": *value == self.op}))
            .collect()
    }

    /// "For each item of … · only if … contains …", for the step's heading.
    pub fn describe(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.has_loop() {
            parts.push(format!("for each item of {}", self.items.trim()));
        }
        if self.has_condition() {
            let op = OPS
                .iter()
                .find(|(v, _)| *v == self.op)
                .map_or(self.op.as_str(), |(_, label)| label);
            parts.push(format!(
                "only if {} {op} {}",
                self.left.trim(),
                self.right.trim()
            ));
        }
        (!parts.is_empty()).then(|| parts.join(" · ").trim().to_owned())
    }

    /// The step's node inside its condition and loop.
    pub fn wrap(&self, key: &str, node: Value) -> Value {
        let mut node = node;
        if self.has_condition() {
            let condition = comparison(&self.left, &self.op, &self.right);
            node = json!({"key": format!("{key}_if"), "type": "if", "condition": condition, "then": [node]});
        }
        if self.has_loop() {
            let items = serde_json::from_str::<Value>(self.items.trim())
                .ok()
                .filter(Value::is_array)
                .unwrap_or_else(|| json!(self.items.trim()));
            node = json!({"key": format!("{key}_each"), "type": "forEach", "items": items, "steps": [node]});
        }
        node
    }
}

/// A stored node the form can show: a plain action, maybe inside a `forEach` and/or an `if`
/// of the builder's shape. `None` for anything else.
pub fn unwrap(node: &Value) -> Option<(&Value, Control)> {
    let mut control = Control::default();
    // The wrappers' keys, which must be the ones the form makes again.
    let mut wrappers = Vec::new();
    let mut node = node;
    if node["type"] == "forEach" && only_keys(node, &["key", "type", "items", "steps"]) {
        wrappers.push((node["key"].as_str()?, "_each"));
        control.items = match &node["items"] {
            Value::String(text) => text.clone(),
            other => other.to_string(),
        };
        node = single(&node["steps"])?;
    }
    if node["type"] == "if" && only_keys(node, &["key", "type", "condition", "then"]) {
        let condition = &node["condition"];
        if !is_form_comparison(condition) {
            return None;
        }
        wrappers.push((node["key"].as_str()?, "_if"));
        control.left = text(&condition["left"]);
        control.op = text(&condition["op"]);
        control.right = text(&condition["right"]);
        node = single(&node["then"])?;
    }
    let plain = node.get("type").is_none_or(|t| t == "action")
        && node
            .get("onError")
            .is_none_or(|e| e == "fail" || e == "continue" || e["steps"].is_array())
        && node.get("orCreate").is_none()
        && node.get("action").is_some();
    let key = node["key"].as_str()?;
    let same_keys = wrappers
        .iter()
        .all(|(wrapper, suffix)| *wrapper == format!("{key}{suffix}"));
    (plain && same_keys).then_some((node, control))
}

/// A comparison as the flow language stores it (`right` only when there is one).
pub fn comparison(left: &str, op: &str, right: &str) -> Value {
    let mut condition = json!({"left": left, "op": op});
    if !right.is_empty() {
        condition["right"] = json!(right);
    }
    condition
}

/// A stored condition the form's fields give back unchanged: one comparison of the ones it
/// offers, of texts on one line, with a non-empty `right` when it has one. Anything else
/// (`all`, `in`, a number, a line break) is edited as JSON.
pub fn is_form_comparison(condition: &Value) -> bool {
    let line = |v: &Value| v.as_str().is_some_and(|t| !t.contains('\n'));
    only_keys(condition, &["left", "op", "right"])
        && line(&condition["left"])
        && condition["op"]
            .as_str()
            .is_some_and(|op| OPS.iter().any(|(o, _)| *o == op))
        && condition
            .get("right")
            .is_none_or(|r| line(r) && r.as_str() != Some(""))
}

fn single(steps: &Value) -> Option<&Value> {
    match steps.as_array()?.as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

fn only_keys(node: &Value, keys: &[&str]) -> bool {
    node.as_object()
        .is_some_and(|map| map.keys().all(|k| keys.contains(&k.as_str())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapped_step_round_trips() {
        let control = Control {
            left: "{{trigger.name}}".into(),
            op: "contains".into(),
            right: "Corp".into(),
            items: "[\"Kick-off\", \"Plan\"]".into(),
        };
        let action = json!({"key": "task", "action": "create_task", "input": {"name": "{{item}}"}});
        let node = control.wrap("task", action.clone());
        assert_eq!(node["type"], "forEach");
        assert_eq!(node["items"], json!(["Kick-off", "Plan"]));
        assert_eq!(node["steps"][0]["type"], "if");
        let (inner, again) = unwrap(&node).expect("the builder's shape");
        assert_eq!(inner, &action);
        assert_eq!(again.items, "[\"Kick-off\",\"Plan\"]");
        assert_eq!(again.op, "contains");
        // An `if` of another key is a node of its own: re-saving keeps its key.
        let other = json!({"key": "check", "type": "if", "condition": {"left": "a", "op": "isEmpty"}, "then": [action]});
        assert!(unwrap(&other).is_none());
    }
}
