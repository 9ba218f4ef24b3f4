//! OAuth 2.1 for `/mcp`, as the MCP specification asks of HTTP servers (API.md §11), for
//! assistants that cannot send an API key (Claude.ai, ChatGPT):
//!
//! - `/.well-known/oauth-protected-resource[/mcp]`: protected resource metadata (RFC 9728),
//!   named by the `WWW-Authenticate` header of every 401 from `/mcp`;
//! - `/.well-known/oauth-authorization-server`: authorization server metadata (RFC 8414);
//! - `POST /oauth/register`: dynamic client registration (RFC 7591);
//! - `GET /oauth/authorize`: the consent page of the web UI (`crate::ui::pages::authorize`);
//! - `POST /oauth/token`: the `authorization_code` (PKCE S256 required) and `refresh_token`
//!   grants, at most 60 requests a minute per client;
//! - `POST /oauth/revoke`: token revocation (RFC 7009).
//!
//! Both take forms of at most 16 KiB: they are public.
//!
//! This server is its own authorization server: the issuer is the public URL. The storage and
//! every rule are in `timix_engine::access::mcp_oauth`; these handlers read the requests and
//! answer in OAuth's error format (`{"error", "error_description"}`), not the API envelope.
//! Tokens serve `/mcp` only: the REST API refuses them as malformed API keys.

use axum::Json;
use axum::Router;
use std::collections::HashSet;

use axum::body::to_bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::json;
use timix_engine::access::auth::{Actor, key_format};
use timix_engine::access::mcp_oauth::{
    self, ClientCredentials, CodeExchange, ErrorCode, Issuer, Refresh, Refusal, Tokens,
};
use timix_engine::access::rate_limits::Rate;

use crate::AppState;
use crate::api_gate;
use crate::error::ApiError;

pub const AUTHORIZE_PATH: &str = "/oauth/authorize";
const TOKEN_PATH: &str = "/oauth/token";
const REGISTER_PATH: &str = "/oauth/register";
const REVOKE_PATH: &str = "/oauth/revoke";
const RESOURCE_METADATA_PATH: &str = "/.well-known/oauth-protected-resource";
const SERVER_METADATA_PATH: &str = "/.well-known/oauth-authorization-server";

/// Registrations one address may make: enough for a hosted assistant connecting many users
/// from a few addresses, few enough that nobody fills the table of unused clients alone.
const REGISTRATIONS_PER_ADDRESS: Rate = Rate {
    limit: 60,
    window_seconds: 3600,
};
/// Client metadata is a few hundred bytes.
const MAX_REGISTRATION_BYTES: usize = 64 * 1024;
/// A token or revocation request is a few hundred bytes; these endpoints are public.
const MAX_FORM_BYTES: usize = 16 * 1024;
/// Token requests one client may make: a client in use refreshes about once an hour.
const TOKENS_PER_CLIENT: Rate = Rate {
    limit: 60,
    window_seconds: 60,
};

/// The metadata documents and the endpoints clients call (the consent page is the UI's).
pub fn router(state: AppState) -> Router {
    Router::new()
        .route(RESOURCE_METADATA_PATH, get(resource_metadata))
        .route(
            &format!("{RESOURCE_METADATA_PATH}{}", super::PATH),
            get(resource_metadata),
        )
        .route(SERVER_METADATA_PATH, get(server_metadata))
        .route(REGISTER_PATH, post(register))
        .route(TOKEN_PATH, post(token))
        .route(REVOKE_PATH, post(revoke))
        .with_state(state)
}

/// The issuer: where this service is reached.
pub fn issuer(state: &AppState) -> &str {
    state.public_url.trim_end_matches('/')
}

/// The protected resource: `/mcp` at the public URL.
pub fn resource(state: &AppState) -> String {
    format!("{}{}", issuer(state), super::PATH)
}

fn resource_metadata_url(state: &AppState) -> String {
    format!("{}{RESOURCE_METADATA_PATH}{}", issuer(state), super::PATH)
}

async fn resource_metadata(State(state): State<AppState>) -> Response {
    Json(json!({
        "resource": resource(&state),
        "authorization_servers": [issuer(&state)],
        "scopes_supported": [mcp_oauth::SCOPE],
        "bearer_methods_supported": ["header"],
        "resource_name": "timix",
    }))
    .into_response()
}

