//! A flow's steps as a program: typed nodes (an action, `filter`, `if`, `switch`, `forEach`,
//! `set`, `delay`, `stop`) parsed once from JSON, every problem with its path and all of them at
//! once. A step with `action` and no `type` is an action, so flows written before control flow
//! existed parse, and are stored, exactly as they were.

use std::collections::BTreeSet;

use serde_json::{Map, Value, json};

use super::ConnectionKinds;
use super::condition::{self, Condition};
use crate::automation::connections::ConnectionKind;
use crate::automation::manifest::{ActionKind, Manifests};
use crate::automation::template;
use crate::error::Problems;
use crate::store::json;

/// Nodes in one flow, nested ones included.
pub const MAX_NODES: usize = 200;
/// How deep blocks nest (`if` in `forEach` in `switch` …).
pub const MAX_DEPTH: usize = 8;
/// Items one `forEach` goes through, at most (and its `maxItems` by default).
pub const MAX_ITEMS: usize = 10_000;
/// Nodes one run executes, loops counted per item.
pub const MAX_EXECUTED: usize = 10_000;
/// The longest a `delay` waits.
pub const MAX_DELAY_MS: i64 = 30 * 24 * 3_600_000;

/// The steps of a flow, in order.
pub type Block = Vec<Node>;

/// One node: its key (unique in the flow; later steps read its output as `steps.<key>`) and
/// what it does.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    pub key: String,
    pub kind: NodeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    Action(ActionNode),
    /// Ends the run as `filtered` when the condition is false.
    Filter {
        condition: Condition,
    },
    If {
        condition: Condition,
        then: Block,
        otherwise: Block,
    },
    Switch {
        mode: SwitchMode,
        cases: Vec<Case>,
        default: Option<Block>,
    },
    ForEach {
        /// A template giving a list.
        items: Value,
        steps: Block,
        max_items: usize,
    },
    /// Computed values: a map of templates.
    Set {
        values: Map<String, Value>,
    },
    Delay(Wait),
    Stop {
        status: StopStatus,
        message: Option<Value>,
    },
}

/// An action step: a manifest performed with a rendered input.
#[derive(Debug, Clone, PartialEq)]
pub struct ActionNode {
    pub action: String,
    pub connection_id: Option<String>,
    /// The version of the action's connector the flow was saved with (`cnv_…`); none for
    /// timix's own actions.
    pub connector: Option<String>,
    pub input: Value,
    pub on_error: OnError,
    /// Find-or-create: what a search that finds nothing creates instead.
    pub or_create: Option<OrCreate>,
}

/// What a failed action does to the run.
#[derive(Debug, Clone, PartialEq)]
pub enum OnError {
    /// The run fails (the default).
    Fail,
    /// The step is recorded failed and the run goes on; later steps see `steps.<key>.error`.
    Continue,
    /// These steps run instead of the rest of the block the action is in.
    Steps(Block),
}

