//! The flow's steps as the tree of nodes of the flow language (API.md section 8), as the
//! builder's form holds them. A node's fields are named by its API path
//! (`steps[1].then[0].input.name`), so a refusal lands on the field it names; the lists of
//! nodes are `then`, `else`, `cases[i].steps`, `default`, a loop's `steps` and an action's
//! `onError.steps`. A node the form cannot show field by field (a find-or-create, a kind it
//! does not know) is edited as that node's JSON, so nothing of a stored flow is lost.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value, json};

use super::as_text as text;
use super::control::{self, Control, OPS};

/// The kinds of node the builder offers, in the order of its "Add" menu.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum NodeKind {
    #[default]
    Action,
    If,
    Switch,
    ForEach,
    Filter,
    Set,
    Delay,
    Stop,
    /// Any node edited as its JSON.
    Json,
}

impl NodeKind {
    pub const ADDABLE: [NodeKind; 8] = [
        NodeKind::Action,
        NodeKind::If,
        NodeKind::Switch,
        NodeKind::ForEach,
        NodeKind::Filter,
        NodeKind::Set,
        NodeKind::Delay,
        NodeKind::Stop,
    ];

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "" | "action" => NodeKind::Action,
            "if" => NodeKind::If,
            "switch" => NodeKind::Switch,
            "forEach" => NodeKind::ForEach,
            "filter" => NodeKind::Filter,
            "set" => NodeKind::Set,
            "delay" => NodeKind::Delay,
            "stop" => NodeKind::Stop,
            "json" => NodeKind::Json,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            NodeKind::Action => "action",
            NodeKind::If => "if",
            NodeKind::Switch => "switch",
            NodeKind::ForEach => "forEach",
            NodeKind::Filter => "filter",
            NodeKind::Set => "set",
            NodeKind::Delay => "delay",
            NodeKind::Stop => "stop",
            NodeKind::Json => "json",
        }
    }

    /// The words of the "Add" menu.
    pub fn label(self) -> &'static str {
        match self {
            NodeKind::Action => "Action",
            NodeKind::If => "If / else",
            NodeKind::Switch => "Paths",
            NodeKind::ForEach => "For each",
            NodeKind::Filter => "Filter",
            NodeKind::Set => "Set values",
            NodeKind::Delay => "Delay",
            NodeKind::Stop => "Stop",
            NodeKind::Json => "JSON",
        }
    }

    /// The key a new node of this kind gets.
    pub fn default_key(self) -> &'static str {
        match self {
            NodeKind::Action => "step",
            NodeKind::If => "check",
            NodeKind::Switch => "paths",
            NodeKind::ForEach => "each",
            NodeKind::Filter => "only",
            NodeKind::Set => "values",
            NodeKind::Delay => "wait",
            NodeKind::Stop => "stop",
            NodeKind::Json => "node",
        }
    }
}

/// A condition as the form holds it: one comparison, or any other condition as JSON.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Condition {
    pub left: String,
    pub op: String,
    pub right: String,
    /// `all`, `any`, `not`: edited as JSON.
    pub json: String,
}

impl Condition {
    fn from_value(value: &Value) -> Self {
        let leaf = control::is_form_comparison(value);
        if leaf {
            Condition {
                left: text(&value["left"]),
                op: text(&value["op"]),
                right: text(&value["right"]),
                json: String::new(),
            }
        } else if value.is_null() {
            Condition::default()
        } else {
            Condition {
                json: serde_json::to_string_pretty(value).unwrap_or_default(),
                ..Condition::default()
            }
        }
    }

    fn to_value(&self) -> Result<Value, &'static str> {
        if !self.json.trim().is_empty() {
            return serde_json::from_str::<Value>(&self.json)
                .ok()
                .filter(Value::is_object)
                .ok_or("write the condition as a JSON object: {\"all\": [{\"left\": \"{{trigger.total}}\", \"op\": \"gt\", \"right\": \"1000\"}]}");
        }
        Ok(control::comparison(&self.left, &self.op, &self.right))
    }

    /// "{{trigger.name}} contains Corp".
    pub fn describe(&self) -> String {
        if !self.json.trim().is_empty() {
            return "a condition".into();
        }
        if self.op.is_empty() {
            return "…".into();
        }
        let op = OPS
            .iter()
            .find(|(v, _)| *v == self.op)
            .map_or(self.op.as_str(), |(_, label)| label);
        format!("{} {op} {}", self.left.trim(), self.right.trim())
            .trim()
            .to_owned()
    }

    pub fn op_options(&self) -> Vec<Value> {
        OPS.iter()
            .map(|(value, label)| json!({"value": value, "label": label, "selected": *value == self.op}))
            .collect()
    }
}

