//! Manifests: what an action does and what a trigger reads, as data (`manifests/*/*.yaml`),
//! the types the engine, the connectors' app generators and the flow executor share.
//! Each file is checked against our meta-schema (`meta_schema.json`), then for what a schema
//! cannot say: the key matches the file name, the input schema is a valid JSON Schema, every
//! template parses, keys are unique. Every problem is reported with its file and path.
//! Under 600 lines without its tests; the checks and the types they check read best together.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::automation::template;

include!(concat!(env!("OUT_DIR"), "/built_in_manifests.rs"));

const META_SCHEMA: &str = include_str!("meta_schema.json");

/// One problem in one manifest file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestProblem {
    /// `actions/create_customer.yaml`
    pub file: String,
    /// JSON pointer of the offending field, `/request/method`; empty for the whole file.
    pub path: String,
    pub message: String,
}

impl std::fmt::Display for ManifestProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.file, self.message)
        } else {
            write!(f, "{}: {}: {}", self.file, self.path, self.message)
        }
    }
}

/// What an action does: `create`, `update`, `search` or a generic `request`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Create,
    Update,
    Search,
    Request,
}

/// Where a request's query, headers or body come from: a value of the input as is (`input`,
/// `input.headers`), an object of templates, or (a body) an object whose strings are templates
/// at any depth (`{properties: {email: "{{input.email}}"}}`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Mapping {
    Input(String),
    Templates(BTreeMap<String, String>),
    Tree(serde_json::Map<String, Value>),
}

/// How a request's body is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`, nested values in bracket notation (`metadata[plan]`).
    Form,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestSpec {
    /// A template: `POST`, or `{{input.method}}`.
    pub method: String,
    /// A template, relative to the API base (`/customers/{{input.id}}`).
    pub path: Option<String>,
    /// A template: an absolute URL, or one relative to the connection's base URL.
    pub url: Option<String>,
    pub query: Option<Mapping>,
    pub headers: Option<Mapping>,
    pub body: Option<Mapping>,
    /// Input fields left out of a body taken from `input` (those in the path).
    #[serde(default)]
    pub exclude: Vec<String>,
    #[serde(default)]
    pub encoding: Encoding,
}

/// How the output is read from the response body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Select {
    /// The body itself.
    Item,
    /// The first of `items` (a search); none when the list is empty.
    First,
    /// All of `items`.
    Items,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OutputSpec {
    pub select: Select,
    /// With `item`: the dotted path of the output in the body (`message`); the body if none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    /// With `first` and `items`: the dotted path of the list (`results`); `items` if none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub items: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RetrySpec {
    /// Statuses worth another attempt; network failures always are.
    #[serde(default = "default_statuses")]
    pub statuses: Vec<u16>,
    #[serde(default = "default_attempts")]
    pub max_attempts: u32,
}

fn default_statuses() -> Vec<u16> {
    vec![408, 429, 500, 502, 503, 504]
}

fn default_attempts() -> u32 {
    5
}

