//! `/mcp`: the Model Context Protocol over Streamable HTTP, so an AI assistant (Claude, ChatGPT,
//! Cursor…) can operate timix with an API key, or with an OAuth access token its user consented
//! to in the web UI ([`authorization`]). Every request is authenticated (a 401 envelope
//! otherwise, whose `WWW-Authenticate` names the OAuth metadata); every tool call and resource
//! read is made as the caller's actor through the API router in-process, under its rate limit,
//! so roles, validation, events and error codes are the REST API's. API errors come back as
//! tool results with `isError: true` and the API's `{code, message, details}`, never as
//! protocol failures.
//!
//! The server is stateless (no session to keep), which lets any `--role api` process behind a
//! load balancer answer any request.

mod api;
pub mod authorization;
mod dates;
mod duration;
mod flow_tools;
mod invoice_tools;
mod lookup;
mod tools;

use std::borrow::Cow;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListResourcesResult, ListToolsResult, PaginatedRequestParams, ReadResourceRequestParams,
    ReadResourceResponse, ReadResourceResult, Resource, ResourceContents, ServerCapabilities,
    ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::Value;
use timix_engine::access::auth::Actor;

use crate::AppState;
use crate::api_gate;
use crate::client::ApiClient;
use api::{Api, Failure, failure};
use tools::Catalogue;

/// Where the MCP endpoint is served.
pub const PATH: &str = "/mcp";

/// The resources: a URI, its name and description, and the API path it reads.
const RESOURCES: [(&str, &str, &str, &str); 2] = [
    (
        "timix://organization",
        "organization",
        "The organization: name, plan, currency, time zone, billing state.",
        "/organization",
    ),
    (
        "timix://me",
        "me",
        "The current user, their role and permissions, the API key and its rate limit.",
        "/me",
    ),
];

/// The `/mcp` endpoint, to be merged into the application.
pub fn router(state: AppState, instance: ApiClient) -> Router {
    let server = Timix {
        catalogue: Arc::new(Catalogue::new(&state.manifests)),
        instance,
        state: state.clone(),
    };
    // Hosts are not checked: every request must carry an API key or an access token, which a
    // page rebinding DNS to this server does not have, and the service answers under any name
    // it is deployed at.
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .disable_allowed_hosts();
    let service = StreamableHttpService::new(
        move || Ok(server.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    Router::new()
        .route_service(PATH, service)
        .layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .merge(authorization::router(state))
}

/// Refuses a request without a valid key or access token with the API's 401 (or 403 for an
/// organization mismatch) and hands the actor to the tools through the request's extensions.
async fn authenticate(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    match authorization::authenticate(&state, request.headers()).await {
        Ok(actor) => {
            request.extensions_mut().insert(actor);
            next.run(request).await
        }
        Err(error) => authorization::challenge(&state, request.headers(), error).into_response(),
    }
}

/// The MCP server: the same for every request, which carries its own actor.
#[derive(Clone)]
struct Timix {
    catalogue: Arc<Catalogue>,
    instance: ApiClient,
    state: AppState,
}

impl Timix {
    /// The actor the authentication layer put on this request's HTTP parts.
    fn actor(context: &RequestContext<RoleServer>) -> Result<Actor, Failure> {
        context
            .extensions
            .get::<Parts>()
            .and_then(|parts| parts.extensions.get::<Actor>())
            .cloned()
            .ok_or_else(|| failure("unauthenticated", "send an API key"))
    }

    /// The actor, once the call has been counted against the key's rate limit.
    async fn admitted(&self, context: &RequestContext<RoleServer>) -> Result<Actor, Failure> {
        let actor = Self::actor(context)?;
        api_gate::spend(&self.state, &actor)
            .await
            .map_err(|e| serde_json::json!({"code": e.code, "message": e.message}))?;
        Ok(actor)
    }

    async fn call(
        &self,
        request: CallToolRequestParams,
        context: &RequestContext<RoleServer>,
    ) -> Result<Value, Failure> {
        let actor = self.admitted(context).await?;
        let api = Api {
            instance: &self.instance,
            actor: &actor,
        };
        let arguments = Value::Object(request.arguments.unwrap_or_default());
        self.catalogue
            .call(&self.state, &api, &request.name, arguments)
            .await
    }
}

/// A tool's answer: its JSON as text, and as structured content when it is an object.
fn answer(result: Result<Value, Failure>) -> CallToolResult {
    let (value, is_error) = match result {
        Ok(value) => (value, false),
        Err(error) => (error, true),
    };
    let text = serde_json::to_string_pretty(&value).unwrap_or_default();
    let mut result = if is_error {
        CallToolResult::error(vec![ContentBlock::text(text)])
    } else {
        CallToolResult::success(vec![ContentBlock::text(text)])
    };
    if value.is_object() {
        result.structured_content = Some(value);
    }
    result
}

impl ServerHandler for Timix {
    fn get_info(&self) -> ServerConfig {
        let capabilities = ServerCapabilities::builder()
            .enable_tools()
            .enable_resources()
            .build();
        ServerConfig::new(capabilities)
            .with_server_info(
                Implementation::new("timix", env!("CARGO_PKG_VERSION")).with_title("timix"),
            )
            .with_instructions(
                "Time tracking and billing: customers → projects → tasks → subtasks → time entries. \
                 Use `lookup` to turn names into ids, `log_time` to log time by name, the \
                 `report_*` tools for financial reports, `list_invoices` for invoices (overdue \
                 ones too). Dates may be words such as \"yesterday\" or \"last monday\", read in \
                 the organization's time zone. Errors carry the API's code and message.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(
            self.catalogue.tools.clone(),
        ))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.catalogue.tool(name).cloned()
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        if self.catalogue.tool(&request.name).is_none() {
            return Err(ErrorData::invalid_params(
                format!("there is no tool {}", request.name),
                None,
            ));
        }
        Ok(answer(self.call(request, &context).await).into())
    }

    async fn list_resources(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListResourcesResult, ErrorData> {
        let resources = RESOURCES
            .iter()
            .map(|(uri, name, description, _)| {
                Resource::new(*uri, *name)
                    .with_description(*description)
                    .with_mime_type("application/json")
            })
            .collect();
        Ok(ListResourcesResult::with_all_items(resources))
    }

    async fn read_resource(
        &self,
        request: ReadResourceRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<ReadResourceResponse, ErrorData> {
        let Some((uri, _, _, path)) = RESOURCES.iter().find(|r| r.0 == request.uri) else {
            return Err(ErrorData::resource_not_found(
                format!("there is no resource {}", request.uri),
                None,
            ));
        };
        let read = async {
            let actor = self.admitted(&context).await?;
            Api {
                instance: &self.instance,
                actor: &actor,
            }
            .get(path)
            .await
        };
        // A resource has no error result: a refusal is a protocol error with the API's code.
        let body = read.await.map_err(|error| {
            let message = error["message"].as_str().unwrap_or("refused").to_owned();
            ErrorData::invalid_request(Cow::Owned(message), Some(error))
        })?;
        let text = serde_json::to_string_pretty(&body).unwrap_or_default();
        Ok(ReadResourceResult::new(vec![
            ResourceContents::text(text, *uri).with_mime_type("application/json"),
        ])
        .into())
    }
}