/// One path of a `switch`.
#[derive(Debug, Default, Clone)]
pub struct Case {
    pub name: String,
    pub condition: Condition,
    pub steps: Vec<Node>,
}

/// A node as the form holds it: every value as text. Each kind uses its own fields.
#[derive(Debug, Default, Clone)]
pub struct Node {
    pub kind: NodeKind,
    pub key: String,
    // An action.
    pub action: String,
    pub connection_id: String,
    pub input: BTreeMap<String, String>,
    /// Picks and dates as sent, made into `input` by `pickers::resolve`.
    pub picks: BTreeMap<String, String>,
    pub dates: BTreeMap<String, String>,
    /// Inputs whose picker was set to "map a value".
    pub mapped: BTreeSet<String>,
    /// "Only if…" and "for each…" around the action.
    pub control: Control,
    /// `continue`, `steps` (the error branch), or empty: the run fails.
    pub on_error: String,
    pub error_steps: Vec<Node>,
    // `if` and `filter`.
    pub condition: Condition,
    pub then: Vec<Node>,
    pub otherwise: Vec<Node>,
    // `switch`.
    pub mode: String,
    pub cases: Vec<Case>,
    pub default: Vec<Node>,
    // `forEach`.
    pub items: String,
    pub max_items: String,
    pub body: Vec<Node>,
    // `set`: names and templates.
    pub values: Vec<(String, String)>,
    // `delay`: an amount and its unit (`m`), or an instant.
    pub wait_amount: String,
    pub wait_unit: String,
    pub until: String,
    // `stop`.
    pub status: String,
    pub message: String,
    /// The node as JSON (`NodeKind::Json`).
    pub json: String,
}

impl Node {
    pub fn new(kind: NodeKind) -> Self {
        let mut node = Node {
            kind,
            ..Node::default()
        };
        match kind {
            NodeKind::Switch => {
                node.mode = "first".into();
                node.cases = vec![Case {
                    name: "path_1".into(),
                    ..Case::default()
                }];
            }
            NodeKind::Delay => {
                node.wait_amount = "15".into();
                node.wait_unit = "m".into();
            }
            NodeKind::Stop => node.status = "succeeded".into(),
            _ => {}
        }
        node
    }

    /// The node's lists of nodes, by the name of the list in its path.
    pub fn lists(&self) -> Vec<(String, &Vec<Node>)> {
        let mut lists = Vec::new();
        match self.kind {
            NodeKind::Action if self.on_error == "steps" => {
                lists.push(("onError.steps".to_owned(), &self.error_steps));
            }
            NodeKind::If => {
                lists.push(("then".to_owned(), &self.then));
                lists.push(("else".to_owned(), &self.otherwise));
            }
            NodeKind::Switch => {
                for (i, case) in self.cases.iter().enumerate() {
                    lists.push((format!("cases[{i}].steps"), &case.steps));
                }
                lists.push(("default".to_owned(), &self.default));
            }
            NodeKind::ForEach => lists.push(("steps".to_owned(), &self.body)),
            _ => {}
        }
        lists
    }

    /// The list of this node named `name`, to edit.
    pub fn list_mut(&mut self, name: &str) -> Option<&mut Vec<Node>> {
        match (self.kind, name) {
            (NodeKind::Action, "onError.steps") => Some(&mut self.error_steps),
            (NodeKind::If, "then") => Some(&mut self.then),
            (NodeKind::If, "else") => Some(&mut self.otherwise),
            (NodeKind::Switch, "default") => Some(&mut self.default),
            (NodeKind::ForEach, "steps") => Some(&mut self.body),
            (NodeKind::Switch, _) => {
                let index: usize = name
                    .strip_prefix("cases[")?
                    .strip_suffix("].steps")?
                    .parse()
                    .ok()?;
                self.cases.get_mut(index).map(|c| &mut c.steps)
            }
            _ => None,
        }
    }

