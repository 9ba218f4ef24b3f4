//! The UI's calls to this instance's API, in-process, as the viewer.

use std::collections::BTreeMap;

use serde_json::Value;
use timix_actions::ApiCall;

use super::{Ui, Viewer};
use crate::error::ApiError;

/// An API refusal, with its field errors by path (`steps[0].input.name`) for the form.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    pub status: u16,
    pub code: String,
    pub message: String,
    pub fields: BTreeMap<String, String>,
    /// Every problem as the API listed it, `(path, message)`, in its order (`fields` keeps
    /// the first of each path).
    pub problems: Vec<(String, String)>,
}

impl ApiFailure {
    fn from_body(status: u16, body: &Value) -> Self {
        let error = &body["error"];
        let mut fields = BTreeMap::new();
        let mut problems = Vec::new();
        for detail in error["details"].as_array().into_iter().flatten() {
            if let (Some(field), Some(message)) =
                (detail["field"].as_str(), detail["message"].as_str())
            {
                fields
                    .entry(field.to_owned())
                    .or_insert_with(|| message.to_owned());
                problems.push((field.to_owned(), message.to_owned()));
            }
        }
        Self {
            status,
            code: error["code"].as_str().unwrap_or("error").to_owned(),
            message: error["message"]
                .as_str()
                .unwrap_or("the request was refused")
                .to_owned(),
            fields,
            problems,
        }
    }

    /// An engine error, as the API would have answered it.
    pub fn from_engine(error: timix_engine::Error) -> Self {
        let error = ApiError::from(error);
        let problems: Vec<(String, String)> = error
            .details
            .into_iter()
            .flatten()
            .map(|d| (d.field, d.message))
            .collect();
        let mut fields = BTreeMap::new();
        for (field, message) in &problems {
            fields
                .entry(field.clone())
                .or_insert_with(|| message.clone());
        }
        Self {
            status: error.status.as_u16(),
            code: error.code.to_owned(),
            message: error.message,
            fields,
            problems,
        }
    }

    /// The message for a form: the field errors are shown at their fields.
    pub fn summary(&self) -> String {
        if self.fields.is_empty() {
            self.message.clone()
        } else {
            format!(
                "{} — see the highlighted field{}.",
                self.message,
                if self.fields.len() == 1 { "" } else { "s" }
            )
        }
    }
}

impl Ui {
    pub async fn call(
        &self,
        viewer: &Viewer,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> Result<(Value, Vec<(String, String)>), ApiFailure> {
        let reply = self
            .api
            .request(
                viewer.actor.clone(),
                ApiCall {
                    method: method.into(),
                    path: path.into(),
                    body,
                },
            )
            .await;
        if reply.status >= 400 {
            return Err(ApiFailure::from_body(reply.status, &reply.body));
        }
        Ok((reply.body, reply.headers))
    }

    pub async fn get(&self, viewer: &Viewer, path: &str) -> Result<Value, ApiFailure> {
        self.call(viewer, "GET", path, None).await.map(|r| r.0)
    }

    pub async fn post(
        &self,
        viewer: &Viewer,
        path: &str,
        body: Value,
    ) -> Result<Value, ApiFailure> {
        self.call(viewer, "POST", path, Some(body))
            .await
            .map(|r| r.0)
    }

    pub async fn put(&self, viewer: &Viewer, path: &str, body: Value) -> Result<Value, ApiFailure> {
        self.call(viewer, "PUT", path, Some(body))
            .await
            .map(|r| r.0)
    }

    pub async fn delete(&self, viewer: &Viewer, path: &str) -> Result<Value, ApiFailure> {
        self.call(viewer, "DELETE", path, None).await.map(|r| r.0)
    }

    /// A list's items (`{items: [...]}`), or nothing when the viewer may not see them.
    pub async fn items(&self, viewer: &Viewer, path: &str) -> Result<Vec<Value>, ApiFailure> {
        let body = self.get(viewer, path).await?;
        Ok(match body {
            Value::Object(mut map) => match map.remove("items") {
                Some(Value::Array(items)) => items,
                _ => Vec::new(),
            },
            _ => Vec::new(),
        })
    }
}
