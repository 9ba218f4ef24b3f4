//! Flows as programs end to end: filters, branches, switches, loops, find-or-create, `set`,
//! delays that outlive the process, error branches and `onError: continue`, stops, event
//! conditions on what changed, `run.failed` error flows and flows disabled after failing in a
//! row; and definitions refused with the path of every problem.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Client, Server, TestDb};
use crate::receiver::Receiver;

const ENV: [(&str, &str); 3] = [
    ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
    ("TIMIX_FLOW_RETRY_BASE", "100ms"),
    ("TIMIX_RUN_LEASE", "2s"),
];

/// Creates a webhook flow with `steps` (and `extra` fields); returns its id and inbound URL.
async fn webhook_flow(c: &Client, steps: Value, extra: Value) -> (String, String) {
    let mut body = json!({"name": "Program", "trigger": {"type": "webhook"}, "steps": steps});
    for (k, v) in extra.as_object().into_iter().flatten() {
        body[k] = v.clone();
    }
    let flow = c.post("/flows", body).await.expect(201);
    let url = flow.body["trigger"]["webhookUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    (flow.id(), url)
}

/// Calls an inbound URL with `payload`; returns the run it started.
async fn call(server: &Server, url: &str, payload: Value) -> String {
    let answer = server.anonymous().post(url, payload).await.expect(202);
    answer.body["runId"].as_str().unwrap().to_owned()
}

/// The record of `run` at `path`.
pub(crate) fn at<'r>(run: &'r Value, path: &str) -> &'r Value {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["path"] == path)
        .unwrap_or_else(|| panic!("no record at {path}: {run}"))
}

fn paths(run: &Value) -> Vec<String> {
    run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["path"].as_str().unwrap().to_owned())
        .collect()
}

