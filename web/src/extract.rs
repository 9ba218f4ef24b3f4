//! Extractors that turn a request into engine inputs or an [`ApiError`]: the caller ([`Auth`]),
//! a JSON body ([`JsonBody`]) and list parameters ([`QueryPairs`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use timix_engine::access::auth::Actor;
use timix_engine::{FieldError, store::json};

use crate::error::ApiError;

/// The authenticated caller, as established by the [`gate`](crate::api_gate).
pub struct Auth(pub Actor);

impl<S: Send + Sync> FromRequestParts<S> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts.extensions.remove::<Actor>().map(Auth).ok_or_else(|| {
            timix_engine::Error::unauthenticated(
                "unauthenticated",
                "send an API key in X-Api-Key or Authorization: Bearer",
            )
            .into()
        })
    }
}

/// A JSON body deserialised into `T`: 415 for another content type, 413 when too large, 400 for
/// malformed JSON, 422 (naming the field) for JSON of the wrong shape.
pub struct JsonBody<T>(pub T);

/// Largest body accepted, in bytes.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

impl<S, T> FromRequest<S> for JsonBody<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(request: Request, state: &S) -> Result<Self, Self::Rejection> {
        let content_type = request
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let too_large = || {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                format!("the body is larger than {MAX_BODY_BYTES} bytes"),
            )
        };
        // Refuse a declared oversize at once, without reading what the client is sending.
        let declared = request
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_BODY_BYTES) {
            return Err(too_large());
        }
        let bytes = Bytes::from_request(request, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    too_large()
                } else {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_body",
                        rejection.body_text(),
                    )
                }
            })?;
        // An empty body is an empty object: `POST /…/stop` needs no body.
        let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
            Bytes::from_static(b"{}")
        } else {
            let is_json = content_type.as_deref().is_some_and(|ct| {
                let essence = ct
                    .split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase();
                essence == "application/json" || essence.ends_with("+json")
            });
            if !is_json {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_media_type",
                    "send the body as JSON with Content-Type: application/json",
                ));
            }
            bytes
        };
        let value = storable_json(&bytes)?;
        if !value.is_object() {
            return Err(ApiError::validation(vec![FieldError::new(
                "",
                "invalid_type",
                "the body must be a JSON object",
            )]));
        }
        serde_path_to_error::deserialize(value)
            .map(JsonBody)
            .map_err(|e| ApiError::validation(vec![shape_error(&e)]))
    }
}

/// Parses a JSON body and refuses what could not be stored or read back: nesting deeper than
/// [`json::MAX_DEPTH`] levels, and a NUL character (U+0000) in any string or key, which
/// Postgres cannot keep in text. Both are a 422 naming the field; malformed JSON is a 400.
pub fn storable_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| {
        if json::is_too_deep(&e) {
            too_deep()
        } else {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON: {e}"),
            )
        }
    })?;
    if json::depth(&value) > json::MAX_DEPTH {
        return Err(too_deep());
    }
    if let Some(path) = json::find_nul(&value) {
        return Err(ApiError::validation(vec![nul_error(&path)]));
    }
    Ok(value)
}

fn too_deep() -> ApiError {
    ApiError::validation(vec![FieldError::new(
        "",
        "too_deep",
        json::too_deep_message(),
    )])
}

/// The field error of a NUL character found at `path`.
pub fn nul_error(path: &str) -> FieldError {
    let name = if path.is_empty() { "the body" } else { path };
    FieldError::new(
        path,
        "invalid_character",
        format!("{name} contains a NUL character (U+0000), which cannot be stored"),
    )
}

/// Longest field path an error repeats: the path is made of the caller's keys.
const MAX_PATH_CHARS: usize = 200;

/// Names the field a deserialisation error is about.
fn shape_error(error: &serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = error.path().to_string();
    let path = if path == "." {
        String::new()
    } else {
        json::shorten_to(&path, MAX_PATH_CHARS)
    };
    let message = error.inner().to_string();
    // Only a position serde appended, not text of a quoted value.
    let message = match message.rsplit_once(" at line ") {
        Some((before, position))
            if position
                .split(" column ")
                .all(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit())) =>
        {
            before.to_owned()
        }
        _ => message,
    };
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        // The path already ends with the unknown field when it is nested.
        let field = if path.is_empty() {
            json::shorten(field)
        } else {
            path.clone()
        };
        return FieldError::new(
            field.clone(),
            "unknown_field",
            format!("{field} is not a field of this resource"),
        );
    }
    FieldError::new(
        path.clone(),
        "invalid_type",
        format!("{path}: {}", shorten_quotes(&message)),
    )
}

/// A `serde` message with each value it quotes (`"…"` or `` `…` ``) cut to
/// [`json::QUOTE_CHARS`] characters: `invalid type: string "<100 KB>", expected u32`.
fn shorten_quotes(message: &str) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(start) = rest.find(['"', '`']) {
        let quote = rest.as_bytes()[start] as char;
        let inner_from = start + 1;
        // A `"` quote is Rust's `Debug` of a string: `\"` inside does not end it.
        let mut end = None;
        let mut escaped = false;
        for (i, c) in rest[inner_from..].char_indices() {
            match c {
                '\\' if quote == '"' && !escaped => escaped = true,
                c if c == quote && !escaped => {
                    end = Some(inner_from + i);
                    break;
                }
                _ => escaped = false,
            }
        }
        let Some(end) = end else { break };
        out.push_str(&rest[..inner_from]);
        out.push_str(&json::shorten(&rest[inner_from..end]));
        out.push(quote);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    out
}

/// The raw query pairs, in order (`?a=1&a=2` keeps both). Interpreted by the engine.
pub struct QueryPairs(pub Vec<(String, String)>);

impl<S: Send + Sync> FromRequestParts<S> for QueryPairs {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        serde_urlencoded::from_str::<Vec<(String, String)>>(query)
            .map(QueryPairs)
            .map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_parameter",
                    format!("malformed query string: {}", json::shorten(&e.to_string())),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_shortened_once() {
        let long = "x".repeat(10_000);
        let message = format!("invalid type: string \"{long}\", expected u32");
        let short = shorten_quotes(&message);
        assert!(short.len() < 120, "{short}");
        assert!(short.ends_with("…\", expected u32"), "{short}");
        let variant = format!("unknown variant `{long}`, expected `hourly` or `fixed_fee`");
        let short = shorten_quotes(&variant);
        assert!(short.contains("`hourly` or `fixed_fee`"), "{short}");
        assert!(short.len() < 150, "{short}");
        assert_eq!(
            shorten_quotes(r#"invalid value: string "a\"b", expected x"#),
            r#"invalid value: string "a\"b", expected x"#
        );
    }

    #[test]
    fn bodies_that_cannot_be_stored_are_refused_at_their_field() {
        let nul = storable_json(br#"{"steps":[{"input":{"x":"a\u0000"}}]}"#).unwrap_err();
        assert_eq!(nul.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(nul.details.unwrap()[0].field, "steps[0].input.x");
        let deep = format!("{}1{}", "[".repeat(65), "]".repeat(65));
        let deep = storable_json(deep.as_bytes()).unwrap_err();
        assert_eq!(deep.details.unwrap()[0].code, "too_deep");
        let deeper = format!("{}1{}", "[".repeat(500), "]".repeat(500));
        assert_eq!(
            storable_json(deeper.as_bytes()).unwrap_err().status,
            StatusCode::UNPROCESSABLE_ENTITY
        );
        let limit = format!("{}1{}", "[".repeat(64), "]".repeat(64));
        assert!(storable_json(limit.as_bytes()).is_ok());
    }
}
