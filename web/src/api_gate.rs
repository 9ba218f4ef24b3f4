//! The API gate every authenticated API request passes: authentication, the key's rate limit,
//! request counting, and the `If-Match` and `Idempotency-Key` conditions. It runs before the
//! handlers, so every authenticated answer (errors included) carries the rate-limit headers.

use axum::body::{Body, to_bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use timix_engine::access::auth::{self, Actor, rate_limit_per_minute};
use timix_engine::access::idempotency::{self, Answer, Outcome, Stored};
use timix_engine::access::rate_limits::{Decision, Rate};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::MAX_BODY_BYTES;
use crate::routes::BASE;

/// The key a request presents, from `X-Api-Key` or `Authorization: Bearer`.
pub fn presented_key(headers: &HeaderMap) -> Option<&str> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    text("x-api-key").or_else(|| {
        text(header::AUTHORIZATION.as_str())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim)
    })
}

/// Paths that never need a key. Inbound webhooks carry their own credential (the token), and
/// their senders' own `Authorization` headers must not be taken for one of our keys.
fn is_public(path: &str) -> bool {
    path.strip_prefix(BASE).is_some_and(|rest| {
        rest == "/health"
            || rest == "/ready"
            || rest == "/openapi.json"
            || rest.starts_with("/hooks/in/")
            || rest == "/oauth2/callback"
    })
}

/// The organization a request names (`X-Organization-Id`, alias `X-Workspace-Id`), if any.
pub(crate) fn organization_header(headers: &HeaderMap) -> Option<&str> {
    ["x-organization-id", "x-workspace-id"]
        .iter()
        .find_map(|h| headers.get(*h).and_then(|v| v.to_str().ok()))
}

/// The actor a request's key (and organization header) stands for; a request without a key
/// is refused with the API's 401.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Actor, ApiError> {
    let key = presented_key(headers).ok_or_else(|| {
        ApiError::from(timix_engine::Error::unauthenticated(
            "unauthenticated",
            "send an API key in X-Api-Key or Authorization: Bearer",
        ))
    })?;
    auth::authenticate(&state.db, key, organization_header(headers))
        .await
        .map_err(ApiError::from)
}

/// The key's requests per minute: its plan's, unless the operator overrode it.
pub fn quota(state: &AppState, actor: &Actor) -> Rate {
    Rate::per_minute(
        state
            .gate
            .quota_override
            .unwrap_or_else(|| rate_limit_per_minute(actor.organization.plan)),
    )
}

/// Spends one request of the key's budget and counts it, for calls that reach the API other
/// than as an HTTP request of their own (an MCP tool call): the same limit, the same usage.
pub async fn spend(state: &AppState, actor: &Actor) -> Result<(), ApiError> {
    if !state.gate.limits {
        return Ok(());
    }
    let decision = state
        .limiter
        .acquire(&actor.api_key.id, quota(state, actor))
        .await?;
    if !decision.allowed {
        return Err(rate_limited_error(&decision));
    }
    state.usage.count(actor.org_id(), &actor.api_key.id);
    Ok(())
}

pub async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if presented_key(request.headers()).is_none() || is_public(&path) {
        // No key: public paths answer, the others refuse in their `Auth` extractor.
        return next.run(request).await;
    }
    let mut actor = match authenticate(&state, request.headers()).await {
        Ok(actor) => actor,
        Err(error) => return error.into_response(),
    };
    if !state.gate.limits {
        let mut request = request;
        request.extensions_mut().insert(actor);
        return next.run(request).await;
    }
    let quota = quota(&state, &actor);
    let decision = match state.limiter.acquire(&actor.api_key.id, quota).await {
        Ok(d) => d,
        Err(error) => return ApiError::from(error).into_response(),
    };
    let method = request.method().clone();
    // A conditional GET may still be answered 304 (free) when the budget is spent.
    let conditional =
        method == Method::GET && request.headers().contains_key(header::IF_NONE_MATCH);
    if !decision.allowed && !conditional {
        return rate_limited(decision);
    }
    if method == Method::PATCH {
        actor.conditions.if_match = request
            .headers()
            .get(header::IF_MATCH)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
    }
    let (request, claim) = match claim_idempotency_key(&state, &mut actor, request).await {
        Ok(Claimed::Run(request, claim)) => (*request, claim),
        Ok(Claimed::Replay(stored)) => {
            state.usage.count(actor.org_id(), &actor.api_key.id);
            return with_rate_headers(replay(stored), &decision);
        }
        Err(error) => return with_rate_headers(error.into_response(), &decision),
    };
    let (org_id, key_id) = (actor.org_id().to_owned(), actor.api_key.id.clone());
    let mut request = request;
    request.extensions_mut().insert(actor);
    let response = next.run(request).await;

    if let Some(claim) = claim
        && !response.status().is_success()
        && let Err(error) = idempotency::release(&state.db, &claim).await
    {
        tracing::warn!(%error, "Could not release an idempotency key.");
    }
    let decision = if response.status() == StatusCode::NOT_MODIFIED {
        if decision.allowed {
            state.limiter.refund(&key_id, quota);
        }
        Decision {
            allowed: true,
            remaining: (decision.remaining + u32::from(decision.allowed)).min(decision.limit),
            ..decision
        }
    } else if !decision.allowed {
        return rate_limited(decision);
    } else {
        state.usage.count(&org_id, &key_id);
        decision
    };
    with_rate_headers(response, &decision)
}