/// Waits until `run` has `status` (at most 30 s).
async fn wait_status(c: &Client, run: &str, status: &str) -> Value {
    let started = Instant::now();
    loop {
        let body = c.get(&format!("/runs/{run}")).await.expect(200).body;
        if body["status"] == status {
            return body;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "never {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn every_node_kind_runs_and_is_recorded_by_path() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    let steps = json!([
        {"key": "only_eur", "type": "filter",
         "condition": {"left": "{{trigger.currency}}", "op": "equals", "right": "EUR"}},
        {"key": "customer", "action": "find_customer", "input": {"q": "{{trigger.name}}"},
         "orCreate": {"action": "create_customer", "input": {"name": "{{trigger.name}}"}}},
        {"key": "size", "type": "if",
         "condition": {"left": "{{trigger.total}}", "op": "gt", "right": "1000"},
         "then": [{"key": "big", "type": "set", "values": {"tier": "big"}}],
         "else": [{"key": "small", "type": "set", "values": {"tier": "small"}}]},
        {"key": "project", "action": "create_project",
         "input": {"customerId": "{{steps.customer.id}}", "name": "Onboarding {{trigger.name}}"}},
        {"key": "each", "type": "forEach", "items": "{{trigger.lines}}", "steps": [
            {"key": "task", "action": "create_task",
             "input": {"projectId": "{{steps.project.id}}", "name": "{{item.name}} #{{index}}"}}]},
        {"key": "route", "type": "switch", "mode": "all", "cases": [
            {"name": "large", "condition": {"left": "{{trigger.total}}", "op": "gte", "right": 1000},
             "steps": [{"key": "notify", "action": "http_request",
                        "input": {"method": "POST", "url": receiver.url,
                                  "body": {"last": "{{steps.each.items.[2].task.name}}", "first": "{{steps.each.items.[0].task.name}}"}}}]},
            {"name": "euro", "condition": {"left": "{{trigger.currency}}", "op": "in", "right": ["EUR", "CHF"]},
             "steps": [{"key": "mark", "type": "set", "values": {"seen": true}}]},
            {"name": "never", "condition": {"left": "{{trigger.name}}", "op": "matches", "right": "^zz"},
             "steps": [{"key": "unused", "type": "set", "values": {"x": 1}}]}],
         "default": [{"key": "fallback", "type": "set", "values": {"x": 1}}]},
    ]);
    let (flow, url) = webhook_flow(&c, steps.clone(), json!({})).await;
    // Stored as written.
    let shown = c.get(&format!("/flows/{flow}")).await.expect(200);
    assert_eq!(shown.body["steps"][2]["type"], "if");
    assert_eq!(shown.body["steps"][4]["items"], "{{trigger.lines}}");

    let payload = json!({"currency": "EUR", "total": "1500.50", "name": "Initech",
                         "lines": [{"name": "Design"}, {"name": "Build"}, {"name": "Test"}]});
    let run = c
        .finished_run(&call(&server, &url, payload.clone()).await)
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        paths(&run),
        [
            "only_eur",
            "customer",
            "customer.orCreate",
            "size",
            "size.then.big",
            "project",
            "each",
            "each[0].task",
            "each[1].task",
            "each[2].task",
            "route",
            "route.large.notify",
            "route.euro.mark",
        ],
        "{run}"
    );
    assert_eq!(at(&run, "customer")["output"]["created"], true);
    assert_eq!(at(&run, "customer")["output"]["name"], "Initech");
    assert_eq!(at(&run, "size")["output"]["result"], true);
    assert_eq!(at(&run, "size")["output"]["branch"], "then");
    assert_eq!(at(&run, "size")["type"], "if");
    assert_eq!(at(&run, "each[1].task")["output"]["name"], "Build #1");
    assert_eq!(
        at(&run, "each")["output"]["items"][2]["task"]["name"],
        "Test #2"
    );
    assert_eq!(
        at(&run, "route")["output"]["matched"],
        json!(["large", "euro"])
    );
    let sent = receiver.wait_for(1, 10).await;
    assert_eq!(
        sent[0].json(),
        json!({"last": "Test #2", "first": "Design #0"})
    );
    assert_eq!(run["source"]["kind"], "webhook");

    // Again for the same name: found this time, nothing created; the else branch and default.
    let payload = json!({"currency": "CHF", "total": 999, "name": "Initech", "lines": []});
    let filtered = c.finished_run(&call(&server, &url, payload).await).await;
    assert_eq!(filtered["status"], "filtered", "CHF is not EUR: {filtered}");
    assert_eq!(paths(&filtered), ["only_eur"]);
    assert_eq!(at(&filtered, "only_eur")["output"]["result"], false);

    let payload = json!({"currency": "EUR", "total": 999.99, "name": "Initech", "lines": []});
    let run = c.finished_run(&call(&server, &url, payload).await).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(at(&run, "customer")["output"]["created"], false);
    assert!(paths(&run).contains(&"size.else.small".to_owned()), "{run}");
    assert_eq!(at(&run, "each")["output"]["items"], json!([]));
    assert_eq!(at(&run, "route")["output"]["matched"], json!(["euro"]));
    let customers = c.get("/customers?q=Initech").await.expect(200).items();
    assert_eq!(
        customers.len(),
        1,
        "found the second time, not created again"
    );
}

