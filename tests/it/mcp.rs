//! `/mcp` driven by a client nobody here wrote: the official MCP Python SDK's streamable-HTTP
//! client (`tests/mcp/client.py`, pinned in `tests/mcp/requirements.txt`). It reports what it
//! saw; this test checks that against the REST API.

use std::process::Command;

use serde_json::{Value, json};

use crate::harness::*;

/// Whether python3 with the `mcp` package is here; in CI it must be.
fn python_mcp_ready() -> bool {
    let ready = Command::new("python3")
        .args(["-c", "import mcp.client.streamable_http"])
        .output()
        .is_ok_and(|o| o.status.success());
    tool_ready(
        "python3 with the mcp package (pip install -r tests/mcp/requirements.txt)",
        ready,
    )
}

/// Runs `tests/mcp/<script>` with `plan`; what it saw.
async fn run_script(script: &str, plan: Value) -> Value {
    let dir = temp_dir("mcp");
    let seen = Script::new("python3", &format!("mcp/{script}"))
        .timeout(std::time::Duration::from_secs(120))
        .plan(&dir, &plan)
        .run()
        .await;
    let _ = std::fs::remove_dir_all(dir);
    seen
}

/// Runs the Python client (`tests/mcp/client.py`) with `plan`; what it saw.
async fn drive(plan: Value) -> Value {
    run_script("client.py", plan).await
}

#[tokio::test]
async fn an_assistant_logs_time_by_name_reads_reports_and_is_held_to_its_role() {
    if !python_mcp_ready() {
        return;
    }
    let server = Server::start().await;
    let org = server.db.bootstrap("professional");
    let owner = server.as_key(&org.key);
    let customer = owner.customer("Acme Corp").await;
    let project = owner.project(&customer, "Website").await;
    let task = owner.task(&project, "Design").await;
    let subtask = owner.subtask(&task, "Wireframes").await;
    owner.customer("Globex One").await;
    owner.customer("Globex Two").await;
    let (_, viewer) = owner.user_with_key(&server.db, "viewer").await;

    let report = drive(json!({
        "url": server.url("/mcp"),
        "ownerKey": org.key,
        "viewerKey": viewer.key,
        "logTime": {"customer": "acme", "duration": "1h30m", "description": "Wireframes for the home page"},
        "ambiguous": {"customer": "globex", "duration": "1h"},
    }))
    .await;
    let seen = &report["owner"];
    assert_eq!(seen["serverName"], "timix");

    // Every action manifest of timix on this instance is a tool, with its schema and
    // description (other connectors' actions need a connection: they are flows' only).
    let manifests = owner.get("/manifests?pageSize=200").await.expect(200);
    let tools = seen["tools"].as_object().unwrap();
    for manifest in manifests.items() {
        let key = manifest["key"].as_str().unwrap();
        if manifest["kind"] != "action"
            || key == "http_request"
            || manifest["connector"].is_string()
        {
            continue;
        }
        let tool = &tools[key];
        assert_eq!(tool["description"], manifest["description"], "{key}");
        assert_eq!(tool["inputSchema"], manifest["inputSchema"], "{key}");
    }
    assert!(
        !tools.contains_key("http_request"),
        "outside calls are not tools"
    );
    assert_eq!(tools["find_customer"]["readOnly"], true);
    for name in [
        "lookup",
        "log_time",
        "report_unbilled_time",
        "report_revenue",
    ] {
        assert!(tools.contains_key(name), "{name} in {:?}", tools.keys());
    }

    // log_time found the subtask through the customer's name; the entry is in the API.
    let logged = &seen["logTime"];
    assert_eq!(logged["isError"], false, "{logged}");
    assert_eq!(logged["content"]["subtask"]["id"], subtask.as_str());
    let entry_id = logged["content"]["timeEntry"]["id"].as_str().unwrap();
    let entry = owner
        .get(&format!("/time-entries/{entry_id}"))
        .await
        .expect(200);
    assert_eq!(entry.body["subtaskId"], subtask.as_str());
    assert_eq!(entry.body["customerId"], customer.as_str());
    assert_eq!(entry.body["durationSeconds"], 5400);
    assert_eq!(entry.body["notes"], "Wireframes for the home page");
    assert_eq!(entry.body["userId"], org.owner_id.as_str());

    // A name that fits two customers is refused with both.
    let ambiguous = &seen["ambiguous"];
    assert_eq!(ambiguous["isError"], true, "{ambiguous}");
    assert_eq!(ambiguous["content"]["code"], "ambiguous");
    let candidates: Vec<&str> = ambiguous["content"]["candidates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(candidates, ["Globex One", "Globex Two"]);
    assert_eq!(
        seen["lookup"]["content"]["matches"][0]["id"],
        customer.as_str()
    );

    // The report is the API's.
    let unbilled = &seen["report"];
    assert_eq!(unbilled["isError"], false, "{unbilled}");
    let api_report = owner
        .get("/financial-reports/unbilled-time")
        .await
        .expect(200);
    assert_eq!(unbilled["content"], api_report.body);

    // Bad arguments are tool errors naming the field.
    let bad = &seen["badDuration"];
    assert_eq!(bad["isError"], true);
    assert_eq!(bad["content"]["code"], "validation_failed");
    assert_eq!(bad["content"]["details"][0]["field"], "duration");
    let bad = &seen["badArgument"];
    assert_eq!(bad["isError"], true);
    assert_eq!(bad["content"]["code"], "validation_failed");
    assert_eq!(bad["content"]["details"][0]["field"], "colour", "{bad}");
    let made = &seen["createCustomer"];
    assert_eq!(made["isError"], false, "{made}");
    owner
        .get(&format!(
            "/customers/{}",
            made["content"]["id"].as_str().unwrap()
        ))
        .await
        .expect(200);

    // Resources.
    assert_eq!(
        seen["resources"],
        json!(["timix://me", "timix://organization"])
    );
    assert_eq!(seen["read"]["timix://organization"]["id"], org.id.as_str());
    assert_eq!(
        seen["read"]["timix://me"]["user"]["id"],
        org.owner_id.as_str()
    );

    // A viewer's key reaches the tools but not the writes or the financials.
    for call in ["createCustomer", "report"] {
        let refused = &report["viewer"][call];
        assert_eq!(refused["isError"], true, "{refused}");
        assert_eq!(refused["content"]["code"], "forbidden", "{refused}");
        assert_eq!(refused["content"]["status"], 403, "{refused}");
    }
    let customers = owner.get("/customers?name=Not%20allowed").await.expect(200);
    assert!(customers.items().is_empty());
}

#[tokio::test]
async fn an_assistant_creates_corrects_tests_and_explains_a_flow() {
    if !python_mcp_ready() {
        return;
    }
    let server = Server::start().await;
    let org = server.db.bootstrap("professional");
    let owner = server.as_key(&org.key);
    let (_, viewer) = owner.user_with_key(&server.db, "viewer").await;
    let steps = |op: &str| {
        json!([{"key": "check", "type": "if",
                "condition": {"left": "{{trigger.name}}", "op": op, "right": ""},
                "then": [{"key": "customer", "action": "create_customer", "input": {"name": "{{trigger.name}}"}}]}])
    };
    let flow = |op: &str| json!({"name": "From an assistant", "trigger": {"type": "webhook"}, "steps": steps(op)});
    let typo = json!([{"key": "customer", "action": "create_customer", "input": {"name": "{{trigger.nme}}"}}]);
    let fixed = json!([{"key": "customer", "action": "create_customer", "input": {"name": "{{trigger.name}} Ltd"}}]);
    let seen = drive(json!({
        "url": server.url("/mcp"),
        "ownerKey": org.key,
        "viewerKey": viewer.key,
        "calls": [
            ["owner", "wrong", "create_flow", flow("differs")],
            ["owner", "created", "create_flow", flow("notEquals")],
            ["owner", "explained", "explain_flow", {"flowId": "${created.id}"}],
            ["owner", "listed", "list_flows", {}],
            ["owner", "tested", "test_flow", {"flowId": "${created.id}", "trigger": {"name": "Globex"}}],
            ["owner", "run", "get_run", {"runId": "${tested.id}"}],
            ["owner", "runs", "list_runs", {"flowId": "${created.id}"}],
            ["owner", "drafted", "save_draft", {"flowId": "${created.id}", "steps": typo}],
            ["owner", "dryDraft", "test_flow", {"flowId": "${created.id}", "trigger": {"name": "Dry"}, "dryRun": true, "draft": true}],
            ["owner", "fixed", "save_draft", {"flowId": "${created.id}", "steps": fixed}],
            ["owner", "published", "publish_draft", {"flowId": "${created.id}"}],
            ["owner", "dry", "test_flow", {"flowId": "${created.id}", "trigger": {"name": "Dry"}, "dryRun": true}],
            ["owner", "replayed", "replay_run", {"runId": "${dry.id}", "from": "start"}],
            ["viewer", "refused", "create_flow", flow("notEquals")],
            ["viewer", "hidden", "list_flows", {}],
            ["viewer", "noDraft", "save_draft", {"flowId": "${created.id}", "steps": typo}],
        ],
    }))
    .await;
    // The same 422 as the API, with the path of the problem: enough to correct the definition.
    let wrong = &seen["wrong"];
    assert_eq!(wrong["isError"], true, "{wrong}");
    assert_eq!(wrong["content"]["code"], "validation_failed");
    assert_eq!(wrong["content"]["status"], 422);
    assert_eq!(
        wrong["content"]["details"][0]["field"],
        "steps[0].condition.op"
    );
    let created = &seen["created"];
    assert_eq!(created["isError"], false, "{created}");
    let flow_id = created["content"]["id"].as_str().unwrap();
    let text = seen["explained"]["content"]["explanation"]
        .as_str()
        .unwrap();
    assert!(
        text.contains("each call of its inbound webhook URL"),
        "{text}"
    );
    assert!(
        text.contains("1. check [if]: if {{trigger.name}} notEquals"),
        "{text}"
    );
    assert!(
        text.contains("1.1. customer [action]: do create_customer"),
        "{text}"
    );
    assert_eq!(seen["listed"]["content"]["flows"][0]["id"], flow_id);
    let run_id = seen["tested"]["content"]["id"].as_str().unwrap();
    assert_eq!(seen["run"]["content"]["id"], run_id);
    assert_eq!(seen["runs"]["content"]["runs"][0]["id"], run_id);
    let run = owner.finished_run(run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["steps"][1]["path"], "check.then.customer");
    assert_eq!(run["steps"][1]["output"]["name"], "Globex");
    // Drafts, dry runs and replays.
    let drafted = &seen["drafted"];
    assert_eq!(drafted["isError"], false, "{drafted}");
    assert!(
        drafted["content"]["warnings"]
            .to_string()
            .contains("trigger.nme"),
        "{drafted}"
    );
    // A dry run of the draft shows the typo without performing anything.
    let caught = &seen["dryDraft"]["content"];
    assert_eq!(caught["status"], "failed", "{caught}");
    assert!(
        caught["error"].as_str().unwrap().contains("trigger.nme"),
        "{caught}"
    );
    assert_eq!(
        seen["fixed"]["content"]["warnings"],
        json!([]),
        "{}",
        seen["fixed"]
    );
    assert_eq!(
        seen["published"]["content"]["version"], 2,
        "{}",
        seen["published"]
    );
    let dry = &seen["dry"]["content"];
    assert_eq!(
        (
            dry["mode"].clone(),
            dry["dryRun"].clone(),
            dry["status"].clone()
        ),
        (json!("test"), json!(true), json!("succeeded")),
        "{dry}"
    );
    assert_eq!(
        seen["replayed"]["content"]["id"], dry["id"],
        "{}",
        seen["replayed"]
    );
    assert_eq!(dry["steps"][0]["input"]["name"], "Dry Ltd", "{dry}");
    assert!(
        owner
            .get("/customers?name=Dry")
            .await
            .expect(200)
            .items()
            .is_empty()
    );
    // Why a flow did not start on an event.
    let event = owner
        .get("/events?types=customer.created")
        .await
        .expect(200)
        .items()[0]["id"]
        .clone();
    let why = drive(json!({
        "url": server.url("/mcp"), "ownerKey": org.key, "viewerKey": viewer.key,
        "calls": [["owner", "why", "explain_flow", {"flowId": flow_id, "eventId": event}]],
    }))
    .await;
    assert_eq!(
        why["why"]["content"]["event"]["reason"], "other_type",
        "{why}"
    );
    // Held to the role, as over HTTP.
    for refused in [&seen["refused"], &seen["hidden"], &seen["noDraft"]] {
        assert_eq!(refused["isError"], true, "{refused}");
        assert_eq!(refused["content"]["status"], 403, "{refused}");
    }
}

/// An MCP initialize request, over plain HTTP.
fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"}}})
}