enum Claimed {
    Run(Box<Request>, Option<idempotency::Claim>),
    Replay(Stored),
}

/// For a POST or PATCH with `Idempotency-Key`: claims the key for this exact request, or finds
/// the stored answer of its first run.
async fn claim_idempotency_key(
    state: &AppState,
    actor: &mut Actor,
    request: Request,
) -> Result<Claimed, ApiError> {
    let key = request
        .headers()
        .get("idempotency-key")
        .map(|v| v.to_str().map(str::to_owned));
    let (Some(key), true) = (
        key,
        matches!(*request.method(), Method::POST | Method::PATCH),
    ) else {
        return Ok(Claimed::Run(Box::new(request), None));
    };
    let key = key.map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_parameter",
            "Idempotency-Key must be printable ASCII",
        )
    })?;
    let (parts, body) = request.into_parts();
    let bytes = to_bytes(body, MAX_BODY_BYTES).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {MAX_BODY_BYTES} bytes"),
        )
    })?;
    let mut hasher = Sha256::new();
    hasher.update(parts.method.as_str().as_bytes());
    hasher.update(b" ");
    hasher.update(parts.uri.to_string().as_bytes());
    hasher.update(b"\n");
    hasher.update(&bytes);
    let hash: String = hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let outcome =
        idempotency::claim(&state.db, &actor.api_key.id, &key, &hash, parts.uri.path()).await?;
    match outcome {
        Outcome::Replay(stored) => Ok(Claimed::Replay(stored)),
        Outcome::Fresh(claim) => {
            actor.conditions.idempotency = Some(claim.clone());
            Ok(Claimed::Run(
                Box::new(Request::from_parts(parts, Body::from(bytes))),
                Some(claim),
            ))
        }
    }
}

fn replay(stored: Stored) -> Response {
    let status = match stored.answer {
        Answer::Created => StatusCode::CREATED,
        Answer::Changed => StatusCode::OK,
    };
    let mut response = (status, stored.body).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("idempotent-replayed", HeaderValue::from_static("true"));
    if let Some(location) = stored.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        headers.insert(header::LOCATION, location);
    }
    response
}

fn rate_limited(decision: Decision) -> Response {
    with_rate_headers(rate_limited_error(&decision).into_response(), &decision)
}

fn rate_limited_error(decision: &Decision) -> ApiError {
    let mut error = ApiError::new(
        StatusCode::TOO_MANY_REQUESTS,
        "rate_limited",
        format!(
            "rate limit of {} requests per {} seconds reached; retry in {} s",
            decision.limit, decision.window_seconds, decision.retry_after
        ),
    );
    error
        .headers
        .push((header::RETRY_AFTER, HeaderValue::from(decision.retry_after)));
    error
}

fn with_rate_headers(mut response: Response, d: &Decision) -> Response {
    let headers = response.headers_mut();
    headers.insert("x-ratelimit-limit", HeaderValue::from(d.limit));
    headers.insert("x-ratelimit-remaining", HeaderValue::from(d.remaining));
    headers.insert("x-ratelimit-reset", HeaderValue::from(d.reset_at));
    if let Ok(v) = HeaderValue::from_str(&format!("\"key\";q={};w={}", d.limit, d.window_seconds)) {
        headers.insert("ratelimit-policy", v);
    }
    if let Ok(v) = HeaderValue::from_str(&format!("\"key\";r={};t={}", d.remaining, d.reset_after))
    {
        headers.insert("ratelimit", v);
    }
    response
}

/// Adds an `ETag` to successful JSON answers and turns a `GET` whose `If-None-Match` names it
/// into a bodiless `304 Not Modified`.
pub async fn etags(request: Request, next: Next) -> Response {
    let is_get = request.method() == Method::GET;
    let if_none_match = request
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let response = next.run(request).await;
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !response.status().is_success() || !is_json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = to_bytes(body, usize::MAX).await else {
        return ApiError::internal().into_response();
    };
    let tag = timix_engine::store::etag::of_bytes(&bytes);
    if let Ok(value) = HeaderValue::from_str(&tag) {
        parts.headers.insert(header::ETAG, value);
    }
    if is_get && if_none_match.is_some_and(|h| timix_engine::store::etag::matches(&h, &tag)) {
        parts.status = StatusCode::NOT_MODIFIED;
        parts.headers.remove(header::CONTENT_TYPE);
        parts.headers.remove(header::CONTENT_LENGTH);
        return Response::from_parts(parts, Body::empty());
    }
    Response::from_parts(parts, Body::from(bytes))
}
