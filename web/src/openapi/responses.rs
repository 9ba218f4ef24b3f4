//! Every status an operation can answer, documented. The handlers declare their successes and
//! the errors only they make (409 "still has children"); the errors every operation of a kind
//! can meet come from the layers around the handlers (the gate: authentication, roles, rate
//! limits, `If-Match`, `Idempotency-Key`; the extractors: bodies and parameters) and are added
//! here by the same rules those layers follow, so no operation leaves one out.

use serde_json::{Map, Value, json};

/// The envelope every error answers with.
const ENVELOPE: &str = "#/components/schemas/ErrorEnvelope";

/// Adds the shared error statuses to every operation and a description to every response.
pub fn complete(paths: &mut Map<String, Value>) {
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for (method, operation) in item.iter_mut() {
            if let Some(operation) = operation.as_object_mut() {
                complete_operation(path, method, operation);
            }
        }
    }
}

fn complete_operation(path: &str, method: &str, operation: &mut Map<String, Value>) {
    let shape = Shape::of(path, method, operation);
    let responses = operation
        .entry("responses")
        .or_insert_with(|| json!({}))
        .as_object_mut()
        .expect("responses is an object");
    // A range says less than the statuses it stands for, which are all listed below.
    responses.retain(|status, _| !status.ends_with("XX"));
    for status in shape.error_statuses() {
        responses
            .entry(status.to_string())
            .or_insert_with(|| error_response(status));
    }
    if shape.is_json_read && responses.contains_key("200") {
        responses.entry("304").or_insert_with(
            || json!({"description": "Not modified: `If-None-Match` names the current `ETag`"}),
        );
    }
    for (status, response) in responses.iter_mut() {
        let Some(response) = response.as_object_mut() else {
            continue;
        };
        if !response.contains_key("description") {
            let description = match status.parse::<u16>() {
                Ok(error) if error >= 400 => error_description(error),
                _ => success_description(status),
            };
            response.insert("description".into(), json!(description));
        }
    }
}

/// What the layers around a handler look at.
struct Shape {
    public: bool,
    has_body: bool,
    has_parameters: bool,
    has_path_id: bool,
    is_write: bool,
    takes_idempotency_key: bool,
    is_json_read: bool,
    is_sync_list: bool,
}

impl Shape {
    fn of(path: &str, method: &str, operation: &Map<String, Value>) -> Self {
        // `security: [{}]` marks the operations open to anyone (health, inbound webhooks).
        let public = operation
            .get("security")
            .and_then(Value::as_array)
            .is_some_and(|s| s.iter().any(|r| r.as_object().is_some_and(Map::is_empty)));
        let parameters = operation.get("parameters").and_then(Value::as_array);
        let has_parameter = |name: &str| {
            parameters.is_some_and(|p| p.iter().any(|p| p.get("name") == Some(&json!(name))))
        };
        let json_ok = operation
            .get("responses")
            .and_then(|r| r.pointer("/200/content"))
            .and_then(Value::as_object)
            .is_some_and(|c| c.contains_key("application/json"));
        Self {
            public,
            has_body: operation.contains_key("requestBody"),
            has_parameters: parameters.is_some_and(|p| !p.is_empty()),
            has_path_id: path.contains('{'),
            is_write: method != "get",
            takes_idempotency_key: matches!(method, "post" | "patch"),
            is_json_read: method == "get" && json_ok && !public,
            is_sync_list: has_parameter("updatedSince"),
        }
    }

    fn error_statuses(&self) -> Vec<u16> {
        let mut statuses = Vec::new();
        if self.has_parameters || self.has_body {
            statuses.push(400);
        }
        if !self.public {
            statuses.extend([401, 403]);
        }
        if self.has_path_id {
            statuses.push(404);
        }
        // A write can meet a state that does not allow it (a last owner, children, a record
        // in use) or an `Idempotency-Key` still in use.
        if self.is_write && !self.public {
            statuses.push(409);
        }
        if self.takes_idempotency_key && !self.public {
            statuses.push(422);
        }
        if self.is_sync_list {
            statuses.push(410);
        }
        if self.is_write && self.has_path_id && !self.public {
            statuses.push(412);
        }
        if self.has_body {
            statuses.extend([413, 415, 422]);
        }
        if !self.public {
            statuses.push(429);
        }
        statuses.extend([500, 503]);
        statuses.sort_unstable();
        statuses.dedup();
        statuses
    }
}

fn error_response(status: u16) -> Value {
    let mut response = json!({
        "description": error_description(status),
        "content": {"application/json": {"schema": {"$ref": ENVELOPE}}},
    });
    if matches!(status, 429 | 503) {
        response["headers"] = json!({"Retry-After": {
            "description": "Seconds to wait before retrying",
            "schema": {"type": "integer", "minimum": 0},
        }});
    }
    response
}

fn error_description(status: u16) -> &'static str {
    match status {
        400 => {
            "Malformed: a parameter out of range or of the wrong type (`invalid_parameter`), or a body that is not JSON (`invalid_json`)"
        }
        401 => "No valid credentials: `unauthenticated`, `api_key_expired` or `api_key_revoked`",
        403 => {
            "Not allowed: `forbidden` (the role lacks the permission), `plan_required`, `organization_read_only` or `organization_mismatch`"
        }
        404 => "`not_found`: no such record in this organization",
        409 => {
            "`conflict` with the record's state, or `idempotency_key_in_use` while the first request with this `Idempotency-Key` runs"
        }
        410 => {
            "`sync_window_expired`: `updatedSince` is older than the kept tombstones; sync again from the start"
        }
        412 => "`precondition_failed`: the record changed since the `ETag` given in `If-Match`",
        413 => "`payload_too_large`: the body is larger than the limit",
        415 => "`unsupported_media_type`: send the body with `Content-Type: application/json`",
        422 => {
            "`validation_failed` with every invalid field in `details`, or `idempotency_key_reused` with a different body"
        }
        429 => {
            "`rate_limited`: the key's requests per minute are used up; retry after `Retry-After` seconds"
        }
        500 => "`internal_error`: logged with the request id",
        503 => "`unavailable`: overloaded for a moment; retry after `Retry-After` seconds",
        _ => "An error",
    }
}

fn success_description(status: &str) -> &'static str {
    match status {
        "200" => "OK",
        "201" => "Created",
        "202" => "Accepted: the work is queued",
        "204" => "Done; no body",
        "302" => "Redirect to the given `Location`",
        "304" => "Not modified",
        _ => "Answer",
    }
}