#[derive(Debug, Clone, PartialEq)]
pub struct OrCreate {
    pub action: String,
    pub input: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SwitchMode {
    /// The first case whose condition holds.
    First,
    /// Every case whose condition holds, in order.
    All,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Case {
    pub name: String,
    pub condition: Condition,
    pub steps: Block,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Wait {
    /// So many milliseconds after the node is reached.
    For(i64),
    /// A template giving an instant.
    Until(Value),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopStatus {
    Succeeded,
    Failed,
}

/// What a flow may name, checked when it is saved (not when a stored flow is read).
pub struct Names<'a> {
    pub manifests: &'a Manifests,
    pub connections: &'a ConnectionKinds,
}

const NODE_TYPES: [&str; 8] = [
    "action", "filter", "if", "switch", "forEach", "set", "delay", "stop",
];

/// Parses `steps` (at `at`), recording every problem; with `names`, actions, connections and
/// inputs are checked against them too.
pub fn parse(
    p: &mut Problems,
    steps: &Value,
    at: &str,
    names: Option<&Names<'_>>,
) -> Option<Block> {
    let mut parser = Parser {
        p,
        names,
        keys: BTreeSet::new(),
        nodes: 0,
    };
    let before = parser.p.len();
    let block = parser.block(steps, at, 1);
    if parser.nodes > MAX_NODES {
        parser.p.add(
            at,
            "too_large",
            format!("a flow has at most {MAX_NODES} steps, nested ones included"),
        );
    }
    (parser.p.len() == before).then_some(block).flatten()
}

struct Parser<'p, 'n> {
    p: &'p mut Problems,
    names: Option<&'n Names<'n>>,
    keys: BTreeSet<String>,
    nodes: usize,
}

fn is_name(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= 64
        && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && text.starts_with(|c: char| c.is_ascii_alphabetic())
}

impl Parser<'_, '_> {
    fn block(&mut self, steps: &Value, at: &str, depth: usize) -> Option<Block> {
        let Some(list) = steps.as_array() else {
            self.p
                .add(at, "invalid", format!("{at} must be a list of steps"));
            return None;
        };
        if list.is_empty() {
            self.p
                .add(at, "invalid", format!("{at} needs at least one step"));
            return None;
        }
        if depth > MAX_DEPTH {
            self.p.add(
                at,
                "too_deep",
                format!("steps nest at most {MAX_DEPTH} blocks deep"),
            );
            return None;
        }
        let nodes: Vec<Option<Node>> = list
            .iter()
            .enumerate()
            .map(|(i, step)| self.node(step, &format!("{at}[{i}]"), depth))
            .collect();
        nodes.into_iter().collect()
    }

    fn node(&mut self, step: &Value, at: &str, depth: usize) -> Option<Node> {
        self.nodes += 1;
        let Some(object) = step.as_object() else {
            self.p.add(at, "invalid", format!("{at} must be an object"));
            return None;
        };
        let kind = match object.get("type") {
            None => "action",
            Some(Value::String(t)) if NODE_TYPES.contains(&t.as_str()) => t.as_str(),
            Some(other) => {
                self.p.add(
                    &format!("{at}.type"),
                    "invalid",
                    format!(
                        "{} is not a step type; use one of {}",
                        json::quote(&other.as_str().map_or(other.to_string(), str::to_owned)),
                        NODE_TYPES.join(", ")
                    ),
                );
                return None;
            }
        };
        let before = self.p.len();
        let allowed: &[&str] = match kind {
            "action" => &[
                "action",
                "connectionId",
                "input",
                "onError",
                "orCreate",
                "connector",
            ],
            "filter" => &["condition"],
            "if" => &["condition", "then", "else"],
            "switch" => &["mode", "cases", "default"],
            "forEach" => &["items", "steps", "maxItems"],
            "set" => &["values"],
            "delay" => &["for", "until"],
            _ => &["status", "message"],
        };
        for field in object.keys() {
            if field != "key" && field != "type" && !allowed.contains(&field.as_str()) {
                let field = json::shorten(field);
                self.p.add(
                    &format!("{at}.{field}"),
                    "unknown_field",
                    format!("{field} is not a field of a {kind} step"),
                );
            }
        }
        let key = object
            .get("key")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if !is_name(key) {
            self.p.add(
                &format!("{at}.key"),
                if object.contains_key("key") {
                    "invalid"
                } else {
                    "required"
                },
                "a step key is a name of letters, digits and underscores, starting with a letter",
            );
        } else if !self.keys.insert(key.to_owned()) {
            self.p.add(
                &format!("{at}.key"),
                "duplicate",
                format!("{key} names two steps"),
            );
        }
        let condition = |parser: &mut Self| match object.get("condition") {
            Some(c) => condition::parse(parser.p, c, &format!("{at}.condition")),
            None => {
                parser.p.add(
                    &format!("{at}.condition"),
                    "required",
                    format!("a {kind} step needs a condition"),
                );
                None
            }
        };
        let kind = match kind {
            "action" => self.action(object, at, depth).map(NodeKind::Action),
            "filter" => condition(self).map(|condition| NodeKind::Filter { condition }),
            "if" => {
                let condition = condition(self);
                let then = self.required_block(object, "then", at, depth);
                let otherwise = match object.get("else") {
                    None | Some(Value::Null) => Some(Vec::new()),
                    Some(steps) => self.block(steps, &format!("{at}.else"), depth + 1),
                };
                match (condition, then, otherwise) {
                    (Some(condition), Some(then), Some(otherwise)) => Some(NodeKind::If {
                        condition,
                        then,
                        otherwise,
                    }),
                    _ => None,
                }
            }
            "switch" => self.switch(object, at, depth),
            "forEach" => self.for_each(object, at, depth),
            "set" => self.set(object, at),
            "delay" => self.delay(object, at).map(NodeKind::Delay),
            _ => self.stop(object, at),
        };
        (self.p.len() == before)
            .then_some(kind)
            .flatten()
            .map(|kind| Node {
                key: key.to_owned(),
                kind,
            })
    }

    fn required_block(
        &mut self,
        object: &Map<String, Value>,
        field: &str,
        at: &str,
        depth: usize,
    ) -> Option<Block> {
        match object.get(field) {
            Some(steps) => self.block(steps, &format!("{at}.{field}"), depth + 1),
            None => {
                self.p.add(
                    &format!("{at}.{field}"),
                    "required",
                    format!("{field} is required: the steps to run"),
                );
                None
            }
        }
    }

    /// Checks templates when a flow is saved (a stored one renders them when it runs: one that
    /// no longer parses fails its step, not the loading of the flow).
    fn template(&mut self, value: &Value, at: &str) {
        if self.names.is_none() {
            return;
        }
        if let Err((path, e)) = template::check_value(value, at) {
            self.p.add(&path, "template", e.0);
        }
    }

    fn action(
        &mut self,
        object: &Map<String, Value>,
        at: &str,
        depth: usize,
    ) -> Option<ActionNode> {
        let action = object
            .get("action")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let connection_id = match object.get("connectionId") {
            None | Some(Value::Null) => None,
            Some(Value::String(id)) => Some(id.clone()),
            Some(_) => {
                self.p.add(
                    &format!("{at}.connectionId"),
                    "invalid",
                    "connectionId must be the id of a connection",
                );
                None
            }
        };
        let input = object.get("input").cloned().unwrap_or(json!({}));
        self.check_action(at, action, connection_id.as_deref(), &input);
        // Saved: the connector's version now; stored: the version it was saved with.
        let connector = match self.names {
            Some(names) => names
                .manifests
                .connector_of(action)
                .map(|(c, _)| c.version_id.clone()),
            None => object
                .get("connector")
                .and_then(Value::as_str)
                .map(str::to_owned),
        };
        let on_error = match object.get("onError") {
            None | Some(Value::Null) => OnError::Fail,
            Some(Value::String(s)) if s == "fail" => OnError::Fail,
            Some(Value::String(s)) if s == "continue" => OnError::Continue,
            Some(Value::Object(branch)) if branch.len() == 1 && branch.contains_key("steps") => {
                OnError::Steps(
                    self.block(&branch["steps"], &format!("{at}.onError.steps"), depth + 1)
                        .unwrap_or_default(),
                )
            }
            Some(_) => {
                self.p.add(
                    &format!("{at}.onError"),
                    "invalid",
                    "onError is \"fail\", \"continue\" or {\"steps\": [...]} (an error branch)",
                );
                OnError::Fail
            }
        };
        let or_create = match object.get("orCreate") {
            None | Some(Value::Null) => None,
            Some(Value::Object(create)) => {
                for field in create.keys() {
                    if field != "action" && field != "input" {
                        let field = json::shorten(field);
                        self.p.add(
                            &format!("{at}.orCreate.{field}"),
                            "unknown_field",
                            format!("{field} is not a field of orCreate"),
                        );
                    }
                }
                let create_action = create
                    .get("action")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                let create_input = create.get("input").cloned().unwrap_or(json!({}));
                // Its connection is the search's.
                self.check_action(
                    &format!("{at}.orCreate"),
                    create_action,
                    connection_id.as_deref(),
                    &create_input,
                );
                if create_action.split_once('.').map(|(c, _)| c)
                    != action.split_once('.').map(|(c, _)| c)
                    && !create_action.is_empty()
                {
                    self.p.add(
                        &format!("{at}.orCreate.action"),
                        "invalid",
                        "orCreate creates with the search's connector (and connection)",
                    );
                }
                if let Some(names) = self.names
                    && names
                        .manifests
                        .actions
                        .get(action)
                        .is_some_and(|a| a.kind != ActionKind::Search)
                {
                    self.p.add(
                        &format!("{at}.orCreate"),
                        "invalid",
                        format!("orCreate goes with a search action (find_…); {action} is not one"),
                    );
                }
                Some(OrCreate {
                    action: create_action.to_owned(),
                    input: create_input,
                })
            }
            Some(_) => {
                self.p.add(
                    &format!("{at}.orCreate"),
                    "invalid",
                    "orCreate is {action, input}: what to create when the search finds nothing",
                );
                None
            }
        };
        Some(ActionNode {
            action: action.to_owned(),
            connection_id,
            connector,
            input,
            on_error,
            or_create,
        })
    }

    /// Checks an action's key, connection and input at `at` (`steps[1]`, or
    /// `steps[1].orCreate` for the creation of a find-or-create).
    fn check_action(
        &mut self,
        at: &str,
        action_key: &str,
        connection: Option<&str>,
        input: &Value,
    ) {
        let Some(fields) = input.as_object() else {
            self.p
                .add(&format!("{at}.input"), "invalid", "input must be an object");
            return;
        };
        self.template(input, &format!("{at}.input"));
        let Some(names) = self.names else {
            return;
        };
        let Some(action) = names.manifests.actions.get(action_key) else {
            self.p.add(
                &format!("{at}.action"),
                if action_key.is_empty() {
                    "required"
                } else {
                    "unknown_manifest"
                },
                format!(
                    "{} is not an action; see GET /manifests",
                    json::quote(action_key)
                ),
            );
            return;
        };
        let connector = names.manifests.connector_of(action_key).map(|(c, _)| c);
        match (connection, connector) {
            (None, Some(c)) => self.p.add(
                &format!("{at}.connectionId"),
                "required",
                format!(
                    "{action_key} needs a connection to {}; see POST /connections with connector: {}",
                    c.connector.label, c.connector.key
                ),
            ),
            (None, None) => {}
            (Some(id), _) => match names.connections.get(id) {
                Some(found)
                    if connector.is_some_and(|c| {
                        found.connector.as_deref() != Some(c.connector.key.as_str())
                    }) =>
                {
                    self.p.add(
                        &format!("{at}.connectionId"),
                        "invalid",
                        format!(
                            "{id} is not a connection to {}: {action_key} needs one",
                            connector.map_or("", |c| c.connector.label.as_str())
                        ),
                    )
                }
                Some(found)
                    if found.kind == ConnectionKind::This && action.request.url.is_some() =>
                {
                    self.p.add(
                        &format!("{at}.connectionId"),
                        "invalid",
                        format!(
                            "{action_key} calls a URL: give it a connection with a base URL, or none"
                        ),
                    )
                }
                Some(_) => {}
                None => self.p.add(
                    &format!("{at}.connectionId"),
                    "not_found",
                    "connectionId does not name a connection of this organization",
                ),
            },
        }
        let properties = action.input["properties"].as_object();
        let closed = action.input["additionalProperties"] == Value::Bool(false);
        for name in fields.keys() {
            if closed && properties.is_none_or(|props| !props.contains_key(name)) {
                let name = json::shorten(name);
                self.p.add(
                    &format!("{at}.input.{name}"),
                    "unknown_field",
                    format!("{name} is not an input of {action_key}"),
                );
            }
        }
        for required in action.input["required"].as_array().into_iter().flatten() {
            let name = required.as_str().unwrap_or_default();
            if !fields.contains_key(name) {
                self.p.add(
                    &format!("{at}.input.{name}"),
                    "required",
                    format!("{name} is required by {action_key}"),
                );
            }
        }
    }

    fn switch(&mut self, object: &Map<String, Value>, at: &str, depth: usize) -> Option<NodeKind> {
        let mode = match object.get("mode") {
            None | Some(Value::Null) => SwitchMode::First,
            Some(Value::String(s)) if s == "first" => SwitchMode::First,
            Some(Value::String(s)) if s == "all" => SwitchMode::All,
            Some(_) => {
                self.p.add(
                    &format!("{at}.mode"),
                    "invalid",
                    "mode is \"first\" (the first case that holds) or \"all\" (every one)",
                );
                SwitchMode::First
            }
        };
        let Some(list) = object
            .get("cases")
            .and_then(Value::as_array)
            .filter(|l| !l.is_empty())
        else {
            self.p.add(
                &format!("{at}.cases"),
                "required",
                "cases must be a non-empty list of {name, condition, steps}",
            );
            return None;
        };
        let mut names = BTreeSet::new();
        let mut cases = Vec::with_capacity(list.len());
        for (i, case) in list.iter().enumerate() {
            let at = format!("{at}.cases[{i}]");
            let Some(case) = case.as_object() else {
                self.p
                    .add(&at, "invalid", "a case is {name, condition, steps}");
                continue;
            };
            for field in case.keys() {
                if !["name", "condition", "steps"].contains(&field.as_str()) {
                    let field = json::shorten(field);
                    self.p.add(
                        &format!("{at}.{field}"),
                        "unknown_field",
                        format!("{field} is not a field of a case"),
                    );
                }
            }
            let name = case.get("name").and_then(Value::as_str).unwrap_or_default();
            if !is_name(name) || name == "default" {
                self.p.add(
                    &format!("{at}.name"),
                    "invalid",
                    "a case's name is a name of letters, digits and underscores (not default)",
                );
            } else if !names.insert(name.to_owned()) {
                self.p.add(
                    &format!("{at}.name"),
                    "duplicate",
                    format!("{name} names two cases"),
                );
            }
            let condition = match case.get("condition") {
                Some(c) => condition::parse(self.p, c, &format!("{at}.condition")),
                None => {
                    self.p.add(
                        &format!("{at}.condition"),
                        "required",
                        "a case needs a condition",
                    );
                    None
                }
            };
            let steps = self.required_block(case, "steps", &at, depth);
            if let (Some(condition), Some(steps)) = (condition, steps) {
                cases.push(Case {
                    name: name.to_owned(),
                    condition,
                    steps,
                });
            }
        }
        let default = match object.get("default") {
            None | Some(Value::Null) => None,
            Some(steps) => Some(self.block(steps, &format!("{at}.default"), depth + 1)?),
        };
        Some(NodeKind::Switch {
            mode,
            cases,
            default,
        })
    }

    fn for_each(
        &mut self,
        object: &Map<String, Value>,
        at: &str,
        depth: usize,
    ) -> Option<NodeKind> {
        let items = match object.get("items") {
            Some(items @ (Value::String(_) | Value::Array(_))) => {
                self.template(items, &format!("{at}.items"));
                items.clone()
            }
            _ => {
                self.p.add(
                    &format!("{at}.items"),
                    "required",
                    "items must give a list, such as {{trigger.lines}}",
                );
                Value::Null
            }
        };
        let max_items = match object.get("maxItems") {
            None | Some(Value::Null) => MAX_ITEMS,
            Some(n) => match n.as_u64() {
                Some(n @ 1..) if n as usize <= MAX_ITEMS => n as usize,
                _ => {
                    self.p.add(
                        &format!("{at}.maxItems"),
                        "invalid",
                        format!("maxItems is a whole number from 1 to {MAX_ITEMS}"),
                    );
                    MAX_ITEMS
                }
            },
        };
        let steps = self.required_block(object, "steps", at, depth)?;
        Some(NodeKind::ForEach {
            items,
            steps,
            max_items,
        })
    }

    fn set(&mut self, object: &Map<String, Value>, at: &str) -> Option<NodeKind> {
        let Some(values) = object
            .get("values")
            .and_then(Value::as_object)
            .filter(|v| !v.is_empty())
        else {
            self.p.add(
                &format!("{at}.values"),
                "required",
                "values must map names to templates, such as {\"total\": \"{{multiply trigger.hours 90}}\"}",
            );
            return None;
        };
        self.template(&Value::Object(values.clone()), &format!("{at}.values"));
        Some(NodeKind::Set {
            values: values.clone(),
        })
    }

    fn delay(&mut self, object: &Map<String, Value>, at: &str) -> Option<Wait> {
        match (object.get("for"), object.get("until")) {
            (Some(Value::String(text)), None) => match parse_duration(text) {
                Some(ms) if ms <= MAX_DELAY_MS => Some(Wait::For(ms)),
                _ => {
                    self.p.add(
                        &format!("{at}.for"),
                        "invalid",
                        format!(
                            "{} is not a wait of up to 30 days: write 30s, 15m, 2h, 3d or 1w (or 1h30m)",
                            json::quote(text)
                        ),
                    );
                    None
                }
            },
            (None, Some(until @ Value::String(_))) => {
                self.template(until, &format!("{at}.until"));
                Some(Wait::Until(until.clone()))
            }
            _ => {
                self.p.add(
                    at,
                    "invalid",
                    "a delay has either for (\"15m\") or until (a template of an instant)",
                );
                None
            }
        }
    }

    fn stop(&mut self, object: &Map<String, Value>, at: &str) -> Option<NodeKind> {
        let status = match object.get("status").and_then(Value::as_str) {
            Some("succeeded") => StopStatus::Succeeded,
            Some("failed") => StopStatus::Failed,
            _ => {
                self.p.add(
                    &format!("{at}.status"),
                    "invalid",
                    "status is \"succeeded\" or \"failed\": how the run ends",
                );
                return None;
            }
        };
        let message = object.get("message").filter(|m| !m.is_null()).cloned();
        if let Some(message) = &message {
            if !message.is_string() {
                self.p.add(
                    &format!("{at}.message"),
                    "invalid",
                    "message must be a text",
                );
            }
            self.template(message, &format!("{at}.message"));
        }
        Some(NodeKind::Stop { status, message })
    }
}

/// A wait as written: `30s`, `15m`, `2h`, `3d`, `1w`, or parts together (`1h30m`).
pub fn parse_duration(text: &str) -> Option<i64> {
    let mut total: i64 = 0;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1_000,
            'm' => 60_000,
            'h' => 3_600_000,
            'd' => 86_400_000,
            'w' => 604_800_000,
            _ => return None,
        };
        let amount: i64 = digits.parse().ok().filter(|_| digits.len() <= 9)?;
        digits.clear();
        total = total.checked_add(amount.checked_mul(unit)?)?;
    }
    (digits.is_empty() && total > 0).then_some(total)
}

/// The block as stored: action steps as they always were (`{key, action, connectionId,
/// input}`, with `onError` and `orCreate` when given), other nodes with their `type`.
pub fn block_to_json(block: &[Node]) -> Value {
    Value::Array(block.iter().map(Node::to_json).collect())
}

impl Node {
    pub fn to_json(&self) -> Value {
        let key = &self.key;
        match &self.kind {
            NodeKind::Action(a) => {
                let mut step = json!({"key": key, "action": a.action, "connectionId": a.connection_id, "input": a.input});
                if let Some(version) = &a.connector {
                    step["connector"] = json!(version);
                }
                match &a.on_error {
                    OnError::Fail => {}
                    OnError::Continue => step["onError"] = json!("continue"),
                    OnError::Steps(steps) => {
                        step["onError"] = json!({"steps": block_to_json(steps)})
                    }
                }
                if let Some(create) = &a.or_create {
                    step["orCreate"] = json!({"action": create.action, "input": create.input});
                }
                step
            }
            NodeKind::Filter { condition } => {
                json!({"key": key, "type": "filter", "condition": condition.to_json()})
            }
            NodeKind::If {
                condition,
                then,
                otherwise,
            } => {
                let mut node = json!({"key": key, "type": "if", "condition": condition.to_json(), "then": block_to_json(then)});
                if !otherwise.is_empty() {
                    node["else"] = block_to_json(otherwise);
                }
                node
            }
            NodeKind::Switch {
                mode,
                cases,
                default,
            } => {
                let cases: Vec<Value> = cases
                    .iter()
                    .map(|c| json!({"name": c.name, "condition": c.condition.to_json(), "steps": block_to_json(&c.steps)}))
                    .collect();
                let mut node = json!({"key": key, "type": "switch", "mode": if *mode == SwitchMode::All { "all" } else { "first" }, "cases": cases});
                if let Some(default) = default {
                    node["default"] = block_to_json(default);
                }
                node
            }
            NodeKind::ForEach {
                items,
                steps,
                max_items,
            } => {
                let mut node = json!({"key": key, "type": "forEach", "items": items, "steps": block_to_json(steps)});
                if *max_items != MAX_ITEMS {
                    node["maxItems"] = json!(max_items);
                }
                node
            }
            NodeKind::Set { values } => json!({"key": key, "type": "set", "values": values}),
            NodeKind::Delay(Wait::For(ms)) => {
                json!({"key": key, "type": "delay", "for": format_duration(*ms)})
            }
            NodeKind::Delay(Wait::Until(until)) => {
                json!({"key": key, "type": "delay", "until": until})
            }
            NodeKind::Stop { status, message } => {
                let mut node = json!({"key": key, "type": "stop", "status": if *status == StopStatus::Failed { "failed" } else { "succeeded" }});
                if let Some(message) = message {
                    node["message"] = message.clone();
                }
                node
            }
        }
    }

