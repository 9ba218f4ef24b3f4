//! The in-process API client: a request run through the API router as an actor, without a
//! socket, a key or the rate limit. Flow steps on this instance (as the flow's owner), the web
//! UI (as the viewer) and MCP tools (as the key's actor) all call the API through it, so they
//! obey exactly the API's validation, roles and events.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use axum::http::{HeaderValue, Method, Request, header};
use serde_json::Value;
use timix_actions::{ApiCall, Reply, ThisInstance};
use timix_engine::access::auth::Actor;
use tower::ServiceExt;
use tower_http::catch_panic::CatchPanicLayer;

use crate::AppState;
use crate::extract::MAX_BODY_BYTES;
use crate::routes::BASE;

/// The API router, authenticated by the actor each call carries.
#[derive(Clone)]
pub struct ApiClient {
    router: Router,
}

impl ApiClient {
    /// A client of the API served with `state` (the finished application state).
    pub fn new(state: AppState) -> Self {
        Self {
            router: crate::api_router()
                .with_state(state)
                .layer(CatchPanicLayer::new()),
        }
    }

    /// One call to the API as `actor`.
    pub async fn request(&self, actor: Actor, call: ApiCall) -> Reply {
        let method = Method::from_bytes(call.method.as_bytes()).unwrap_or(Method::GET);
        let mut request = Request::builder()
            .method(method)
            .uri(format!("{BASE}{}", call.path));
        let body = match call.body {
            Some(value) => {
                request = request.header(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/json"),
                );
                Body::from(value.to_string())
            }
            None => Body::empty(),
        };
        let Ok(mut request) = request.body(body) else {
            return Reply {
                status: 400,
                retry_after: None,
                headers: Vec::new(),
                body: serde_json::json!({"error": {"code": "invalid_parameter", "message": format!("{} is not a valid path", call.path)}}),
            };
        };
        if let Err(error) = crate::request_guard::check_uri(request.uri()) {
            return Reply {
                status: error.status.as_u16(),
                retry_after: None,
                headers: Vec::new(),
                body: serde_json::json!({"error": {"code": error.code, "message": error.message}}),
            };
        }
        request.extensions_mut().insert(actor);
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status().as_u16();
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_secs);
        let headers = response
            .headers()
            .iter()
            .filter_map(|(n, v)| Some((n.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let is_json = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/json"));
        let bytes = to_bytes(response.into_body(), MAX_BODY_BYTES * 16)
            .await
            .unwrap_or_default();
        let body = match serde_json::from_slice(&bytes) {
            Ok(body) => body,
            // A JSON answer that cannot be read is not one to act on as if it had succeeded
            // (a page would show nothing); a PDF or CSV answer has no JSON body.
            Err(error) if is_json => {
                tracing::error!(%error, status, "An in-process answer could not be read.");
                return Reply {
                    status: 500,
                    retry_after: None,
                    headers,
                    body: serde_json::json!({"error": {"code": "internal_error", "message": "the answer could not be read"}}),
                };
            }
            Err(_) => Value::Null,
        };
        Reply {
            status,
            retry_after,
            headers,
            body,
        }
    }
}

impl ThisInstance for ApiClient {
    fn call(
        &self,
        actor: Actor,
        call: ApiCall,
    ) -> Pin<Box<dyn Future<Output = Reply> + Send + '_>> {
        Box::pin(self.request(actor, call))
    }
}
