//! `/manifests`: the catalogue of actions and triggers that flows (and the Zapier, Make and
//! Workato apps) are made of.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderValue;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::Value;
use timix_engine::Error;
use timix_engine::access::auth::Permission;
use timix_engine::automation::connectors::ConnectorTrigger;
use timix_engine::automation::manifest::ActionKind;
use timix_engine::automation::manifest::{ActionManifest, Manifests, TriggerManifest};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::Auth;

/// A manifest as the API shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestView {
    #[schema(example = "create_customer")]
    pub key: String,
    /// `action` or `trigger`.
    #[schema(example = "action")]
    pub kind: &'static str,
    /// Actions: `create`, `update`, `search` or `request`.
    pub action_kind: Option<ActionKind>,
    #[schema(example = "Customer")]
    pub noun: String,
    #[schema(example = "Create Customer")]
    pub label: String,
    pub description: String,
    /// Actions: the JSON Schema (2020-12) a step's input must match.
    pub input_schema: Option<Value>,
    /// Triggers: the event that fires it.
    #[schema(example = "customer.created")]
    pub event: Option<String>,
    /// What a record looks like.
    pub sample: Value,
    /// The connector it belongs to (`slack`); none for timix's own.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
}

/// Every manifest.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ManifestList {
    pub items: Vec<ManifestView>,
    pub total_count: usize,
}

fn action_view(a: &ActionManifest) -> ManifestView {
    ManifestView {
        key: a.key.clone(),
        kind: "action",
        action_kind: Some(a.kind.clone()),
        noun: a.noun.clone(),
        label: a.label.clone(),
        description: a.description.clone(),
        input_schema: Some(a.input.clone()),
        event: None,
        sample: a.sample.clone(),
        connector: a.key.split_once('.').map(|(c, _)| c.to_owned()),
    }
}

fn trigger_view(t: &TriggerManifest) -> ManifestView {
    ManifestView {
        key: t.key.clone(),
        kind: "trigger",
        action_kind: None,
        noun: t.noun.clone(),
        label: t.label.clone(),
        description: t.description.clone(),
        input_schema: None,
        event: Some(t.event.clone()),
        sample: t.sample.clone(),
        connector: None,
    }
}

/// A connector's trigger (`slack.new_message`): its input is the trigger's own fields.
fn connector_trigger_view(connector: &str, t: &ConnectorTrigger) -> ManifestView {
    ManifestView {
        key: format!("{connector}.{}", t.key),
        kind: "trigger",
        action_kind: None,
        noun: t.noun.clone(),
        label: t.label.clone(),
        description: t.description.clone(),
        input_schema: t.input.clone(),
        event: None,
        sample: t.sample.clone(),
        connector: Some(connector.to_owned()),
    }
}

/// Every manifest an organization's flows may name: timix's, then its connectors'.
fn views(manifests: &Manifests) -> Vec<ManifestView> {
    let connector_triggers = manifests.connectors.values().flat_map(|c| {
        let key = c.connector.key.clone();
        c.connector
            .triggers
            .iter()
            .map(move |t| connector_trigger_view(&key, t))
            .collect::<Vec<_>>()
    });
    manifests
        .actions
        .values()
        .map(action_view)
        .chain(manifests.triggers.values().map(trigger_view))
        .chain(connector_triggers)
        .collect()
}

/// Every action and trigger manifest the organization's flows may name: timix's (actions
/// first), then its connectors' triggers (`slack.new_message`), each by key.
#[utoipa::path(get, path = "/manifests", operation_id = "listManifests", tag = "manifests",
    responses((status = 200, body = ManifestList, headers(("X-Total-Count" = i64))),
              (status = "4XX", body = ErrorEnvelope)))]
pub async fn list(State(state): State<AppState>, Auth(actor): Auth) -> ApiResult<Response> {
    actor.require(Permission::ReadAll)?;
    let items = views(&state.manifests_for(actor.org_id()).await?);
    let total = items.len();
    let mut response = Json(ManifestList {
        items,
        total_count: total,
    })
    .into_response();
    response
        .headers_mut()
        .insert("x-total-count", HeaderValue::from(total));
    Ok(response)
}

#[utoipa::path(get, path = "/manifests/{key}", operation_id = "getManifest", tag = "manifests", params(("key" = String, Path)),
    responses((status = 200, body = ManifestView), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(key): Path<String>,
) -> ApiResult<Json<ManifestView>> {
    actor.require(Permission::ReadAll)?;
    views(&state.manifests_for(actor.org_id()).await?)
        .into_iter()
        .find(|m| m.key == key)
        .map(Json)
        .ok_or_else(|| Error::NotFound("manifest").into())
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get))
}
