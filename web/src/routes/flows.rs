//! `/flows`, `/runs` and the inbound webhook triggers `/hooks/in/{token}`.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::json;
use timix_engine::Error;
use timix_engine::automation::flows::{self, Flow, FlowInput};
use timix_engine::automation::runs::{self, Run};
use timix_engine::store::list::ListParams;
use timix_triggers::executor::dispatch_runs;
use timix_triggers::inbound;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{FlowList, ListQueryDoc, RunList};
use crate::response::{Created, ListResponse};
use crate::routes::BASE;

#[utoipa::path(get, path = "/flows", tag = "flows",
    params(ListQueryDoc, ("isEnabled" = Option<bool>, Query), ("triggerType" = Option<String>, Query), ("event" = Option<String>, Query)),
    responses((status = 200, body = FlowList), (status = "4XX", body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<ListResponse<Flow>> {
    let params = ListParams::parse(&flows::LIST, &query)?;
    Ok(ListResponse(flows::list(&state.db, &actor, &params).await?))
}

/// Creates a flow. It is checked whole against the manifests: an unknown action, a missing
/// required input, a template that does not parse or a bad cron expression is a 422 naming the
/// field (`steps[1].input.name`).
#[utoipa::path(post, path = "/flows", tag = "flows", request_body = FlowInput,
    responses((status = 201, body = Flow, headers(("Location" = String))),
              (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    JsonBody(input): JsonBody<FlowInput>,
) -> ApiResult<Created<Flow>> {
    let body = flows::create(&state.db, state.saving(), &actor, input).await?;
    Ok(Created {
        location: format!("{BASE}/flows/{}", body.id),
        body,
    })
}

#[utoipa::path(get, path = "/flows/{id}", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = Flow), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Flow>> {
    Ok(Json(flows::get(&state.db, &actor, &id).await?))
}

#[utoipa::path(patch, path = "/flows/{id}", tag = "flows", params(("id" = String, Path)), request_body = FlowInput,
    responses((status = 200, body = Flow), (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<FlowInput>,
) -> ApiResult<Json<Flow>> {
    Ok(Json(
        flows::update(&state.db, state.saving(), &actor, &id, input).await?,
    ))
}

#[utoipa::path(delete, path = "/flows/{id}", tag = "flows", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    flows::delete(&state.db, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/flows/{id}/enable", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = Flow), (status = "4XX", body = ErrorEnvelope)))]
pub async fn enable(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Flow>> {
    Ok(Json(
        flows::set_enabled(&state.db, state.saving(), &actor, &id, true).await?,
    ))
}

#[utoipa::path(post, path = "/flows/{id}/disable", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = Flow), (status = "4XX", body = ErrorEnvelope)))]
pub async fn disable(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Flow>> {
    Ok(Json(
        flows::set_enabled(&state.db, state.saving(), &actor, &id, false).await?,
    ))
}

/// Runs the flow once, now, on its trigger's sample record (an event trigger's manifest
/// sample, else an empty object). Enabled or not. Answers the queued run: follow it at
/// `GET /runs/{id}`.
#[utoipa::path(post, path = "/flows/{id}/test", tag = "flows", params(("id" = String, Path)),
    responses((status = 202, body = Run), (status = "4XX", body = ErrorEnvelope)))]
pub async fn test(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    actor.require(timix_engine::access::auth::Permission::ManageFlows)?;
    let flow = flows::get(&state.db, &actor, &id).await?;
    let live = flows::live(&state.db, &flow.id)
        .await?
        .ok_or(Error::NotFound(flows::NOUN))?;
    let sample = flow.trigger["event"]
        .as_str()
        .and_then(|event| {
            state
                .manifests
                .triggers
                .values()
                .find(|t| t.event == event)
                .map(|t| t.sample.clone())
        })
        .unwrap_or_else(|| json!({}));
    let source = format!("test:{}", ulid::Ulid::generate());
    let mut tx = state.db.begin().await?;
    let run_id = runs::start(&mut tx, &live, &source, &sample, &runs::Lineage::default())
        .await?
        .ok_or_else(|| Error::Internal("a test run was not started".into()))?;
    tx.commit().await?;
    dispatch_runs(
        state.run_lane.as_ref(),
        state.queues.as_ref(),
        vec![run_id.clone()],
    )
    .await;
    let run = runs::get(&state.db, &actor, &run_id).await?;
    Ok((StatusCode::ACCEPTED, Json(run)).into_response())
}

#[utoipa::path(get, path = "/runs", tag = "runs",
    params(ListQueryDoc, ("flowId" = Option<String>, Query), ("status" = Option<String>, Query)),
    responses((status = 200, body = RunList), (status = "4XX", body = ErrorEnvelope)))]
pub async fn list_runs(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<ListResponse<Run>> {
    let params = ListParams::parse(&runs::LIST, &query)?;
    Ok(ListResponse(runs::list(&state.db, &actor, &params).await?))
}

#[utoipa::path(get, path = "/runs/{id}", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = Run), (status = 404, body = ErrorEnvelope)))]
pub async fn get_run(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Run>> {
    Ok(Json(runs::get(&state.db, &actor, &id).await?))
}

/// Starts a failed run again from its first failed step.
#[utoipa::path(post, path = "/runs/{id}/replay", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = Run), (status = 409, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn replay(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Run>> {
    let run = runs::replay(&state.db, &actor, &id).await?;
    dispatch_runs(
        state.run_lane.as_ref(),
        state.queues.as_ref(),
        vec![run.id.clone()],
    )
    .await;
    Ok(Json(run))
}

/// The answer to an inbound webhook call.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InboundAccepted {
    /// The run it started; for a retry (the same delivery id), null.
    pub run_id: Option<String>,
    pub duplicate: bool,
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
/// A JSON payload nested deeper than 64 levels is a 422 (`too_deep`).
#[utoipa::path(post, path = "/hooks/in/{token}", tag = "flows", params(("token" = String, Path)),
    request_body(content = Object, description = "Any JSON payload: the trigger record of the run"),
    security(()),
    responses((status = 202, body = InboundAccepted), (status = 404, body = ErrorEnvelope),
              (status = 413, body = ErrorEnvelope), (status = 401, body = ErrorEnvelope),
              (status = 403, body = ErrorEnvelope), (status = 409, body = ErrorEnvelope),
              (status = 422, body = ErrorEnvelope)))]
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
    };
    Ok((StatusCode::ACCEPTED, Json(answer)).into_response())
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(enable))
        .routes(routes!(disable))
        .routes(routes!(test))
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(replay))
        .routes(routes!(inbound))
}
