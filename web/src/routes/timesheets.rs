//! `/timesheets`: timesheets and their approval.

use axum::Json;
use axum::extract::{Path, State};
use timix_engine::billing::timesheets::{self, RejectInput, Timesheet};
use timix_engine::store::list::ListParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{ListQueryDoc, TimesheetList};
use crate::response::ListResponse;

/// Timesheets, one per user and week, newest first. Filters: `userId`, `status`,
/// `periodStart`, and `from`/`to` on the week's first day.
#[utoipa::path(get, path = "/timesheets", operation_id = "listTimesheets", tag = "timesheets",
    params(ListQueryDoc, ("userId" = Option<String>, Query), ("status" = Option<String>, Query),
           ("periodStart" = Option<String>, Query), ("from" = Option<String>, Query), ("to" = Option<String>, Query)),
    responses((status = 200, body = TimesheetList), (status = "4XX", body = ErrorEnvelope)))]
pub async fn list_timesheets(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<ListResponse<Timesheet>> {
    let params = ListParams::parse(&timesheets::LIST, &query)?;
    Ok(ListResponse(
        timesheets::list(&state.db, &actor, &params).await?,
    ))
}

#[utoipa::path(get, path = "/timesheets/{id}", operation_id = "getTimesheet", tag = "timesheets", params(("id" = String, Path)),
    responses((status = 200, body = Timesheet), (status = 404, body = ErrorEnvelope)))]
pub async fn get_timesheet(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Timesheet>> {
    Ok(Json(timesheets::get(&state.db, &actor, &id).await?))
}

/// Submits an open or rejected week for approval (its user, or a manager). Refused with 409
/// `timer_running` while a timer of the week runs.
#[utoipa::path(post, path = "/timesheets/{id}/submit", operation_id = "submitTimesheet", tag = "timesheets", params(("id" = String, Path)),
    responses((status = 200, body = Timesheet), (status = 409, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn submit(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Timesheet>> {
    Ok(Json(timesheets::submit(&state.db, &actor, &id).await?))
}

/// Approves a submitted week (managers): its entries are locked.
#[utoipa::path(post, path = "/timesheets/{id}/approve", operation_id = "approveTimesheet", tag = "timesheets", params(("id" = String, Path)),
    responses((status = 200, body = Timesheet), (status = 409, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn approve(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Timesheet>> {
    Ok(Json(timesheets::approve(&state.db, &actor, &id).await?))
}

/// Sends a submitted (or approved, not invoiced) week back to its user, with a reason.
#[utoipa::path(post, path = "/timesheets/{id}/reject", operation_id = "rejectTimesheet", tag = "timesheets", params(("id" = String, Path)),
    request_body = RejectInput,
    responses((status = 200, body = Timesheet), (status = 409, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn reject(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<RejectInput>,
) -> ApiResult<Json<Timesheet>> {
    Ok(Json(
        timesheets::reject(&state.db, &actor, &id, input).await?,
    ))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_timesheets))
        .routes(routes!(get_timesheet))
        .routes(routes!(submit))
        .routes(routes!(approve))
        .routes(routes!(reject))
}
