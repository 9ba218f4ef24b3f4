//! The HTTP surface of timix: the core API under `/api/integration/v1`, its OpenAPI document,
//! the interactive reference at `/docs`, and the MCP endpoint at `/mcp`. Handlers extract, call
//! the engine, and map results.

pub mod api_gate;
pub mod client;
pub mod error;
pub mod extract;
pub mod mcp;
pub mod metrics;
pub mod openapi;
pub mod request_guard;
pub mod request_id;
pub mod response;
pub mod routes;
pub mod serve;
pub mod ui;

use std::any::Any;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::DefaultBodyLimit;
use axum::http::{Response, StatusCode, header};
use axum::middleware;
use axum::response::IntoResponse;
use timix_actions::Performer;
use timix_connectors::outbound::Outbound;
use timix_engine::Db;
use timix_engine::access::rate_limits::Limiter;
use timix_engine::access::usage::UsageCounter;
use timix_engine::automation::connections::Vault;
use timix_engine::automation::connectors::Registry;
use timix_engine::automation::manifest::Manifests;
use timix_engine::automation::quotas::Quotas;
use timix_engine::automation::run_admission::RunAdmission;
use timix_engine::automation::saving::Saving;
use timix_engine::automation::targets::Targets;
use timix_engine::store::jobs::Queues;
use timix_triggers::executor::{RunLane, SharedBacklog};
use tower_http::catch_panic::CatchPanicLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::request_guard::RequestLimits;
use crate::routes::BASE;

/// What every handler can reach. Built once, completely, by [`AppState::build`]; every copy
/// (the API's, the UI's, MCP's, the in-process client's) is the same.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub limiter: Arc<Limiter>,
    pub usage: Arc<UsageCounter>,
    pub gate: GateOptions,
    /// The job queue, for handlers that queue work (a delivery retried by hand).
    pub queues: Option<Queues>,
    /// The action and trigger manifests.
    pub manifests: Arc<Manifests>,
    /// The connectors besides timix: the catalogue, the operator's, the organizations' own.
    pub connectors: Arc<Registry>,
    /// Where new runs go for immediate execution when this process also runs workers.
    pub run_lane: Option<RunLane>,
    /// In a process without workers: the runs waiting for the worker processes, which pace
    /// inbound webhook calls.
    pub shared_backlog: Option<Arc<SharedBacklog>>,
    /// Seals and opens connections' credentials.
    pub vault: Vault,
    /// Performs requests through connections (their tests, OAuth2 token exchanges, MCP's
    /// actions); the flow executor shares it, and with it the OAuth2 refresh locks.
    pub performer: Arc<Performer>,
    /// Where this service is reached from outside (`https://timix.example.com`), for the
    /// OAuth2 callback.
    pub public_url: String,
    /// Whether a reverse proxy in front sets `X-Forwarded-For` (the client's address for login
    /// throttling is then its last entry).
    pub trust_proxy: bool,
    /// The most flows, webhooks and REST hooks an organization may have.
    pub quotas: Quotas,
    /// Whether outbound targets may be private addresses (`TIMIX_ALLOW_PRIVATE_TARGETS`).
    pub targets: Targets,
    /// Body size and slow-client limits.
    pub request_limits: RequestLimits,
    /// Request counts and latencies for `/metrics`, and its token.
    pub metrics: Arc<Metrics>,
    /// Paces the runs each organization starts (inbound webhook calls book through it).
    pub admission: Arc<RunAdmission>,
    /// The most runs one chain of flows may start (explain says when it was reached).
    pub fanout_limit: i64,
    /// How long the authorization codes and tokens of MCP's OAuth serve.
    pub mcp_oauth: timix_engine::access::mcp_oauth::Lifetimes,
}

/// What the gate applies beyond authentication. `limits` exists for the benchmark that
/// measures what rate limits, idempotency, ETags and usage counting cost; the service always
/// runs with it on. `quota_override` is the operator's `TIMIX_KEY_RATE_LIMIT`.
#[derive(Debug, Clone, Copy)]
pub struct GateOptions {
    /// Rate limits, `Idempotency-Key`, ETags and usage counting.
    pub limits: bool,
    /// A per-key limit replacing the plan's.
    pub quota_override: Option<u32>,
}

impl Default for GateOptions {
    fn default() -> Self {
        Self {
            limits: true,
            quota_override: None,
        }
    }
}

