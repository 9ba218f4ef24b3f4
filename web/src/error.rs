//! The API's error envelope. Every failure, from an unknown route to a database outage, leaves
//! as `{"error": {code, message, details?, requestId}}` with its real status.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use timix_engine::{Error, FieldError, store::json};

use crate::request_id;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorEnvelope {
    pub error: ErrorBody,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ErrorBody {
    /// Stable, machine-readable: `validation_failed`, `not_found`, `forbidden`…
    #[schema(example = "validation_failed")]
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub details: Option<Vec<FieldError>>,
    pub request_id: String,
}

/// An error on its way to becoming a response.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub details: Option<Vec<FieldError>>,
    /// Extra headers (`Allow`, `Retry-After`…).
    pub headers: Vec<(header::HeaderName, HeaderValue)>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            headers: Vec::new(),
        }
    }

    pub fn validation(details: Vec<FieldError>) -> Self {
        let message = match details.as_slice() {
            [one] => one.message.clone(),
            many => format!("{} fields are invalid", many.len()),
        };
        Self {
            details: Some(details),
            ..Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "validation_failed",
                message,
            )
        }
    }

    pub fn not_found_route() -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong on our side; it has been logged",
        )
    }
}

impl From<Error> for ApiError {
    fn from(error: Error) -> Self {
        match error {
            Error::Unauthenticated { code, message } => {
                let mut e = Self::new(StatusCode::UNAUTHORIZED, code, message);
                e.headers
                    .push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
                e
            }
            Error::Forbidden { code, message } => Self::new(StatusCode::FORBIDDEN, code, message),
            Error::NotFound(noun) => Self::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("{noun} not found"),
            ),
            Error::InvalidParameter(message) => {
                Self::new(StatusCode::BAD_REQUEST, "invalid_parameter", message)
            }
            Error::Validation(details) => Self::validation(details),
            Error::Conflict { code, message } => Self::new(StatusCode::CONFLICT, code, message),
            Error::PreconditionFailed => Self::new(
                StatusCode::PRECONDITION_FAILED,
                "precondition_failed",
                "the resource has changed since the ETag given in If-Match; fetch it again",
            ),
            Error::IdempotencyKeyReused => Self::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "idempotency_key_reused",
                "this Idempotency-Key was already used with a different request; use a new key",
            ),
            Error::RateLimited {
                message,
                retry_after_secs,
            } => {
                let mut e = Self::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", message);
                if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    e.headers.push((header::RETRY_AFTER, value));
                }
                e
            }
            Error::Overloaded { retry_after_secs } => {
                let mut e = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "overloaded",
                    format!(
                        "more runs are waiting than this service takes on; retry in {retry_after_secs} s"
                    ),
                );
                if let Ok(value) = HeaderValue::from_str(&retry_after_secs.to_string()) {
                    e.headers.push((header::RETRY_AFTER, value));
                }
                e
            }
            Error::SyncWindowExpired(message) => {
                Self::new(StatusCode::GONE, "sync_window_expired", message)
            }
            Error::Database(sqlx::Error::PoolTimedOut) => {
                tracing::error!("Database pool exhausted.");
                let mut e = Self::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "the service is overloaded; retry shortly",
                );
                e.headers
                    .push((header::RETRY_AFTER, HeaderValue::from_static("1")));
                e
            }
            other => {
                tracing::error!(error = %other, request_id = %request_id::current(), "Request failed.");
                Self::internal()
            }
        }
    }
}

/// An error body stays small whatever was sent: messages that quote the caller's input cut
/// the quote short, and these bounds hold for every other message too.
const MAX_MESSAGE_CHARS: usize = 500;
const MAX_FIELD_CHARS: usize = 200;
const MAX_DETAILS: usize = 50;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let details = self.details.map(|details| {
            details
                .into_iter()
                .take(MAX_DETAILS)
                .map(|d| FieldError {
                    field: json::shorten_to(&d.field, MAX_FIELD_CHARS),
                    code: d.code,
                    message: json::shorten_to(&d.message, MAX_MESSAGE_CHARS),
                })
                .collect()
        });
        let body = ErrorEnvelope {
            error: ErrorBody {
                code: self.code.to_owned(),
                message: json::shorten_to(&self.message, MAX_MESSAGE_CHARS),
                details,
                request_id: request_id::current(),
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
