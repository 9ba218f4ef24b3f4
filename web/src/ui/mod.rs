//! The web UI at `/`: server-rendered pages (handlebars) where ops staff manage connectors,
//! connections, flows, runs, API keys, webhooks and users. Every page reads and writes through
//! this instance's own API, in-process, as the logged-in user: roles, validation and events are
//! exactly the API's, and a refusal names the same field it would over HTTP.
//!
//! Pages are plain HTML forms that work without JavaScript; `assets/app.js` adds copying,
//! inserting template variables and refreshing the flow builder when an action is picked.

mod api;
mod assets;
mod pages;
mod schedule;
mod session;
mod views;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde_json::Value;

use crate::AppState;
use crate::client::ApiClient;
pub use api::ApiFailure;
pub use session::Viewer;
pub(crate) use session::client_address;

/// What the UI's handlers share.
pub struct Ui {
    pub app: AppState,
    api: ApiClient,
    views: views::Views,
}

pub type Shared = Arc<Ui>;

/// The UI's routes; merged beside the API in [`crate::app`].
pub fn router(app: AppState, api: ApiClient) -> Router {
    let ui = Arc::new(Ui {
        api,
        views: views::Views::new(),
        app,
    });
    use pages::{
        apps, authorize, connection_edit, connections, connectors, dashboard, flows, keys, runs,
        users, webhooks,
    };
    Router::new()
        .route("/", get(dashboard::show))
        .route("/login", get(session::login_form).post(session::log_in))
        .route("/logout", post(session::log_out))
        .route(
            "/invite/{token}",
            get(session::invite_form).post(session::accept_invite),
        )
        .route(
            "/connections",
            get(connections::list).post(connections::create),
        )
        .route("/connections/{id}", get(connections::show))
        .route(
            "/connections/{id}/edit",
            get(connection_edit::edit_form).post(connection_edit::save),
        )
        .route("/connections/{id}/{op}", post(connections::act))
        .route(
            "/connectors",
            get(connectors::list).post(connectors::install),
        )
        .route("/connectors/{key}", get(connectors::show))
        .route("/connectors/{key}/{op}", post(connectors::act))
        .route("/flows", get(flows::list))
        .route("/flows/new", get(flows::new_form).post(flows::save_new))
        .route("/flows/lookup", get(flows::lookup))
        .route("/flows/{id}", get(flows::edit_form).post(flows::save))
        .route("/flows/{id}/{op}", post(flows::act))
        .merge(pages::flow_lifecycle::routes())
        .route("/ui/schedule-preview", get(schedule::preview_json))
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::show))
        .route("/runs/{id}/replay", post(runs::replay))
        .route("/keys", get(keys::list).post(keys::create))
        .route("/keys/{id}/revoke", post(keys::revoke))
        .route("/webhooks", get(webhooks::list).post(webhooks::create))
        .route("/webhooks/{id}", get(webhooks::show))
        .route(
            "/webhooks/{id}/edit",
            get(webhooks::edit_form).post(webhooks::save),
        )
        .route("/webhooks/{id}/{op}", post(webhooks::act))
        .route(
            "/webhooks/{id}/deliveries/{delivery}/retry",
            post(webhooks::retry),
        )
        .route("/users", get(users::list).post(users::invite))
        .route("/users/{id}", get(users::edit_form).post(users::save))
        .route("/users/{id}/{op}", post(users::act))
        .route("/apps", get(apps::list))
        .route("/apps/{file}", get(apps::download))
        .route(
            authorize::PATH,
            get(authorize::show).post(authorize::decide),
        )
        .route(
            pages::connected_apps::PATH,
            get(pages::connected_apps::list),
        )
        .route(
            "/connected-apps/{id}/revoke",
            post(pages::connected_apps::revoke),
        )
        .route("/assets/{file}", get(assets::serve))
        .with_state(ui)
        .layer(middleware::map_response(html_errors))
        .layer(middleware::from_fn(security_headers))
}

