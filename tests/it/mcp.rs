//! `/mcp` driven by a client nobody here wrote: the official MCP Python SDK's streamable-HTTP
//! client (`tests/mcp/client.py`, pinned in `tests/mcp/requirements.txt`). It reports what it
//! saw; this test checks that against the REST API.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{Value, json};

use crate::harness::*;

/// Whether python3 with the `mcp` package is here; in CI it must be.
fn python_mcp_ready() -> bool {
    let ready = Command::new("python3")
        .args(["-c", "import mcp.client.streamable_http"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run this test: python3 with `pip install -r tests/mcp/requirements.txt` is missing"
        );
        eprintln!(
            "\n!!! SKIPPED: python3 with the mcp package is missing (pip install -r tests/mcp/requirements.txt) !!!\n"
        );
    }
    ready
}

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!(
        "timix-mcp-{}-{name}",
        ulid::Ulid::generate().to_string().to_lowercase()
    ))
}

/// Runs the Python client with `plan`; what it saw.
async fn drive(plan: Value) -> Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/mcp/client.py");
    let (plan_file, report_file) = (temp_file("plan.json"), temp_file("report.json"));
    std::fs::write(&plan_file, plan.to_string()).unwrap();
    let run = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        tokio::process::Command::new("python3")
            .arg(&script)
            .arg(&plan_file)
            .arg(&report_file)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("the MCP client finished within 2 minutes")
    .unwrap();
    assert!(
        run.status.success(),
        "the MCP client failed:\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report = std::fs::read_to_string(&report_file).unwrap();
    let _ = std::fs::remove_file(plan_file);
    let _ = std::fs::remove_file(report_file);
    serde_json::from_str(&report).unwrap()
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