async fn server_metadata(State(state): State<AppState>) -> Response {
    let base = issuer(&state);
    Json(json!({
        "issuer": base,
        "authorization_endpoint": format!("{base}{AUTHORIZE_PATH}"),
        "token_endpoint": format!("{base}{TOKEN_PATH}"),
        "registration_endpoint": format!("{base}{REGISTER_PATH}"),
        "revocation_endpoint": format!("{base}{REVOKE_PATH}"),
        "scopes_supported": [mcp_oauth::SCOPE],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "token_endpoint_auth_methods_supported": mcp_oauth::ClientAuthMethod::ALL,
        "revocation_endpoint_auth_methods_supported": mcp_oauth::ClientAuthMethod::ALL,
        "code_challenge_methods_supported": ["S256"],
        "authorization_response_iss_parameter_supported": true,
    }))
    .into_response()
}

/// The caller of `/mcp`: an API key's actor (`X-Api-Key`, or a bearer `bbl_…`), or an OAuth
/// access token's.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Actor, ApiError> {
    match access_token(headers) {
        Some(token) => {
            mcp_oauth::authenticate(&state.db, token, api_gate::organization_header(headers))
                .await
                .map_err(ApiError::from)
        }
        None => api_gate::authenticate(state, headers).await,
    }
}

/// A bearer value that is not an API key, when no `X-Api-Key` is sent.
fn access_token(headers: &HeaderMap) -> Option<&str> {
    if headers.contains_key("x-api-key") {
        return None;
    }
    api_gate::presented_key(headers).filter(|value| !value.starts_with(key_format::PREFIX))
}

/// A 401 from `/mcp` names where the OAuth metadata is (RFC 9728 §5.1), so a client without
/// credentials can discover how to get some; the body stays the API's envelope.
pub fn challenge(state: &AppState, headers: &HeaderMap, mut error: ApiError) -> ApiError {
    if error.status != StatusCode::UNAUTHORIZED {
        return error;
    }
    let mut value = format!(
        "Bearer resource_metadata=\"{}\"",
        resource_metadata_url(state)
    );
    if api_gate::presented_key(headers).is_some() {
        value.push_str(", error=\"invalid_token\"");
    }
    error
        .headers
        .retain(|(name, _)| name != header::WWW_AUTHENTICATE);
    if let Ok(value) = HeaderValue::from_str(&value) {
        error.headers.push((header::WWW_AUTHENTICATE, value));
    }
    error
}

/// An answer in OAuth's error format (RFC 6749 §5.2).
#[derive(Debug)]
struct OAuthError {
    status: StatusCode,
    code: &'static str,
    message: String,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl OAuthError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let status = match code {
            ErrorCode::InvalidClient => StatusCode::UNAUTHORIZED,
            ErrorCode::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::BAD_REQUEST,
        };
        Self {
            status,
            code: code.as_str(),
            message: message.into(),
            headers: Vec::new(),
        }
    }

    /// A refusal; a client that tried HTTP Basic is told to try it again (RFC 6749 §5.2).
    fn refused(refusal: Refusal, basic: bool) -> Self {
        let mut error = Self::new(refusal.code, refusal.message);
        if basic && refusal.code == ErrorCode::InvalidClient {
            error.headers.push((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"timix\""),
            ));
        }
        error
    }
}

