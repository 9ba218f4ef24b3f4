//! `/connections`: credentials flows use to reach this instance, another one, or any HTTP API;
//! their test, and the OAuth2 authorization (`/connections/{id}/authorize` → the provider →
//! `/oauth2/callback`).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;
use timix_engine::Error;
use timix_engine::access::auth::Permission;
use timix_engine::automation::connections::{self, Connection, ConnectionInput};
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

/// How long an authorization may take from `/authorize` to the callback.
const AUTHORIZATION_TTL_MS: i64 = 10 * 60 * 1000;

/// Where OAuth2 providers send the user back, below the API base.
pub const CALLBACK_PATH: &str = "/oauth2/callback";

#[utoipa::path(get, path = "/connections", tag = "connections",
    params(ListQueryDoc, ("type" = Option<String>, Query), ("status" = Option<String>, Query)),
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
#[utoipa::path(post, path = "/connections", tag = "connections", request_body = ConnectionInput,
    responses((status = 201, body = Connection, headers(("Location" = String))),
              (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    JsonBody(input): JsonBody<ConnectionInput>,
) -> ApiResult<Created<Connection>> {
    let body = connections::create(&state.db, state.saving(), &actor, input).await?;
    Ok(Created {
        location: format!("{BASE}/connections/{}", body.id),
        body,
    })
}

#[utoipa::path(get, path = "/connections/{id}", tag = "connections", params(("id" = String, Path)),
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
#[utoipa::path(patch, path = "/connections/{id}", tag = "connections", params(("id" = String, Path)),
    request_body = ConnectionInput,
    responses((status = 200, body = Connection), (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<ConnectionInput>,
) -> ApiResult<Json<Connection>> {
    Ok(Json(
        connections::update(&state.db, state.saving(), &actor, &id, input).await?,
    ))
}

/// Deletes a connection and its credentials; 409 `in_use` while a flow names it.
#[utoipa::path(delete, path = "/connections/{id}", tag = "connections", params(("id" = String, Path)),
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
#[utoipa::path(post, path = "/connections/{id}/test", tag = "connections", params(("id" = String, Path)),
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
    // A `self` connection is tested through this instance's API, as the caller.
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
#[utoipa::path(get, path = "/connections/{id}/authorize", tag = "connections", params(("id" = String, Path)),
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
    if resolved.kind != "oauth2" {
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
        &oauth_state,
        &verifier,
    )
    .await?;
    let body = Authorization {
        authorize_url: url.clone(),
    };
    Ok((StatusCode::FOUND, [(header::LOCATION, url)], Json(body)).into_response())
}

/// Where the provider returns the user: exchanges the code for tokens (with the PKCE
/// verifier), stores them sealed, and marks the connection `ok` (or `error` with the reason).
/// No API key: the one-time `state` identifies the authorization.
#[utoipa::path(get, path = "/oauth2/callback", tag = "connections", security(()),
    params(("state" = String, Query), ("code" = Option<String>, Query), ("error" = Option<String>, Query)),
    responses((status = 200, description = "A page saying the connection is ready"),
              (status = 400, body = ErrorEnvelope)))]
pub async fn callback(
    State(state): State<AppState>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Response> {
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let oauth_state =
        param("state").ok_or_else(|| Error::InvalidParameter("state is required".into()))?;
    let resolved = connections::take_authorization(&state.db, &state.vault, &oauth_state)
        .await?
        .ok_or_else(|| {
            Error::InvalidParameter("state does not belong to an authorization under way".into())
        })?;
    let started = resolved.secret["verifierAt"].as_i64().unwrap_or(0);
    if timix_engine::store::clock::now_ms() - started > AUTHORIZATION_TTL_MS {
        return Err(Error::InvalidParameter(
            "the authorization expired: start it again from the connection".into(),
        )
        .into());
    }
    let outcome = match (param("code"), param("error")) {
        (_, Some(error)) => Err(format!(
            "the provider refused: {error}{}",
            param("error_description")
                .map(|d| format!(" ({d})"))
                .unwrap_or_default()
        )),
        (Some(code), None) => {
            timix_connectors::connection::exchange_code(
                state.performer.outbound(),
                &resolved,
                &state.oauth_redirect(),
                &code,
            )
            .await
        }
        (None, None) => Err("the provider sent neither a code nor an error".into()),
    };
    let (title, message) = match outcome {
        Ok(secret) => {
            connections::save_secret(&state.db, &state.vault, &resolved.id, &secret).await?;
            connections::set_status(&state.db, &resolved.id, None, true).await?;
            (
                "Connected",
                "The connection is ready. You can close this window.".to_owned(),
            )
        }
        Err(reason) => {
            connections::set_status(&state.db, &resolved.id, Some(&reason), true).await?;
            ("Not connected", reason)
        }
    };
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title></head>\
                  <body><h1>{title}</h1><p>{}</p><p><a href=\"/connections/{}\">Back to the connection</a></p></body></html>",
        escape(&message),
        escape(&resolved.id)
    );
    Ok(Html(page).into_response())
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(test))
        .routes(routes!(authorize))
        .routes(routes!(callback))
}
