//! `/oauth/authorize`: where an assistant that connects to `/mcp` with OAuth (Claude.ai,
//! ChatGPT…) sends its user (`crate::mcp::authorization`). The user logs in if needed and sees
//! which application asks, where it will send them back, and as whom, in which organization and
//! with which role it would act; allowing gives the application an authorization code, denying
//! sends it `access_denied`. Nothing sends the browser to the application without the user's
//! own click: a request naming an unknown client or redirect URI shows why it cannot be used,
//! and a request refused before the user was asked shows why, with a link back to the
//! application (RFC 9700 §4.11.2), since anyone may register a client with any redirect URI.

use axum::extract::{Form, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;
use timix_engine::access::auth::Role;
use timix_engine::access::mcp_oauth::{self, AuthorizationRequest, AuthorizeParams, Checked};

use crate::mcp::authorization;
use crate::ui::session::Fields;
use crate::ui::{Shared, UiError, UiResult, Viewer};

pub const PATH: &str = authorization::AUTHORIZE_PATH;

/// The parameters of an authorization request, carried from the link to the consent form.
const PARAMS: [&str; 8] = [
    "response_type",
    "client_id",
    "redirect_uri",
    "state",
    "code_challenge",
    "code_challenge_method",
    "scope",
    "resource",
];

/// The request's parameters; one given twice makes the request unusable (RFC 6749 §3.1).
fn params_of(fields: &Fields) -> UiResult<AuthorizeParams> {
    for name in PARAMS {
        if fields.0.iter().filter(|(k, _)| k == name).count() > 1 {
            return Err(UiError::bad_request(format!(
                "The link gives {name} more than once. Connect again from the application."
            )));
        }
    }
    let get = |name: &str| {
        fields
            .0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    };
    Ok(AuthorizeParams {
        response_type: get("response_type"),
        client_id: get("client_id"),
        redirect_uri: get("redirect_uri"),
        state: get("state"),
        code_challenge: get("code_challenge"),
        code_challenge_method: get("code_challenge_method"),
        scope: get("scope"),
        resource: get("resource"),
    })
}

/// A request that may be put to the user, or the page that says why not.
async fn checked(
    ui: &Shared,
    params: &AuthorizeParams,
) -> UiResult<Result<AuthorizationRequest, Response>> {
    let resource = authorization::resource(&ui.app);
    Ok(
        match mcp_oauth::check_authorization(&ui.app.db, params, &resource).await? {
            Checked::Valid(request) => Ok(request),
            Checked::Unusable(message) => {
                return Err(UiError::Page {
                    status: StatusCode::BAD_REQUEST,
                    title: "This connection link cannot be used".into(),
                    message,
                });
            }
            // Shown, not followed: the client chose where the link goes.
            Checked::Refused {
                client_name,
                redirect_uri,
                state,
                refusal,
            } => {
                let back = callback(
                    ui,
                    &redirect_uri,
                    &[
                        ("error", refusal.code.as_str()),
                        ("error_description", &refusal.message),
                    ],
                    state.as_deref(),
                );
                let context = json!({
                    "refused": {
                        "client": client_name,
                        "message": refusal.message,
                        "back": back,
                        "host": mcp_oauth::redirect_host(&redirect_uri),
                    },
                });
                Err((
                    StatusCode::BAD_REQUEST,
                    ui.views.render("authorize", &context),
                )
                    .into_response())
            }
        },
    )
}

/// The address that hands the client `params`, its `state` and this issuer (RFC 9207).
fn callback(
    ui: &Shared,
    redirect_uri: &str,
    params: &[(&str, &str)],
    state: Option<&str>,
) -> String {
    let mut pairs = params.to_vec();
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", authorization::issuer(&ui.app)));
    mcp_oauth::callback_url(redirect_uri, &pairs)
}

/// Sends the user back to the application with the user's answer.
fn back(ui: &Shared, redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>) -> Response {
    Redirect::to(&callback(ui, redirect_uri, params, state)).into_response()
}

/// What each role lets an assistant do, in the words of the permission matrix.
fn role_allows(role: Role) -> &'static str {
    match role {
        Role::Viewer => "read your organization's records, and change nothing",
        Role::Member => {
            "read your organization's records, and log time and work on tasks and subtasks as you"
        }
        Role::Manager => {
            "read, log time, and manage customers, projects, timesheets, invoices and the financial reports"
        }
        Role::Admin => {
            "everything a manager can, and manage users, API keys, webhooks, connections and flows"
        }
        Role::Owner => "everything, including the organization's own settings",
    }
}

pub async fn show(
    State(ui): State<Shared>,
    viewer: Result<Viewer, UiError>,
    Query(fields): Query<Fields>,
) -> UiResult {
    // The login comes first: whatever the request, nobody is sent anywhere without it.
    let viewer = viewer?;
    let params = params_of(&fields)?;
    let request = match checked(&ui, &params).await? {
        Ok(request) => request,
        Err(answer) => return Ok(answer),
    };
    let actor = &viewer.actor;
    let hidden: Vec<_> = PARAMS
        .iter()
        .filter_map(|name| {
            // As sent: the state must come back exactly.
            Some(fields.raw(name))
                .filter(|value| !value.is_empty())
                .map(|value| json!({"name": name, "value": value}))
        })
        .collect();
    let context = json!({
        "consent": true,
        "csrf": viewer.csrf,
        "client": {"name": request.client_name, "id": request.client_id},
        "redirectHost": mcp_oauth::redirect_host(&request.redirect_uri),
        "user": {"name": actor.user_name, "email": actor.user_email},
        "organization": actor.organization.name,
        "role": actor.role.as_str(),
        "roleAllows": role_allows(actor.role),
        "planAllows": actor.organization.plan.allows_api_keys(),
        "params": hidden,
    });
    Ok(ui.views.render("authorize", &context))
}

pub async fn decide(
    State(ui): State<Shared>,
    viewer: Viewer,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let params = params_of(&fields)?;
    let request = match checked(&ui, &params).await? {
        Ok(request) => request,
        Err(answer) => return Ok(answer),
    };
    let state = request.state.as_deref();
    if fields.get("decision") != Some("allow") {
        return Ok(back(
            &ui,
            &request.redirect_uri,
            &[
                ("error", "access_denied"),
                ("error_description", "the user denied the request"),
            ],
            state,
        ));
    }
    let code = mcp_oauth::approve(&ui.app.db, &viewer.actor, &request, &ui.app.mcp_oauth).await?;
    tracing::info!(
        client_id = %request.client_id,
        user_id = %viewer.actor.user_id,
        "An MCP client was authorized."
    );
    Ok(back(&ui, &request.redirect_uri, &[("code", &code)], state))
}
