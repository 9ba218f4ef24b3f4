//! `/flows`: the list, and the builder. The builder is one form whose fields are named by the
//! API's own paths (`trigger.schedule`, `steps[0].input.name`), so a refusal's field errors land
//! on the field that caused them. Each step's fields come from its action's JSON Schema; the
//! trigger's sample and earlier steps' samples give the variables a field can use.
//!
//! Adding, removing or changing a step re-renders the form from what was typed (`op`), so the
//! builder works without JavaScript; the script (`builder.js`) sends those in the background
//! and swaps the form, inserts variables where the cursor is and searches the pickers.
//! Saving goes through a draft: variables the data does not have are flagged before anything
//! is live, and **Publish** makes it the flow.

mod control;
mod data;
mod pickers;
mod plain;
mod tree;
mod tree_view;

pub use pickers::lookup;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde_json::{Map, Value, json};
use timix_connectors::apps;
use timix_engine::automation::manifest::Manifests;
use tree::{Node, NodeKind};
use tree_view::{At, Walk, add_kinds};

use axum::response::Response;

use super::checked_id;
use crate::ui::session::{Fields, redirect_with_alert, redirect_with_notice};
use crate::ui::{ApiFailure, Shared, UiError, UiResult, Viewer, back_or_fail};

pub async fn list(State(ui): State<Shared>, viewer: Viewer) -> UiResult {
    let flows = ui.items(&viewer, "/flows?limit=200&sort=name").await?;
    let flows = super::flow_lifecycle::with_health(&ui, &viewer, flows).await;
    let flows: Vec<Value> = flows
        .into_iter()
        .map(|mut f| {
            f["triggerSummary"] = json!(trigger_summary(&ui.app.manifests, &f["trigger"]));
            f
        })
        .collect();
    Ok(ui.page(&viewer, "flows", json!({"nav": "flows", "flows": flows})))
}

fn trigger_summary(manifests: &Manifests, trigger: &Value) -> String {
    match trigger["type"].as_str() {
        Some("event") => {
            let event = trigger["event"].as_str().unwrap_or_default();
            manifests
                .triggers
                .values()
                .find(|t| t.event == event)
                .map_or_else(|| format!("Event {event}"), |t| t.label.clone())
        }
        Some("webhook") => "Inbound webhook".into(),
        Some("schedule") => plain::schedule_words(trigger["schedule"].as_str().unwrap_or("")),
        // A poll's schedule is read in UTC (the schedule editor says so too).
        Some("poll") => format!(
            "Poll {} ({}{})",
            trigger["source"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| trigger["source"]["url"]
                    .as_str()
                    .unwrap_or("HTTP")
                    .to_owned()),
            plain::schedule_words(trigger["schedule"].as_str().unwrap_or("")),
            poll_zone(trigger["schedule"].as_str().unwrap_or(""))
        ),
        _ => "—".into(),
    }
}

/// " UTC" after a poll schedule at a time of day, which the scheduler reads in UTC.
fn poll_zone(cron: &str) -> &'static str {
    let kind = crate::ui::schedule::Editor::from_cron(cron).kind;
    if matches!(kind.as_str(), "daily" | "weekdays" | "monthly") {
        " UTC"
    } else {
        ""
    }
}

/// A flow as the form holds it: every value as text.
#[derive(Debug, Default, Clone)]
struct Draft {
    name: String,
    /// `event:<type>`, `webhook`, `schedule` or `poll`.
    trigger: String,
    secret: String,
    /// How an inbound webhook's sender signs (`standard`, `stripe`, …).
    signature: String,
    schedule: String,
    connection_id: String,
    source: String,
    filters: String,
    /// An event trigger's condition, as JSON text.
    condition: String,
    /// A connector trigger's own fields (the channel to watch), as JSON text.
    trigger_input: String,
    /// The steps, a tree of nodes.
    steps: Vec<Node>,
    /// The steps as JSON text, when a form sends them whole (`steps.json`).
    program: Option<String>,
}