impl From<timix_engine::Error> for OAuthError {
    fn from(error: timix_engine::Error) -> Self {
        // The API's mapping logs what needs logging and says what may be said.
        let api = ApiError::from(error);
        let code = match api.status {
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => {
                "temporarily_unavailable"
            }
            s if s.is_server_error() => "server_error",
            _ => "invalid_request",
        };
        Self {
            status: api.status,
            code,
            message: api.message,
            headers: api.headers,
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = json!({"error": self.code, "error_description": self.message});
        let mut response = no_store((self.status, Json(body)).into_response());
        for (name, value) in self.headers {
            response.headers_mut().insert(name, value);
        }
        response
    }
}

/// Answers with credentials in them are never cached (RFC 6749 §5.1).
fn no_store(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}

async fn register(State(state): State<AppState>, request: Request) -> Response {
    match registered(&state, request).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn registered(state: &AppState, request: Request) -> Result<Response, OAuthError> {
    let (parts, body) = request.into_parts();
    let address = crate::ui::client_address(&parts, state.trust_proxy);
    limit(
        state,
        &format!("oauth-register:{address}"),
        REGISTRATIONS_PER_ADDRESS,
        "too many registrations from this address",
    )
    .await?;
    let bytes = to_bytes(body, MAX_REGISTRATION_BYTES).await.map_err(|_| {
        OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            format!("the metadata is larger than {MAX_REGISTRATION_BYTES} bytes"),
        )
    })?;
    let metadata = serde_json::from_slice(&bytes).map_err(|e| {
        OAuthError::new(
            ErrorCode::InvalidClientMetadata,
            format!(
                "the body is not client metadata in JSON: {}",
                timix_engine::store::json::shorten(&e.to_string())
            ),
        )
    })?;
    let registered = mcp_oauth::register(&state.db, metadata, mcp_oauth::MAX_UNUSED_CLIENTS)
        .await?
        .map_err(|r| OAuthError::refused(r, false))?;
    let client = &registered.client;
    let mut body = json!({
        "client_id": client.id,
        "client_id_issued_at": client.created_at / 1000,
        "client_name": client.name,
        "redirect_uris": client.redirect_uris,
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "token_endpoint_auth_method": client.auth_method.as_str(),
        "scope": mcp_oauth::SCOPE,
    });
    if let Some(secret) = &registered.secret {
        body["client_secret"] = json!(secret);
        // Never expires.
        body["client_secret_expires_at"] = json!(0);
    }
    Ok(no_store((StatusCode::CREATED, Json(body)).into_response()))
}

/// Counts a request against `rate` under `key`: a 429 with `Retry-After` past it.
async fn limit(state: &AppState, key: &str, rate: Rate, what: &str) -> Result<(), OAuthError> {
    let decision = state.limiter.acquire(key, rate).await?;
    if decision.allowed {
        return Ok(());
    }
    let mut error = OAuthError::new(
        ErrorCode::TemporarilyUnavailable,
        format!("{what}; retry in {} s", decision.retry_after),
    );
    error.status = StatusCode::TOO_MANY_REQUESTS;
    error
        .headers
        .push((header::RETRY_AFTER, HeaderValue::from(decision.retry_after)));
    Err(error)
}

/// The parameters of a token or revocation request: a form of at most [`MAX_FORM_BYTES`], each
/// parameter at most once (RFC 6749 §3.2).
struct Form(Vec<(String, String)>);

impl Form {
    async fn read(request: Request) -> Result<(HeaderMap, Self), OAuthError> {
        let (parts, body) = request.into_parts();
        let body = to_bytes(body, MAX_FORM_BYTES).await.map_err(|_| {
            let mut error = OAuthError::new(
                ErrorCode::InvalidRequest,
                format!("the form is larger than {MAX_FORM_BYTES} bytes"),
            );
            error.status = StatusCode::PAYLOAD_TOO_LARGE;
            error
        })?;
        let form = Self::parse(&parts.headers, &body)?;
        Ok((parts.headers, form))
    }

    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<Self, OAuthError> {
        let is_form = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|v| {
                v.trim()
                    .eq_ignore_ascii_case("application/x-www-form-urlencoded")
            });
        if !is_form {
            return Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                "send the parameters as application/x-www-form-urlencoded",
            ));
        }
        let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(body)
            .map_err(|_| OAuthError::new(ErrorCode::InvalidRequest, "the form cannot be read"))?;
        let mut seen = HashSet::with_capacity(pairs.len());
        for (name, _) in &pairs {
            if !seen.insert(name.as_str()) {
                return Err(OAuthError::new(
                    ErrorCode::InvalidRequest,
                    format!(
                        "{} is given more than once",
                        timix_engine::store::json::shorten(name)
                    ),
                ));
            }
        }
        Ok(Self(pairs))
    }

    /// A parameter's value; an empty one counts as absent (RFC 6749 §3.1).
    fn get(&self, name: &str) -> Option<String> {
        self.0
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.clone())
    }

    /// Who the client says it is: HTTP Basic (`client_secret_basic`) or the form's
    /// `client_id` and `client_secret`, not both. The flag: Basic was used.
    fn client(&self, headers: &HeaderMap) -> Result<(ClientCredentials, bool), OAuthError> {
        let basic = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Basic ")
                    .or_else(|| v.strip_prefix("basic "))
            });
        let Some(basic) = basic else {
            return Ok((
                ClientCredentials {
                    client_id: self.get("client_id"),
                    secret: self.get("client_secret"),
                },
                false,
            ));
        };
        let malformed = || {
            OAuthError::refused(
                Refusal::new(
                    ErrorCode::InvalidClient,
                    "the Basic credentials cannot be read",
                ),
                true,
            )
        };
        let decoded = STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(malformed)?;
        let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
        let (id, secret) = (
            form_decode(id).ok_or_else(malformed)?,
            form_decode(secret).ok_or_else(malformed)?,
        );
        if self.get("client_secret").is_some()
            || self.get("client_id").is_some_and(|form_id| form_id != id)
        {
            return Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                "authenticate the client one way only: HTTP Basic or the form",
            ));
        }
        Ok((
            ClientCredentials {
                client_id: Some(id),
                secret: Some(secret).filter(|s| !s.is_empty()),
            },
            true,
        ))
    }
}

