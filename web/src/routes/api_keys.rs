//! `/api-keys`: API keys.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use timix_engine::access::api_keys::{self, ApiKey, ApiKeyInput, CreatedApiKey};
use timix_engine::store::list::ListParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{ApiKeyList, ListQueryDoc};
use crate::response::{Created, ListResponse};
use crate::routes::BASE;

#[utoipa::path(get, path = "/api-keys", operation_id = "listApiKeys", tag = "api-keys",
    params(ListQueryDoc, crate::openapi::SearchQueryDoc, ("userId" = Option<String>, Query)),
    responses((status = 200, body = ApiKeyList), (status = "4XX", body = ErrorEnvelope)))]
pub async fn list_keys(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<ListResponse<ApiKey>> {
    let params = ListParams::parse(&api_keys::LIST, &query)?;
    Ok(ListResponse(
        api_keys::list(&state.db, &actor, &params).await?,
    ))
}

/// Creates a key for the calling user (professional and business plans). The full key is in
/// this answer only.
#[utoipa::path(post, path = "/api-keys", operation_id = "createApiKey", tag = "api-keys", request_body = ApiKeyInput,
    responses((status = 201, body = CreatedApiKey), (status = 403, body = ErrorEnvelope, description = "plan_required or forbidden"),
              (status = "4XX", body = ErrorEnvelope)))]
pub async fn create_key(
    State(state): State<AppState>,
    Auth(actor): Auth,
    JsonBody(input): JsonBody<ApiKeyInput>,
) -> ApiResult<Created<CreatedApiKey>> {
    let body = api_keys::create(&state.db, &actor, input).await?;
    Ok(Created {
        location: format!("{BASE}/api-keys/{}", body.api_key.id),
        body,
    })
}

#[utoipa::path(get, path = "/api-keys/{id}", operation_id = "getApiKey", tag = "api-keys", params(("id" = String, Path)),
    responses((status = 200, body = ApiKey), (status = 404, body = ErrorEnvelope)))]
pub async fn get_key(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<ApiKey>> {
    Ok(Json(api_keys::get(&state.db, &actor, &id).await?))
}

/// Revokes the key; its next request is refused with `api_key_revoked`.
#[utoipa::path(delete, path = "/api-keys/{id}", operation_id = "revokeApiKey", tag = "api-keys", params(("id" = String, Path)),
    responses((status = 204), (status = "4XX", body = ErrorEnvelope)))]
pub async fn revoke_key(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    api_keys::revoke(&state.db, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_keys, create_key))
        .routes(routes!(get_key, revoke_key))
}
