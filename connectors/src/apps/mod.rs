//! The Zapier, Make and Workato apps, generated from the manifests: every trigger, action and
//! search of the built-in engine appears in all three, and a new manifest appears in them with
//! no code change. What the three share is here: the input fields read from each action's JSON
//! Schema, the dropdown lookups (`x-lookup`), the request specs as data, and the check that
//! every request template is one the generated apps can render (`{{input.field}}` only).

pub mod make;
pub mod workato;
pub mod zapier;

use std::collections::BTreeMap;
use std::path::Path;

use serde_json::{Value, json};
use timix_engine::automation::manifest::{ActionKind, ActionManifest, Manifests, Mapping, Select};

/// Why an app could not be written.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{0}")]
    Manifest(String),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// An input field of an action, as the three platforms need it.
#[derive(Debug, Clone, PartialEq)]
pub struct Field {
    pub key: String,
    pub label: String,
    pub help: Option<String>,
    pub required: bool,
    /// `string`, `integer`, `number`, `boolean`, `datetime`, `object` (a map of texts),
    /// `array` (of texts) or `json` (any JSON, entered as text).
    pub kind: &'static str,
    pub choices: Vec<String>,
    /// The lookup that offers its values (`customers`).
    pub lookup: Option<String>,
}

/// The input fields of a JSON Schema of an object, in the schema's order (required first).
pub fn fields(schema: &Value) -> Vec<Field> {
    let required: Vec<&str> = schema["required"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut out: Vec<Field> = schema["properties"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(key, property)| {
            let kind = match property["type"].as_str() {
                Some("integer") => "integer",
                Some("number") => "number",
                Some("boolean") => "boolean",
                Some("object") => "object",
                Some("array") => "array",
                Some("string") if property["format"] == "date-time" => "datetime",
                Some("string") => "string",
                _ => "json",
            };
            Field {
                key: key.clone(),
                label: property["title"].as_str().unwrap_or(key).to_owned(),
                help: property["description"].as_str().map(str::to_owned),
                required: required.contains(&key.as_str()),
                kind,
                choices: property["enum"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect(),
                lookup: property["x-lookup"].as_str().map(str::to_owned),
            }
        })
        .collect();
    out.sort_by_key(|f| !f.required);
    out
}

/// A dropdown's source: a list of this API.
#[derive(Debug, Clone, PartialEq)]
pub struct Lookup {
    /// `customers`, as manifests name it.
    pub key: String,
    /// `Customer`
    pub noun: String,
    /// `/customers`
    pub list: String,
    /// The key of the hidden trigger / RPC / pick list that serves it: `customer_list`.
    pub name: String,
}

/// Every lookup the actions' fields name, in name order.
pub fn lookups(manifests: &Manifests) -> Vec<Lookup> {
    let mut keys: Vec<String> = manifests
        .actions
        .values()
        .flat_map(|a| fields(&a.input))
        .filter_map(|f| f.lookup)
        .collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .map(|key| {
            let singular = key.trim_end_matches('s').replace('-', "_");
            let noun = singular
                .split('_')
                .map(|w| {
                    let mut chars = w.chars();
                    chars
                        .next()
                        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
                        .unwrap_or_default()
                })
                .collect::<Vec<_>>()
                .join(" ");
            Lookup {
                list: format!("/{key}"),
                name: format!("{singular}_list"),
                noun,
                key,
            }
        })
        .collect()
}

/// A search and the create of the same noun: "find, or create when none is found".
pub fn search_or_create_pairs(manifests: &Manifests) -> Vec<(&ActionManifest, &ActionManifest)> {
    manifests
        .actions
        .values()
        .filter(|a| a.kind == ActionKind::Search)
        .filter_map(|search| {
            manifests
                .actions
                .values()
                .find(|c| c.kind == ActionKind::Create && c.noun == search.noun)
                .map(|create| (search, create))
        })
        .collect()
}

/// Whether a template is plain text with `{{input.field}}` placeholders only.
fn renderable(template: &str) -> bool {
    let mut rest = template;
    while let Some(start) = rest.find("{{") {
        let Some(end) = rest[start..].find("}}") else {
            return false;
        };
        let inner = rest[start + 2..start + end].trim();
        let field = inner.strip_prefix("input.").unwrap_or("");
        if field.is_empty() || !field.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return false;
        }
        rest = &rest[start + end + 2..];
    }
    !rest.contains("}}")
}

/// Checks that the generated apps can perform every action's request.
pub fn check(manifests: &Manifests) -> Result<(), ExportError> {
    let mut problems = Vec::new();
    for action in manifests.actions.values() {
        let spec = &action.request;
        let mut templates = vec![spec.method.as_str()];
        templates.extend(spec.path.as_deref());
        templates.extend(spec.url.as_deref());
        for mapping in [&spec.query, &spec.headers, &spec.body]
            .into_iter()
            .flatten()
        {
            if let Mapping::Templates(map) = mapping {
                templates.extend(map.values().map(String::as_str));
            }
        }
        for template in templates {
            if !renderable(template) {
                problems.push(format!(
                    "{}: the template {template:?} uses more than {{{{input.field}}}}, which the generated apps cannot render",
                    action.key
                ));
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ExportError::Manifest(problems.join("\n")))
    }
}

/// An action's request as data for the generated apps.
pub fn request_data(action: &ActionManifest) -> Value {
    let spec = &action.request;
    json!({
        "method": spec.method,
        "path": spec.path,
        "url": spec.url,
        "query": spec.query,
        "headers": spec.headers,
        "body": spec.body,
        "exclude": spec.exclude,
    })
}

pub fn select_name(select: Select) -> &'static str {
    match select {
        Select::Item => "item",
        Select::First => "first",
        Select::Items => "items",
    }
}

/// Writes files under `out`, creating folders.
pub fn write_files(out: &Path, files: &BTreeMap<String, String>) -> Result<(), ExportError> {
    for (name, text) in files {
        let path = out.join(name);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(|source| ExportError::Io {
                path: parent.display().to_string(),
                source,
            })?;
        }
        std::fs::write(&path, text).map_err(|source| ExportError::Io {
            path: path.display().to_string(),
            source,
        })?;
    }
    Ok(())
}