#[tokio::test]
async fn errors_continue_take_their_branch_or_stop_the_run() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    let bad_project = |on_error: Value| {
        json!({"key": "project", "action": "create_project",
               "input": {"customerId": "cus_missing", "name": "x"}, "onError": on_error})
    };
    // continue: the step is recorded as failed-and-continued; later steps see its error.
    let (_, url) = webhook_flow(
        &c,
        json!([bad_project(json!("continue")),
               {"key": "after", "type": "set", "values": {"code": "{{steps.project.error.code}}"}}]),
        json!({}),
    )
    .await;
    let run = c.finished_run(&call(&server, &url, json!({})).await).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(at(&run, "project")["status"], "continued");
    assert_eq!(at(&run, "project")["error"]["status"], 422);
    assert_eq!(at(&run, "after")["output"]["code"], "validation_failed");

    // An error branch runs instead of the rest of its block; the run goes on after the block.
    let (_, url) = webhook_flow(
        &c,
        json!([
            {"key": "wrap", "type": "if", "condition": {"left": "1", "op": "equals", "right": 1},
             "then": [
                bad_project(json!({"steps": [{"key": "alert", "action": "http_request",
                    "input": {"method": "POST", "url": receiver.url, "body": {"failed": "{{steps.project.error.message}}"}}}]})),
                {"key": "skipped", "type": "set", "values": {"x": 1}}]},
            {"key": "done", "type": "set", "values": {"x": 2}}]),
        json!({}),
    )
    .await;
    let run = c.finished_run(&call(&server, &url, json!({})).await).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        paths(&run),
        [
            "wrap",
            "wrap.then.project",
            "wrap.then.project.onError.alert",
            "done"
        ]
    );
    let alert = receiver.wait_for(1, 10).await;
    assert!(
        !alert[0].json()["failed"].as_str().unwrap().is_empty(),
        "{:?}",
        alert[0].json()
    );

    // Without onError the run fails; a stop ends it as it says.
    let (flow, url) = webhook_flow(
        &c,
        json!([{"key": "gate", "type": "if", "condition": {"left": "{{trigger.ok}}", "op": "equals", "right": true},
                "then": [{"key": "fine", "type": "stop", "status": "succeeded"}],
                "else": [{"key": "no", "type": "stop", "status": "failed", "message": "not ok: {{trigger.why}}"}]},
               {"key": "never", "type": "set", "values": {"x": 1}}]),
        json!({}),
    )
    .await;
    let run = c
        .finished_run(&call(&server, &url, json!({"ok": true})).await)
        .await;
    assert_eq!(run["status"], "succeeded");
    assert_eq!(paths(&run), ["gate", "gate.then.fine"]);
    let run = c
        .finished_run(&call(&server, &url, json!({"ok": false, "why": "late"})).await)
        .await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["error"], "not ok: late");
    let shown = c.get(&format!("/flows/{flow}")).await.expect(200);
    assert_eq!(shown.body["lastError"], "not ok: late");
}

