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
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TestInput {
    /// The record or payload the run starts with; the trigger's latest sample when absent
    /// (a captured one, else the trigger manifest's).
    #[schema(value_type = Option<Object>)]
    pub record: Option<serde_json::Value>,
    /// The same as `record` (the name of earlier versions).
    #[schema(value_type = Option<Object>)]
    pub trigger: Option<serde_json::Value>,
    /// Test the saved draft's steps instead of the live version's.
    #[serde(default)]
    pub draft: bool,
    /// Perform no action: each action's output is its pinned one, else its manifest's sample;
    /// delays are not waited for. The answer is the finished run.
    #[serde(default)]
    pub dry_run: bool,
    /// Outputs by step key, used instead of performing those steps.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub pinned: serde_json::Map<String, serde_json::Value>,
}

/// Runs the flow once, now, as a run with `mode: test`, on the given record or its trigger's
/// sample, enabled or not. A real test answers 202 with the queued run (follow it at
/// `GET /runs/{id}`); a dry run answers 200 with the finished run.
#[utoipa::path(post, path = "/flows/{id}/test", tag = "flows", params(("id" = String, Path)),
    request_body(content = Option<TestInput>),
    responses((status = 200, body = Run), (status = 202, body = Run), (status = "4XX", body = ErrorEnvelope)))]
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
    let given = input.record.clone().or_else(|| input.trigger.clone());
    let sample = match given.clone() {
        Some(record) => record,
        None => flows::samples::of_trigger(&state.db, &state.manifests, &flow.id, &flow.trigger)
            .await?
            .unwrap_or_else(|| json!({})),
    };
    let steps = if input.draft {
        Some(
            flows::drafts::get(&state.db, &state.manifests, &actor, &id)
                .await?
                .steps,
        )
    } else {
        None
    };
    let options = runs::TestOptions {
        dry_run: input.dry_run,
        pinned: input.pinned,
        steps,
    };
    let source = format!("test:{}", ulid::Ulid::generate());
    let mut tx = state.db.begin().await?;
    let run = runs::NewRun {
        flow: &live,
        source_key: &source,
        trigger: &sample,
        lineage: &runs::Lineage::default(),
        test: Some(&options),
    };
    let run_id = runs::start(&mut tx, &run)
        .await?
        .ok_or_else(|| Error::Internal("a test run was not started".into()))?;
    // A record someone tests with is what they expect the trigger to give: drafts check
    // variables against it, and the next test without a record uses it.
    if let Some(record) = &given {
        flows::samples::keep(&mut tx, &flow.id, "test", record).await?;
    }
    tx.commit().await?;
    dispatch_runs(
        state.run_lane.as_ref(),
        state.queues.as_ref(),
        vec![run_id.clone()],
    )
    .await;
    if !options.dry_run {
        let run = runs::get(&state.db, &actor, &run_id).await?;
        return Ok((StatusCode::ACCEPTED, Json(run)).into_response());
    }
    // A dry run performs nothing and waits for nothing: it ends in moments.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let run = runs::get(&state.db, &actor, &run_id).await?;
        if run.status.is_finished() || tokio::time::Instant::now() > deadline {
            let status = if run.status.is_finished() {
                StatusCode::OK
            } else {
                StatusCode::ACCEPTED
            };
            return Ok((status, Json(run)).into_response());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(enable))
        .routes(routes!(disable))
        .routes(routes!(test))
}
