//! `/users`: the organization's people, and invitations: an admin adds a user and gets a link
//! (shown once) with which that user sets a password. A user's page changes their name and
//! role, and deactivates them (their sessions and keys stop working) or reactivates them.

use axum::extract::{Form, Path, State};
use axum::http::StatusCode;
use serde_json::{Value, json};
use timix_engine::access::web_sessions;

use super::checked_id;
use super::keys::role_choices;
use crate::ui::session::{Fields, redirect_with_notice};
use crate::ui::{ApiFailure, Shared, UiError, UiResult, Viewer, back_or_fail};

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

/// `invite` (a new link for a user who lost theirs; the old one stops working), `deactivate`
/// and `reactivate`.
pub async fn act(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path((id, op)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "user")?;
    let path = format!("/users/{id}");
    let active = match op.as_str() {
        "invite" => return invite_again(&ui, &viewer, id).await,
        "deactivate" => false,
        "reactivate" => true,
        _ => return Err(UiError::not_found("action")),
    };
    let change = json!({"isActive": active});
    match ui
        .call(&viewer, "PATCH", &format!("/org-users/{id}"), Some(change))
        .await
    {
        Ok((user, _)) => {
            let name = user["name"].as_str().unwrap_or("The user");
            let notice = if active {
                format!("{name} is active again and can log in.")
            } else {
                format!(
                    "{name} is deactivated: logged out, cannot log in, and their API keys stop working."
                )
            };
            Ok(redirect_with_notice(&path, &notice))
        }
        Err(failure) => back_or_fail(&path, failure),
    }
}

async fn invite_again(ui: &Shared, viewer: &Viewer, id: &str) -> UiResult {
    let user = ui.get(viewer, &format!("/org-users/{id}")).await?;
    let invitation = web_sessions::invite(&ui.app.db, &viewer.actor, id)
        .await
        .map_err(ApiFailure::from_engine)?;
    let extra =
        json!({"invited": {"email": user["email"], "link": invite_link(ui, &invitation.token)}});
    render(ui, viewer, StatusCode::OK, extra).await
}

async fn render_user(
    ui: &Shared,
    viewer: &Viewer,
    id: &str,
    status: StatusCode,
    extra: Value,
) -> UiResult {
    let user = ui.get(viewer, &format!("/org-users/{id}")).await?;
    let chosen = extra["form"]["role"]
        .as_str()
        .or_else(|| user["role"].as_str())
        .unwrap_or("viewer")
        .to_owned();
    let mut context = json!({
        "nav": "users",
        "user": user,
        "roles": role_choices(viewer.actor.role, &chosen),
        "isSelf": user["id"].as_str() == Some(viewer.actor.user_id.as_str()),
    });
    super::merge(&mut context, extra);
    Ok(ui.page_with_status(status, viewer, "user", context))
}

/// A user's page: their name and role to change, and deactivation.
pub async fn edit_form(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
) -> UiResult {
    let id = checked_id(&id, "user")?;
    render_user(&ui, &viewer, id, StatusCode::OK, json!({})).await
}

pub async fn save(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "user")?;
    let path = format!("/users/{id}");
    let body = json!({"name": fields.get("name"), "role": fields.get("role")});
    match ui
        .call(&viewer, "PATCH", &format!("/org-users/{id}"), Some(body))
        .await
    {
        Ok((user, _)) => Ok(redirect_with_notice(
            &path,
            &format!(
                "Saved: {} is {}.",
                user["name"].as_str().unwrap_or("the user"),
                user["role"].as_str().unwrap_or("unchanged")
            ),
        )),
        // A role above the viewer's own (403) or the last owner (409) is said on the form.
        Err(failure) if matches!(failure.status, 403 | 409 | 422) => {
            let extra = json!({
                "error": failure.summary(),
                "fieldErrors": failure.fields,
                "form": {"name": fields.get("name"), "role": fields.get("role")},
            });
            let status =
                StatusCode::from_u16(failure.status).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
            render_user(&ui, &viewer, id, status, extra).await
        }
        Err(failure) => Err(failure.into()),
    }
}
