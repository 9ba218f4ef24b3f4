//! The CRUD shape the work hierarchy, time entries, holiday profiles and invoices share:
//! `crud_resource!` writes a resource's six handlers and its router over the engine's
//! shared operations.

/// Writes the six handlers and the router of one resource over the engine's shared operations.
/// `more_params` documents list parameters that the resource reads itself (`Resource::list_params`).
macro_rules! crud_resource {
    (
        $module:ident, resource = $resource:ident, item = $item:ident, input = $input:ident, list = $list:ident,
        names = ($singular:tt, $plural:tt), tag = $tag:tt, collection = $collection:tt, one = $one:tt,
        by_external_id = $by_ext:tt,
        filters = [$($filter:tt),*]
        $(, more_params = [$($more_param:tt),*])?
    ) => {
        pub mod $module {
            use super::*;

            #[utoipa::path(get, path = $collection, operation_id = concat!("list", $plural), tag = $tag,
                params(ListQueryDoc, crate::openapi::SearchQueryDoc, crate::openapi::TombstonesQueryDoc, $(($filter = Option<String>, Query, description = "Exact match")),* $($(, $more_param)*)?),
                responses((status = 200, body = $list, description = "One page, newest first unless sorted",
                           headers(("X-Total-Count" = i64), ("X-Sync-Watermark" = String))),
                          (status = "4XX", body = ErrorEnvelope)))]
            pub async fn list(
                State(state): State<AppState>,
                Auth(actor): Auth,
                QueryPairs(query): QueryPairs,
            ) -> ApiResult<ListResponse<$item>> {
                let params: ListParams = $resource::list_params(&actor, &query)?;
                Ok(ListResponse(resource::list::<$resource>(&state.db, &actor, &params).await?))
            }

            #[utoipa::path(post, path = $collection, operation_id = concat!("create", $singular), tag = $tag, request_body = $input,
                responses((status = 201, body = $item, headers(("Location" = String))),
                          (status = 422, body = ErrorEnvelope, description = "Invalid fields, or a missing or archived parent"),
                          (status = "4XX", body = ErrorEnvelope)))]
            pub async fn create(
                State(state): State<AppState>,
                Auth(actor): Auth,
                JsonBody(input): JsonBody<$input>,
            ) -> ApiResult<Created<$item>> {
                let body = resource::create::<$resource>(&state.db, &actor, input).await?;
                Ok(Created { location: format!("{BASE}{}/{}", $collection, body.id), body })
            }

            #[utoipa::path(get, path = $one, operation_id = concat!("get", $singular), tag = $tag, params(("id" = String, Path)),
                responses((status = 200, body = $item), (status = 404, body = ErrorEnvelope)))]
            pub async fn get(
                State(state): State<AppState>,
                Auth(actor): Auth,
                Path(id): Path<String>,
            ) -> ApiResult<Json<$item>> {
                Ok(Json(resource::get::<$resource>(&state.db, &actor, &id).await?))
            }

            #[utoipa::path(patch, path = $one, operation_id = concat!("update", $singular), tag = $tag, params(("id" = String, Path)), request_body = $input,
                responses((status = 200, body = $item), (status = 404, body = ErrorEnvelope),
                          (status = 422, body = ErrorEnvelope)))]
            pub async fn update(
                State(state): State<AppState>,
                Auth(actor): Auth,
                Path(id): Path<String>,
                JsonBody(input): JsonBody<$input>,
            ) -> ApiResult<Json<$item>> {
                Ok(Json(resource::update::<$resource>(&state.db, &actor, &id, input).await?))
            }

            #[utoipa::path(delete, path = $one, operation_id = concat!("delete", $singular), tag = $tag, params(("id" = String, Path)),
                responses((status = 204, description = "Deleted"), (status = 404, body = ErrorEnvelope),
                          (status = 409, body = ErrorEnvelope, description = "Still has children")))]
            pub async fn delete(
                State(state): State<AppState>,
                Auth(actor): Auth,
                Path(id): Path<String>,
            ) -> ApiResult<StatusCode> {
                resource::delete::<$resource>(&state.db, &actor, &id).await?;
                Ok(StatusCode::NO_CONTENT)
            }

            /// Find-or-create by your own id: updates the record with this `externalId` (200) or
            /// creates it (201).
            #[utoipa::path(put, path = $by_ext, operation_id = concat!("upsert", $singular, "ByExternalId"), tag = $tag, params(("externalId" = String, Path)),
                request_body = $input,
                responses((status = 200, body = $item, description = "Updated"),
                          (status = 201, body = $item, description = "Created"),
                          (status = 422, body = ErrorEnvelope)))]
            pub async fn upsert(
                State(state): State<AppState>,
                Auth(actor): Auth,
                Path(external_id): Path<String>,
                JsonBody(input): JsonBody<$input>,
            ) -> ApiResult<Response> {
                let (body, created) =
                    resource::upsert::<$resource>(&state.db, &actor, &external_id, input).await?;
                Ok(upserted(format!("{BASE}{}/{}", $collection, body.id), body, created))
            }

            pub fn router() -> OpenApiRouter<AppState> {
                OpenApiRouter::new()
                    .routes(routes!(list, create))
                    .routes(routes!(get, update, delete))
                    .routes(routes!(upsert))
            }
        }
    };
}
