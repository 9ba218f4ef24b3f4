//! The OAuth 2.1 authorization server in front of `/mcp` (API.md §11), for assistants that can
//! only connect with OAuth (Claude.ai, ChatGPT): clients that register themselves (RFC 7591),
//! authorization codes bound to a PKCE challenge and to the user who consented in the web UI,
//! access and refresh tokens, and revocation (RFC 7009). Secrets, codes and tokens are stored
//! as SHA-256 only.
//!
//! A token acts as the user who consented, with their current role in their organization, as a
//! web session does: a role change applies at once, and a removed or deactivated user's tokens
//! stop working. Refresh tokens rotate; one presented twice revokes its whole grant, and so does
//! an authorization code presented twice (OAuth 2.1 §4.1.3, §4.3.1). Users see and revoke their
//! grants in the web UI ([`grants`], [`revoke_grant_as`]), admins everyone's.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::access::auth::{Actor, ApiKeyRef, Role, acting_user, hash_key};
use crate::error::{Error, Result};
use crate::store::clock::{Millis, now_ms};
use crate::store::db::{Backend, Db, Sql, Tx, row};
use crate::store::ids::new_id;
use crate::store::json::shorten;

/// The one scope: whatever the user's role allows, through MCP.
pub const SCOPE: &str = "mcp";

/// Access tokens start with this; API keys with `bbl_`, so a bearer value says which it is.
pub const ACCESS_TOKEN_PREFIX: &str = "mcpa_";
const REFRESH_TOKEN_PREFIX: &str = "mcpr_";
const CODE_PREFIX: &str = "mcpc_";
const CLIENT_SECRET_PREFIX: &str = "mcps_";
const CLIENT_ID_PREFIX: &str = "mcc";
const GRANT_ID_PREFIX: &str = "mcg";

/// How long what the server hands out serves.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub code_ms: Millis,
    pub access_ms: Millis,
    /// A refresh token's; each refresh hands out a new one, so a client in use stays connected.
    pub refresh_ms: Millis,
}

impl Default for Lifetimes {
    fn default() -> Self {
        Self {
            code_ms: 5 * 60 * 1000,
            access_ms: 60 * 60 * 1000,
            refresh_ms: 30 * 24 * 60 * 60 * 1000,
        }
    }
}

/// What the token and revocation endpoints check requests against.
#[derive(Debug, Clone, Copy)]
pub struct Issuer<'a> {
    pub lifetimes: Lifetimes,
    /// This server's `/mcp` URL: the only resource (RFC 8707) tokens are issued for.
    pub resource: &'a str,
}

/// The error codes of RFC 6749 §4.1.2.1 and §5.2, RFC 7591 §3.2.2 and RFC 8707 §2.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorCode {
    InvalidRequest,
    InvalidClient,
    InvalidGrant,
    UnauthorizedClient,
    UnsupportedGrantType,
    UnsupportedResponseType,
    InvalidTarget,
    AccessDenied,
    InvalidRedirectUri,
    InvalidClientMetadata,
    TemporarilyUnavailable,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::InvalidClient => "invalid_client",
            ErrorCode::InvalidGrant => "invalid_grant",
            ErrorCode::UnauthorizedClient => "unauthorized_client",
            ErrorCode::UnsupportedGrantType => "unsupported_grant_type",
            ErrorCode::UnsupportedResponseType => "unsupported_response_type",
            ErrorCode::InvalidTarget => "invalid_target",
            ErrorCode::AccessDenied => "access_denied",
            ErrorCode::InvalidRedirectUri => "invalid_redirect_uri",
            ErrorCode::InvalidClientMetadata => "invalid_client_metadata",
            ErrorCode::TemporarilyUnavailable => "temporarily_unavailable",
        }
    }
}

/// A request refused in OAuth's terms (the storage failing is an [`Error`] instead).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: ErrorCode,
    pub message: String,
}

impl Refusal {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }
}

/// What an OAuth request comes to: done, or refused with a reason the client is told.
pub type Outcome<T> = std::result::Result<T, Refusal>;

/// `?` for refusals: the value of an [`Outcome`], or the refusal returned as the function's
/// own outcome.
macro_rules! granted {
    ($outcome:expr) => {
        match $outcome {
            Ok(value) => value,
            Err(refusal) => return Ok(Err(refusal)),
        }
    };
}

/// How a client proves itself at the token endpoint (RFC 7591 `token_endpoint_auth_method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAuthMethod {
    /// A public client: PKCE is its proof.
    None,
    SecretPost,
    SecretBasic,
}

impl ClientAuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            ClientAuthMethod::None => "none",
            ClientAuthMethod::SecretPost => "client_secret_post",
            ClientAuthMethod::SecretBasic => "client_secret_basic",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::None, Self::SecretPost, Self::SecretBasic]
            .into_iter()
            .find(|m| m.as_str() == text)
    }

    pub const ALL: [&'static str; 3] = ["none", "client_secret_post", "client_secret_basic"];
}

/// What a client sends to register (RFC 7591 §2). Other fields are ignored, as §3.2.1 allows.
#[derive(Debug, Default, Deserialize)]
pub struct ClientMetadata {
    #[serde(default)]
    pub redirect_uris: Vec<String>,
    pub client_name: Option<String>,
    pub token_endpoint_auth_method: Option<String>,
    pub grant_types: Option<Vec<String>>,
    pub response_types: Option<Vec<String>>,
}

/// A registered client.
#[derive(Debug, Clone)]
pub struct Client {
    pub id: String,
    pub name: String,
    pub redirect_uris: Vec<String>,
    pub auth_method: ClientAuthMethod,
    pub created_at: Millis,
    secret_hash: Option<String>,
}

/// A client just registered; its secret (for a confidential client) is shown this once.
#[derive(Debug)]
pub struct Registered {
    pub client: Client,
    pub secret: Option<String>,
}

