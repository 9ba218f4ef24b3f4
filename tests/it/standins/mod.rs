//! Local stand-ins for the services of the connector catalogue. Each answers in the shapes of
//! its vendor's public API reference (paths, auth headers, pagination, errors, rate limits), so
//! the catalogue's connectors run end to end on a machine that cannot reach the services. What
//! they share: serving a router, an OAuth2 provider (authorization code with PKCE, refresh), and
//! the helpers a test needs to connect, wait for runs and read what was sent.

// Stand-ins answer a refused request with the vendor's error response, returned as an `Err`.
#![allow(clippy::result_large_err)]

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::{Value, json};

use crate::harness::{Client, Server, TestDb};

mod github;
mod google_sheets;
mod hubspot;
mod quickbooks;
mod slack;
mod stripe;

/// Serves `router` on a free local port; its base URL (`http://127.0.0.1:PORT`).
pub async fn serve(router: axum::Router) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://127.0.0.1:{port}")
}

/// A server that may call the stand-ins (loopback) and retries quickly.
pub async fn server() -> Server {
    Server::start_with(
        TestDb::new().await,
        &[
            ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
            ("TIMIX_FLOW_RETRY_BASE", "100ms"),
            ("TIMIX_RUN_LEASE", "3s"),
        ],
    )
    .await
}

