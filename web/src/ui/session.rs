//! Logging in and out, invitations, the session cookie, CSRF tokens and one-time notices.
//!
//! The session cookie is HttpOnly, SameSite=Lax, and Secure when the service is reached over
//! TLS. Every form carries the session's CSRF token (checked in constant time) and a POST from
//! another origin is refused; the login and invitation forms, which come before a session, use a
//! token in a cookie of their own (double submit).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Form, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::{Value, json};
use timix_engine::access::auth::{Actor, Permission};
use timix_engine::access::web_sessions::{self, Credentials, Login, NewSession};

use super::{Shared, UiError, UiResult};

const SESSION_COOKIE: &str = "timix_session";
const PRE_SESSION_COOKIE: &str = "timix_form";
const NOTICE_COOKIE: &str = "timix_notice";

/// The logged-in user of a page.
pub struct Viewer {
    pub actor: Actor,
    pub csrf: String,
    token: String,
    /// A one-time message from the previous page ("Flow saved.").
    pub notice: Option<String>,
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether the browser reached us over TLS (directly per the public URL, or through a proxy).
fn is_secure(ui: &Shared, headers: &HeaderMap) -> bool {
    ui.app.public_url.starts_with("https://")
        || headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.eq_ignore_ascii_case("https"))
}

fn set_cookie(name: &str, value: &str, max_age_secs: i64, secure: bool) -> HeaderValue {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age_secs}{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static(""))
}

pub fn clear_notice_cookie() -> HeaderValue {
    set_cookie(NOTICE_COOKIE, "", 0, false)
}

/// A redirect that shows `notice` once on the next page.
pub fn redirect_with_notice(to: &str, notice: &str) -> Response {
    // A cookie holds about 4 KB; a reason quoted from elsewhere may be longer.
    let notice = timix_engine::store::json::shorten_to(notice, 500);
    let encoded = URL_SAFE_NO_PAD.encode(notice.as_bytes());
    let mut response = Redirect::to(to).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(NOTICE_COOKIE, &encoded, 60, false),
    );
    response
}

/// A redirect that shows `alert` once on the next page, as an error.
pub fn redirect_with_alert(to: &str, alert: &str) -> Response {
    redirect_with_notice(to, &format!("{ALERT_MARK}{}", capitalize(alert)))
}

/// Marks a stored notice as an error.
pub const ALERT_MARK: char = '!';

fn read_notice(headers: &HeaderMap) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD
        .decode(cookie(headers, NOTICE_COOKIE)?)
        .ok()?;
    String::from_utf8(bytes).ok().filter(|t| !t.is_empty())
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// A submitted form's fields, in order.
#[derive(Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    /// A field's value, trimmed; `None` when absent or empty.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }

    /// A field's value exactly as sent (passwords, a prefix with its space); empty when absent.
    pub fn raw(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn text(&self, name: &str) -> String {
        self.get(name).unwrap_or_default().to_owned()
    }
}

impl FromRequestParts<Shared> for Viewer {
    type Rejection = UiError;

    async fn from_request_parts(parts: &mut Parts, ui: &Shared) -> Result<Self, Self::Rejection> {
        let next = if parts.method == axum::http::Method::GET {
            parts
                .uri
                .path_and_query()
                .map(|p| p.as_str().to_owned())
                .unwrap_or_else(|| "/".into())
        } else {
            "/".into()
        };
        let Some(token) = cookie(&parts.headers, SESSION_COOKIE) else {
            return Err(UiError::Login { next });
        };
        let Some(session) = web_sessions::resolve(&ui.app.db, token).await? else {
            return Err(UiError::Login { next });
        };
        if parts.method != axum::http::Method::GET
            && !same_origin(&parts.headers, &ui.app.public_url)
        {
            return Err(UiError::Page {
                status: StatusCode::FORBIDDEN,
                title: "Refused".into(),
                message: "This form was sent from another site.".into(),
            });
        }
        Ok(Viewer {
            actor: session.actor,
            csrf: session.csrf,
            token: token.to_owned(),
            notice: read_notice(&parts.headers),
        })
    }
}

/// A POST's `Origin`, when the browser sends one, must be this host.
fn same_origin(headers: &HeaderMap, public_url: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    origin == public_url.trim_end_matches('/')
        || ["http://", "https://"]
            .iter()
            .any(|scheme| origin.strip_prefix(scheme) == Some(host))
}