    /// The node's type as records show it.
    pub fn type_name(&self) -> &'static str {
        match &self.kind {
            NodeKind::Action(_) => "action",
            NodeKind::Filter { .. } => "filter",
            NodeKind::If { .. } => "if",
            NodeKind::Switch { .. } => "switch",
            NodeKind::ForEach { .. } => "forEach",
            NodeKind::Set { .. } => "set",
            NodeKind::Delay(_) => "delay",
            NodeKind::Stop { .. } => "stop",
        }
    }
}

/// A wait written back in its largest whole units (`90m` → `1h30m`).
fn format_duration(ms: i64) -> String {
    let mut left = ms;
    let mut out = String::new();
    for (unit, size) in [
        ("d", 86_400_000),
        ("h", 3_600_000),
        ("m", 60_000),
        ("s", 1_000),
    ] {
        if left >= size {
            out.push_str(&format!("{}{unit}", left / size));
            left %= size;
        }
    }
    out
}

/// The definition of the node with `key` anywhere in a flow's `steps` (inside branches, cases,
/// loops and error paths too), as written.
pub fn node_by_key(steps: &Value, key: &str) -> Option<Value> {
    match steps {
        Value::Array(items) => items.iter().find_map(|v| node_by_key(v, key)),
        Value::Object(node) => {
            let is_node = node.contains_key("action") || node.contains_key("type");
            if is_node && node.get("key").and_then(Value::as_str) == Some(key) {
                return Some(steps.clone());
            }
            // Branches, cases, loops and error paths hold nodes; inputs and values hold data.
            node.iter()
                .filter(|(field, _)| {
                    !matches!(field.as_str(), "input" | "values" | "condition" | "items")
                })
                .find_map(|(_, v)| node_by_key(v, key))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(steps: Value) -> Vec<String> {
        let mut p = Problems::default();
        assert!(
            parse(&mut p, &steps, "steps", None).is_none(),
            "{steps} parsed"
        );
        match p.into_result() {
            Err(crate::error::Error::Validation(errors)) => {
                errors.into_iter().map(|e| e.field).collect()
            }
            other => panic!("{other:?}"),
        }
    }

    fn round_trip(steps: Value) {
        let mut p = Problems::default();
        let block = parse(&mut p, &steps, "steps", None).expect("parses");
        assert_eq!(block_to_json(&block), steps);
    }

    #[test]
    fn plain_action_steps_are_stored_as_before() {
        round_trip(
            json!([{"key": "project", "action": "create_project", "connectionId": null, "input": {"name": "{{trigger.name}}"}}]),
        );
    }

    #[test]
    fn every_node_kind_parses_and_is_stored_as_written() {
        round_trip(json!([
            {"key": "only_eur", "type": "filter", "condition": {"left": "{{trigger.currency}}", "op": "equals", "right": "EUR"}},
            {"key": "find", "action": "find_customer", "connectionId": null, "input": {"email": "{{trigger.email}}"},
             "onError": "continue", "orCreate": {"action": "create_customer", "input": {"name": "{{trigger.name}}"}}},
            {"key": "check", "type": "if", "condition": {"all": [{"left": "{{trigger.total}}", "op": "gt", "right": 1000}]},
             "then": [{"key": "big", "type": "set", "values": {"label": "big"}}],
             "else": [{"key": "small", "type": "stop", "status": "succeeded", "message": "small"}]},
            {"key": "route", "type": "switch", "mode": "all", "cases": [
                {"name": "fixed", "condition": {"left": "{{trigger.billing}}", "op": "equals", "right": "fixed"}, "steps": [{"key": "wait", "type": "delay", "for": "1h30m"}]}],
             "default": [{"key": "later", "type": "delay", "until": "{{trigger.dueAt}}"}]},
            {"key": "each", "type": "forEach", "items": "{{trigger.lines}}", "maxItems": 50, "steps": [
                {"key": "task", "action": "create_task", "connectionId": null, "input": {"name": "{{item.name}}"},
                 "onError": {"steps": [{"key": "give_up", "type": "stop", "status": "failed"}]}}]},
        ]));
    }

    #[test]
    fn every_problem_comes_back_with_its_path() {
        let found = fields(json!([
            {"key": "a", "type": "loop"},
            {"key": "b", "type": "if", "condition": {"left": "x", "op": "nope"}, "then": [{"key": "b", "action": "x", "colour": 1}]},
            {"key": "c", "type": "forEach", "items": "{{trigger.lines}}", "steps": [], "maxItems": 0},
            {"key": "d", "type": "delay", "for": "31d"},
            {"key": "e", "type": "switch", "cases": [{"name": "x", "condition": {"left": "{{#if}}", "op": "exists"}, "steps": [{"key": "f", "type": "stop", "status": "maybe"}]}]},
        ]));
        for expected in [
            "steps[0].type",
            "steps[1].condition.op",
            "steps[1].then[0].key",
            "steps[1].then[0].colour",
            "steps[2].steps",
            "steps[2].maxItems",
            "steps[3].for",
            "steps[4].cases[0].condition.left",
            "steps[4].cases[0].steps[0].status",
        ] {
            assert!(
                found.iter().any(|f| f == expected),
                "{expected} not in {found:?}"
            );
        }
    }

    #[test]
    fn size_and_nesting_are_bounded() {
        let many: Vec<Value> = (0..=MAX_NODES)
            .map(|i| json!({"key": format!("s{i}"), "type": "set", "values": {"x": 1}}))
            .collect();
        assert_eq!(fields(Value::Array(many)), ["steps"]);
        let mut deep = json!([{"key": "leaf", "type": "set", "values": {"x": 1}}]);
        for i in 0..MAX_DEPTH {
            deep = json!([{"key": format!("if{i}"), "type": "if", "condition": {"left": "x", "op": "exists"}, "then": deep}]);
        }
        let found = fields(deep);
        assert!(found[0].ends_with(".then"), "{found:?}");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Some(900_000));
        assert_eq!(parse_duration("1h30m"), Some(5_400_000));
        assert_eq!(parse_duration("2s"), Some(2_000));
        assert_eq!(parse_duration("15"), None);
        assert_eq!(parse_duration("0s"), None);
        assert_eq!(parse_duration("9999999999999d"), None);
        assert_eq!(format_duration(5_400_000), "1h30m");
    }
}