#[tokio::test]
async fn the_endpoint_refuses_requests_without_a_valid_key_like_the_api() {
    let server = Server::start().await;
    let org = server.db.bootstrap("professional");
    let http = reqwest::Client::new();
    let post = |key: Option<&str>, org_header: Option<&str>| {
        let mut request = http
            .post(server.url("/mcp"))
            .header("Accept", "application/json, text/event-stream")
            .json(&initialize());
        if let Some(key) = key {
            request = request.header("Authorization", format!("Bearer {key}"));
        }
        if let Some(org_id) = org_header {
            request = request.header("X-Organization-Id", org_id);
        }
        request.send()
    };
    for (key, org_header, status, code) in [
        (None, None, 401, "unauthenticated"),
        (Some("bbl_not_a_key"), None, 401, "unauthenticated"),
        (
            Some(org.key.as_str()),
            Some("org_other"),
            403,
            "organization_mismatch",
        ),
    ] {
        let response = post(key, org_header).await.unwrap();
        assert_eq!(response.status().as_u16(), status, "{key:?}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{body}");
    }
    let response = post(Some(&org.key), Some(&org.id)).await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["result"]["serverInfo"]["name"], "timix", "{body}");
}

/// Today in the test organization's zone, UTC+14: far enough from UTC that a day read in UTC
/// is wrong for 14 hours of every day.
fn today_at_utc_plus_14() -> chrono::NaiveDate {
    (chrono::Utc::now() + chrono::Duration::hours(14)).date_naive()
}

