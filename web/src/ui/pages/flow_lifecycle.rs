//! A flow's lifecycle from the flow page: drafts (save, review, publish, discard), tests (a dry
//! run that performs nothing, or for real), the version history with a diff and restore, samples
//! captured by listening to a webhook (or read from a poll source), "why didn't it fire?" for an
//! event, and the health the flows list shows. Everything goes through the API's lifecycle
//! endpoints (API.md section 9).

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use futures_util::future::join_all;
use serde::Deserialize;
use serde_json::{Value, json};

use super::{checked_id, flows, query};
use crate::ui::session::{Fields, redirect_with_alert, redirect_with_notice};
use crate::ui::{Shared, UiError, UiResult, Viewer, back_or_fail};

/// Live runs the flows list reads per flow for its failure rate.
pub const HEALTH_RUNS: usize = 20;
/// Lines of a definition past which versions are shown whole instead of compared.
const MAX_DIFF_LINES: usize = 2_000;
/// Events of the flow's type the explain page offers, newest first.
const EVENTS_OFFERED: usize = 25;

/// The lifecycle's pages, beside the builder's `/flows/{id}` routes.
pub fn routes() -> Router<Shared> {
    Router::new()
        .route("/flows/new/webhook", post(create_disabled))
        .route("/flows/{id}/draft", get(show_draft).post(save_draft))
        .route("/flows/{id}/draft/{op}", post(draft_act))
        .route("/flows/{id}/tests", post(test))
        .route("/flows/{id}/versions", get(versions))
        .route("/flows/{id}/versions/{n}", get(version))
        .route("/flows/{id}/versions/{n}/restore", post(restore))
        .route("/flows/{id}/samples", get(samples))
        .route("/flows/{id}/samples/{op}", post(samples_act))
        .route("/flows/{id}/explain", get(explain))
}

async fn flow_of(ui: &Shared, viewer: &Viewer, id: &str) -> UiResult<Value> {
    Ok(ui.get(viewer, &format!("/flows/{id}")).await?)
}

/// The builder's form, saved as the flow's draft: checked like the flow, not live.
async fn save_draft(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "flow")?;
    let flow = flow_of(&ui, &viewer, id).await?;
    let body = match flows::form_to_flow(&ui, &viewer, &flow, &fields).await {
        Ok(body) => body,
        Err(errors) => return Ok(refused_draft(&ui, &viewer, &flow, &errors_list(&errors))),
    };
    match ui.put(&viewer, &format!("/flows/{id}/draft"), body).await {
        Ok(draft) => {
            let notice = match draft["warnings"].as_array().map_or(0, Vec::len) {
                0 => "Draft saved. It is not live: test it, then publish it.".to_owned(),
                n => format!("Draft saved with {n} warning(s) to look at before publishing."),
            };
            Ok(redirect_with_notice(&format!("/flows/{id}/draft"), &notice))
        }
        Err(failure) if matches!(failure.status, 400 | 409 | 422) => {
            let problems: Vec<Value> = failure
                .problems
                .iter()
                .map(|(path, message)| json!({"path": path, "message": message}))
                .collect();
            Ok(refused_draft(&ui, &viewer, &flow, &problems))
        }
        Err(failure) => Err(failure.into()),
    }
}

fn errors_list(errors: &BTreeMap<String, String>) -> Vec<Value> {
    errors
        .iter()
        .map(|(path, message)| json!({"path": path, "message": message}))
        .collect()
}

/// The draft page, saying what was refused and that nothing was saved.
fn refused_draft(ui: &Shared, viewer: &Viewer, flow: &Value, problems: &[Value]) -> Response {
    let context = json!({"nav": "flows", "flow": flow, "problems": problems});
    ui.page_with_status(
        StatusCode::UNPROCESSABLE_ENTITY,
        viewer,
        "flow_draft",
        context,
    )
}

