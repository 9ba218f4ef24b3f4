//! `/runs`: flow runs, their history and replay.

use axum::Json;
use axum::extract::{Path, State};
use timix_engine::automation::runs::{self, Run};
use timix_engine::store::list::ListParams;
use timix_triggers::executor::dispatch_runs;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, QueryPairs};
use crate::openapi::{ListQueryDoc, RunList};
use crate::response::ListResponse;

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

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_runs))
        .routes(routes!(get_run))
        .routes(routes!(replay))
}