    /// A stored node. `input_text` shows an action's input value as its field does.
    pub fn from_value(node: &Value, input_text: &dyn Fn(&str, &str, &Value) -> String) -> Self {
        if let Some((action, control)) = control::unwrap(node) {
            let name = text(&action["action"]);
            let (on_error, error_steps) = match &action["onError"] {
                Value::String(s) if s == "continue" => ("continue".to_owned(), Vec::new()),
                Value::Object(o) => ("steps".to_owned(), nodes_from(&o["steps"], input_text)),
                _ => (String::new(), Vec::new()),
            };
            return Node {
                kind: NodeKind::Action,
                key: text(&action["key"]),
                connection_id: text(&action["connectionId"]),
                input: action["input"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), input_text(&name, k, v)))
                    .collect(),
                action: name,
                control,
                on_error,
                error_steps,
                ..Node::default()
            };
        }
        let kind = node["type"].as_str().and_then(NodeKind::parse);
        let mut shown = Node {
            kind: kind.unwrap_or(NodeKind::Json),
            key: text(&node["key"]),
            ..Node::default()
        };
        let fits = |keys: &[&str]| {
            node.as_object()
                .is_some_and(|m| m.keys().all(|k| keys.contains(&k.as_str())))
        };
        match kind {
            Some(NodeKind::If) if fits(&["key", "type", "condition", "then", "else"]) => {
                shown.condition = Condition::from_value(&node["condition"]);
                shown.then = nodes_from(&node["then"], input_text);
                shown.otherwise = nodes_from(&node["else"], input_text);
            }
            Some(NodeKind::Switch) if fits(&["key", "type", "mode", "cases", "default"]) => {
                shown.mode = text(&node["mode"]);
                shown.cases = node["cases"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|c| Case {
                        name: text(&c["name"]),
                        condition: Condition::from_value(&c["condition"]),
                        steps: nodes_from(&c["steps"], input_text),
                    })
                    .collect();
                shown.default = nodes_from(&node["default"], input_text);
            }
            Some(NodeKind::ForEach) if fits(&["key", "type", "items", "steps", "maxItems"]) => {
                shown.items = text(&node["items"]);
                shown.max_items = text(&node["maxItems"]);
                shown.body = nodes_from(&node["steps"], input_text);
            }
            Some(NodeKind::Filter) if fits(&["key", "type", "condition"]) => {
                shown.condition = Condition::from_value(&node["condition"]);
            }
            // Values other than texts keep their types as the node's JSON.
            Some(NodeKind::Set)
                if fits(&["key", "type", "values"])
                    && node["values"]
                        .as_object()
                        .is_some_and(|v| v.values().all(Value::is_string)) =>
            {
                shown.values = node["values"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), text(v)))
                    .collect();
            }
            Some(NodeKind::Delay) if fits(&["key", "type", "for", "until"]) => {
                let wait = text(&node["for"]);
                let unit_at = wait
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(wait.len());
                let (amount, unit) = wait.split_at(unit_at);
                // "15m" is an amount and a unit; "1h30m" is kept as written.
                if !amount.is_empty() && UNITS.iter().any(|(u, _, _)| *u == unit) {
                    shown.wait_amount = amount.to_owned();
                    shown.wait_unit = unit.to_owned();
                } else {
                    shown.wait_amount = wait.clone();
                }
                shown.until = text(&node["until"]);
            }
            Some(NodeKind::Stop) if fits(&["key", "type", "status", "message"]) => {
                shown.status = text(&node["status"]);
                shown.message = text(&node["message"]);
            }
            _ => {
                shown.kind = NodeKind::Json;
                shown.json = serde_json::to_string_pretty(node).unwrap_or_default();
            }
        }
        shown
    }

    /// The node the API takes. `path` is the node's field path, for the errors the form can
    /// tell before sending; `action` makes an action node's own value.
    pub fn to_value(
        &self,
        path: &str,
        errors: &mut BTreeMap<String, String>,
        action: &dyn Fn(&Node) -> Value,
    ) -> Value {
        let list = |nodes: &[Node], name: &str, errors: &mut BTreeMap<String, String>| {
            nodes_to_value(nodes, &format!("{path}.{name}"), errors, action)
        };
        let condition =
            |field: &str, condition: &Condition, errors: &mut BTreeMap<String, String>| {
                match condition.to_value() {
                    Ok(value) => value,
                    Err(message) => {
                        errors.insert(format!("{path}.{field}.json"), message.to_owned());
                        Value::Null
                    }
                }
            };
        let mut node = match self.kind {
            NodeKind::Action => {
                let mut inner = action(self);
                match self.on_error.as_str() {
                    "continue" => inner["onError"] = json!("continue"),
                    "steps" => {
                        inner["onError"] =
                            json!({"steps": list(&self.error_steps, "onError.steps", errors)});
                    }
                    _ => {}
                }
                return self.control.wrap(&self.key, inner);
            }
            NodeKind::If => {
                let mut node = json!({"type": "if", "condition": condition("condition", &self.condition, errors)});
                node["then"] = list(&self.then, "then", errors);
                if !self.otherwise.is_empty() {
                    node["else"] = list(&self.otherwise, "else", errors);
                }
                node
            }
            NodeKind::Switch => {
                let cases: Vec<Value> = self
                    .cases
                    .iter()
                    .enumerate()
                    .map(|(i, case)| {
                        json!({
                            "name": case.name,
                            "condition": condition(&format!("cases[{i}].condition"), &case.condition, errors),
                            "steps": list(&case.steps, &format!("cases[{i}].steps"), errors),
                        })
                    })
                    .collect();
                let mut node = json!({"type": "switch", "mode": self.mode, "cases": cases});
                if !self.default.is_empty() {
                    node["default"] = list(&self.default, "default", errors);
                }
                node
            }
            NodeKind::ForEach => {
                let items = serde_json::from_str::<Value>(self.items.trim())
                    .ok()
                    .filter(Value::is_array)
                    .unwrap_or_else(|| json!(self.items.trim()));
                let mut node = json!({"type": "forEach", "items": items});
                if !self.max_items.trim().is_empty() {
                    node["maxItems"] = serde_json::from_str::<Value>(self.max_items.trim())
                        .unwrap_or_else(|_| json!(self.max_items.trim()));
                }
                node["steps"] = list(&self.body, "steps", errors);
                node
            }
            NodeKind::Filter => {
                json!({"type": "filter", "condition": condition("condition", &self.condition, errors)})
            }
            NodeKind::Set => {
                let mut values = Map::new();
                for (name, value) in &self.values {
                    let name = name.trim();
                    if name.is_empty() || values.contains_key(name) {
                        let message = if name.is_empty() {
                            "give each value a name".to_owned()
                        } else {
                            format!("two values are named {name}: give each its own name")
                        };
                        errors.insert(format!("{path}.values"), message);
                    }
                    values.insert(name.to_owned(), json!(value));
                }
                json!({"type": "set", "values": values})
            }
            NodeKind::Delay => {
                if self.wait_amount.trim().is_empty() {
                    json!({"type": "delay", "until": self.until.trim()})
                } else {
                    json!({"type": "delay", "for": format!("{}{}", self.wait_amount.trim(), self.wait_unit)})
                }
            }
            NodeKind::Stop => {
                let mut node = json!({"type": "stop", "status": self.status});
                if !self.message.trim().is_empty() {
                    node["message"] = json!(self.message);
                }
                node
            }
            NodeKind::Json => {
                return match serde_json::from_str::<Value>(&self.json) {
                    Ok(node @ Value::Object(_)) => node,
                    _ => {
                        errors.insert(
                            format!("{path}.json"),
                            "write the step as a JSON object, as the API takes it".into(),
                        );
                        Value::Null
                    }
                };
            }
        };
        // The key first, as the API documents nodes.
        let mut keyed = json!({"key": self.key});
        if let (Some(map), Value::Object(rest)) = (keyed.as_object_mut(), node.take()) {
            map.extend(rest);
        }
        keyed
    }

    /// The heading of the node in words ("If {{trigger.name}} contains Corp").
    pub fn describe(&self) -> String {
        match self.kind {
            NodeKind::Action => String::new(),
            NodeKind::If => format!("If {}", self.condition.describe()),
            NodeKind::Switch if self.mode == "all" => "Paths: every one that matches".into(),
            NodeKind::Switch => "Paths: the first that matches".into(),
            NodeKind::ForEach if self.items.trim().is_empty() => "For each item of …".into(),
            NodeKind::ForEach => format!("For each item of {}", self.items.trim()),
            NodeKind::Filter => format!("Go on only if {}", self.condition.describe()),
            NodeKind::Set => {
                let names: Vec<&str> = self
                    .values
                    .iter()
                    .map(|(n, _)| n.trim())
                    .filter(|n| !n.is_empty())
                    .collect();
                if names.is_empty() {
                    "Set values".into()
                } else {
                    format!("Set {}", names.join(", "))
                }
            }
            NodeKind::Delay if self.wait_amount.trim().is_empty() => {
                format!("Wait until {}", self.until.trim())
            }
            NodeKind::Delay if self.wait_unit.is_empty() => {
                format!("Wait {}", self.wait_amount.trim())
            }
            NodeKind::Delay => format!(
                "Wait {} {}",
                self.wait_amount.trim(),
                unit_words(&self.wait_unit, self.wait_amount.trim() == "1")
            ),
            NodeKind::Stop if self.status == "failed" => "Stop: the run fails".into(),
            NodeKind::Stop => "Stop: the run succeeds".into(),
            NodeKind::Json => "A step written as JSON".into(),
        }
    }

    /// Every key of this node and the nodes under it.
    pub fn keys(&self, into: &mut Vec<String>) {
        into.push(self.key.clone());
        for (_, list) in self.lists() {
            for node in list {
                node.keys(into);
            }
        }
    }
}

