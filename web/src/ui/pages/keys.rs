//! `/keys`: the viewer's organization's API keys; a new key is shown once, on the answer to
//! the form that made it (never in a URL).

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::checked_id;
use crate::ui::session::{Fields, redirect_with_notice};
use crate::ui::{Shared, UiResult, Viewer, back_or_fail};

const ROLES: [&str; 5] = ["viewer", "member", "manager", "admin", "owner"];

async fn render(ui: &Shared, viewer: &Viewer, status: StatusCode, extra: Value) -> UiResult {
    let keys = ui.items(viewer, "/api-keys?limit=200").await?;
    let mine = viewer.actor.role;
    let roles: Vec<&str> = ROLES
        .into_iter()
        .filter(|r| timix_engine::access::auth::Role::parse(r).is_some_and(|r| r <= mine))
        .collect();
    let mut context = json!({"nav": "keys", "keys": keys, "roles": roles});
    super::merge(&mut context, extra);
    Ok(ui.page_with_status(status, viewer, "keys", context))
}

pub async fn list(State(ui): State<Shared>, viewer: Viewer) -> UiResult {
    render(&ui, &viewer, StatusCode::OK, json!({})).await
}

pub async fn create(
    State(ui): State<Shared>,
    viewer: Viewer,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let mut body = json!({"name": fields.get("name"), "role": fields.get("role")});
    if let Some(date) = fields.get("expiresOn") {
        body["expiresAt"] = json!(format!("{date}T23:59:59Z"));
    }
    match ui.post(&viewer, "/api-keys", body).await {
        Ok(created) => {
            render(
                &ui,
                &viewer,
                StatusCode::CREATED,
                json!({"created": created}),
            )
            .await
        }
        Err(failure) => {
            let extra = json!({
                "error": failure.summary(),
                "fieldErrors": failure.fields,
                "form": {"name": fields.get("name"), "role": fields.get("role"), "expiresOn": fields.get("expiresOn")},
            });
            render(&ui, &viewer, StatusCode::UNPROCESSABLE_ENTITY, extra).await
        }
    }
}

pub async fn revoke(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "API key")?;
    match ui.delete(&viewer, &format!("/api-keys/{id}")).await {
        Ok(_) => Ok(redirect_with_notice(
            "/keys",
            "The key is revoked: it no longer works.",
        )),
        Err(failure) => back_or_fail("/keys", failure),
    }
}