/// A value of a flow as the text a field shows: strings as they are, the rest as JSON.
pub(super) fn as_text(value: &Value) -> String {
    match value {
        Value::Null => String::new(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Draft {
    fn from_flow(flow: &Value, manifests: &Manifests) -> Self {
        let trigger = &flow["trigger"];
        let kind = trigger["type"].as_str().unwrap_or("event");
        let filters = match &trigger["filters"] {
            Value::Object(map) if !map.is_empty() => {
                serde_json::to_string_pretty(&trigger["filters"]).unwrap_or_default()
            }
            _ => String::new(),
        };
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
        let input_text = |action: &str, key: &str, value: &Value| {
            field_text(input_kind(manifests, action, key), value)
        };
        Draft {
            condition: trigger.get("condition").map(pretty).unwrap_or_default(),
            trigger_input: trigger.get("input").map(pretty).unwrap_or_default(),
            program: None,
            name: as_text(&flow["name"]),
            trigger: match kind {
                "event" => format!("event:{}", as_text(&trigger["event"])),
                other => other.to_owned(),
            },
            secret: String::new(),
            signature: as_text(&trigger["signature"]),
            schedule: as_text(&trigger["schedule"]),
            connection_id: as_text(&trigger["connectionId"]),
            source: as_text(&trigger["source"]),
            filters,
            steps: flow["steps"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|node| Node::from_value(node, &input_text))
                .collect(),
        }
    }

    fn from_fields(fields: &Fields) -> Self {
        let mut draft = Draft::default();
        let mut nodes: BTreeMap<Vec<tree::Segment>, FormNode> = BTreeMap::new();
        for (name, value) in &fields.0 {
            let trimmed = value.trim().to_owned();
            match name.as_str() {
                "name" => draft.name = trimmed,
                "trigger" => draft.trigger = trimmed,
                "trigger.secret" => draft.secret = trimmed,
                "trigger.signature" => draft.signature = trimmed,
                "trigger.schedule" => draft.schedule = trimmed,
                "trigger.connectionId" => draft.connection_id = trimmed,
                "trigger.source" => draft.source = trimmed,
                "trigger.filters" => draft.filters = trimmed,
                "trigger.condition" => draft.condition = trimmed,
                "trigger.input" => draft.trigger_input = trimmed,
                "steps.json" => draft.program = Some(value.replace("\r\n", "\n")),
                _ => {
                    let Some((path, rest)) = tree::split_field(name) else {
                        continue;
                    };
                    // More nodes than a flow may have are not read (the API refuses such a
                    // flow anyway), so that a posted form's size bounds the work it makes.
                    if nodes.len() >= MAX_FORM_NODES && !nodes.contains_key(&path) {
                        continue;
                    }
                    nodes.entry(path).or_default().set(rest, value);
                }
            }
        }
        if let Some(cron) = crate::ui::schedule::from_fields(fields) {
            draft.schedule = cron;
        }
        let nodes = nodes
            .into_iter()
            .map(|(path, form)| (path, form.into_node()))
            .collect();
        draft.steps = tree::assemble(nodes);
        draft
    }

    /// The body the API takes; `Err` with field errors this form can tell before sending.
    /// `had_secret`: the flow being edited has a webhook secret (kept when none is typed).
    fn to_flow(
        &self,
        manifests: &Manifests,
        had_secret: bool,
    ) -> Result<Value, BTreeMap<String, String>> {
        let mut errors = BTreeMap::new();
        let trigger = match self.trigger.as_str() {
            // A connector's webhook: the service is subscribed to through the connection.
            "webhook" if !self.source.is_empty() => {
                json!({"type": "webhook", "source": self.source, "connectionId": self.connection_id})
            }
            "webhook" => {
                let mut t = json!({"type": "webhook"});
                if !self.secret.is_empty() {
                    t["secret"] = json!(self.secret);
                }
                // A scheme means something only with a secret (typed now, or kept).
                if (had_secret || !self.secret.is_empty()) && !self.signature.is_empty() {
                    t["signature"] = json!(self.signature);
                }
                t
            }
            "schedule" => json!({"type": "schedule", "schedule": self.schedule}),
            "poll" => {
                // An HTTP source is JSON; a trigger manifest key is text.
                let source = serde_json::from_str::<Value>(&self.source)
                    .ok()
                    .filter(Value::is_object)
                    .unwrap_or_else(|| json!(self.source));
                json!({"type": "poll", "connectionId": self.connection_id, "source": source, "schedule": self.schedule})
            }
            other => {
                let event = other.strip_prefix("event:").unwrap_or_default();
                let mut t = json!({"type": "event", "event": event});
                if !self.filters.is_empty() {
                    match serde_json::from_str::<Value>(&self.filters) {
                        Ok(filters @ Value::Object(_)) => t["filters"] = filters,
                        _ => {
                            errors.insert(
                                "trigger.filters".to_owned(),
                                "write the filters as a JSON object: {\"currency\": \"EUR\"}"
                                    .to_owned(),
                            );
                        }
                    }
                }
                if !self.condition.is_empty() {
                    match serde_json::from_str::<Value>(&self.condition) {
                        Ok(condition @ Value::Object(_)) => t["condition"] = condition,
                        _ => {
                            errors.insert(
                                "trigger.condition".to_owned(),
                                "write the condition as a JSON object: {\"left\": \"{{trigger.total}}\", \"op\": \"gt\", \"right\": 1000}"
                                    .to_owned(),
                            );
                        }
                    }
                }
                t
            }
        };
        let mut trigger = trigger;
        if !self.trigger_input.is_empty() && matches!(self.trigger.as_str(), "poll" | "webhook") {
            match serde_json::from_str::<Value>(&self.trigger_input) {
                Ok(input @ Value::Object(_)) => trigger["input"] = input,
                _ => {
                    errors.insert(
                        "trigger.input".to_owned(),
                        "write the trigger's settings as a JSON object: {\"channel\": \"C0123\"}"
                            .to_owned(),
                    );
                }
            }
        }
        if let Some(program) = &self.program {
            return match serde_json::from_str::<Value>(program) {
                Ok(steps @ Value::Array(_)) if errors.is_empty() => {
                    Ok(json!({"name": self.name, "trigger": trigger, "steps": steps}))
                }
                Ok(Value::Array(_)) => Err(errors),
                _ => {
                    errors.insert(
                        "steps".to_owned(),
                        "write the steps as a JSON list, as the API takes them".to_owned(),
                    );
                    Err(errors)
                }
            };
        }
        let action = |step: &Node| {
            let mut input = Map::new();
            for (key, text) in &step.input {
                if text.trim().is_empty() {
                    continue;
                }
                let kind = input_kind(manifests, &step.action, key);
                input.insert(key.clone(), typed(kind, text));
            }
            let mut s = json!({"key": step.key, "action": step.action, "input": input});
            if !step.connection_id.is_empty() {
                s["connectionId"] = json!(step.connection_id);
            }
            s
        };
        let steps = tree::nodes_to_value(&self.steps, "steps", &mut errors, &action);
        if errors.is_empty() {
            Ok(json!({"name": self.name, "trigger": trigger, "steps": steps}))
        } else {
            Err(errors)
        }
    }

    /// Every node of the steps, parents before their children.
    fn nodes(&self) -> Vec<&Node> {
        fn walk<'n>(nodes: &'n [Node], into: &mut Vec<&'n Node>) {
            for node in nodes {
                into.push(node);
                for (_, list) in node.lists() {
                    walk(list, into);
                }
            }
        }
        let mut all = Vec::new();
        walk(&self.steps, &mut all);
        all
    }
}

/// The most nodes a form is read with: above the flow language's 200.
const MAX_FORM_NODES: usize = 250;
/// The most paths of a switch, and values of a set, a form is read with.
const MAX_FORM_ROWS: usize = 200;

/// One node's fields as a form sends them, before the node is put in its place.
#[derive(Default)]
struct FormNode {
    node: Node,
    cases: BTreeMap<usize, tree::Case>,
    values: BTreeMap<usize, (String, String)>,
}

impl FormNode {
    /// One field of the node (`rest` is its name after the node's path).
    fn set(&mut self, rest: &str, value: &str) {
        let trimmed = value.trim().to_owned();
        // Templates keep their spaces (a template may mean them); browsers send a text area's
        // line breaks as CRLF.
        let kept = value.replace("\r\n", "\n");
        let node = &mut self.node;
        match rest {
            "type" => node.kind = NodeKind::parse(&trimmed).unwrap_or(NodeKind::Json),
            "key" => node.key = trimmed,
            "action" => node.action = trimmed,
            "connectionId" => node.connection_id = trimmed,
            "onError" => node.on_error = trimmed,
            "if.left" => node.control.left = kept,
            "if.op" => node.control.op = trimmed,
            "if.right" => node.control.right = kept,
            "each.items" => node.control.items = trimmed,
            "mode" => node.mode = trimmed,
            "items" => node.items = trimmed,
            "maxItems" => node.max_items = trimmed,
            "for.amount" => node.wait_amount = trimmed,
            "for.unit" => node.wait_unit = trimmed,
            "until" => node.until = trimmed,
            "status" => node.status = trimmed,
            "message" => node.message = kept,
            "json" => node.json = kept,
            _ => {
                if let Some(field) = rest.strip_prefix("condition.") {
                    set_condition(&mut node.condition, field, value);
                } else if let Some(pick) = rest.strip_prefix("pick.") {
                    node.picks.insert(pick.to_owned(), trimmed);
                } else if let Some(date) = rest.strip_prefix("when.") {
                    node.dates.insert(date.to_owned(), trimmed);
                } else if let Some(input) = rest.strip_prefix("input.") {
                    node.input.insert(input.to_owned(), kept);
                } else if let Some((index, field)) = indexed(rest, "cases[") {
                    if self.cases.len() >= MAX_FORM_ROWS && !self.cases.contains_key(&index) {
                        return;
                    }
                    let case = self.cases.entry(index).or_default();
                    if field == "name" {
                        case.name = trimmed;
                    } else if let Some(field) = field.strip_prefix("condition.") {
                        set_condition(&mut case.condition, field, value);
                    }
                } else if let Some((index, field)) = indexed(rest, "values[") {
                    if self.values.len() >= MAX_FORM_ROWS && !self.values.contains_key(&index) {
                        return;
                    }
                    let row = self.values.entry(index).or_default();
                    match field {
                        "name" => row.0 = trimmed,
                        "value" => row.1 = kept,
                        _ => {}
                    }
                }
            }
        }
    }

    fn into_node(self) -> Node {
        let mut node = self.node;
        node.cases = self.cases.into_values().collect();
        node.values = self
            .values
            .into_values()
            .filter(|(name, value)| !name.is_empty() || !value.trim().is_empty())
            .collect();
        if node.kind == NodeKind::Action {
            node.mapped = pickers::resolve(&mut node.input, &node.picks, &node.dates);
        }
        node
    }
}

fn set_condition(condition: &mut tree::Condition, field: &str, value: &str) {
    match field {
        "left" => condition.left = value.to_owned(),
        "op" => condition.op = value.trim().to_owned(),
        "right" => condition.right = value.to_owned(),
        "json" => condition.json = value.replace("\r\n", "\n"),
        _ => {}
    }
}

/// `cases[2].name` with `cases[` → `(2, "name")`.
fn indexed<'f>(rest: &'f str, prefix: &str) -> Option<(usize, &'f str)> {
    let (index, field) = rest.strip_prefix(prefix)?.split_once("].")?;
    Some((index.parse().ok()?, field))
}

/// A field's text as the value the flow stores: texts stay texts (templates included); a
/// number, flag, list or object typed as JSON becomes that value, and a template stays a text
/// the engine renders and converts at run time.
fn typed(kind: &str, text: &str) -> Value {
    match kind {
        "string" | "datetime" => json!(text),
        // JSON fields show every value as JSON (a text in quotes), so each comes back as it was.
        _ if is_json_kind(kind) => {
            serde_json::from_str::<Value>(text.trim()).unwrap_or_else(|_| json!(text))
        }
        _ => match serde_json::from_str::<Value>(text.trim()) {
            Ok(value) if !value.is_string() => value,
            _ => json!(text),
        },
    }
}

/// How a stored value shows in its field: see [`typed`] for the way back.
fn field_text(kind: &str, value: &Value) -> String {
    if is_json_kind(kind) {
        serde_json::to_string(value).unwrap_or_default()
    } else {
        as_text(value)
    }
}

/// Fields holding JSON of any shape, edited as JSON text.
fn is_json_kind(kind: &str) -> bool {
    matches!(kind, "object" | "array" | "json")
}

/// The kind of an action's input (`apps::Field::kind`); `json` for one the action does not know.
fn input_kind(manifests: &Manifests, action: &str, key: &str) -> &'static str {
    manifests
        .actions
        .get(action)
        .and_then(|m| apps::fields(&m.input).into_iter().find(|f| f.key == key))
        .map_or("json", |f| f.kind)
}

