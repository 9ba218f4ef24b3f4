//! `/health`, `/me` and `/organization`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use timix_engine::access::auth::Role;
use timix_engine::access::organizations::{
    self, BillingState, Organization, OrganizationPatch, Plan,
};
use timix_engine::access::usage::{self, Usage};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody};

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
    pub version: &'static str,
}

/// Liveness: answers while the process serves requests. No authentication.
#[utoipa::path(get, path = "/health", tag = "system", security(()), responses((status = 200, body = Health)))]
pub async fn health() -> Json<Health> {
    Json(Health {
        status: "ok",
        version: env!("CARGO_PKG_VERSION"),
    })
}

#[derive(Serialize, ToSchema)]
pub struct Ready {
    #[schema(example = "ready")]
    pub status: &'static str,
}

/// Readiness: the database answers and its migrations are applied; otherwise 503
/// `not_ready`. No authentication. Also served at `/ready`.
#[utoipa::path(get, path = "/ready", tag = "system", security(()),
    responses((status = 200, body = Ready), (status = 503, body = ErrorEnvelope)))]
pub async fn ready(State(state): State<AppState>) -> ApiResult<Json<Ready>> {
    match timix_engine::store::health::readiness(&state.db).await {
        Ok(()) => Ok(Json(Ready { status: "ready" })),
        Err(reason) => {
            tracing::warn!(%reason, "Not ready.");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "not_ready",
                reason.public_message(),
            ))
        }
    }
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Me {
    pub api_key: MeKey,
    pub user: MeUser,
    pub organization: MeOrganization,
    /// What this key may do, e.g. `read`, `customers:write`.
    pub permissions: Vec<&'static str>,
    pub rate_limit: MeRateLimit,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeKey {
    pub id: String,
    pub name: String,
    pub prefix: String,
    pub expires_at: Option<String>,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeUser {
    pub id: String,
    pub email: String,
    pub name: String,
    /// The key's effective role.
    pub role: Role,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeOrganization {
    pub id: String,
    pub name: String,
    pub plan: Plan,
    pub billing_state: BillingState,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeRateLimit {
    pub limit: u32,
    pub window_seconds: u32,
}

/// Who this key is: the key, its user, the organization, permissions and rate limit.
/// A good connection test.
#[utoipa::path(get, path = "/me", tag = "system",
    responses((status = 200, body = Me), (status = 401, body = ErrorEnvelope)))]
pub async fn me(State(state): State<AppState>, Auth(actor): Auth) -> Json<Me> {
    Json(Me {
        permissions: actor.permissions(),
        api_key: MeKey {
            id: actor.api_key.id.clone(),
            name: actor.api_key.name.clone(),
            prefix: actor.api_key.prefix.clone(),
            expires_at: timix_engine::store::clock::format_opt(actor.api_key.expires_at),
        },
        user: MeUser {
            id: actor.user_id.clone(),
            email: actor.user_email.clone(),
            name: actor.user_name.clone(),
            role: actor.role,
        },
        rate_limit: MeRateLimit {
            limit: crate::api_gate::quota(&state, &actor).limit,
            window_seconds: 60,
        },
        organization: MeOrganization {
            id: actor.organization.id,
            name: actor.organization.name,
            plan: actor.organization.plan,
            billing_state: actor.organization.billing_state,
        },
    })
}

#[utoipa::path(get, path = "/organization", tag = "organization",
    responses((status = 200, body = Organization), (status = 401, body = ErrorEnvelope)))]
pub async fn get_organization(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> ApiResult<Json<Organization>> {
    Ok(Json(organizations::get(&state.db, &actor).await?))
}

/// Owners change the name, currency, time zone and first day of the week. Plan and billing
/// state are refused here: the operator changes them.
#[utoipa::path(patch, path = "/organization", tag = "organization", request_body = OrganizationPatch,
    responses((status = 200, body = Organization), (status = 403, body = ErrorEnvelope),
              (status = 422, body = ErrorEnvelope)))]
pub async fn update_organization(
    State(state): State<AppState>,
    Auth(actor): Auth,
    JsonBody(patch): JsonBody<OrganizationPatch>,
) -> ApiResult<Json<Organization>> {
    Ok(Json(organizations::update(&state.db, &actor, patch).await?))
}

/// This key's rate limit now, request counts of the key and the organization per day for the
/// last 90 days, and a linear forecast of the month.
#[utoipa::path(get, path = "/usage", tag = "system",
    responses((status = 200, body = Usage), (status = 401, body = ErrorEnvelope)))]
pub async fn usage(State(state): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<Usage>> {
    let quota = crate::api_gate::quota(&state, &actor);
    let now = state.limiter.peek(&actor.api_key.id, quota).await?;
    Ok(Json(
        usage::report(&state.db, &state.usage, &actor, now).await?,
    ))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
        .routes(routes!(usage))
        .routes(routes!(me))
        .routes(routes!(get_organization, update_organization))
}
