//! `/keys`: the viewer's organization's API keys; a new key is shown once, on the answer to
//! the form that made it (never in a URL). A new key starts at the lowest role, with what each
//! role allows beside the choice, so a key gets what its job needs rather than its maker's role.

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use timix_engine::access::auth::Role;

use super::checked_id;
use crate::ui::session::{Fields, redirect_with_notice};
use crate::ui::{Shared, UiResult, Viewer, back_or_fail};

/// Each role, lowest first, with what it allows (API.md's permission matrix, in short).
pub(super) const ROLE_MEANINGS: [(Role, &str); 5] = [
    (Role::Viewer, "reads everything, changes nothing"),
    (
        Role::Member,
        "reads; logs its own time and timers; works on tasks and subtasks",
    ),
    (
        Role::Manager,
        "a member's rights, and customers, projects, approvals, invoices and reports",
    ),
    (
        Role::Admin,
        "a manager's rights, and users, API keys, webhooks, connections and flows",
    ),
    (
        Role::Owner,
        "everything, including the organization's settings and plan",
    ),
];

/// The roles `mine` may give (none above it), each with its meaning; `chosen` is selected.
pub(super) fn role_choices(mine: Role, chosen: &str) -> Vec<Value> {
    ROLE_MEANINGS
        .iter()
        .filter(|(role, _)| *role <= mine)
        .map(|(role, meaning)| {
            json!({"value": role.as_str(), "meaning": meaning, "selected": role.as_str() == chosen})
        })
        .collect()
}

async fn render(ui: &Shared, viewer: &Viewer, status: StatusCode, extra: Value) -> UiResult {
    let keys = ui.items(viewer, "/api-keys?limit=200").await?;
    // The lowest role unless a refused form chose another.
    let chosen = extra["form"]["role"].as_str().unwrap_or("viewer");
    let roles = role_choices(viewer.actor.role, chosen);
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
