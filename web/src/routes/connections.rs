//! `/connections`: connections to other services, their tests and OAuth2 authorization.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use timix_engine::Error;
use timix_engine::access::auth::Permission;
use timix_engine::automation::connections::{self, Connection, ConnectionInput, ConnectionKind};
use timix_engine::store::list::ListParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::client::ApiClient;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{ConnectionList, ListQueryDoc};
use crate::response::{Created, ListResponse};
use crate::routes::BASE;

#[utoipa::path(get, path = "/connections", operation_id = "listConnections", tag = "connections",
    params(ListQueryDoc, crate::openapi::SearchQueryDoc, crate::openapi::TombstonesQueryDoc, ("type" = Option<String>, Query), ("status" = Option<String>, Query)),
    responses((status = 200, body = ConnectionList), (status = "4XX", body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<ListResponse<Connection>> {
    let params = ListParams::parse(&connections::LIST, &query)?;
    Ok(ListResponse(
        connections::list(&state.db, &state.vault, &actor, &params).await?,
    ))
}

/// Creates a connection. `self` takes nothing else; `api_key` a `baseUrl`, `credentials.apiKey`
/// and optionally `settings.header` (default `X-Api-Key`) and `settings.prefix`; `basic` a
/// `baseUrl` and `credentials.username`/`password`; `oauth2` a `baseUrl`,
/// `settings.authorizeUrl`, `tokenUrl`, `clientId`, `scopes` and `credentials.clientSecret`.
/// Credentials are never shown again.
#[utoipa::path(post, path = "/connections", operation_id = "createConnection", tag = "connections", request_body = ConnectionInput,
    responses((status = 201, body = Connection, headers(("Location" = String))),
              (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    JsonBody(input): JsonBody<ConnectionInput>,
) -> ApiResult<Created<Connection>> {
    let manifests = state.manifests_for(actor.org_id()).await?;
    let body = connections::create(&state.db, state.saving_with(&manifests), &actor, input).await?;
    Ok(Created {
        location: format!("{BASE}/connections/{}", body.id),
        body,
    })
}

#[utoipa::path(get, path = "/connections/{id}", operation_id = "getConnection", tag = "connections", params(("id" = String, Path)),
    responses((status = 200, body = Connection), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Connection>> {
    Ok(Json(
        connections::get(&state.db, &state.vault, &actor, &id).await?,
    ))
}

/// Changes a connection; new credentials, a new base URL or settings make it `untested`.
#[utoipa::path(patch, path = "/connections/{id}", operation_id = "updateConnection", tag = "connections", params(("id" = String, Path)),
    request_body = ConnectionInput,
    responses((status = 200, body = Connection), (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<ConnectionInput>,
) -> ApiResult<Json<Connection>> {
    let manifests = state.manifests_for(actor.org_id()).await?;
    Ok(Json(
        connections::update(&state.db, state.saving_with(&manifests), &actor, &id, input).await?,
    ))
}

/// Deletes a connection and its credentials; 409 `in_use` while a flow names it.
#[utoipa::path(delete, path = "/connections/{id}", operation_id = "deleteConnection", tag = "connections", params(("id" = String, Path)),
    responses((status = 204), (status = 409, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    connections::delete(&state.db, &state.vault, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Calls the connection's test path (`settings.testPath`, default `/me`) with its credentials
/// and records the outcome: the connection comes back `ok`, or `error` with `lastError`.
#[utoipa::path(post, path = "/connections/{id}/test", operation_id = "testConnection", tag = "connections", params(("id" = String, Path)),
    responses((status = 200, body = Connection), (status = "4XX", body = ErrorEnvelope)))]
pub async fn test(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Connection>> {
    actor.require(Permission::ManageFlows)?;
    let resolved = connections::resolve(&state.db, &state.vault, actor.org_id(), &id)
        .await?
        .ok_or(Error::NotFound(connections::NOUN))?;
    // A `self` connection is tested through this instance's API, as the caller. (Built here:
    // the client the UI and MCP share cannot be handed to a route of the router it wraps.)
    let this = ApiClient::new(state.clone());
    // The outcome is recorded on the connection; the answer is the connection as it is now.
    let _ = state.performer.test(&this, &actor, &resolved).await;
    Ok(Json(
        connections::get(&state.db, &state.vault, &actor, &id).await?,
    ))
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    /// Where to send the user: the provider's consent page.
    pub authorize_url: String,
}

/// Starts the OAuth2 authorization of an `oauth2` connection: answers 302 to the provider's
/// consent page (authorization code with PKCE and a one-time `state`), with the same URL in the
/// body. The provider sends the user back to `/oauth2/callback`.
#[utoipa::path(get, path = "/connections/{id}/authorize", operation_id = "authorizeConnection", tag = "connections", params(("id" = String, Path)),
    responses((status = 302, body = Authorization, headers(("Location" = String))),
              (status = 409, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn authorize(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    actor.require(Permission::ManageFlows)?;
    let resolved = connections::resolve(&state.db, &state.vault, actor.org_id(), &id)
        .await?
        .ok_or(Error::NotFound(connections::NOUN))?;
    if resolved.kind != ConnectionKind::OAuth2 {
        return Err(Error::conflict("only oauth2 connections are authorized").into());
    }
    let oauth_state = connections::random_state();
    let (url, verifier) = timix_connectors::connection::authorization_url(
        &resolved,
        &state.oauth_redirect(),
        &oauth_state,
    )
    .map_err(|message| Error::validation("settings", "invalid", message))?;
    connections::begin_authorization(
        &state.db,
        &state.vault,
        &actor,
        &id,
        connections::PendingAuthorization {
            state: &oauth_state,
            verifier: &verifier,
        },
    )
    .await?;
    let body = Authorization {
        authorize_url: url.clone(),
    };
    Ok((StatusCode::FOUND, [(header::LOCATION, url)], Json(body)).into_response())
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(test))
        .routes(routes!(authorize))
}