const MAX_REDIRECT_URIS: usize = 10;
const MAX_URI_CHARS: usize = 2000;
const MAX_NAME_CHARS: usize = 100;
const MAX_STATE_CHARS: usize = 2000;
/// Clients registered and never used that may exist at once. Registration needs no
/// credentials, so this bounds what anyone can make the database keep; at the bound the oldest
/// of them make room for new ones ([`register`]).
pub const MAX_UNUSED_CLIENTS: i64 = 5_000;
/// A client nobody consented to within this long is forgotten.
const UNUSED_CLIENT_TTL_MS: Millis = 60 * 60 * 1000;
/// A client never used may make room for a new one once it is this old: long enough for its
/// user to log in and consent.
const UNUSED_CLIENT_GRACE_MS: Millis = 15 * 60 * 1000;
/// A client without any grant left is forgotten after this long without use.
const IDLE_CLIENT_TTL_MS: Millis = 90 * 24 * 60 * 60 * 1000;
/// `last_used_at` of a grant is written at most this often.
const LAST_USED_RESOLUTION_MS: Millis = 60_000;

fn random_secret(prefix: &str) -> String {
    format!(
        "{prefix}{}",
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
    )
}

/// Registers a client. Its redirect URIs must be https, or http on a loopback address (a
/// native app's own listener, RFC 8252 §7.3). With `max_unused` clients registered and never
/// used, the oldest of them past [`UNUSED_CLIENT_GRACE_MS`] are forgotten to make room: whoever
/// registers in bulk pushes out abandoned registrations, not everyone's next one.
pub async fn register(
    db: &Db,
    metadata: ClientMetadata,
    max_unused: i64,
) -> Result<Outcome<Registered>> {
    let (name, redirect_uris, auth_method) = granted!(check_metadata(metadata));
    if !make_room(db, max_unused).await? {
        return Ok(Err(Refusal::new(
            ErrorCode::TemporarilyUnavailable,
            "too many clients were registered in the last minutes and not yet used; try again \
             later",
        )));
    }
    let secret =
        (auth_method != ClientAuthMethod::None).then(|| random_secret(CLIENT_SECRET_PREFIX));
    let client = Client {
        id: new_id(CLIENT_ID_PREFIX),
        name,
        redirect_uris,
        auth_method,
        created_at: now_ms(),
        secret_hash: secret.as_deref().map(hash_key),
    };
    let uris = serde_json::to_string(&client.redirect_uris)
        .map_err(|e| Error::Internal(format!("redirect URIs: {e}")))?;
    db.write_count(
        &Sql::new(
            "INSERT INTO oauth_clients (id, name, redirect_uris, auth_method, secret_hash, created_at) \
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .arg(client.id.as_str())
        .arg(client.name.as_str())
        .arg(uris)
        .arg(client.auth_method.as_str())
        .arg(client.secret_hash.clone())
        .arg(client.created_at),
    )
    .await?;
    Ok(Ok(Registered { client, secret }))
}

/// Whether one more never-used client fits under `max_unused`, once the oldest never-used
/// clients past their grace period are forgotten if need be.
async fn make_room(db: &Db, max_unused: i64) -> Result<bool> {
    let unused = Sql::new("SELECT COUNT(*) AS n FROM oauth_clients WHERE last_used_at IS NULL")
        .fetch_one(db)
        .await?;
    let excess = row::get_i64(&unused, "n")? - max_unused + 1;
    if excess <= 0 {
        return Ok(true);
    }
    let forgotten = db
        .write_count(
            &Sql::new(
                "DELETE FROM oauth_clients WHERE id IN (SELECT id FROM oauth_clients \
                 WHERE last_used_at IS NULL AND created_at <= ? AND NOT EXISTS \
                 (SELECT 1 FROM oauth_codes c WHERE c.client_id = oauth_clients.id) \
                 ORDER BY created_at, id LIMIT ?)",
            )
            .arg(now_ms() - UNUSED_CLIENT_GRACE_MS)
            .arg(excess),
        )
        .await?;
    if forgotten > 0 {
        tracing::info!(
            forgotten,
            "Unused OAuth clients were forgotten to make room."
        );
    }
    Ok(i64::try_from(forgotten).unwrap_or(i64::MAX) >= excess)
}

fn check_metadata(metadata: ClientMetadata) -> Outcome<(String, Vec<String>, ClientAuthMethod)> {
    let bad = |message: String| Refusal::new(ErrorCode::InvalidClientMetadata, message);
    if metadata.redirect_uris.is_empty() || metadata.redirect_uris.len() > MAX_REDIRECT_URIS {
        return Err(Refusal::new(
            ErrorCode::InvalidRedirectUri,
            format!("redirect_uris must list 1 to {MAX_REDIRECT_URIS} URIs"),
        ));
    }
    for uri in &metadata.redirect_uris {
        check_redirect_uri(uri).map_err(|m| Refusal::new(ErrorCode::InvalidRedirectUri, m))?;
    }
    let auth_method = match metadata.token_endpoint_auth_method.as_deref() {
        // RFC 7591 §2: the default is client_secret_basic.
        None => ClientAuthMethod::SecretBasic,
        Some(text) => ClientAuthMethod::parse(text).ok_or_else(|| {
            bad(format!(
                "token_endpoint_auth_method must be one of {}",
                ClientAuthMethod::ALL.join(", ")
            ))
        })?,
    };
    if let Some(grants) = &metadata.grant_types
        && (!grants.iter().any(|g| g == "authorization_code")
            || grants
                .iter()
                .any(|g| g != "authorization_code" && g != "refresh_token"))
    {
        return Err(bad(
            "grant_types may only be authorization_code and refresh_token, with authorization_code"
                .into(),
        ));
    }
    if let Some(types) = &metadata.response_types
        && types.iter().any(|t| t != "code")
    {
        return Err(bad("response_types may only be code".into()));
    }
    let name = metadata
        .client_name
        .as_deref()
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .unwrap_or("An unnamed application");
    if name.chars().any(char::is_control) {
        return Err(bad("client_name must not contain control characters".into()));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(bad(format!(
            "client_name must be at most {MAX_NAME_CHARS} characters"
        )));
    }
    Ok((name.to_owned(), metadata.redirect_uris, auth_method))
}

fn check_redirect_uri(text: &str) -> std::result::Result<(), String> {
    if text.chars().count() > MAX_URI_CHARS {
        return Err(format!(
            "a redirect URI must be at most {MAX_URI_CHARS} characters"
        ));
    }
    let url =
        url::Url::parse(text).map_err(|_| format!("{} is not an absolute URL", shorten(text)))?;
    if url.fragment().is_some() {
        return Err(format!("{} has a fragment (#…)", shorten(text)));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{} carries credentials", shorten(text)));
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok(()),
        "http" if is_loopback(&url) => Ok(()),
        _ => Err(format!(
            "{} is refused: a redirect URI must be https, or http on a loopback address \
             (127.0.0.1, [::1] or localhost)",
            shorten(text)
        )),
    }
}

fn is_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(domain)) => domain.eq_ignore_ascii_case("localhost"),
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

