//! `/hooks`: REST hooks (the instant triggers of Zapier, Make and Workato) and inbound
//! webhook triggers (`/hooks/in/{token}`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use timix_engine::automation::webhooks::{self, Hook, HookInput};
use timix_triggers::inbound;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody};
use crate::routes::BASE;

/// Subscribes a REST hook. The same target and event again answers the existing hook (200).
#[utoipa::path(post, path = "/hooks", operation_id = "subscribeHook", tag = "hooks", request_body = HookInput,
    responses((status = 201, body = Hook), (status = 200, body = Hook, description = "Already subscribed"),
              (status = "4XX", body = ErrorEnvelope)))]
pub async fn subscribe(
    State(state): State<AppState>,
    Auth(actor): Auth,
    JsonBody(input): JsonBody<HookInput>,
) -> ApiResult<Response> {
    let (hook, created) = webhooks::subscribe(&state.db, state.saving(), &actor, input).await?;
    Ok(crate::response::upserted(
        format!("{BASE}/hooks/{}", hook.id),
        hook,
        created,
    ))
}

#[utoipa::path(get, path = "/hooks", operation_id = "listHooks", tag = "hooks",
    responses((status = 200, body = Value, description = "`{items: [Hook]}`"), (status = "4XX", body = ErrorEnvelope)))]
pub async fn hooks(State(state): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<Value>> {
    let items = webhooks::list_hooks(&state.db, &actor).await?;
    Ok(Json(serde_json::json!({ "items": items })))
}

/// Unsubscribes; 204 also when the hook is already gone.
#[utoipa::path(delete, path = "/hooks/{id}", operation_id = "unsubscribeHook", tag = "hooks", params(("id" = String, Path)),
    responses((status = 204), (status = "4XX", body = ErrorEnvelope)))]
pub async fn unsubscribe(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    webhooks::unsubscribe(&state.db, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The answer to an inbound webhook call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboundAccepted {
    /// The run it started; for a retry (the same delivery id), null.
    pub run_id: Option<String>,
    pub duplicate: bool,
    /// Kept as a sample of the flow, which listens for a test event
    /// (`POST /flows/{id}/samples/listen`); no run was started.
    pub sample: bool,
}

/// Inbound webhook trigger: no API key, the token is the credential. Answers 202 at once; the
/// run follows. A flow with a secret takes only calls signed as its trigger's `signature` says
/// (401 `invalid_signature`; a signed time more than 5 minutes from now is 401
/// `timestamp_out_of_tolerance`): `standard` (Standard Webhooks: `webhook-id`,
/// `webhook-timestamp`, `webhook-signature`), `stripe` (`Stripe-Signature`), `github`
/// (`X-Hub-Signature-256`), `slack` (`X-Slack-Signature`, `X-Slack-Request-Timestamp`) or `hmac`
/// (`X-Timix-Signature: sha256=<hex HMAC-SHA256 of the body>`, no timestamp). A retry with the
/// same delivery id starts no second run. A flow whose owner is removed or deactivated answers
/// 409 `flow_owner_inactive`; one of a read-only organization 403 `organization_read_only`.
/// A JSON payload nested deeper than 64 levels is a 422 (`too_deep`). When the oldest run waiting
/// for a worker has waited longer than `TIMIX_INBOUND_BACKLOG`, the call is refused before
/// anything is written: 503 `overloaded` with `Retry-After` (seconds).
#[utoipa::path(post, path = "/hooks/in/{token}", operation_id = "receiveInboundWebhook", tag = "flows", params(("token" = String, Path)),
    request_body(content = Object, description = "Any JSON payload: the trigger record of the run"),
    security(()),
    responses((status = 202, body = InboundAccepted), (status = 404, body = ErrorEnvelope),
              (status = 413, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
              (status = 422, body = ErrorEnvelope), (status = 503, body = ErrorEnvelope)))]
pub async fn inbound(
    State(state): State<AppState>,
    Path(token): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let accepted = inbound::accept(
        inbound::Inbound {
            db: &state.db,
            vault: &state.vault,
            admission: &state.admission,
            lane: state.run_lane.as_ref(),
            shared_backlog: state.shared_backlog.as_deref(),
            queues: state.queues.as_ref(),
        },
        inbound::Call {
            token: &token,
            headers: &header,
            body: &body,
        },
    )
    .await?;
    let answer = InboundAccepted {
        run_id: accepted.run_id,
        duplicate: accepted.duplicate,
        sample: accepted.sample,
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(hooks, subscribe))
        .routes(routes!(unsubscribe))
        .routes(routes!(inbound))
}
