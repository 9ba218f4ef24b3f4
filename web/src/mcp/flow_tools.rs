//! Tools for flows: list, explain, create and test them, save and publish drafts, and read,
//! replay and cancel their runs, through the API as the key's actor (so only roles that may
//! manage flows can, as over HTTP). `create_flow` and `save_draft` take the definition the API
//! takes and answer the API's 422 with the path of every problem, so an assistant can correct
//! its definition and try again.

use rmcp::model::Tool;
use serde::Deserialize;
use serde_json::{Value, json};
use timix_engine::automation::flows::condition::Condition;
use timix_engine::automation::flows::program::{self, Node, NodeKind, OnError, SwitchMode, Wait};
use timix_engine::error::Problems;

use super::api::{Api, Failure, with_query};
use super::tools::{parse, tool};

/// Which flow tool.
#[derive(Debug, Clone, Copy)]
pub enum FlowTool {
    List,
    Explain,
    Create,
    Test,
    Runs,
    Run,
    SaveDraft,
    PublishDraft,
    Replay,
    Cancel,
}

pub fn tools() -> Vec<(Tool, FlowTool)> {
    let id = |what: &str| json!({"type": "string", "description": format!("The {what}'s id.")});
    vec![
        (
            tool(
                "list_flows",
                "List flows",
                "Lists the organization's flows: id, name, whether enabled, trigger, last error.",
                json!({"type": "object", "additionalProperties": false, "properties": {
                    "name": {"type": "string", "description": "Only flows whose name contains this."}}}),
                true,
            ),
            FlowTool::List,
        ),
        (
            tool(
                "explain_flow",
                "Explain a flow",
                "Describes a flow in plain words, step by step (conditions, branches, loops, error handling), with its settings, last error and how its recent runs went; and its definition. Given an eventId, also says whether that event started a run of the flow and, if not, why (not_enabled, other_type, condition_false with each condition's evaluated values, own_change, chain_limit, fanout_limit, rate_limited).",
                json!({"type": "object", "additionalProperties": false, "required": ["flowId"],
                       "properties": {"flowId": id("flow"),
                                      "eventId": {"type": "string", "description": "An event of the log (evt_…) to explain the flow's answer to."}}}),
                true,
            ),
            FlowTool::Explain,
        ),
        (
            tool(
                "create_flow",
                "Create a flow",
                "Creates a flow from a definition as the API takes it: {name, trigger, steps, settings?, isEnabled?}. Steps are actions ({key, action, input}) or control steps with a type (filter, if, switch, forEach, set, delay, stop); see the flows documentation. A wrong definition is refused with every problem and its path (steps[2].then[0].input.name): fix those and call again. Create it disabled (isEnabled: false) to test it first.",
                json!({"type": "object", "additionalProperties": false, "required": ["name", "trigger", "steps"], "properties": {
                    "name": {"type": "string", "minLength": 1},
                    "trigger": {"type": "object", "description": "{type: event, event, condition?} | {type: webhook} | {type: schedule, schedule} | {type: poll, connectionId, source, schedule}"},
                    "steps": {"type": "array", "items": {"type": "object"}, "minItems": 1},
                    "settings": {"type": "object"},
                    "isEnabled": {"type": "boolean"}}}),
                false,
            ),
            FlowTool::Create,
        ),
        (
            tool(
                "test_flow",
                "Test a flow",
                "Runs a flow once on a trigger record (the trigger's latest sample when none is given), kept as a run with mode test. A dry run (dryRun: true) performs no action: each action's output is its pinned one or its manifest's sample, and the answer is the finished run with what each step would have sent. Otherwise the actions are performed for real and the answer is the queued run, to follow with get_run.",
                json!({"type": "object", "additionalProperties": false, "required": ["flowId"], "properties": {
                    "flowId": id("flow"),
                    "trigger": {"type": "object", "description": "The record or payload the run starts with."},
                    "dryRun": {"type": "boolean", "description": "Perform nothing; show what would be sent."},
                    "draft": {"type": "boolean", "description": "Test the saved draft instead of the live version."},
                    "pinned": {"type": "object", "description": "Outputs by step key, used instead of performing those steps."}}}),
                false,
            ),
            FlowTool::Test,
        ),
        (
            tool(
                "list_runs",
                "List runs",
                "Lists runs, newest first: id, flow, status (queued, running, waiting, succeeded, failed, filtered, cancelled), error, times.",
                json!({"type": "object", "additionalProperties": false, "properties": {
                    "flowId": id("flow"),
                    "status": {"type": "string", "enum": ["queued", "running", "waiting", "succeeded", "failed", "filtered", "cancelled"]}}}),
                true,
            ),
            FlowTool::Runs,
        ),
        (
            tool(
                "get_run",
                "Get a run",
                "One run with each executed step: its path in the flow, status, input, output and error.",
                json!({"type": "object", "additionalProperties": false, "required": ["runId"],
                       "properties": {"runId": id("run")}}),
                true,
            ),
            FlowTool::Run,
        ),
        (
            tool(
                "save_draft",
                "Save a flow draft",
                "Saves a draft of a flow without changing what runs: the fields of a flow to change ({trigger?, steps?, settings?, name?}). A wrong draft is refused with every problem and its path; a saved one answers warnings, such as a variable ({{trigger.nme}}) the trigger's sample does not have. Test it with test_flow (draft: true), then publish_draft.",
                json!({"type": "object", "additionalProperties": false, "required": ["flowId"], "properties": {
                    "flowId": id("flow"),
                    "name": {"type": "string", "minLength": 1},
                    "trigger": {"type": "object"},
                    "steps": {"type": "array", "items": {"type": "object"}, "minItems": 1},
                    "settings": {"type": "object"}}}),
                false,
            ),
            FlowTool::SaveDraft,
        ),
        (
            tool(
                "publish_draft",
                "Publish a flow draft",
                "Makes the flow's saved draft its next version: runs started from now on execute it.",
                json!({"type": "object", "additionalProperties": false, "required": ["flowId"],
                       "properties": {"flowId": id("flow")}}),
                false,
            ),
            FlowTool::PublishDraft,
        ),
        (
            tool(
                "replay_run",
                "Replay a run",
                "Starts a finished run again: from its failed step (the default for a failed run), from the start, or from a step path (check.then.project, each[3].task); on the version it ran (original, the default) or the flow's live one. Answers the queued run, to follow with get_run.",
                json!({"type": "object", "additionalProperties": false, "required": ["runId"], "properties": {
                    "runId": id("run"),
                    "from": {"type": "string", "description": "failed, start, or a step path."},
                    "version": {"type": "string", "enum": ["original", "live"]}}}),
                false,
            ),
            FlowTool::Replay,
        ),
        (
            tool(
                "cancel_run",
                "Cancel a run",
                "Cancels a queued, waiting or running run; a running one stops before its next step.",
                json!({"type": "object", "additionalProperties": false, "required": ["runId"],
                       "properties": {"runId": id("run")}}),
                false,
            ),
            FlowTool::Cancel,
        ),
    ]
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListArgs {
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FlowArgs {
    flow_id: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ExplainArgs {
    flow_id: String,
    event_id: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct TestArgs {
    flow_id: String,
    trigger: Option<Value>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    draft: bool,
    pinned: Option<Value>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReplayArgs {
    run_id: String,
    from: Option<String>,
    version: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RunsArgs {
    flow_id: Option<String>,
    status: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct RunArgs {
    run_id: String,
}

/// Path segments from an assistant go into URLs: ids only.
fn id_segment(id: &str) -> String {
    id.chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect()
}

pub async fn call(api: &Api<'_>, which: FlowTool, arguments: Value) -> Result<Value, Failure> {
    match which {
        FlowTool::List => {
            let args: ListArgs = parse(arguments)?;
            let name = args.name.unwrap_or_default();
            let page = api
                .get(&with_query("/flows", &[("q", &name), ("pageSize", "100")]))
                .await?;
            let flows: Vec<Value> = page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|f| json!({"id": f["id"], "name": f["name"], "isEnabled": f["isEnabled"], "trigger": f["trigger"], "lastError": f["lastError"]}))
                .collect();
            Ok(json!({"flows": flows}))
        }
        FlowTool::Explain => {
            let args: ExplainArgs = parse(arguments)?;
            let id = id_segment(&args.flow_id);
            let flow = api.get(&format!("/flows/{id}")).await?;
            let runs = api
                .get(&with_query("/runs", &[("flowId", &id), ("pageSize", "20")]))
                .await?;
            let mut counts = std::collections::BTreeMap::<String, u32>::new();
            for run in runs["items"].as_array().into_iter().flatten() {
                *counts
                    .entry(run["status"].as_str().unwrap_or("?").to_owned())
                    .or_default() += 1;
            }
            let event = match &args.event_id {
                Some(event) => {
                    let path = with_query(&format!("/flows/{id}/explain"), &[("eventId", event)]);
                    api.get(&path).await?
                }
                None => Value::Null,
            };
            Ok(json!({
                "explanation": explain(&flow),
                "event": event,
                "recentRuns": counts,
                "lastError": flow["lastError"],
                "definition": {"name": flow["name"], "isEnabled": flow["isEnabled"], "trigger": flow["trigger"], "steps": flow["steps"], "settings": flow["settings"]},
            }))
        }
        FlowTool::Create => {
            let body = arguments;
            if !body.is_object() {
                return Err(super::api::failure(
                    "validation_failed",
                    "the arguments are {name, trigger, steps, settings?, isEnabled?}",
                ));
            }
            api.post("/flows", body).await
        }
        FlowTool::Test => {
            let args: TestArgs = parse(arguments)?;
            let mut body = json!({"dryRun": args.dry_run, "draft": args.draft});
            if let Some(trigger) = args.trigger {
                body["record"] = trigger;
            }
            if let Some(pinned) = args.pinned {
                body["pinned"] = pinned;
            }
            api.post(&format!("/flows/{}/test", id_segment(&args.flow_id)), body)
                .await
        }
        FlowTool::SaveDraft => {
            let Value::Object(mut body) = arguments else {
                return Err(super::api::failure(
                    "validation_failed",
                    "the arguments are {flowId, name?, trigger?, steps?, settings?}",
                ));
            };
            let id = body
                .remove("flowId")
                .and_then(|id| id.as_str().map(id_segment))
                .unwrap_or_default();
            api.put(&format!("/flows/{id}/draft"), Value::Object(body))
                .await
        }
        FlowTool::PublishDraft => {
            let args: FlowArgs = parse(arguments)?;
            let id = id_segment(&args.flow_id);
            api.post(&format!("/flows/{id}/draft/publish"), json!({}))
                .await
        }
        FlowTool::Replay => {
            let args: ReplayArgs = parse(arguments)?;
            let mut body = json!({});
            if let Some(from) = args.from {
                body["from"] = json!(from);
            }
            if let Some(version) = args.version {
                body["version"] = json!(version);
            }
            let id = id_segment(&args.run_id);
            api.post(&format!("/runs/{id}/replay"), body).await
        }
        FlowTool::Cancel => {
            let args: RunArgs = parse(arguments)?;
            let id = id_segment(&args.run_id);
            api.post(&format!("/runs/{id}/cancel"), json!({})).await
        }
        FlowTool::Runs => {
            let args: RunsArgs = parse(arguments)?;
            let flow = args.flow_id.unwrap_or_default();
            let status = args.status.unwrap_or_default();
            let page = api
                .get(&with_query(
                    "/runs",
                    &[("flowId", &flow), ("status", &status), ("pageSize", "50")],
                ))
                .await?;
            let runs: Vec<Value> = page["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|r| json!({"id": r["id"], "flowId": r["flowId"], "status": r["status"], "error": r["error"], "createdAt": r["createdAt"], "finishedAt": r["finishedAt"]}))
                .collect();
            Ok(json!({"runs": runs}))
        }
        FlowTool::Run => {
            let args: RunArgs = parse(arguments)?;
            api.get(&format!("/runs/{}", id_segment(&args.run_id)))
                .await
        }
    }
}

/// A flow in plain words: what starts it, then each step, nested steps indented.
pub fn explain(flow: &Value) -> String {
    let mut out = format!(
        "\"{}\" ({})\n",
        flow["name"].as_str().unwrap_or_default(),
        if flow["isEnabled"] == true {
            "enabled"
        } else {
            "disabled"
        }
    );
    out.push_str(&format!("Starts on: {}\n", trigger_words(&flow["trigger"])));
    let mut problems = Problems::default();
    match program::parse(&mut problems, &flow["steps"], "steps", None) {
        Some(block) => block_words(&mut out, &block, 1, ""),
        None => out.push_str("(its steps could not be read)\n"),
    }
    out
}

fn trigger_words(trigger: &Value) -> String {
    let mut words = match trigger["type"].as_str() {
        Some("event") => format!("each {} event", trigger["event"].as_str().unwrap_or("?")),
        Some("webhook") => "each call of its inbound webhook URL".to_owned(),
        Some("schedule") => format!("the schedule {}", trigger["schedule"]),
        Some("poll") => format!(
            "new items of {} (polled on {})",
            trigger["source"], trigger["schedule"]
        ),
        _ => "?".to_owned(),
    };
    if let Some(filters) = trigger["filters"].as_object().filter(|f| !f.is_empty()) {
        words.push_str(&format!(
            " whose record has {}",
            Value::Object(filters.clone())
        ));
    }
    if !trigger["condition"].is_null() {
        let mut problems = Problems::default();
        if let Some(c) = timix_engine::automation::flows::condition::parse(
            &mut problems,
            &trigger["condition"],
            "c",
        ) {
            words.push_str(&format!(", only when {}", condition_words(&c)));
        }
    }
    words
}

fn condition_words(condition: &Condition) -> String {
    let join = |parts: &[Condition], word: &str| {
        parts
            .iter()
            .map(condition_words)
            .collect::<Vec<_>>()
            .join(word)
    };
    match condition {
        Condition::All(parts) => format!("({})", join(parts, " and ")),
        Condition::Any(parts) => format!("({})", join(parts, " or ")),
        Condition::Not(inner) => format!("not {}", condition_words(inner)),
        Condition::Leaf(leaf) => {
            let side = |v: &Value| v.as_str().map_or_else(|| v.to_string(), str::to_owned);
            match &leaf.right {
                Some(right) => format!("{} {} {}", side(&leaf.left), leaf.op.as_str(), side(right)),
                None => format!("{} {}", side(&leaf.left), leaf.op.as_str()),
            }
        }
    }
}

fn block_words(out: &mut String, block: &[Node], depth: usize, prefix: &str) {
    let indent = "  ".repeat(depth);
    for (i, node) in block.iter().enumerate() {
        let number = format!("{prefix}{}", i + 1);
        let line = match &node.kind {
            NodeKind::Action(a) => {
                let mut line = format!("do {}", a.action);
                if let Some(create) = &a.or_create {
                    line.push_str(&format!("; if it finds nothing, {} instead", create.action));
                }
                match &a.on_error {
                    OnError::Fail => {}
                    OnError::Continue => line.push_str("; if it fails, go on"),
                    OnError::Steps(_) => {
                        line.push_str("; if it fails, run the error steps instead of the rest")
                    }
                }
                line
            }
            NodeKind::Filter { condition } => {
                format!("go on only if {}", condition_words(condition))
            }
            NodeKind::If { condition, .. } => format!("if {}", condition_words(condition)),
            NodeKind::Switch { mode, .. } => format!(
                "route by case ({})",
                if *mode == SwitchMode::All {
                    "every case that holds"
                } else {
                    "the first case that holds"
                }
            ),
            NodeKind::ForEach { items, .. } => {
                format!("for each item of {}", items.as_str().unwrap_or("the list"))
            }
            NodeKind::Set { values } => format!(
                "compute {}",
                values.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
            NodeKind::Delay(Wait::For(ms)) => format!("wait {} s", ms / 1000),
            NodeKind::Delay(Wait::Until(until)) => {
                format!("wait until {}", until.as_str().unwrap_or("?"))
            }
            NodeKind::Stop { status, .. } => format!(
                "stop the run as {}",
                if *status == program::StopStatus::Failed {
                    "failed"
                } else {
                    "succeeded"
                }
            ),
        };
        out.push_str(&format!(
            "{indent}{number}. {} [{}]: {line}\n",
            node.key,
            node.type_name()
        ));
        let nested = format!("{number}.");
        match &node.kind {
            NodeKind::If {
                then, otherwise, ..
            } => {
                out.push_str(&format!("{indent}  then:\n"));
                block_words(out, then, depth + 2, &nested);
                if !otherwise.is_empty() {
                    out.push_str(&format!("{indent}  else:\n"));
                    block_words(out, otherwise, depth + 2, &nested);
                }
            }
            NodeKind::Switch { cases, default, .. } => {
                for case in cases {
                    out.push_str(&format!(
                        "{indent}  case {} (when {}):\n",
                        case.name,
                        condition_words(&case.condition)
                    ));
                    block_words(out, &case.steps, depth + 2, &nested);
                }
                if let Some(default) = default {
                    out.push_str(&format!("{indent}  otherwise:\n"));
                    block_words(out, default, depth + 2, &nested);
                }
            }
            NodeKind::ForEach { steps, .. } => block_words(out, steps, depth + 1, &nested),
            NodeKind::Action(a) => {
                if let OnError::Steps(steps) = &a.on_error {
                    out.push_str(&format!("{indent}  on error:\n"));
                    block_words(out, steps, depth + 2, &nested);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flow_reads_as_numbered_steps() {
        let flow = json!({
            "name": "Onboarding", "isEnabled": true,
            "trigger": {"type": "event", "event": "customer.created",
                        "condition": {"left": "{{trigger.currency}}", "op": "equals", "right": "EUR"}},
            "steps": [
                {"key": "big", "type": "if", "condition": {"left": "{{trigger.total}}", "op": "gt", "right": 1000},
                 "then": [{"key": "p", "action": "create_project", "input": {}, "onError": "continue"}]},
                {"key": "each", "type": "forEach", "items": "{{trigger.lines}}",
                 "steps": [{"key": "t", "action": "create_task", "input": {}}]}
            ]
        });
        let text = explain(&flow);
        assert!(
            text.contains("each customer.created event, only when {{trigger.currency}} equals EUR"),
            "{text}"
        );
        assert!(
            text.contains("1. big [if]: if {{trigger.total}} gt 1000"),
            "{text}"
        );
        assert!(
            text.contains("1.1. p [action]: do create_project; if it fails, go on"),
            "{text}"
        );
        assert!(text.contains("2.1. t [action]: do create_task"), "{text}");
    }
}