#[tokio::test]
async fn a_delay_waits_without_a_worker_and_wakes_after_a_restart() {
    let db = TestDb::new().await;
    let (dir, url) = (db.dir.clone(), db.url.clone());
    let server = Server::start_with(db, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (_, inbound) = webhook_flow(
        &c,
        json!([{"key": "wait", "type": "delay", "for": "3s"},
               {"key": "customer", "action": "create_customer", "input": {"name": "After the wait"}}]),
        json!({}),
    )
    .await;
    let run = call(&server, &inbound, json!({})).await;
    let waiting = wait_status(&c, &run, "waiting").await;
    assert!(waiting["nextAttemptAt"].is_string(), "{waiting}");
    assert_eq!(at(&waiting, "wait")["status"], "pending");
    crate::harness::signal(server.pid(), "KILL");
    drop(server);

    let restarted = Server::start_with(TestDb { dir, url }, &ENV).await;
    let c = restarted.as_key(&org.key);
    let done = c.finished_run(&run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(at(&done, "wait")["status"], "succeeded");
    assert_eq!(at(&done, "customer")["output"]["name"], "After the wait");
    let until = at(&done, "wait")["output"]["until"]
        .as_str()
        .unwrap()
        .to_owned();
    let created = at(&done, "customer")["finishedAt"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        created >= until,
        "the step ran after the delay: {until} {created}"
    );
}

#[tokio::test]
async fn a_run_whose_owner_is_deactivated_while_it_waits_fails_when_it_wakes() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (admin_id, admin) = c.user_with_key(&server.db, "admin").await;
    let (_, inbound) = webhook_flow(
        &admin,
        json!([{"key": "wait", "type": "delay", "for": "2s"},
               {"key": "customer", "action": "create_customer", "input": {"name": "Acting for nobody"}}]),
        json!({}),
    )
    .await;
    let run = call(&server, &inbound, json!({})).await;
    wait_status(&c, &run, "waiting").await;
    c.patch(
        &format!("/org-users/{admin_id}"),
        json!({"isActive": false}),
    )
    .await
    .expect(200);

    // The worker that wakes the run reads who its steps act as again, and nobody does.
    let done = c.finished_run(&run).await;
    assert_eq!(done["status"], "failed", "{done}");
    assert!(
        done["error"].as_str().unwrap().contains("deactivated"),
        "{done}"
    );
    let customers = c.get("/customers?limit=100").await.expect(200);
    assert!(
        customers
            .items()
            .iter()
            .all(|customer| customer["name"] != "Acting for nobody"),
        "no step acted for the deactivated owner"
    );
}

#[tokio::test]
async fn a_long_loop_resumes_at_the_unfinished_item_after_a_kill() {
    let db = TestDb::new().await;
    let (dir, url) = (db.dir.clone(), db.url.clone());
    let server = Server::start_with(db, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    receiver.slow(Duration::from_millis(5));
    let (_, inbound) = webhook_flow(
        &c,
        json!([{"key": "each", "type": "forEach", "items": "{{trigger.items}}", "steps": [
            {"key": "send", "action": "http_request",
             "input": {"method": "POST", "url": receiver.url, "body": {"i": "{{index}}"}}}]}]),
        json!({}),
    )
    .await;
    let items: Vec<Value> = (0..500).map(|i| json!({"n": i})).collect();
    let run = call(&server, &inbound, json!({"items": items})).await;
    receiver.wait_for(100, 30).await;
    crate::harness::signal(server.pid(), "KILL");
    drop(server);
    let before = receiver.received().len();
    assert!(before < 500, "killed part way");

    let restarted = Server::start_with(TestDb { dir, url }, &ENV).await;
    let c = restarted.as_key(&org.key);
    let done = c.finished_run(&run).await;
    assert_eq!(done["status"], "succeeded", "{}", done["error"]);
    let sent: Vec<i64> = receiver
        .received()
        .iter()
        .map(|r| r.json()["i"].as_i64().unwrap())
        .collect();
    let mut distinct = sent.clone();
    distinct.sort();
    distinct.dedup();
    assert_eq!(
        distinct,
        (0..500).collect::<Vec<_>>(),
        "every item once at least"
    );
    // Only the item in flight at the kill may have been sent twice: the loop did not start over.
    assert!(
        sent.len() <= 501,
        "{} calls for 500 items ({before} before the kill)",
        sent.len()
    );
    assert_eq!(
        at(&done, "each")["output"]["items"]
            .as_array()
            .unwrap()
            .len(),
        500
    );
    assert_eq!(at(&done, "each[499].send")["status"], "succeeded");
}

#[tokio::test]
async fn failed_runs_are_events_that_start_error_flows_and_disable_the_flow() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    let (failing, url) = webhook_flow(
        &c,
        json!([{"key": "project", "action": "create_project", "input": {"customerId": "cus_missing", "name": "x"}}]),
        json!({"settings": {"disableAfterFailures": 3}}),
    )
    .await;
    let shown = c.get(&format!("/flows/{failing}")).await.expect(200);
    assert_eq!(shown.body["settings"]["disableAfterFailures"], 3);
    // The error flow: any failed run of the failing flow goes to the team's channel.
    c.post("/flows", json!({
        "name": "Alert on failures",
        "trigger": {"type": "event", "event": "run.failed",
                    "condition": {"left": "{{trigger.flowId}}", "op": "equals", "right": failing}},
        "steps": [{"key": "alert", "action": "http_request", "input": {"method": "POST", "url": receiver.url,
                   "body": {"flow": "{{trigger.flowId}}", "step": "{{trigger.failedStep.path}}", "error": "{{trigger.error}}"}}}]
    }))
    .await
    .expect(201);
    // Followed successes are logged too.
    c.post(
        "/flows",
        json!({
            "name": "Count successes",
            "trigger": {"type": "event", "event": "run.succeeded"},
            "steps": [{"key": "seen", "type": "set", "values": {"run": "{{trigger.runId}}"}}]
        }),
    )
    .await
    .expect(201);
    for _ in 0..3 {
        let run = call(&server, &url, json!({})).await;
        assert_eq!(c.finished_run(&run).await["status"], "failed");
    }
    let alerts = receiver.wait_for(3, 20).await;
    assert_eq!(alerts[0].json()["flow"], failing.as_str());
    assert_eq!(alerts[0].json()["step"], "project");
    assert!(
        alerts[0].json()["error"]
            .as_str()
            .unwrap()
            .contains("customerId")
    );
    let started = Instant::now();
    let flow = loop {
        let flow = c.get(&format!("/flows/{failing}")).await.expect(200).body;
        if flow["isEnabled"] == false {
            break flow;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "still enabled: {flow}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        flow["lastError"]
            .as_str()
            .unwrap()
            .contains("3 failed runs in a row"),
        "{flow}"
    );
    let events = c.get("/events?types=run.failed").await.expect(200).items();
    assert_eq!(events.len(), 3);
    assert_eq!(events[0]["data"]["failedStep"]["error"]["status"], 422);
    let disabled = c
        .get("/events?types=flow.disabled")
        .await
        .expect(200)
        .items();
    assert_eq!(disabled.len(), 1);
    assert_eq!(disabled[0]["resourceId"], failing.as_str());
    // The error flow's own runs succeeded: announced too (a flow follows them), and they
    // started nothing.
    let started = Instant::now();
    while c.get("/events?types=run.succeeded").await.items().len() < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "run.succeeded never logged"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        receiver.received().len(),
        3,
        "a flow is never started by its own runs"
    );
    // Disabled: its URL no longer starts runs.
    server.anonymous().post(&url, json!({})).await.expect(404);
}

#[tokio::test]
async fn event_conditions_see_what_changed() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let flow = c
        .post("/flows", json!({
            "name": "Renamed from Old",
            "trigger": {"type": "event", "event": "customer.updated", "condition": {"all": [
                {"left": "{{event.changedFields}}", "op": "contains", "right": "name"},
                {"left": "{{event.previous.name}}", "op": "equals", "right": "Old"}]}},
            "steps": [{"key": "p", "action": "create_project", "input": {"customerId": "{{trigger.id}}", "name": "Renamed"}}]
        }))
        .await
        .expect(201)
        .id();
    let customer = c.customer("Old").await;
    c.patch(
        &format!("/customers/{customer}"),
        json!({"notes": "no rename"}),
    )
    .await
    .expect(200);
    c.patch(&format!("/customers/{customer}"), json!({"name": "New"}))
        .await
        .expect(200);
    c.patch(&format!("/customers/{customer}"), json!({"name": "Newer"}))
        .await
        .expect(200);
    let started = Instant::now();
    while c
        .get(&format!("/runs?flowId={flow}"))
        .await
        .items()
        .is_empty()
    {
        assert!(started.elapsed() < Duration::from_secs(20), "no run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let runs = c.get(&format!("/runs?flowId={flow}")).await.items();
    assert_eq!(runs.len(), 1, "only the rename from Old: {runs:?}");
    let run = c.finished_run(runs[0]["id"].as_str().unwrap()).await;
    assert_eq!(run["trigger"]["name"], "New");
    assert_eq!(run["source"]["kind"], "event");
}

#[tokio::test]
async fn wrong_programs_are_refused_with_every_path_and_plain_flows_stay_as_they_were() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let wrong = c
        .post("/flows", json!({
            "name": "Wrong",
            "trigger": {"type": "event", "event": "customer.created",
                        "condition": {"left": "{{trigger.name}}", "op": "looksLike", "right": "x"}},
            "steps": [
                {"key": "check", "type": "if", "condition": {"left": "{{trigger.name}}", "op": "matches", "right": "(a"},
                 "then": [{"key": "p", "action": "create_project", "input": {"customerId": "{{trigger.id}}"}}]},
                {"key": "find", "action": "create_customer", "input": {"name": "x"},
                 "orCreate": {"action": "create_customer", "input": {"name": "x"}}},
                {"key": "wait", "type": "delay", "for": "45d"},
                {"key": "each", "type": "forEach", "items": "{{trigger.lines}}", "steps": [
                    {"key": "t", "action": "nope", "input": {}}]},
                {"key": "p", "type": "set", "values": {"x": 1}},
            ],
            "settings": {"timezone": "Mars/Olympus", "maxConcurrency": 0}
        }))
        .await
        .expect_error(422, "validation_failed");
    let fields = wrong.error_fields();
    for expected in [
        "trigger.condition.op",
        "steps[0].condition.right",
        "steps[0].then[0].input.name",
        "steps[1].orCreate",
        "steps[2].for",
        "steps[3].steps[0].action",
        "steps[4].key",
        "settings.timezone",
        "settings.maxConcurrency",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} not in {fields:?}"
        );
    }
    // A plain flow is stored and shown exactly as before.
    let steps = json!([{"key": "project", "action": "create_project", "connectionId": null,
                        "input": {"customerId": "{{trigger.id}}", "name": "Onboarding"}}]);
    let flow = c
        .post("/flows", json!({"name": "Plain", "trigger": {"type": "event", "event": "customer.created"}, "steps": steps}))
        .await
        .expect(201);
    assert_eq!(flow.body["steps"], steps);
    assert_eq!(flow.body["settings"]["disableAfterFailures"], 20);
}

