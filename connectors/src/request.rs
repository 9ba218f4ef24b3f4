//! Sending one request to another system through the guarded client, with a connection's
//! credentials, and reading its answer up to a size limit: how action steps call out.

use std::time::Duration;

use serde_json::Value;
use timix_engine::automation::connections::Resolved;
use timix_engine::automation::manifest::Encoding;

use crate::connection::authorize;
use crate::outbound::{Outbound, refused_target};

/// A request, as an action step describes it.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub method: &'a str,
    pub url: &'a str,
    /// Added to the URL's query.
    pub query: &'a [(String, String)],
    pub headers: &'a [(String, String)],
    /// Sent as JSON, or as a form.
    pub body: Option<&'a Value>,
    pub encoding: Encoding,
}

/// The receiver's answer.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    /// `Retry-After`, as a wait.
    pub retry_after: Option<Duration>,
    /// Names lower-cased; values that are not text are left out.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Why a request brought no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// The target may not be called (SSRF guard, scheme, bad URL): the same every time.
    #[error("{0}")]
    Refused(String),
    /// The request cannot be sent as described (method, header): the same every time.
    #[error("{0}")]
    Invalid(String),
    /// The network failed: another try may work.
    #[error("{0}")]
    Network(String),
    /// The answer is larger than the limit given.
    #[error("the answer is larger than {0} bytes")]
    TooLarge(usize),
}

impl SendError {
    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Network(_))
    }
}

/// Sends `request` (with `connection`'s credentials) and reads at most `max_body` bytes of the
/// answer.
pub async fn send(
    outbound: &Outbound,
    request: Request<'_>,
    connection: Option<&Resolved>,
    max_body: usize,
) -> Result<Response, SendError> {
    let Request {
        method,
        url,
        query,
        headers,
        body,
        encoding,
    } = request;
    let mut parsed = outbound
        .check(url)
        .map_err(|e| SendError::Refused(e.to_string()))?;
    if !query.is_empty() {
        parsed.query_pairs_mut().extend_pairs(query);
    }
    // An API key some APIs take as a query parameter.
    if let Some((param, key)) = connection.and_then(crate::connection::query_key) {
        parsed.query_pairs_mut().append_pair(param, &key);
    }
    let method = reqwest::Method::from_bytes(method.as_bytes())
        .map_err(|_| SendError::Invalid(format!("{method} is not an HTTP method")))?;
    let mut builder = outbound.client().request(method, parsed);
    for (name, value) in headers {
        builder = builder.header(name, value);
    }
    if let Some(connection) = connection {
        builder = authorize(builder, connection);
    }
    match (body, encoding) {
        (Some(body), Encoding::Json) => builder = builder.json(body),
        (Some(body), Encoding::Form) => {
            let text = url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form_pairs(body))
                .finish();
            builder = builder
                .header(
                    reqwest::header::CONTENT_TYPE,
                    "application/x-www-form-urlencoded",
                )
                .body(text);
        }
        (None, _) => {}
    }
    // Errors are told without their URL: an API key may be in its query.
    let mut response = builder.send().await.map_err(|e| match refused_target(&e) {
        Some(reason) => SendError::Refused(reason),
        // A header or URL that cannot be sent fails the same way every time.
        None if e.is_builder() => SendError::Invalid(e.without_url().to_string()),
        None => SendError::Network(e.without_url().to_string()),
    })?;
    let status = response.status().as_u16();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .and_then(retry_after);
    let headers = response
        .headers()
        .iter()
        .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let mut bytes = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| SendError::Network(e.without_url().to_string()))?
    {
        if bytes.len() + chunk.len() > max_body {
            return Err(SendError::TooLarge(max_body));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(Response {
        status,
        retry_after,
        headers,
        body: bytes,
    })
}

/// A body as form pairs: nested objects and lists in bracket notation (`metadata[plan]=pro`,
/// `lines[0][amount]=5`), as form-encoded APIs (Stripe) read them; nulls are left out.
pub fn form_pairs(body: &Value) -> Vec<(String, String)> {
    fn walk(prefix: &str, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Null => {}
            Value::Object(map) => {
                for (key, inner) in map {
                    let name = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}[{key}]")
                    };
                    walk(&name, inner, out);
                }
            }
            Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    walk(&format!("{prefix}[{i}]"), inner, out);
                }
            }
            Value::String(s) => out.push((prefix.to_owned(), s.clone())),
            other => out.push((prefix.to_owned(), other.to_string())),
        }
    }
    let mut out = Vec::new();
    walk("", body, &mut out);
    out
}

/// `Retry-After`: seconds, or an HTTP date (the wait until then).
pub fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.signed_duration_since(chrono::Utc::now());
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_takes_seconds_or_a_date() {
        assert_eq!(retry_after(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            retry_after("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(Duration::ZERO)
        );
        let later = (chrono::Utc::now() + chrono::Duration::seconds(120)).to_rfc2822();
        let wait = retry_after(&later).unwrap();
        assert!(wait > Duration::from_secs(100) && wait <= Duration::from_secs(120));
        assert_eq!(retry_after("soon"), None);
    }
}
