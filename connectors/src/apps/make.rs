//! The Make custom app (`timix export make --out DIR`): a local project of the Make Apps Editor
//! for VS Code, laid out as its "local development for apps" expects, in Make's JSON with IML
//! expressions:
//!
//! - `makecomapp.json`: the project: every component with its metadata and the paths of its code
//!   files, and the origin (the app in Make it deploys to), which the user fills in;
//! - `general/base.iml.json` (base URL, error types by status), `README.md`, `modules/groups.json`;
//! - `connections/timix/`: server URL and API key, tested against `/me`;
//! - `modules/<name>/`: an action per create/update/request manifest, a search per search
//!   manifest, a polling trigger (`watch…`, with "choose where to start" and a limit) and an
//!   instant trigger (`…Instant`) per trigger manifest;
//! - `webhooks/<name>/`: the instant triggers' webhooks, attached and detached on `/hooks`;
//! - `rpcs/<name>/`: the dropdown lists.
//!
//! A component's files are `<kind>s/<id-in-kebab-case>/<id-in-kebab-case>.<code>.iml.json`, the
//! names the extension gives them. The API key header is set per module on this API's requests;
//! the HTTP module sends it only to the connection's own server.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};
use timix_engine::automation::manifest::{
    ActionKind, ActionManifest, Manifests, Mapping, Select, TriggerManifest,
};

use super::{ExportError, Field, camel, check, fields, lookups};

const API_BASE: &str = "/api/integration/v1";
/// The local id of the app's one connection.
const CONNECTION: &str = "timix";
/// The most records a polling trigger takes in one cycle: the API's largest page.
const MAX_LIMIT: u64 = 200;
/// The records offered by "choose where to start" (Make advises 300 at most).
const EPOCH_LIMIT: u64 = 100;
/// Where the extension looks for the Make API token of the origin, relative to the project.
pub const API_KEY_FILE: &str = ".secrets/apikey";
/// The value the user replaces in `makecomapp.json` before deploying.
pub const FILL_ME: &str = "-FILL-ME-";

/// The project file of the extension.
pub const PROJECT_FILE: &str = "makecomapp.json";

/// The error type Make gives a failed request to this API, by status: it retries rate limits and
/// connection errors, stops on data errors, and on a refused key (401) raises
/// `AccountValidationError`, Make's documented type for credentials to review in the
/// connection. A 403 is a role or plan the key lacks, which a new connection would not change: a
/// data error.
const ERROR_TYPE: &str = "{{if(statusCode == 401, 'AccountValidationError', if(statusCode == 429, 'RateLimitError', if(statusCode >= 500, 'ConnectionError', 'DataError')))}}";

/// The error type of the HTTP module's request to another server, whose 401 says nothing
/// about the connection.
const OTHER_SERVER_ERROR_TYPE: &str = "{{if(statusCode == 429, 'RateLimitError', if(statusCode >= 500, 'ConnectionError', 'DataError'))}}";

/// `{{input.x}}` → `{{parameters.x}}`; in paths each value is URL-encoded.
fn iml(template: &str, encode: bool) -> String {
    let mut out = String::new();
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let end = rest[start..].find("}}").map_or(rest.len(), |e| start + e);
        let field = rest[start + 2..end].trim().trim_start_matches("input.");
        if encode {
            out.push_str(&format!("{{{{encodeURL(parameters.{field})}}}}"));
        } else {
            out.push_str(&format!("{{{{parameters.{field}}}}}"));
        }
        rest = rest.get(end + 2..).unwrap_or("");
    }
    out.push_str(rest);
    out
}

fn mapping(mapping: &Mapping, exclude: &[String]) -> Value {
    match mapping {
        Mapping::Input(reference) => match reference.strip_prefix("input.") {
            Some(field) => json!(format!("{{{{parameters.{field}}}}}")),
            None if exclude.is_empty() => json!("{{parameters}}"),
            None => {
                let names: Vec<String> = exclude.iter().map(|e| format!("'{e}'")).collect();
                json!(format!("{{{{omit(parameters, {})}}}}", names.join(", ")))
            }
        },
        Mapping::Templates(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), json!(iml(v, false))))
                .collect(),
        ),
        Mapping::Tree(map) => tree(&Value::Object(map.clone())),
    }
}

