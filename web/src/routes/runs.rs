//! `/runs`: flow runs, their history and replay.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use timix_engine::automation::runs::{self, BulkReplayInput, ReplayInput, Run};
use timix_engine::store::list::ListParams;
use timix_triggers::executor::dispatch_runs;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{ListQueryDoc, RunList};
use crate::response::ListResponse;

#[utoipa::path(get, path = "/runs", operation_id = "listRuns", tag = "runs",
    params(ListQueryDoc, ("flowId" = Option<String>, Query), ("status" = Option<String>, Query),
        ("mode" = Option<String>, Query, description = "live or test"),
        ("eventId" = Option<String>, Query, description = "runs the event started"),
        ("resourceId" = Option<String>, Query, description = "runs started with this record"),
        ("createdFrom" = Option<String>, Query), ("createdTo" = Option<String>, Query)),
    responses((status = 200, body = RunList), (status = "4XX", body = ErrorEnvelope)))]
pub async fn list_runs(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<ListResponse<Run>> {
    let params = ListParams::parse(&runs::LIST, &query)?;
    Ok(ListResponse(runs::list(&state.db, &actor, &params).await?))
}

#[utoipa::path(get, path = "/runs/{id}", operation_id = "getRun", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = Run), (status = 404, body = ErrorEnvelope)))]
pub async fn get_run(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Run>> {
    Ok(Json(runs::get(&state.db, &actor, &id).await?))
}

/// Starts a finished run again: from its failed step (the default for a failed run; what
/// succeeded keeps its output), from the start (the default otherwise) or from a step path,
/// on the version it ran (default) or the flow's live one.
#[utoipa::path(post, path = "/runs/{id}/replay", operation_id = "replayRun", tag = "runs", params(("id" = String, Path)),
    request_body(content = Option<ReplayInput>),
    responses((status = 200, body = Run), (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn replay(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<ReplayInput>,
) -> ApiResult<Json<Run>> {
    let run = runs::replay(&state.db, &actor, &id, &input).await?;
    dispatch_runs(
        &state.db,
        state.run_lane.as_ref(),
        state.queues.as_ref(),
        vec![run.id.clone()],
    )
    .await;
    Ok(Json(run))
}

/// How many runs a bulk replay queued.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct Replayed {
    pub count: usize,
}

/// Replays the finished runs of a flow that match (at most 5,000): they are queued again before
/// the answer and executed in the background; follow them with `GET /runs?flowId=&status=`.
#[utoipa::path(post, path = "/runs/replay", operation_id = "replayRuns", tag = "runs", request_body = BulkReplayInput,
    responses((status = 202, body = Replayed), (status = 404, body = ErrorEnvelope, description = "No such flow"), (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn replay_many(
    State(state): State<AppState>,
    Auth(actor): Auth,
    JsonBody(input): JsonBody<BulkReplayInput>,
) -> ApiResult<Response> {
    let replayed = runs::replay_many(&state.db, &state.admission, &actor, &input).await?;
    let (count, ids) = (replayed.count, replayed.now);
    let (db, lane, queues) = (
        state.db.clone(),
        state.run_lane.clone(),
        state.queues.clone(),
    );
    tokio::spawn(async move {
        for chunk in ids.chunks(100) {
            dispatch_runs(&db, lane.as_ref(), queues.as_ref(), chunk.to_vec()).await;
        }
    });
    Ok((StatusCode::ACCEPTED, Json(Replayed { count })).into_response())
}

/// Cancels a queued, waiting or running run; a running one stops before its next step.
#[utoipa::path(post, path = "/runs/{id}/cancel", operation_id = "cancelRun", tag = "runs", params(("id" = String, Path)),
    responses((status = 200, body = Run), (status = 409, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn cancel(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Run>> {
    Ok(Json(runs::cancel(&state.db, &actor, &id).await?))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_runs))
        .routes(routes!(replay_many))
        .routes(routes!(get_run))
        .routes(routes!(replay))
        .routes(routes!(cancel))
}
