//! `/usage`: the organization's request counts.

use axum::Json;
use axum::extract::State;
use timix_engine::access::usage::{self, Usage};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::Auth;

/// This key's rate limit now, request counts of the key and the organization per day for the
/// last 90 days, and a linear forecast of the month.
#[utoipa::path(get, path = "/usage", operation_id = "getUsage", tag = "system",
    responses((status = 200, body = Usage), (status = 401, body = ErrorEnvelope)))]
pub async fn usage(State(state): State<AppState>, Auth(actor): Auth) -> ApiResult<Json<Usage>> {
    let quota = crate::api_gate::quota(&state, &actor);
    let now = state.limiter.peek(&actor.api_key.id, quota).await?;
    Ok(Json(
        usage::report(&state.db, &state.usage, &actor, now).await?,
    ))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(usage))
}