impl Viewer {
    /// Refuses a form without this session's token.
    pub fn check(&self, fields: &Fields) -> UiResult<()> {
        match fields.0.iter().find(|(k, _)| k == "_csrf") {
            Some((_, token)) if constant_time_eq(token, &self.csrf) => Ok(()),
            _ => Err(UiError::Page {
                status: StatusCode::FORBIDDEN,
                title: "This form has expired".into(),
                message: "Go back, reload the page and send the form again.".into(),
            }),
        }
    }

    pub fn can(&self, permission: Permission) -> bool {
        self.actor.can(permission)
    }

    /// What the layout shows of the viewer and which sections it links.
    pub fn context(&self) -> Value {
        let a = &self.actor;
        json!({
            "name": a.user_name,
            "email": a.user_email,
            "role": a.role.as_str(),
            "organization": a.organization.name,
            "timeZone": a.organization.timezone,
            "can": {
                "flows": self.can(Permission::ReadFlows),
                "manageFlows": self.can(Permission::ManageFlows),
                "webhooks": self.can(Permission::ManageWebhooks),
                "keys": self.can(Permission::ManageApiKeys),
                "users": self.can(Permission::WriteOrgUsers),
            }
        })
    }
}

/// The address a request came from, for login throttling: the connection's peer, or behind a
/// trusted proxy the last `X-Forwarded-For` entry (the one that proxy added). IPv6 addresses
/// count per /64, the block one subscriber gets.
pub struct ClientAddress(String);

impl FromRequestParts<Shared> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, ui: &Shared) -> Result<Self, Self::Rejection> {
        Ok(ClientAddress(client_address(parts, ui.app.trust_proxy)))
    }
}

/// The address a request came from, as [`ClientAddress`] finds it; also what OAuth client
/// registrations are counted by.
pub(crate) fn client_address(parts: &Parts, trust_proxy: bool) -> String {
    let forwarded = || {
        parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|a| a.trim().parse::<std::net::IpAddr>().ok())
            .next_back()
    };
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let address = if trust_proxy {
        forwarded().or(peer)
    } else {
        peer
    };
    match address {
        Some(std::net::IpAddr::V6(v6)) => {
            let s = v6.segments();
            format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
        }
        Some(v4) => v4.to_string(),
        None => "unknown".into(),
    }
}

#[derive(Debug, Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// Only a path on this site: never `//evil.example` or `https://…`.
fn safe_next(next: Option<&str>) -> String {
    // Browsers drop tabs and line breaks and read `\` as `/`: `/\t/evil.example` would be
    // `//evil.example`. Only plain paths pass.
    match next {
        Some(n)
            if n.starts_with('/')
                && !n.starts_with("//")
                && !n.chars().any(|c| c.is_control() || c == '\\') =>
        {
            n.to_owned()
        }
        _ => "/".into(),
    }
}

fn pre_session_token(headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    match cookie(headers, PRE_SESSION_COOKIE) {
        Some(token) if token.len() >= 32 => (token.to_owned(), None),
        _ => {
            let token = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>());
            let header = set_cookie(PRE_SESSION_COOKIE, &token, 3600, false);
            (token, Some(header))
        }
    }
}

fn check_pre_session(ui: &Shared, headers: &HeaderMap, fields: &Fields) -> UiResult<()> {
    match (cookie(headers, PRE_SESSION_COOKIE), fields.get("_csrf")) {
        (Some(a), Some(b))
            if constant_time_eq(a, b) && same_origin(headers, &ui.app.public_url) =>
        {
            Ok(())
        }
        _ => Err(UiError::Page {
            status: StatusCode::FORBIDDEN,
            title: "This form has expired".into(),
            message: "Reload the page and send the form again (cookies must be enabled).".into(),
        }),
    }
}