/// Whether `given` is the registered redirect URI: the same text, except that the port of an
/// http loopback URI may differ (a native app listens on a port it picks when it runs,
/// RFC 8252 §7.3).
fn redirect_matches(registered: &str, given: &str) -> bool {
    if registered == given {
        return true;
    }
    let (Ok(mut registered), Ok(mut given)) = (url::Url::parse(registered), url::Url::parse(given))
    else {
        return false;
    };
    if registered.scheme() != "http" || !is_loopback(&registered) {
        return false;
    }
    let _ = registered.set_port(None);
    let _ = given.set_port(None);
    registered == given
}

/// Where a redirect URI sends the user: its host (and port), shown on the consent page.
pub fn redirect_host(uri: &str) -> String {
    url::Url::parse(uri)
        .ok()
        .and_then(|url| {
            let host = url.host_str()?.to_owned();
            Some(match url.port() {
                Some(port) => format!("{host}:{port}"),
                None => host,
            })
        })
        .unwrap_or_else(|| shorten(uri))
}

/// `redirect_uri` with `params` added to its query: the authorization response.
pub fn callback_url(redirect_uri: &str, params: &[(&str, &str)]) -> String {
    match url::Url::parse(redirect_uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(params);
            url.into()
        }
        Err(_) => redirect_uri.to_owned(),
    }
}

/// Whether a `resource` parameter (RFC 8707) names this server's MCP endpoint. The origin alone
/// is taken too: some clients name the server rather than the endpoint.
pub fn resource_matches(given: &str, ours: &str) -> bool {
    let normal = |s: &str| s.trim_end_matches('/').to_ascii_lowercase();
    let (given, ours) = (normal(given), normal(ours));
    given == ours || ours.strip_suffix("/mcp") == Some(given.as_str())
}

fn client_from_row(r: &row::Row) -> Result<Client> {
    let uris = row::get_str(r, "redirect_uris")?;
    let method = row::get_str(r, "auth_method")?;
    Ok(Client {
        id: row::get_str(r, "id")?,
        name: row::get_str(r, "name")?,
        redirect_uris: serde_json::from_str(&uris)
            .map_err(|e| Error::Internal(format!("stored redirect URIs: {e}")))?,
        auth_method: ClientAuthMethod::parse(&method)
            .ok_or_else(|| Error::Internal(format!("stored auth method {method}")))?,
        created_at: row::get_i64(r, "created_at")?,
        secret_hash: row::get_opt_str(r, "secret_hash")?,
    })
}

/// A registered client, if there is one with this id.
pub async fn client(db: &Db, id: &str) -> Result<Option<Client>> {
    Sql::new("SELECT * FROM oauth_clients WHERE id = ?")
        .arg(id)
        .fetch_optional(db)
        .await?
        .map(|r| client_from_row(&r))
        .transpose()
}

/// The parameters of an authorization request (RFC 6749 §4.1.1, RFC 7636, RFC 8707), as sent.
#[derive(Debug, Default, Clone)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub scope: Option<String>,
    pub resource: Option<String>,
}

/// An authorization request that may be shown to the user for consent.
#[derive(Debug, Clone)]
pub struct AuthorizationRequest {
    pub client_id: String,
    pub client_name: String,
    pub redirect_uri: String,
    /// Whether the request named its redirect URI (rather than leaving the one registered
    /// implied): the token request must then name it too (RFC 6749 §4.1.3).
    pub redirect_uri_given: bool,
    pub state: Option<String>,
    pub code_challenge: String,
}

/// What an authorization request comes to before the user is asked.
#[derive(Debug)]
pub enum Checked {
    Valid(AuthorizationRequest),
    /// The client or its redirect URI is unknown: nothing may be sent there (RFC 6749
    /// §4.1.2.1); the user is told why.
    Unusable(String),
    /// The request is refused before the user was asked. The user is shown why, with a link
    /// back to the client carrying this refusal; never sent there by itself, since anyone may
    /// register a client and its redirect URIs (RFC 9700 §4.11.2).
    Refused {
        client_name: String,
        redirect_uri: String,
        state: Option<String>,
        refusal: Refusal,
    },
}

