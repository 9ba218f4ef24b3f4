//! `/`: what needs attention: recent runs, failing flows, schedule and poll flows that stopped
//! firing, connections in error, webhook deliveries that failed.

use axum::extract::State;
use serde_json::{Value, json};
use timix_engine::access::auth::Permission;

use crate::ui::{Shared, UiResult, Viewer};

/// How many of each list the dashboard shows.
const RECENT: usize = 8;

pub async fn show(State(ui): State<Shared>, viewer: Viewer) -> UiResult {
    let mut context = json!({"nav": "dashboard"});
    if viewer.can(Permission::ReadFlows) {
        let runs = ui.items(&viewer, &format!("/runs?limit={RECENT}")).await?;
        let flows = ui.items(&viewer, "/flows?limit=200").await?;
        let names = |id: &Value| {
            flows
                .iter()
                .find(|f| f["id"] == *id)
                .and_then(|f| f["name"].as_str())
                .unwrap_or("(deleted flow)")
                .to_owned()
        };
        let runs: Vec<Value> = runs
            .into_iter()
            .map(|mut r| {
                r["flowName"] = Value::String(names(&r["flowId"]));
                r
            })
            .collect();
        let failing: Vec<&Value> = flows.iter().filter(|f| !f["lastError"].is_null()).collect();
        let stalled: Vec<&Value> = flows.iter().filter(|f| !f["stalled"].is_null()).collect();
        context["stalledFlows"] = json!(stalled);
        let connections = ui.items(&viewer, "/connections?status=error").await?;
        context["runs"] = json!(runs);
        context["failingFlows"] = json!(failing);
        context["brokenConnections"] = json!(connections);
        context["flowCount"] = json!(flows.len());
        context["enabledCount"] = json!(flows.iter().filter(|f| f["isEnabled"] == true).count());
    }
    if viewer.can(Permission::ManageWebhooks) {
        let hooks = ui.items(&viewer, "/webhooks?limit=50").await?;
        let mut failures = Vec::new();
        for hook in &hooks {
            let Some(id) = hook["id"].as_str() else {
                continue;
            };
            for status in ["failed", "dead"] {
                let path = format!("/webhooks/{id}/deliveries?status={status}&limit={RECENT}");
                for mut delivery in ui.items(&viewer, &path).await.unwrap_or_default() {
                    delivery["webhookId"] = hook["id"].clone();
                    delivery["webhookUrl"] = hook["url"].clone();
                    failures.push(delivery);
                }
            }
        }
        failures.sort_by(|a, b| b["updatedAt"].as_str().cmp(&a["updatedAt"].as_str()));
        failures.truncate(RECENT);
        context["disabledWebhooks"] = json!(
            hooks
                .iter()
                .filter(|h| h["isEnabled"] == false)
                .collect::<Vec<_>>()
        );
        context["webhookFailures"] = json!(failures);
    }
    Ok(ui.page(&viewer, "dashboard", context))
}
