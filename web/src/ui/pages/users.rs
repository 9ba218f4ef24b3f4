//! `/users`: the organization's people, and invitations: an admin adds a user and gets a link
//! (shown once) with which that user sets a password.

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use timix_engine::access::web_sessions;

use super::checked_id;
use crate::ui::session::Fields;
use crate::ui::{ApiFailure, Shared, UiResult, Viewer};

async fn render(ui: &Shared, viewer: &Viewer, status: StatusCode, extra: Value) -> UiResult {
    let users = ui.items(viewer, "/org-users?limit=200").await?;
    let mut context = json!({
        "nav": "users",
        "users": users,
        "roles": ["viewer", "member", "manager", "admin"],
    });
    super::merge(&mut context, extra);
    Ok(ui.page_with_status(status, viewer, "users", context))
}

pub async fn list(State(ui): State<Shared>, viewer: Viewer) -> UiResult {
    render(&ui, &viewer, StatusCode::OK, json!({})).await
}

fn invite_link(ui: &Shared, token: &str) -> String {
    format!("{}/invite/{token}", ui.app.public_url.trim_end_matches('/'))
}

pub async fn invite(
    State(ui): State<Shared>,
    viewer: Viewer,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let body = json!({
        "email": fields.get("email"),
        "name": fields.get("name"),
        "role": fields.get("role"),
    });
    let created = match ui.post(&viewer, "/org-users", body).await {
        Ok(created) => created,
        Err(failure) => {
            let extra = json!({
                "error": failure.summary(),
                "fieldErrors": failure.fields,
                "form": {"email": fields.get("email"), "name": fields.get("name"), "role": fields.get("role")},
            });
            return render(&ui, &viewer, StatusCode::UNPROCESSABLE_ENTITY, extra).await;
        }
    };
    let user_id = created["id"].as_str().unwrap_or_default();
    let invitation = web_sessions::invite(&ui.app.db, &viewer.actor, user_id)
        .await
        .map_err(ApiFailure::from_engine)?;
    let extra = json!({"invited": {"email": created["email"], "link": invite_link(&ui, &invitation.token)}});
    render(&ui, &viewer, StatusCode::CREATED, extra).await
}

/// A new link for a user who lost theirs (the old one stops working).
pub async fn invite_again(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "user")?;
    let user = ui.get(&viewer, &format!("/org-users/{id}")).await?;
    let invitation = web_sessions::invite(&ui.app.db, &viewer.actor, id)
        .await
        .map_err(ApiFailure::from_engine)?;
    let extra =
        json!({"invited": {"email": user["email"], "link": invite_link(&ui, &invitation.token)}});
    render(&ui, &viewer, StatusCode::OK, extra).await
}
