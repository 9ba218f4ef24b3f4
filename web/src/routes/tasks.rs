//! `/tasks`: tasks.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use timix_engine::billing::tasks::{Task, TaskInput, Tasks};
use timix_engine::store::list::ListParams;
use timix_engine::store::resource::{self, Resource};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{ListQueryDoc, TaskList};
use crate::response::{Created, ListResponse, upserted};
use crate::routes::BASE;

crud_resource!(
    task_routes,
    resource = Tasks,
    item = Task,
    input = TaskInput,
    list = TaskList,
    names = ("Task", "Tasks"),
    tag = "tasks",
    collection = "/tasks",
    one = "/tasks/{id}",
    by_external_id = "/tasks/by-external-id/{externalId}",
    filters = [
        "projectId",
        "name",
        "status",
        "assigneeId",
        "userId",
        "externalId"
    ],
    more_params = [("billable" = Option<bool>, Query, description = "Billable (true) or not (false) only")]
);

pub fn router() -> OpenApiRouter<AppState> {
    task_routes::router()
}
