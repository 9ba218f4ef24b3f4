//! `/connected-apps`: the assistants connected to timix through MCP's OAuth
//! (`crate::ui::pages::authorize`), one row per consent: the viewer's own, and for an admin or
//! owner everyone's in the organization, each with **Revoke**. Any role may connect an
//! assistant (its tokens act with their user's role), so any role sees this page.

use axum::extract::{Form, Path, State};
use serde_json::{Value, json};
use timix_engine::access::mcp_oauth::{self, GrantSummary};
use timix_engine::store::clock::{format_ms, format_opt};

use super::checked_id;
use crate::ui::session::{Fields, redirect_with_notice};
use crate::ui::{Shared, UiResult, Viewer};

pub const PATH: &str = "/connected-apps";

fn row(grant: &GrantSummary) -> Value {
    json!({
        "id": grant.id,
        "client": grant.client_name,
        "hosts": grant.redirect_hosts.join(", "),
        "user": {"name": grant.user_name, "email": grant.user_email},
        "createdAt": format_ms(grant.created_at),
        "lastUsedAt": format_opt(grant.last_used_at),
    })
}

pub async fn list(State(ui): State<Shared>, viewer: Viewer) -> UiResult {
    let grants = mcp_oauth::grants(&ui.app.db, &viewer.actor).await?;
    let (mine, others): (Vec<_>, Vec<_>) = grants
        .iter()
        .partition(|g| g.user_id == viewer.actor.user_id);
    let context = json!({
        "nav": "connected-apps",
        "mine": mine.into_iter().map(row).collect::<Vec<_>>(),
        "others": others.into_iter().map(row).collect::<Vec<_>>(),
        "seesAll": mcp_oauth::sees_all_grants(&viewer.actor),
    });
    Ok(ui.page(&viewer, "connected_apps", context))
}

pub async fn revoke(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "connected assistant")?;
    mcp_oauth::revoke_grant_as(&ui.app.db, &viewer.actor, id).await?;
    tracing::info!(grant_id = %id, user_id = %viewer.actor.user_id, "An MCP grant was revoked in the web UI.");
    Ok(redirect_with_notice(
        PATH,
        "Disconnected: the assistant's tokens no longer work. It must ask for your consent again.",
    ))
}
