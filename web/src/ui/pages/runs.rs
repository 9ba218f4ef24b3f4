//! `/runs`: runs of the organization's flows, filtered by flow and status; a run with each
//! step's input, output, error and attempts; replay.

use axum::extract::{Form, Path, Query, State};
use serde::Deserialize;
use serde_json::{Value, json};
use timix_engine::access::auth::Permission;
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
    let finished = matches!(
        run["status"].as_str(),
        Some("succeeded" | "failed" | "filtered" | "cancelled")
    );
    let steps = run["steps"].as_array().cloned().unwrap_or_default();
    let context = json!({
        "nav": "runs",
        "tree": step_tree(&steps),
        "startedBy": started_by(&run),
        "canReplay": finished && viewer.can(Permission::ManageFlows),
        "hasFailedStep": steps.iter().any(|s| s["status"] == "failed"),
        "run": run,
        "flow": flow,
    });
    Ok(ui.page(&viewer, "run", context))
}

/// What started a run, in words.
fn started_by(run: &Value) -> String {
    let source = &run["source"];
    let id = |name: &str| source[name].as_str().unwrap_or_default().to_owned();
    match source["kind"].as_str() {
        Some("event") => format!("A change in timix (event {})", id("eventId")),
        Some("webhook") => "An inbound webhook call".to_owned(),
        Some("poll") => format!("A new item from its poll source ({})", id("itemId")),
        Some("schedule") => "Its schedule".to_owned(),
        Some("test") if run["dryRun"] == true => {
            "A test, as a dry run: nothing was performed".into()
        }
        Some("test") => "A test, performed for real".to_owned(),
        Some(other) => other.to_owned(),
        None => "—".to_owned(),
    }
}

/// The run's step records as the tree of the flow's nodes: a record sits under the nearest
/// earlier one whose path holds its own (`check` holds `check.then.project`, `each` holds
/// `each[3].task`), with the branch between them (`then`, `[3]`) as its label.
pub fn step_tree(steps: &[Value]) -> Vec<Value> {
    fn holds(outer: &str, inner: &str) -> bool {
        inner
            .strip_prefix(outer)
            .is_some_and(|rest| rest.starts_with(['.', '[']))
    }
    // Each node with the indexes of its children, built in order, then nested.
    let mut parents: Vec<Option<usize>> = Vec::with_capacity(steps.len());
    let mut open: Vec<usize> = Vec::new();
    for (i, step) in steps.iter().enumerate() {
        let path = step["path"].as_str().unwrap_or_default();
        while let Some(&top) = open.last() {
            if holds(steps[top]["path"].as_str().unwrap_or_default(), path) {
                break;
            }
            open.pop();
        }
        parents.push(open.last().copied());
        open.push(i);
    }
    fn build(steps: &[Value], parents: &[Option<usize>], parent: Option<usize>) -> Vec<Value> {
        (0..steps.len())
            .filter(|i| parents[*i] == parent)
            .map(|i| {
                let mut node = steps[i].clone();
                node["number"] = json!(i + 1);
                let path = node["path"].as_str().unwrap_or_default().to_owned();
                let key = node["key"].as_str().unwrap_or_default().to_owned();
                if let Some(p) = parent {
                    let outer = steps[p]["path"].as_str().unwrap_or_default();
                    let between = path[outer.len()..]
                        .strip_suffix(&key)
                        .unwrap_or_default()
                        .trim_matches('.');
                    node["branch"] = json!(branch_label(between));
                }
                node["children"] = json!(build(steps, parents, Some(i)));
                node
            })
            .collect()
    }
    build(steps, &parents, None)
}

/// `then` → `then`, `[3]` → `item 4`, `cases.big` → `case big`.
fn branch_label(between: &str) -> String {
    if let Some(index) = between
        .strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|n| n.parse::<u64>().ok())
    {
        return format!("item {}", index + 1);
    }
    between.replace('.', " ")
}

/// Replays a finished run: `from` is `failed`, `start` (the default) or a step's path.
pub async fn replay(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "run")?;
    let from = fields.get("from").unwrap_or("failed");
    let body = json!({"from": from});
    let replayed = match ui.post(&viewer, &format!("/runs/{id}/replay"), body).await {
        Ok(replayed) => replayed,
        Err(failure) => return back_or_fail(&format!("/runs/{id}"), failure),
    };
    let to = match replayed["id"].as_str() {
        Some(new_id) => format!("/runs/{}", checked_id(new_id, "run")?),
        None => format!("/runs/{id}"),
    };
    let notice = match from {
        "failed" => "Replayed: the run goes again from its failed step.".to_owned(),
        "start" => "Replayed: the run goes again from the start.".to_owned(),
        path => format!("Replayed from {path}: the steps before it keep their outputs."),
    };
    Ok(redirect_with_notice(&to, &notice))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_nest_under_the_nodes_that_hold_them() {
        let steps: Vec<Value> = [
            "check",
            "check.then.project",
            "each",
            "each[0].task",
            "each[1].task",
            "notify",
        ]
        .iter()
        .map(|p| json!({"path": p, "key": p.rsplit(['.', ']']).next().unwrap()}))
        .collect();
        let tree = step_tree(&steps);
        assert_eq!(tree.len(), 3);
        assert_eq!(tree[0]["children"][0]["path"], "check.then.project");
        assert_eq!(tree[0]["children"][0]["branch"], "then");
        assert_eq!(tree[1]["children"][1]["branch"], "item 2");
        assert_eq!(tree[2]["children"], json!([]));
    }
}