/// The units a delay takes, as the API writes them.
pub const UNITS: &[(&str, &str, &str)] = &[
    ("s", "second", "seconds"),
    ("m", "minute", "minutes"),
    ("h", "hour", "hours"),
    ("d", "day", "days"),
];

fn unit_words(unit: &str, one: bool) -> &str {
    UNITS
        .iter()
        .find(|(u, _, _)| *u == unit)
        .map_or(unit, |(_, single, many)| if one { single } else { many })
}

fn nodes_from(list: &Value, input_text: &dyn Fn(&str, &str, &Value) -> String) -> Vec<Node> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|n| Node::from_value(n, input_text))
        .collect()
}

pub fn nodes_to_value(
    nodes: &[Node],
    list_path: &str,
    errors: &mut BTreeMap<String, String>,
    action: &dyn Fn(&Node) -> Value,
) -> Value {
    Value::Array(
        nodes
            .iter()
            .enumerate()
            .map(|(i, node)| node.to_value(&format!("{list_path}[{i}]"), errors, action))
            .collect(),
    )
}

/// How deep a form's node paths go: beyond the flow language's nesting, so that the API names
/// what is too deep, and bounded, so that a posted form cannot nest without end.
const MAX_DEPTH: usize = 12;

/// One step of a node's path: the list (`steps`, `then`, `cases[2].steps`…) and the index.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Segment {
    pub list: String,
    pub index: usize,
}