/// `create_project` → `project`, unique among the keys taken.
fn default_key(action: &str, taken: &HashSet<String>) -> String {
    // A connector's action (`slack.post_message`) without its connector: keys have no dots.
    let action = action.rsplit('.').next().unwrap_or(action);
    let base = action
        .strip_prefix("create_")
        .or_else(|| action.strip_prefix("update_"))
        .or_else(|| action.strip_prefix("find_"))
        .unwrap_or(action)
        .to_owned();
    let base = if base.is_empty() { "step".into() } else { base };
    let mut key = base.clone();
    let mut n = 2;
    while taken.contains(&key) {
        key = format!("{base}{n}");
        n += 1;
    }
    key
}

/// What an empty field suggests typing.
fn placeholder(kind: &str, lookup: bool) -> &'static str {
    match kind {
        _ if lookup => "an id, or a variable such as {{trigger.id}}",
        "integer" | "number" => "a number, or a variable",
        "boolean" => "true or false",
        "datetime" => "2026-11-23T09:00:00Z, or a variable",
        "object" | "array" | "json" => "JSON, or a variable",
        _ => "",
    }
}

/// What the builder page says is wrong with the draft: messages by field path, and a summary
/// above the form.
#[derive(Default)]
struct Feedback {
    errors: BTreeMap<String, String>,
    summary: Option<String>,
    /// A saved draft's warnings (variables the data does not have), by field path.
    warnings: BTreeMap<String, String>,
    /// The flow's saved draft (what the form started from), for the banner saying so.
    saved_draft: Option<Value>,
    /// The id of the field where the work goes on after an edit.
    focus: Option<String>,
}

/// The errors a page has to show, and the paths its fields show them at (the others go in
/// the summary).
struct Marks<'e> {
    errors: &'e BTreeMap<String, String>,
    warnings: &'e BTreeMap<String, String>,
    shown: BTreeSet<String>,
}

/// The data a step can use: the panel's sections and the pickers' sources, of the trigger
/// and the steps before it.
#[derive(Default)]
struct Panel {
    sections: Vec<Value>,
    sources: Vec<pickers::Source>,
}

/// What the builder page needs around the draft.
struct Builder<'a> {
    ui: &'a Shared,
    viewer: &'a Viewer,
    /// timix's actions and triggers with those of every connector the organization sees
    /// (`slack.post_message`).
    manifests: Arc<Manifests>,
    connections: Vec<Value>,
    /// Records offered by the pickers, by lookup.
    records: pickers::Records,
    /// What the saved flow has seen (samples, its latest run).
    seen: data::Seen,
}