/// A nested body with each template written in IML.
fn tree(value: &Value) -> Value {
    match value {
        Value::String(text) => json!(iml(text, false)),
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), tree(v))).collect())
        }
        Value::Array(items) => Value::Array(items.iter().map(tree).collect()),
        other => other.clone(),
    }
}

fn api_headers() -> Value {
    json!({"X-Api-Key": "{{connection.apiKey}}"})
}

fn parameter(field: &Field, rpcs: &BTreeMap<String, String>) -> Value {
    let mut out = json!({"name": field.key, "label": field.label, "required": field.required});
    if let Some(help) = &field.help {
        out["help"] = json!(help);
    }
    let kind = match field.kind {
        "integer" => "integer",
        "number" => "number",
        "boolean" => "boolean",
        "datetime" => "date",
        "object" | "json" => "any",
        "array" => "array",
        _ => "text",
    };
    out["type"] = json!(kind);
    if !field.choices.is_empty() {
        out["type"] = json!("select");
        out["options"] = json!(
            field
                .choices
                .iter()
                .map(|c| json!({"label": c, "value": c}))
                .collect::<Vec<_>>()
        );
    }
    if let Some(rpc) = field.lookup.as_ref().and_then(|l| rpcs.get(l)) {
        out["type"] = json!("select");
        out["options"] = json!(format!("rpc://{rpc}"));
    }
    out
}

/// The output fields, read off a sample record.
fn interface(sample: &Value) -> Value {
    let fields: Vec<Value> = sample
        .as_object()
        .into_iter()
        .flatten()
        .map(|(name, value)| {
            let kind = match value {
                Value::Bool(_) => "boolean",
                Value::Number(_) => "number",
                Value::Array(_) => "array",
                Value::Object(_) => "collection",
                Value::String(s) if s.ends_with('Z') && s.len() >= 20 => "date",
                _ => "text",
            };
            json!({"name": name, "label": name, "type": kind})
        })
        .collect();
    Value::Array(fields)
}

/// Whether the URL the HTTP module calls is absolute: anything else (`/me`, `customers`) is a
/// path Make puts after the base URL.
const ABSOLUTE_URL: &str = "indexOf(lower(parameters.url), 'http://') == 0 || indexOf(lower(parameters.url), 'https://') == 0";

/// Whether a URL the HTTP module calls is on the connection's server: a path, with or without
/// its leading `/`, or a URL under the connection's server URL.
fn on_connection_server() -> String {
    format!("!({ABSOLUTE_URL}) || indexOf(parameters.url, connection.baseUrl + '/') == 0")
}

fn action_communication(action: &ActionManifest) -> Value {
    let spec = &action.request;
    let mut out = Map::new();
    match (&spec.path, &spec.url) {
        (Some(path), _) => {
            let (path, query) = path.split_once('?').unwrap_or((path, ""));
            out.insert("url".into(), json!(iml(path, true)));
            out.insert("headers".into(), api_headers());
            let mut qs: Map<String, Value> = url::form_urlencoded::parse(query.as_bytes())
                .map(|(k, v)| (k.into_owned(), json!(v)))
                .collect();
            if let Some(Value::Object(more)) = spec.query.as_ref().map(|q| mapping(q, &[])) {
                qs.extend(more);
            }
            if !qs.is_empty() {
                out.insert("qs".into(), Value::Object(qs));
            }
        }
        (None, Some(url)) => {
            out.insert("url".into(), json!(iml(url, false)));
            if let Some(query) = &spec.query {
                out.insert("qs".into(), mapping(query, &[]));
            }
            if let Some(headers) = &spec.headers {
                out.insert("headers".into(), mapping(headers, &[]));
            }
        }
        (None, None) => {}
    }
    out.insert("method".into(), json!(iml(&spec.method, false)));
    if let Some(body) = &spec.body {
        out.insert("body".into(), mapping(body, &spec.exclude));
        out.insert("type".into(), json!("json"));
    }
    let response = match action.output.select {
        Select::Item if spec.url.is_some() => {
            json!({"output": {"status": "{{statusCode}}", "body": "{{body}}"}})
        }
        Select::Item => json!({"output": "{{body}}"}),
        Select::First => json!({"iterate": "{{body.items}}", "output": "{{item}}", "limit": 1}),
        Select::Items => json!({"iterate": "{{body.items}}", "output": "{{item}}"}),
    };
    out.insert("response".into(), response);
    if spec.url.is_some() {
        return any_url(out);
    }
    Value::Object(out)
}

