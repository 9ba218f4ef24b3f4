//! `/subtasks`: subtasks.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use timix_engine::billing::subtasks::{Subtask, SubtaskInput, Subtasks};
use timix_engine::store::list::ListParams;
use timix_engine::store::resource::{self, Resource};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{ListQueryDoc, SubtaskList};
use crate::response::{Created, ListResponse, upserted};
use crate::routes::BASE;

crud_resource!(
    subtask_routes,
    resource = Subtasks,
    item = Subtask,
    input = SubtaskInput,
    list = SubtaskList,
    names = ("Subtask", "Subtasks"),
    tag = "subtasks",
    collection = "/subtasks",
    one = "/subtasks/{id}",
    by_external_id = "/subtasks/by-external-id/{externalId}",
    filters = [
        "taskId",
        "projectId",
        "name",
        "status",
        "assigneeId",
        "userId",
        "externalId"
    ]
);

pub fn router() -> OpenApiRouter<AppState> {
    subtask_routes::router()
}