impl Builder<'_> {
    async fn load<'a>(
        ui: &'a Shared,
        viewer: &'a Viewer,
        flow: Option<&Value>,
    ) -> UiResult<Builder<'a>> {
        let connections = ui.items(viewer, "/connections?limit=200").await?;
        let manifests = organization_manifests(ui, viewer).await;
        let seen = match flow.and_then(|f| f["id"].as_str()) {
            Some(id) => data::Seen::load(ui, viewer, id).await,
            None => data::Seen::default(),
        };
        Ok(Builder {
            ui,
            viewer,
            manifests,
            connections,
            records: pickers::Records::new(),
            seen,
        })
    }

    /// Reads the records the draft's pickers offer (this instance's lookups only; a
    /// connector's are searched from the page).
    async fn load_records(&mut self, draft: &Draft) {
        let manifests = &self.manifests;
        let lookups = draft
            .nodes()
            .into_iter()
            .filter(|s| s.kind == NodeKind::Action && !s.action.contains('.'))
            .filter_map(|s| manifests.actions.get(&s.action))
            .flat_map(|m| apps::fields(&m.input))
            .filter_map(|f| f.lookup)
            .collect();
        self.records = pickers::records(self.ui, self.viewer, lookups).await;
    }

    /// The connections to pick from; one the list does not hold (deleted, or past the first
    /// 200) stays selected rather than being dropped on save.
    fn connection_options(&self, selected: &str) -> Vec<Value> {
        let mut options: Vec<Value> = self
            .connections
            .iter()
            .map(|c| json!({"id": c["id"], "name": c["name"], "type": c["type"], "selected": c["id"].as_str() == Some(selected)}))
            .collect();
        if !selected.is_empty() && !options.iter().any(|o| o["selected"] == true) {
            options.push(json!({"id": selected, "name": selected, "type": "?", "selected": true}));
        }
        options
    }

    async fn render(
        mut self,
        status: StatusCode,
        flow: Option<&Value>,
        draft: &Draft,
        feedback: Feedback,
    ) -> UiResult {
        self.load_records(draft).await;
        let Feedback {
            errors,
            summary,
            warnings,
            saved_draft,
            focus,
        } = feedback;
        let errors = &errors;
        // Every path a field of the page shows an error for; the others go in the summary.
        let mut marks = Marks {
            errors,
            warnings: &warnings,
            shown: BTreeSet::from(["name".to_owned()]),
        };
        let (trigger, manifest_sample) = self.trigger_context(draft, &mut marks.shown);
        marks.shown.insert("trigger.condition".to_owned());
        if draft.program.is_some() {
            marks.shown.insert("steps".to_owned());
        }
        let mut panel = Panel::default();
        self.add_trigger_data(&mut panel, flow, draft, manifest_sample);
        let trigger_sections = panel.sections.clone();
        let mut walk = Walk {
            items: Vec::new(),
            panel: &mut panel,
            marks: &mut marks,
        };
        self.push_list(&mut walk, ("steps", "Steps"), &draft.steps, "");
        let tree = walk.items;
        let unplaced = |map: &BTreeMap<String, String>| -> Vec<String> {
            map.iter()
                .filter(|(path, _)| !marks.shown.contains(*path))
                .map(|(path, message)| format!("{}: {message}", plain::field_name(path)))
                .collect()
        };
        let other_errors = unplaced(errors);
        let other_warnings = unplaced(&warnings);
        let mut context = json!({
            "nav": "flows",
            "title": if draft.name.is_empty() { "New flow" } else { draft.name.as_str() },
            "flow": flow,
            "isNew": flow.is_none(),
            "savedDraft": saved_draft.as_ref().map(|d| json!({"updatedAt": d["updatedAt"]})),
            "hasWarnings": !warnings.is_empty(),
            "warningCount": warnings.len(),
            "otherWarnings": other_warnings,
            "action": flow.and_then(|f| f["id"].as_str()).map_or("/flows/new".to_owned(), |id| format!("/flows/{id}")),
            "draft": {
                "name": draft.name,
                "schedule": draft.schedule,
                "source": draft.source,
                "filters": draft.filters,
                "condition": draft.condition,
                "input": draft.trigger_input,
                "connectorWebhook": draft.trigger == "webhook" && !draft.source.is_empty(),
            },
            "program": draft.program,
            "triggerSections": trigger_sections,
            "scheduleEditor": crate::ui::schedule::for_builder(self.viewer, flow, draft.trigger.as_str(), &draft.schedule),
            "tree": tree,
            "addKinds": add_kinds(),
            "focus": focus,
            "errors": errors,
            "otherErrors": other_errors,
            "error": summary,
            "canManage": self.viewer.can(timix_engine::access::auth::Permission::ManageFlows),
            "publicUrl": self.ui.app.public_url.trim_end_matches('/'),
            "triggerSummary": flow.map(|f| trigger_summary(&self.manifests, &f["trigger"])),
        });
        super::merge(&mut context, trigger);
        Ok(self
            .ui
            .page_with_status(status, self.viewer, "flow", context))
    }

    /// The trigger's data: the flow's latest sample while the trigger is the saved one, else
    /// the manifest's sample.
    fn add_trigger_data(
        &self,
        panel: &mut Panel,
        flow: Option<&Value>,
        draft: &Draft,
        manifest_sample: Value,
    ) {
        let same_trigger =
            flow.is_some_and(|f| Draft::from_flow(f, &self.manifests).trigger == draft.trigger);
        let (sample, origin) = match &self.seen.trigger {
            Some(seen) if same_trigger => (seen.clone(), "the latest sample"),
            _ => (manifest_sample, "an example record"),
        };
        let event = draft.trigger.strip_prefix("event:").unwrap_or_default();
        let noun = self
            .ui
            .app
            .manifests
            .triggers
            .values()
            .find(|t| !event.is_empty() && t.event == event)
            .map(|t| pickers::noun_key(&t.noun))
            .unwrap_or_default();
        if !sample.is_null() {
            panel
                .sections
                .push(data::section("The trigger", origin, "trigger", &sample));
        }
        panel.sources.push(pickers::Source {
            path: "trigger".into(),
            title: "the trigger".into(),
            noun,
            sample,
        });
    }

    /// A step's output for the steps after it: its latest run's, else its action's sample.
    fn add_step_data(&self, panel: &mut Panel, number: &str, step: &Node) {
        let Some(manifest) = self.manifests.actions.get(&step.action) else {
            return;
        };
        if step.key.is_empty() {
            return;
        }
        let (output, origin) = match self.seen.outputs.get(&step.key) {
            Some(output) => (output.clone(), "the latest run"),
            None => (manifest.sample.clone(), "an example result"),
        };
        let title = format!("step {number} ({})", step.key);
        let path = format!("steps.{}", step.key);
        panel.sections.push(data::section(
            &format!("Step {number}: {}", manifest.label),
            origin,
            &path,
            &output,
        ));
        panel.sources.push(pickers::Source {
            path,
            title,
            noun: pickers::noun_key(&manifest.noun),
            sample: output,
        });
    }

    /// The trigger's choices and fields, and the sample record its variables come from.
    fn trigger_context(&self, draft: &Draft, shown: &mut BTreeSet<String>) -> (Value, Value) {
        let manifests = &self.manifests;
        let mut trigger_options: Vec<Value> = manifests
            .triggers
            .values()
            .filter(|t| !t.event.is_empty())
            .map(|t| {
                let value = format!("event:{}", t.event);
                json!({"value": value, "label": t.label, "selected": draft.trigger == value})
            })
            .collect();
        // A flow following an event no manifest names keeps it.
        if draft.trigger.starts_with("event:")
            && !trigger_options
                .iter()
                .any(|o| o["value"].as_str() == Some(draft.trigger.as_str()))
        {
            trigger_options.push(json!({"value": draft.trigger, "label": draft.trigger.trim_start_matches("event:"), "selected": true}));
        }
        let other_triggers: Vec<Value> = [
            ("webhook", "Inbound webhook (any JSON POSTed to the flow's URL)"),
            ("schedule", "Schedule"),
            ("poll", "Poll a source through a connection"),
        ]
        .iter()
        .map(|(value, label)| json!({"value": value, "label": label, "selected": draft.trigger == *value}))
        .collect();
        let kind = draft.trigger.split(':').next().unwrap_or("event");
        let fields: &[&str] = match kind {
            "webhook" => &[
                "trigger.secret",
                "trigger.signature",
                "trigger.source",
                "trigger.connectionId",
                "trigger.input",
            ],
            "schedule" => &["trigger.schedule"],
            "poll" => &[
                "trigger.connectionId",
                "trigger.source",
                "trigger.schedule",
                "trigger.input",
            ],
            _ => &["trigger.filters"],
        };
        shown.extend(fields.iter().map(|f| (*f).to_owned()));
        let sample = match kind {
            "schedule" => json!({"firedAt": "2026-11-23T09:00:00.000Z"}),
            "webhook" => Value::Null,
            "poll" => manifests
                .triggers
                .get(&draft.source)
                .map_or(Value::Null, |t| t.sample.clone()),
            _ => {
                let event = draft.trigger.strip_prefix("event:").unwrap_or_default();
                manifests
                    .triggers
                    .values()
                    .find(|t| t.event == event)
                    .map_or(Value::Null, |t| t.sample.clone())
            }
        };
        let sources: Vec<Value> = manifests
            .triggers
            .values()
            .map(|t| json!({"value": t.key, "label": t.label, "selected": t.key == draft.source}))
            .collect();
        let chosen = if draft.signature.is_empty() {
            timix_engine::automation::flows::DEFAULT_SIGNATURE
        } else {
            draft.signature.as_str()
        };
        let signatures: Vec<Value> = [
            (
                "standard",
                "Standard Webhooks (webhook-id, webhook-timestamp, webhook-signature)",
            ),
            ("stripe", "Stripe (Stripe-Signature)"),
            ("github", "GitHub (X-Hub-Signature-256, X-GitHub-Delivery)"),
            (
                "slack",
                "Slack (X-Slack-Signature, X-Slack-Request-Timestamp)",
            ),
            (
                "hmac",
                "Body-only HMAC (X-Timix-Signature; no timestamp, replayable)",
            ),
        ]
        .iter()
        .map(|(value, label)| json!({"value": value, "label": label, "selected": chosen == *value}))
        .collect();
        let mut is = Map::new();
        is.insert(kind.to_owned(), Value::Bool(true));
        let context = json!({
            "signatures": signatures,
            "triggerOptions": trigger_options,
            "otherTriggers": other_triggers,
            "is": is,
            "pollConnections": self.connection_options(&draft.connection_id),
            "sources": sources,
        });
        (context, sample)
    }

    /// One step: its action, key, connection, the fields of its action's input (with their
    /// pickers) and the data of the trigger and the steps before it.
    fn step_context(
        &self,
        at: &At<'_>,
        step: &Node,
        panel: &Panel,
        marks: &mut Marks<'_>,
    ) -> Value {
        let Marks {
            errors,
            warnings,
            shown,
        } = marks;
        let manifests = &self.manifests;
        let manifest = manifests.actions.get(&step.action);
        let prefix = at.path;
        let dom = at.id;
        for part in ["", ".key", ".action", ".connectionId", ".input", ".onError"] {
            shown.insert(format!("{prefix}{part}"));
        }
        let schema_fields = manifest.map(|m| apps::fields(&m.input)).unwrap_or_default();
        let connector = step.action.split_once('.').map(|(c, _)| c);
        let field = |f: &apps::Field| {
            let name = format!("{prefix}.input.{}", f.key);
            let value = step.input.get(&f.key).cloned().unwrap_or_default();
            let format = manifest.and_then(|m| m.input["properties"][&f.key]["format"].as_str());
            let pick = pickers::FieldPick {
                field: f,
                format,
                connector,
                value: &value,
                mapped: step.mapped.contains(&f.key),
            };
            let mut context = json!({
                "name": name,
                "pickName": format!("{prefix}.pick.{}", f.key),
                "dateName": format!("{prefix}.when.{}", f.key),
                "id": format!("{dom}-{}", f.key),
                "label": f.label,
                "help": f.help,
                "required": f.required,
                "multiline": is_json_kind(f.kind) || matches!(f.key.as_str(), "notes" | "body" | "description") || value.contains('\n'),
                "placeholder": placeholder(f.kind, f.lookup.is_some()),
                "error": errors.get(&name).map(|m| plain::message(m)),
                "apiError": errors.get(&name).map(|m| format!("{name}: {m}")),
                "warning": warnings.get(&name),
                "value": value,
            });
            super::merge(
                &mut context,
                pickers::picker(&pick, &self.records, &panel.sources),
            );
            context
        };
        let mut fields: Vec<Value> = schema_fields.iter().map(field).collect();
        // Inputs the action does not know (its manifest changed, or is gone) are kept and shown,
        // so that saving does not drop them silently; the API names what is wrong with them.
        for key in step.input.keys() {
            if !schema_fields.iter().any(|f| &f.key == key) {
                let unknown = apps::Field {
                    key: key.clone(),
                    label: key.clone(),
                    help: Some("Not an input of this action: empty it to remove it.".into()),
                    required: false,
                    kind: "json",
                    choices: Vec::new(),
                    lookup: None,
                };
                fields.push(field(&unknown));
            }
        }
        for f in &fields {
            if let Some(name) = f["name"].as_str() {
                shown.insert(name.to_owned());
            }
        }
        for part in [".if.left", ".if.op", ".if.right", ".each.items"] {
            shown.insert(format!("{prefix}{part}"));
        }
        let mut sections = panel.sections.clone();
        if step.control.has_loop() {
            sections.insert(0, data::loop_section(&step.control.items));
        }
        let control = json!({
            "open": step.control.has_condition() || step.control.has_loop()
                || [".if.left", ".if.op", ".if.right", ".each.items"].iter().any(|p| errors.contains_key(&format!("{prefix}{p}"))),
            "text": step.control.describe(),
            "left": step.control.left,
            "right": step.control.right,
            "items": step.control.items,
            "ops": step.control.op_options(),
            "leftError": errors.get(&format!("{prefix}.if.left")),
            "opError": errors.get(&format!("{prefix}.if.op")),
            "rightError": errors.get(&format!("{prefix}.if.right")),
            "itemsError": errors.get(&format!("{prefix}.each.items")),
        });
        let (required, optional): (Vec<Value>, Vec<Value>) =
            fields.into_iter().partition(|f| f["required"] == true);
        // Optional fields fold away unless one holds something to see.
        let optional_open = optional
            .iter()
            .any(|f| f["value"] != "" || !f["error"].is_null() || !f["warning"].is_null());
        // timix's actions first, then each connector's under its name.
        let mut action_groups: Vec<(String, Vec<Value>)> = vec![("timix".into(), Vec::new())];
        for (key, m) in &manifests.actions {
            let option = json!({"value": key, "label": m.label, "selected": *key == step.action});
            let group = match key.split_once('.') {
                None => "timix".to_owned(),
                Some((connector, _)) => manifests
                    .connectors
                    .get(connector)
                    .map_or_else(|| connector.to_owned(), |c| c.connector.label.clone()),
            };
            match action_groups.iter_mut().find(|(label, _)| *label == group) {
                Some((_, options)) => options.push(option),
                None => action_groups.push((group, vec![option])),
            }
        }
        // An action this page does not know (its connector is gone or unreadable) stays chosen,
        // so that saving keeps it and the API says what is wrong with it.
        if !step.action.is_empty() && !manifests.actions.contains_key(&step.action) {
            let option = json!({"value": step.action, "label": step.action, "selected": true});
            action_groups.push(("Not available here".to_owned(), vec![option]));
        }
        let action_groups: Vec<Value> = action_groups
            .into_iter()
            .map(|(label, options)| json!({"label": label, "options": options}))
            .collect();
        json!({
            "key": step.key,
            "action": step.action,
            "onErrorOptions": [
                {"value": "", "label": "Stop the run: it fails", "selected": step.on_error.is_empty()},
                {"value": "continue", "label": "Go on with the next step", "selected": step.on_error == "continue"},
                {"value": "steps", "label": "Run other steps instead", "selected": step.on_error == "steps"},
            ],
            "actionGroups": action_groups,
            "connectionOptions": self.connection_options(&step.connection_id),
            "manifest": manifest.map(|m| json!({"label": m.label, "description": m.description})),
            "hasFields": !required.is_empty() || !optional.is_empty(),
            "requiredFields": required,
            "optionalFields": optional,
            "optionalOpen": optional_open,
            "data": sections,
            "control": control,
            "keyError": errors.get(&format!("{prefix}.key")),
            "actionError": errors.get(&format!("{prefix}.action")).map(|m| plain::message(m)),
            "connectionError": errors.get(&format!("{prefix}.connectionId")),
            "inputError": errors.get(&format!("{prefix}.input")),
            "error": errors.get(prefix),
        })
    }
}

