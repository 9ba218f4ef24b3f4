//! `/connectors`: the systems flows reach besides timix (the catalogue, the operator's, the
//! organization's own, installed while running), and their lookups for dropdowns.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Value, json};
use timix_actions::Caller;
use timix_actions::lookup::LookupRequest;
use timix_engine::Error;
use timix_engine::access::auth::{Actor, Permission};
use timix_engine::automation::connections;
use timix_engine::automation::connectors::{self, Loaded, Source, store};
use timix_engine::error::FieldError;
use timix_engine::store::json as stored_json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::client::ApiClient;
use crate::error::{ApiError, ApiResult, ErrorEnvelope};
use crate::extract::{Auth, QueryPairs, storable_json};
use crate::routes::BASE;

/// A connector as listed.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorView {
    #[schema(example = "slack")]
    pub key: String,
    #[schema(example = "Slack")]
    pub label: String,
    #[schema(example = "1.0.0")]
    pub version: String,
    pub description: String,
    /// `builtin`, `catalogue`, `instance` or `organization`.
    pub source: Source,
    /// `{type}`: how its connections sign in (`oauth2`, `api_key`…).
    #[schema(value_type = Object)]
    pub auth: Value,
    /// Its actions' keys as steps name them (`slack.post_message`).
    pub actions: Vec<String>,
    /// Its triggers' keys as poll triggers name them (`slack.new_message`).
    pub triggers: Vec<String>,
    /// Its lookups (`GET /connectors/{key}/lookups/{name}`).
    pub lookups: Vec<String>,
    /// The version flows saved now would keep (`cnv_…`).
    pub version_id: Option<String>,
    /// An organization's: 1 when installed, one more with each new version.
    pub revision: Option<i64>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectorList {
    pub items: Vec<ConnectorView>,
    pub total_count: usize,
}

/// A page of a lookup's choices.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LookupChoices {
    /// `{value, label}` each.
    #[schema(value_type = Vec<Object>)]
    pub items: Vec<Value>,
    pub next_cursor: Option<String>,
    pub has_more: bool,
}

fn view(loaded: &Loaded, revision: Option<i64>) -> ConnectorView {
    let c = &loaded.connector;
    ConnectorView {
        key: c.key.clone(),
        label: c.label.clone(),
        version: c.version.clone(),
        description: c.description.clone(),
        source: loaded.source,
        auth: json!({"type": c.auth.connection_type()}),
        actions: c
            .actions
            .iter()
            .map(|a| format!("{}.{}", c.key, a.key))
            .collect(),
        triggers: c
            .triggers
            .iter()
            .map(|t| format!("{}.{}", c.key, t.key))
            .collect(),
        lookups: c.lookups.keys().cloned().collect(),
        version_id: Some(loaded.version_id.clone()),
        revision,
    }
}

/// timix itself, listed first: this API, its actions without a prefix.
fn timix_view(state: &AppState) -> ConnectorView {
    ConnectorView {
        key: connectors::TIMIX.into(),
        label: "timix".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        description: "Customers, projects, tasks, time, timesheets and invoices of this instance or another timix.".into(),
        source: Source::Builtin,
        auth: json!({"type": "self"}),
        actions: state.manifests.actions.keys().cloned().collect(),
        triggers: state.manifests.triggers.keys().cloned().collect(),
        lookups: Vec::new(),
        version_id: None,
        revision: None,
    }
}

/// The organization's revisions of its own connectors, by key.
async fn revisions(state: &AppState, actor: &Actor) -> ApiResult<Vec<(String, i64)>> {
    Ok(store::installed(&state.db, actor.org_id())
        .await?
        .into_iter()
        .map(|i| (i.key, i.revision))
        .collect())
}

/// Every connector the organization can use: timix, the catalogue, the operator's and its own.
#[utoipa::path(get, path = "/connectors", operation_id = "listConnectors", tag = "connectors",
    responses((status = 200, body = ConnectorList, headers(("X-Total-Count" = i64))),
              (status = "4XX", body = ErrorEnvelope)))]
