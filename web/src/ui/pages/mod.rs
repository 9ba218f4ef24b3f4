//! One module per section of the UI: each reads through the API and renders its templates.

pub mod apps;
pub mod authorize;
pub mod connected_apps;
pub mod connection_edit;
pub mod connections;
pub mod connectors;
pub mod dashboard;
pub mod flow_lifecycle;
pub mod flows;
pub mod keys;
pub mod runs;
pub mod users;
pub mod webhooks;

use super::{UiError, UiResult};

/// An id from the URL, checked before it goes into an API path (no `/`, `?` or `..`).
pub fn checked_id<'a>(id: &'a str, what: &str) -> UiResult<&'a str> {
    let plain = !id.is_empty()
        && id.len() <= 100
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if plain {
        Ok(id)
    } else {
        Err(UiError::not_found(what))
    }
}

/// Adds `extra`'s fields to a page's context (a form shown again, a secret shown once).
pub fn merge(context: &mut serde_json::Value, extra: serde_json::Value) {
    if let (serde_json::Value::Object(target), serde_json::Value::Object(source)) = (context, extra)
    {
        target.extend(source);
    }
}

/// A query string for an API list, from `(name, value)` pairs with a value.
pub fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let present: Vec<(&str, &str)> = pairs
        .iter()
        .filter_map(|(k, v)| v.filter(|v| !v.is_empty()).map(|v| (*k, v)))
        .collect();
    serde_urlencoded::to_string(present).unwrap_or_default()
}