/// Pages may load only this origin's scripts and styles, are never framed, and leak no URL
/// (invitation links, run ids) to other sites.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    let fixed = [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
             form-action 'self' https: http:; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::X_FRAME_OPTIONS, "DENY"),
    ];
    for (name, value) in fixed {
        headers
            .entry(name)
            .or_insert(HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// The page for an address that is neither a page nor an API path.
pub fn not_found_page() -> String {
    views::error_page(
        "Page not found",
        "There is no page at this address. Use the menu, or go back to the dashboard.",
    )
}

/// Errors made outside the pages' handlers (a form that cannot be read, a method the path does
/// not take, a panic) reach a browser as a page too.
async fn html_errors(response: Response) -> Response {
    let status = response.status();
    let is_html = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_html {
        return response;
    }
    let (title, message) = match status {
        StatusCode::METHOD_NOT_ALLOWED => (
            "Not here",
            "This address does not take that kind of request.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("Too large", "The form sent is too large."),
        s if s.is_server_error() => (
            "Something went wrong",
            "This page could not be shown; it has been logged. Try again in a moment.",
        ),
        _ => (
            "Something is wrong with this request",
            "Go back, reload the page and try again.",
        ),
    };
    (status, Html(views::error_page(title, message))).into_response()
}

/// Why a page could not be shown.
#[derive(Debug)]
pub enum UiError {
    /// Not logged in: go to the login page, then back to `next`.
    Login { next: String },
    /// A page of its own: 403, 404, 400…
    Page {
        status: StatusCode,
        title: String,
        message: String,
    },
}

impl UiError {
    pub fn not_found(what: &str) -> Self {
        Self::Page {
            status: StatusCode::NOT_FOUND,
            title: "Not found".into(),
            message: format!("There is no such {what}, or it is not in your organization."),
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::Page {
            status: StatusCode::BAD_REQUEST,
            title: "Something is wrong with this request".into(),
            message: message.into(),
        }
    }
}

impl From<ApiFailure> for UiError {
    fn from(failure: ApiFailure) -> Self {
        let (status, title) = match failure.status {
            401 => return UiError::Login { next: "/".into() },
            403 => (StatusCode::FORBIDDEN, "Not allowed"),
            404 => (StatusCode::NOT_FOUND, "Not found"),
            429 => (StatusCode::TOO_MANY_REQUESTS, "Too many requests"),
            s if s >= 500 => (StatusCode::INTERNAL_SERVER_ERROR, "Something went wrong"),
            _ => (StatusCode::BAD_REQUEST, "Refused"),
        };
        UiError::Page {
            status,
            title: title.into(),
            message: failure.message,
        }
    }
}

impl From<timix_engine::Error> for UiError {
    fn from(error: timix_engine::Error) -> Self {
        ApiFailure::from_engine(error).into()
    }
}

impl IntoResponse for UiError {
    fn into_response(self) -> Response {
        match self {
            UiError::Login { next } => {
                let next =
                    serde_urlencoded::to_string([("next", next.as_str())]).unwrap_or_default();
                Redirect::to(&format!("/login?{next}")).into_response()
            }
            UiError::Page {
                status,
                title,
                message,
            } => (status, Html(views::error_page(&title, &message))).into_response(),
        }
    }
}

pub type UiResult<T = Response> = Result<T, UiError>;

/// A refused action goes back to `to` with the API's reason; a 403 or 404 gets its own page.
pub fn back_or_fail(to: &str, failure: ApiFailure) -> UiResult {
    if matches!(failure.status, 400 | 409 | 412 | 422 | 429) {
        Ok(session::redirect_with_alert(to, &failure.message))
    } else {
        Err(failure.into())
    }
}

impl Ui {
    /// Renders a page inside the layout, for the viewer.
    pub fn page(&self, viewer: &Viewer, template: &str, mut context: Value) -> Response {
        if let Value::Object(map) = &mut context {
            map.insert("viewer".into(), viewer.context());
            map.insert("csrf".into(), Value::String(viewer.csrf.clone()));
            match viewer
                .notice
                .as_deref()
                .map(|n| n.strip_prefix(session::ALERT_MARK).ok_or(n))
            {
                Some(Ok(alert)) => map.insert("alert".into(), Value::String(alert.to_owned())),
                Some(Err(notice)) => map.insert("notice".into(), Value::String(notice.to_owned())),
                None => None,
            };
        }
        let mut response = self.views.render(template, &context).into_response();
        if viewer.notice.is_some() {
            response
                .headers_mut()
                .append(header::SET_COOKIE, session::clear_notice_cookie());
        }
        response
    }

    /// Renders a page with a status other than 200 (a form shown again with its errors).
    pub fn page_with_status(
        &self,
        status: StatusCode,
        viewer: &Viewer,
        template: &str,
        context: Value,
    ) -> Response {
        let mut response = self.page(viewer, template, context);
        *response.status_mut() = status;
        response
    }
}