/// The saved draft: its warnings, what it changes against the live version, and its buttons.
async fn show_draft(State(ui): State<Shared>, viewer: Viewer, Path(id): Path<String>) -> UiResult {
    let id = checked_id(&id, "flow")?;
    let flow = flow_of(&ui, &viewer, id).await?;
    let draft = match ui.get(&viewer, &format!("/flows/{id}/draft")).await {
        Ok(draft) => Some(draft),
        Err(failure) if failure.status == 404 => None,
        Err(failure) => return Err(failure.into()),
    };
    let diff = draft
        .as_ref()
        .map(|d| line_diff(&definition(&flow), &definition(d)));
    let context = json!({
        "nav": "flows",
        "flow": flow,
        "draft": draft,
        "diff": diff,
        "changes": diff.as_deref().map(count_changes),
    });
    Ok(ui.page(&viewer, "flow_draft", context))
}

/// The one publish of the UI (the flow page's draft banner and the draft page): the draft
/// becomes the live version. Whether the flow runs is the Enable/Disable toggle's alone, so
/// publishing a change never switches a flow someone turned off back on (docs/ui.md).
fn published_notice(flow: &Value) -> String {
    let version = flow["version"].as_i64().unwrap_or_default();
    if flow["isEnabled"] == true {
        format!("Published: version {version} is live.")
    } else {
        format!(
            "Published: version {version} is the flow. It is disabled: Enable starts its trigger."
        )
    }
}

/// `publish` (the draft becomes the next version) or `discard`.
async fn draft_act(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path((id, op)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "flow")?;
    let back = format!("/flows/{id}/draft");
    match op.as_str() {
        "publish" => match ui
            .post(&viewer, &format!("/flows/{id}/draft/publish"), json!({}))
            .await
        {
            Ok(flow) => Ok(redirect_with_notice(
                &format!("/flows/{id}"),
                &published_notice(&flow),
            )),
            Err(failure) => back_or_fail(&back, failure),
        },
        "discard" => match ui.delete(&viewer, &format!("/flows/{id}/draft")).await {
            Ok(_) => Ok(redirect_with_notice(
                &format!("/flows/{id}"),
                "Draft discarded; the live version is unchanged.",
            )),
            Err(failure) => back_or_fail(&back, failure),
        },
        _ => Err(UiError::not_found("action")),
    }
}

/// A test run: `mode=dry` renders and checks everything and performs nothing, `mode=real`
/// performs the actions; `draft=1` tests the saved draft instead of the live version.
async fn test(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "flow")?;
    let dry_run = fields.get("mode") != Some("real");
    let draft = fields.get("draft") == Some("1");
    let body = json!({"dryRun": dry_run, "draft": draft});
    let run = match ui.post(&viewer, &format!("/flows/{id}/test"), body).await {
        Ok(run) => run,
        Err(failure) => return back_or_fail(&format!("/flows/{id}"), failure),
    };
    let run_id = checked_id(run["id"].as_str().unwrap_or_default(), "run")?;
    let what = if draft {
        "the draft"
    } else {
        "the live version"
    };
    let notice = if dry_run {
        format!(
            "Dry run of {what} finished: nothing was performed. Each step shows the input it would have sent."
        )
    } else {
        format!("Test run of {what} started: its actions are performed for real.")
    };
    Ok(redirect_with_notice(&format!("/runs/{run_id}"), &notice))
}

/// The parts of a flow a version holds, as the text compared between versions.
fn definition(flow: &Value) -> String {
    let shown = json!({
        "trigger": flow["trigger"],
        "steps": flow["steps"],
        "settings": flow["settings"],
    });
    serde_json::to_string_pretty(&shown).unwrap_or_default()
}

