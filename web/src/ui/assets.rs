//! The UI's stylesheet, script and icon, built into the binary: nothing comes from a CDN.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

const FILES: &[(&str, &str, &str)] = &[
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/assets/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/assets/app.js"),
    ),
    (
        "schedule.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/assets/schedule.js"),
    ),
    (
        "builder.js",
        "text/javascript; charset=utf-8",
        include_str!("../../ui/assets/builder.js"),
    ),
    (
        "builder.css",
        "text/css; charset=utf-8",
        include_str!("../../ui/assets/builder.css"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../../ui/assets/icon.svg"),
    ),
];

pub async fn serve(Path(file): Path<String>) -> Response {
    match FILES.iter().find(|(name, _, _)| *name == file) {
        Some((_, content_type, body)) => (
            [
                (header::CONTENT_TYPE, *content_type),
                (header::CACHE_CONTROL, "public, max-age=3600"),
            ],
            *body,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such asset").into_response(),
    }
}
