//! `/me`: the caller, their role and permissions, the key and its rate limit.

use axum::Json;
use axum::extract::State;
use serde::Serialize;
use timix_engine::access::auth::Role;
use timix_engine::access::organizations::{BillingState, Plan};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::ErrorEnvelope;
use crate::extract::Auth;

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
#[utoipa::path(get, path = "/me", operation_id = "getMe", tag = "system",
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

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(me))
}