/// An identifier made of a manifest key, for platforms with their own naming rules.
pub fn camel(key: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in key.chars() {
        if c == '_' || c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

/// The files as a ZIP archive (stored, not compressed: the apps are a few hundred kilobytes of
/// text), for a download.
pub fn zip(files: &BTreeMap<String, String>) -> Vec<u8> {
    fn u16le(out: &mut Vec<u8>, v: u16) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    fn u32le(out: &mut Vec<u8>, v: u32) {
        out.extend_from_slice(&v.to_le_bytes());
    }
    // 1980-01-01 00:00 in DOS time: archives of the same files are byte-identical.
    const DOS_DATE: u16 = (1 << 5) | 1;
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, text) in files {
        let (name, data) = (name.as_bytes(), text.as_bytes());
        let crc = crc32fast::hash(data);
        let offset = out.len() as u32;
        u32le(&mut out, 0x0403_4b50);
        for v in [20, 0x0800, 0, 0, DOS_DATE] {
            u16le(&mut out, v); // version, flags (UTF-8 names), stored, time, date
        }
        u32le(&mut out, crc);
        u32le(&mut out, data.len() as u32);
        u32le(&mut out, data.len() as u32);
        u16le(&mut out, name.len() as u16);
        u16le(&mut out, 0);
        out.extend_from_slice(name);
        out.extend_from_slice(data);

        u32le(&mut central, 0x0201_4b50);
        for v in [20, 20, 0x0800, 0, 0, DOS_DATE] {
            u16le(&mut central, v);
        }
        u32le(&mut central, crc);
        u32le(&mut central, data.len() as u32);
        u32le(&mut central, data.len() as u32);
        u16le(&mut central, name.len() as u16);
        for _ in 0..4 {
            u16le(&mut central, 0); // extra, comment, disk, internal attributes
        }
        u32le(&mut central, 0o100644 << 16);
        u32le(&mut central, offset);
        central.extend_from_slice(name);
    }
    let central_offset = out.len() as u32;
    let count = files.len() as u16;
    out.extend_from_slice(&central);
    u32le(&mut out, 0x0605_4b50);
    for v in [0, 0, count, count] {
        u16le(&mut out, v);
    }
    u32le(&mut out, central.len() as u32);
    u32le(&mut out, central_offset);
    u16le(&mut out, 0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_lookups_and_templates() {
        let manifests = Manifests::built_in().unwrap();
        let project = fields(&manifests.actions["create_project"].input);
        let customer = project.iter().find(|f| f.key == "customerId").unwrap();
        assert!(customer.required);
        assert_eq!(customer.lookup.as_deref(), Some("customers"));
        assert!(project[0].required, "required fields first");
        let names: Vec<String> = lookups(&manifests).into_iter().map(|l| l.name).collect();
        assert!(names.contains(&"customer_list".to_owned()));
        assert!(names.contains(&"org_user_list".to_owned()));
        assert!(renderable("/customers/{{input.id}}"));
        assert!(renderable("POST"));
        assert!(!renderable("{{upper input.name}}"));
        assert!(!renderable("{{trigger.id}}"));
        check(&manifests).unwrap();
        let pairs: Vec<(&str, &str)> = search_or_create_pairs(&manifests)
            .iter()
            .map(|(s, c)| (s.key.as_str(), c.key.as_str()))
            .collect();
        assert!(pairs.contains(&("find_customer", "create_customer")));
        assert_eq!(camel("new_time_entry"), "newTimeEntry");
    }
}