/// A request to any URL as two requests of which one runs: to the connection's server with its
/// API key (and none of the headers given, which Make cannot merge with it), or elsewhere with
/// the headers given and no key.
fn any_url(request: Map<String, Value>) -> Value {
    let on_server = on_connection_server();
    let mut own = request.clone();
    own.insert("condition".into(), json!(format!("{{{{{on_server}}}}}")));
    // A path given without its leading `/` (`customers`) still goes under the base URL's path.
    own.insert(
        "url".into(),
        json!(format!(
            "{{{{if(!({ABSOLUTE_URL}) && indexOf(parameters.url, '/') != 0, '/' + parameters.url, parameters.url)}}}}"
        )),
    );
    own.insert("headers".into(), api_headers());
    let mut elsewhere = request;
    elsewhere.insert("condition".into(), json!(format!("{{{{!({on_server})}}}}")));
    if let Some(response) = elsewhere.get_mut("response").and_then(Value::as_object_mut) {
        response.insert(
            "error".into(),
            json!({"message": "[{{statusCode}}] {{body.error.message}}", "type": OTHER_SERVER_ERROR_TYPE}),
        );
    }
    json!([own, elsewhere])
}

fn list_query(list: &str, sort: &str) -> (String, Map<String, Value>) {
    let (path, query) = list.split_once('?').unwrap_or((list, ""));
    let mut qs: Map<String, Value> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), json!(v)))
        .collect();
    qs.insert("sort".into(), json!(sort));
    (path.to_owned(), qs)
}

/// The date a polling trigger orders its records by: changes, and records entering a state (a
/// filtered list), by when they changed; new records by when they were created.
fn trigger_date(trigger: &TriggerManifest) -> &'static str {
    if trigger.updated || trigger.list.contains('?') {
        "updatedAt"
    } else {
        "createdAt"
    }
}

fn polling_communication(trigger: &TriggerManifest) -> Value {
    let field = trigger_date(trigger);
    let (path, mut qs) = list_query(&trigger.list, &format!("-{field}"));
    qs.insert("pageSize".into(), json!("{{parameters.limit}}"));
    json!({
        "url": path,
        "method": "GET",
        "headers": api_headers(),
        "qs": qs,
        "response": {
            "limit": "{{parameters.limit}}",
            "iterate": "{{body.items}}",
            "output": "{{item}}",
            "trigger": {"id": "{{item.id}}", "date": format!("{{{{item.{field}}}}}"), "type": "date", "order": "desc"}
        }
    })
}

/// "Choose where to start": the latest records, by the field that names them best, with their
/// dates. Make merges this over the trigger's communication.
fn epoch(trigger: &TriggerManifest) -> Value {
    let sample = trigger.sample.as_object();
    let label = ["name", "number", "email", "date", "periodStart"]
        .into_iter()
        .find(|f| sample.is_some_and(|s| s.get(*f).is_some_and(Value::is_string)))
        .unwrap_or("id");
    json!({
        "qs": {"pageSize": EPOCH_LIMIT.to_string()},
        "response": {
            "limit": EPOCH_LIMIT,
            "output": {
                "label": format!("{{{{item.{label}}}}}"),
                "date": format!("{{{{item.{}}}}}", trigger_date(trigger))
            }
        }
    })
}