/// Checks an authorization request against the registered client. `resource` is this server's
/// `/mcp` URL.
pub async fn check_authorization(
    db: &Db,
    params: &AuthorizeParams,
    resource: &str,
) -> Result<Checked> {
    let Some(client_id) = params.client_id.as_deref() else {
        return Ok(Checked::Unusable(
            "The link names no application (client_id).".into(),
        ));
    };
    let Some(client) = client(db, client_id).await? else {
        return Ok(Checked::Unusable(
            "The application is not registered here, or its registration has expired. \
             Connect it again from the application."
                .into(),
        ));
    };
    let redirect_uri = match (
        params.redirect_uri.as_deref(),
        client.redirect_uris.as_slice(),
    ) {
        (Some(given), registered) if registered.iter().any(|r| redirect_matches(r, given)) => {
            given.to_owned()
        }
        (None, [only]) => only.clone(),
        (None, _) => {
            return Ok(Checked::Unusable(
                "The link names no redirect URI and the application registered several.".into(),
            ));
        }
        (Some(_), _) => {
            return Ok(Checked::Unusable(
                "The link would send you to an address the application did not register.".into(),
            ));
        }
    };
    let refuse = |code: ErrorCode, message: &str| {
        Ok(Checked::Refused {
            client_name: client.name.clone(),
            redirect_uri: redirect_uri.clone(),
            state: params.state.clone(),
            refusal: Refusal::new(code, message),
        })
    };
    if params.response_type.as_deref() != Some("code") {
        return refuse(
            ErrorCode::UnsupportedResponseType,
            "response_type must be code",
        );
    }
    let Some(challenge) = params.code_challenge.as_deref() else {
        return refuse(
            ErrorCode::InvalidRequest,
            "code_challenge is required (PKCE with S256)",
        );
    };
    if params.code_challenge_method.as_deref() != Some("S256") {
        return refuse(
            ErrorCode::InvalidRequest,
            "code_challenge_method must be S256",
        );
    }
    if !is_pkce_text(challenge) {
        return refuse(
            ErrorCode::InvalidRequest,
            "code_challenge must be 43 to 128 characters of A-Z a-z 0-9 - . _ ~",
        );
    }
    if params
        .resource
        .as_deref()
        .is_some_and(|r| !resource_matches(r, resource))
    {
        return refuse(
            ErrorCode::InvalidTarget,
            "resource must be this server's MCP endpoint",
        );
    }
    if params
        .state
        .as_deref()
        .is_some_and(|s| s.chars().count() > MAX_STATE_CHARS)
    {
        return refuse(ErrorCode::InvalidRequest, "state is too long");
    }
    Ok(Checked::Valid(AuthorizationRequest {
        client_id: client.id,
        client_name: client.name,
        redirect_uri,
        redirect_uri_given: params.redirect_uri.is_some(),
        state: params.state.clone(),
        code_challenge: challenge.to_owned(),
    }))
}

/// PKCE's alphabet and lengths (RFC 7636 §4.1), for verifiers and challenges alike.
fn is_pkce_text(text: &str) -> bool {
    (43..=128).contains(&text.len())
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// The S256 challenge of a verifier.
fn challenge_of(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(verifier.as_bytes())[..])
}