/// The path of a field's node and the rest of its name:
/// `steps[1].then[0].input.name` → (`[steps 1, then 0]`, `input.name`).
pub fn split_field(name: &str) -> Option<(Vec<Segment>, &str)> {
    let rest = name.strip_prefix("steps[")?;
    let (index, mut rest) = rest.split_once(']')?;
    let mut path = vec![Segment {
        list: "steps".into(),
        index: index.parse().ok()?,
    }];
    while let Some(after_dot) = rest.strip_prefix('.') {
        let list = ["then[", "else[", "default[", "steps[", "onError.steps["]
            .iter()
            .find(|l| after_dot.starts_with(**l))
            .map(|l| l.trim_end_matches('[').to_owned())
            .or_else(|| {
                // `cases[2].steps[0]`: a case's node; `cases[2].name` is a field of the switch.
                let inner = after_dot.strip_prefix("cases[")?;
                let (case, tail) = inner.split_once(']')?;
                case.parse::<usize>().ok()?;
                tail.starts_with(".steps[")
                    .then(|| format!("cases[{case}].steps"))
            });
        let Some(list) = list else { break };
        let tail = &after_dot[list.len() + 1..];
        let Some((index, next)) = tail.split_once(']') else {
            break;
        };
        let Ok(index) = index.parse() else { break };
        path.push(Segment { list, index });
        // Deeper than MAX_DEPTH is not a field of this form.
        if path.len() > MAX_DEPTH {
            return None;
        }
        rest = next;
    }
    Some((path, rest.strip_prefix('.').unwrap_or(rest)))
}

/// `[steps 1, then 0]` → `steps[1].then[0]`.
pub fn path_text(path: &[Segment]) -> String {
    path.iter()
        .enumerate()
        .map(|(i, s)| {
            let dot = if i == 0 { "" } else { "." };
            format!("{dot}{}[{}]", s.list, s.index)
        })
        .collect()
}

/// A node path as an element id: `steps[1].cases[0].steps[2]` → `s1-cases-0-steps-2`.
pub fn dom_id(path: &str) -> String {
    let Some(inner) = path.strip_prefix("steps[") else {
        return path.to_owned();
    };
    let mut id = String::from("s");
    let mut last_dash = false;
    for c in inner.chars() {
        if c.is_ascii_alphanumeric() {
            id.push(c);
            last_dash = false;
        } else if !last_dash {
            id.push('-');
            last_dash = true;
        }
    }
    id.trim_end_matches('-').to_owned()
}

