//! `X-Request-Id` on every response: the caller's own if it matches `[A-Za-z0-9._-]{1,128}`,
//! else a new one (`req_<ULID>`).
//! It is kept in a task-local so that error envelopes and logs can name it. Each request is
//! logged in a span naming its method and path, the credential in an inbound webhook's path
//! redacted.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

tokio::task_local! {
    static REQUEST_ID: String;
}

pub const HEADER: &str = "x-request-id";

/// The id of the request being served ("" outside of one).
pub fn current() -> String {
    REQUEST_ID.try_with(Clone::clone).unwrap_or_default()
}

/// An id that can go into logs, headers and error bodies as it is: `[A-Za-z0-9._-]{1,128}`.
fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A path as logs show it: the token of an inbound webhook URL is a credential, so it is
/// replaced (`/api/integration/v1/hooks/in/<redacted>`).
pub fn loggable_path(path: &str) -> String {
    match path.find(INBOUND_SEGMENT) {
        Some(at) => format!("{}{INBOUND_SEGMENT}<redacted>", &path[..at]),
        None => path.to_owned(),
    }
}

/// What precedes an inbound webhook's token in its path.
const INBOUND_SEGMENT: &str = "/hooks/in/";

pub async fn layer(request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("req_{}", ulid::Ulid::generate()));
    let method = request.method().clone();
    let path = loggable_path(request.uri().path());
    let started = std::time::Instant::now();
    // Every line logged while serving it names the request (a field of this span).
    let span = tracing::info_span!("request", request_id = %id, %method, %path);
    let mut response = REQUEST_ID
        .scope(id.clone(), next.run(request))
        .instrument(span.clone())
        .await;
    span.in_scope(|| {
        tracing::debug!(
            status = response.status().as_u16(),
            elapsed_ms = started.elapsed().as_millis() as u64,
            "Request served."
        )
    });
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_ids_are_kept() {
        for good in ["abc", "req_01J.x-y", &"a".repeat(128)] {
            assert!(acceptable(good), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a\\nb",
            "a%0Ab",
            "a/b",
            "<script>",
            &"a".repeat(129),
            "é",
        ] {
            assert!(!acceptable(bad), "{bad}");
        }
    }

    #[test]
    fn inbound_tokens_are_redacted_from_logged_paths() {
        assert_eq!(
            loggable_path("/api/integration/v1/hooks/in/AbC123xyz"),
            "/api/integration/v1/hooks/in/<redacted>"
        );
        assert_eq!(
            loggable_path("/api/integration/v1/hooks/in/AbC/more"),
            "/api/integration/v1/hooks/in/<redacted>"
        );
        assert_eq!(
            loggable_path("/api/integration/v1/customers/cus_1"),
            "/api/integration/v1/customers/cus_1"
        );
        assert_eq!(
            loggable_path("/api/integration/v1/hooks"),
            "/api/integration/v1/hooks"
        );
    }
}