#[tokio::test]
async fn blocks_nest_an_if_in_a_loop_in_a_switch() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (_, url) = webhook_flow(
        &c,
        json!([{"key": "route", "type": "switch", "cases": [
            {"name": "none", "condition": {"left": "{{trigger.amounts}}", "op": "isEmpty"},
             "steps": [{"key": "nothing", "type": "stop", "status": "succeeded"}]},
            {"name": "some", "condition": {"left": "{{trigger.amounts}}", "op": "isNotEmpty"},
             "steps": [{"key": "each", "type": "forEach", "items": "{{trigger.amounts}}", "steps": [
                {"key": "check", "type": "if", "condition": {"left": "{{item}}", "op": "gt", "right": 4},
                 "then": [{"key": "customer", "action": "create_customer", "input": {"name": "Big {{item}}"}}],
                 "else": [{"key": "small", "type": "set", "values": {"amount": "{{item}}"}}]}]}]}]}]),
        json!({}),
    )
    .await;
    let run = c
        .finished_run(&call(&server, &url, json!({"amounts": [1, 5, 10]})).await)
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        paths(&run),
        [
            "route",
            "route.some.each",
            "route.some.each[0].check",
            "route.some.each[0].check.else.small",
            "route.some.each[1].check",
            "route.some.each[1].check.then.customer",
            "route.some.each[2].check",
            "route.some.each[2].check.then.customer",
        ]
    );
    assert_eq!(at(&run, "route")["output"]["matched"], json!(["some"]));
    let items = &at(&run, "route.some.each")["output"]["items"];
    assert_eq!(items[0]["small"]["amount"], 1);
    assert_eq!(items[2]["customer"]["name"], "Big 10");
    assert_eq!(c.get("/customers?q=Big").await.items().len(), 2);
}

