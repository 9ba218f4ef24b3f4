//! The tools: one per action manifest that calls this instance's API (its key, description and
//! JSON Schema as they are, performed by the actions crate like a flow step), plus the
//! hand-written ones an assistant needs to act on names: `lookup`, `log_time`, the financial
//! reports, `list_invoices` ([`super::invoice_tools`]) and the flow tools
//! ([`super::flow_tools`]). A new manifest file is a new tool at the next start.

use std::collections::BTreeMap;
use std::sync::Arc;

use rmcp::model::{JsonObject, Tool, ToolAnnotations};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use timix_actions::ActionResult;
use timix_engine::automation::manifest::{ActionKind, ActionManifest, Manifests};

use super::api::{Api, Failure, failure, with_query};
use super::dates::{Calendar, DAY_WORDS, PERIOD_WORDS, date_bound};
use super::duration;
use super::flow_tools::{self, FlowTool};
use super::invoice_tools;
use super::lookup::{self, Kind};
use crate::AppState;

/// A financial report offered as a tool.
pub struct Report {
    pub tool: &'static str,
    pub path: &'static str,
    pub description: &'static str,
    pub group_by: bool,
    /// Takes `includeUnapproved` (the unbilled-time report).
    pub include_unapproved: bool,
}

pub const REPORTS: [Report; 4] = [
    Report {
        tool: "report_unbilled_time",
        path: "/financial-reports/unbilled-time",
        description: "Billable time not yet on an invoice, per customer and project, with hours and amounts per currency. By default it counts approved time only (timesheets approved: what invoicing would bill now); with includeUnapproved: true it counts all logged billable time not yet invoiced, whatever its approval (open, submitted or rejected timesheets too). The answer's includeUnapproved says which was counted: when asked about \"unbilled time\" without more, give both figures or say which one you give.",
        group_by: false,
        include_unapproved: true,
    },
    Report {
        tool: "report_revenue",
        path: "/financial-reports/revenue",
        description: "Revenue from logged billable time, grouped by customer (default), project, user or month, with totals per currency.",
        group_by: true,
        include_unapproved: false,
    },
    Report {
        tool: "report_budget_health",
        path: "/financial-reports/budget-health",
        description: "Each project's hours and amount spent against its budget.",
        group_by: false,
        include_unapproved: false,
    },
    Report {
        tool: "report_customer_billing",
        path: "/financial-reports/customer-billing",
        description: "Per customer: invoiced, paid and outstanding amounts (dates are issue dates).",
        group_by: false,
        include_unapproved: false,
    },
];

/// What performs a tool.
enum Handler {
    Action(Box<ActionManifest>),
    Lookup,
    LogTime,
    Report(&'static Report),
    Invoices,
    Flow(FlowTool),
}

/// Every tool and what performs it, made once at start.
pub struct Catalogue {
    pub tools: Vec<Tool>,
    handlers: BTreeMap<String, Handler>,
}

impl Catalogue {
    pub fn new(manifests: &Manifests) -> Self {
        let mut tools = BTreeMap::new();
        let mut handlers = BTreeMap::new();
        // Actions that call an outside URL (`http_request`) are for flows with connections,
        // not for an assistant acting on this instance.
        for action in manifests.actions.values() {
            if action.request.path.is_some() {
                tools.insert(action.key.clone(), action_tool(action));
                handlers.insert(
                    action.key.clone(),
                    Handler::Action(Box::new(action.clone())),
                );
            }
        }
        let hand_written = [
            (lookup_tool(), Handler::Lookup),
            (log_time_tool(), Handler::LogTime),
            (invoice_tools::list_invoices_tool(), Handler::Invoices),
        ]
        .into_iter()
        .chain(REPORTS.iter().map(|r| (report_tool(r), Handler::Report(r))))
        .chain(
            flow_tools::tools()
                .into_iter()
                .map(|(t, which)| (t, Handler::Flow(which))),
        );
        for (tool, handler) in hand_written {
            if handlers.contains_key(tool.name.as_ref()) {
                tracing::warn!(tool = %tool.name, "A manifest has the name of a built-in MCP tool; the built-in one is offered.");
            }
            handlers.insert(tool.name.to_string(), handler);
            tools.insert(tool.name.to_string(), tool);
        }
        Self {
            tools: tools.into_values().collect(),
            handlers,
        }
    }

