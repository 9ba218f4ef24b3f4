//! `/time-entries`: time entries and timers.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use timix_engine::billing::time_entries::{
    self, TimeEntries, TimeEntry, TimeEntryInput, TimerStart,
};
use timix_engine::store::list::ListParams;
use timix_engine::store::resource::{self, Resource};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{ListQueryDoc, TimeEntryList};
use crate::response::{Created, ListResponse, upserted};
use crate::routes::BASE;

crud_resource!(
    time_entry_routes,
    resource = TimeEntries,
    item = TimeEntry,
    input = TimeEntryInput,
    list = TimeEntryList,
    names = ("TimeEntry", "TimeEntries"),
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
        "externalId"
    ],
    more_params = [
        ("date" = Option<String>, Query, format = Date, description = "Work on this date only"),
        ("from" = Option<String>, Query, format = Date, description = "Work on or after this date"),
        ("to" = Option<String>, Query, format = Date, description = "Work on or before this date"),
        ("isRunning" = Option<bool>, Query, description = "Running timers (true) or stopped entries (false) only"),
        ("billable" = Option<bool>, Query, description = "Billable (true) or not (false) only")
    ]
);

/// Starts a timer for the key's user (or, for managers, `userId`): a running entry from now.
#[utoipa::path(post, path = "/time-entries/timer/start", operation_id = "startTimer", tag = "time-entries", request_body = TimerStart,
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
#[utoipa::path(post, path = "/time-entries/{id}/stop", operation_id = "stopTimer", tag = "time-entries", params(("id" = String, Path)),
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

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .merge(time_entry_routes::router())
        .routes(routes!(start_timer))
        .routes(routes!(stop_timer))
}
