//! Extractors that turn a request into engine inputs or an [`ApiError`]: the caller ([`Auth`]),
//! a JSON body ([`JsonBody`]) and list parameters ([`QueryPairs`]).

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use serde::de::DeserializeOwned;
use timix_engine::FieldError;
use timix_engine::auth::Actor;

use crate::error::ApiError;

/// The authenticated caller, as established by the [`gate`](crate::gate).
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
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_json",
                format!("the body is not valid JSON: {e}"),
            )
        })?;
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

/// Names the field a deserialisation error is about.
fn shape_error(error: &serde_path_to_error::Error<serde_json::Error>) -> FieldError {
    let path = error.path().to_string();
    let path = if path == "." { String::new() } else { path };
    let message = error.inner().to_string();
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let field = rest.split('`').next().unwrap_or_default();
        // The path already ends with the unknown field when it is nested.
        let field = if path.is_empty() {
            field.to_owned()
        } else {
            path.clone()
        };
        return FieldError::new(
            field.clone(),
            "unknown_field",
            format!("{field} is not a field of this resource"),
        );
    }
    FieldError::new(path.clone(), "invalid_type", format!("{path}: {message}"))
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
                    format!("malformed query string: {e}"),
                )
            })
    }
}
