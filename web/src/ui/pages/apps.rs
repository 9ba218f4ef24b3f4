//! `/apps`: the Zapier, Make and Workato apps generated from this instance's manifests.

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;
use timix_connectors::apps;

use crate::ui::{Shared, UiError, UiResult, Viewer};

pub async fn list(State(ui): State<Shared>, viewer: Viewer) -> UiResult {
    let context = json!({
        "nav": "apps",
        "triggers": ui.app.manifests.triggers.len(),
        "actions": ui.app.manifests.actions.len(),
        "apiBase": format!("{}{}", ui.app.public_url.trim_end_matches('/'), crate::routes::BASE),
    });
    Ok(ui.page(&viewer, "apps", context))
}

pub async fn download(
    State(ui): State<Shared>,
    _viewer: Viewer,
    Path(file): Path<String>,
) -> UiResult {
    let manifests = &ui.app.manifests;
    let version = env!("CARGO_PKG_VERSION");
    let generated = match file.as_str() {
        "timix-zapier.zip" => apps::zapier::files(manifests, version),
        "timix-make.zip" => apps::make::files(manifests, version),
        "connector.rb" => apps::workato::files(manifests, version),
        _ => return Err(UiError::not_found("download")),
    }
    .map_err(|e| UiError::bad_request(e.to_string()))?;
    let (content_type, body) = match generated.get("connector.rb") {
        Some(source) if generated.len() == 1 => {
            ("text/x-ruby; charset=utf-8", source.clone().into_bytes())
        }
        _ => ("application/zip", apps::zip(&generated)),
    };
    let disposition = format!("attachment; filename=\"{file}\"");
    Ok((
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}
