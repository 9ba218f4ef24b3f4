//! Connectors as data: one YAML document per system (its base URL, auth, connection test,
//! actions, poll and webhook triggers, lookups for dropdowns, pagination and rate-limit hints),
//! checked against the meta-schema and for what a schema cannot say, every problem with its
//! path. Built in (timix and the catalogue of `manifests/connectors/`), from the operator's
//! `--connectors-dir`, or an organization's own (installed through the API). A version is
//! identified by its document: flows name the version they were saved with.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::automation::manifest::{
    ActionManifest, ManifestProblem, Manifests, check_action, connector_problems,
    request_template_problems, template_problems,
};
use crate::automation::template;

mod registry;
pub mod store;
pub mod yaml;

pub use registry::Registry;

/// The built-in connector: this API. Its actions keep their keys without a prefix.
pub const TIMIX: &str = "timix";

/// Where a connector comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// timix itself.
    Builtin,
    /// `manifests/connectors/` of this build.
    Catalogue,
    /// The operator's `--connectors-dir`.
    Instance,
    /// Installed by the organization through the API.
    Organization,
}

/// How a connection to the system signs its requests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    None,
    #[serde(rename_all = "camelCase")]
    ApiKey {
        header: Option<String>,
        query: Option<String>,
        prefix: Option<String>,
    },
    Bearer,
    Basic,
    #[serde(rename_all = "camelCase")]
    Oauth2 {
        authorize_url: String,
        token_url: String,
        #[serde(default)]
        scopes: Vec<String>,
        #[serde(default)]
        authorize_params: BTreeMap<String, String>,
    },
    #[serde(rename_all = "camelCase")]
    Oauth2ClientCredentials {
        token_url: String,
        #[serde(default)]
        scopes: Vec<String>,
    },
}

impl Auth {
    /// The connection type it makes (`api_key`, `oauth2`…).
    pub fn connection_type(&self) -> &'static str {
        match self {
            Auth::None => "none",
            Auth::ApiKey { .. } => "api_key",
            Auth::Bearer => "bearer",
            Auth::Basic => "basic",
            Auth::Oauth2 { .. } => "oauth2",
            Auth::Oauth2ClientCredentials { .. } => "oauth2_client_credentials",
        }
    }
}

/// A request a connector describes (a test, a lookup, a subscription): templates throughout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HttpRequest {
    pub method: String,
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<Value>,
    #[serde(default)]
    pub encoding: crate::automation::manifest::Encoding,
    /// A subscription: the dotted path of its id in the answer.
    pub id: Option<String>,
}

/// How a list answer leads to the next page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "style", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// A token in the answer (`field`), sent back as `param` (or to templates as `next`);
    /// `more`, when given, is the answer's flag saying whether more pages follow.
    Cursor {
        param: Option<String>,
        field: String,
        more: Option<String>,
    },
    /// Page numbers from `start` (1 by default), until a page is empty.
    Page { param: String, start: Option<u64> },
    /// The number of items read so far, until a page is empty.
    Offset { param: String },
    /// The `Link` header's `rel="next"` URL (RFC 8288).
    Link,
}

/// Where the newest item read is remembered: the highest `field` seen, sent as `param` (or to
/// templates as `since`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Since {
    pub param: Option<String>,
    pub field: String,
}

/// A list a poll trigger reads: the request (templates over `input`, `since`, `next`) and how
/// its items are found, told apart and ordered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PollSource {
    #[serde(default = "get")]
    pub method: String,
    /// Below the connection's base URL; or an absolute URL on it (HTTP sources of flows).
    pub path: String,
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    pub body: Option<Value>,
    #[serde(default = "items")]
    pub items: String,
    /// The dotted path of an item's id; `$index`: its position in the list, from 1.
    pub id: String,
    pub version: Option<String>,
    pub since: Option<Since>,
    pub pagination: Option<Pagination>,
}

fn get() -> String {
    "GET".into()
}

fn items() -> String {
    "items".into()
}

/// An item's position as its id (rows of a sheet have no other).
pub const INDEX_ID: &str = "$index";