/// Lines of `new` against `old`: each `{kind: same|added|removed, text}` (longest common
/// subsequence of lines).
pub fn line_diff(old: &str, new: &str) -> Vec<Value> {
    let a: Vec<&str> = old.lines().collect();
    let b: Vec<&str> = new.lines().collect();
    let line = |kind: &str, text: &str| json!({"kind": kind, "text": text});
    if a.len() > MAX_DIFF_LINES || b.len() > MAX_DIFF_LINES {
        return a
            .iter()
            .map(|t| line("removed", t))
            .chain(b.iter().map(|t| line("added", t)))
            .collect();
    }
    let mut common = vec![vec![0u32; b.len() + 1]; a.len() + 1];
    for i in (0..a.len()).rev() {
        for j in (0..b.len()).rev() {
            common[i][j] = if a[i] == b[j] {
                common[i + 1][j + 1] + 1
            } else {
                common[i + 1][j].max(common[i][j + 1])
            };
        }
    }
    let (mut i, mut j, mut out) = (0, 0, Vec::new());
    while i < a.len() || j < b.len() {
        if i < a.len() && j < b.len() && a[i] == b[j] {
            out.push(line("same", a[i]));
            (i, j) = (i + 1, j + 1);
        } else if j == b.len() || (i < a.len() && common[i + 1][j] >= common[i][j + 1]) {
            out.push(line("removed", a[i]));
            i += 1;
        } else {
            out.push(line("added", b[j]));
            j += 1;
        }
    }
    out
}

fn count_changes(diff: &[Value]) -> Value {
    let count = |kind: &str| diff.iter().filter(|l| l["kind"] == kind).count();
    json!({"added": count("added"), "removed": count("removed")})
}

async fn versions(State(ui): State<Shared>, viewer: Viewer, Path(id): Path<String>) -> UiResult {
    let id = checked_id(&id, "flow")?;
    let flow = flow_of(&ui, &viewer, id).await?;
    let versions = ui.items(&viewer, &format!("/flows/{id}/versions")).await?;
    let context = json!({"nav": "flows", "flow": flow, "versions": versions});
    Ok(ui.page(&viewer, "flow_versions", context))
}

#[derive(Debug, Default, Deserialize)]
pub struct Against {
    against: Option<String>,
}

/// One version, compared with another (`?against=`; by default the live version, or for the
/// live one the version before it).
async fn version(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path((id, n)): Path<(String, String)>,
    Query(against): Query<Against>,
) -> UiResult {
    let id = checked_id(&id, "flow")?;
    let n: i64 = n.parse().map_err(|_| UiError::not_found("version"))?;
    let flow = flow_of(&ui, &viewer, id).await?;
    let shown = ui
        .get(&viewer, &format!("/flows/{id}/versions/{n}"))
        .await?;
    let live = flow["version"].as_i64().unwrap_or(n);
    let other: i64 = match against.against.as_deref() {
        Some(text) => text.parse().map_err(|_| UiError::not_found("version"))?,
        None if n == live => n - 1,
        None => live,
    };
    let compared = if other >= 1 && other != n {
        ui.get(&viewer, &format!("/flows/{id}/versions/{other}"))
            .await
            .ok()
    } else {
        None
    };
    let diff = compared
        .as_ref()
        .map(|c| line_diff(&definition(c), &definition(&shown)));
    let choices: Vec<Value> = (1..=live)
        .rev()
        .filter(|v| *v != n)
        .map(|v| json!({"value": v, "selected": v == other}))
        .collect();
    let context = json!({
        "nav": "flows",
        "flow": flow,
        "version": shown,
        "against": compared.as_ref().map(|c| &c["version"]),
        "choices": choices,
        "diff": diff,
        "changes": diff.as_deref().map(count_changes),
        "definition": definition(&shown),
    });
    Ok(ui.page(&viewer, "flow_version", context))
}

async fn restore(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path((id, n)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "flow")?;
    let n: i64 = n.parse().map_err(|_| UiError::not_found("version"))?;
    match ui
        .post(
            &viewer,
            &format!("/flows/{id}/versions/{n}/restore"),
            json!({}),
        )
        .await
    {
        Ok(flow) => Ok(redirect_with_notice(
            &format!("/flows/{id}/versions"),
            &format!(
                "Version {n} restored as version {}, which is live now.",
                flow["version"].as_i64().unwrap_or_default()
            ),
        )),
        Err(failure) => back_or_fail(&format!("/flows/{id}/versions/{n}"), failure),
    }
}

