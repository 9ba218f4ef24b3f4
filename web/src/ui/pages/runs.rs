//! `/runs`: runs of the organization's flows, filtered by flow and status; a run with each
//! step's input, output, error and attempts; replay.

use axum::extract::{Form, Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use timix_engine::automation::runs::RunStatus;

use super::{checked_id, query};
use crate::ui::session::{Fields, redirect_with_notice};
use crate::ui::{Shared, UiResult, Viewer, back_or_fail};

const STATUSES: [&str; 4] = [
    RunStatus::Queued.as_str(),
    RunStatus::Running.as_str(),
    RunStatus::Succeeded.as_str(),
    RunStatus::Failed.as_str(),
];

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunFilter {
    flow_id: Option<String>,
    status: Option<String>,
    cursor: Option<String>,
}

pub async fn list(
    State(ui): State<Shared>,
    viewer: Viewer,
    Query(filter): Query<RunFilter>,
) -> UiResult {
    let flows = ui.items(&viewer, "/flows?limit=200&sort=name").await?;
    let q = query(&[
        ("flowId", filter.flow_id.as_deref()),
        ("status", filter.status.as_deref()),
        ("cursor", filter.cursor.as_deref()),
        ("limit", Some("50")),
    ]);
    let page = ui.get(&viewer, &format!("/runs?{q}")).await?;
    let name_of = |id: &Value| {
        flows
            .iter()
            .find(|f| f["id"] == *id)
            .and_then(|f| f["name"].as_str())
            .unwrap_or("(deleted flow)")
            .to_owned()
    };
    let runs: Vec<Value> = page["items"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|r| {
            let mut r = r.clone();
            r["flowName"] = json!(name_of(&r["flowId"]));
            r["stepCount"] = json!(r["steps"].as_array().map_or(0, Vec::len));
            r
        })
        .collect();
    let next = page["nextCursor"].as_str().map(|cursor| {
        format!(
            "/runs?{}",
            query(&[
                ("flowId", filter.flow_id.as_deref()),
                ("status", filter.status.as_deref()),
                ("cursor", Some(cursor)),
            ])
        )
    });
    let flow_options: Vec<Value> = flows
        .iter()
        .map(|f| json!({"id": f["id"], "name": f["name"], "selected": filter.flow_id.as_deref() == f["id"].as_str()}))
        .collect();
    let status_options: Vec<Value> = STATUSES
        .iter()
        .map(|s| json!({"value": s, "selected": filter.status.as_deref() == Some(*s)}))
        .collect();
    let context = json!({
        "nav": "runs",
        "runs": runs,
        "total": page["totalCount"],
        "flows": flow_options,
        "statuses": status_options,
        "filtered": filter.flow_id.is_some() || filter.status.is_some(),
        "next": next,
    });
    Ok(ui.page(&viewer, "runs", context))
}

pub async fn show(State(ui): State<Shared>, viewer: Viewer, Path(id): Path<String>) -> UiResult {
    let id = checked_id(&id, "run")?;
    let run = ui.get(&viewer, &format!("/runs/{id}")).await?;
    let flow = match run["flowId"].as_str() {
        Some(flow_id) => ui.get(&viewer, &format!("/flows/{flow_id}")).await.ok(),
        None => None,
    };
    let context = json!({"nav": "runs", "run": run, "flow": flow});
    Ok(ui.page(&viewer, "run", context))
}

pub async fn replay(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "run")?;
    let replayed = match ui
        .post(&viewer, &format!("/runs/{id}/replay"), json!({}))
        .await
    {
        Ok(replayed) => replayed,
        Err(failure) => return back_or_fail(&format!("/runs/{id}"), failure),
    };
    let to = match replayed["id"].as_str() {
        Some(new_id) => format!("/runs/{new_id}"),
        None => format!("/runs/{id}"),
    };
    Ok(redirect_with_notice(
        &to,
        "Replayed: the run goes again from its first failed step.",
    ))
}
