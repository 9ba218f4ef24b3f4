//! `/flows`: flows, enabling and testing them.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;
use timix_engine::Error;
use timix_engine::automation::flows::{self, Flow, FlowInput};
use timix_engine::automation::runs::{self, Run};
use timix_engine::store::list::ListParams;
use timix_triggers::executor::dispatch_runs;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{FlowList, ListQueryDoc};
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

/// The body of `POST /flows/{id}/test` (optional).
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestInput {
    /// The record or payload the run starts with; the trigger's sample when absent.
    #[schema(value_type = Option<Object>)]
    pub trigger: Option<serde_json::Value>,
}

/// Runs the flow once, now, on the given trigger record, or its trigger's sample record (an
/// event trigger's manifest sample, else an empty object). Enabled or not. Answers the queued
/// run: follow it at `GET /runs/{id}`.
#[utoipa::path(post, path = "/flows/{id}/test", tag = "flows", params(("id" = String, Path)),
    request_body(content = Option<TestInput>),
    responses((status = 202, body = Run), (status = "4XX", body = ErrorEnvelope)))]
pub async fn test(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<TestInput>,
) -> ApiResult<Response> {
    actor.require(timix_engine::access::auth::Permission::ManageFlows)?;
    let flow = flows::get(&state.db, &actor, &id).await?;
    let live = flows::live(&state.db, &flow.id)
        .await?
        .ok_or(Error::NotFound(flows::NOUN))?;
    let sample = input
        .trigger
        .clone()
        .or_else(|| {
            flow.trigger["event"].as_str().and_then(|event| {
                state
                    .manifests
                    .triggers
                    .values()
                    .find(|t| t.event == event)
                    .map(|t| t.sample.clone())
            })
        })
        .unwrap_or_else(|| json!({}));
    let source = format!("test:{}", ulid::Ulid::generate());
    let mut tx = state.db.begin().await?;
    let run = runs::NewRun {
        flow: &live,
        source_key: &source,
        trigger: &sample,
        lineage: &runs::Lineage::default(),
    };
    let run_id = runs::start(&mut tx, &run)
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

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(enable))
        .routes(routes!(disable))
        .routes(routes!(test))
}
