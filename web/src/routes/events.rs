//! `/events`: the ordered change log.

use axum::Json;
use axum::extract::State;
use timix_engine::store::events::{self, EventPage, EventQuery};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, QueryPairs};

/// Reads the organization's change log in order. Keep `nextAfter` and pass it as `after`.
#[utoipa::path(get, path = "/events", operation_id = "listEvents", tag = "events",
    params(("after" = Option<i64>, Query, minimum = 0, description = "Return events with a larger seq (default 0)"),
           ("types" = Option<String>, Query, description = "Comma list, e.g. customer.created,project.updated"),
           ("limit" = Option<i64>, Query, minimum = 1, maximum = 1000, description = "1-1000, default 100")),
    responses((status = 200, body = EventPage), (status = "4XX", body = ErrorEnvelope)))]
pub async fn list_events(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Json<EventPage>> {
    let query = EventQuery::from_params(&query)?;
    Ok(Json(events::list(&state.db, &actor, &query).await?))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list_events))
}
