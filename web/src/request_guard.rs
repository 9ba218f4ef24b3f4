//! The request guard: limits every request (API, UI, MCP) meets before any route sees it: the
//! size of its headers (431), the size of its body (413), how long the client may take to send
//! that body (408), and a path or query without an encoded NUL character (`%00`, 400), each
//! answered in the API's error envelope.
//! Slow headers are cut by the server itself (see [`crate::serve`]).

use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};

use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;

/// Largest total size of a request's headers (names, values and separators).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// How long a client may take, once its headers are in, to send the whole body.
pub const DEFAULT_CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// The limits of [`guard`].
#[derive(Debug, Clone, Copy)]
pub struct RequestLimits {
    /// How long a client may take to send its headers, and again its body.
    pub client_timeout: Duration,
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self {
            client_timeout: DEFAULT_CLIENT_TIMEOUT,
        }
    }
}

/// Checks the headers, then reads the whole body (at most [`MAX_BODY_BYTES`], within the
/// client timeout) before handing the request on, so no handler can wait on a slow client or
/// buffer an unbounded body.
pub async fn guard(State(limits): State<RequestLimits>, request: Request, next: Next) -> Response {
    let size = header_bytes(request.headers());
    if size > MAX_HEADER_BYTES {
        return refuse(ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!(
                "the request's headers take {size} bytes; at most {MAX_HEADER_BYTES} are accepted"
            ),
        ));
    }
    if let Err(error) = check_uri(request.uri()) {
        return error.into_response();
    }
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY_BYTES as u64) {
        return refuse(too_large());
    }
    let (parts, body) = request.into_parts();
    let read = Limited::new(body, MAX_BODY_BYTES).collect();
    let bytes = match tokio::time::timeout(limits.client_timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes(),
        Ok(Err(error)) if error.is::<LengthLimitError>() => return refuse(too_large()),
        Ok(Err(_)) => {
            return refuse(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                "the body could not be read",
            ));
        }
        Err(_) => {
            return refuse(ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "request_timeout",
                format!(
                    "the body did not arrive within {} seconds",
                    limits.client_timeout.as_secs_f64()
                ),
            ));
        }
    };
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}

/// Refuses a path or query that decodes to a NUL character (U+0000): no id, token or filter
/// holds one, and Postgres cannot even compare one. A URI cannot carry a raw NUL, so `%00` is
/// the only spelling.
pub fn check_uri(uri: &Uri) -> Result<(), ApiError> {
    let has_nul = |text: &str| text.contains("%00");
    let place = if has_nul(uri.path()) {
        "path"
    } else if uri.query().is_some_and(has_nul) {
        "query"
    } else {
        return Ok(());
    };
    Err(ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_parameter",
        format!("the {place} contains a NUL character (%00), which is not accepted"),
    ))
}

/// What the headers weigh on the wire: `name: value\r\n` each.
fn header_bytes(headers: &HeaderMap) -> usize {
    headers
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum()
}

fn too_large() -> ApiError {
    ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        format!("the body is larger than {MAX_BODY_BYTES} bytes"),
    )
}

/// An error after which the connection is closed: the rest of what the client sends is unread.
fn refuse(mut error: ApiError) -> Response {
    error
        .headers
        .push((header::CONNECTION, HeaderValue::from_static("close")));
    error.into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_nul_is_refused_in_the_path_and_the_query() {
        for bad in ["/hooks/in/abc%00def", "/x?state=a%00b", "/x?a%00=1"] {
            let error = check_uri(&bad.parse().unwrap()).unwrap_err();
            assert_eq!(error.status, StatusCode::BAD_REQUEST, "{bad}");
        }
        for good in ["/customers/cus_1", "/x?q=%2500&a=%01"] {
            assert!(check_uri(&good.parse().unwrap()).is_ok(), "{good}");
        }
    }

    #[test]
    fn header_bytes_count_names_values_and_separators() {
        let mut headers = HeaderMap::new();
        headers.insert("x-a", HeaderValue::from_static("12345"));
        assert_eq!(header_bytes(&headers), 3 + 5 + 4);
    }
}