async fn samples(State(ui): State<Shared>, viewer: Viewer, Path(id): Path<String>) -> UiResult {
    let id = checked_id(&id, "flow")?;
    let flow = flow_of(&ui, &viewer, id).await?;
    let samples = ui.items(&viewer, &format!("/flows/{id}/samples")).await?;
    let kind = flow["trigger"]["type"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let context = json!({
        "nav": "flows",
        "flow": flow,
        "samples": samples,
        "publicUrl": ui.app.public_url.trim_end_matches('/'),
        "isWebhook": kind == "webhook",
        "isPoll": kind == "poll",
    });
    Ok(ui.page(&viewer, "flow_samples", context))
}

/// `listen` (the next inbound calls, for five minutes, become samples instead of runs),
/// `stop` (calls start runs again) and `fetch` (a poll source read once).
async fn samples_act(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path((id, op)): Path<(String, String)>,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let id = checked_id(&id, "flow")?;
    let back = format!("/flows/{id}/samples");
    let path = format!("/flows/{id}/samples");
    let answer = match op.as_str() {
        "listen" => ui.post(&viewer, &format!("{path}/listen"), json!({})).await,
        "stop" => ui.delete(&viewer, &format!("{path}/listen")).await,
        "fetch" => ui.post(&viewer, &format!("{path}/fetch"), json!({})).await,
        _ => return Err(UiError::not_found("action")),
    };
    let answer = match answer {
        Ok(answer) => answer,
        Err(failure) => return back_or_fail(&back, failure),
    };
    let notice = match op.as_str() {
        "listen" => format!(
            "Listening until {}: send a call to the flow's URL and reload this page. Calls until then are kept as samples and start no run.",
            crate::ui::views::local_instant(
                &answer["listeningUntil"],
                &viewer.actor.organization.timezone
            )
        ),
        "stop" => "Stopped listening: calls start runs again (when the flow is enabled).".into(),
        _ => format!(
            "Read the source: {} kept as samples.",
            answer["items"].as_array().map_or(0, Vec::len)
        ),
    };
    Ok(redirect_with_notice(&back, &notice))
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExplainQuery {
    event_id: Option<String>,
    record_id: Option<String>,
}

/// "Why didn't it fire?": the answer for one event in plain words, and the recent events of
/// the flow's type to pick from (or those of one record).
async fn explain(
    State(ui): State<Shared>,
    viewer: Viewer,
    Path(id): Path<String>,
    Query(asked): Query<ExplainQuery>,
) -> UiResult {
    let id = checked_id(&id, "flow")?;
    let flow = flow_of(&ui, &viewer, id).await?;
    let event_id = asked.event_id.as_deref().filter(|e| !e.is_empty());
    let record_id = asked.record_id.as_deref().filter(|e| !e.is_empty());
    let answer = match event_id {
        Some(event_id) => {
            let path = format!(
                "/flows/{id}/explain?{}",
                query(&[("eventId", Some(event_id))])
            );
            match ui.get(&viewer, &path).await {
                Ok(answer) => Some(in_words(answer)),
                Err(failure) if failure.status == 404 => {
                    return Ok(redirect_with_alert(
                        &format!("/flows/{id}/explain"),
                        &format!("There is no event {event_id} in this organization."),
                    ));
                }
                Err(failure) => return Err(failure.into()),
            }
        }
        None => None,
    };
    let events = match flow["trigger"]["event"].as_str() {
        Some(kind) => recent_events(&ui, &viewer, kind, record_id).await?,
        None => Vec::new(),
    };
    let context = json!({
        "nav": "flows",
        "flow": flow,
        "eventId": event_id,
        "recordId": record_id,
        "answer": answer,
        "events": events,
        "isEvent": flow["trigger"]["type"] == "event",
    });
    Ok(ui.page(&viewer, "flow_explain", context))
}

/// The newest events of `kind` (of `record` when given), newest first.
async fn recent_events(
    ui: &Shared,
    viewer: &Viewer,
    kind: &str,
    record: Option<&str>,
) -> UiResult<Vec<Value>> {
    let mut found: Vec<Value> = Vec::new();
    let mut after = "0".to_owned();
    // The log is read oldest first; a few pages reach the recent past of most organizations.
    for _ in 0..5 {
        let q = query(&[
            ("after", Some(&after)),
            ("types", Some(kind)),
            ("limit", Some("1000")),
        ]);
        let page = ui.get(viewer, &format!("/events?{q}")).await?;
        found.extend(
            page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|e| record.is_none_or(|r| e["resourceId"] == r))
                .cloned(),
        );
        match (page["hasMore"].as_bool(), page["nextAfter"].as_i64()) {
            (Some(true), Some(next)) => after = next.to_string(),
            _ => break,
        }
    }
    let newest: Vec<Value> = found
        .into_iter()
        .rev()
        .take(EVENTS_OFFERED)
        .map(|e| {
            let label = e["data"]["name"]
                .as_str()
                .or_else(|| e["data"]["number"].as_str())
                .unwrap_or_default()
                .to_owned();
            json!({"id": e["id"], "type": e["type"], "occurredAt": e["occurredAt"],
                   "resourceId": e["resourceId"], "label": label})
        })
        .collect();
    Ok(newest)
}

/// The API's explanation with its reason said for people.
fn in_words(mut answer: Value) -> Value {
    let words = match answer["reason"].as_str() {
        None if answer["started"] == true => "It fired: this event started a run of the flow.",
        Some("not_enabled") => {
            "It did not fire because the flow was not enabled when this happened (it was disabled, or enabled only later)."
        }
        Some("other_type") => "It did not fire because the flow listens for another kind of event.",
        Some("condition_false") => {
            "It did not fire because the trigger's filters or condition did not match this record. What was compared is listed below."
        }
        Some("own_change") => {
            "It did not fire because a run of this same flow made this change, and a flow never starts itself."
        }
        Some("chain_limit") => {
            "It did not fire because the change came at the end of a long chain of flows starting each other, and the chain is stopped there."
        }
        Some("fanout_limit") => {
            "It did not fire because the chain of flows this change belongs to has started as many runs as it may."
        }
        Some("rate_limited") => {
            "It fired, and the run waits in the queue: the organization's or the flow's runs per minute are used up."
        }
        Some("duplicate") => "This event has started a run of this flow already.",
        Some("pending") => {
            "Nothing stops it, but there is no run yet: the event has not been handled yet, or its run was deleted after the retention period."
        }
        _ => "The flow did not start a run for this event.",
    };
    answer["words"] = json!(words);
    let compared: Vec<Value> = answer["evaluated"]["filters"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|f| {
            json!({"left": format!("{} = {}", text_of(&f["field"]), text_of(&f["actual"])),
                   "op": "should be", "right": text_of(&f["expected"]), "result": f["result"]})
        })
        .chain(
            answer["evaluated"]["condition"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| {
                    json!({"left": text_of(&c["left"]), "op": op_words(c["op"].as_str().unwrap_or_default()),
                       "right": text_of(&c["right"]), "result": c["result"]})
                }),
        )
        .collect();
    answer["compared"] = json!(compared);
    answer
}

/// A condition's operator as words: `startsWith` → `starts with`, `gt` → `is more than`.
fn op_words(op: &str) -> String {
    match op {
        "gt" => "is more than".into(),
        "gte" => "is at least".into(),
        "lt" => "is less than".into(),
        "lte" => "is at most".into(),
        "in" => "is one of".into(),
        "notIn" => "is none of".into(),
        other => other
            .chars()
            .flat_map(|c| {
                let space = c.is_uppercase().then_some(' ');
                space.into_iter().chain(c.to_lowercase())
            })
            .collect(),
    }
}

fn text_of(value: &Value) -> String {
    match value {
        Value::Null => "(nothing)".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The flows list's health of each flow: its last live runs' failure rate (over at most
/// [`HEALTH_RUNS`] finished ones).
pub async fn with_health(ui: &Shared, viewer: &Viewer, flows: Vec<Value>) -> Vec<Value> {
    let reads = flows.iter().map(|f| {
        let q = query(&[
            ("flowId", f["id"].as_str()),
            ("mode", Some("live")),
            ("limit", Some(&HEALTH_RUNS.to_string())),
        ]);
        async move {
            ui.items(viewer, &format!("/runs?{q}"))
                .await
                .unwrap_or_default()
        }
    });
    let runs = join_all(reads).await;
    flows
        .into_iter()
        .zip(runs)
        .map(|(mut flow, runs)| {
            let finished = runs
                .iter()
                .filter(|r| {
                    matches!(
                        r["status"].as_str(),
                        Some("succeeded" | "failed" | "filtered" | "cancelled")
                    )
                })
                .count();
            let failed = runs.iter().filter(|r| r["status"] == "failed").count();
            if finished > 0 {
                flow["health"] = json!({
                    "finished": finished,
                    "failed": failed,
                    "failureRate": (failed * 100 + finished / 2) / finished,
                    "failing": failed > 0,
                });
            }
            flow
        })
        .collect()
}

/// For a new webhook flow, as its sender needs the URL before anything else (Zapier shows it at
/// trigger setup): the flow is created disabled from the builder's form, and its page shows the
/// URL, ready to listen for a sample. Nothing starts it until it is enabled.
async fn create_disabled(
    State(ui): State<Shared>,
    viewer: Viewer,
    Form(fields): Form<Fields>,
) -> UiResult {
    viewer.check(&fields)?;
    let mut body = match flows::form_to_flow(&ui, &viewer, &Value::Null, &fields).await {
        Ok(body) => body,
        Err(errors) => {
            let first = errors.values().next().cloned().unwrap_or_default();
            return Ok(redirect_with_alert("/flows/new", &first));
        }
    };
    body["isEnabled"] = json!(false);
    if body["name"].as_str().is_none_or(str::is_empty) {
        body["name"] = json!("New webhook flow");
    }
    match ui.post(&viewer, "/flows", body).await {
        Ok(flow) => {
            let id = checked_id(flow["id"].as_str().unwrap_or_default(), "flow")?;
            Ok(redirect_with_notice(
                &format!("/flows/{id}/samples"),
                "Flow created, disabled: here is its URL. Listen for a sample, finish the steps, then enable it.",
            ))
        }
        Err(failure) if matches!(failure.status, 400 | 409 | 422) => Ok(redirect_with_alert(
            "/flows/new",
            &format!(
                "{} Pick the first step's action and fill its required fields, then ask for the URL again.",
                failure
                    .problems
                    .first()
                    .map_or(failure.message.as_str(), |p| p.1.as_str())
            ),
        )),
        Err(failure) => Err(failure.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_diff_marks_added_and_removed_lines() {
        let diff = line_diff("a\nb\nc", "a\nx\nc\nd");
        let kinds: Vec<&str> = diff.iter().map(|l| l["kind"].as_str().unwrap()).collect();
        assert_eq!(kinds, ["same", "removed", "added", "same", "added"]);
        assert_eq!(diff[2]["text"], "x");
    }

    #[test]
    fn reasons_are_said_in_plain_words() {
        let answer = in_words(json!({"started": false, "reason": "condition_false",
            "evaluated": {"filters": [{"field": "currency", "expected": "EUR", "actual": "USD", "result": false}]}}));
        assert!(answer["words"].as_str().unwrap().contains("did not match"));
        assert_eq!(answer["compared"][0]["left"], "currency = USD");
        assert_eq!(op_words("startsWith"), "starts with");
        assert_eq!(op_words("gte"), "is at least");
    }
}