/// Reads `read` until `check` holds (at most 20 s); the last value read.
pub async fn eventually<F, Fut>(what: &str, mut read: F, check: impl Fn(&Value) -> bool) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let value = read().await;
        if check(&value) {
            return value;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The runs of a flow once `n` of them finished, oldest first.
pub async fn finished_runs(c: &Client, flow: &str, n: usize) -> Vec<Value> {
    let runs = eventually(
        "finished runs",
        || async {
            json!(
                c.get(&format!("/runs?flowId={flow}"))
                    .await
                    .expect(200)
                    .items()
            )
        },
        |runs| {
            runs.as_array()
                .unwrap()
                .iter()
                .filter(|r| matches!(r["status"].as_str(), Some("succeeded" | "failed")))
                .count()
                >= n
        },
    )
    .await;
    let mut runs = runs.as_array().unwrap().clone();
    runs.reverse();
    runs
}

/// A flow of one action step, started by a webhook; the step's finished run for `payload`.
pub async fn run_action(
    c: &Client,
    action: &str,
    connection: &str,
    input: Value,
    payload: Value,
) -> Value {
    let (flow, url) = c
        .webhook_flow(json!({"type": "webhook"}), &format!("{action} once"))
        .await;
    c.patch(
        &format!("/flows/{flow}"),
        json!({"steps": [{"key": "act", "action": action, "connectionId": connection, "input": input}]}),
    )
    .await
    .expect(200);
    let run = c
        .send(c.request(reqwest::Method::POST, &url).json(&payload))
        .await
        .expect(202);
    c.finished_run(run.body["runId"].as_str().unwrap()).await
}

/// The OAuth2 side of a stand-in: an authorization endpoint that approves at once, and a token
/// endpoint (authorization code with PKCE, refresh token) that issues tokens lasting
/// `expires_in` seconds. A token can be made to expire early, as providers do.
#[derive(Clone, Default)]
pub struct OAuth {
    inner: Arc<OAuthState>,
}

#[derive(Default)]
struct OAuthState {
    /// access token → still valid
    tokens: Mutex<HashMap<String, bool>>,
    codes: Mutex<HashMap<String, String>>,
    refresh_tokens: Mutex<Vec<String>>,
    issued: AtomicUsize,
    refreshes: AtomicUsize,
    expires_in: Mutex<Option<i64>>,
}

impl OAuth {
    pub fn new(expires_in: i64) -> Self {
        let oauth = OAuth::default();
        *oauth.inner.expires_in.lock().unwrap() = Some(expires_in);
        oauth
    }

    /// Routes for the authorization and token endpoints at these paths.
    pub fn routes(&self, authorize: &str, token: &str) -> axum::Router {
        axum::Router::new()
            .route(authorize, axum::routing::get(authorize_endpoint))
            .route(token, axum::routing::post(token_endpoint))
            .with_state(self.clone())
    }

    /// Whether `Authorization: Bearer <token>` names a valid token.
    pub fn valid(&self, headers: &HeaderMap) -> bool {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or_default();
        self.inner
            .tokens
            .lock()
            .unwrap()
            .get(token)
            .copied()
            .unwrap_or(false)
    }

    /// Every token issued so far stops working (the provider's clock says they expired).
    pub fn expire_all(&self) {
        for valid in self.inner.tokens.lock().unwrap().values_mut() {
            *valid = false;
        }
    }

    /// How many times a refresh token was exchanged.
    pub fn refreshes(&self) -> usize {
        self.inner.refreshes.load(Ordering::SeqCst)
    }

    fn issue(&self) -> Value {
        let n = self.inner.issued.fetch_add(1, Ordering::SeqCst) + 1;
        let access = format!("access-{n}-{}", ulid::Ulid::generate());
        let refresh = format!("refresh-{n}-{}", ulid::Ulid::generate());
        self.inner
            .tokens
            .lock()
            .unwrap()
            .insert(access.clone(), true);
        self.inner
            .refresh_tokens
            .lock()
            .unwrap()
            .push(refresh.clone());
        let expires_in = self.inner.expires_in.lock().unwrap().unwrap_or(3600);
        json!({"access_token": access, "refresh_token": refresh, "token_type": "bearer",
               "expires_in": expires_in})
    }
}

async fn authorize_endpoint(
    State(oauth): State<OAuth>,
    Query(params): Query<HashMap<String, String>>,
) -> Response {
    let (Some(redirect), Some(state)) = (params.get("redirect_uri"), params.get("state")) else {
        return (
            StatusCode::BAD_REQUEST,
            "redirect_uri and state are required",
        )
            .into_response();
    };
    if params.get("code_challenge_method").map(String::as_str) != Some("S256") {
        return (StatusCode::BAD_REQUEST, "PKCE S256 is required").into_response();
    }
    let code = format!("code-{}", ulid::Ulid::generate());
    oauth.inner.codes.lock().unwrap().insert(
        code.clone(),
        params.get("code_challenge").cloned().unwrap_or_default(),
    );
    let separator = if redirect.contains('?') { '&' } else { '?' };
    Redirect::to(&format!("{redirect}{separator}code={code}&state={state}")).into_response()
}

async fn token_endpoint(
    State(oauth): State<OAuth>,
    axum::Form(form): axum::Form<HashMap<String, String>>,
) -> Response {
    let refused = |error: &str| {
        (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": error, "error_description": error})),
        )
            .into_response()
    };
    match form.get("grant_type").map(String::as_str) {
        Some("authorization_code") => {
            let code = form.get("code").cloned().unwrap_or_default();
            let Some(challenge) = oauth.inner.codes.lock().unwrap().remove(&code) else {
                return refused("invalid_grant");
            };
            let verifier = form.get("code_verifier").cloned().unwrap_or_default();
            use base64::Engine as _;
            use sha2::Digest as _;
            let computed = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .encode(sha2::Sha256::digest(verifier.as_bytes()));
            if computed != challenge {
                return refused("invalid_grant");
            }
            axum::Json(oauth.issue()).into_response()
        }
        Some("refresh_token") => {
            let token = form.get("refresh_token").cloned().unwrap_or_default();
            if !oauth.inner.refresh_tokens.lock().unwrap().contains(&token) {
                return refused("invalid_grant");
            }
            oauth.inner.refreshes.fetch_add(1, Ordering::SeqCst);
            axum::Json(oauth.issue()).into_response()
        }
        Some("client_credentials") => axum::Json(oauth.issue()).into_response(),
        _ => refused("unsupported_grant_type"),
    }
}

/// Authorizes an OAuth2 connection the way a person's browser would: timix's authorize
/// redirect, the provider's approval, timix's callback.
pub async fn connect(c: &Client, connection: &str) {
    let start = c
        .get(&format!("/connections/{connection}/authorize"))
        .await
        .expect(302);
    let browser = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut url = start.header("location").unwrap().to_owned();
    for _ in 0..5 {
        let response = browser.get(&url).send().await.unwrap();
        match response.headers().get("location") {
            Some(next) if response.status().is_redirection() => {
                url = next.to_str().unwrap().to_owned();
            }
            _ => {
                let status = response.status().as_u16();
                let page = response.text().await.unwrap();
                assert_eq!(status, 200, "the callback: {page}");
                break;
            }
        }
    }
    let connection = c
        .get(&format!("/connections/{connection}"))
        .await
        .expect(200);
    assert_eq!(connection.body["isAuthorized"], true, "{}", connection.body);
}

/// A request as a stand-in's handlers read it: method, path, query, headers and body.
pub struct Incoming {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: axum::body::Bytes,
}

impl<S: Send + Sync> axum::extract::FromRequest<S> for Incoming {
    type Rejection = Response;

    async fn from_request(request: axum::extract::Request, _: &S) -> Result<Self, Response> {
        let (parts, body) = request.into_parts();
        let body = axum::body::to_bytes(body, 1 << 20)
            .await
            .map_err(|e| (StatusCode::BAD_REQUEST, e.to_string()).into_response())?;
        Ok(Incoming {
            method: parts.method.to_string(),
            query: query_of(&parts.uri),
            path: parts.uri.path().to_owned(),
            headers: parts.headers,
            body,
        })
    }
}

/// The query pairs of a request's URI, decoded.
pub fn query_of(uri: &axum::http::Uri) -> HashMap<String, String> {
    reqwest::Url::parse(&format!("http://standin{uri}"))
        .map(|url| url.query_pairs().into_owned().collect())
        .unwrap_or_default()
}

/// A path with its `%XX` escapes decoded (Sheets ranges such as `'Leads'!A1` arrive escaped).
pub fn percent_decoded(path: &str) -> String {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%' && i + 2 < bytes.len())
            .then(|| std::str::from_utf8(&bytes[i + 1..i + 3]).ok())
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A stand-in's record of the requests it answered: method, path with query, headers, body.
#[derive(Clone, Default)]
pub struct Calls(Arc<Mutex<Vec<Call>>>);

#[derive(Clone, Debug)]
pub struct Call {
    pub method: String,
    pub path: String,
    pub query: HashMap<String, String>,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Calls {
    pub fn push(&self, call: Call) {
        self.0.lock().unwrap().push(call);
    }

    pub fn all(&self) -> Vec<Call> {
        self.0.lock().unwrap().clone()
    }

    /// The calls of one method and path (without query).
    pub fn to(&self, method: &str, path: &str) -> Vec<Call> {
        self.all()
            .into_iter()
            .filter(|c| c.method == method && c.path == path)
            .collect()
    }
}