fn with_cookie(mut response: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(cookie) = cookie {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

fn open_session(ui: &Shared, headers: &HeaderMap, session: NewSession, next: &str) -> Response {
    let max_age = web_sessions::ABSOLUTE_TIMEOUT_MS / 1000;
    let mut response = Redirect::to(next).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(
            SESSION_COOKIE,
            &session.token,
            max_age,
            is_secure(ui, headers),
        ),
    );
    response
}

pub async fn login_form(
    State(ui): State<Shared>,
    headers: HeaderMap,
    Query(query): Query<NextQuery>,
) -> UiResult {
    if let Some(token) = cookie(&headers, SESSION_COOKIE)
        && web_sessions::resolve(&ui.app.db, token).await?.is_some()
    {
        return Ok(Redirect::to(&safe_next(query.next.as_deref())).into_response());
    }
    let (csrf, set) = pre_session_token(&headers);
    let context = json!({
        "csrf": csrf,
        "next": safe_next(query.next.as_deref()),
        "notice": read_notice(&headers),
    });
    let mut response = with_cookie(ui.views.render("login", &context).into_response(), set);
    response
        .headers_mut()
        .append(header::SET_COOKIE, clear_notice_cookie());
    Ok(response)
}

pub async fn log_in(
    State(ui): State<Shared>,
    headers: HeaderMap,
    ClientAddress(client): ClientAddress,
    Form(fields): Form<Fields>,
) -> UiResult {
    check_pre_session(&ui, &headers, &fields)?;
    let next = safe_next(fields.get("next"));
    let email = fields.text("email");
    let outcome = web_sessions::log_in(
        &ui.app.db,
        Credentials {
            email: &email,
            password: fields.raw("password"),
            organization_id: fields.get("organization"),
            client: &client,
        },
    )
    .await;
    let form = |status: StatusCode, error: &str, organizations: Value| {
        let context = json!({
            "csrf": fields.text("_csrf"),
            "next": next,
            "email": email,
            "error": error,
            "organizations": organizations,
        });
        (status, ui.views.render("login", &context)).into_response()
    };
    Ok(match outcome {
        Ok(Login::Opened(session)) => open_session(&ui, &headers, session, &next),
        Ok(Login::ChooseOrganization(choices)) => form(
            StatusCode::OK,
            "",
            choices
                .iter()
                .map(|c| json!({"id": c.id, "name": c.name}))
                .collect(),
        ),
        Err(error) => {
            let failure = super::ApiFailure::from_engine(error);
            let status = StatusCode::from_u16(failure.status).unwrap_or(StatusCode::UNAUTHORIZED);
            let message = if failure.status == 401 {
                "That e-mail and password do not match an account.".to_owned()
            } else {
                capitalize(&failure.message)
            };
            form(status, &message, Value::Null)
        }
    })
}

pub fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

pub async fn log_out(
    State(ui): State<Shared>,
    viewer: Viewer,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    web_sessions::log_out(&ui.app.db, &viewer.token).await?;
    let mut response = redirect_with_notice("/login", "You are logged out.");
    response
        .headers_mut()
        .append(header::SET_COOKIE, set_cookie(SESSION_COOKIE, "", 0, false));
    Ok(response)
}

pub async fn invite_form(
    State(ui): State<Shared>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> UiResult {
    let (organization, email) =
        web_sessions::invitation(&ui.app.db, &token)
            .await
            .map_err(|_| UiError::Page {
                status: StatusCode::NOT_FOUND,
                title: "This invitation cannot be used".into(),
                message:
                    "It was used already, has expired or was replaced by a newer one. Ask your \
                      administrator for a new link."
                        .into(),
            })?;
    let (csrf, set) = pre_session_token(&headers);
    let context = json!({"csrf": csrf, "organization": organization, "email": email});
    Ok(with_cookie(
        ui.views.render("invite", &context).into_response(),
        set,
    ))
}

pub async fn accept_invite(
    State(ui): State<Shared>,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(fields): Form<Fields>,
) -> UiResult {
    check_pre_session(&ui, &headers, &fields)?;
    let (password, confirm) = (fields.raw("password"), fields.raw("confirm"));
    let (organization, email) = web_sessions::invitation(&ui.app.db, &token)
        .await
        .map_err(|_| UiError::not_found("invitation"))?;
    let error = if password != confirm {
        Some("The two passwords differ.".to_owned())
    } else {
        match web_sessions::accept_invitation(&ui.app.db, &token, password).await {
            Ok(session) => {
                return Ok(open_session(&ui, &headers, session, "/"));
            }
            Err(error) => Some(capitalize(&super::ApiFailure::from_engine(error).message)),
        }
    };
    let context = json!({
        "csrf": fields.text("_csrf"), "organization": organization, "email": email, "error": error,
    });
    Ok((
        StatusCode::UNPROCESSABLE_ENTITY,
        ui.views.render("invite", &context),
    )
        .into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_paths_are_followed_after_a_login() {
        assert_eq!(safe_next(Some("/runs?flowId=flw_1")), "/runs?flowId=flw_1");
        for evil in [
            "//evil.example",
            "/\\evil.example",
            "/\t/evil.example",
            "/\n/x",
            "https://evil.example",
            "runs",
        ] {
            assert_eq!(safe_next(Some(evil)), "/", "{evil:?}");
        }
        assert_eq!(safe_next(None), "/");
    }
}