/// timix's manifests with the organization's connectors; timix's alone when the connectors
/// cannot be read (the builder still works for timix's own actions).
async fn organization_manifests(ui: &Shared, viewer: &Viewer) -> Arc<Manifests> {
    match ui
        .app
        .connectors
        .view(&ui.app.db, viewer.actor.org_id())
        .await
    {
        Ok(view) => Arc::new(view),
        Err(error) => {
            tracing::warn!(%error, "The organization's connectors could not be read for the builder.");
            ui.app.manifests.clone()
        }
    }
}

pub async fn new_form(State(ui): State<Shared>, viewer: Viewer) -> UiResult {
    let builder = Builder::load(&ui, &viewer, None).await?;
    let draft = Draft {
        trigger: "event:customer.created".into(),
        steps: vec![Node::new(NodeKind::Action)],
        ..Draft::default()
    };
    builder
        .render(StatusCode::OK, None, &draft, Feedback::default())
        .await
}

/// A saved flow, or its unpublished draft with the draft's warnings at their fields.
pub async fn edit_form(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> UiResult {
    let id = checked_id(&id, "flow")?;
    let flow = ui.get(&viewer, &format!("/flows/{id}")).await?;
    let builder = Builder::load(&ui, &viewer, Some(&flow)).await?;
    let (shown, feedback) = match ui.get(&viewer, &format!("/flows/{id}/draft")).await {
        Ok(draft) => {
            let paths = tree::PathMap::of(&Draft::from_flow(&draft, &builder.manifests).steps);
            let warnings = draft["warnings"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|w| {
                    let field = paths.form_path(w["field"].as_str()?);
                    Some((field, plain::warning(w)))
                })
                .collect();
            let mut shown = draft.clone();
            shown["id"] = flow["id"].clone();
            let feedback = Feedback {
                warnings,
                saved_draft: Some(draft),
                ..Feedback::default()
            };
            (shown, feedback)
        }
        Err(_) => (flow.clone(), Feedback::default()),
    };
    let shown_draft = Draft::from_flow(&shown, &builder.manifests);
    builder
        .render(StatusCode::OK, Some(&flow), &shown_draft, feedback)
        .await
}

pub async fn save_new(
    State(ui): State<Shared>,
    viewer: Viewer,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let response = submit(&ui, &viewer, None, &fields).await?;
    Ok(for_script(&headers, response))
}

pub async fn save(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    headers: HeaderMap,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "flow")?;
    let flow = ui.get(&viewer, &format!("/flows/{id}")).await?;
    let response = submit(&ui, &viewer, Some(flow), &fields).await?;
    Ok(for_script(&headers, response))
}