impl Default for RetrySpec {
    fn default() -> Self {
        Self {
            statuses: default_statuses(),
            max_attempts: default_attempts(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ActionManifest {
    pub key: String,
    pub kind: ActionKind,
    pub noun: String,
    pub label: String,
    pub description: String,
    /// A JSON Schema (2020-12) of the step's input.
    pub input: Value,
    pub request: RequestSpec,
    pub output: OutputSpec,
    pub sample: Value,
    #[serde(default)]
    pub retry: RetrySpec,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerManifest {
    pub key: String,
    pub noun: String,
    pub label: String,
    pub description: String,
    /// The event type that fires it (`customer.created`).
    pub event: String,
    /// The list to poll, newest first (`/customers`).
    pub list: String,
    /// Fires on changes: deduplicated by id and `updatedAt`, not by id alone.
    pub updated: bool,
    pub sample: Value,
}

/// An action's input schema, checked to compile when read, compiled again when first used.
struct InputSchema {
    schema: Value,
    compiled: std::sync::OnceLock<Option<jsonschema::Validator>>,
}

impl InputSchema {
    /// The schema, if it compiles (a schema that does not is refused when it is read).
    fn checked(schema: &Value) -> Result<Self, String> {
        compile(schema).map_err(|e| format!("not a valid JSON Schema: {e}"))?;
        Ok(Self {
            schema: schema.clone(),
            compiled: std::sync::OnceLock::new(),
        })
    }

    fn validator(&self) -> Option<&jsonschema::Validator> {
        self.compiled
            .get_or_init(|| compile(&self.schema).ok())
            .as_ref()
    }
}

fn compile(schema: &Value) -> Result<jsonschema::Validator, jsonschema::ValidationError<'static>> {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
}

/// Every manifest, by key.
#[derive(Clone, Default)]
pub struct Manifests {
    pub actions: BTreeMap<String, ActionManifest>,
    pub triggers: BTreeMap<String, TriggerManifest>,
    /// Each action's input schema, compiled (formats asserted) when first used: compiled
    /// schemas are large, and most actions of most connectors are never run.
    inputs: BTreeMap<String, std::sync::Arc<InputSchema>>,
    /// The connectors an organization sees besides timix, by key; their actions are in
    /// `actions` under `<connector>.<action>`.
    pub connectors: BTreeMap<String, std::sync::Arc<crate::automation::connectors::Loaded>>,
}

impl std::fmt::Debug for Manifests {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Manifests")
            .field("actions", &self.actions.keys().collect::<Vec<_>>())
            .field("triggers", &self.triggers.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// Converts scalars to the type the schema asks for where nothing is lost: a number or a flag
/// mapped into a text field becomes its text, a numeric text mapped into a number field its
/// number ("true"/"false" likewise). Templates render record fields with their own types, and a
/// person mapping `{{trigger.seq}}` into a query parameter means the text.
pub fn coerce(schema: &Value, value: &mut Value) {
    let kind = schema["type"].as_str().unwrap_or_default();
    match (kind, &*value) {
        ("string", Value::Number(n)) => *value = Value::String(n.to_string()),
        ("string", Value::Bool(b)) => *value = Value::String(b.to_string()),
        ("integer", Value::String(s)) => {
            if let Ok(n) = s.trim().parse::<i64>() {
                *value = json!(n);
            }
        }
        ("number", Value::String(s)) => {
            if let Some(n) = s
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                *value = Value::Number(n);
            }
        }
        ("boolean", Value::String(s)) if s == "true" || s == "false" => {
            *value = Value::Bool(s == "true");
        }
        (_, Value::Object(_)) => {
            let Some(object) = value.as_object_mut() else {
                return;
            };
            for (key, field) in object.iter_mut() {
                let inner = match schema["properties"].get(key) {
                    Some(inner) => inner,
                    None => &schema["additionalProperties"],
                };
                if inner.is_object() {
                    coerce(inner, field);
                }
            }
        }
        (_, Value::Array(_)) if schema["items"].is_object() => {
            if let Some(items) = value.as_array_mut() {
                for item in items {
                    coerce(&schema["items"], item);
                }
            }
        }
        _ => {}
    }
}

/// A validator's message, short: some quote the whole value they are about.
fn brief(message: &str) -> String {
    const MAX: usize = 300;
    match message.char_indices().nth(MAX) {
        Some((at, _)) => format!("{}…", &message[..at]),
        None => message.to_owned(),
    }
}

/// The JSON pointer of the field a validation error is about: for a missing or unexpected
/// property, that property rather than the object holding it.
fn field_of(error: &jsonschema::ValidationError<'_>) -> String {
    use jsonschema::error::ValidationErrorKind;
    let object = error.instance_path().to_string();
    let property = match error.kind() {
        ValidationErrorKind::Required { property } => property.as_str().map(str::to_owned),
        ValidationErrorKind::AdditionalProperties { unexpected } => unexpected.first().cloned(),
        _ => None,
    };
    match property {
        Some(name) => format!("{object}/{}", name.replace('~', "~0").replace('/', "~1")),
        None => object,
    }
}

impl Manifests {
    /// These manifests with the actions of `connectors` added (`slack.post_message`).
    pub fn with_connectors(
        &self,
        connectors: impl IntoIterator<Item = std::sync::Arc<crate::automation::connectors::Loaded>>,
    ) -> Manifests {
        let mut out = self.clone();
        for connector in connectors {
            out.actions.extend(
                connector
                    .manifests
                    .actions
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            out.inputs.extend(
                connector
                    .manifests
                    .inputs
                    .iter()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
            out.connectors
                .insert(connector.connector.key.clone(), connector);
        }
        out
    }

    /// The connector of a `<connector>.<name>` key, and the name.
    pub fn connector_of<'k>(
        &self,
        key: &'k str,
    ) -> Option<(
        &std::sync::Arc<crate::automation::connectors::Loaded>,
        &'k str,
    )> {
        let (connector, name) = key.split_once('.')?;
        Some((self.connectors.get(connector)?, name))
    }

    /// Actions (qualified `<prefix>.<key>`) and their compiled schemas: a connector's own.
    pub(crate) fn qualified(
        prefix: &str,
        actions: Vec<ActionManifest>,
    ) -> Result<Manifests, Vec<(String, String)>> {
        let mut out = Manifests::default();
        let mut problems = Vec::new();
        for (i, mut action) in actions.into_iter().enumerate() {
            match InputSchema::checked(&action.input) {
                Ok(schema) => {
                    action.key = format!("{prefix}.{}", action.key);
                    out.inputs
                        .insert(action.key.clone(), std::sync::Arc::new(schema));
                    out.actions.insert(action.key.clone(), action);
                }
                Err(message) => problems.push((format!("/actions/{i}/input"), message)),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }

    /// A step's rendered input with scalars converted to the types its action's schema asks
    /// for (see [`coerce`]).
    pub fn coerce_input(&self, action: &str, input: &mut Value) {
        if let Some(manifest) = self.actions.get(action) {
            coerce(&manifest.input, input);
        }
    }

    /// Checks a step's rendered input against its action's schema; every problem as
    /// (JSON pointer below the input, message).
    pub fn check_input(&self, action: &str, input: &Value) -> Result<(), Vec<(String, String)>> {
        let Some(validator) = self.inputs.get(action).and_then(|s| s.validator()) else {
            return Err(vec![(String::new(), format!("{action} is not an action"))]);
        };
        let problems: Vec<(String, String)> = validator
            .iter_errors(input)
            .map(|e| (field_of(&e), e.to_string()))
            .collect();
        if problems.is_empty() {
            Ok(())
        } else {
            Err(problems)
        }
    }

    /// The manifests built into this binary (`manifests/` at build time).
    pub fn built_in() -> Result<Self, Vec<ManifestProblem>> {
        Self::parse(
            BUILT_IN
                .iter()
                .map(|(f, t)| ((*f).to_owned(), (*t).to_owned())),
        )
    }

    /// The manifests of a folder laid out as `manifests/` is (`actions/`, `triggers/`).
    pub fn from_dir(dir: &Path) -> Result<Self, Vec<ManifestProblem>> {
        let mut files = Vec::new();
        let mut problems = Vec::new();
        for sub in ["actions", "triggers"] {
            let folder = dir.join(sub);
            let entries = match std::fs::read_dir(&folder) {
                Ok(entries) => entries,
                Err(e) => {
                    problems.push(ManifestProblem {
                        file: folder.display().to_string(),
                        path: String::new(),
                        message: format!("cannot read the folder: {e}"),
                    });
                    continue;
                }
            };
            let mut paths: Vec<_> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            paths.retain(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"));
            paths.sort();
            for path in paths {
                let name = format!(
                    "{sub}/{}",
                    path.file_name().unwrap_or_default().to_string_lossy()
                );
                match std::fs::read_to_string(&path) {
                    Ok(text) => files.push((name, text)),
                    Err(e) => problems.push(ManifestProblem {
                        file: name,
                        path: String::new(),
                        message: format!("cannot read the file: {e}"),
                    }),
                }
            }
        }
        match Self::parse(files) {
            Ok(m) if problems.is_empty() => Ok(m),
            Ok(_) => Err(problems),
            Err(more) => {
                problems.extend(more);
                Err(problems)
            }
        }
    }

    /// Parses and checks `(file, contents)` pairs; every problem of every file at once.
    pub fn parse(
        files: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, Vec<ManifestProblem>> {
        let checker = MetaSchema::new();
        let mut out = Manifests::default();
        let mut problems = Vec::new();
        for (file, text) in files {
            let problem = |path: &str, message: String| ManifestProblem {
                file: file.clone(),
                path: path.to_owned(),
                message,
            };
            let value: Value = match yaml_serde::from_str(&text) {
                Ok(v) => v,
                Err(e) => {
                    problems.push(problem("", format!("not valid YAML: {e}")));
                    continue;
                }
            };
            let is_action = file.starts_with("actions/");
            let mut found = checker.problems(&value, is_action);
            if is_action {
                if value["input"].is_object()
                    && let Err(e) = jsonschema::validator_for(&value["input"])
                {
                    found.push(("/input".to_owned(), format!("not a valid JSON Schema: {e}")));
                }
                found.extend(request_template_problems(&value["request"]));
            }
            if !found.is_empty() {
                problems.extend(found.into_iter().map(|(path, m)| problem(&path, m)));
                continue;
            }
            let stem = Path::new(&file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            if value["key"].as_str() != Some(stem.as_str()) {
                problems.push(problem(
                    "/key",
                    format!("the key must be the file's name, {stem}"),
                ));
                continue;
            }
            if is_action {
                match serde_json::from_value::<ActionManifest>(value) {
                    Ok(action) => {
                        problems.extend(
                            check_action(&action)
                                .into_iter()
                                .map(|(p, m)| problem(&p, m)),
                        );
                        if out.actions.contains_key(&action.key)
                            || out.triggers.contains_key(&action.key)
                        {
                            problems.push(problem("/key", format!("{} is used twice", action.key)));
                        }
                        out.actions.insert(action.key.clone(), action);
                    }
                    Err(e) => problems.push(problem("", e.to_string())),
                }
            } else {
                match serde_json::from_value::<TriggerManifest>(value) {
                    Ok(trigger) => {
                        if out.actions.contains_key(&trigger.key)
                            || out.triggers.contains_key(&trigger.key)
                        {
                            problems
                                .push(problem("/key", format!("{} is used twice", trigger.key)));
                        }
                        out.triggers.insert(trigger.key.clone(), trigger);
                    }
                    Err(e) => problems.push(problem("", e.to_string())),
                }
            }
        }
        for (key, action) in &out.actions {
            match InputSchema::checked(&action.input) {
                Ok(schema) => {
                    out.inputs.insert(key.clone(), std::sync::Arc::new(schema));
                }
                Err(message) => problems.push(ManifestProblem {
                    file: format!("actions/{key}.yaml"),
                    path: "/input".into(),
                    message,
                }),
            }
        }
        if problems.is_empty() {
            Ok(out)
        } else {
            Err(problems)
        }
    }
}

/// The meta-schema, compiled for actions and for triggers while manifests are read.
pub(crate) struct MetaSchema {
    action: jsonschema::Validator,
    trigger: jsonschema::Validator,
}

/// The meta-schema's definition `kind` as a validator of its own.
fn meta_validator(kind: &str) -> jsonschema::Validator {
    let meta: Value = serde_json::from_str(META_SCHEMA).expect("the meta-schema is JSON");
    let schema = json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$ref": format!("#/$defs/{kind}"),
        "$defs": meta["$defs"].clone(),
    });
    jsonschema::validator_for(&schema).expect("the meta-schema compiles")
}

/// Every problem of a connector document by the meta-schema, as (JSON pointer, message). The
/// validator is compiled when a connector is first read, and kept.
pub(crate) fn connector_problems(value: &Value) -> Vec<(String, String)> {
    static CONNECTOR: std::sync::OnceLock<jsonschema::Validator> = std::sync::OnceLock::new();
    CONNECTOR
        .get_or_init(|| meta_validator("connector"))
        .iter_errors(value)
        .map(|e| (field_of(&e), brief(&e.to_string())))
        .collect()
}

impl MetaSchema {
    fn new() -> Self {
        Self {
            action: meta_validator("action"),
            trigger: meta_validator("trigger"),
        }
    }

    fn problems(&self, value: &Value, is_action: bool) -> Vec<(String, String)> {
        let validator = if is_action {
            &self.action
        } else {
            &self.trigger
        };
        validator
            .iter_errors(value)
            .map(|e| (e.instance_path().to_string(), e.to_string()))
            .collect()
    }
}

/// Templates of a request that do not parse, checked on the raw manifest so that they are
/// reported together with the meta-schema's findings.
pub(crate) fn request_template_problems(request: &Value) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for field in ["method", "path", "url"] {
        if let Some(text) = request[field].as_str()
            && let Err(e) = template::check(text)
        {
            problems.push((format!("/request/{field}"), e.0));
        }
    }
    for field in ["query", "headers", "body"] {
        if request[field].is_object() {
            template_problems(&request[field], &format!("/request/{field}"), &mut problems);
        }
    }
    problems
}

/// Every string of `value` (at any depth) that is not a template that parses, by JSON pointer
/// below `at`.
pub(crate) fn template_problems(value: &Value, at: &str, problems: &mut Vec<(String, String)>) {
    let escape = |key: &str| key.replace('~', "~0").replace('/', "~1");
    match value {
        Value::String(text) => {
            if let Err(e) = template::check(text) {
                problems.push((at.to_owned(), e.0));
            }
        }
        Value::Object(map) => {
            for (key, inner) in map {
                template_problems(inner, &format!("{at}/{}", escape(key)), problems);
            }
        }
        Value::Array(items) => {
            for (i, inner) in items.iter().enumerate() {
                template_problems(inner, &format!("{at}/{i}"), problems);
            }
        }
        _ => {}
    }
}

/// What the meta-schema cannot check about an action.
pub(crate) fn check_action(action: &ActionManifest) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let request = &action.request;
    for (name, mapping) in [
        ("query", &request.query),
        ("headers", &request.headers),
        ("body", &request.body),
    ] {
        match mapping {
            Some(Mapping::Templates(_)) => {}
            Some(Mapping::Tree(_)) if name != "body" => problems.push((
                format!("/request/{name}"),
                format!("{name} maps names to templates (texts)"),
            )),
            Some(Mapping::Tree(_)) => {}
            Some(Mapping::Input(reference)) => {
                let field = reference.strip_prefix("input.");
                if let Some(field) = field
                    && action.input["properties"].get(field).is_none()
                {
                    problems.push((
                        format!("/request/{name}"),
                        format!("{reference} names no property of the input"),
                    ));
                }
            }
            None => {}
        }
    }
    let properties = action.input["properties"].as_object();
    for (i, field) in request.exclude.iter().enumerate() {
        if properties.is_none_or(|p| !p.contains_key(field)) {
            problems.push((
                format!("/request/exclude/{i}"),
                format!("{field} names no property of the input"),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_problems_name_the_missing_or_unexpected_field() {
        let manifests = Manifests::built_in().unwrap();
        let problems = manifests
            .check_input("create_customer", &json!({"colour": "red"}))
            .unwrap_err();
        let fields: Vec<&str> = problems.iter().map(|(f, _)| f.as_str()).collect();
        assert!(fields.contains(&"/colour"), "{problems:?}");
        assert!(fields.contains(&"/name"), "{problems:?}");
    }

    #[test]
    fn scalars_take_the_schemas_types() {
        let schema = json!({"type": "object", "properties": {
            "name": {"type": "string"}, "hours": {"type": "number"}, "count": {"type": "integer"},
            "billable": {"type": "boolean"}, "tags": {"type": "array", "items": {"type": "string"}},
            "query": {"type": "object", "additionalProperties": {"type": "string"}}}});
        let mut value = json!({"name": 42, "hours": "1.5", "count": "7", "billable": "true",
        "tags": [1, "a"], "query": {"seq": 5, "on": false}, "other": 3,
        });
        coerce(&schema, &mut value);
        assert_eq!(
            value,
            json!({"name": "42", "hours": 1.5, "count": 7, "billable": true, "tags": ["1", "a"],
                   "query": {"seq": "5", "on": "false"}, "other": 3})
        );
        let mut wrong = json!({"count": "seven"});
        coerce(&schema, &mut wrong);
        assert_eq!(
            wrong,
            json!({"count": "seven"}),
            "left for the schema to refuse"
        );
    }

    #[test]
    fn the_built_in_manifests_are_valid() {
        let manifests = Manifests::built_in().unwrap_or_else(|p| {
            panic!(
                "{}",
                p.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("\n")
            )
        });
        for key in [
            "create_customer",
            "update_customer",
            "create_project",
            "update_project",
            "create_task",
            "update_task",
            "create_subtask",
            "update_subtask",
            "create_time_entry",
            "update_time_entry",
            "find_customer",
            "find_project",
            "find_task",
            "find_subtask",
            "find_org_user",
            "create_invoice",
            "update_invoice",
            "issue_invoice",
            "start_timer",
            "stop_timer",
            "http_request",
        ] {
            assert!(manifests.actions.contains_key(key), "{key}");
        }
        for key in [
            "new_customer",
            "updated_customer",
            "new_project",
            "new_task",
            "new_subtask",
            "new_time_entry",
            "updated_time_entry",
            "invoice_issued",
            "timesheet_approved",
        ] {
            assert!(manifests.triggers.contains_key(key), "{key}");
        }
    }

    #[test]
    fn every_bad_field_is_reported_with_file_and_path() {
        let bad_action = "key: make_thing\nkind: explode\nnoun: Thing\nlabel: Make\ndescription: x\n\
            input: {type: object, properties: {n: {type: nonsense}}}\n\
            request: {method: POST, path: \"/things/{{input.n\", body: {n: \"{{input.n}}\"}}\n\
            output: {select: item}\nsample: {}\n";
        let problems =
            Manifests::parse([("actions/make_thing.yaml".to_owned(), bad_action.to_owned())])
                .unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["/kind", "/input", "/request/path"],
            "{problems:?}"
        );
        let fixed = bad_action.replace("kind: explode", "kind: create");
        let problems =
            Manifests::parse([("actions/make_thing.yaml".to_owned(), fixed)]).unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["/input", "/request/path"], "{problems:?}");
        assert!(problems.iter().all(|p| p.file == "actions/make_thing.yaml"));

        let wrong_name = "key: other\nnoun: X\nlabel: X\ndescription: x\nevent: x.created\nlist: /x\nupdated: false\nsample: {id: x_1}\n";
        let problems =
            Manifests::parse([("triggers/new_x.yaml".to_owned(), wrong_name.to_owned())])
                .unwrap_err();
        assert_eq!(problems[0].path, "/key");
        let problems = Manifests::parse([("triggers/new_x.yaml".to_owned(), "key: [".to_owned())])
            .unwrap_err();
        assert!(problems[0].message.contains("YAML"));
    }
}