/// Nodes read from a form, put together by their paths: each node's lists are filled from
/// the nodes whose path continues its own.
pub fn assemble(mut nodes: BTreeMap<Vec<Segment>, Node>) -> Vec<Node> {
    take_list(&mut nodes, &[], "steps")
}

fn take_list(
    nodes: &mut BTreeMap<Vec<Segment>, Node>,
    parent: &[Segment],
    list: &str,
) -> Vec<Node> {
    let paths: Vec<Vec<Segment>> = nodes
        .keys()
        .filter(|p| {
            p.len() == parent.len() + 1 && p.starts_with(parent) && p[parent.len()].list == list
        })
        .cloned()
        .collect();
    paths
        .into_iter()
        .filter_map(|path| {
            let mut node = nodes.remove(&path)?;
            let names: Vec<String> = match node.kind {
                NodeKind::Action => vec!["onError.steps".into()],
                NodeKind::If => vec!["then".into(), "else".into()],
                NodeKind::Switch => (0..node.cases.len())
                    .map(|i| format!("cases[{i}].steps"))
                    .chain(["default".to_owned()])
                    .collect(),
                NodeKind::ForEach => vec!["steps".into()],
                _ => Vec::new(),
            };
            for name in names {
                let children = take_list(nodes, &path, &name);
                if let Some(slot) = node.list_mut(&name) {
                    *slot = children;
                }
            }
            Some(node)
        })
        .collect()
}

/// The node at a path (`steps[1].then[0]`).
pub fn node_at<'n>(steps: &'n mut [Node], path: &str) -> Option<&'n mut Node> {
    let (segments, rest) = split_field(path)?;
    if !rest.is_empty() {
        return None;
    }
    let (first, more) = segments.split_first()?;
    let mut node = steps.get_mut(first.index)?;
    for segment in more {
        node = node.list_mut(&segment.list)?.get_mut(segment.index)?;
    }
    Some(node)
}

/// The list a path names: `steps`, or a node's (`steps[1].then`, `steps[1].cases[0].steps`).
pub fn list_at<'n>(steps: &'n mut Vec<Node>, list_path: &str) -> Option<&'n mut Vec<Node>> {
    if list_path == "steps" {
        return Some(steps);
    }
    // The list's name is what follows its node's path.
    let field = format!("{list_path}.x");
    let (segments, rest) = split_field(&field)?;
    let name = rest.strip_suffix(".x")?.to_owned();
    let node = node_at(steps, &path_text(&segments))?;
    node.list_mut(&name)
}

/// The list holding the node at `path`, and the node's index in it.
pub fn parent_list<'n>(steps: &'n mut Vec<Node>, path: &str) -> Option<(&'n mut Vec<Node>, usize)> {
    let (list_path, index) = path.strip_suffix(']')?.rsplit_once('[')?;
    let index = index.parse().ok()?;
    Some((list_at(steps, list_path)?, index))
}

/// The id of the field a new node of `kind` at `path` starts with.
pub fn first_field_id(path: &str, kind: NodeKind) -> String {
    let id = dom_id(path);
    let field = match kind {
        NodeKind::Action => "action",
        NodeKind::If | NodeKind::Filter => "cond-left",
        NodeKind::Switch => "c0-name",
        NodeKind::ForEach => "items",
        NodeKind::Set => "v0-name",
        NodeKind::Delay => "wait",
        NodeKind::Stop => "status",
        NodeKind::Json => "json",
    };
    format!("{id}-{field}")
}

/// Where each node's fields are in the API's document and in the form: an action with "only
/// if" or "for each" sits inside an `if` and a `forEach` in the document, one field in the
/// form. Longest prefix first.
#[derive(Debug, Default)]
pub struct PathMap(Vec<(String, String)>);

impl PathMap {
    pub fn of(nodes: &[Node]) -> Self {
        let mut map = PathMap::default();
        map.walk(nodes, "steps", "steps");
        map.0.sort_by_key(|(api, _)| std::cmp::Reverse(api.len()));
        map
    }

