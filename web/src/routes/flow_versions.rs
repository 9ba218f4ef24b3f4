//! `/flows/{id}/versions`, `/draft`, `/samples`, `/explain`, `/backfill`: a flow's lifecycle
//! (API.md section 9).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use timix_engine::automation::flows::drafts::{self, Draft};
use timix_engine::automation::flows::explain::{self, Backfill, BackfillInput, Explanation};
use timix_engine::automation::flows::samples::{self, Listening, Sample};
use timix_engine::automation::flows::versions::{self, FlowVersion};
use timix_engine::automation::flows::{self, Flow, FlowInput};
use timix_engine::error::Error;
use timix_engine::store::list::Page;
use timix_triggers::executor::dispatch_runs;
use timix_triggers::poller::SourceReader;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::AppState;
use crate::error::{ApiResult, ErrorEnvelope};
use crate::extract::{Auth, JsonBody, QueryPairs};
use crate::openapi::{FlowVersionList, SampleList};
use crate::response::ListResponse;

/// The versions of a flow's definition, newest first (at most 200).
#[utoipa::path(get, path = "/flows/{id}/versions", operation_id = "listFlowVersions", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = FlowVersionList), (status = "4XX", body = ErrorEnvelope)))]
pub async fn list_versions(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<ListResponse<FlowVersion>> {
    let versions = versions::list(&state.db, &actor, &id).await?;
    Ok(ListResponse(Page::whole(versions)))
}

#[utoipa::path(get, path = "/flows/{id}/versions/{version}", operation_id = "getFlowVersion", tag = "flows",
    params(("id" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = FlowVersion), (status = "4XX", body = ErrorEnvelope)))]
pub async fn get_version(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<FlowVersion>> {
    let version = version_number(&version)?;
    Ok(Json(versions::get(&state.db, &actor, &id, version).await?))
}

/// A version number from a path: anything else names no version.
fn version_number(text: &str) -> Result<i64, Error> {
    text.parse().map_err(|_| Error::NotFound("flow version"))
}

/// Makes an earlier version's definition live again, as a new version.
#[utoipa::path(post, path = "/flows/{id}/versions/{version}/restore", operation_id = "restoreFlowVersion", tag = "flows",
    params(("id" = String, Path), ("version" = i64, Path)),
    responses((status = 200, body = Flow), (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn restore_version(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path((id, version)): Path<(String, String)>,
) -> ApiResult<Json<Flow>> {
    let manifests = state.manifests_for(actor.org_id()).await?;
    let version = version_number(&version)?;
    let input = versions::restoring(&state.db, &actor, &id, version).await?;
    Ok(Json(
        flows::update(&state.db, state.saving_with(&manifests), &actor, &id, input).await?,
    ))
}

/// Saves a draft: checked like a flow (422 with the path of each problem), not live. The
/// answer carries warnings, such as a variable the trigger's sample does not have.
#[utoipa::path(put, path = "/flows/{id}/draft", operation_id = "saveFlowDraft", tag = "flows", params(("id" = String, Path)),
    request_body = FlowInput,
    responses((status = 200, body = Draft), (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn save_draft(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<FlowInput>,
) -> ApiResult<Json<Draft>> {
    let manifests = state.manifests_for(actor.org_id()).await?;
    Ok(Json(
        drafts::save(&state.db, state.saving_with(&manifests), &actor, &id, input).await?,
    ))
}

#[utoipa::path(get, path = "/flows/{id}/draft", operation_id = "getFlowDraft", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = Draft), (status = "4XX", body = ErrorEnvelope)))]
pub async fn get_draft(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Draft>> {
    Ok(Json(
        drafts::get(&state.db, &state.manifests, &actor, &id).await?,
    ))
}

#[utoipa::path(delete, path = "/flows/{id}/draft", operation_id = "discardFlowDraft", tag = "flows", params(("id" = String, Path)),
    responses((status = 204), (status = "4XX", body = ErrorEnvelope)))]
pub async fn discard_draft(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    drafts::discard(&state.db, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The draft becomes the flow's next version.
#[utoipa::path(post, path = "/flows/{id}/draft/publish", operation_id = "publishFlowDraft", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = Flow), (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn publish_draft(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Flow>> {
    let manifests = state.manifests_for(actor.org_id()).await?;
    Ok(Json(
        drafts::publish(&state.db, state.saving_with(&manifests), &actor, &id).await?,
    ))
}

/// For five minutes, inbound calls of this webhook flow are kept as samples and start no run.
#[utoipa::path(post, path = "/flows/{id}/samples/listen", operation_id = "listenForFlowSamples", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = Listening), (status = 409, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn listen(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<Listening>> {
    Ok(Json(samples::listen(&state.db, &actor, &id).await?))
}

/// Reads a poll flow's source once, as a poll would from its beginning but remembering nothing,
/// and keeps the newest records (at most three) as samples. A source that fails answers 409
/// `source_failed` with its error.
#[utoipa::path(post, path = "/flows/{id}/samples/fetch", operation_id = "fetchFlowSamples", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = SampleList), (status = 409, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn fetch_samples(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<ListResponse<Sample>> {
    let flow = samples::poll_flow(&state.db, &actor, &id).await?;
    let this_instance = crate::client::ApiClient::new(state.clone());
    let reader = SourceReader {
        db: &state.db,
        vault: &state.vault,
        manifests: &state.manifests,
        connectors: &state.connectors,
        performer: &state.performer,
        this_instance: &this_instance,
        pages: 1,
    };
    let records = reader
        .sample(&flow)
        .await
        .map_err(|message| Error::Conflict {
            code: "source_failed",
            message: format!("the source could not be read: {message}"),
        })?;
    let kept = samples::keep_fetched(&state.db, &actor, &id, &records).await?;
    Ok(ListResponse(Page::whole(kept)))
}

/// Stops listening: inbound calls start runs again (when the flow is enabled).
#[utoipa::path(delete, path = "/flows/{id}/samples/listen", operation_id = "stopListeningForFlowSamples", tag = "flows", params(("id" = String, Path)),
    responses((status = 204), (status = "4XX", body = ErrorEnvelope)))]
pub async fn stop_listening(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    samples::stop_listening(&state.db, &actor, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The last samples of the flow's trigger, newest first.
#[utoipa::path(get, path = "/flows/{id}/samples", operation_id = "listFlowSamples", tag = "flows", params(("id" = String, Path)),
    responses((status = 200, body = SampleList), (status = "4XX", body = ErrorEnvelope)))]
pub async fn list_samples(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
) -> ApiResult<ListResponse<Sample>> {
    let samples = samples::list(&state.db, &actor, &id).await?;
    Ok(ListResponse(Page::whole(samples)))
}

/// Whether the flow started a run for an event, and if not, why.
#[utoipa::path(get, path = "/flows/{id}/explain", operation_id = "explainFlowEvent", tag = "flows",
    params(("id" = String, Path), ("eventId" = String, Query)),
    responses((status = 200, body = Explanation), (status = "4XX", body = ErrorEnvelope)))]