/// The limit Make asks for on every polling trigger and passes as `parameters.limit`.
fn limit_parameter() -> Value {
    json!([{
        "name": "limit",
        "type": "uinteger",
        "label": "Limit",
        "help": format!("The most records to work with in one execution cycle (at most {MAX_LIMIT})."),
        "default": 10,
        "required": true,
        "validate": {"min": 1, "max": MAX_LIMIT}
    }])
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

/// `watchNewCustomer` → `watch-new-customer`: how the extension names a component's folder and
/// files.
pub fn kebab(id: &str) -> String {
    let mut out = String::new();
    let mut after_lower = false;
    for c in id.chars() {
        if c.is_ascii_uppercase() && after_lower {
            out.push('-');
        }
        after_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// The part of a code file's name that says which code it is.
fn code_name(code: &str) -> &str {
    match code {
        "staticParams" => "static-params",
        "mappableParams" => "mappable-params",
        "requiredScope" => "required-scope",
        other => other,
    }
}

/// The project being written: its files and, by component kind, its components' metadata.
struct Project {
    files: BTreeMap<String, String>,
    components: Map<String, Value>,
}

impl Project {
    /// Adds a component (`kind`: `connection`, `webhook`, `module`, `rpc`) and its code files.
    fn add(&mut self, kind: &str, id: &str, mut metadata: Value, codes: Vec<(&str, Value)>) {
        let name = kebab(id);
        for (code, content) in codes {
            let path = format!("{kind}s/{name}/{name}.{}.iml.json", code_name(code));
            self.files.insert(path.clone(), pretty(&content));
            metadata["codeFiles"][code] = json!(path);
        }
        if let Some(of_kind) = self.components.get_mut(kind).and_then(Value::as_object_mut) {
            of_kind.insert(id.to_owned(), metadata);
        }
    }
}

/// The app's files, by path: the base, the connection, an RPC per dropdown, a module per action,
/// a polling module, a webhook and an instant module per trigger, the groups, and the
/// extension's `makecomapp.json`.
pub fn files(
    manifests: &Manifests,
    version: &str,
) -> Result<BTreeMap<String, String>, ExportError> {
    check(manifests)?;
    let mut project = Project::new();
    project.add_base();
    project.add_connection();
    let rpcs = project.add_rpcs(manifests);
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for action in manifests.actions.values() {
        let (group, name) = project.add_action(action, &rpcs);
        groups.entry(group).or_default().push(name);
    }
    for trigger in manifests.triggers.values() {
        let modules = project.add_trigger(trigger);
        groups.entry("Triggers").or_default().extend(modules);
    }
    project.add_groups(groups);
    project.files.insert("README.md".into(), readme(version));
    // The extension keeps the Make API token in `.secrets/`: never in git.
    project
        .files
        .insert(".gitignore".into(), ".secrets/\n".into());
    project.add_makecomapp();
    Ok(project.files)
}

impl Project {
    /// No files yet, and no component of any kind the extension's schema allows.
    fn new() -> Self {
        Project {
            files: BTreeMap::new(),
            components: ["connection", "webhook", "module", "rpc", "function"]
                .into_iter()
                .map(|k| (k.to_owned(), json!({})))
                .collect(),
        }
    }

    /// The base every module's request starts from: the API's URL and its errors.
    fn add_base(&mut self) {
        self.files.insert(
            "general/base.iml.json".into(),
            pretty(&json!({
                "baseUrl": format!("{{{{connection.baseUrl}}}}{API_BASE}"),
                "response": {"error": {"message": "[{{statusCode}}] {{body.error.message}}", "type": ERROR_TYPE}},
                "log": {"sanitize": ["request.headers.x-api-key"]}
            })),
        );
    }

    /// The connection: a server URL and an API key, tested against `/me`. The extension's
    /// "common" code (secrets shared by the app) is left out, as it advises.
    fn add_connection(&mut self) {
        self.add(
            "connection",
            CONNECTION,
            json!({"label": "timix", "connectionType": "basic", "codeFiles": {"common": null}}),
            vec![
                (
                    "communication",
                    json!({
                        "url": format!("{{{{parameters.baseUrl}}}}{API_BASE}/me"),
                        "method": "GET",
                        "headers": {"X-Api-Key": "{{parameters.apiKey}}"},
                        "response": {
                            "metadata": {"type": "text", "value": "{{body.organization.name}} ({{body.user.email}})"},
                            "error": {"message": "[{{statusCode}}] {{body.error.message}}", "type": ERROR_TYPE}
                        },
                        "log": {"sanitize": ["request.headers.x-api-key"]}
                    }),
                ),
                (
                    "params",
                    json!([
                        {"name": "baseUrl", "type": "url", "label": "Server URL", "required": true,
                         "help": "Where your timix server is reached, for example https://timix.example.com."},
                        {"name": "apiKey", "type": "password", "label": "API key", "required": true,
                         "help": "A key created in timix; it starts with bbl_."}
                    ]),
                ),
            ],
        );
    }

    /// An RPC per dropdown; the RPC's name by lookup key.
    fn add_rpcs(&mut self, manifests: &Manifests) -> BTreeMap<String, String> {
        let mut rpcs = BTreeMap::new();
        for lookup in lookups(manifests) {
            let name = camel(&format!("list_{}", lookup.key.replace('-', "_")));
            self.add(
                "rpc",
                &name,
                json!({"label": format!("List {}", lookup.noun), "connection": CONNECTION}),
                vec![
                    (
                        "communication",
                        json!({
                            "url": lookup.list,
                            "method": "GET",
                            "headers": api_headers(),
                            "qs": {"sort": "name", "pageSize": "100"},
                            "response": {"iterate": "{{body.items}}", "output": {"label": "{{item.name}}", "value": "{{item.id}}"}}
                        }),
                    ),
                    ("params", json!([])),
                ],
            );
            rpcs.insert(lookup.key.clone(), name);
        }
        rpcs
    }

    /// The module of an action; its group (`Actions` or `Searches`) and name.
    fn add_action(
        &mut self,
        action: &ActionManifest,
        rpcs: &BTreeMap<String, String>,
    ) -> (&'static str, String) {
        let name = camel(&action.key);
        let (kind, crud) = match action.kind {
            ActionKind::Search => ("search", None),
            ActionKind::Create => ("action", Some("create")),
            ActionKind::Update => ("action", Some("update")),
            ActionKind::Request => ("action", None),
        };
        let parameters: Vec<Value> = fields(&action.input)
            .iter()
            .map(|f| parameter(f, rpcs))
            .collect();
        let mut metadata = json!({"label": action.label, "description": action.description,
                                  "moduleType": kind, "connection": CONNECTION});
        if let Some(crud) = crud {
            metadata["actionCrud"] = json!(crud);
        }
        self.add(
            "module",
            &name,
            metadata,
            vec![
                ("communication", action_communication(action)),
                ("staticParams", json!([])),
                ("mappableParams", Value::Array(parameters)),
                ("interface", interface(&action.sample)),
                ("samples", action.sample.clone()),
                ("scope", json!([])),
            ],
        );
        let group = if kind == "search" {
            "Searches"
        } else {
            "Actions"
        };
        (group, name)
    }

    /// A trigger's polling module, its webhook on `/hooks` and the instant module on that
    /// webhook; the two modules' names.
    fn add_trigger(&mut self, trigger: &TriggerManifest) -> [String; 2] {
        let watch = camel(&format!("watch_{}", trigger.key));
        self.add(
            "module",
            &watch,
            json!({"label": format!("Watch {}", trigger.label), "description": trigger.description,
                   "moduleType": "trigger", "connection": CONNECTION}),
            vec![
                ("communication", polling_communication(trigger)),
                ("epoch", epoch(trigger)),
                ("staticParams", limit_parameter()),
                ("mappableParams", json!([])),
                ("interface", interface(&trigger.sample)),
                ("samples", trigger.sample.clone()),
                ("scope", json!([])),
            ],
        );
        let hook = camel(&format!("{}_hook", trigger.key));
        self.add(
            "webhook",
            &hook,
            json!({"label": trigger.label, "webhookType": "web", "connection": CONNECTION}),
            webhook_codes(trigger),
        );
        let instant = camel(&format!("{}_instant", trigger.key));
        self.add(
            "module",
            &instant,
            json!({"label": format!("{} (Instant)", trigger.label), "description": trigger.description,
                   "moduleType": "instant_trigger", "connection": CONNECTION, "webhook": hook}),
            vec![
                // The webhook's communication gives the record; the module passes it on.
                ("communication", json!({})),
                ("staticParams", json!([])),
                ("mappableParams", json!([])),
                ("interface", interface(&trigger.sample)),
                ("samples", trigger.sample.clone()),
            ],
        );
        [watch, instant]
    }

    /// `modules/groups.json`: triggers, actions and searches, in that order.
    fn add_groups(&mut self, mut groups: BTreeMap<&str, Vec<String>>) {
        let groups: Vec<Value> = ["Triggers", "Actions", "Searches"]
            .into_iter()
            .filter_map(|label| {
                groups
                    .remove(label)
                    .map(|modules| json!({"label": label, "modules": modules}))
            })
            .collect();
        self.files
            .insert("modules/groups.json".into(), pretty(&json!(groups)));
    }

    /// The extension's project file: the general code files, the components, and an origin
    /// for the user to point at their app in Make.
    fn add_makecomapp(&mut self) {
        let makecomapp = json!({
            "fileVersion": 1,
            "generalCodeFiles": {
                "base": "general/base.iml.json",
                "common": null,
                "readme": "README.md",
                "groups": "modules/groups.json"
            },
            "components": self.components,
            "origins": [{
                "label": "timix in Make",
                "baseUrl": "https://eu1.make.com/api",
                "appId": FILL_ME,
                "appVersion": 1,
                "apikeyFile": API_KEY_FILE
            }]
        });
        self.files.insert(PROJECT_FILE.into(), pretty(&makecomapp));
    }
}

/// A trigger's webhook: it gives the delivered record, and attaches and detaches a REST hook.
fn webhook_codes(trigger: &TriggerManifest) -> Vec<(&'static str, Value)> {
    vec![
        ("communication", json!({"output": "{{body.data}}"})),
        ("params", json!([])),
        (
            "attach",
            json!({
                "url": "/hooks",
                "method": "POST",
                "headers": api_headers(),
                "body": {"targetUrl": "{{webhook.url}}", "event": trigger.event},
                "type": "json",
                "response": {"data": {"externalHookId": "{{body.id}}"}}
            }),
        ),
        (
            "detach",
            json!({
                "url": "/hooks/{{encodeURL(webhook.externalHookId)}}",
                "method": "DELETE",
                "headers": api_headers()
            }),
        ),
        ("update", json!({})),
        ("requiredScope", json!([])),
    ]
}

fn readme(version: &str) -> String {
    format!(
        "# timix\n\n\
         Time tracking and billing: customers, projects, tasks, time, invoices.\n\n\
         Generated by `timix export make` ({version}) from the timix manifests: export again rather \
         than edit. Connect with your timix **Server URL** (for example \
         `https://timix.example.com`) and an **API key** created in timix.\n"
    )
}

/// Writes the project into `out`. Exported again into the same folder, it keeps the origins of
/// the `makecomapp.json` there: the app in Make it deploys to, and which of its components each
/// local one is.
pub fn write(manifests: &Manifests, version: &str, out: &Path) -> Result<(), ExportError> {
    let mut files = files(manifests, version)?;
    let previous = std::fs::read_to_string(out.join(PROJECT_FILE))
        .ok()
        .and_then(|text| serde_json::from_str::<Value>(&text).ok());
    if let Some(origins) = previous
        .map(|p| p["origins"].clone())
        .filter(Value::is_array)
    {
        let mut project: Value = serde_json::from_str(&files[PROJECT_FILE])
            .map_err(|e| ExportError::Manifest(e.to_string()))?;
        project["origins"] = origins;
        files.insert(PROJECT_FILE.into(), pretty(&project));
    }
    super::write_files(out, &files)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_become_iml() {
        assert_eq!(
            iml("/customers/{{input.id}}", true),
            "/customers/{{encodeURL(parameters.id)}}"
        );
        assert_eq!(iml("{{input.method}}", false), "{{parameters.method}}");
        assert_eq!(
            mapping(&Mapping::Input("input".into()), &["id".into()]),
            json!("{{omit(parameters, 'id')}}")
        );
    }

    #[test]
    fn names_are_the_extensions() {
        assert_eq!(kebab("watchNewCustomer"), "watch-new-customer");
        assert_eq!(kebab("listOrgUsers"), "list-org-users");
        assert_eq!(kebab("timix"), "timix");
    }
}