    fn walk(&mut self, nodes: &[Node], api_list: &str, form_list: &str) {
        for (i, node) in nodes.iter().enumerate() {
            let form = format!("{form_list}[{i}]");
            let mut api = format!("{api_list}[{i}]");
            self.0.push((api.clone(), form.clone()));
            if node.kind == NodeKind::Action {
                if node.control.has_loop() {
                    self.0
                        .push((format!("{api}.items"), format!("{form}.each.items")));
                    api = format!("{api}.steps[0]");
                }
                if node.control.has_condition() {
                    self.0
                        .push((format!("{api}.condition"), format!("{form}.if")));
                    api = format!("{api}.then[0]");
                }
                self.0.push((api.clone(), form.clone()));
            }
            for (name, list) in node.lists() {
                self.walk(list, &format!("{api}.{name}"), &format!("{form}.{name}"));
            }
        }
    }

    /// The form field an API path names (`steps[1].steps[0].then[0].input.name` →
    /// `steps[1].input.name`).
    pub fn form_path(&self, api: &str) -> String {
        let found = self.0.iter().find(|(prefix, _)| {
            api == prefix
                || api
                    .strip_prefix(prefix.as_str())
                    .is_some_and(|rest| rest.starts_with('.') || rest.starts_with('['))
        });
        match found {
            Some((prefix, form)) => {
                let path = format!("{form}{}", &api[prefix.len()..]);
                // A wrapped condition as a whole is shown at its value.
                if path.ends_with(".if") {
                    format!("{path}.left")
                } else {
                    path
                }
            }
            None => api.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(_: &str, _: &str, value: &Value) -> String {
        text(value)
    }

    fn as_action(node: &Node) -> Value {
        let input: Map<String, Value> = node
            .input
            .iter()
            .map(|(k, v)| (k.clone(), json!(v)))
            .collect();
        json!({"key": node.key, "action": node.action, "input": input})
    }

    #[test]
    fn every_kind_of_node_round_trips() {
        let steps = json!([
            {"key": "check", "type": "if", "condition": {"left": "{{trigger.name}}", "op": "contains", "right": "Corp"},
             "then": [{"key": "p", "action": "create_project", "input": {"name": "x"}, "onError": "continue"}],
             "else": [{"key": "stop", "type": "stop", "status": "failed", "message": "not a Corp"}]},
            {"key": "paths", "type": "switch", "mode": "all",
             "cases": [{"name": "Big", "condition": {"any": [{"left": "{{trigger.n}}", "op": "gt", "right": "5"}]},
                        "steps": [{"key": "w", "type": "delay", "for": "15m"}]}],
             "default": [{"key": "u", "type": "delay", "until": "{{trigger.at}}"}]},
            {"key": "each", "type": "forEach", "items": "{{trigger.lines}}", "maxItems": 50,
             "steps": [{"key": "v", "type": "set", "values": {"a": "{{item}}"}}]},
            {"key": "only", "type": "filter", "condition": {"left": "{{trigger.x}}", "op": "isNotEmpty"}},
            {"key": "t", "action": "create_task", "input": {"name": "y"},
             "onError": {"steps": [{"key": "s2", "type": "stop", "status": "succeeded"}]}},
            {"key": "f", "action": "find_customer", "input": {"name": "z"},
             "orCreate": {"action": "create_customer", "input": {"name": "z"}}}
        ]);
        let nodes: Vec<Node> = steps
            .as_array()
            .unwrap()
            .iter()
            .map(|n| Node::from_value(n, &shown))
            .collect();
        assert_eq!(nodes[5].kind, NodeKind::Json, "find-or-create is JSON");
        assert!(!nodes[1].cases[0].condition.json.is_empty(), "any: as JSON");
        let mut errors = BTreeMap::new();
        let again = nodes_to_value(&nodes, "steps", &mut errors, &as_action);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(again, steps);
    }

    #[test]
    fn what_the_fields_cannot_hold_is_kept_as_json() {
        let steps = json!([
            {"key": "w", "type": "delay", "for": "1h30m"},
            {"key": "v", "type": "set", "values": {"n": 5, "list": ["a"], "t": "x"}},
            {"key": "i", "type": "if", "condition": {"left": "{{trigger.s}}", "op": "in", "right": ["paid", "sent"]},
             "then": []},
            {"key": "f", "type": "filter", "condition": {"left": "{{trigger.n}}", "op": "gt", "right": 1000}},
            {"key": "g", "type": "filter", "condition": {"left": "{{trigger.n}}", "op": "equals", "right": ""}},
            {"key": "h", "type": "filter", "condition": {"left": "a\nb", "op": "equals", "right": "c"}},
            {"key": "s", "type": "stop", "status": "failed", "message": "  two\nlines  "}
        ]);
        let nodes: Vec<Node> = steps
            .as_array()
            .unwrap()
            .iter()
            .map(|n| Node::from_value(n, &shown))
            .collect();
        assert_eq!(
            (nodes[0].wait_amount.as_str(), nodes[0].wait_unit.as_str()),
            ("1h30m", "")
        );
        assert_eq!(nodes[0].describe(), "Wait 1h30m");
        assert_eq!(nodes[1].kind, NodeKind::Json, "values that are not texts");
        for condition in [
            &nodes[2].condition,
            &nodes[3].condition,
            &nodes[4].condition,
            &nodes[5].condition,
        ] {
            assert!(!condition.json.is_empty(), "{condition:?}");
        }
        let mut errors = BTreeMap::new();
        let again = nodes_to_value(&nodes, "steps", &mut errors, &as_action);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(again, steps);
    }

    #[test]
    fn a_set_needs_named_values_once_each() {
        let node = Node {
            kind: NodeKind::Set,
            key: "v".into(),
            values: vec![
                ("a".into(), "1".into()),
                ("a".into(), "2".into()),
                ("".into(), "3".into()),
            ],
            ..Node::default()
        };
        let mut errors = BTreeMap::new();
        node.to_value("steps[0]", &mut errors, &as_action);
        assert!(errors["steps[0].values"].contains("name"), "{errors:?}");
    }

    #[test]
    fn fields_name_their_node() {
        let (path, rest) = split_field("steps[1].cases[2].steps[0].input.name").unwrap();
        assert_eq!(path_text(&path), "steps[1].cases[2].steps[0]");
        assert_eq!(rest, "input.name");
        let (path, rest) = split_field("steps[1].cases[2].name").unwrap();
        assert_eq!(path_text(&path), "steps[1]");
        assert_eq!(rest, "cases[2].name");
        let (path, rest) = split_field("steps[0].onError.steps[3].type").unwrap();
        assert_eq!(path_text(&path), "steps[0].onError.steps[3]");
        assert_eq!(rest, "type");
        assert_eq!(dom_id("steps[1].cases[0].steps[2]"), "s1-cases-0-steps-2");
        assert_eq!(dom_id("steps[3]"), "s3");
        assert!(split_field("name").is_none());
    }

    #[test]
    fn nodes_are_put_together_by_path() {
        let mut nodes = BTreeMap::new();
        let at = |text: &str| split_field(&format!("{text}.key")).unwrap().0;
        nodes.insert(at("steps[0]"), Node::new(NodeKind::If));
        nodes.insert(at("steps[0].then[1]"), Node::new(NodeKind::Stop));
        nodes.insert(at("steps[0].then[0]"), Node::new(NodeKind::Delay));
        nodes.insert(at("steps[0].else[0]"), Node::new(NodeKind::Action));
        nodes.insert(at("steps[1]"), Node::new(NodeKind::Set));
        let tree = assemble(nodes);
        assert_eq!(tree.len(), 2);
        assert_eq!(tree[0].then[0].kind, NodeKind::Delay);
        assert_eq!(tree[0].then[1].kind, NodeKind::Stop);
        assert_eq!(tree[0].otherwise[0].kind, NodeKind::Action);
    }

    #[test]
    fn api_paths_name_the_form_fields() {
        let wrapped = Node {
            key: "task".into(),
            action: "create_task".into(),
            control: Control {
                left: "{{trigger.name}}".into(),
                op: "contains".into(),
                right: "Corp".into(),
                items: "[1]".into(),
            },
            on_error: "steps".into(),
            error_steps: vec![Node::new(NodeKind::Stop)],
            ..Node::default()
        };
        let map = PathMap::of(&[Node::new(NodeKind::Set), wrapped]);
        assert_eq!(
            map.form_path("steps[1].steps[0].then[0].input.name"),
            "steps[1].input.name"
        );
        assert_eq!(
            map.form_path("steps[1].steps[0].condition.left"),
            "steps[1].if.left"
        );
        assert_eq!(
            map.form_path("steps[1].steps[0].condition"),
            "steps[1].if.left"
        );
        assert_eq!(map.form_path("steps[1].items"), "steps[1].each.items");
        assert_eq!(
            map.form_path("steps[1].steps[0].then[0].onError.steps[0].status"),
            "steps[1].onError.steps[0].status"
        );
        assert_eq!(map.form_path("steps[0].values"), "steps[0].values");
        assert_eq!(map.form_path("trigger.schedule"), "trigger.schedule");
    }
}
