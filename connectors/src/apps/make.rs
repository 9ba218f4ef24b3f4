//! The Make custom app (`timix export make --out DIR`), in Make's JSON with IML expressions, one
//! file per block of Make's app editor:
//!
//! - `app.json`: name, label, version, and every component;
//! - `base.iml.json`: base URL and error handling;
//! - `connections/timix/communication.iml.json`, `parameters.iml.json`: server URL and API key,
//!   tested against `/me`;
//! - `modules/<name>/communication.iml.json`, `mappable-parameters.iml.json`,
//!   `interface.iml.json`, `samples.iml.json`, `module.json`: an action per create/update/request
//!   manifest, a search per search manifest, a polling trigger (`watch…`) and an instant trigger
//!   (`…Instant`, with its webhook) per trigger manifest;
//! - `webhooks/<name>/communication.iml.json`, `attach.iml.json`, `detach.iml.json`: REST hooks on
//!   `/hooks`;
//! - `rpcs/<name>/communication.iml.json`: the dropdown lists.
//!
//! The API key header is set per module on this API's modules only, never on a request an
//! `HTTP Request` module sends elsewhere.

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Map, Value, json};
use timix_engine::automation::manifest::{
    ActionKind, ActionManifest, Manifests, Mapping, Select, TriggerManifest,
};

use super::{ExportError, Field, camel, check, fields, lookups};

const API_BASE: &str = "/api/integration/v1";

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
    Value::Object(out)
}

fn list_query(list: &str, sort: &str) -> (String, Value) {
    let (path, query) = list.split_once('?').unwrap_or((list, ""));
    let mut qs: Map<String, Value> = url::form_urlencoded::parse(query.as_bytes())
        .map(|(k, v)| (k.into_owned(), json!(v)))
        .collect();
    qs.insert("sort".into(), json!(sort));
    qs.insert("pageSize".into(), json!("100"));
    (path.to_owned(), Value::Object(qs))
}

fn polling_communication(trigger: &TriggerManifest) -> Value {
    // Changes, and records entering a state (a filtered list), by when they changed.
    let (field, sort) = if trigger.updated || trigger.list.contains('?') {
        ("updatedAt", "-updatedAt")
    } else {
        ("createdAt", "-createdAt")
    };
    let (path, qs) = list_query(&trigger.list, sort);
    json!({
        "url": path,
        "method": "GET",
        "headers": api_headers(),
        "qs": qs,
        "response": {
            "iterate": "{{body.items}}",
            "output": "{{item}}",
            "trigger": {"id": "{{item.id}}", "date": format!("{{{{item.{field}}}}}"), "type": "date", "order": "desc"}
        }
    })
}