#[tokio::test]
async fn a_failed_loop_replays_from_its_failed_item() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    // The second call is refused for good; every other call succeeds.
    receiver.script(vec![(200, vec![]), (400, vec![])]);
    let (_, url) = webhook_flow(
        &c,
        json!([{"key": "each", "type": "forEach", "items": "{{trigger.items}}", "steps": [
            {"key": "send", "action": "http_request",
             "input": {"method": "POST", "url": receiver.url, "body": {"i": "{{index}}"}}}]}]),
        json!({}),
    )
    .await;
    let run = call(&server, &url, json!({"items": ["a", "b", "c"]})).await;
    let failed = c.finished_run(&run).await;
    assert_eq!(failed["status"], "failed", "{failed}");
    assert_eq!(at(&failed, "each[1].send")["status"], "failed");
    assert_eq!(at(&failed, "each")["status"], "pending");
    c.post(&format!("/runs/{run}/replay"), json!({}))
        .await
        .expect(200);
    let replayed = c.finished_run(&run).await;
    assert_eq!(replayed["status"], "succeeded", "{replayed}");
    let sent: Vec<i64> = receiver
        .received()
        .iter()
        .map(|r| r.json()["i"].as_i64().unwrap())
        .collect();
    assert_eq!(sent, [0, 1, 1, 2], "the finished item is not sent again");
    assert_eq!(
        at(&replayed, "each")["output"]["items"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}