/// What starts a flow from the system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum TriggerHow {
    Poll {
        source: PollSource,
    },
    Webhook {
        subscribe: HttpRequest,
        unsubscribe: HttpRequest,
        signature: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorTrigger {
    pub key: String,
    pub noun: String,
    pub label: String,
    pub description: String,
    /// A JSON Schema of the trigger's own fields (the channel to watch).
    pub input: Option<Value>,
    pub sample: Value,
    #[serde(flatten)]
    pub how: TriggerHow,
}

/// A dropdown's source: a remote list read through a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Lookup {
    pub label: String,
    /// Templates over `q` (the search term) and `input` (the caller's other parameters).
    pub request: HttpRequest,
    #[serde(default = "items")]
    pub items: String,
    pub value: String,
    pub text: String,
    pub search: Option<Search>,
    pub pagination: Option<Pagination>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Search {
    pub param: String,
}

/// A 2xx answer that reports a failure, and where error answers keep their message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Errors {
    pub fail_when: Option<FailWhen>,
    pub message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FailWhen {
    pub field: String,
    pub equals: Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RateLimit {
    pub requests: u32,
    pub per_seconds: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestRequest {
    pub method: String,
    pub path: String,
}

/// A connector document, as checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Connector {
    pub key: String,
    pub label: String,
    pub version: String,
    pub description: String,
    pub docs: Option<String>,
    /// A template over `settings`.
    pub base_url: String,
    /// A JSON Schema of a connection's settings.
    pub settings: Option<Value>,
    pub auth: Auth,
    pub test: TestRequest,
    pub errors: Option<Errors>,
    pub rate_limit: Option<RateLimit>,
    #[serde(default)]
    pub actions: Vec<ActionManifest>,
    #[serde(default)]
    pub triggers: Vec<ConnectorTrigger>,
    #[serde(default)]
    pub lookups: BTreeMap<String, Lookup>,
}

/// A connector ready to use: its document, its actions as manifests under
/// `<connector>.<action>` with their schemas compiled, and the version it is.
pub struct Loaded {
    pub connector: Connector,
    /// The document as given (JSON).
    pub document: Value,
    /// `cnv_…`, derived from the document and its owner.
    pub version_id: String,
    pub source: Source,
    /// The organization that installed it (for [`Source::Organization`]).
    pub org_id: Option<String>,
    pub manifests: Manifests,
    /// Each trigger's input schema, compiled.
    trigger_inputs: BTreeMap<String, jsonschema::Validator>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("key", &self.connector.key)
            .field("version", &self.connector.version)
            .field("version_id", &self.version_id)
            .finish()
    }
}

impl Loaded {
    pub fn trigger(&self, key: &str) -> Option<&ConnectorTrigger> {
        self.connector.triggers.iter().find(|t| t.key == key)
    }

    /// Problems of a trigger's input, as (JSON pointer, message).
    pub fn check_trigger_input(&self, key: &str, input: &Value) -> Vec<(String, String)> {
        match self.trigger_inputs.get(key) {
            Some(validator) => validator
                .iter_errors(input)
                .map(|e| (e.instance_path().to_string(), e.to_string()))
                .collect(),
            None => Vec::new(),
        }
    }
}

/// The version id of a document owned by `owner` (an organization id, or none).
pub fn version_id(owner: Option<&str>, document: &Value) -> String {
    let mut hash = Sha256::new();
    hash.update(owner.unwrap_or("").as_bytes());
    hash.update(b"\n");
    hash.update(document.to_string().as_bytes());
    let hex: String = hash
        .finalize()
        .iter()
        .take(13)
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("cnv_{hex}")
}

/// Reads a connector document (YAML, or JSON, which YAML reads too) and checks it whole.
pub fn parse(
    file: &str,
    text: &str,
    source: Source,
    org_id: Option<&str>,
) -> Result<Loaded, Vec<ManifestProblem>> {
    let problem = |path: &str, message: String| ManifestProblem {
        file: file.to_owned(),
        path: path.to_owned(),
        message,
    };
    let document = yaml::read(text)
        .map_err(|e| vec![problem("", format!("not a YAML or JSON document: {e}"))])?;
    load(document, source, org_id)
        .map_err(|found| found.into_iter().map(|(p, m)| problem(&p, m)).collect())
}

/// Checks a document already read; every problem as (JSON pointer, message).
pub fn load(
    document: Value,
    source: Source,
    org_id: Option<&str>,
) -> Result<Loaded, Vec<(String, String)>> {
    let mut problems = connector_problems(&document);
    problems.extend(semantic_problems(&document));
    if !problems.is_empty() {
        problems.sort();
        problems.dedup();
        return Err(problems);
    }
    build(document, source, org_id)
}

/// A document that was checked when it came in (an organization's stored versions, the
/// catalogue, which its tests check), made ready without the meta-schema: its compiled form is
/// large, and only documents coming in need it.
pub fn load_checked(
    document: Value,
    source: Source,
    org_id: Option<&str>,
) -> Result<Loaded, Vec<(String, String)>> {
    build(document, source, org_id)
}

/// A document that fits the meta-schema, read into its types and checked for the rest.
fn build(
    document: Value,
    source: Source,
    org_id: Option<&str>,
) -> Result<Loaded, Vec<(String, String)>> {
    let mut problems = Vec::new();
    let connector: Connector = serde_json::from_value(document.clone())
        .map_err(|e| vec![(String::new(), e.to_string())])?;
    for (i, action) in connector.actions.iter().enumerate() {
        problems.extend(
            check_action(action)
                .into_iter()
                .map(|(p, m)| (format!("/actions/{i}{p}"), m)),
        );
    }
    problems.extend(lookup_references(&connector));
    let mut trigger_inputs = BTreeMap::new();
    for (i, trigger) in connector.triggers.iter().enumerate() {
        if let Some(schema) = &trigger.input {
            match jsonschema::validator_for(schema) {
                Ok(v) => {
                    trigger_inputs.insert(trigger.key.clone(), v);
                }
                Err(e) => problems.push((
                    format!("/triggers/{i}/input"),
                    format!("not a valid JSON Schema: {e}"),
                )),
            }
        }
    }
    if let Some(schema) = &connector.settings
        && let Err(e) = jsonschema::validator_for(schema)
    {
        problems.push(("/settings".into(), format!("not a valid JSON Schema: {e}")));
    }
    let manifests = match Manifests::qualified(&connector.key, connector.actions.clone()) {
        Ok(m) => m,
        Err(more) => {
            problems.extend(more);
            Manifests::default()
        }
    };
    if !problems.is_empty() {
        return Err(problems);
    }
    let version_id = version_id(org_id, &document);
    Ok(Loaded {
        connector,
        document,
        version_id,
        source,
        org_id: org_id.map(str::to_owned),
        manifests,
        trigger_inputs,
    })
}

/// What the meta-schema cannot say, on the raw document: templates that do not parse, keys
/// used twice, actions that call a URL instead of a path below the base URL.
fn semantic_problems(document: &Value) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    for (field, at) in [
        (&document["baseUrl"], "/baseUrl"),
        (&document["test"]["path"], "/test/path"),
    ] {
        if let Some(text) = field.as_str()
            && let Err(e) = template::check(text)
        {
            problems.push((at.into(), e.0));
        }
    }
    let mut keys = std::collections::BTreeSet::new();
    for (list, kind) in [("actions", "action"), ("triggers", "trigger")] {
        for (i, item) in document[list].as_array().into_iter().flatten().enumerate() {
            let at = format!("/{list}/{i}");
            if let Some(key) = item["key"].as_str()
                && !keys.insert(key.to_owned())
            {
                problems.push((
                    format!("{at}/key"),
                    format!("{key} is used twice in this connector"),
                ));
            }
            if kind == "action" {
                if item["request"]["url"].is_string() {
                    problems.push((
                        format!("{at}/request/url"),
                        "a connector's action calls a path below its baseUrl: use request.path"
                            .into(),
                    ));
                }
                if item["input"].is_object()
                    && let Err(e) = jsonschema::validator_for(&item["input"])
                {
                    problems.push((
                        format!("{at}/input"),
                        format!("not a valid JSON Schema: {e}"),
                    ));
                }
                problems.extend(
                    request_template_problems(&item["request"])
                        .into_iter()
                        .map(|(p, m)| (format!("{at}{p}"), m)),
                );
            } else {
                for part in ["source", "subscribe", "unsubscribe"] {
                    if item[part].is_object() {
                        for field in ["path", "query", "headers", "body"] {
                            template_problems(
                                &item[part][field],
                                &format!("{at}/{part}/{field}"),
                                &mut problems,
                            );
                        }
                    }
                }
            }
        }
    }
    for (name, lookup) in document["lookups"].as_object().into_iter().flatten() {
        for field in ["path", "query", "headers", "body"] {
            template_problems(
                &lookup["request"][field],
                &format!("/lookups/{name}/request/{field}"),
                &mut problems,
            );
        }
    }
    problems
}