fn module(files: &mut BTreeMap<String, String>, name: &str, meta: Value, blocks: &[(&str, Value)]) {
    let dir = format!("modules/{name}");
    files.insert(format!("{dir}/module.json"), pretty(&meta));
    for (block, value) in blocks {
        files.insert(format!("{dir}/{block}.iml.json"), pretty(value));
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_default() + "\n"
}

/// The app's files, by path.
pub fn files(
    manifests: &Manifests,
    version: &str,
) -> Result<BTreeMap<String, String>, ExportError> {
    check(manifests)?;
    let mut files = BTreeMap::new();
    files.insert(
        "base.iml.json".into(),
        pretty(&json!({
            "baseUrl": format!("{{{{connection.baseUrl}}}}{API_BASE}"),
            "response": {"error": {"message": "[{{statusCode}}] {{body.error.message}}", "type": "DataError"}},
            "log": {"sanitize": ["request.headers.x-api-key"]}
        })),
    );
    files.insert(
        "connections/timix/parameters.iml.json".into(),
        pretty(&json!([
            {"name": "baseUrl", "type": "url", "label": "Server URL", "required": true,
             "help": "Where your timix server is reached, for example https://timix.example.com."},
            {"name": "apiKey", "type": "password", "label": "API key", "required": true,
             "help": "A key created in timix; it starts with bbl_."}
        ])),
    );
    files.insert(
        "connections/timix/communication.iml.json".into(),
        pretty(&json!({
            "url": format!("{{{{parameters.baseUrl}}}}{API_BASE}/me"),
            "method": "GET",
            "headers": {"X-Api-Key": "{{parameters.apiKey}}"},
            "response": {
                "metadata": {"type": "text", "value": "{{body.organization.name}} ({{body.user.email}})"},
                "error": {"message": "[{{statusCode}}] {{body.error.message}}"}
            },
            "log": {"sanitize": ["request.headers.x-api-key"]}
        })),
    );
    let mut rpcs = BTreeMap::new();
    let mut components = json!({"modules": {}, "rpcs": {}, "webhooks": {}, "connections": {"timix": {"label": "timix", "type": "basic"}}});
    for lookup in lookups(manifests) {
        let name = camel(&format!("list_{}", lookup.key.replace('-', "_")));
        files.insert(
            format!("rpcs/{name}/communication.iml.json"),
            pretty(&json!({
                "url": lookup.list,
                "method": "GET",
                "headers": api_headers(),
                "qs": {"sort": "name", "pageSize": "100"},
                "response": {"iterate": "{{body.items}}", "output": {"label": "{{item.name}}", "value": "{{item.id}}"}}
            })),
        );
        components["rpcs"][&name] = json!({"label": format!("List {}", lookup.noun)});
        rpcs.insert(lookup.key.clone(), name);
    }
    for action in manifests.actions.values() {
        let name = camel(&action.key);
        let kind = if action.kind == ActionKind::Search {
            "search"
        } else {
            "action"
        };
        let parameters: Vec<Value> = fields(&action.input)
            .iter()
            .map(|f| parameter(f, &rpcs))
            .collect();
        let meta = json!({"name": name, "type": kind, "label": action.label, "description": action.description, "connection": "timix"});
        module(
            &mut files,
            &name,
            meta,
            &[
                ("communication", action_communication(action)),
                ("mappable-parameters", Value::Array(parameters)),
                ("interface", interface(&action.sample)),
                ("samples", action.sample.clone()),
            ],
        );
        components["modules"][&name] = json!({"type": kind, "label": action.label});
    }
    for trigger in manifests.triggers.values() {
        let watch = camel(&format!("watch_{}", trigger.key));
        let meta = json!({"name": watch, "type": "trigger", "label": format!("Watch {}", trigger.label),
                          "description": trigger.description, "connection": "timix"});
        module(
            &mut files,
            &watch,
            meta,
            &[
                ("communication", polling_communication(trigger)),
                ("mappable-parameters", json!([])),
                ("interface", interface(&trigger.sample)),
                ("samples", trigger.sample.clone()),
            ],
        );
        components["modules"][&watch] =
            json!({"type": "trigger", "label": format!("Watch {}", trigger.label)});

        let hook = camel(&format!("{}_hook", trigger.key));
        let dir = format!("webhooks/{hook}");
        files.insert(
            format!("{dir}/communication.iml.json"),
            pretty(&json!({"output": "{{body.data}}"})),
        );
        files.insert(
            format!("{dir}/attach.iml.json"),
            pretty(&json!({
                "url": "/hooks",
                "method": "POST",
                "headers": api_headers(),
                "body": {"targetUrl": "{{webhook.url}}", "event": trigger.event},
                "type": "json",
                "response": {"data": {"externalHookId": "{{body.id}}"}}
            })),
        );
        files.insert(
            format!("{dir}/detach.iml.json"),
            pretty(&json!({
                "url": "/hooks/{{encodeURL(webhook.externalHookId)}}",
                "method": "DELETE",
                "headers": api_headers()
            })),
        );
        components["webhooks"][&hook] =
            json!({"label": trigger.label, "type": "dedicated", "connection": "timix"});
        let instant = camel(&format!("{}_instant", trigger.key));
        let meta = json!({"name": instant, "type": "instant_trigger", "label": format!("{} (Instant)", trigger.label),
                          "description": trigger.description, "connection": "timix", "webhook": hook});
        module(
            &mut files,
            &instant,
            meta,
            &[
                ("interface", interface(&trigger.sample)),
                ("samples", trigger.sample.clone()),
            ],
        );
        components["modules"][&instant] = json!({"type": "instant_trigger", "label": format!("{} (Instant)", trigger.label), "webhook": hook});
    }
    files.insert(
        "app.json".into(),
        pretty(&json!({
            "name": "timix",
            "label": "timix",
            "version": version,
            "description": "Time tracking and billing: customers, projects, tasks, time, invoices.",
            "theme": "#2f6fed",
            "language": "en",
            "components": components,
        })),
    );
    Ok(files)
}

pub fn write(manifests: &Manifests, version: &str, out: &Path) -> Result<(), ExportError> {
    super::write_files(out, &files(manifests, version)?)
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
}
