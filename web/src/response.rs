//! Typed responses: lists with their headers, creations with `Location`.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use timix_engine::store::list::Page;

/// A page of a list: the envelope, `X-Total-Count`, and `X-Sync-Watermark` when syncing.
pub struct ListResponse<T>(pub Page<T>);

impl<T: Serialize> IntoResponse for ListResponse<T> {
    fn into_response(self) -> Response {
        let total = self.0.total_count;
        let watermark = self.0.sync_watermark.clone();
        let mut response = Json(self.0).into_response();
        let headers = response.headers_mut();
        headers.insert("x-total-count", HeaderValue::from(total));
        if let Some(mark) = watermark.and_then(|m| HeaderValue::from_str(&m).ok()) {
            headers.insert("x-sync-watermark", mark);
        }
        response
    }
}

/// `201 Created` with the new object and its `Location`.
pub struct Created<T> {
    pub location: String,
    pub body: T,
}

impl<T: Serialize> IntoResponse for Created<T> {
    fn into_response(self) -> Response {
        let mut response = (StatusCode::CREATED, Json(self.body)).into_response();
        if let Ok(location) = HeaderValue::from_str(&self.location) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        response
    }
}

/// The answer of an upsert: 201 with `Location` when it created, 200 when it updated.
pub fn upserted<T: Serialize>(location: String, body: T, created: bool) -> Response {
    if created {
        Created { location, body }.into_response()
    } else {
        Json(body).into_response()
    }
}
