//! `/webhooks`: webhook subscriptions, their deliveries, tests and secrets.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use timix_connectors::webhooks::DeliveryJob;
use timix_engine::automation::webhooks::{
    self, Delivery, Webhook, WebhookInput, WebhookWithSecret,
};
use timix_engine::store::list::ListParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{DeliveryList, ListQueryDoc, WebhookList};
use crate::response::{Created, ListResponse};
use crate::routes::BASE;

#[utoipa::path(get, path = "/webhooks", operation_id = "listWebhooks", tag = "webhooks", params(ListQueryDoc, crate::openapi::TombstonesQueryDoc),
    responses((status = 200, body = WebhookList), (status = "4XX", body = ErrorEnvelope)))]
pub async fn list(
    State(state): State<AppState>,
    Auth(actor): Auth,
    QueryPairs(query): QueryPairs,
) -> ApiResult<ListResponse<Webhook>> {
    let params = ListParams::parse(&webhooks::LIST, &query)?;
    Ok(ListResponse(
        webhooks::list_webhooks(&state.db, &actor, &params).await?,
    ))
}

/// Registers a webhook. The answer carries its signing secret, shown this once.
#[utoipa::path(post, path = "/webhooks", operation_id = "createWebhook", tag = "webhooks", request_body = WebhookInput,
    responses((status = 201, body = WebhookWithSecret), (status = "4XX", body = ErrorEnvelope)))]
pub async fn create(
    State(state): State<AppState>,
    Auth(actor): Auth,
    JsonBody(input): JsonBody<WebhookInput>,
) -> ApiResult<Created<WebhookWithSecret>> {
    let body = webhooks::create_webhook(&state.db, state.saving(), &actor, input).await?;
    Ok(Created {
        location: format!("{BASE}/webhooks/{}", body.webhook.id),
        body,
    })
}

#[utoipa::path(get, path = "/webhooks/{id}", operation_id = "getWebhook", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = Webhook), (status = 404, body = ErrorEnvelope)))]
pub async fn get(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(webhooks::get_webhook(&state.db, &actor, &id).await?))
}

/// Changes the URL, events, description, or enables it again (which clears a failure streak).
#[utoipa::path(patch, path = "/webhooks/{id}", operation_id = "updateWebhook", tag = "webhooks", params(("id" = String, Path)), request_body = WebhookInput,
    responses((status = 200, body = Webhook), (status = "4XX", body = ErrorEnvelope)))]
pub async fn update(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<WebhookInput>,
) -> ApiResult<Json<Webhook>> {
    Ok(Json(
        webhooks::update_webhook(&state.db, state.targets, &actor, &id, input).await?,
    ))
}

#[utoipa::path(delete, path = "/webhooks/{id}", operation_id = "deleteWebhook", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorEnvelope)))]
pub async fn delete(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    webhooks::delete_webhook(&state.db, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a `webhook.test` event to this webhook only.
#[utoipa::path(post, path = "/webhooks/{id}/test", operation_id = "testWebhook", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 202, description = "Queued for delivery"), (status = 404, body = ErrorEnvelope)))]
pub async fn test(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let body = webhooks::send_test(&state.db, &actor, &id).await?;
    Ok((StatusCode::ACCEPTED, Json(body)).into_response())
}

/// A new secret. For 24 hours deliveries carry signatures with both the new and the old one.
#[utoipa::path(post, path = "/webhooks/{id}/rotate-secret", operation_id = "rotateWebhookSecret", tag = "webhooks", params(("id" = String, Path)),
    responses((status = 200, body = WebhookWithSecret), (status = 404, body = ErrorEnvelope)))]
pub async fn rotate(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<WebhookWithSecret>> {
    Ok(Json(
        webhooks::rotate_secret(&state.db, &state.vault, &actor, &id).await?,
    ))
}

/// Deliveries of this webhook, newest first, each with its attempts.
#[utoipa::path(get, path = "/webhooks/{id}/deliveries", operation_id = "listWebhookDeliveries", tag = "webhooks",
    params(("id" = String, Path), ListQueryDoc, ("status" = Option<String>, Query), ("eventType" = Option<String>, Query)),
    responses((status = 200, body = DeliveryList), (status = "4XX", body = ErrorEnvelope)))]
pub async fn deliveries(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<ListResponse<Delivery>> {
    let params = ListParams::parse(&webhooks::DELIVERY_LIST, &query)?;
    Ok(ListResponse(
        webhooks::list_deliveries(&state.db, &actor, &id, &params).await?,
    ))
}

/// Attempts a delivery again now (also a dead one).
#[utoipa::path(post, path = "/webhooks/{id}/deliveries/{deliveryId}/retry", operation_id = "retryWebhookDelivery", tag = "webhooks",
    params(("id" = String, Path), ("deliveryId" = String, Path)),
    responses((status = 202, body = Delivery), (status = 404, body = ErrorEnvelope)))]
pub async fn retry(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((id, delivery_id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let delivery = webhooks::retry_delivery(&state.db, &actor, &id, &delivery_id).await?;
    if let Some(queues) = &state.queues {
        queues
            .push(
                DeliveryJob {
                    delivery_id: delivery.id.clone(),
                },
                None,
            )
            .await?;
    }
    Ok((StatusCode::ACCEPTED, Json(delivery)).into_response())
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get, update, delete))
        .routes(routes!(test))
        .routes(routes!(rotate))
        .routes(routes!(deliveries))
        .routes(routes!(retry))
}