/// Everything [`AppState`] is built from. [`AppParts::new`] takes what has no default; set
/// the rest before [`AppState::build`].
pub struct AppParts {
    pub db: Db,
    pub queues: Option<Queues>,
    pub manifests: Arc<Manifests>,
    /// None: the catalogue over `manifests`, without an operator's folder.
    pub connectors: Option<Arc<Registry>>,
    pub vault: Vault,
    /// Rate limits and the operator's per-key limit.
    pub gate: GateOptions,
    pub quotas: Quotas,
    pub targets: Targets,
    pub request_limits: RequestLimits,
    /// The token `/metrics` asks for; none: it is not served.
    pub metrics_token: Option<String>,
    pub public_url: String,
    pub trust_proxy: bool,
    /// The operator's run budget per organization (`TIMIX_RUNS_PER_MINUTE`).
    pub runs_per_minute: Option<u32>,
    /// Set when this process executes runs itself (it runs workers).
    pub run_lane: Option<RunLane>,
    /// Set in a process that runs no workers (`--role api`).
    pub shared_backlog: Option<Arc<SharedBacklog>>,
    /// The most runs one chain of flows may start (`TIMIX_FANOUT_LIMIT`).
    pub fanout_limit: i64,
    /// MCP's OAuth codes and tokens (`TIMIX_MCP_TOKEN_LIFETIME` sets the access tokens').
    pub mcp_oauth: timix_engine::access::mcp_oauth::Lifetimes,
}

impl AppParts {
    pub fn new(db: Db, manifests: Arc<Manifests>, vault: Vault) -> Self {
        Self {
            db,
            queues: None,
            manifests,
            connectors: None,
            vault,
            gate: GateOptions::default(),
            quotas: Quotas::default(),
            targets: Targets::default(),
            request_limits: RequestLimits::default(),
            metrics_token: None,
            public_url: "http://127.0.0.1:8080".into(),
            trust_proxy: false,
            runs_per_minute: None,
            run_lane: None,
            shared_backlog: None,
            fanout_limit: timix_triggers::dispatcher::DEFAULT_FANOUT_LIMIT,
            mcp_oauth: Default::default(),
        }
    }
}

/// How long a request an action makes to another service may take.
const ACTION_TIMEOUT: Duration = Duration::from_secs(30);

impl AppState {
    /// The state, complete. The performer is built here from parts that need no state; the
    /// in-process API client (which needs the finished state) is not part of it but built
    /// from it ([`client::ApiClient::new`]) and handed to each performer call that may reach
    /// this instance: that is what breaks the cycle state → performer → client → state.
    pub fn build(parts: AppParts) -> Self {
        let oauth_redirect = oauth_redirect(&parts.public_url);
        let performer = Performer::new(
            Outbound::new(parts.targets.allow_private, ACTION_TIMEOUT),
            parts.db.clone(),
            parts.vault.clone(),
            oauth_redirect,
        );
        Self {
            limiter: Arc::new(Limiter::for_database(&parts.db)),
            usage: Arc::new(UsageCounter::default()),
            admission: Arc::new(RunAdmission::new(parts.db.clone(), parts.runs_per_minute)),
            metrics: Arc::new(Metrics::new(parts.metrics_token.as_deref())),
            performer: Arc::new(performer),
            gate: parts.gate,
            queues: parts.queues,
            connectors: parts
                .connectors
                .unwrap_or_else(|| Arc::new(Registry::new(parts.manifests.clone(), None))),
            manifests: parts.manifests,
            run_lane: parts.run_lane,
            shared_backlog: parts.shared_backlog,
            fanout_limit: parts.fanout_limit,
            mcp_oauth: parts.mcp_oauth,
            vault: parts.vault,
            public_url: parts.public_url,
            trust_proxy: parts.trust_proxy,
            quotas: parts.quotas,
            targets: parts.targets,
            request_limits: parts.request_limits,
            db: parts.db,
        }
    }

    /// What saving a flow, a subscription or a connection obeys.
    pub fn saving(&self) -> Saving<'_> {
        Saving {
            manifests: &self.manifests,
            vault: &self.vault,
            quotas: &self.quotas,
            targets: self.targets,
        }
    }

    /// The manifests an organization's flows and connections may name: timix's and the
    /// actions of every connector it sees.
    pub async fn manifests_for(&self, org_id: &str) -> timix_engine::Result<Manifests> {
        self.connectors.view(&self.db, org_id).await
    }

    /// The manifests checking `input` needs: timix's alone when it names no connector (its
    /// check then reads no connector), else [`AppState::manifests_for`].
    pub async fn manifests_for_flow(
        &self,
        org_id: &str,
        input: &timix_engine::automation::flows::FlowInput,
    ) -> timix_engine::Result<std::borrow::Cow<'_, Manifests>> {
        if input.names_a_connector() {
            Ok(std::borrow::Cow::Owned(self.manifests_for(org_id).await?))
        } else {
            Ok(std::borrow::Cow::Borrowed(&*self.manifests))
        }
    }

    /// [`AppState::saving`] with an organization's manifests.
    pub fn saving_with<'a>(&'a self, manifests: &'a Manifests) -> Saving<'a> {
        Saving {
            manifests,
            ..self.saving()
        }
    }

    /// The OAuth2 redirect URI providers are given.
    pub fn oauth_redirect(&self) -> String {
        oauth_redirect(&self.public_url)
    }
}