/// The user's consent: an authorization code for the client, acting as `actor`'s user in their
/// organization. Like an API key, it needs the professional plan or higher.
pub async fn approve(
    db: &Db,
    actor: &Actor,
    request: &AuthorizationRequest,
    lifetimes: &Lifetimes,
) -> Result<String> {
    if !actor.organization.plan.allows_api_keys() {
        return Err(Error::Forbidden {
            code: "plan_required",
            message: "connecting an assistant needs the professional or business plan, as API \
                      keys do"
                .into(),
        });
    }
    let code = random_secret(CODE_PREFIX);
    let now = now_ms();
    let mut tx = db.begin().await?;
    let touched = Sql::new("UPDATE oauth_clients SET last_used_at = ? WHERE id = ?")
        .arg(now)
        .arg(request.client_id.as_str())
        .execute(&mut tx)
        .await?;
    if touched != 1 {
        return Err(Error::NotFound("client"));
    }
    Sql::new(
        "INSERT INTO oauth_codes (code_hash, client_id, org_id, user_id, redirect_uri, \
         redirect_uri_given, code_challenge, scope, created_at, expires_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(hash_key(&code))
    .arg(request.client_id.as_str())
    .arg(actor.org_id())
    .arg(actor.user_id.as_str())
    .arg(request.redirect_uri.as_str())
    .arg(i64::from(request.redirect_uri_given))
    .arg(request.code_challenge.as_str())
    .arg(SCOPE)
    .arg(now)
    .arg(now + lifetimes.code_ms)
    .execute(&mut tx)
    .await?;
    tx.commit().await?;
    Ok(code)
}

/// Who calls the token or revocation endpoint: `client_id` and, for a confidential client, its
/// secret (from the body or HTTP Basic, as the web layer found them).
#[derive(Debug, Default, Clone)]
pub struct ClientCredentials {
    pub client_id: Option<String>,
    pub secret: Option<String>,
}

/// The client the credentials prove, or `invalid_client`.
async fn authenticate_client(db: &Db, credentials: &ClientCredentials) -> Result<Outcome<Client>> {
    let refused = |message: &str| Ok(Err(Refusal::new(ErrorCode::InvalidClient, message)));
    let Some(id) = credentials.client_id.as_deref() else {
        return refused("client_id is required");
    };
    let Some(client) = client(db, id).await? else {
        return refused("the client is not registered (or its registration has expired)");
    };
    if let Some(expected) = &client.secret_hash {
        let matches = credentials
            .secret
            .as_deref()
            .is_some_and(|s| hash_key(s) == *expected);
        if !matches {
            return refused("the client secret is missing or wrong");
        }
    }
    Ok(Ok(client))
}

/// What a token request for the `authorization_code` grant carries besides the client.
#[derive(Debug, Default, Clone)]
pub struct CodeExchange {
    pub code: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
    pub resource: Option<String>,
}

/// Tokens just issued: the only time they are seen in clear.
#[derive(Debug, Clone)]
pub struct Tokens {
    pub access_token: String,
    pub refresh_token: String,
    pub expires_in_secs: i64,
    pub scope: String,
}

fn invalid_grant(message: &str) -> Refusal {
    Refusal::new(ErrorCode::InvalidGrant, message)
}

fn check_resource(given: Option<&str>, ours: &str) -> Outcome<()> {
    match given {
        Some(r) if !resource_matches(r, ours) => Err(Refusal::new(
            ErrorCode::InvalidTarget,
            "resource must be this server's MCP endpoint",
        )),
        _ => Ok(()),
    }
}

/// What every token request starts with: the client proven, the grant's one required
/// parameter (`name`, `value`) present, and the resource, if one is named, this server's.
async fn token_request<'a>(
    db: &Db,
    issuer: &Issuer<'_>,
    credentials: &ClientCredentials,
    (name, value): (&str, Option<&'a str>),
    resource: Option<&str>,
) -> Result<Outcome<(Client, &'a str)>> {
    let client = granted!(authenticate_client(db, credentials).await?);
    let Some(value) = value else {
        return Ok(Err(Refusal::new(
            ErrorCode::InvalidRequest,
            format!("{name} is required"),
        )));
    };
    granted!(check_resource(resource, issuer.resource));
    Ok(Ok((client, value)))
}

/// Exchanges an authorization code for tokens. A code serves once, whatever the outcome; one
/// presented again revokes the tokens its first exchange gave.
pub async fn exchange_code(
    db: &Db,
    issuer: Issuer<'_>,
    credentials: &ClientCredentials,
    exchange: &CodeExchange,
) -> Result<Outcome<Tokens>> {
    let (client, code) = granted!(
        token_request(
            db,
            &issuer,
            credentials,
            ("code", exchange.code.as_deref()),
            exchange.resource.as_deref(),
        )
        .await?
    );
    let code_hash = hash_key(code);
    let now = now_ms();
    let mut tx = db.begin().await?;
    let claimed = Sql::new(
        "UPDATE oauth_codes SET used_at = ? WHERE code_hash = ? AND used_at IS NULL \
         RETURNING client_id, org_id, user_id, redirect_uri, redirect_uri_given, \
         code_challenge, scope, expires_at",
    )
    .arg(now)
    .arg(code_hash.as_str())
    .fetch_optional(&mut tx)
    .await?;
    let Some(r) = claimed else {
        let earlier = Sql::new("SELECT grant_id FROM oauth_codes WHERE code_hash = ?")
            .arg(code_hash.as_str())
            .fetch_optional(&mut tx)
            .await?;
        return Ok(Err(match earlier {
            Some(earlier) => {
                if let Some(grant_id) = row::get_opt_str(&earlier, "grant_id")? {
                    revoke_grant(&mut tx, &grant_id, now).await?;
                    tx.commit().await?;
                }
                invalid_grant(
                    "the authorization code was used already; the tokens it gave are revoked",
                )
            }
            None => invalid_grant("the authorization code is not valid"),
        }));
    };
    let (org_id, user_id) = (row::get_str(&r, "org_id")?, row::get_str(&r, "user_id")?);
    let checked = match check_code(&r, &client, exchange, now)? {
        Ok(()) => still_acting(db, &org_id, &user_id).await?.map(drop),
        refused => refused,
    };
    if let Err(refusal) = checked {
        // The code is spent, whatever the answer: the claim is committed with it.
        tx.commit().await?;
        return Ok(Err(refusal));
    }
    let grant_id = new_id(GRANT_ID_PREFIX);
    Sql::new(
        "INSERT INTO oauth_grants (id, client_id, org_id, user_id, scope, created_at, last_used_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(grant_id.as_str())
    .arg(client.id.as_str())
    .arg(org_id.as_str())
    .arg(user_id.as_str())
    .arg(row::get_str(&r, "scope")?)
    .arg(now)
    .arg(now)
    .execute(&mut tx)
    .await?;
    Sql::new("UPDATE oauth_codes SET grant_id = ? WHERE code_hash = ?")
        .arg(grant_id.as_str())
        .arg(code_hash.as_str())
        .execute(&mut tx)
        .await?;
    let tokens = issue(&mut tx, &grant_id, &issuer.lifetimes, now).await?;
    Sql::new("UPDATE oauth_clients SET last_used_at = ? WHERE id = ?")
        .arg(now)
        .arg(client.id.as_str())
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(Ok(tokens))
}

/// Whether a claimed code (`r`) may be exchanged by this request.
fn check_code(
    r: &row::Row,
    client: &Client,
    exchange: &CodeExchange,
    now: Millis,
) -> Result<Outcome<()>> {
    if row::get_str(r, "client_id")? != client.id {
        return Ok(Err(invalid_grant(
            "the authorization code was issued to another client",
        )));
    }
    if row::get_i64(r, "expires_at")? <= now {
        return Ok(Err(invalid_grant("the authorization code has expired")));
    }
    // RFC 6749 §4.1.3: required when the authorization request carried one.
    match exchange.redirect_uri.as_deref() {
        None if row::get_i64(r, "redirect_uri_given")? != 0 => {
            return Ok(Err(Refusal::new(
                ErrorCode::InvalidRequest,
                "redirect_uri is required: the authorization request named one",
            )));
        }
        Some(given) if given != row::get_str(r, "redirect_uri")? => {
            return Ok(Err(invalid_grant(
                "redirect_uri differs from the one of the authorization request",
            )));
        }
        _ => {}
    }
    Ok(match exchange.code_verifier.as_deref() {
        None => Err(Refusal::new(
            ErrorCode::InvalidRequest,
            "code_verifier is required (PKCE)",
        )),
        Some(verifier)
            if !is_pkce_text(verifier)
                || challenge_of(verifier) != row::get_str(r, "code_challenge")? =>
        {
            Err(invalid_grant(
                "code_verifier does not match the code_challenge",
            ))
        }
        Some(_) => Ok(()),
    })
}

/// Refused when the user who consented can no longer log in (removed, deactivated).
async fn still_acting(db: &Db, org_id: &str, user_id: &str) -> Result<Outcome<Actor>> {
    match acting_user(db, org_id, user_id, grant_ref("", "", None)).await {
        Ok(actor) => Ok(Ok(actor)),
        Err(Error::Forbidden { .. } | Error::NotFound(_)) => Ok(Err(invalid_grant(
            "the user who gave this consent can no longer log in",
        ))),
        Err(other) => Err(other),
    }
}

/// Stands in for an API key on a token's actor: the grant is what limits, counts and `/me` see.
fn grant_ref(grant_id: &str, client_name: &str, expires_at: Option<Millis>) -> ApiKeyRef {
    ApiKeyRef {
        id: grant_id.to_owned(),
        name: format!("MCP: {client_name}"),
        prefix: String::new(),
        expires_at,
    }
}

async fn issue(tx: &mut Tx, grant_id: &str, lifetimes: &Lifetimes, now: Millis) -> Result<Tokens> {
    let tokens = Tokens {
        access_token: random_secret(ACCESS_TOKEN_PREFIX),
        refresh_token: random_secret(REFRESH_TOKEN_PREFIX),
        expires_in_secs: lifetimes.access_ms / 1000,
        scope: SCOPE.to_owned(),
    };
    for (token, kind, lifetime) in [
        (&tokens.access_token, "access", lifetimes.access_ms),
        (&tokens.refresh_token, "refresh", lifetimes.refresh_ms),
    ] {
        Sql::new(
            "INSERT INTO oauth_tokens (token_hash, grant_id, kind, created_at, expires_at) \
             VALUES (?, ?, ?, ?, ?)",
        )
        .arg(hash_key(token))
        .arg(grant_id)
        .arg(kind)
        .arg(now)
        .arg(now + lifetime)
        .execute(&mut *tx)
        .await?;
    }
    Ok(tokens)
}

/// Revokes a grant: it and every token of it stop working at once.
async fn revoke_grant(tx: &mut Tx, grant_id: &str, now: Millis) -> Result<()> {
    Sql::new("UPDATE oauth_grants SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
        .arg(now)
        .arg(grant_id)
        .execute(&mut *tx)
        .await?;
    Sql::new("DELETE FROM oauth_tokens WHERE grant_id = ?")
        .arg(grant_id)
        .execute(&mut *tx)
        .await?;
    Ok(())
}

/// What a token request for the `refresh_token` grant carries besides the client.
#[derive(Debug, Default, Clone)]
pub struct Refresh {
    pub refresh_token: Option<String>,
    pub resource: Option<String>,
}

/// The `refresh_token` grant: a new access token and a new refresh token for the old one,
/// which is spent. A spent one presented again revokes the grant (it was copied). The grant
/// keeps only its new tokens and the one just spent (to recognise it if it comes back).
pub async fn refresh(
    db: &Db,
    issuer: Issuer<'_>,
    credentials: &ClientCredentials,
    request: &Refresh,
) -> Result<Outcome<Tokens>> {
    let (client, token) = granted!(
        token_request(
            db,
            &issuer,
            credentials,
            ("refresh_token", request.refresh_token.as_deref()),
            request.resource.as_deref(),
        )
        .await?
    );
    let token_hash = hash_key(token);
    let now = now_ms();
    let mut tx = db.begin().await?;
    // On Postgres, refreshes of one grant queue on its row first: the winner deletes tokens
    // then touches the grant, a reuse revokes the grant then deletes tokens, and without one
    // order between them the two deadlock. (SQLite takes writes one at a time.)
    if tx.backend() == Backend::Postgres {
        Sql::new(
            "SELECT g.id FROM oauth_grants g JOIN oauth_tokens t ON t.grant_id = g.id \
             WHERE t.token_hash = ? AND t.kind = 'refresh' FOR UPDATE OF g",
        )
        .arg(token_hash.as_str())
        .fetch_optional(&mut tx)
        .await?;
    }
    // The claim decides between concurrent refreshes with one token: the second's UPDATE waits
    // for the first to commit, then finds `used_at` set and changes nothing, a reuse.
    let claimed = Sql::new(
        "UPDATE oauth_tokens SET used_at = ? \
         WHERE token_hash = ? AND kind = 'refresh' AND used_at IS NULL RETURNING grant_id",
    )
    .arg(now)
    .arg(token_hash.as_str())
    .fetch_optional(&mut tx)
    .await?;
    let found = Sql::new(
        "SELECT t.expires_at, g.id, g.client_id, g.org_id, g.user_id, g.revoked_at \
         FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id \
         WHERE t.token_hash = ? AND t.kind = 'refresh'",
    )
    .arg(token_hash.as_str())
    .fetch_optional(&mut tx)
    .await?;
    // A refusal below rolls the claim back, except for a reuse: the rightful client's token
    // stays unspent when another client shows it.
    let Some(r) = found else {
        return Ok(Err(invalid_grant("the refresh token is not valid")));
    };
    let grant_id = row::get_str(&r, "id")?;
    if row::get_str(&r, "client_id")? != client.id {
        return Ok(Err(invalid_grant(
            "the refresh token was issued to another client",
        )));
    }
    if claimed.is_none() {
        revoke_grant(&mut tx, &grant_id, now).await?;
        tx.commit().await?;
        tracing::warn!(%grant_id, "A spent refresh token came back; its grant is revoked.");
        return Ok(Err(invalid_grant(
            "the refresh token was used already; its grant is revoked",
        )));
    }
    if row::get_opt_i64(&r, "revoked_at")?.is_some() || row::get_i64(&r, "expires_at")? <= now {
        return Ok(Err(invalid_grant(
            "the refresh token has expired or was revoked",
        )));
    }
    let (org_id, user_id) = (row::get_str(&r, "org_id")?, row::get_str(&r, "user_id")?);
    granted!(still_acting(db, &org_id, &user_id).await?);
    Sql::new(
        "DELETE FROM oauth_tokens WHERE grant_id = ? AND token_hash <> ? \
         AND (kind = 'access' OR used_at IS NOT NULL)",
    )
    .arg(grant_id.as_str())
    .arg(token_hash.as_str())
    .execute(&mut tx)
    .await?;
    Sql::new("UPDATE oauth_grants SET last_used_at = ? WHERE id = ?")
        .arg(now)
        .arg(grant_id.as_str())
        .execute(&mut tx)
        .await?;
    let tokens = issue(&mut tx, &grant_id, &issuer.lifetimes, now).await?;
    tx.commit().await?;
    Ok(Ok(tokens))
}

/// Revokes the grant of an access or refresh token (RFC 7009). An unknown or expired token is
/// no error; one issued to another client is refused.
pub async fn revoke(
    db: &Db,
    credentials: &ClientCredentials,
    token: Option<&str>,
) -> Result<Outcome<()>> {
    let client = granted!(authenticate_client(db, credentials).await?);
    let Some(token) = token else {
        return Ok(Err(Refusal::new(
            ErrorCode::InvalidRequest,
            "token is required",
        )));
    };
    let mut tx = db.begin().await?;
    let found = Sql::new(
        "SELECT g.id, g.client_id FROM oauth_tokens t JOIN oauth_grants g ON g.id = t.grant_id \
         WHERE t.token_hash = ?",
    )
    .arg(hash_key(token))
    .fetch_optional(&mut tx)
    .await?;
    let Some(r) = found else {
        return Ok(Ok(()));
    };
    if row::get_str(&r, "client_id")? != client.id {
        return Ok(Err(Refusal::new(
            ErrorCode::UnauthorizedClient,
            "the token was issued to another client",
        )));
    }
    revoke_grant(&mut tx, &row::get_str(&r, "id")?, now_ms()).await?;
    tx.commit().await?;
    Ok(Ok(()))
}

/// A user's consent to a client, as the web UI lists it.
#[derive(Debug, Clone)]
pub struct GrantSummary {
    pub id: String,
    pub client_name: String,
    /// Where the client sends its users back: the hosts of its redirect URIs.
    pub redirect_hosts: Vec<String>,
    pub user_id: String,
    pub user_name: String,
    pub user_email: String,
    pub created_at: Millis,
    pub last_used_at: Option<Millis>,
}

/// Whether `actor` may see and revoke every grant of their organization, not only their own.
pub fn sees_all_grants(actor: &Actor) -> bool {
    actor.role >= Role::Admin
}

/// The grants in force that `actor` may see and revoke, newest first: their own, and for an
/// admin or owner every one of their organization. A grant is in force until it is revoked or
/// its refresh token expires.
pub async fn grants(db: &Db, actor: &Actor) -> Result<Vec<GrantSummary>> {
    let mut sql = Sql::new(
        "SELECT g.id, g.user_id, g.created_at, g.last_used_at, c.name AS client_name, \
         c.redirect_uris, u.name AS user_name, u.email AS user_email \
         FROM oauth_grants g JOIN oauth_clients c ON c.id = g.client_id \
         JOIN org_users u ON u.id = g.user_id \
         WHERE g.org_id = ? AND g.revoked_at IS NULL AND EXISTS (SELECT 1 FROM oauth_tokens t \
         WHERE t.grant_id = g.id AND t.kind = 'refresh' AND t.used_at IS NULL \
         AND t.expires_at > ?)",
    )
    .arg(actor.org_id())
    .arg(now_ms());
    if !sees_all_grants(actor) {
        sql.and(" AND g.user_id = ?", actor.user_id.as_str());
    }
    sql.push(" ORDER BY g.created_at DESC, g.id DESC LIMIT 500");
    let rows = sql.fetch_all(db).await?;
    rows.iter()
        .map(|r| {
            let uris: Vec<String> = serde_json::from_str(&row::get_str(r, "redirect_uris")?)
                .map_err(|e| Error::Internal(format!("stored redirect URIs: {e}")))?;
            let mut redirect_hosts: Vec<String> = uris.iter().map(|u| redirect_host(u)).collect();
            redirect_hosts.dedup();
            Ok(GrantSummary {
                id: row::get_str(r, "id")?,
                client_name: row::get_str(r, "client_name")?,
                redirect_hosts,
                user_id: row::get_str(r, "user_id")?,
                user_name: row::get_str(r, "user_name")?,
                user_email: row::get_str(r, "user_email")?,
                created_at: row::get_i64(r, "created_at")?,
                last_used_at: row::get_opt_i64(r, "last_used_at")?,
            })
        })
        .collect()
}

/// Revokes a grant from the web UI: `actor`'s own, or as an admin or owner any of their
/// organization's. Any other is not found, so as not to tell it exists.
pub async fn revoke_grant_as(db: &Db, actor: &Actor, grant_id: &str) -> Result<()> {
    let mut tx = db.begin().await?;
    let found = Sql::new(
        "SELECT user_id FROM oauth_grants WHERE id = ? AND org_id = ? AND revoked_at IS NULL",
    )
    .arg(grant_id)
    .arg(actor.org_id())
    .fetch_optional(&mut tx)
    .await?;
    let Some(r) = found else {
        return Err(Error::NotFound("connected assistant"));
    };
    if row::get_str(&r, "user_id")? != actor.user_id && !sees_all_grants(actor) {
        return Err(Error::NotFound("connected assistant"));
    }
    revoke_grant(&mut tx, grant_id, now_ms()).await?;
    tx.commit().await?;
    Ok(())
}

fn invalid_token(message: &str) -> Error {
    Error::unauthenticated("unauthenticated", message)
}

/// The actor an access token stands for: its user with their current role in their
/// organization. `org_header` is the optional `X-Organization-Id` the caller sent.
pub async fn authenticate(db: &Db, token: &str, org_header: Option<&str>) -> Result<Actor> {
    if !token.starts_with(ACCESS_TOKEN_PREFIX) {
        return Err(invalid_token("the access token is not valid"));
    }
    let r = Sql::new(
        "SELECT t.expires_at, g.id AS grant_id, g.org_id, g.user_id, g.revoked_at, \
         g.last_used_at, c.name AS client_name FROM oauth_tokens t \
         JOIN oauth_grants g ON g.id = t.grant_id JOIN oauth_clients c ON c.id = g.client_id \
         WHERE t.token_hash = ? AND t.kind = 'access'",
    )
    .arg(hash_key(token))
    .fetch_optional(db)
    .await?
    .ok_or_else(|| invalid_token("the access token is not valid (or was revoked)"))?;
    let now = now_ms();
    if row::get_opt_i64(&r, "revoked_at")?.is_some() {
        return Err(invalid_token("the access token was revoked"));
    }
    let expires_at = row::get_i64(&r, "expires_at")?;
    if expires_at <= now {
        return Err(invalid_token("the access token has expired; refresh it"));
    }
    let grant_id = row::get_str(&r, "grant_id")?;
    let on_behalf = grant_ref(
        &grant_id,
        &row::get_str(&r, "client_name")?,
        Some(expires_at),
    );
    let org_id = row::get_str(&r, "org_id")?;
    let actor = match acting_user(db, &org_id, &row::get_str(&r, "user_id")?, on_behalf).await {
        Ok(actor) => actor,
        Err(Error::Forbidden { .. } | Error::NotFound(_)) => {
            return Err(invalid_token(
                "the user of this access token can no longer log in",
            ));
        }
        Err(other) => return Err(other),
    };
    if let Some(wanted) = org_header
        && wanted != org_id
    {
        return Err(Error::Forbidden {
            code: "organization_mismatch",
            message: "X-Organization-Id does not match the access token's organization".into(),
        });
    }
    if row::get_opt_i64(&r, "last_used_at")?.is_none_or(|t| now - t >= LAST_USED_RESOLUTION_MS) {
        let touched = db
            .write_count(
                &Sql::new("UPDATE oauth_grants SET last_used_at = ? WHERE id = ?")
                    .arg(now)
                    .arg(grant_id.as_str()),
            )
            .await;
        if let Err(error) = touched {
            tracing::warn!(%grant_id, %error, "Could not record the OAuth grant's last use.");
        }
    }
    Ok(actor)
}

/// Forgets expired codes and tokens, grants with no token left, clients registered and never
/// used within an hour, and clients without grants unused for 90 days.
pub async fn purge_expired(db: &Db) -> Result<u64> {
    let now = now_ms();
    let statements = [
        Sql::new("DELETE FROM oauth_codes WHERE expires_at <= ?").arg(now),
        Sql::new("DELETE FROM oauth_tokens WHERE expires_at <= ?").arg(now),
        Sql::new(
            "DELETE FROM oauth_grants WHERE NOT EXISTS \
             (SELECT 1 FROM oauth_tokens t WHERE t.grant_id = oauth_grants.id)",
        ),
        Sql::new(
            "DELETE FROM oauth_clients WHERE last_used_at IS NULL AND created_at <= ? \
             AND NOT EXISTS (SELECT 1 FROM oauth_codes c WHERE c.client_id = oauth_clients.id)",
        )
        .arg(now - UNUSED_CLIENT_TTL_MS),
        Sql::new(
            "DELETE FROM oauth_clients WHERE last_used_at <= ? \
             AND NOT EXISTS (SELECT 1 FROM oauth_grants g WHERE g.client_id = oauth_clients.id) \
             AND NOT EXISTS (SELECT 1 FROM oauth_codes c WHERE c.client_id = oauth_clients.id)",
        )
        .arg(now - IDLE_CLIENT_TTL_MS),
    ];
    let mut removed = 0;
    for statement in &statements {
        removed += db.write_count(statement).await?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redirect_uris_are_https_or_loopback_http() {
        for good in [
            "https://claude.ai/api/mcp/auth_callback",
            "https://chatgpt.com/connector_platform_oauth_redirect",
            "http://127.0.0.1:33418/callback",
            "http://localhost:6274/oauth/callback",
            "http://[::1]:8080/cb",
        ] {
            assert!(check_redirect_uri(good).is_ok(), "{good}");
        }
        for bad in [
            "http://example.com/callback",
            "http://10.0.0.1/cb",
            "javascript:alert(1)",
            "cursor://anysphere.cursor-mcp/oauth/callback",
            "https://example.com/cb#fragment",
            "https://user:pw@example.com/cb",
            "/relative",
        ] {
            assert!(check_redirect_uri(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn only_a_loopback_redirect_may_change_its_port() {
        assert!(redirect_matches(
            "http://127.0.0.1:1234/cb",
            "http://127.0.0.1:5678/cb"
        ));
        assert!(!redirect_matches(
            "http://127.0.0.1:1234/cb",
            "http://127.0.0.1:5678/other"
        ));
        assert!(!redirect_matches(
            "https://claude.ai/cb",
            "https://claude.ai:8443/cb"
        ));
        assert!(!redirect_matches(
            "https://claude.ai/cb",
            "https://claude.ai/cb/"
        ));
    }

    #[test]
    fn the_resource_is_the_mcp_endpoint_or_the_server() {
        let ours = "https://timix.example.com/mcp";
        for given in [
            "https://timix.example.com/mcp",
            "https://timix.example.com/mcp/",
            "https://TIMIX.example.com/mcp",
            "https://timix.example.com",
            "https://timix.example.com/",
        ] {
            assert!(resource_matches(given, ours), "{given}");
        }
        for given in [
            "https://other.example.com/mcp",
            "https://timix.example.com/api",
            "http://timix.example.com/mcp",
        ] {
            assert!(!resource_matches(given, ours), "{given}");
        }
    }

    #[test]
    fn the_s256_challenge_is_rfc_7636s() {
        // RFC 7636 appendix B.
        assert_eq!(
            challenge_of("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        assert!(is_pkce_text("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"));
        assert!(!is_pkce_text("short"));
        assert!(!is_pkce_text(&"a+".repeat(30)));
    }

    #[test]
    fn the_callback_keeps_the_redirect_uris_own_query() {
        assert_eq!(
            callback_url(
                "https://app.example/cb?x=1",
                &[("code", "a b"), ("state", "s")]
            ),
            "https://app.example/cb?x=1&code=a+b&state=s"
        );
        assert_eq!(
            redirect_host("http://127.0.0.1:33418/cb"),
            "127.0.0.1:33418"
        );
        assert_eq!(redirect_host("https://claude.ai/api/cb"), "claude.ai");
    }
}