/// Undoes `application/x-www-form-urlencoded`, as RFC 6749 §2.3.1 applies it to Basic
/// credentials.
fn form_decode(text: &str) -> Option<String> {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(byte) = bytes.next() {
        out.push(match byte {
            b'+' => b' ',
            b'%' => {
                let hex = [bytes.next()?, bytes.next()?];
                u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
            }
            other => other,
        });
    }
    String::from_utf8(out).ok()
}

async fn token(State(state): State<AppState>, request: Request) -> Response {
    match tokens(&state, request).await {
        Ok(tokens) => no_store(
            Json(json!({
                "access_token": tokens.access_token,
                "token_type": "Bearer",
                "expires_in": tokens.expires_in_secs,
                "refresh_token": tokens.refresh_token,
                "scope": tokens.scope,
            }))
            .into_response(),
        ),
        Err(error) => error.into_response(),
    }
}

async fn tokens(state: &AppState, request: Request) -> Result<Tokens, OAuthError> {
    let (headers, form) = Form::read(request).await?;
    let (credentials, basic) = form.client(&headers)?;
    // Client ids are short; a longer one is refused as unknown without a budget of its own.
    if let Some(client_id) = credentials
        .client_id
        .as_deref()
        .filter(|id| id.len() <= 100)
    {
        limit(
            state,
            &format!("oauth-token:{client_id}"),
            TOKENS_PER_CLIENT,
            "too many token requests from this client",
        )
        .await?;
    }
    let resource = resource(state);
    let issuer = Issuer {
        lifetimes: state.mcp_oauth,
        resource: &resource,
    };
    let outcome = match form.get("grant_type").as_deref() {
        Some("authorization_code") => {
            let exchange = CodeExchange {
                code: form.get("code"),
                redirect_uri: form.get("redirect_uri"),
                code_verifier: form.get("code_verifier"),
                resource: form.get("resource"),
            };
            mcp_oauth::exchange_code(&state.db, issuer, &credentials, &exchange).await?
        }
        Some("refresh_token") => {
            let request = Refresh {
                refresh_token: form.get("refresh_token"),
                resource: form.get("resource"),
            };
            mcp_oauth::refresh(&state.db, issuer, &credentials, &request).await?
        }
        Some(_) => {
            return Err(OAuthError::new(
                ErrorCode::UnsupportedGrantType,
                "grant_type must be authorization_code or refresh_token",
            ));
        }
        None => {
            return Err(OAuthError::new(
                ErrorCode::InvalidRequest,
                "grant_type is required",
            ));
        }
    };
    outcome.map_err(|refusal| OAuthError::refused(refusal, basic))
}

async fn revoke(State(state): State<AppState>, request: Request) -> Response {
    let revoked = async {
        let (headers, form) = Form::read(request).await?;
        let (credentials, basic) = form.client(&headers)?;
        mcp_oauth::revoke(&state.db, &credentials, form.get("token").as_deref())
            .await?
            .map_err(|refusal| OAuthError::refused(refusal, basic))
    };
    match revoked.await {
        Ok(()) => no_store(StatusCode::OK.into_response()),
        Err(error) => error.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_credentials_are_form_decoded() {
        assert_eq!(form_decode("a%3Ab+c").as_deref(), Some("a:b c"));
        assert_eq!(form_decode("mcps_x-y_z").as_deref(), Some("mcps_x-y_z"));
        assert_eq!(form_decode("bad%2"), None);
        assert_eq!(form_decode("bad%zz"), None);
    }

    #[test]
    fn a_form_names_each_parameter_once() {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded; charset=UTF-8"),
        );
        let distinct: Vec<String> = (0..2000).map(|i| format!("p{i}=v")).collect();
        let form = Form::parse(&headers, distinct.join("&").as_bytes()).unwrap();
        assert_eq!(form.get("p1999").as_deref(), Some("v"));
        let repeated = format!("{}&p3=again", distinct.join("&"));
        let refused = Form::parse(&headers, repeated.as_bytes()).err().unwrap();
        assert_eq!(refused.code, "invalid_request");
        assert_eq!(refused.message, "p3 is given more than once");
        let refused = Form::parse(&HeaderMap::new(), b"a=b").err().unwrap();
        assert_eq!(refused.code, "invalid_request");
    }
}
