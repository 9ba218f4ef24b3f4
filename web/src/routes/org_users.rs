//! `/org-users`: the organization's users.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use timix_engine::access::org_users::{self, OrgUser, OrgUserInput};
use timix_engine::store::list::ListParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{ListQueryDoc, OrgUserList};
use crate::response::{Created, ListResponse};
use crate::routes::BASE;

#[utoipa::path(get, path = "/org-users", operation_id = "listOrgUsers", tag = "org-users",
    params(ListQueryDoc, crate::openapi::SearchQueryDoc, crate::openapi::TombstonesQueryDoc, ("email" = Option<String>, Query), ("role" = Option<String>, Query),
           ("isActive" = Option<bool>, Query), ("externalId" = Option<String>, Query)),
    responses((status = 200, body = OrgUserList), (status = "4XX", body = ErrorEnvelope)))]
pub async fn list_users(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<ListResponse<OrgUser>> {
    let params = ListParams::parse(&org_users::LIST, &query)?;
    Ok(ListResponse(
        org_users::list(&state.db, &actor, &params).await?,
    ))
}

/// Admins add users; nobody gives a role above their own.
#[utoipa::path(post, path = "/org-users", operation_id = "createOrgUser", tag = "org-users", request_body = OrgUserInput,
    responses((status = 201, body = OrgUser), (status = 409, body = ErrorEnvelope, description = "Email taken"),
              (status = "4XX", body = ErrorEnvelope)))]
pub async fn create_user(
    State(state): State<AppState>,
    Auth(actor): Auth,
    JsonBody(input): JsonBody<OrgUserInput>,
) -> ApiResult<Created<OrgUser>> {
    let body = org_users::create(&state.db, &actor, input).await?;
    Ok(Created {
        location: format!("{BASE}/org-users/{}", body.id),
        body,
    })
}

#[utoipa::path(get, path = "/org-users/{id}", operation_id = "getOrgUser", tag = "org-users", params(("id" = String, Path)),
    responses((status = 200, body = OrgUser), (status = 404, body = ErrorEnvelope)))]
pub async fn get_user(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<OrgUser>> {
    Ok(Json(org_users::get(&state.db, &actor, &id).await?))
}

#[utoipa::path(patch, path = "/org-users/{id}", operation_id = "updateOrgUser", tag = "org-users", params(("id" = String, Path)),
    request_body = OrgUserInput,
    responses((status = 200, body = OrgUser), (status = "4XX", body = ErrorEnvelope)))]
pub async fn update_user(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<OrgUserInput>,
) -> ApiResult<Json<OrgUser>> {
    Ok(Json(
        org_users::update(&state.db, &actor, &id, input).await?,
    ))
}

/// Removes the user and revokes their keys.
#[utoipa::path(delete, path = "/org-users/{id}", operation_id = "deleteOrgUser", tag = "org-users", params(("id" = String, Path)),
    responses((status = 204), (status = "4XX", body = ErrorEnvelope)))]
pub async fn delete_user(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    org_users::delete(&state.db, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_users, create_user))
        .routes(routes!(get_user, update_user, delete_user))
}