pub async fn list(State(state): State<AppState>, Auth(actor): Auth) -> ApiResult<Response> {
    actor.require(Permission::ReadFlows)?;
    let revisions = revisions(&state, &actor).await?;
    let revision_of = |key: &str| revisions.iter().find(|(k, _)| k == key).map(|(_, r)| *r);
    let mut items = vec![timix_view(&state)];
    for loaded in state.connectors.for_org(&state.db, actor.org_id()).await? {
        let revision = (loaded.source == Source::Organization)
            .then(|| revision_of(&loaded.connector.key))
            .flatten();
        items.push(view(&loaded, revision));
    }
    let total = items.len();
    let mut response = Json(ConnectorList {
        items,
        total_count: total,
    })
    .into_response();
    response
        .headers_mut()
        .insert("x-total-count", HeaderValue::from(total));
    Ok(response)
}

/// The connector the organization sees under `key`.
async fn find(state: &AppState, actor: &Actor, key: &str) -> ApiResult<Arc<Loaded>> {
    state
        .connectors
        .for_org(&state.db, actor.org_id())
        .await?
        .into_iter()
        .find(|c| c.connector.key == key)
        .ok_or_else(|| Error::NotFound("connector").into())
}

/// A connector's whole document, with where it comes from, its version id and revision.
#[utoipa::path(get, path = "/connectors/{key}", operation_id = "getConnector", tag = "connectors", params(("key" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(key): Path<String>,
) -> ApiResult<Json<Value>> {
    actor.require(Permission::ReadFlows)?;
    if key == connectors::TIMIX {
        return Ok(Json(json!(timix_view(&state))));
    }
    let loaded = find(&state, &actor, &key).await?;
    let revision = revisions(&state, &actor)
        .await?
        .into_iter()
        .find(|(k, _)| *k == key && loaded.source == Source::Organization)
        .map(|(_, r)| r);
    let mut document = loaded.document.clone();
    if let Some(object) = document.as_object_mut() {
        object.insert("source".into(), json!(loaded.source));
        object.insert("versionId".into(), json!(loaded.version_id));
        object.insert("revision".into(), json!(revision));
    }
    Ok(Json(document))
}

/// A connector document from a body: YAML (`application/yaml`) or JSON, checked whole against
/// the meta-schema for `actor`'s organization; every problem with its path.
fn document(headers: &HeaderMap, body: &Bytes, org_id: &str) -> ApiResult<Loaded> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    let value = match content_type.as_str() {
        "application/json" => storable_json(body)?,
        "application/yaml" | "application/x-yaml" | "text/yaml" | "text/x-yaml" => {
            let text = std::str::from_utf8(body).map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    "the body is not UTF-8",
                )
            })?;
            let value = connectors::yaml::read(text).map_err(|e| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_yaml",
                    format!("the body is not a YAML document: {e}"),
                )
            })?;
            storable_json(value.to_string().as_bytes())?
        }
        _ => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "send the connector as YAML (Content-Type: application/yaml) or JSON",
            ));
        }
    };
    if stored_json::depth(&value) > stored_json::MAX_DEPTH {
        return Err(Error::validation("", "too_deep", stored_json::too_deep_message()).into());
    }
    connectors::load(value, Source::Organization, Some(org_id)).map_err(|problems| {
        Error::Validation(
            problems
                .into_iter()
                .map(|(path, message)| FieldError::new(&path, "invalid", message))
                .collect(),
        )
        .into()
    })
}

/// Installs a connector for the organization (admin): usable by its flows at once. The body
/// is the connector document as YAML (`Content-Type: application/yaml`) or JSON; a document
/// that does not fit the format is refused with every problem and its path.
#[utoipa::path(post, path = "/connectors", operation_id = "installConnector", tag = "connectors",
    request_body(content = Object, content_type = "application/yaml"),
    responses((status = 201, body = ConnectorView, headers(("Location" = String))),
              (status = 409, body = ErrorEnvelope), (status = 422, body = ErrorEnvelope),
              (status = "4XX", body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    actor.require(Permission::ManageFlows)?;
    let loaded = document(&headers, &body, actor.org_id())?;
    let key = loaded.connector.key.clone();
    let taken = state.connectors.shared_one(&key).is_some();
    let installed = store::install(&state.db, &actor, &loaded, taken).await?;
    let body = view(&loaded, Some(installed.revision));
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, format!("{BASE}/connectors/{key}"))],
        Json(body),
    )
        .into_response())
}

