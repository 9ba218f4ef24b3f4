//! The engine's one error type. Each variant carries a meaning, not a status code: the web layer
//! maps meanings to the API's error envelope, the job runners to retry decisions.

use serde::Serialize;

/// One problem with one field of an input, reported in the `details` of a 422.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct FieldError {
    /// Path of the offending field, e.g. `customerId` or `holidays[2].date`.
    pub field: String,
    /// Stable machine-readable code: `required`, `invalid`, `not_found`, `archived`, `too_long`…
    pub code: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, code: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            code: code.to_owned(),
            message: message.into(),
        }
    }

    pub fn required(field: &str) -> Self {
        Self::new(field, "required", format!("{field} is required"))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No credentials, or credentials that do not identify a live key.
    #[error("{message}")]
    Unauthenticated { code: &'static str, message: String },
    /// Authenticated, but not allowed: `forbidden`, `plan_required`, `organization_read_only`,
    /// `organization_mismatch`.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The resource does not exist in the caller's organization (or at all: never leak which).
    #[error("{0} not found")]
    NotFound(&'static str),
    /// A query parameter is malformed or out of range.
    #[error("{0}")]
    InvalidParameter(String),
    /// The body is well-formed JSON but its content is wrong.
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    /// The request conflicts with the current state (duplicate, still referenced…).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// `If-Match` names another version than the current one.
    #[error("the resource has changed since the given ETag")]
    PreconditionFailed,
    /// An `Idempotency-Key` reused with another request body.
    #[error("this Idempotency-Key was used with another request")]
    IdempotencyKeyReused,
    /// A sync cursor older than the tombstone retention window.
    #[error("{0}")]
    SyncWindowExpired(String),
    /// Too many attempts (failed logins): wait `retry_after_secs`.
    #[error("{message}")]
    RateLimited {
        message: String,
        retry_after_secs: u64,
    },
    /// More work waits than the operator allows: retry after `retry_after_secs`.
    #[error("the service has more work waiting than it takes on; retry in {retry_after_secs} s")]
    Overloaded { retry_after_secs: u64 },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("migration failed: {0}")]
    Migration(#[from] sqlx::migrate::MigrateError),
    #[error("internal error: {0}")]
    Internal(String),
}

impl Error {
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden {
            code: "forbidden",
            message: message.into(),
        }
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict {
            code: "conflict",
            message: message.into(),
        }
    }

    pub fn validation(field: &str, code: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, code, message)])
    }

    pub fn unauthenticated(code: &'static str, message: impl Into<String>) -> Self {
        Self::Unauthenticated {
            code,
            message: message.into(),
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Collects field errors while an input is checked, so one answer names every bad field.
#[derive(Debug, Default)]
pub struct Problems(Vec<FieldError>);

impl Problems {
    /// Records a problem; only the first problem of each field is kept.
    pub fn push(&mut self, error: FieldError) {
        if !self.0.iter().any(|e| e.field == error.field) {
            self.0.push(error);
        }
    }

    pub fn add(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.push(FieldError::new(field, code, message));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether a problem was found at `field` or below it (`steps` covers `steps[0].key`).
    pub fn has(&self, field: &str) -> bool {
        self.0.iter().any(|e| {
            e.field == field
                || e.field
                    .strip_prefix(field)
                    .is_some_and(|rest| rest.starts_with(['.', '[']))
        })
    }

    /// `Ok(())` when nothing was found, otherwise a `Validation` error with every problem.
    pub fn into_result(self) -> Result<()> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(Error::Validation(self.0))
        }
    }

    /// Records the error of a field-level check and returns its value, if any.
    pub fn take<T>(&mut self, result: Result<T, FieldError>) -> Option<T> {
        match result {
            Ok(v) => Some(v),
            Err(e) => {
                self.push(e);
                None
            }
        }
    }
}
