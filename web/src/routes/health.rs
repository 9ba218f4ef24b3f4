//! `/health` and `/ready`: liveness and readiness, without authentication.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};

#[derive(Serialize, ToSchema)]
pub struct Health {
    #[schema(example = "ok")]
    pub status: &'static str,
    pub version: &'static str,
}

/// Liveness: answers while the process serves requests. No authentication.
#[utoipa::path(get, path = "/health", operation_id = "getHealth", tag = "system", security(()), responses((status = 200, body = Health)))]
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
#[utoipa::path(get, path = "/ready", operation_id = "getReadiness", tag = "system", security(()),
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

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(ready))
}