    pub fn tool(&self, name: &str) -> Option<&Tool> {
        self.tools.iter().find(|t| t.name == name)
    }

    /// Performs the tool `name` (which exists) with `arguments` as the API's actor.
    pub async fn call(
        &self,
        state: &AppState,
        api: &Api<'_>,
        name: &str,
        arguments: Value,
    ) -> Result<Value, Failure> {
        match self.handlers.get(name) {
            Some(Handler::Action(action)) => perform(state, api, action, arguments).await,
            Some(Handler::Lookup) => find(api, parse(arguments)?).await,
            Some(Handler::LogTime) => log_time(api, parse(arguments)?).await,
            Some(Handler::Report(report)) => run_report(api, report, parse(arguments)?).await,
            Some(Handler::Invoices) => invoice_tools::list_invoices(api, parse(arguments)?).await,
            Some(Handler::Flow(which)) => flow_tools::call(api, *which, arguments).await,
            None => Err(failure("not_found", format!("there is no tool {name}"))),
        }
    }
}

fn schema(value: Value) -> Arc<JsonObject> {
    Arc::new(value.as_object().cloned().unwrap_or_default())
}

pub(super) fn tool(
    name: &str,
    title: &str,
    description: &str,
    input: Value,
    read_only: bool,
) -> Tool {
    let mut tool = Tool::new(name.to_owned(), description.to_owned(), schema(input));
    tool.title = Some(title.to_owned());
    tool.annotations = Some(
        ToolAnnotations::with_title(title)
            .read_only(read_only)
            .destructive(false),
    );
    tool
}

fn action_tool(action: &ActionManifest) -> Tool {
    let read_only = action.kind == ActionKind::Search;
    let mut input = action.input.clone();
    // A tool's input is always an object; a manifest without properties still is one.
    if input.get("type").is_none() {
        input["type"] = json!("object");
    }
    tool(
        &action.key,
        &action.label,
        &action.description,
        input,
        read_only,
    )
}

/// One action manifest, as a flow step would perform it: coerced, checked against its schema,
/// then performed in-process as the actor.
async fn perform(
    state: &AppState,
    api: &Api<'_>,
    action: &ActionManifest,
    mut input: Value,
) -> Result<Value, Failure> {
    state.manifests.coerce_input(&action.key, &mut input);
    if let Err(problems) = state.manifests.check_input(&action.key, &input) {
        return Err(invalid_arguments(problems));
    }
    match state
        .performer
        .perform(
            timix_actions::Caller {
                this: api.instance,
                actor: api.actor,
            },
            action,
            &input,
            None,
        )
        .await
    {
        ActionResult::Done(output) => Ok(output),
        ActionResult::Fail(error) | ActionResult::Retry { error, .. } => Err(error),
    }
}

/// Schema violations as the API's `validation_failed`, each naming its field.
pub(super) fn invalid_arguments(problems: Vec<(String, String)>) -> Failure {
    let details: Vec<Value> = problems
        .iter()
        .map(|(path, message)| {
            let field = path.trim_start_matches('/').replace('/', ".");
            json!({"field": field, "code": "invalid", "message": message})
        })
        .collect();
    let message = match problems.as_slice() {
        [(path, message)] if !path.is_empty() => format!("{}: {message}", &path[1..]),
        [(_, message)] => message.clone(),
        many => format!("{} arguments are invalid", many.len()),
    };
    json!({"code": "validation_failed", "message": message, "details": details})
}

/// A hand-written tool's arguments, or `validation_failed` naming the field.
pub(super) fn parse<T: DeserializeOwned>(arguments: Value) -> Result<T, Failure> {
    serde_path_to_error::deserialize(arguments).map_err(|e| {
        let field = e.path().to_string();
        let message = e.inner().to_string();
        let field = if field == "." { String::new() } else { field };
        invalid_arguments(vec![(format!("/{field}"), message)])
    })
}

fn lookup_tool() -> Tool {
    tool(
        "lookup",
        "Look up by name",
        "Finds customers, projects, tasks or subtasks by name (case-insensitive; exact matches first, then names starting with it, then names containing it) and returns their ids, names and parent ids. Use it to turn a name like \"Acme\" into an id.",
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["kind", "name"],
            "properties": {
                "kind": {"type": "string", "enum": ["customer", "project", "task", "subtask"], "description": "What to look for."},
                "name": {"type": "string", "minLength": 1, "description": "The name, or part of it."},
                "parentId": {"type": "string", "description": "Only under this parent: a customer id for projects, a project id for tasks, a task id for subtasks."}
            }
        }),
        true,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct LookupArgs {
    kind: String,
    name: String,
    parent_id: Option<String>,
}

async fn find(api: &Api<'_>, args: LookupArgs) -> Result<Value, Failure> {
    let kind = Kind::parse(&args.kind).ok_or_else(|| {
        invalid_arguments(vec![(
            "/kind".into(),
            "must be customer, project, task or subtask".into(),
        )])
    })?;
    if args.name.trim().is_empty() {
        return Err(invalid_arguments(vec![(
            "/name".into(),
            "must not be empty".into(),
        )]));
    }
    let matches = lookup::find(api, kind, &args.name, args.parent_id.as_deref()).await?;
    Ok(json!({"matches": matches}))
}

fn log_time_tool() -> Tool {
    let reference = |noun: &str| json!({"type": "string", "description": format!("The {noun}'s id, or its name (or a unique part of it).")});
    tool(
        "log_time",
        "Log time",
        "Logs time on a subtask named by id or name, directly or through its customer, project and task: \"3h on Acme\" works when Acme has one project with one task. When that task has no subtask yet, or none named like the subtask given, one is created under it (with the name given, else the task's name) and the answer says so (subtaskCreated, message). A name that fits several records, or a level left out that has several, is refused with the candidates. The duration is written like \"3h\", \"90m\", \"1:30\", \"1h30m\" or \"2.5h\"; the date may be a word such as \"yesterday\" or \"last monday\" and defaults to today in the organization's time zone.",
        json!({
            "type": "object",
            "additionalProperties": false,
            "required": ["duration"],
            "properties": {
                "customer": reference("customer"),
                "project": reference("project"),
                "task": reference("task"),
                "subtask": reference("subtask"),
                "duration": {"type": "string", "description": "How long: \"3h\", \"90m\", \"1:30\", \"1h30m\", \"2.5h\"."},
                "date": {"type": "string", "description": format!("The day worked: {DAY_WORDS}. Today when left out.")},
                "description": {"type": "string", "description": "What was done (the entry's notes)."},
                "billable": {"type": "boolean", "description": "Whether the time is billable; the task's setting when left out."}
            }
        }),
        false,
    )
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LogTimeArgs {
    customer: Option<String>,
    project: Option<String>,
    task: Option<String>,
    subtask: Option<String>,
    duration: String,
    date: Option<String>,
    description: Option<String>,
    billable: Option<bool>,
}

async fn log_time(api: &Api<'_>, args: LogTimeArgs) -> Result<Value, Failure> {
    let seconds = duration::parse(&args.duration).map_err(|message| {
        json!({"code": "validation_failed", "message": message,
               "details": [{"field": "duration", "code": "invalid", "message": message}]})
    })?;
    let date = Calendar::of(api.actor)
        .day(args.date.as_deref().unwrap_or("today"))
        .map_err(|message| invalid_arguments(vec![("/date".into(), message)]))?;
    let customer = lookup::resolve(api, Kind::Customer, args.customer.as_deref(), None).await?;
    let project = lookup::resolve(
        api,
        Kind::Project,
        args.project.as_deref(),
        customer.as_ref(),
    )
    .await?;
    let task = lookup::resolve(api, Kind::Task, args.task.as_deref(), project.as_ref()).await?;
    let (subtask, created) = match &task {
        Some(task) => {
            match lookup::resolve_under(api, Kind::Subtask, args.subtask.as_deref(), task).await? {
                Some(subtask) => (subtask, false),
                None => new_subtask(api, task, args.subtask.as_deref()).await?,
            }
        }
        None => {
            let subtask = lookup::resolve(api, Kind::Subtask, args.subtask.as_deref(), None)
                .await?
                .ok_or_else(|| {
                    json!({"code": "validation_failed",
                           "message": "say where the time goes: a subtask, or its customer, project or task",
                           "details": [{"field": "subtask", "code": "required", "message": "name a customer, project, task or subtask"}]})
                })?;
            (subtask, false)
        }
    };
    let mut body = json!({"subtaskId": subtask["id"], "date": date, "durationSeconds": seconds});
    if let Some(notes) = args.description {
        body["notes"] = json!(notes);
    }
    if let Some(billable) = args.billable {
        body["billable"] = json!(billable);
    }
    let entry = api.post("/time-entries", body).await?;
    let mut answer = json!({"timeEntry": entry, "subtask": subtask, "subtaskCreated": created});
    if created {
        answer["message"] = json!(format!(
            "Created the subtask {} under the task {}, which had none that fits, and logged the time on it.",
            subtask["name"],
            task.as_ref().map_or(Value::Null, |t| t["name"].clone())
        ));
    }
    Ok(answer)
}

/// A subtask for time on a task that has none that fits: named as the assistant named it, else
/// after the task, since later time on the task lands in it too (one entry's notes would not
/// fit as its name). Found rather than made when a call sent at the same time made it first;
/// whether this call created it.
async fn new_subtask(
    api: &Api<'_>,
    task: &Value,
    named: Option<&str>,
) -> Result<(Value, bool), Failure> {
    let name = named
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .or_else(|| task["name"].as_str())
        .unwrap_or("Time");
    lookup::find_or_create_under(api, Kind::Subtask, name, task).await
}

fn report_tool(report: &Report) -> Tool {
    let mut properties = json!({
        "from": {"type": "string", "description": format!("First work date, inclusive: {DAY_WORDS}; or {PERIOD_WORDS}.")},
        "to": {"type": "string", "description": "Last work date, inclusive; the same forms as from."},
        "customerId": {"type": "string", "description": "Only this customer (find its id with lookup)."},
        "projectId": {"type": "string", "description": "Only this project (find its id with lookup)."}
    });
    if report.group_by {
        properties["groupBy"] =
            json!({"type": "string", "enum": ["customer", "project", "user", "month"]});
    }
    if report.include_unapproved {
        properties["includeUnapproved"] = json!({"type": "boolean", "description": "true: all logged billable time not yet invoiced, approved or not; false (the default): approved time only."});
    }
    let title = report.tool.trim_start_matches("report_").replace('_', " ");
    tool(
        report.tool,
        &format!("Report: {title}"),
        report.description,
        json!({"type": "object", "additionalProperties": false, "properties": properties}),
        true,
    )
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct ReportArgs {
    from: Option<String>,
    to: Option<String>,
    customer_id: Option<String>,
    project_id: Option<String>,
    group_by: Option<String>,
    include_unapproved: Option<bool>,
}

async fn run_report(api: &Api<'_>, report: &Report, args: ReportArgs) -> Result<Value, Failure> {
    if args.group_by.is_some() && !report.group_by {
        return Err(invalid_arguments(vec![(
            "/groupBy".into(),
            format!("{} takes no groupBy", report.tool),
        )]));
    }
    if args.include_unapproved.is_some() && !report.include_unapproved {
        return Err(invalid_arguments(vec![(
            "/includeUnapproved".into(),
            format!("{} takes no includeUnapproved", report.tool),
        )]));
    }
    let calendar = Calendar::of(api.actor);
    let from = date_bound(&args.from, "from", |t| calendar.first_day(t))?;
    let to = date_bound(&args.to, "to", |t| calendar.last_day(t))?;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    let (customer, project, group) = (
        text(&args.customer_id),
        text(&args.project_id),
        text(&args.group_by),
    );
    let unapproved = args
        .include_unapproved
        .map(|b| b.to_string())
        .unwrap_or_default();
    let path = with_query(
        report.path,
        &[
            ("from", &from),
            ("to", &to),
            ("customerId", &customer),
            ("projectId", &project),
            ("groupBy", &group),
            ("includeUnapproved", &unapproved),
        ],
    );
    api.get(&path).await
}