pub async fn explain_event(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    QueryPairs(query): QueryPairs,
) -> ApiResult<Json<Explanation>> {
    let mut event_id = None;
    for (name, value) in query {
        match name.as_str() {
            "eventId" => event_id = Some(value),
            other => {
                return Err(Error::InvalidParameter(format!("unknown parameter {other}")).into());
            }
        }
    }
    let event_id = event_id.ok_or_else(|| Error::InvalidParameter("eventId is required".into()))?;
    let limit = state.fanout_limit;
    Ok(Json(
        explain::explain(&state.db, &actor, &id, &event_id, limit).await?,
    ))
}

/// Runs an event flow over a stretch of the event log (by `seq` or instant), never twice for
/// one event; a dry run only answers what would start and why the rest would not.
#[utoipa::path(post, path = "/flows/{id}/backfill", operation_id = "backfillFlow", tag = "flows", params(("id" = String, Path)),
    request_body = BackfillInput,
    responses((status = 200, body = Backfill), (status = 422, body = ErrorEnvelope), (status = "4XX", body = ErrorEnvelope)))]
pub async fn backfill(
    State(state): State<AppState>,
    Auth(actor): Auth,
    Path(id): Path<String>,
    JsonBody(input): JsonBody<BackfillInput>,
) -> ApiResult<Response> {
    let (answer, started) =
        explain::backfill(&state.db, &state.admission, &actor, &id, &input).await?;
    let (db, lane, queues) = (
        state.db.clone(),
        state.run_lane.clone(),
        state.queues.clone(),
    );
    tokio::spawn(async move {
        for chunk in started.chunks(100) {
            dispatch_runs(&db, lane.as_ref(), queues.as_ref(), chunk.to_vec()).await;
        }
    });
    Ok((StatusCode::OK, Json(answer)).into_response())
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_versions))
        .routes(routes!(get_version))
        .routes(routes!(restore_version))
        .routes(routes!(save_draft, get_draft, discard_draft))
        .routes(routes!(publish_draft))
        .routes(routes!(listen, stop_listening))
        .routes(routes!(list_samples))
        .routes(routes!(fetch_samples))
        .routes(routes!(explain_event))
        .routes(routes!(backfill))
}