/// The builder's script sends the form in the background (`X-Timix-Builder`): a redirect is
/// answered as `X-Redirect` for it to follow, so the notice it carries is read by the page
/// the browser then shows, and no POST answer ever becomes a page of the history.
fn for_script(headers: &HeaderMap, mut response: Response) -> Response {
    if !headers.contains_key("x-timix-builder") || !response.status().is_redirection() {
        return response;
    }
    if let Some(location) = response.headers_mut().remove(header::LOCATION) {
        response.headers_mut().insert("x-redirect", location);
    }
    *response.status_mut() = StatusCode::OK;
    response
}

/// The builder's buttons: `save`, `refresh`, and the edits of [`edit`].
async fn submit(ui: &Shared, viewer: &Viewer, flow: Option<Value>, fields: &Fields) -> UiResult {
    let mut draft = Draft::from_fields(fields);
    let op = fields.get("op").unwrap_or("save");
    let builder = Builder::load(ui, viewer, flow.as_ref()).await?;
    let edited = match op {
        "save" => None,
        "refresh" => {
            fill_keys(&mut draft);
            Some(Edited::default())
        }
        _ => match edit(&mut draft.steps, op) {
            Some(edited) => {
                fill_keys(&mut draft);
                Some(edited)
            }
            None => {
                return Err(UiError::bad_request(format!(
                    "unknown button {}",
                    timix_engine::store::json::quote(op)
                )));
            }
        },
    };
    // Editing a flow that has a draft goes on from the draft: its banner stays.
    let pending = saved_draft(ui, viewer, flow.as_ref()).await;
    if let Some(Edited { focus }) = edited {
        let feedback = Feedback {
            saved_draft: pending,
            focus,
            ..Feedback::default()
        };
        return builder
            .render(StatusCode::OK, flow.as_ref(), &draft, feedback)
            .await;
    }
    fill_keys(&mut draft);
    let paths = tree::PathMap::of(&draft.steps);
    let had_secret = flow
        .as_ref()
        .is_some_and(|f| f["trigger"]["hasSecret"] == true);
    let body = match draft.to_flow(&builder.manifests, had_secret) {
        Ok(body) => body,
        Err(errors) => {
            let feedback = Feedback {
                errors,
                summary: Some("Some fields need attention.".to_owned()),
                saved_draft: pending,
                ..Feedback::default()
            };
            return builder
                .render(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    flow.as_ref(),
                    &draft,
                    feedback,
                )
                .await;
        }
    };
    let saved = match &flow {
        None => create_checked(ui, viewer, body).await,
        Some(existing) => {
            let id = existing["id"].as_str().unwrap_or_default();
            save_checked(ui, viewer, id, body).await
        }
    };
    match saved {
        Ok(redirect) => Ok(redirect),
        // What the form can fix is shown on it; a refusal of the role or an outage is a page.
        Err(failure) if matches!(failure.status, 400 | 409 | 412 | 422) => {
            let feedback = Feedback {
                summary: Some(plain::summary(&failure)),
                errors: failure
                    .fields
                    .iter()
                    .map(|(path, message)| (paths.form_path(path), message.clone()))
                    .collect(),
                saved_draft: pending,
                ..Feedback::default()
            };
            builder
                .render(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    flow.as_ref(),
                    &draft,
                    feedback,
                )
                .await
        }
        Err(failure) => Err(failure.into()),
    }
}

/// A new flow is created disabled and checked as a draft: without warnings it is enabled at
/// once; with them it stays off and its page shows them, with **Publish**.
async fn create_checked(
    ui: &Shared,
    viewer: &Viewer,
    mut body: Value,
) -> Result<Response, ApiFailure> {
    body["isEnabled"] = json!(false);
    let created = ui.post(viewer, "/flows", body.clone()).await?;
    let id = created["id"].as_str().unwrap_or_default();
    body.as_object_mut().map(|b| b.remove("isEnabled"));
    let draft = ui.put(viewer, &format!("/flows/{id}/draft"), body).await?;
    let path = format!("/flows/{id}");
    if has_warnings(&draft) {
        return Ok(redirect_with_alert(
            &path,
            "Flow created but not enabled: some variables are not in the data (flagged below). Fix them, or publish as it is, then enable it.",
        ));
    }
    ui.delete(viewer, &format!("{path}/draft")).await?;
    ui.post(viewer, &format!("{path}/enable"), json!({}))
        .await?;
    Ok(redirect_with_notice(
        &path,
        "Flow created. It is enabled: its trigger starts runs from now on.",
    ))
}

/// A change is saved as the flow's draft; without warnings it is published at once.
async fn save_checked(
    ui: &Shared,
    viewer: &Viewer,
    id: &str,
    body: Value,
) -> Result<Response, ApiFailure> {
    let path = format!("/flows/{id}");
    let draft = ui.put(viewer, &format!("{path}/draft"), body).await?;
    if has_warnings(&draft) {
        return Ok(redirect_with_alert(
            &path,
            "Saved as a draft, not live: some variables are not in the data (flagged below). Fix them, or publish as it is.",
        ));
    }
    ui.post(viewer, &format!("{path}/draft/publish"), json!({}))
        .await?;
    Ok(redirect_with_notice(&path, "Flow saved."))
}

/// The saved draft of a flow that has one.
async fn saved_draft(ui: &Shared, viewer: &Viewer, flow: Option<&Value>) -> Option<Value> {
    let flow = flow.filter(|f| f["hasDraft"] == true)?;
    let id = flow["id"].as_str()?;
    ui.get(viewer, &format!("/flows/{id}/draft")).await.ok()
}

