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

#[utoipa::path(get, path = "/flows", operation_id = "listFlows", tag = "flows",
    params(ListQueryDoc, crate::openapi::SearchQueryDoc, crate::openapi::TombstonesQueryDoc, ("isEnabled" = Option<bool>, Query), ("triggerType" = Option<String>, Query), ("event" = Option<String>, Query)),
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
#[utoipa::path(post, path = "/flows", operation_id = "createFlow", tag = "flows", request_body = FlowInput,
    responses((status = 201, body = Flow, headers(("Location" = String))),
              (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    JsonBody(input): JsonBody<FlowInput>,
) -> ApiResult<Created<Flow>> {
    let manifests = state.manifests_for_flow(actor.org_id(), &input).await?;
    let body = flows::create(&state.db, state.saving_with(&manifests), &actor, input).await?;
    Ok(Created {
        location: format!("{BASE}/flows/{}", body.id),
        body,
    })
}

#[utoipa::path(get, path = "/flows/{id}", operation_id = "getFlow", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = Flow), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Flow>> {
    Ok(Json(flows::get(&state.db, &actor, &id).await?))
}

#[utoipa::path(patch, path = "/flows/{id}", operation_id = "updateFlow", tag = "flows", params(("id" = String, Path)), request_body = FlowInput,
    responses((status = 200, body = Flow), (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<FlowInput>,
) -> ApiResult<Json<Flow>> {
    let manifests = state.manifests_for_flow(actor.org_id(), &input).await?;
    Ok(Json(
        flows::update(&state.db, state.saving_with(&manifests), &actor, &id, input).await?,
    ))
}

#[utoipa::path(delete, path = "/flows/{id}", operation_id = "deleteFlow", tag = "flows", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    flows::delete(&state.db, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/flows/{id}/enable", operation_id = "enableFlow", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = Flow), (status = "4XX", body = ErrorEnvelope)))]
pub async fn enable(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Flow>> {
    let manifests = state.manifests_for(actor.org_id()).await?;
    Ok(Json(
        flows::set_enabled(&state.db, state.saving_with(&manifests), &actor, &id, true).await?,
    ))
}

#[utoipa::path(post, path = "/flows/{id}/disable", operation_id = "disableFlow", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = Flow), (status = "4XX", body = ErrorEnvelope)))]
pub async fn disable(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Flow>> {
    let manifests = state.manifests_for(actor.org_id()).await?;
    Ok(Json(
        flows::set_enabled(&state.db, state.saving_with(&manifests), &actor, &id, false).await?,
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
#[utoipa::path(post, path = "/flows/{id}/test", operation_id = "testFlow", tag = "flows", params(("id" = String, Path)),
    request_body(content = Option<TestInput>),
    responses((status = 200, body = Run), (status = 202, body = Run), (status = "4XX", body = ErrorEnvelope)))]
pub async fn test(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<TestInput>,
) -> ApiResult<Response> {
    actor.require(timix_engine::access::auth::Permission::ManageFlows)?;
    let steps = if input.draft {
        Some(draft_steps(&state, &actor, &id).await?)
    } else {
        None
    };
    let options = runs::TestOptions {
        dry_run: input.dry_run,
        pinned: input.pinned,
        steps,
        context: None,
    };
    let test = TestRun {
        record: input.record.or(input.trigger),
        wait: options.dry_run,
        options,
        keep_record: true,
    };
    start_test(&state, &actor, &id, test).await
}

/// The body of `POST /flows/{id}/steps/{key}/test`.
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StepTestInput {
    /// What the step sees: `trigger` (the latest sample when absent), earlier `steps`' outputs
    /// by key, and for a step inside a loop its `item` and `index`.
    #[serde(default)]
    pub context: runs::StepContext,
    /// Render and check the input, perform nothing; the output is the manifest's sample.
    #[serde(default)]
    pub dry_run: bool,
    /// Test the step as the saved draft has it.
    #[serde(default)]
    pub draft: bool,
}

/// Runs one step of the flow alone (a branch, loop or path with what it holds), as a run with
/// `mode: test`, on the given context. Answers 200 with the finished run, or 202 with the run
/// still going after 10 seconds (follow it at `GET /runs/{id}`).
#[utoipa::path(post, path = "/flows/{id}/steps/{key}/test", operation_id = "testFlowStep", tag = "flows",
    params(("id" = String, Path), ("key" = String, Path)),
    request_body(content = Option<StepTestInput>),
    responses((status = 200, body = Run), (status = 202, body = Run), (status = "4XX", body = ErrorEnvelope)))]
pub async fn test_step(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((id, key)): Path<(String, String)>,
    JsonBody(input): JsonBody<StepTestInput>,
) -> ApiResult<Response> {
    actor.require(timix_engine::access::auth::Permission::ManageFlows)?;
    let steps = if input.draft {
        draft_steps(&state, &actor, &id).await?
    } else {
        flows::get(&state.db, &actor, &id).await?.steps
    };
    let node = flows::program::node_by_key(&steps, &key).ok_or(Error::NotFound("step"))?;
    let mut context = input.context;
    let record = context.trigger.take();
    let options = runs::TestOptions {
        dry_run: input.dry_run,
        pinned: Default::default(),
        steps: Some(json!([node])),
        context: Some(context),
    };
    let test = TestRun {
        record,
        options,
        wait: true,
        keep_record: false,
    };
    start_test(&state, &actor, &id, test).await
}

async fn draft_steps(
    state: &AppState,
    actor: &timix_engine::access::auth::Actor,
    id: &str,
) -> ApiResult<serde_json::Value> {
    Ok(flows::drafts::get(&state.db, &state.manifests, actor, id)
        .await?
        .steps)
}

/// A test run to start: on `record` (else the trigger's latest sample), answered finished when
/// `wait` and it ends within 10 seconds.
struct TestRun {
    record: Option<serde_json::Value>,
    options: runs::TestOptions,
    wait: bool,
    /// Whether `record` is a whole trigger record, to keep as the flow's newest sample (a step
    /// test's context is often only part of one).
    keep_record: bool,
}

/// Starts a test run of a flow and answers it: finished (200) when it waits and ends within
/// 10 seconds, else queued or going (202).
async fn start_test(
    state: &AppState,
    actor: &timix_engine::access::auth::Actor,
    id: &str,
    test: TestRun,
) -> ApiResult<Response> {
    let TestRun {
        record,
        options,
        wait,
        keep_record,
    } = test;
    let flow = flows::get(&state.db, actor, id).await?;
    let live = flows::live(&state.db, &flow.id)
        .await?
        .ok_or(Error::NotFound(flows::NOUN))?;
    let trigger = match record.clone() {
        Some(record) => record,
        None => flows::samples::of_trigger(&state.db, &state.manifests, &flow.id, &flow.trigger)
            .await?
            .unwrap_or_else(|| json!({})),
    };
    let source = format!("test:{}", ulid::Ulid::generate());
    let mut tx = state.db.begin().await?;
    let run = runs::NewRun {
        flow: &live,
        source_key: &source,
        trigger: &trigger,
        lineage: &runs::Lineage::default(),
        test: Some(&options),
    };
    let run_id = runs::start(&mut tx, &run)
        .await?
        .ok_or_else(|| Error::Internal("a test run was not started".into()))?;
    // A record someone tests with is what they expect the trigger to give: drafts check
    // variables against it, and the next test without a record uses it.
    if let (Some(record), true) = (&record, keep_record) {
        flows::samples::keep(&mut tx, &flow.id, "test", record).await?;
    }
    tx.commit().await?;
    dispatch_runs(
        &state.db,
        state.run_lane.as_ref(),
        state.queues.as_ref(),
        vec![run_id.clone()],
    )
    .await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let run = runs::get(&state.db, actor, &run_id).await?;
        if wait && run.status.is_finished() {
            return Ok((StatusCode::OK, Json(run)).into_response());
        }
        if !wait || tokio::time::Instant::now() > deadline {
            return Ok((StatusCode::ACCEPTED, Json(run)).into_response());
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
        .routes(routes!(test_step))
}