/// `x-lookup` names in action and trigger inputs that name no lookup of the connector.
fn lookup_references(connector: &Connector) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let mut check = |schema: &Value, at: String| {
        for (field, property) in schema["properties"].as_object().into_iter().flatten() {
            if let Some(name) = property["x-lookup"].as_str()
                && !connector.lookups.contains_key(name)
            {
                problems.push((
                    format!("{at}/properties/{field}/x-lookup"),
                    format!("{name} is not a lookup of this connector"),
                ));
            }
        }
    };
    for (i, action) in connector.actions.iter().enumerate() {
        check(&action.input, format!("/actions/{i}/input"));
    }
    for (i, trigger) in connector.triggers.iter().enumerate() {
        if let Some(input) = &trigger.input {
            check(input, format!("/triggers/{i}/input"));
        }
    }
    problems
}

/// The value at a dotted path (`data.items`, `data.-1.id`; empty: the value itself). Numbers
/// index lists, `-1` is the last item.
pub fn dig<'a>(value: &'a Value, path: &str) -> &'a Value {
    if path.is_empty() {
        return value;
    }
    path.split('.').fold(value, |v, key| match v {
        Value::Array(list) => {
            let index = match key {
                "-1" => list.len().checked_sub(1),
                _ => key.parse::<usize>().ok(),
            };
            index.and_then(|i| list.get(i)).unwrap_or(&Value::Null)
        }
        _ => v.get(key).unwrap_or(&Value::Null),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const GOOD: &str = r#"
key: notes
label: Notes
version: 1.0.0
description: A notes service.
baseUrl: "https://{{settings.account}}.notes.example/api"
settings: {type: object, required: [account], properties: {account: {type: string}}}
auth: {type: api_key, header: X-Key}
test: {method: GET, path: /me}
actions:
  - key: add_note
    kind: create
    noun: Note
    label: Add a note
    description: Adds a note.
    input: {type: object, required: [text], properties: {text: {type: string}, folder: {type: string, x-lookup: folders}}}
    request: {method: POST, path: /notes, body: {note: {text: "{{input.text}}", folder: "{{input.folder}}"}}}
    output: {select: item, field: note}
    sample: {id: n1, text: Hello}
triggers:
  - key: new_note
    kind: poll
    noun: Note
    label: New note
    description: Each new note.
    source: {path: /notes, items: data, id: id, pagination: {style: cursor, param: after, field: next}}
    sample: {id: n1}
lookups:
  folders: {label: Folders, request: {method: GET, path: /folders}, items: folders, value: id, text: name}
"#;

    #[test]
    fn a_connector_is_read_with_its_actions_qualified() {
        let loaded = parse("notes.yaml", GOOD, Source::Instance, None).unwrap();
        assert!(loaded.manifests.actions.contains_key("notes.add_note"));
        assert!(loaded.trigger("new_note").is_some());
        assert!(loaded.version_id.starts_with("cnv_"));
        let same = parse("other.yaml", GOOD, Source::Instance, None).unwrap();
        assert_eq!(
            loaded.version_id, same.version_id,
            "the document is the version"
        );
        let owned = parse("notes.yaml", GOOD, Source::Organization, Some("org_1")).unwrap();
        assert_ne!(loaded.version_id, owned.version_id);
    }

    #[test]
    fn every_problem_is_reported_with_its_path() {
        let bad = GOOD
            .replace("version: 1.0.0", "version: one")
            .replace("type: api_key, header: X-Key", "type: api_key")
            .replace(
                "method: POST, path: /notes",
                "method: POST, path: \"/notes/{{input.x\"",
            )
            .replace("x-lookup: folders", "x-lookup: drawers")
            .replace(
                "style: cursor, param: after",
                "style: sideways, param: after",
            );
        let problems = parse("notes.yaml", &bad, Source::Instance, None).unwrap_err();
        let paths: Vec<&str> = problems.iter().map(|p| p.path.as_str()).collect();
        for expected in [
            "/version",
            "/auth",
            "/actions/0/request/path",
            "/triggers/0/source/pagination/style",
        ] {
            assert!(paths.contains(&expected), "{expected} in {problems:#?}");
        }
        let lookup = GOOD.replace("x-lookup: folders", "x-lookup: drawers");
        let problems = parse("notes.yaml", &lookup, Source::Instance, None).unwrap_err();
        assert_eq!(
            problems[0].path,
            "/actions/0/input/properties/folder/x-lookup"
        );
        let timix = GOOD.replace("key: notes", "key: timix");
        assert!(parse("t.yaml", &timix, Source::Instance, None).is_err());
        assert!(parse("t.yaml", "key: [", Source::Instance, None).is_err());
    }

    #[test]
    fn dotted_paths_reach_into_lists_from_either_end() {
        let body = json!({"data": [{"id": "a"}, {"id": "b"}]});
        assert_eq!(dig(&body, "data.-1.id"), &json!("b"));
        assert_eq!(dig(&body, "data.0.id"), &json!("a"));
        assert!(dig(&json!({"data": []}), "data.-1.id").is_null());
    }
}