fn has_warnings(draft: &Value) -> bool {
    draft["warnings"].as_array().is_some_and(|w| !w.is_empty())
}

/// The flow the builder's fields describe (steps' keys filled from their actions), for the
/// lifecycle's "Save as draft" and "show the URL first" (`flow` is the saved flow, or null);
/// `Err` with the field errors the form can tell.
pub async fn form_to_flow(
    ui: &Shared,
    viewer: &Viewer,
    flow: &Value,
    fields: &Fields,
) -> Result<Value, BTreeMap<String, String>> {
    let mut draft = Draft::from_fields(fields);
    fill_keys(&mut draft);
    let manifests = organization_manifests(ui, viewer).await;
    draft.to_flow(&manifests, flow["trigger"]["hasSecret"] == true)
}

/// New nodes and steps whose action was picked get a key: an action's from the action, the
/// others' from their kind.
fn fill_keys(draft: &mut Draft) {
    let mut keys = Vec::new();
    for node in &draft.steps {
        node.keys(&mut keys);
    }
    let mut taken: HashSet<String> = keys.into_iter().collect();
    fn fill(nodes: &mut [Node], taken: &mut HashSet<String>) {
        for node in nodes {
            if node.key.is_empty() {
                let base = match node.kind {
                    NodeKind::Action => node.action.as_str(),
                    other => other.default_key(),
                };
                if !base.is_empty() {
                    node.key = default_key(base, taken);
                    taken.insert(node.key.clone());
                }
            }
            for name in node
                .lists()
                .into_iter()
                .map(|(name, _)| name)
                .collect::<Vec<_>>()
            {
                if let Some(list) = node.list_mut(&name) {
                    fill(list, taken);
                }
            }
        }
    }
    fill(&mut draft.steps, &mut taken);
}

/// What a builder button does to the steps (`add_step`; `add:<list>:<kind>` with a list such as
/// `steps` or `steps[1].then`; `remove:<node>`, `move_up:<node>`, `move_down:<node>`;
/// `add_case:<switch>`, `remove_case:<switch>:<n>`, `add_value:<set>`). `None` for a button it
/// does not know, or a node that is not there.
fn edit(steps: &mut Vec<Node>, op: &str) -> Option<Edited> {
    let (verb, target) = op.split_once(':').unwrap_or((op, ""));
    // `remove_step:2` and `move_up:2` name a step of the first level by its index.
    let node_path = |text: &str| match text.parse::<usize>() {
        Ok(index) => format!("steps[{index}]"),
        Err(_) => text.to_owned(),
    };
    match verb {
        "add_step" => {
            steps.push(Node::new(NodeKind::Action));
            Some(Edited::focus(format!(
                "{}-action",
                tree::dom_id(&format!("steps[{}]", steps.len() - 1))
            )))
        }
        "add" => {
            let (list_path, kind) = target.rsplit_once(':')?;
            let kind = NodeKind::parse(kind)?;
            let list = tree::list_at(steps, list_path)?;
            list.push(Node::new(kind));
            let path = format!("{list_path}[{}]", list.len() - 1);
            Some(Edited::focus(tree::first_field_id(&path, kind)))
        }
        "remove" | "remove_step" => {
            let path = node_path(target);
            let (list, index) = tree::parent_list(steps, &path)?;
            if index < list.len() {
                list.remove(index);
            }
            let list_path = path.rsplit_once('[').map_or("steps", |(l, _)| l);
            Some(Edited::focus(format!("{}-add", tree::dom_id(list_path))))
        }
        "move_up" | "move_down" => {
            let path = node_path(target);
            let (list, index) = tree::parent_list(steps, &path)?;
            let to = if verb == "move_up" {
                index.checked_sub(1)
            } else {
                index.checked_add(1).filter(|i| *i < list.len())
            };
            let Some(to) = to.filter(|_| index < list.len()) else {
                return Some(Edited::default());
            };
            list.swap(index, to);
            let (list_path, _) = path.rsplit_once('[')?;
            let moved = tree::dom_id(&format!("{list_path}[{to}]"));
            let edge =
                (verb == "move_up" && to == 0) || (verb == "move_down" && to + 1 == list.len());
            let button = match (verb, edge) {
                ("move_up", false) | ("move_down", true) => "up",
                _ => "down",
            };
            Some(Edited::focus(format!("{moved}-{button}")))
        }
        "add_case" => {
            let node = tree::node_at(steps, target)?;
            let n = node.cases.len();
            node.cases.push(tree::Case {
                name: format!("path_{}", n + 1),
                ..tree::Case::default()
            });
            Some(Edited::focus(format!("{}-c{n}-name", tree::dom_id(target))))
        }
        "remove_case" => {
            let (path, index) = target.rsplit_once(':')?;
            let node = tree::node_at(steps, path)?;
            let index: usize = index.parse().ok()?;
            if index < node.cases.len() {
                node.cases.remove(index);
            }
            Some(Edited::focus(format!("{}-add-case", tree::dom_id(path))))
        }
        "add_value" => {
            let node = tree::node_at(steps, target)?;
            node.values.push((String::new(), String::new()));
            Some(Edited::focus(format!(
                "{}-v{}-name",
                tree::dom_id(target),
                node.values.len() - 1
            )))
        }
        _ => None,
    }
}

/// What an edit of the steps did: the id of the field where the work goes on.
#[derive(Debug, Default)]
struct Edited {
    focus: Option<String>,
}

impl Edited {
    fn focus(id: String) -> Self {
        Edited { focus: Some(id) }
    }
}

