//! `/organization`: the caller's organization.

use axum::Json;
use axum::extract::State;
use timix_engine::access::organizations::{self, Organization, OrganizationPatch};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody};

#[utoipa::path(get, path = "/organization", operation_id = "getOrganization", tag = "organization",
    responses((status = 200, body = Organization), (status = 401, body = ErrorEnvelope)))]
pub async fn get_organization(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> ApiResult<Json<Organization>> {
    Ok(Json(organizations::get(&state.db, &actor).await?))
}

/// Owners change the name, currency, time zone and first day of the week. Plan and billing
/// state are refused here: the operator changes them.
#[utoipa::path(patch, path = "/organization", operation_id = "updateOrganization", tag = "organization", request_body = OrganizationPatch,
    responses((status = 200, body = Organization), (status = 403, body = ErrorEnvelope),
              (status = 422, body = ErrorEnvelope)))]
pub async fn update_organization(
    State(state): State<AppState>,
    Auth(actor): Auth,
    JsonBody(patch): JsonBody<OrganizationPatch>,
) -> ApiResult<Json<Organization>> {
    Ok(Json(organizations::update(&state.db, &actor, patch).await?))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(get_organization, update_organization))
}
