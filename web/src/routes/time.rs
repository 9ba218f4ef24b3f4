//! Time entries and timers, timesheets and their approval, and holiday profiles.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use timix_engine::billing::holiday_profiles::{
    HolidayProfile, HolidayProfileInput, HolidayProfiles,
};
use timix_engine::billing::time_entries::{
    self, TimeEntries, TimeEntry, TimeEntryInput, TimerStart,
};
use timix_engine::billing::timesheets::{self, RejectInput, Timesheet};
use timix_engine::store::list::ListParams;
use timix_engine::store::resource::{self, Resource};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{HolidayProfileList, ListQueryDoc, TimeEntryList, TimesheetList};
use crate::response::{Created, ListResponse, upserted};
use crate::routes::BASE;

crud_resource!(
    time_entry_routes,
    resource = TimeEntries,
    item = TimeEntry,
    input = TimeEntryInput,
    list = TimeEntryList,
    tag = "time-entries",
    collection = "/time-entries",
    one = "/time-entries/{id}",
    by_external_id = "/time-entries/by-external-id/{externalId}",
    filters = [
        "userId",
        "subtaskId",
        "taskId",
        "projectId",
        "customerId",
        "timesheetId",
        "invoiceId",
        "approvalStatus",
        "date",
        "from",
        "to",
        "isRunning",
        "billable",
        "externalId"
    ]
);

crud_resource!(
    holiday_profile_routes,
    resource = HolidayProfiles,
    item = HolidayProfile,
    input = HolidayProfileInput,
    list = HolidayProfileList,
    tag = "holiday-profiles",
    collection = "/holiday-profiles",
    one = "/holiday-profiles/{id}",
    by_external_id = "/holiday-profiles/by-external-id/{externalId}",
    filters = ["name", "countryCode", "externalId"]
);

/// Starts a timer for the key's user (or, for managers, `userId`): a running entry from now.
#[utoipa::path(post, path = "/time-entries/timer/start", tag = "time-entries", request_body = TimerStart,
    responses((status = 201, body = TimeEntry, headers(("Location" = String))),
              (status = 409, body = ErrorEnvelope, description = "`timer_already_running`: stop the running one first"),
              (status = "4XX", body = ErrorEnvelope)))]
pub async fn start_timer(
    State(state): State<AppState>,
    Auth(actor): Auth,
    JsonBody(input): JsonBody<TimerStart>,
) -> ApiResult<Created<TimeEntry>> {
    let body = time_entries::start_timer(&state.db, &actor, input).await?;
    Ok(Created {
        location: format!("{BASE}/time-entries/{}", body.id),
        body,
    })
}

/// Stops a running timer: the entry ends now, gets its duration and is priced.
#[utoipa::path(post, path = "/time-entries/{id}/stop", tag = "time-entries", params(("id" = String, Path)),
    responses((status = 200, body = TimeEntry),
              (status = 409, body = ErrorEnvelope, description = "`timer_not_running`"),
              (status = "4XX", body = ErrorEnvelope)))]
pub async fn stop_timer(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<TimeEntry>> {
    Ok(Json(
        time_entries::stop_timer(&state.db, &actor, &id).await?,
    ))
}

/// Timesheets, one per user and week, newest first. Filters: `userId`, `status`,
/// `periodStart`, and `from`/`to` on the week's first day.
#[utoipa::path(get, path = "/timesheets", tag = "timesheets",
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

#[utoipa::path(get, path = "/timesheets/{id}", tag = "timesheets", params(("id" = String, Path)),
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
#[utoipa::path(post, path = "/timesheets/{id}/submit", tag = "timesheets", params(("id" = String, Path)),
    responses((status = 200, body = Timesheet), (status = 409, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn submit(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Timesheet>> {
    Ok(Json(timesheets::submit(&state.db, &actor, &id).await?))
}

/// Approves a submitted week (managers): its entries are locked.
#[utoipa::path(post, path = "/timesheets/{id}/approve", tag = "timesheets", params(("id" = String, Path)),
    responses((status = 200, body = Timesheet), (status = 409, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn approve(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Timesheet>> {
    Ok(Json(timesheets::approve(&state.db, &actor, &id).await?))
}

/// Sends a submitted (or approved, not invoiced) week back to its user, with a reason.
#[utoipa::path(post, path = "/timesheets/{id}/reject", tag = "timesheets", params(("id" = String, Path)),
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
        .merge(time_entry_routes::router())
        .merge(holiday_profile_routes::router())
        .routes(routes!(start_timer))
        .routes(routes!(stop_timer))
        .routes(routes!(list_timesheets))
        .routes(routes!(get_timesheet))
        .routes(routes!(submit))
        .routes(routes!(approve))
        .routes(routes!(reject))
}
