//! `/projects`: projects.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use timix_engine::billing::projects::{Project, ProjectInput, Projects};
use timix_engine::store::list::ListParams;
use timix_engine::store::resource::{self, Resource};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{ListQueryDoc, ProjectList};
use crate::response::{Created, ListResponse, upserted};
use crate::routes::BASE;

crud_resource!(
    project_routes,
    resource = Projects,
    item = Project,
    input = ProjectInput,
    list = ProjectList,
    names = ("Project", "Projects"),
    tag = "projects",
    collection = "/projects",
    one = "/projects/{id}",
    by_external_id = "/projects/by-external-id/{externalId}",
    filters = [
        "customerId",
        "name",
        "code",
        "externalId",
        "billingMethod"
    ],
    more_params = [("isArchived" = Option<bool>, Query, description = "Archived (true) or active (false) only")]
);

pub fn router() -> OpenApiRouter<AppState> {
    project_routes::router()
}
