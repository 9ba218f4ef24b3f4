//! `/oauth2/callback`: where OAuth2 providers send the user back to finish a connection.

use axum::extract::State;
use axum::response::{Html, IntoResponse, Response};
use timix_engine::Error;
use timix_engine::automation::connections::{self};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::QueryPairs;

/// Where OAuth2 providers send the user back, below the API base.
pub const CALLBACK_PATH: &str = "/oauth2/callback";

/// How long an authorization may take from `/authorize` to the callback.
const AUTHORIZATION_TTL_MS: i64 = 10 * 60 * 1000;

/// Where the provider returns the user: exchanges the code for tokens (with the PKCE
/// verifier), stores them sealed, and marks the connection `ok` (or `error` with the reason).
/// No API key: the one-time `state` identifies the authorization.
#[utoipa::path(get, path = "/oauth2/callback", operation_id = "completeConnectionAuthorization", tag = "connections", security(()),
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
    OpenApiRouter::new().routes(routes!(callback))
}
