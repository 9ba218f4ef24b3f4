//! OpenAPI `links` from each operation that makes a record to the operations on that record:
//! `createCustomer`'s 201 leads to `getCustomer`, `updateCustomer`, `deleteCustomer` with
//! `id` taken from the body. Generators and stateful testers follow them to chain calls.

use serde_json::{Map, Value, json};

/// Operations that make a record of another path than their own.
const MAKES_RECORD_OF: [(&str, &str); 1] = [("/time-entries/timer/start", "/time-entries")];

/// Marks a path as the one that upserts by `externalId`.
const BY_EXTERNAL_ID: &str = "/by-external-id/{externalId}";

/// Adds the links to every response that makes a record.
pub fn add(paths: &mut Map<String, Value>) {
    let makers: Vec<(String, &str, String)> = paths
        .iter()
        .flat_map(|(path, item)| {
            ["post", "put"]
                .into_iter()
                .filter(|method| item.get(method).is_some())
                .filter_map(move |method| {
                    Some((path.clone(), method, collection_of(path, method)?))
                })
        })
        .collect();
    for (path, method, collection) in makers {
        let targets = targets_under(paths, &collection);
        if targets.is_empty() {
            continue;
        }
        let Some(responses) = paths
            .get_mut(&path)
            .and_then(|item| item.get_mut(method))
            .and_then(|operation| operation.get_mut("responses"))
            .and_then(Value::as_object_mut)
        else {
            continue;
        };
        for status in ["200", "201"] {
            if let Some(response) = responses.get_mut(status).and_then(Value::as_object_mut) {
                response.insert("links".into(), Value::Object(targets.clone()));
            }
        }
    }
}

/// The collection whose record `method` on `path` answers with, if it makes one.
fn collection_of(path: &str, method: &str) -> Option<String> {
    if let Some((_, collection)) = MAKES_RECORD_OF.iter().find(|(maker, _)| *maker == path) {
        return (method == "post").then(|| collection.to_string());
    }
    match method {
        "put" => path.strip_suffix(BY_EXTERNAL_ID).map(str::to_owned),
        _ => Some(path.to_owned()),
    }
}

/// One link per operation on `collection/{param}…` whose only path parameter is that one.
fn targets_under(paths: &Map<String, Value>, collection: &str) -> Map<String, Value> {
    let prefix = format!("{collection}/{{");
    let mut links = Map::new();
    for (path, item) in paths {
        let Some(rest) = path.strip_prefix(&prefix) else {
            continue;
        };
        let Some((param, tail)) = rest.split_once('}') else {
            continue;
        };
        if tail.contains('{') {
            continue;
        }
        let Some(item) = item.as_object() else {
            continue;
        };
        for operation in item.values() {
            let Some(id) = operation.get("operationId").and_then(Value::as_str) else {
                continue;
            };
            links.insert(
                link_name(id),
                json!({
                    "operationId": id,
                    "parameters": {param: format!("$response.body#/{param}")},
                }),
            );
        }
    }
    links
}

/// `getCustomer` → `GetCustomer`.
fn link_name(operation_id: &str) -> String {
    let mut chars = operation_id.chars();
    chars
        .next()
        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}