/// A new version of the organization's connector. Flows keep the version they were saved
/// with until they are saved again.
#[utoipa::path(put, path = "/connectors/{key}", operation_id = "replaceConnector", tag = "connectors", params(("key" = String, Path)),
    request_body(content = Object, content_type = "application/yaml"),
    responses((status = 200, body = ConnectorView), (status = 404, body = ErrorEnvelope),
              (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn replace(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Json<ConnectorView>> {
    actor.require(Permission::ManageFlows)?;
    let loaded = document(&headers, &body, actor.org_id())?;
    let installed = store::replace(&state.db, &actor, &key, &loaded).await?;
    Ok(Json(view(&loaded, Some(installed.revision))))
}

/// Removes the organization's connector; 409 `in_use` while a flow uses it.
#[utoipa::path(delete, path = "/connectors/{key}", operation_id = "deleteConnector", tag = "connectors", params(("key" = String, Path)),
    responses((status = 204), (status = 409, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    actor.require(Permission::ManageFlows)?;
    store::remove(&state.db, &actor, &key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One page of a lookup's choices (`{value, label}`), read through a connection to the
/// connector: `q` searches, `cursor` is the previous page's `nextCursor` (400 for another);
/// other parameters are the lookup's own (a spreadsheet's id for its sheets).
#[utoipa::path(get, path = "/connectors/{key}/lookups/{name}", operation_id = "runConnectorLookup", tag = "connectors",
    params(("key" = String, Path), ("name" = String, Path), ("connectionId" = String, Query),
           ("q" = Option<String>, Query), ("cursor" = Option<String>, Query)),
    responses((status = 200, body = LookupChoices), (status = 400, body = ErrorEnvelope), (status = 404, body = ErrorEnvelope),
              (status = 409, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn lookup(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((key, name)): Path<(String, String)>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Json<LookupChoices>> {
    actor.require(Permission::ManageFlows)?;
    let param = |name: &str| {
        query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    };
    let loaded = find(&state, &actor, &key).await?;
    let spec = loaded
        .connector
        .lookups
        .get(&name)
        .ok_or(Error::NotFound("lookup"))?;
    let connection_id = param("connectionId").ok_or_else(|| {
        Error::InvalidParameter("connectionId is required: the connection to read through".into())
    })?;
    let connection = connections::resolve(&state.db, &state.vault, actor.org_id(), &connection_id)
        .await?
        .ok_or(Error::NotFound(connections::NOUN))?;
    let made_for = connections::get(&state.db, &state.vault, &actor, &connection_id)
        .await?
        .connector;
    if made_for.as_deref() != Some(key.as_str()) {
        return Err(Error::InvalidParameter(format!(
            "connectionId must name a connection to {}",
            loaded.connector.label
        ))
        .into());
    }
    let input: serde_json::Map<String, Value> = query
        .iter()
        .filter(|(k, _)| !["connectionId", "q", "cursor"].contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), json!(v)))
        .collect();
    let input = Value::Object(input);
    let q = param("q").unwrap_or_default();
    let cursor = param("cursor");
    if let Some(given) = &cursor
        && timix_actions::paging::Page::from_cursor(given, spec.pagination.as_ref()).is_none()
    {
        return Err(Error::InvalidParameter(
            "cursor must be the nextCursor of an earlier page of this lookup".into(),
        )
        .into());
    }
    let this = ApiClient::new(state.clone());
    let page = state
        .performer
        .lookup(
            Caller {
                this: &this,
                actor: &actor,
            },
            &connection,
            LookupRequest {
                lookup: spec,
                q: &q,
                input: &input,
                cursor: cursor.as_deref(),
            },
        )
        .await
        .map_err(|message| Error::Conflict {
            code: "lookup_failed",
            message: format!("the lookup could not be read: {message}"),
        })?;
    Ok(Json(LookupChoices {
        has_more: page.next_cursor.is_some(),
        next_cursor: page.next_cursor,
        items: page.items,
    }))
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, replace, delete))
        .routes(routes!(lookup))
}
