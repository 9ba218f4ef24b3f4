//! A flow's lifecycle in the web UI: drafts, dry-run and real tests, publish, versions with a
//! diff and restore, webhook samples by listening, the run page's tree of nodes with replay
//! from any step, the flows list's health, and "why didn't it fire?". The journey runs in
//! headless Chromium (`tests/ui/ui_lifecycle.mjs`); the pages' forms are also checked over
//! plain HTTP, where no browser is needed.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Client, Script, Server, TestDb, backend, kept_dir};
use crate::ui::{Browser, PASSWORD, bootstrap_with_password};

const ENV: [(&str, &str); 3] = [
    ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
    ("TIMIX_FLOW_RETRY_BASE", "100ms"),
    ("TIMIX_RUNS_PER_MINUTE", "0"),
];

/// Waits until `check` holds of what `read` gives (at most 60 s).
async fn eventually<F, Fut>(what: &str, mut read: F, check: impl Fn(&Value) -> bool) -> Value
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Value>,
{
    let started = Instant::now();
    loop {
        let value = read().await;
        if check(&value) {
            return value;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never {what}: {value}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn flow(api: &Client, body: Value) -> Value {
    api.post("/flows", body).await.expect(201).body
}

/// A webhook flow's run, started by a call and finished.
async fn run_of_call(server: &Server, api: &Client, flow: &Value, payload: Value) -> Value {
    let url = flow["trigger"]["webhookUrl"].as_str().unwrap();
    let answer = server.anonymous().post(url, payload).await.expect(202);
    let run = answer.body["runId"].as_str().unwrap().to_owned();
    eventually(
        "finished",
        || async { api.get(&format!("/runs/{run}")).await.expect(200).body },
        |r| matches!(r["status"].as_str(), Some("succeeded" | "failed")),
    )
    .await
}

/// The flows the journey works on; returns the node script's environment.
async fn seed(server: &Server, api: &Client) -> Vec<(&'static str, String)> {
    let hook = flow(
        api,
        json!({"name": "Hook → customer", "trigger": {"type": "webhook"},
               "steps": [{"key": "customer", "action": "create_customer", "input": {"name": "{{trigger.name}}"}}]}),
    )
    .await;
    let tree = flow(
        api,
        json!({"name": "Tree", "trigger": {"type": "webhook"}, "steps": [
            {"key": "first", "type": "set", "values": {"x": "1"}},
            {"key": "check", "type": "if", "condition": {"left": "{{trigger.n}}", "op": "gt", "right": "1"},
             "then": [{"key": "inner", "type": "set", "values": {"y": "2"}}]},
            {"key": "last", "type": "set", "values": {"z": "3"}}]}),
    )
    .await;
    let failing = flow(
        api,
        json!({"name": "Failing", "trigger": {"type": "webhook"},
               "steps": [{"key": "project", "action": "create_project",
                          "input": {"customerId": "cus_01NOSUCHCUSTOMER0000000000", "name": "x"}}]}),
    )
    .await;
    let failed = run_of_call(server, api, &failing, json!({})).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    let explained = flow(
        api,
        json!({"name": "VIP customers", "trigger": {"type": "event", "event": "customer.created",
               "condition": {"left": "{{trigger.name}}", "op": "startsWith", "right": "VIP"}},
               "steps": [{"key": "s", "type": "set", "values": {"a": "1"}}]}),
    )
    .await;
    let customer = api.customer("Plain Ltd").await;
    let events = api
        .get("/events?types=customer.created&limit=1000")
        .await
        .expect(200)
        .items();
    let event = events
        .iter()
        .find(|e| e["resourceId"] == customer.as_str())
        .expect("the customer's event")["id"]
        .as_str()
        .unwrap()
        .to_owned();
    // A schedule that stopped firing: ten minutes without a process to fire it.
    let nightly = flow(
        api,
        json!({"name": "Nightly", "trigger": {"type": "schedule", "schedule": "0 * * * * *"},
               "steps": [{"key": "s", "type": "set", "values": {"a": 1}}]}),
    )
    .await;
    let nightly = nightly["id"].as_str().unwrap();
    crate::harness::execute(
        &server.db,
        &format!("UPDATE flows SET enabled_at = enabled_at - 600000 WHERE id = '{nightly}'"),
    )
    .await;
    crate::harness::execute(
        &server.db,
        &format!(
            "UPDATE flow_versions SET created_at = created_at - 600000 WHERE flow_id = '{nightly}'"
        ),
    )
    .await;
    let id = |f: &Value| f["id"].as_str().unwrap().to_owned();
    vec![
        ("HOOK_FLOW", id(&hook)),
        ("TREE_FLOW", id(&tree)),
        ("FAILING_FLOW", id(&failing)),
        ("EXPLAIN_FLOW", id(&explained)),
        ("EXPLAIN_EVENT", event),
    ]
}

#[tokio::test]
async fn in_chromium_a_flow_is_drafted_tested_published_restored_replayed_and_explained() {
    let out = kept_dir(&format!("ui-lifecycle-screenshots/{}", backend()));
    let Some(script) = Script::browser("ui_lifecycle.mjs", &out).ready() else {
        return;
    };
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme Ltd");
    let api = server.as_key(&key);
    let seeded = seed(&server, &api).await;
    let report = script
        .env("BASE", server.url(""))
        .env("EMAIL", &email)
        .env("PASSWORD", PASSWORD)
        .env("API_KEY", &key)
        .envs(seeded)
        .run()
        .await;
    assert!(report["failure"].is_null(), "{report:#}");
    assert_eq!(report["consoleErrors"], json!([]), "{report:#}");

    // The flow page's lifecycle bar.
    let bar = report["bar"].to_string();
    for button in [
        "Save as draft",
        "Test (dry run)",
        "Test for real",
        "Versions",
        "Listen for a sample",
    ] {
        assert!(bar.contains(button), "{bar}");
    }
    // Each lifecycle page passes axe-core and fits a phone's width.
    for seen in report["pages"].as_array().unwrap() {
        assert_eq!(seen["violations"], json!([]), "{seen:#}");
        assert_eq!(seen["sideways"], false, "{seen:#}");
    }
    assert_eq!(report["pages"].as_array().unwrap().len(), 20);

    // Listening: the call became a sample, shown on the page, and started no run.
    let notice = report["listenNotice"].as_str().unwrap();
    assert!(notice.starts_with("Listening until"), "{notice}");
    assert_eq!(report["sampleCall"]["body"]["sample"], true, "{report:#}");
    assert!(
        report["samples"][0].as_str().unwrap().contains("Initech"),
        "{report:#}"
    );

    // The draft: saved, not live, its change shown as a diff.
    assert!(
        report["draft"]["notice"]
            .as_str()
            .unwrap()
            .starts_with("Draft saved"),
        "{report:#}"
    );
    let added = report["draft"]["added"].to_string();
    assert!(added.contains("{{trigger.name}} Ltd"), "{report:#}");
    assert_eq!(report["draftLive"]["version"], 1);
    assert_eq!(report["draftLive"]["hasDraft"], true);
    assert_eq!(
        report["draftLive"]["steps"][0]["input"]["name"],
        "{{trigger.name}}"
    );

    // The dry run: the draft's input rendered on the captured sample, nothing performed.
    let dry = &report["dryRun"];
    assert!(
        dry["notice"]
            .as_str()
            .unwrap()
            .starts_with("Dry run of the draft"),
        "{dry}"
    );
    assert_eq!(dry["badge"], "succeeded", "{dry}");
    assert!(
        dry["banner"]
            .as_str()
            .unwrap()
            .contains("nothing was performed")
    );
    assert!(
        dry["startedBy"].as_str().unwrap().contains("dry run"),
        "{dry}"
    );
    assert!(dry["inputs"].to_string().contains("Initech Ltd"), "{dry}");
    let run = api
        .get(&format!("/runs/{}", dry["runId"].as_str().unwrap()))
        .await
        .expect(200)
        .body;
    assert_eq!(
        (run["mode"].clone(), run["dryRun"].clone()),
        (json!("test"), json!(true))
    );
    let customers = api.get("/customers?limit=100").await.expect(200).items();
    assert!(
        !customers
            .iter()
            .any(|c| c["name"].as_str().unwrap().starts_with("Initech")),
        "a dry run performs nothing: {customers:?}"
    );

    // The runs list tells the dry run from live runs.
    assert_eq!(
        report["runsList"],
        json!(["succeeded dry run"]),
        "{report:#}"
    );

    // The flow page edits the draft, says so, and offers one Publish.
    let on_page = &report["draftOnFlowPage"];
    let note = on_page["note"].as_str().unwrap();
    assert!(
        note.starts_with("Editing the draft saved at 20")
            && note.contains("; the live version is 1."),
        "{on_page}"
    );
    assert_eq!(on_page["name"], "{{trigger.name}} Ltd");
    assert_eq!(on_page["publishButtons"], json!(["Publish"]));
    // Published: the draft is version 2; the flow stays enabled, as it was.
    assert_eq!(
        report["published"]["notice"],
        "Published: version 2 is live."
    );
    assert_eq!(report["published"]["flow"]["isEnabled"], true);
    assert_eq!(report["published"]["flow"]["hasDraft"], false);
    assert_eq!(
        report["published"]["flow"]["steps"][0]["input"]["name"],
        "{{trigger.name}} Ltd"
    );

    // Versions: two listed; version 1 against the live one; restored as version 3.
    assert_eq!(report["versionRows"], 2);
    assert_eq!(
        report["versionDiff"]["heading"],
        "Changes from version 2 to version 1"
    );
    assert!(
        report["versionDiff"]["removed"]
            .to_string()
            .contains("{{trigger.name}} Ltd"),
        "{report:#}"
    );
    assert_eq!(
        report["restored"]["notice"],
        "Version 1 restored as version 3, which is live now."
    );
    assert_eq!(report["restored"]["flow"]["version"], 3);
    assert_eq!(
        report["restored"]["flow"]["steps"][0]["input"]["name"],
        "{{trigger.name}}"
    );

    // The run's tree: three nodes at the top, the branch's step under its `if`.
    let tree = &report["tree"];
    let top: Vec<String> = tree["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| {
            t.as_str()
                .unwrap()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert_eq!(
        top,
        ["1 first · set", "2 check · if", "4 last · set"],
        "{tree}"
    );
    let nested = tree["nested"].to_string();
    assert!(nested.contains("3 then: inner"), "{tree}");
    assert_eq!(tree["startedBy"], "An inbound webhook call");

    // Replayed from the middle: the first step kept its record, the rest ran again.
    assert!(
        report["replayNotice"]
            .as_str()
            .unwrap()
            .starts_with("Replayed from check"),
        "{report:#}"
    );
    let (before, after) = (&report["runBefore"], &report["runAfter"]);
    assert_eq!(after["status"], "succeeded", "{after}");
    let step = |run: &Value, path: &str| {
        run["steps"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["path"] == path)
            .cloned()
            .unwrap_or_else(|| panic!("no {path} in {run}"))
    };
    assert_eq!(
        step(before, "first")["finishedAt"],
        step(after, "first")["finishedAt"]
    );
    assert_ne!(
        step(before, "last")["finishedAt"],
        step(after, "last")["finishedAt"]
    );

    // The flows list: last triggered, failure rates, the schedule that is not firing.
    let rows = report["flowsList"].as_array().unwrap();
    let row = |name: &str| {
        rows.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no {name} in {rows:?}"))
    };
    assert!(
        row("Failing")["failureRate"]
            .as_str()
            .unwrap()
            .starts_with("100%")
    );
    assert!(
        row("Tree")["failureRate"]
            .as_str()
            .unwrap()
            .starts_with("0%")
    );
    assert_ne!(row("Tree")["lastTriggered"], "never");
    assert_eq!(row("VIP customers")["lastTriggered"], "never");
    assert_eq!(row("Nightly")["notFiring"], true);
    assert_eq!(row("Tree")["notFiring"], false);

    // Why didn't it fire? in plain words, with what was compared.
    let words = report["explain"]["words"].as_str().unwrap();
    assert!(
        words.starts_with(
            "It did not fire because the trigger's filters or condition did not match"
        ),
        "{words}"
    );
    let compared = report["explain"]["compared"].to_string();
    assert!(
        compared.contains("Plain Ltd") && compared.contains("VIP"),
        "{compared}"
    );

    // A new webhook flow: created disabled, its URL shown before anything is enabled.
    let early = &report["earlyUrl"];
    assert!(early["error"].is_null(), "{early}");
    assert!(
        early["url"].as_str().unwrap().contains("/hooks/in/"),
        "{early}"
    );
    assert!(
        early["disabledNote"]
            .as_str()
            .unwrap()
            .starts_with("The flow is disabled"),
        "{early}"
    );
    assert_eq!(early["callStatus"], 202, "{early}");
    assert!(
        early["samples"][0].as_str().unwrap().contains("Umbrella"),
        "{early}"
    );
    let flows = api.get("/flows?limit=100").await.expect(200).items();
    let leads = flows
        .iter()
        .find(|f| f["name"] == "Inbound leads")
        .expect("the new flow");
    assert_eq!(leads["isEnabled"], false);
}

/// The lifecycle's forms over plain HTTP: refusals come back with their reason, replays take
/// only what the API allows, and the pages of another organization's flow are not found.
#[tokio::test]
async fn lifecycle_pages_refuse_what_the_api_refuses() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme");
    let api = server.as_key(&key);
    let hook = flow(
        &api,
        json!({"name": "Hook", "trigger": {"type": "webhook"},
               "steps": [{"key": "s", "type": "set", "values": {"a": "1"}}]}),
    )
    .await;
    let id = hook["id"].as_str().unwrap();
    let mut browser = Browser::new(&server);
    browser.log_in(&email, PASSWORD).await;
    let page = browser.get(&format!("/flows/{id}/versions")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let csrf = page.csrf();

    // A draft that the API refuses is listed with each problem's path, nothing saved.
    let refused = browser
        .post(
            &format!("/flows/{id}/draft"),
            &[
                ("_csrf", &csrf),
                ("name", "Hook"),
                ("trigger", "webhook"),
                (
                    "steps.json",
                    "[{\"key\": \"x\", \"action\": \"no_such_action\", \"input\": {}}]",
                ),
            ],
        )
        .await;
    assert_eq!(
        refused.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        refused.body
    );
    assert!(
        refused.body.contains("The draft was not saved"),
        "{}",
        refused.body
    );
    assert!(refused.body.contains("steps[0]"), "{}", refused.body);
    api.get(&format!("/flows/{id}/draft"))
        .await
        .expect_error(404, "not_found");
    // Publishing without a draft goes back with the API's reason.
    let publish = browser
        .post(&format!("/flows/{id}/draft/publish"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(publish.status, StatusCode::NOT_FOUND, "{}", publish.body);

    // A test for real performs the steps, as a test run.
    let real = browser
        .post(
            &format!("/flows/{id}/tests"),
            &[("_csrf", &csrf), ("mode", "real")],
        )
        .await;
    assert_eq!(real.status, StatusCode::SEE_OTHER, "{}", real.body);
    let to = real.location.unwrap();
    assert!(to.starts_with("/runs/run_"), "{to}");
    let tested = eventually(
        "finished",
        || async { api.get(&to).await.expect(200).body },
        |r| matches!(r["status"].as_str(), Some("succeeded" | "failed")),
    )
    .await;
    assert_eq!(
        (
            tested["status"].clone(),
            tested["mode"].clone(),
            tested["dryRun"].clone()
        ),
        (json!("succeeded"), json!("test"), json!(false))
    );

    // A replay from a path the run does not have is refused with the reason.
    let run = run_of_call(&server, &api, &hook, json!({})).await;
    let run_id = run["id"].as_str().unwrap();
    let replay = browser
        .post(
            &format!("/runs/{run_id}/replay"),
            &[("_csrf", &csrf), ("from", "nowhere")],
        )
        .await;
    assert_eq!(replay.status, StatusCode::SEE_OTHER, "{}", replay.body);
    let back = browser.get(&format!("/runs/{run_id}")).await;
    assert!(
        back.body.contains("has no step at nowhere"),
        "{}",
        back.body
    );
    // Without the session's token nothing is replayed.
    let forged = browser
        .post(&format!("/runs/{run_id}/replay"), &[("from", "start")])
        .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);

    // Explain for an event that does not exist says so.
    let missing = browser
        .get(&format!("/flows/{id}/explain?eventId=evt_nothing"))
        .await;
    assert_eq!(missing.status, StatusCode::SEE_OTHER);

    // Another organization's flow has no lifecycle pages here.
    let (_, other_key, _) = bootstrap_with_password(&server.db, "Other");
    let theirs = flow(
        &server.as_key(&other_key),
        json!({"name": "Theirs", "trigger": {"type": "webhook"},
               "steps": [{"key": "s", "type": "set", "values": {"a": "1"}}]}),
    )
    .await;
    let theirs = theirs["id"].as_str().unwrap();
    for path in ["versions", "draft", "samples", "explain", "versions/1"] {
        let page = browser.get(&format!("/flows/{theirs}/{path}")).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{path}: {}", page.body);
    }
}

/// The flow page over plain HTTP: a flow with a draft is edited as the draft, with one Publish
/// (in the draft's banner); publishing makes the draft the live version and leaves enabling to
/// the toggle (a disabled flow stays disabled); discarding shows the live version again.
#[tokio::test]
async fn the_flow_page_edits_the_draft_and_publishing_leaves_enabling_alone() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme");
    let api = server.as_key(&key);
    let definition = |name: &str| {
        json!({"name": "Off", "trigger": {"type": "webhook"},
               "steps": [{"key": "customer", "action": "create_customer", "input": {"name": name}}]})
    };
    let mut body = definition("Live name");
    body["isEnabled"] = json!(false);
    let off = flow(&api, body).await;
    let id = off["id"].as_str().unwrap();
    api.put(&format!("/flows/{id}/draft"), definition("Draft name"))
        .await
        .expect(200);
    let mut browser = Browser::new(&server);
    browser.log_in(&email, PASSWORD).await;

    // The builder shows the draft, says so, and has one publish: the banner's.
    let page = browser.get(&format!("/flows/{id}")).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(
        page.body.contains("Editing the draft saved at 20"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("the live version is 1."),
        "{}",
        page.body
    );
    assert!(page.body.contains("value=\"Draft name\""), "{}", page.body);
    assert!(!page.body.contains("value=\"Live name\""), "{}", page.body);
    assert!(
        page.body.contains(">Discard draft</button>"),
        "{}",
        page.body
    );
    assert_eq!(
        page.body.matches("/draft/publish\"").count(),
        1,
        "{}",
        page.body
    );
    assert!(!page.body.contains("Publish draft"), "{}", page.body);
    let csrf = page.csrf();

    // Discarded: the live version is back in the form.
    let discarded = browser
        .post(&format!("/flows/{id}/draft/discard"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(
        discarded.location.as_deref(),
        Some(format!("/flows/{id}").as_str())
    );
    let page = browser.get(&format!("/flows/{id}")).await;
    assert!(page.body.contains("Draft discarded"), "{}", page.body);
    assert!(page.body.contains("value=\"Live name\""), "{}", page.body);
    assert!(!page.body.contains("draft-banner"), "{}", page.body);

    // Published: the draft is the live version 2, and the disabled flow is still disabled.
    api.put(&format!("/flows/{id}/draft"), definition("Draft name"))
        .await
        .expect(200);
    let published = browser
        .post(&format!("/flows/{id}/draft/publish"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(
        published.status,
        StatusCode::SEE_OTHER,
        "{}",
        published.body
    );
    let page = browser.get(&format!("/flows/{id}")).await;
    assert!(
        page.body.contains(
            "Published: version 2 is the flow. It is disabled: Enable starts its trigger."
        ),
        "{}",
        page.body
    );
    let live = api.get(&format!("/flows/{id}")).await.expect(200).body;
    assert_eq!(
        (
            live["version"].clone(),
            live["isEnabled"].clone(),
            live["hasDraft"].clone()
        ),
        (json!(2), json!(false), json!(false))
    );
    assert_eq!(live["steps"][0]["input"]["name"], "Draft name");
    // The old route of a second publish that also enabled the flow is gone.
    let old = browser
        .post(&format!("/flows/{id}/publish"), &[("_csrf", &csrf)])
        .await;
    assert_eq!(old.status, StatusCode::NOT_FOUND, "{}", old.body);
}