/// `enable`, `disable`, `test` (a run on the trigger's sample, then its page) and `delete`.
/// Publishing and discarding a draft are the lifecycle's (`/flows/{id}/draft/{op}`).
pub async fn act(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path((id, op)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "flow")?;
    let path = format!("/flows/{id}");
    match op.as_str() {
        "enable" | "disable" => {
            if let Err(failure) = ui.post(&viewer, &format!("{path}/{op}"), json!({})).await {
                return back_or_fail(&path, failure);
            }
            let notice = if op == "enable" {
                "Flow enabled: its trigger starts runs from now on."
            } else {
                "Flow disabled: nothing starts it until it is enabled again."
            };
            Ok(redirect_with_notice(&path, notice))
        }
        "test" => {
            let run = match ui.post(&viewer, &format!("{path}/test"), json!({})).await {
                Ok(run) => run,
                Err(failure) => return back_or_fail(&path, failure),
            };
            let run_id = run["id"]
                .as_str()
                .or_else(|| run["runId"].as_str())
                .unwrap_or_default();
            Ok(redirect_with_notice(
                &format!("/runs/{run_id}"),
                "Test run started with the trigger's sample record.",
            ))
        }
        "delete" => match ui.delete(&viewer, &path).await {
            Ok(_) => Ok(redirect_with_notice("/flows", "The flow is deleted.")),
            Err(failure) => back_or_fail(&path, failure),
        },
        _ => Err(UiError::not_found("action")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_posted_form_is_read_within_bounds() {
        // Many more nodes than a flow may have: only the first MAX_FORM_NODES are read.
        let fields = Fields(
            (0..20_000)
                .map(|i| (format!("steps[{i}].type"), "stop".to_owned()))
                .collect(),
        );
        let mut draft = Draft::from_fields(&fields);
        assert_eq!(draft.steps.len(), MAX_FORM_NODES);
        fill_keys(&mut draft);
        assert_eq!(draft.steps[1].key, "stop2");
        // A move past the end, or from an index no list has, changes nothing.
        let mut steps = vec![Node::new(NodeKind::Stop)];
        assert!(edit(&mut steps, &format!("move_down:steps[{}]", usize::MAX)).is_some());
        assert!(edit(&mut steps, "move_down:steps[0]").is_some());
        assert_eq!(steps.len(), 1);
        assert!(edit(&mut steps, "remove:steps[0].then[0]").is_none());
    }

    #[test]
    fn a_delay_of_several_units_is_sent_as_written() {
        let fields = Fields(vec![
            ("steps[0].type".into(), "delay".into()),
            ("steps[0].key".into(), "wait".into()),
            ("steps[0].for.amount".into(), "1h30m".into()),
            ("steps[0].for.unit".into(), "".into()),
        ]);
        let manifests = Manifests::built_in().expect("built-in manifests");
        let flow = Draft::from_fields(&fields)
            .to_flow(&manifests, false)
            .expect("valid");
        assert_eq!(
            flow["steps"][0],
            json!({"key": "wait", "type": "delay", "for": "1h30m"})
        );
    }

    #[test]
    fn typed_values_keep_templates_as_text() {
        assert_eq!(typed("integer", "7"), json!(7));
        assert_eq!(typed("integer", "{{trigger.n}}"), json!("{{trigger.n}}"));
        assert_eq!(typed("string", "7"), json!("7"));
        assert_eq!(typed("object", "{\"a\": 1}"), json!({"a": 1}));
    }

    #[test]
    fn default_keys_are_unique() {
        let taken = HashSet::from(["project".to_owned()]);
        assert_eq!(default_key("create_project", &taken), "project2");
        assert_eq!(default_key("http_request", &HashSet::new()), "http_request");
        assert_eq!(
            default_key("slack.post_message", &HashSet::new()),
            "post_message"
        );
    }

    #[test]
    fn a_form_round_trips_to_a_flow() {
        let fields = Fields(vec![
            ("name".into(), "Onboarding".into()),
            ("trigger".into(), "event:customer.created".into()),
            ("steps[0].key".into(), "project".into()),
            ("steps[0].action".into(), "create_project".into()),
            ("steps[0].input.customerId".into(), "{{trigger.id}}".into()),
            (
                "steps[0].input.name".into(),
                "{{trigger.name}} onboarding".into(),
            ),
            ("steps[0].input.notes".into(), "".into()),
        ]);
        let manifests = Manifests::built_in().expect("built-in manifests");
        let flow = Draft::from_fields(&fields)
            .to_flow(&manifests, false)
            .expect("valid");
        assert_eq!(
            flow["trigger"],
            json!({"type": "event", "event": "customer.created"})
        );
        assert_eq!(
            flow["steps"][0]["input"],
            json!({"customerId": "{{trigger.id}}", "name": "{{trigger.name}} onboarding"})
        );
        let again = Draft::from_flow(&flow, &manifests);
        assert_eq!(again.steps[0].input["name"], "{{trigger.name}} onboarding");
    }

    #[test]
    fn a_stored_flow_round_trips_unchanged() {
        let manifests = Manifests::built_in().expect("built-in manifests");
        let flow = json!({
            "name": "Mirror",
            "trigger": {"type": "poll", "connectionId": "con_1",
                        "source": {"url": "/contacts", "items": "data"}, "schedule": "*/5 * * * *"},
            "steps": [{"key": "send", "action": "http_request", "connectionId": "con_1", "input": {
                "method": "POST", "url": "/x",
                "body": {"id": "{{trigger.id}}", "n": "123", "ok": true},
                "legacy": "123"
            }}]
        });
        let again = Draft::from_flow(&flow, &manifests)
            .to_flow(&manifests, false)
            .expect("valid");
        assert_eq!(again["trigger"], flow["trigger"]);
        assert_eq!(again["steps"], flow["steps"]);
    }

    #[test]
    fn a_program_and_an_event_condition_round_trip_unchanged() {
        let manifests = Manifests::built_in().expect("built-in manifests");
        let flow = json!({
            "name": "Paid",
            "trigger": {"type": "event", "event": "invoice.updated",
                        "condition": {"left": "{{event.changedFields}}", "op": "contains", "right": "status"}},
            "steps": [
                {"key": "check", "type": "if", "condition": {"left": "{{trigger.status}}", "op": "equals", "right": "paid"},
                 "then": [{"key": "send", "action": "http_request", "input": {"method": "POST", "url": "https://x.example"}, "onError": "continue"}]}
            ]
        });
        let draft = Draft::from_flow(&flow, &manifests);
        assert_eq!(draft.steps[0].kind, NodeKind::If, "a node of the tree");
        assert_eq!(draft.steps[0].then[0].on_error, "continue");
        let again = draft.to_flow(&manifests, false).expect("valid");
        assert_eq!(again["trigger"], flow["trigger"]);
        assert_eq!(again["steps"], flow["steps"]);
    }

    #[test]
    fn connector_triggers_keep_their_source_connection_and_input() {
        let manifests = Manifests::built_in().expect("built-in manifests");
        for trigger in [
            json!({"type": "webhook", "source": "github.new_issue_event", "connectionId": "con_1",
                   "input": {"repo": "acme/app"}}),
            json!({"type": "poll", "source": "slack.new_message", "connectionId": "con_2",
                   "input": {"channel": "C0100000001"}, "schedule": "*/5 * * * *"}),
        ] {
            let flow = json!({"name": "From a service", "trigger": trigger,
                              "steps": [{"key": "c", "action": "create_customer", "input": {"name": "x"}}]});
            let again = Draft::from_flow(&flow, &manifests)
                .to_flow(&manifests, false)
                .expect("valid");
            assert_eq!(again["trigger"], flow["trigger"]);
        }
    }

    #[test]
    fn a_webhook_keeps_its_signature_scheme() {
        let manifests = Manifests::built_in().expect("built-in manifests");
        let stored = json!({
            "name": "Hook",
            "trigger": {"type": "webhook", "signature": "hmac", "hasSecret": true, "webhookUrl": "/x"},
            "steps": [{"key": "c", "action": "create_customer", "input": {"name": "{{trigger.n}}"}}]
        });
        // Re-saved without typing the secret: the scheme is kept with the stored secret.
        let again = Draft::from_flow(&stored, &manifests)
            .to_flow(&manifests, true)
            .expect("valid");
        assert_eq!(
            again["trigger"],
            json!({"type": "webhook", "signature": "hmac"})
        );
        // A new secret and a chosen scheme go together.
        let fields = Fields(vec![
            ("name".into(), "Hook".into()),
            ("trigger".into(), "webhook".into()),
            ("trigger.secret".into(), "a-secret-of-sixteen".into()),
            ("trigger.signature".into(), "github".into()),
        ]);
        let flow = Draft::from_fields(&fields)
            .to_flow(&manifests, false)
            .expect("valid");
        assert_eq!(
            flow["trigger"],
            json!({"type": "webhook", "secret": "a-secret-of-sixteen", "signature": "github"})
        );
        // No secret at all: no scheme is sent (the URL alone is the credential).
        let fields = Fields(vec![
            ("trigger".into(), "webhook".into()),
            ("trigger.signature".into(), "standard".into()),
        ]);
        let flow = Draft::from_fields(&fields)
            .to_flow(&manifests, false)
            .expect("valid");
        assert_eq!(flow["trigger"], json!({"type": "webhook"}));
    }
}