#[tokio::test]
async fn an_assistant_asks_for_unbilled_time_both_ways_overdue_invoices_and_logs_by_day_words() {
    if !python_mcp_ready() {
        return;
    }
    let server = Server::start().await;
    let org = server.db.bootstrap("professional");
    let owner = server.as_key(&org.key);
    let (_, viewer) = owner.user_with_key(&server.db, "viewer").await;
    owner
        .patch(
            "/organization",
            json!({"timezone": "Etc/GMT-14", "weekStartsOn": "monday"}),
        )
        .await
        .expect(200);
    // Solo Ltd has one project with one task and no subtask yet.
    let solo = owner
        .post(
            "/customers",
            json!({"name": "Solo Ltd", "hourlyRate": "100.00"}),
        )
        .await
        .expect(201)
        .id();
    let retainer = owner.project(&solo, "Retainer").await;
    let support = owner.task(&retainer, "Support").await;
    // Steady Co's time is approved: 1.5 h in a week long gone.
    let steady = owner
        .post(
            "/customers",
            json!({"name": "Steady Co", "hourlyRate": "100.00"}),
        )
        .await
        .expect(201)
        .id();
    let steady_task = owner
        .task(&owner.project(&steady, "Ops").await, "Run")
        .await;
    let steady_subtask = owner.subtask(&steady_task, "Daily").await;
    owner
        .post(
            "/time-entries",
            json!({"subtaskId": steady_subtask, "date": "2025-03-03", "durationSeconds": 5400}),
        )
        .await
        .expect(201);
    let sheet = owner
        .get(&format!(
            "/timesheets?userId={}&periodStart=2025-03-03",
            org.owner_id
        ))
        .await
        .expect(200)
        .items()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for step in ["submit", "approve"] {
        owner
            .post(&format!("/timesheets/{sheet}/{step}"), json!({}))
            .await
            .expect(200);
    }
    // Late Payer: one invoice overdue and part paid, one due in 2099, one paid.
    let late = owner.customer("Late Payer").await;
    let mut invoices = Vec::new();
    for (line, issued, due) in [
        ("500.00", "2025-01-02", "2025-02-01"),
        ("200.00", "2025-01-03", "2099-12-31"),
        ("300.00", "2025-01-04", "2025-02-01"),
    ] {
        let id = owner
            .post(
                "/invoices",
                json!({"customerId": late, "lines": [{"description": "Audit", "unitPrice": line}]}),
            )
            .await
            .expect(201)
            .id();
        owner
            .post(
                &format!("/invoices/{id}/issue"),
                json!({"issueDate": issued, "dueDate": due}),
            )
            .await
            .expect(200);
        invoices.push(id);
    }
    for (id, amount) in [(&invoices[0], "100.00"), (&invoices[2], "300.00")] {
        owner
            .post(
                &format!("/invoices/{id}/payments"),
                json!({"amount": amount}),
            )
            .await
            .expect(200);
    }

    let today_before = today_at_utc_plus_14();
    let seen = drive(json!({
        "url": server.url("/mcp"),
        "ownerKey": org.key,
        "viewerKey": viewer.key,
        "listTools": true,
        "calls": [
            ["owner", "yesterday", "log_time", {"customer": "Solo", "duration": "2h", "date": "yesterday", "description": "Fixed the login"}],
            ["owner", "lastMonday", "log_time", {"customer": "solo ltd", "duration": "1h", "date": "last Monday"}],
            ["owner", "badDate", "log_time", {"customer": "Solo", "duration": "1h", "date": "next fortnight"}],
            ["owner", "approvedOnly", "report_unbilled_time", {}],
            ["owner", "allLogged", "report_unbilled_time", {"includeUnapproved": true}],
            ["owner", "overdue", "list_invoices", {"overdue": true}],
            ["owner", "latePayer", "list_invoices", {"customer": "late payer"}],
            ["viewer", "noInvoices", "list_invoices", {}],
        ],
    }))
    .await;
    let today_after = today_at_utc_plus_14();

    // The tools say what they take.
    let tools = &seen["tools"];
    assert_eq!(tools["list_invoices"]["readOnly"], true);
    assert!(
        tools["log_time"]["inputSchema"]["properties"]["date"]["description"]
            .as_str()
            .unwrap()
            .contains("last monday"),
        "{}",
        tools["log_time"]
    );
    assert_eq!(
        tools["report_unbilled_time"]["inputSchema"]["properties"]["includeUnapproved"]["type"],
        "boolean"
    );

    // log_time reached Support through the customer and made it its subtask, named after it.
    let first = &seen["yesterday"];
    assert_eq!(first["isError"], false, "{first}");
    assert_eq!(first["content"]["subtaskCreated"], true, "{first}");
    assert!(
        first["content"]["message"]
            .as_str()
            .unwrap()
            .contains("Created the subtask"),
        "{first}"
    );
    let subtasks = owner
        .get(&format!("/subtasks?taskId={support}"))
        .await
        .expect(200)
        .items();
    assert_eq!(subtasks.len(), 1, "{subtasks:?}");
    assert_eq!(subtasks[0]["name"], "Support");
    assert_eq!(first["content"]["subtask"]["id"], subtasks[0]["id"]);
    // The next time on Solo finds it: nothing more is created.
    let second = &seen["lastMonday"];
    assert_eq!(second["isError"], false, "{second}");
    assert_eq!(second["content"]["subtaskCreated"], false, "{second}");
    assert_eq!(second["content"]["subtask"]["id"], subtasks[0]["id"]);

    // The days are the organization's: yesterday, and the latest Monday before today.
    let mut entries = Vec::new();
    for label in ["yesterday", "lastMonday"] {
        let id = seen[label]["content"]["timeEntry"]["id"].as_str().unwrap();
        let entry = owner.get(&format!("/time-entries/{id}")).await.expect(200);
        entries.push(entry.body);
    }
    let (yesterday, last_monday) = (&entries[0], &entries[1]);
    assert_eq!(yesterday["durationSeconds"], 7200);
    assert_eq!(yesterday["notes"], "Fixed the login");
    assert_eq!(yesterday["subtaskId"], subtasks[0]["id"]);
    if today_before == today_after {
        use chrono::Datelike;
        let today = today_before;
        let back = match today.weekday().num_days_from_monday() {
            0 => 7,
            days => days,
        };
        let days_before = |days: u32| {
            (today - chrono::Days::new(days.into()))
                .format("%Y-%m-%d")
                .to_string()
        };
        assert_eq!(yesterday["date"], days_before(1));
        assert_eq!(last_monday["date"], days_before(back));
    }
    let bad = &seen["badDate"];
    assert_eq!(bad["isError"], true, "{bad}");
    assert_eq!(bad["content"]["code"], "validation_failed");
    assert_eq!(bad["content"]["details"][0]["field"], "date", "{bad}");
    assert!(
        bad["content"]["message"]
            .as_str()
            .unwrap()
            .contains("yesterday"),
        "the refusal lists what is understood: {bad}"
    );

    // Unbilled time both ways: approved only (Steady's 1.5 h), and all of it (Solo's 3 h too);
    // each answer is the API's and says which it counted.
    let approved = &seen["approvedOnly"]["content"];
    let all = &seen["allLogged"]["content"];
    assert_eq!(approved["includeUnapproved"], false, "{approved}");
    assert_eq!(all["includeUnapproved"], true, "{all}");
    assert_eq!(approved["totals"][0]["seconds"], 5400, "{approved}");
    assert_eq!(all["totals"][0]["seconds"], 5400 + 7200 + 3600, "{all}");
    assert_eq!(approved["totals"][0]["amount"], "150.00", "{approved}");
    assert_eq!(all["totals"][0]["amount"], "450.00", "{all}");
    let customers = |report: &Value| -> Vec<String> {
        report["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i["customerName"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(customers(approved), ["Steady Co"]);
    assert_eq!(customers(all), ["Solo Ltd", "Steady Co"]);
    for (query, answer) in [("", approved), ("?includeUnapproved=true", all)] {
        let api = owner
            .get(&format!("/financial-reports/unbilled-time{query}"))
            .await
            .expect(200);
        assert_eq!(*answer, api.body, "{query}");
    }

    // Overdue invoices by number and customer, with what is due; the API filters the same way.
    let overdue = &seen["overdue"]["content"];
    assert_eq!(seen["overdue"]["isError"], false, "{overdue}");
    let listed = overdue["invoices"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{overdue}");
    assert_eq!(listed[0]["id"], invoices[0].as_str());
    assert_eq!(listed[0]["number"], "INV-0001");
    assert_eq!(listed[0]["customer"]["name"], "Late Payer");
    assert_eq!(listed[0]["customer"]["id"], late.as_str());
    assert_eq!(listed[0]["dueDate"], "2025-02-01");
    assert_eq!(listed[0]["status"], "issued");
    assert_eq!(
        (
            &listed[0]["total"],
            &listed[0]["amountDue"],
            &listed[0]["isOverdue"]
        ),
        (&json!("500.00"), &json!("400.00"), &json!(true))
    );
    assert_eq!(overdue["totals"][0]["amountDue"], "400.00", "{overdue}");
    assert_eq!(overdue["totals"][0]["count"], 1);
    let api_overdue = owner.get("/invoices?overdue=true").await.expect(200);
    assert_eq!(api_overdue.item_ids(), [invoices[0].clone()]);
    let mut others = owner
        .get("/invoices?overdue=false")
        .await
        .expect(200)
        .item_ids();
    others.sort();
    let mut expected = vec![invoices[1].clone(), invoices[2].clone()];
    expected.sort();
    assert_eq!(others, expected);
    owner
        .get("/invoices?overdue=soon")
        .await
        .expect_error(400, "invalid_parameter");
    // By the customer's name: all three, and their totals.
    let by_customer = &seen["latePayer"]["content"];
    assert_eq!(by_customer["count"], 3, "{by_customer}");
    assert_eq!(
        by_customer["totals"][0]["total"], "1000.00",
        "{by_customer}"
    );
    assert_eq!(
        by_customer["totals"][0]["amountDue"], "600.00",
        "{by_customer}"
    );
    // Invoices are for managers and up, through MCP as over HTTP.
    let refused = &seen["noInvoices"];
    assert_eq!(refused["isError"], true, "{refused}");
    assert_eq!(refused["content"]["status"], 403, "{refused}");
}

/// Assistants send tool calls in parallel: two `log_time` calls at once on a task with no
/// subtask both find none, and still end with one subtask holding both entries.
#[tokio::test]
async fn an_assistant_logging_time_twice_at_once_makes_one_subtask() {
    if !python_mcp_ready() {
        return;
    }
    let server = Server::start().await;
    let org = server.db.bootstrap("professional");
    let owner = server.as_key(&org.key);
    let (_, viewer) = owner.user_with_key(&server.db, "viewer").await;
    let twin = owner.customer("Twin Calls").await;
    let task = owner
        .task(&owner.project(&twin, "Website").await, "Design")
        .await;
    let seen = drive(json!({
        "url": server.url("/mcp"),
        "ownerKey": org.key,
        "viewerKey": viewer.key,
        "calls": [{"together": [
            ["owner", "first", "log_time", {"customer": "Twin", "duration": "1h", "description": "Sketches"}],
            ["owner", "second", "log_time", {"customer": "Twin", "duration": "2h", "description": "Mock-ups"}],
        ]}],
    }))
    .await;

    let subtasks = owner
        .get(&format!("/subtasks?taskId={task}"))
        .await
        .expect(200)
        .items();
    assert_eq!(subtasks.len(), 1, "{subtasks:?}");
    assert_eq!(subtasks[0]["name"], "Design");
    let mut created = 0;
    for label in ["first", "second"] {
        let call = &seen[label];
        assert_eq!(call["isError"], false, "{call}");
        assert_eq!(
            call["content"]["subtask"]["id"], subtasks[0]["id"],
            "{call}"
        );
        created += usize::from(call["content"]["subtaskCreated"] == true);
    }
    assert_eq!(created, 1, "one call made the subtask: {seen}");
    let entries = owner
        .get(&format!(
            "/time-entries?subtaskId={}",
            subtasks[0]["id"].as_str().unwrap()
        ))
        .await
        .expect(200)
        .items();
    let mut seconds: Vec<i64> = entries
        .iter()
        .map(|e| e["durationSeconds"].as_i64().unwrap())
        .collect();
    seconds.sort_unstable();
    assert_eq!(seconds, [3600, 7200]);
}

/// MCP authorization (API.md §11): OAuth 2.1 for assistants that cannot send an API key.
mod oauth_authorization {
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use reqwest::StatusCode;
    use sha2::{Digest, Sha256};

    use super::*;
    use crate::ui::{Browser, PASSWORD, bootstrap_with_password};

    /// A user of `role` who set their password through an invitation: their e-mail.
    async fn user_with_password(server: &Server, admin: &mut Browser, role: &str) -> String {
        let email = format!(
            "{role}-{}@example.com",
            ulid::Ulid::generate().to_string().to_lowercase()
        );
        let csrf = admin.get("/users").await.csrf();
        let page = admin
            .post(
                "/users",
                &[
                    ("_csrf", &csrf),
                    ("email", &email),
                    ("name", "Mia"),
                    ("role", role),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
        let start = page.body.find("/invite/").expect("an invitation link");
        let link: String = page.body[start..]
            .chars()
            .take_while(|c| *c != '"')
            .collect();
        let mut invited = Browser::new(server);
        let csrf = invited.get(&link).await.csrf();
        let page = invited
            .post(
                &link,
                &[
                    ("_csrf", &csrf),
                    ("password", PASSWORD),
                    ("confirm", PASSWORD),
                ],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        email
    }

    #[tokio::test]
    async fn an_oauth_only_assistant_connects_through_consent_in_the_web_ui() {
        if !python_mcp_ready() {
            return;
        }
        let server =
            Server::start_with(TestDb::new().await, &[("TIMIX_MCP_TOKEN_LIFETIME", "2s")]).await;
        let (owner_email, owner_key, _) = bootstrap_with_password(&server.db, "Consenting Org");
        let owner = server.as_key(&owner_key);
        owner.customer("Acme Corp").await;
        let mut admin = Browser::new(&server);
        assert_eq!(
            admin.log_in(&owner_email, PASSWORD).await.status,
            StatusCode::SEE_OTHER
        );
        let email = user_with_password(&server, &mut admin, "member").await;
        let member = owner
            .get(&format!("/org-users?email={email}"))
            .await
            .expect(200)
            .items()[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let (origin, url) = (server.url(""), server.url("/mcp"));
        let redirect = "http://127.0.0.1:9/oauth/callback";
        let seen = run_script(
            "oauth_client.py",
            json!({"url": url, "email": email, "password": PASSWORD, "redirectUri": redirect,
                   "customer": "acme"}),
        )
        .await;

        // Discovery from the 401: the header names the resource metadata, which names this
        // server as the authorization server.
        let refused = &seen["unauthenticated"];
        assert_eq!(refused["status"], 401, "{seen}");
        assert_eq!(refused["code"], "unauthenticated");
        assert_eq!(
            refused["wwwAuthenticate"],
            format!(
                "Bearer resource_metadata=\"{origin}/.well-known/oauth-protected-resource/mcp\""
            )
        );
        let discovered = &seen["discovered"];
        assert_eq!(discovered["resourceMetadata"]["resource"], url.as_str());
        assert_eq!(
            discovered["resourceMetadata"]["authorization_servers"],
            json!([origin])
        );
        assert_eq!(discovered["issuer"], origin.as_str());
        assert_eq!(
            discovered["registrationEndpoint"],
            format!("{origin}/oauth/register")
        );
        // Dynamic registration: no method asked, so client_secret_basic with a secret (RFC 7591).
        assert!(
            seen["client"]["clientId"]
                .as_str()
                .unwrap()
                .starts_with("mcc_")
        );
        assert_eq!(seen["client"]["authMethod"], "client_secret_basic");
        assert_eq!(seen["client"]["hasSecret"], true);

        // The authorization request, the login it needs, the consent page and the code.
        let authorize = &seen["authorize"];
        assert_eq!(authorize["query"]["response_type"], "code");
        assert_eq!(authorize["query"]["code_challenge_method"], "S256");
        assert_eq!(authorize["query"]["resource"], url.as_str());
        assert_eq!(authorize["query"]["scope"], "mcp");
        assert_eq!(authorize["withoutLogin"]["status"], 303);
        assert!(
            authorize["withoutLogin"]["location"]
                .as_str()
                .unwrap()
                .starts_with("/login?next=%2Foauth%2Fauthorize%3F"),
            "{authorize}"
        );
        assert_eq!(authorize["login"]["status"], 303);
        assert_eq!(authorize["consent"]["status"], 200);
        let text = authorize["consent"]["text"].as_str().unwrap();
        for expected in [
            "Allow timix OAuth test to use timix as you?",
            "127.0.0.1:9",
            "Consenting Org",
            email.as_str(),
            "member: it may read",
        ] {
            assert!(text.contains(expected), "{expected} in {text}");
        }
        assert_eq!(authorize["allowed"]["status"], 303);
        assert_eq!(authorize["allowed"]["redirect"], redirect);
        assert_eq!(
            authorize["allowed"]["params"],
            json!(["code", "iss", "state"])
        );

        // The token acts as the member, with the member's role.
        let first = &seen["first"];
        assert_eq!(first["me"]["userId"], member.as_str(), "{first}");
        assert_eq!(first["me"]["role"], "member");
        assert_eq!(first["me"]["apiKeyName"], "MCP: timix OAuth test");
        assert_eq!(first["find"]["isError"], false, "{first}");
        assert_eq!(first["find"]["content"]["name"], "Acme Corp");
        for refused in [&first["listFlows"], &first["createCustomer"]] {
            assert_eq!(refused["isError"], true, "{refused}");
            assert_eq!(refused["content"]["status"], 403, "{refused}");
        }
        assert!(
            owner
                .get("/customers?name=By%20the%20assistant")
                .await
                .expect(200)
                .items()
                .is_empty()
        );
        assert_eq!(
            seen["firstTokens"],
            json!({"expiresIn": 2, "tokenType": "Bearer", "scope": "mcp"})
        );

        // Expired, the access token is refused; the SDK refreshed it and rotated the refresh
        // token.
        assert_eq!(seen["expired"]["status"], 401, "{seen}");
        assert!(
            seen["expired"]["wwwAuthenticate"]
                .as_str()
                .unwrap()
                .ends_with(", error=\"invalid_token\"")
        );
        assert_eq!(seen["second"]["userId"], member.as_str());
        let refresh = &seen["refresh"];
        assert!(refresh["newTokens"].as_u64().unwrap() >= 1, "{refresh}");
        assert_eq!(refresh["accessChanged"], true);
        assert_eq!(refresh["refreshRotated"], true);
        assert_eq!(refresh["fresh"]["status"], 200);

        // Revoked, neither the access token nor the refresh token serves any more.
        let revoke = &seen["revoke"];
        assert_eq!(revoke["status"], 200, "{revoke}");
        assert_eq!(revoke["accessAfter"]["status"], 401);
        assert_eq!(
            revoke["refreshAfter"],
            json!({"status": 400, "error": "invalid_grant"})
        );
    }

    /// A PKCE verifier and its S256 challenge.
    fn pkce() -> (String, String) {
        let verifier = format!("{}-{}", ulid::Ulid::generate(), ulid::Ulid::generate());
        let challenge = URL_SAFE_NO_PAD.encode(&Sha256::digest(verifier.as_bytes())[..]);
        (verifier, challenge)
    }

    /// The query of a URL, as pairs.
    fn query_of(location: &str) -> std::collections::BTreeMap<String, String> {
        reqwest::Url::parse(location)
            .unwrap()
            .query_pairs()
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    }

    /// The first link of `body` to `target`, as a URL.
    fn link_to(body: &str, target: &str) -> String {
        let start = body
            .find(&format!("href=\"{target}"))
            .unwrap_or_else(|| panic!("a link to {target} in {body}"))
            + "href=\"".len();
        let escaped: String = body[start..].chars().take_while(|c| *c != '"').collect();
        [
            ("&#x3D;", "="),
            ("&#x27;", "'"),
            ("&quot;", "\""),
            ("&lt;", "<"),
            ("&gt;", ">"),
            ("&#x60;", "`"),
            ("&amp;", "&"),
        ]
        .iter()
        .fold(escaped, |text, (entity, plain)| text.replace(entity, plain))
    }

    /// `/oauth/authorize?…` with these parameters.
    fn authorize_path(params: &[(&str, &str)]) -> String {
        let mut url = reqwest::Url::parse("http://timix/oauth/authorize").unwrap();
        url.query_pairs_mut().extend_pairs(params);
        format!("{}?{}", url.path(), url.query().unwrap())
    }

    /// The user's answer on the consent page of a request with these parameters: where the
    /// browser is sent.
    async fn consent(browser: &mut Browser, params: &[(&str, &str)], decision: &str) -> String {
        let page = browser.get(&authorize_path(params)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let csrf = page.csrf();
        let mut form: Vec<(&str, &str)> = vec![("_csrf", csrf.as_str()), ("decision", decision)];
        form.extend_from_slice(params);
        let page = browser.post("/oauth/authorize", &form).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        page.location.unwrap()
    }

    /// An MCP request with a bearer value: its status and JSON.
    async fn mcp(server: &Server, token: &str, body: Value) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(server.url("/mcp"))
            .header("Authorization", format!("Bearer {token}"))
            .header("Accept", "application/json, text/event-stream")
            .header("MCP-Protocol-Version", "2025-06-18")
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    fn read_me() -> Value {
        json!({"jsonrpc": "2.0", "id": 2, "method": "resources/read", "params": {"uri": "timix://me"}})
    }

    #[tokio::test]
    async fn oauth_refuses_what_it_must_and_tokens_follow_the_user() {
        let server = Server::start().await;
        let (email, key, owner_id) = bootstrap_with_password(&server.db, "Refusing Org");
        let owner = server.as_key(&key);
        let http = reqwest::Client::new();
        let origin = server.url("");

        // The metadata documents.
        for path in [
            "/.well-known/oauth-protected-resource",
            "/.well-known/oauth-protected-resource/mcp",
        ] {
            let document: Value = http
                .get(server.url(path))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            assert_eq!(document["resource"], server.url("/mcp"), "{path}");
            assert_eq!(document["authorization_servers"], json!([origin]));
        }
        let metadata: Value = http
            .get(server.url("/.well-known/oauth-authorization-server"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(
            metadata["code_challenge_methods_supported"],
            json!(["S256"])
        );
        assert_eq!(
            metadata["grant_types_supported"],
            json!(["authorization_code", "refresh_token"])
        );
        assert_eq!(
            metadata["authorization_endpoint"],
            format!("{origin}/oauth/authorize")
        );

        // Registration refuses a redirect URI that is neither https nor loopback.
        let register = |body: Value| http.post(server.url("/oauth/register")).json(&body).send();
        for uri in [
            "http://example.com/cb",
            "javascript:alert(1)",
            "https://x.example/cb#f",
        ] {
            let refused = register(json!({"client_name": "Bad", "redirect_uris": [uri]}))
                .await
                .unwrap();
            assert_eq!(refused.status(), StatusCode::BAD_REQUEST, "{uri}");
            let body: Value = refused.json().await.unwrap();
            assert_eq!(body["error"], "invalid_redirect_uri", "{body}");
        }
        let redirect = "http://127.0.0.1:9/cb";
        let registered = register(json!({"client_name": "Public <b>tool</b>",
                                          "redirect_uris": [redirect],
                                          "token_endpoint_auth_method": "none"}))
        .await
        .unwrap();
        assert_eq!(registered.status(), StatusCode::CREATED);
        let client: Value = registered.json().await.unwrap();
        assert!(client.get("client_secret").is_none(), "{client}");
        let client_id = client["client_id"].as_str().unwrap().to_owned();

        let mut browser = Browser::new(&server);
        assert_eq!(
            browser.log_in(&email, PASSWORD).await.status,
            StatusCode::SEE_OTHER
        );
        let (verifier, challenge) = pkce();
        let resource = server.url("/mcp");
        let params = |state: &'static str| {
            vec![
                ("response_type", "code"),
                ("client_id", client_id.as_str()),
                ("redirect_uri", redirect),
                ("state", state),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
                ("resource", resource.as_str()),
            ]
        };

        // A link naming an unknown client or an unregistered redirect is never followed.
        for (name, value) in [
            ("client_id", "mcc_unknown"),
            ("redirect_uri", "https://evil.example/cb"),
        ] {
            let mut bad = params("s");
            bad.iter_mut().find(|(k, _)| *k == name).unwrap().1 = value;
            let page = browser.get(&authorize_path(&bad)).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{name}");
            assert!(page.location.is_none());
        }
        // Without PKCE, or for another resource, the user is shown why, with a link that
        // takes the error back to the client: never sent there unasked (RFC 9700 §4.11.2).
        for (missing, error) in [
            ("code_challenge", "invalid_request"),
            ("resource", "invalid_target"),
        ] {
            let mut bad = params("s1");
            if missing == "resource" {
                bad.last_mut().unwrap().1 = "https://other.example/mcp";
            } else {
                bad.retain(|(k, _)| *k != missing);
            }
            let page = browser.get(&authorize_path(&bad)).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{missing}");
            assert!(page.location.is_none());
            let back = query_of(&link_to(&page.body, redirect));
            assert_eq!(back["error"], error);
            assert_eq!(back["state"], "s1");
        }
        // The page names the client as it registered (escaped), the organization and the role.
        let page = browser.get(&authorize_path(&params("s"))).await;
        assert!(
            page.body.contains("Public &lt;b&gt;tool&lt;/b&gt;"),
            "{}",
            page.body
        );
        assert!(page.body.contains("Refusing Org") && page.body.contains("owner"));

        // Denied: the client hears access_denied, with its state and this issuer.
        let denied = query_of(&consent(&mut browser, &params("s2"), "deny").await);
        assert_eq!(denied["error"], "access_denied");
        assert_eq!(denied["state"], "s2");
        assert_eq!(denied["iss"], origin.as_str());

        let token = |form: Vec<(&'static str, String)>| {
            let http = http.clone();
            let url = server.url("/oauth/token");
            async move {
                let response = http.post(url).form(&form).send().await.unwrap();
                let status = response.status().as_u16();
                (status, response.json::<Value>().await.unwrap())
            }
        };
        let exchange = |code: &str, verifier: &str| {
            vec![
                ("grant_type", "authorization_code".to_owned()),
                ("code", code.to_owned()),
                ("redirect_uri", redirect.to_owned()),
                ("client_id", client_id.clone()),
                ("code_verifier", verifier.to_owned()),
            ]
        };
        let allow = async |browser: &mut Browser, state: &'static str| {
            let back = query_of(&consent(browser, &params(state), "allow").await);
            assert_eq!(back["state"], state);
            back["code"].clone()
        };

        // A wrong verifier spends the code.
        let code = allow(&mut browser, "s3").await;
        let (wrong, _) = pkce();
        let (status, body) = token(exchange(&code, &wrong)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
        let (status, body) = token(exchange(&code, &verifier)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );

        // A code serves once; presented again it revokes what it gave.
        let code = allow(&mut browser, "s4").await;
        let (status, issued) = token(exchange(&code, &verifier)).await;
        assert_eq!(status, 200, "{issued}");
        assert_eq!(issued["token_type"], "Bearer");
        assert_eq!(issued["expires_in"], 3600);
        let access = issued["access_token"].as_str().unwrap().to_owned();
        let (status, me) = mcp(&server, &access, read_me()).await;
        assert_eq!(status, 200, "{me}");
        let me: Value =
            serde_json::from_str(me["result"]["contents"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(me["user"]["id"], owner_id.as_str());
        // Tokens serve /mcp only.
        let rest = http
            .get(server.url("/api/integration/v1/me"))
            .bearer_auth(&access)
            .send()
            .await
            .unwrap();
        assert_eq!(rest.status(), StatusCode::UNAUTHORIZED);
        let (status, body) = token(exchange(&code, &verifier)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
        assert_eq!(mcp(&server, &access, read_me()).await.0, 401);

        // Refresh tokens rotate; an old one presented again revokes the grant.
        let code = allow(&mut browser, "s5").await;
        let (_, first) = token(exchange(&code, &verifier)).await;
        let refresh = |refresh_token: &Value| {
            vec![
                ("grant_type", "refresh_token".to_owned()),
                ("refresh_token", refresh_token.as_str().unwrap().to_owned()),
                ("client_id", client_id.clone()),
            ]
        };
        let (status, second) = token(refresh(&first["refresh_token"])).await;
        assert_eq!(status, 200, "{second}");
        assert_ne!(second["refresh_token"], first["refresh_token"]);
        let access = second["access_token"].as_str().unwrap().to_owned();
        assert_eq!(mcp(&server, &access, read_me()).await.0, 200);
        let (status, body) = token(refresh(&first["refresh_token"])).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
        assert_eq!(mcp(&server, &access, read_me()).await.0, 401);
        let (status, _) = token(refresh(&second["refresh_token"])).await;
        assert_eq!(status, 400);

        // Other grant types and unknown clients.
        let (status, body) = token(vec![("grant_type", "password".into())]).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("unsupported_grant_type"))
        );
        let mut unknown = exchange("mcpc_nothing", &verifier);
        unknown[3].1 = "mcc_unknown".into();
        let (status, body) = token(unknown).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );

        // A confidential client must show its secret.
        let registered: Value = register(
            json!({"client_name": "Server app", "redirect_uris": ["https://app.example/cb"]}),
        )
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
        assert_eq!(
            registered["token_endpoint_auth_method"],
            "client_secret_basic"
        );
        assert!(
            registered["client_secret"]
                .as_str()
                .unwrap()
                .starts_with("mcps_")
        );
        let (status, body) = token(vec![
            ("grant_type", "refresh_token".into()),
            ("refresh_token", "mcpr_x".into()),
            (
                "client_id",
                registered["client_id"].as_str().unwrap().into(),
            ),
        ])
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (401, Some("invalid_client"))
        );

        // A token follows its user: a role change applies at once, a deactivation ends it.
        let mut admin_browser = Browser::new(&server);
        admin_browser.log_in(&email, PASSWORD).await;
        let member_email = user_with_password(&server, &mut admin_browser, "manager").await;
        let member_id = owner
            .get(&format!("/org-users?email={member_email}"))
            .await
            .expect(200)
            .items()[0]["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let mut member = Browser::new(&server);
        member.log_in(&member_email, PASSWORD).await;
        let back = query_of(&consent(&mut member, &params("s6"), "allow").await);
        let (_, tokens) = token(exchange(&back["code"], &verifier)).await;
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        let role = async |access: &str| {
            let (_, body) = mcp(&server, access, read_me()).await;
            let me: Value =
                serde_json::from_str(body["result"]["contents"][0]["text"].as_str().unwrap())
                    .unwrap();
            me["user"]["role"].clone()
        };
        assert_eq!(role(&access).await, "manager");
        owner
            .patch(
                &format!("/org-users/{member_id}"),
                json!({"role": "viewer"}),
            )
            .await
            .expect(200);
        assert_eq!(role(&access).await, "viewer");
        owner
            .patch(
                &format!("/org-users/{member_id}"),
                json!({"isActive": false}),
            )
            .await
            .expect(200);
        assert_eq!(mcp(&server, &access, read_me()).await.0, 401);
        let (status, body) = token(refresh(&tokens["refresh_token"])).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );

        // As for API keys, a plan below professional cannot connect an assistant.
        let free_email = format!(
            "free-{}@example.com",
            ulid::Ulid::generate().to_string().to_lowercase()
        );
        server.db.cli(&[
            "bootstrap",
            "--org",
            "Free Org",
            "--email",
            &free_email,
            "--plan",
            "free",
            "--password",
            PASSWORD,
        ]);
        let mut free = Browser::new(&server);
        free.log_in(&free_email, PASSWORD).await;
        let page = free.get(&authorize_path(&params("s7"))).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("does not include connecting assistants"));
        assert!(!page.body.contains("value=\"allow\""), "{}", page.body);
        let mut form = vec![("_csrf", page.csrf()), ("decision", "allow".into())];
        form.extend(params("s7").iter().map(|(k, v)| (*k, v.to_string())));
        let form: Vec<(&str, &str)> = form.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let page = free.post("/oauth/authorize", &form).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
        assert!(page.body.contains("professional or business plan"));
    }

    /// Registers a public client that sends users back to `redirect`: its id.
    async fn register_public(server: &Server, name: &str, redirect: &str) -> String {
        let response = reqwest::Client::new()
            .post(server.url("/oauth/register"))
            .json(&json!({"client_name": name, "redirect_uris": [redirect],
                          "token_endpoint_auth_method": "none"}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let body: Value = response.json().await.unwrap();
        body["client_id"].as_str().unwrap().to_owned()
    }

    /// A token request with this form: its status and JSON.
    async fn token_request(server: &Server, form: &[(&str, &str)]) -> (u16, Value) {
        let response = reqwest::Client::new()
            .post(server.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// An authorization request of `client_id` with state `s`.
    fn request_params<'a>(
        client_id: &'a str,
        redirect: &'a str,
        challenge: &'a str,
    ) -> Vec<(&'a str, &'a str)> {
        vec![
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect),
            ("state", "s"),
            ("code_challenge", challenge),
            ("code_challenge_method", "S256"),
        ]
    }

    /// Consents as `browser`'s user and exchanges the code: the tokens.
    async fn connect(
        server: &Server,
        browser: &mut Browser,
        client_id: &str,
        redirect: &str,
    ) -> Value {
        let (verifier, challenge) = pkce();
        let params = request_params(client_id, redirect, &challenge);
        let back = query_of(&consent(browser, &params, "allow").await);
        let (status, tokens) = token_request(
            server,
            &[
                ("grant_type", "authorization_code"),
                ("code", &back["code"]),
                ("redirect_uri", redirect),
                ("client_id", client_id),
                ("code_verifier", &verifier),
            ],
        )
        .await;
        assert_eq!(status, 200, "{tokens}");
        tokens
    }

    /// A refresh request of a public client.
    fn refresh_form<'a>(client_id: &'a str, tokens: &'a Value) -> [(&'a str, &'a str); 3] {
        [
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", client_id),
        ]
    }

    #[tokio::test]
    async fn authorization_refusals_send_nobody_to_the_client_unasked() {
        let server = Server::start().await;
        let (email, _, _) = bootstrap_with_password(&server.db, "Careful Org");
        let evil = "https://evil.example/cb";
        let client_id = register_public(&server, "Evil", evil).await;
        let (_, challenge) = pkce();
        let good = request_params(&client_id, evil, &challenge);
        let mut bad_type = good.clone();
        bad_type[0].1 = "token";
        let mut no_pkce = good.clone();
        no_pkce.retain(|(k, _)| *k != "code_challenge");

        // A visitor who is not logged in goes to the login page, whatever the request asks.
        let mut visitor = Browser::new(&server);
        for bad in [&bad_type, &no_pkce] {
            let page = visitor.get(&authorize_path(bad)).await;
            assert_eq!(page.status, StatusCode::SEE_OTHER);
            let location = page.location.unwrap();
            assert!(location.starts_with("/login?next="), "{location}");
        }
        // Logged in, the user sees the refusal with a link back, to follow or not.
        let mut browser = Browser::new(&server);
        browser.log_in(&email, PASSWORD).await;
        for (bad, error) in [
            (&bad_type, "unsupported_response_type"),
            (&no_pkce, "invalid_request"),
        ] {
            let page = browser.get(&authorize_path(bad)).await;
            assert_eq!(page.status, StatusCode::BAD_REQUEST, "{}", page.body);
            assert!(page.location.is_none());
            assert!(page.body.contains("Evil cannot connect this way"));
            let back = query_of(&link_to(&page.body, evil));
            assert_eq!(back["error"], error);
            assert_eq!(back["state"], "s");
            assert_eq!(back["iss"], server.url("").as_str());
        }
        // The consent form sent with such a request is answered the same way.
        let csrf = browser.get("/connected-apps").await.csrf();
        let mut form = vec![("_csrf", csrf.as_str()), ("decision", "allow")];
        form.extend_from_slice(&no_pkce);
        let page = browser.post("/oauth/authorize", &form).await;
        assert_eq!(page.status, StatusCode::BAD_REQUEST);
        assert!(page.location.is_none());
    }

    #[tokio::test]
    async fn the_token_endpoint_bounds_forms_and_clients_and_a_refresh_token_serves_once() {
        let server = Server::start().await;
        let (email, _, _) = bootstrap_with_password(&server.db, "Bounded Org");
        let redirect = "http://127.0.0.1:9/cb";
        let client_id = register_public(&server, "Bounded", redirect).await;

        // A form past 16 KiB is refused unread; a repeated parameter among many is found.
        let big = "x".repeat(17 * 1024);
        let (status, body) = token_request(
            &server,
            &[("grant_type", "refresh_token"), ("refresh_token", &big)],
        )
        .await;
        assert_eq!(
            (status, body["error"].as_str()),
            (413, Some("invalid_request")),
            "{body}"
        );
        let mut many: Vec<(String, &str)> = (0..1500).map(|i| (format!("p{i}"), "v")).collect();
        many.push(("p7".into(), "again"));
        let many: Vec<(&str, &str)> = many.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let (status, body) = token_request(&server, &many).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{body}"
        );
        assert_eq!(body["error_description"], "p7 is given more than once");

        // A code of a request that named its redirect URI needs it named again (RFC 6749
        // §4.1.3); a code of one that left the only registered URI implied does not.
        let mut browser = Browser::new(&server);
        browser.log_in(&email, PASSWORD).await;
        let (verifier, challenge) = pkce();
        let params = request_params(&client_id, redirect, &challenge);
        let mut exchange = async |params: &[(&str, &str)]| {
            let back = query_of(&consent(&mut browser, params, "allow").await);
            token_request(
                &server,
                &[
                    ("grant_type", "authorization_code"),
                    ("code", &back["code"]),
                    ("client_id", &client_id),
                    ("code_verifier", &verifier),
                ],
            )
            .await
        };
        let (status, body) = exchange(&params).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_request")),
            "{body}"
        );
        assert!(
            body["error_description"]
                .as_str()
                .unwrap()
                .starts_with("redirect_uri is required")
        );
        let implied: Vec<_> = params
            .iter()
            .copied()
            .filter(|(k, _)| *k != "redirect_uri")
            .collect();
        let (status, first) = exchange(&implied).await;
        assert_eq!(status, 200, "{first}");

        // A refresh ends the access token it replaces at once.
        let old_access = first["access_token"].as_str().unwrap();
        assert_eq!(mcp(&server, old_access, read_me()).await.0, 200);
        let (status, second) = token_request(&server, &refresh_form(&client_id, &first)).await;
        assert_eq!(status, 200, "{second}");
        assert_eq!(mcp(&server, old_access, read_me()).await.0, 401);
        let access = second["access_token"].as_str().unwrap();
        assert_eq!(mcp(&server, access, read_me()).await.0, 200);

        // Refreshes with one token at once: exactly one gets tokens, and the others, a reuse,
        // revoke the grant (the winner's new tokens with it).
        let form = refresh_form(&client_id, &second);
        let (a, b, c, d) = tokio::join!(
            token_request(&server, &form),
            token_request(&server, &form),
            token_request(&server, &form),
            token_request(&server, &form),
        );
        let answers = [a, b, c, d];
        let won: Vec<_> = answers
            .iter()
            .filter(|(status, _)| *status == 200)
            .collect();
        assert_eq!(won.len(), 1, "{answers:?}");
        for (status, body) in answers.iter().filter(|(status, _)| *status != 200) {
            assert_eq!(
                (*status, body["error"].as_str()),
                (400, Some("invalid_grant")),
                "{body}"
            );
        }
        let winner = &won[0].1;
        let winner_access = winner["access_token"].as_str().unwrap();
        assert_eq!(mcp(&server, winner_access, read_me()).await.0, 401);
        assert_eq!(mcp(&server, access, read_me()).await.0, 401);
        let (status, _) = token_request(&server, &refresh_form(&client_id, winner)).await;
        assert_eq!(status, 400);

        // Past 60 token requests a minute, a client is told when to come back.
        let eager = register_public(&server, "Eager", redirect).await;
        let form = [
            ("grant_type", "refresh_token"),
            ("refresh_token", "mcpr_nothing"),
            ("client_id", eager.as_str()),
        ];
        let http = reqwest::Client::new();
        let mut allowed = 0;
        let limited = loop {
            let response = http
                .post(server.url("/oauth/token"))
                .form(&form)
                .send()
                .await
                .unwrap();
            if response.status() == StatusCode::TOO_MANY_REQUESTS {
                break response;
            }
            assert_eq!(response.status(), StatusCode::BAD_REQUEST);
            allowed += 1;
            assert!(allowed < 80, "no 429 after {allowed} token requests");
        };
        assert!(allowed >= 60, "{allowed}");
        let retry: u64 = limited.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(retry >= 1);
        let body: Value = limited.json().await.unwrap();
        assert_eq!(body["error"], "temporarily_unavailable");
        // Another client is not held back.
        let (status, _) = token_request(&server, &refresh_form(&client_id, winner)).await;
        assert_eq!(status, 400);
    }

    /// The revocation forms of a Connected assistants page, in order: their actions.
    fn revoke_actions(body: &str) -> Vec<String> {
        body.match_indices("action=\"/connected-apps/")
            .map(|(at, _)| {
                body[at + "action=\"".len()..]
                    .chars()
                    .take_while(|c| *c != '"')
                    .collect()
            })
            .collect()
    }

    #[tokio::test]
    async fn connected_assistants_are_listed_and_revoked_in_the_web_ui() {
        let server = Server::start().await;
        let (email, _, _) = bootstrap_with_password(&server.db, "Listing Org");
        let redirect = "https://assistant.example/cb";
        let client_id = register_public(&server, "Helper <i>bot</i>", redirect).await;
        let mut owner = Browser::new(&server);
        owner.log_in(&email, PASSWORD).await;
        let member_email = user_with_password(&server, &mut owner, "member").await;
        let mut member = Browser::new(&server);
        member.log_in(&member_email, PASSWORD).await;

        // The consent page says where access is revoked; any role may consent.
        let (_, challenge) = pkce();
        let page = member
            .get(&authorize_path(&request_params(
                &client_id, redirect, &challenge,
            )))
            .await;
        assert!(
            page.body.contains("href=\"/connected-apps\""),
            "{}",
            page.body
        );
        let owners = connect(&server, &mut owner, &client_id, redirect).await;
        let members = connect(&server, &mut member, &client_id, redirect).await;
        let owner_access = owners["access_token"].as_str().unwrap();
        let member_access = members["access_token"].as_str().unwrap();

        // A member sees their own grant; the owner theirs and everyone else's.
        let page = member.get("/connected-apps").await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("Helper &lt;i&gt;bot&lt;/i&gt;"));
        assert!(page.body.contains("assistant.example"));
        assert!(
            page.body.contains("href=\"/connected-apps\""),
            "in the menu"
        );
        assert_eq!(revoke_actions(&page.body).len(), 1, "{}", page.body);
        let member_csrf = page.csrf();
        let page = owner.get("/connected-apps").await;
        assert!(page.body.contains(&member_email));
        let actions = revoke_actions(&page.body);
        assert_eq!(actions.len(), 2, "{}", page.body);
        let (owner_grant, member_grant) = (&actions[0], &actions[1]);
        let owner_csrf = page.csrf();

        // Another user's grant is not the member's to revoke.
        let page = member.post(owner_grant, &[("_csrf", &member_csrf)]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert_eq!(mcp(&server, owner_access, read_me()).await.0, 200);

        // Revoked from the page, the access token is refused at once, the refresh token too.
        let page = owner.post(member_grant, &[("_csrf", &owner_csrf)]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(page.location.as_deref(), Some("/connected-apps"));
        assert_eq!(mcp(&server, member_access, read_me()).await.0, 401);
        let (status, body) = token_request(&server, &refresh_form(&client_id, &members)).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (400, Some("invalid_grant")),
            "{body}"
        );
        let page = member.get("/connected-apps").await;
        assert!(revoke_actions(&page.body).is_empty(), "{}", page.body);
        let page = member.post(owner_grant, &[("_csrf", &member_csrf)]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);

        let page = owner.post(owner_grant, &[("_csrf", &owner_csrf)]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(mcp(&server, owner_access, read_me()).await.0, 401);
        let page = owner.get("/connected-apps").await;
        assert!(revoke_actions(&page.body).is_empty(), "{}", page.body);
    }
}
