//! The API as a tool sees it: this instance's router called in-process as the key's actor, so
//! a tool gets exactly the API's validation, roles, events and errors. A failure is the API's
//! error object (`{code, message, details?}`), which becomes the tool's error result.

use serde_json::{Value, json};
use timix_actions::ApiCall;
use timix_engine::access::auth::Actor;

use crate::client::ApiClient;

/// What a failed call says: the API's `error` object, or one of ours in the same shape.
pub type Failure = Value;

/// A failure in the API's shape.
pub fn failure(code: &str, message: impl Into<String>) -> Failure {
    json!({"code": code, "message": message.into()})
}

/// Calls of the API as one actor.
pub struct Api<'a> {
    pub instance: &'a ApiClient,
    pub actor: &'a Actor,
}

impl Api<'_> {
    pub async fn get(&self, path: &str) -> Result<Value, Failure> {
        self.call("GET", path, None).await.map(|(_, body)| body)
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value, Failure> {
        self.call("POST", path, Some(body))
            .await
            .map(|(_, body)| body)
    }

    pub async fn put(&self, path: &str, body: Value) -> Result<Value, Failure> {
        self.upsert(path, body).await.map(|(body, _)| body)
    }

    /// A `PUT …/by-external-id/…`: the record, and whether it was created (201) rather than
    /// found and updated (200).
    pub async fn upsert(&self, path: &str, body: Value) -> Result<(Value, bool), Failure> {
        let (status, body) = self.call("PUT", path, Some(body)).await?;
        Ok((body, status == 201))
    }

    async fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(u16, Value), Failure> {
        let call = ApiCall {
            method: method.into(),
            path: path.into(),
            body,
        };
        let reply = self.instance.request(self.actor.clone(), call).await;
        if (200..300).contains(&reply.status) {
            return Ok((reply.status, reply.body));
        }
        let mut error = match reply.body.get("error") {
            Some(error) if error.is_object() => error.clone(),
            _ => failure(
                "internal_error",
                format!("{method} {path} answered {}", reply.status),
            ),
        };
        // The same shape as a manifest action's failure (the actions crate's).
        if let Some(object) = error.as_object_mut() {
            object.insert("status".into(), json!(reply.status));
            object.remove("requestId");
        }
        Err(error)
    }
}

/// `path?name=value&…` with the values encoded, leaving out empty ones.
pub fn with_query(path: &str, pairs: &[(&str, &str)]) -> String {
    let query = serde_urlencoded::to_string(
        pairs
            .iter()
            .filter(|(_, value)| !value.is_empty())
            .collect::<Vec<_>>(),
    )
    .unwrap_or_default();
    if query.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{query}")
    }
}