fn oauth_redirect(public_url: &str) -> String {
    format!(
        "{}{BASE}{}",
        public_url.trim_end_matches('/'),
        routes::oauth2::CALLBACK_PATH
    )
}

/// The API's routes. Their OpenAPI document is made when first asked for ([`openapi_json`]):
/// kept as a value it would be the largest thing the process holds.
pub(crate) fn api_router() -> Router<AppState> {
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest(BASE, routes::router())
        .split_for_parts()
        .0
}

/// `GET /api/integration/v1/openapi.json`: the document, made once and kept as its text.
async fn openapi_json() -> Response<Body> {
    static DOCUMENT: std::sync::OnceLock<axum::body::Bytes> = std::sync::OnceLock::new();
    let text = DOCUMENT.get_or_init(|| {
        let (_, document) = OpenApiRouter::<AppState>::with_openapi(openapi::ApiDoc::openapi())
            .nest(BASE, routes::router())
            .split_for_parts();
        serde_json::to_vec(&openapi::finish(&document))
            .unwrap_or_default()
            .into()
    });
    ([(header::CONTENT_TYPE, "application/json")], text.clone()).into_response()
}

/// The whole application.
pub fn app(state: AppState) -> Router {
    // One in-process client for the UI and MCP.
    let client = client::ApiClient::new(state.clone());
    let ui_state = state.clone();
    let api = api_router();
    let api = if state.gate.limits {
        api.layer(middleware::from_fn(api_gate::etags))
    } else {
        api
    };
    let api = api.layer(middleware::from_fn_with_state(
        state.clone(),
        api_gate::gate,
    ));
    let mcp = mcp::router(state.clone(), client.clone());
    let (metrics, limits) = (state.metrics.clone(), state.request_limits);
    Router::new()
        .merge(api)
        .route(
            &format!("{BASE}/openapi.json"),
            axum::routing::get(openapi_json),
        )
        .merge(operations())
        .fallback(not_found)
        .with_state(state)
        .merge(mcp)
        .merge(
            SwaggerUi::new("/docs").config(utoipa_swagger_ui::Config::new([format!(
                "{BASE}/openapi.json"
            )])),
        )
        .layer(middleware::map_response(envelope_for_bare_errors))
        // After the envelope layer: the UI's pages answer in HTML, errors included.
        .merge(ui::router(ui_state, client))
        .route_layer(middleware::from_fn(metrics::mark_route))
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .layer(CatchPanicLayer::custom(panic_response))
        .layer(middleware::from_fn_with_state(limits, request_guard::guard))
        .layer(middleware::from_fn_with_state(metrics, metrics::count))
        .layer(middleware::from_fn(request_id::layer))
}

/// An unknown path: a page for a browser outside the API, the envelope for everyone else.
async fn not_found(uri: axum::http::Uri, headers: axum::http::HeaderMap) -> Response<Body> {
    let wants_html = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html && !uri.path().starts_with(BASE) {
        let page = ui::not_found_page();
        return (StatusCode::NOT_FOUND, axum::response::Html(page)).into_response();
    }
    ApiError::not_found_route().into_response()
}

/// What operators and orchestrators call, outside the API's base path: liveness, readiness
/// (the same answers as `/api/integration/v1/health` and `/ready`) and the metrics.
fn operations() -> Router<AppState> {
    use axum::routing::get;
    Router::new()
        .route("/health", get(routes::health::health))
        .route("/ready", get(routes::health::ready))
        .route("/metrics", get(metrics::scrape))
}

/// Responses made by the framework itself (405, a path it cannot parse…) carry no envelope;
/// give them one, keeping their status and headers (`Allow`).
async fn envelope_for_bare_errors(response: Response<Body>) -> Response<Body> {
    let status = response.status();
    // JSON is already an envelope; HTML is a page made for a browser.
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json") || v.starts_with("text/html"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, message) = match status {
        StatusCode::NOT_FOUND => ("not_found", "no such endpoint"),
        StatusCode::METHOD_NOT_ALLOWED => (
            "method_not_allowed",
            "this endpoint does not support the method",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "the body is too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "unsupported_media_type",
            "send JSON with Content-Type: application/json",
        ),
        s if s.is_server_error() => (
            "internal_error",
            "something went wrong on our side; it has been logged",
        ),
        _ => ("invalid_parameter", "the request is malformed"),
    };
    let (parts, _) = response.into_parts();
    let mut fresh = ApiError::new(status, code, message).into_response();
    for (name, value) in parts.headers.iter() {
        if name != header::CONTENT_TYPE && name != header::CONTENT_LENGTH {
            fresh.headers_mut().insert(name.clone(), value.clone());
        }
    }
    fresh
}

fn panic_response(panic: Box<dyn Any + Send + 'static>) -> Response<Body> {
    let detail = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("unknown panic");
    tracing::error!(request_id = %request_id::current(), %detail, "A request handler panicked.");
    ApiError::internal().into_response()
}
