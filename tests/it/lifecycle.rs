//! A flow's lifecycle end to end: versions a run keeps across a restart, drafts with warnings,
//! publish and restore, samples captured without runs, dry runs that perform nothing, pinned
//! outputs, replays from any step and on the live version, bulk replay, cancel, backfill that
//! never starts twice, and explain with each reason.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Client, Server, TestDb};
use crate::programs::at;
use crate::receiver::Receiver;

const ENV: [(&str, &str); 4] = [
    ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
    ("TIMIX_FLOW_RETRY_BASE", "100ms"),
    ("TIMIX_RUN_LEASE", "2s"),
    ("TIMIX_RUNS_PER_MINUTE", "0"),
];

/// Creates a flow from `body`; returns its id and, for a webhook flow, its inbound URL.
async fn flow(c: &Client, body: Value) -> (String, String) {
    let flow = c.post("/flows", body).await.expect(201);
    let url = flow.body["trigger"]["webhookUrl"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    (flow.id(), url)
}

fn webhook(steps: Value) -> Value {
    json!({"name": "Lifecycle", "trigger": {"type": "webhook"}, "steps": steps})
}

fn post_to(receiver: &Receiver, body: Value) -> Value {
    json!({"action": "http_request", "input": {"method": "POST", "url": receiver.url, "body": body}})
}

/// Calls an inbound URL; returns the run it started.
async fn call(server: &Server, url: &str, payload: Value) -> String {
    let answer = server.anonymous().post(url, payload).await.expect(202);
    answer.body["runId"]
        .as_str()
        .unwrap_or_else(|| panic!("no run: {}", answer.body))
        .to_owned()
}

/// Every item of a list, following its cursor.
async fn all(c: &Client, path: &str) -> Vec<Value> {
    let mut items = Vec::new();
    let sep = if path.contains('?') { '&' } else { '?' };
    let mut cursor = String::new();
    loop {
        let page = c
            .get(&format!("{path}{sep}pageSize=200&cursor={cursor}"))
            .await
            .expect(200);
        items.extend(page.items());
        match page.body["nextCursor"].as_str() {
            Some(next) if page.body["hasMore"] == true => cursor = next.to_owned(),
            _ => return items,
        }
    }
}

/// Waits until `check` holds of the value `read` gives (at most 60 s).
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

#[tokio::test]
async fn drafts_warn_stay_off_line_and_publish_as_versions_that_can_be_restored() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let live_steps = json!([{"key": "customer", "action": "create_customer",
                             "input": {"name": "{{trigger.name}}"}}]);
    let (id, url) = flow(&c, webhook(live_steps.clone())).await;
    let shown = c.get(&format!("/flows/{id}")).await.expect(200).body;
    assert_eq!(
        (shown["version"].clone(), shown["hasDraft"].clone()),
        (json!(1), json!(false))
    );

    // Listening: an inbound call becomes a sample, not a run.
    let listening = c
        .post(&format!("/flows/{id}/samples/listen"), json!({}))
        .await
        .expect(200);
    assert!(listening.body["listeningUntil"].is_string());
    let answer = server
        .anonymous()
        .post(
            &url,
            json!({"name": "Initech", "email": "ops@initech.test"}),
        )
        .await
        .expect(202);
    assert_eq!(answer.body["sample"], true, "{}", answer.body);
    assert!(answer.body["runId"].is_null());
    assert!(all(&c, &format!("/runs?flowId={id}")).await.is_empty());
    let samples = c
        .get(&format!("/flows/{id}/samples"))
        .await
        .expect(200)
        .items();
    assert_eq!(samples[0]["data"]["name"], "Initech", "{samples:?}");
    assert_eq!(samples[0]["source"], "webhook");
    c.delete(&format!("/flows/{id}/samples/listen"))
        .await
        .expect(204);

    // A draft with a typo is saved with a warning, and is not what runs.
    let typo = json!([{"key": "customer", "action": "create_customer",
                       "input": {"name": "{{trigger.nme}}"}}]);
    let draft = c
        .put(&format!("/flows/{id}/draft"), json!({"steps": typo}))
        .await
        .expect(200)
        .body;
    let warnings = draft["warnings"].to_string();
    assert!(warnings.contains("trigger.nme"), "{draft}");
    assert!(!warnings.contains("trigger.name"), "{draft}");
    let shown = c.get(&format!("/flows/{id}")).await.expect(200).body;
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["hasDraft"], true);
    assert_eq!(shown["steps"][0]["input"], live_steps[0]["input"]);
    let run = c
        .finished_run(&call(&server, &url, json!({"name": "Live one"})).await)
        .await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        (run["flowVersion"].clone(), run["mode"].clone()),
        (json!(1), json!("live"))
    );
    assert_eq!(at(&run, "customer")["output"]["name"], "Live one");

    // A wrong draft is refused with the path of each problem, and the saved draft stays.
    let refused = c
        .put(
            &format!("/flows/{id}/draft"),
            json!({"steps": [{"key": "x", "action": "no_such_action", "input": {}},
                             {"key": "y", "type": "delay", "for": "forever"}]}),
        )
        .await
        .expect_error(422, "validation_failed");
    let fields = refused.error_fields();
    assert!(
        fields.iter().any(|f| f.starts_with("steps[0]")),
        "{fields:?}"
    );
    assert!(
        fields.iter().any(|f| f.starts_with("steps[1]")),
        "{fields:?}"
    );
    let kept = c.get(&format!("/flows/{id}/draft")).await.expect(200).body;
    assert_eq!(kept["steps"][0]["input"], typo[0]["input"]);

    // Fixed and published: the draft becomes version 2.
    let fixed = json!([{"key": "customer", "action": "create_customer",
                        "input": {"name": "{{trigger.name}} Ltd"}}]);
    let draft = c
        .put(&format!("/flows/{id}/draft"), json!({"steps": fixed}))
        .await
        .expect(200)
        .body;
    assert_eq!(draft["warnings"], json!([]), "{draft}");
    let published = c
        .post(&format!("/flows/{id}/draft/publish"), json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(published["version"], 2);
    assert_eq!(published["hasDraft"], false);
    c.get(&format!("/flows/{id}/draft"))
        .await
        .expect_error(404, "not_found");
    let run = c
        .finished_run(&call(&server, &url, json!({"name": "Globex"})).await)
        .await;
    assert_eq!(run["flowVersion"], 2);
    assert_eq!(at(&run, "customer")["output"]["name"], "Globex Ltd");

    // History, and a restore that is itself a new version.
    let versions = c
        .get(&format!("/flows/{id}/versions"))
        .await
        .expect(200)
        .items();
    let numbers: Vec<&Value> = versions.iter().map(|v| &v["version"]).collect();
    assert_eq!(numbers, [&json!(2), &json!(1)], "{versions:?}");
    let first = c
        .get(&format!("/flows/{id}/versions/1"))
        .await
        .expect(200)
        .body;
    assert_eq!(first["steps"][0]["input"], live_steps[0]["input"]);
    let restored = c
        .post(&format!("/flows/{id}/versions/1/restore"), json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(restored["version"], 3);
    assert_eq!(restored["steps"][0]["input"], live_steps[0]["input"]);
    // A change of name only is no new version.
    let renamed = c
        .patch(&format!("/flows/{id}"), json!({"name": "Renamed"}))
        .await
        .expect(200)
        .body;
    assert_eq!(renamed["version"], 3);
    c.get(&format!("/flows/{id}/versions/9"))
        .await
        .expect_error(404, "not_found");

    // A flow created disabled starts nothing until enabled.
    let (off, off_url) = flow(
        &c,
        json!({"name": "Off", "isEnabled": false, "trigger": {"type": "webhook"},
               "steps": [{"key": "s", "type": "set", "values": {"a": 1}}]}),
    )
    .await;
    assert_eq!(
        c.get(&format!("/flows/{off}")).await.expect(200).body["isEnabled"],
        false
    );
    server
        .anonymous()
        .post(&off_url, json!({}))
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn a_run_finishes_on_the_version_it_started_with_across_a_restart() {
    let db = TestDb::new().await;
    let (dir, url) = (db.dir.clone(), db.url.clone());
    let server = Server::start_with(db, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    let steps = |v: &str| {
        let mut send = post_to(&receiver, json!({"version": v}));
        send["key"] = json!("send");
        json!([{"key": "wait", "type": "delay", "for": "3s"}, send])
    };
    let (id, inbound) = flow(&c, webhook(steps("one"))).await;
    for v in ["two", "three"] {
        c.patch(&format!("/flows/{id}"), json!({"steps": steps(v)}))
            .await
            .expect(200);
    }
    let run = call(&server, &inbound, json!({})).await;
    let waiting = eventually(
        "waiting",
        || async { c.get(&format!("/runs/{run}")).await.expect(200).body },
        |r| r["status"] == "waiting",
    )
    .await;
    assert_eq!(waiting["flowVersion"], 3);
    let moved = c
        .patch(&format!("/flows/{id}"), json!({"steps": steps("four")}))
        .await
        .expect(200)
        .body;
    assert_eq!(moved["version"], 4);
    crate::harness::signal(server.pid(), "KILL");
    drop(server);

    let restarted = Server::start_with(TestDb { dir, url }, &ENV).await;
    let c = restarted.as_key(&org.key);
    let done = c.finished_run(&run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    assert_eq!(done["flowVersion"], 3);
    let sent: Vec<Value> = receiver
        .wait_for(1, 10)
        .await
        .iter()
        .map(|r| r.json())
        .collect();
    assert_eq!(sent, [json!({"version": "three"})]);
}

#[tokio::test]
async fn a_dry_run_performs_nothing_and_pinned_outputs_flow_into_later_steps() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    let mut notify = post_to(
        &receiver,
        json!({"customer": "{{steps.find.id}}", "name": "{{trigger.name}}"}),
    );
    notify["key"] = json!("notify");
    let (id, _) = flow(
        &c,
        webhook(json!([
            {"key": "find", "action": "find_customer", "input": {"q": "{{trigger.name}}"}},
            notify,
            {"key": "wait", "type": "delay", "for": "1h"},
            {"key": "create", "action": "create_customer", "input": {"name": "{{trigger.name}}"}}])),
    )
    .await;
    let run = c
        .post(
            &format!("/flows/{id}/test"),
            json!({"record": {"name": "Globex"}, "dryRun": true,
                   "pinned": {"find": {"id": "cus_pinned", "name": "Globex"}}}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        (run["mode"].clone(), run["dryRun"].clone()),
        (json!("test"), json!(true))
    );
    assert_eq!(at(&run, "find")["output"]["id"], "cus_pinned");
    // What would be sent, rendered with the pinned output.
    let would_send = &at(&run, "notify")["input"]["body"];
    assert_eq!(
        *would_send,
        json!({"customer": "cus_pinned", "name": "Globex"}),
        "{run}"
    );
    assert_eq!(at(&run, "wait")["output"]["dryRun"], true);
    assert_eq!(at(&run, "create")["input"]["name"], "Globex");
    // Nothing was performed: no call, no record.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(receiver.received().is_empty());
    assert!(all(&c, "/customers").await.is_empty());
    let tests = all(&c, &format!("/runs?flowId={id}&mode=test")).await;
    assert_eq!(tests.len(), 1);
    assert!(
        all(&c, &format!("/runs?flowId={id}&mode=live"))
            .await
            .is_empty()
    );

    // A real test performs, and is still marked as a test.
    let (plain, _) = flow(
        &c,
        webhook(json!([{"key": "create", "action": "create_customer",
                        "input": {"name": "{{trigger.name}}"}}])),
    )
    .await;
    let queued = c
        .post(
            &format!("/flows/{plain}/test"),
            json!({"record": {"name": "Real"}}),
        )
        .await
        .expect(202)
        .body;
    let done = c.finished_run(queued["id"].as_str().unwrap()).await;
    assert_eq!(
        (done["status"].clone(), done["mode"].clone()),
        (json!("succeeded"), json!("test"))
    );
    assert_eq!(all(&c, "/customers").await.len(), 1);
}

#[tokio::test]
async fn one_step_is_tested_alone_on_the_context_it_is_given() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    let mut send = post_to(
        &receiver,
        json!({"customer": "{{steps.find.id}}", "line": "{{item.name}}", "i": "{{index}}", "by": "{{trigger.by}}"}),
    );
    send["key"] = json!("send");
    let (id, _) = flow(
        &c,
        webhook(json!([
            {"key": "find", "action": "find_customer", "input": {"q": "{{trigger.name}}"}},
            {"key": "each", "type": "forEach", "items": "{{trigger.lines}}", "steps": [send]}])),
    )
    .await;
    let context = json!({"trigger": {"by": "ops"}, "steps": {"find": {"id": "cus_given"}},
                         "item": {"name": "Design"}, "index": 2});
    let dry = c
        .post(
            &format!("/flows/{id}/steps/send/test"),
            json!({"context": context, "dryRun": true}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        (dry["status"].clone(), dry["mode"].clone()),
        (json!("succeeded"), json!("test")),
        "{dry}"
    );
    let body = json!({"customer": "cus_given", "line": "Design", "i": 2, "by": "ops"});
    assert_eq!(at(&dry, "send")["input"]["body"], body, "{dry}");
    assert_eq!(
        dry["steps"].as_array().unwrap().len(),
        1,
        "only the step: {dry}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(receiver.received().is_empty());

    let real = c
        .post(
            &format!("/flows/{id}/steps/send/test"),
            json!({"context": context}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(real["status"], "succeeded", "{real}");
    let sent = receiver.wait_for(1, 10).await;
    assert_eq!(sent[0].json(), body);
    // A step's context is not a whole trigger record: it is not kept as a sample.
    let samples = c.get(&format!("/flows/{id}/samples")).await.expect(200);
    assert!(samples.items().is_empty(), "{}", samples.body);
    c.post(&format!("/flows/{id}/steps/nowhere/test"), json!({}))
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn runs_replay_from_a_middle_step_and_on_the_live_version() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    let steps = |v: &str| {
        let mut first = post_to(&receiver, json!({"step": "first"}));
        first["key"] = json!("first");
        let mut second = post_to(&receiver, json!({"step": "second", "version": v}));
        second["key"] = json!("second");
        json!([first, second])
    };
    let (id, inbound) = flow(&c, webhook(steps("one"))).await;
    let run = call(&server, &inbound, json!({})).await;
    assert_eq!(c.finished_run(&run).await["status"], "succeeded");
    receiver.wait_for(2, 10).await;

    let replayed = c
        .post(&format!("/runs/{run}/replay"), json!({"from": "second"}))
        .await
        .expect(200)
        .body;
    assert_eq!(replayed["status"], "queued");
    let done = c.finished_run(&run).await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let sent: Vec<Value> = receiver
        .wait_for(3, 10)
        .await
        .iter()
        .map(|r| r.json())
        .collect();
    assert_eq!(
        sent[2],
        json!({"step": "second", "version": "one"}),
        "{sent:?}"
    );
    assert_eq!(sent.len(), 3, "the first step kept its output: {sent:?}");

    c.patch(&format!("/flows/{id}"), json!({"steps": steps("two")}))
        .await
        .expect(200);
    c.post(
        &format!("/runs/{run}/replay"),
        json!({"from": "start", "version": "live"}),
    )
    .await
    .expect(200);
    let done = c.finished_run(&run).await;
    assert_eq!(
        (done["status"].clone(), done["flowVersion"].clone()),
        (json!("succeeded"), json!(2))
    );
    let sent: Vec<Value> = receiver
        .wait_for(5, 10)
        .await
        .iter()
        .map(|r| r.json())
        .collect();
    assert_eq!(
        sent[3..],
        [
            json!({"step": "first"}),
            json!({"step": "second", "version": "two"})
        ]
    );

    let refused = c
        .post(&format!("/runs/{run}/replay"), json!({"from": "nowhere"}))
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(refused.error_fields(), ["from"]);
}

#[tokio::test]
async fn a_thousand_failed_runs_replay_in_bulk_on_the_fixed_version() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (id, inbound) = flow(
        &c,
        json!({"name": "Broken", "trigger": {"type": "webhook"},
               "settings": {"disableAfterFailures": 0},
               "steps": [{"key": "halt", "type": "stop", "status": "failed", "message": "broken"}]}),
    )
    .await;
    let mut calls = tokio::task::JoinSet::new();
    for lane in 0..10 {
        let (anonymous, inbound) = (server.anonymous(), inbound.clone());
        calls.spawn(async move {
            for i in 0..100 {
                anonymous
                    .post(&inbound, json!({"n": lane * 100 + i}))
                    .await
                    .expect(202);
            }
        });
    }
    while let Some(done) = calls.join_next().await {
        done.unwrap();
    }
    let failed = format!("/runs?flowId={id}&status=failed");
    eventually(
        "1,000 failed runs",
        || async { json!(all(&c, &failed).await.len()) },
        |n| *n == 1000,
    )
    .await;
    c.patch(
        &format!("/flows/{id}"),
        json!({"steps": [{"key": "ok", "type": "set", "values": {"n": "{{trigger.n}}"}}]}),
    )
    .await
    .expect(200);
    let answer = c
        .post(
            "/runs/replay",
            json!({"flowId": id, "status": "failed", "version": "live"}),
        )
        .await
        .expect(202)
        .body;
    assert_eq!(answer["count"], 1000);
    let succeeded = format!("/runs?flowId={id}&status=succeeded");
    let done = eventually(
        "1,000 replayed runs",
        || async { json!(all(&c, &succeeded).await) },
        |runs| runs.as_array().unwrap().len() == 1000,
    )
    .await;
    assert!(all(&c, &failed).await.is_empty());
    assert!(
        done.as_array()
            .unwrap()
            .iter()
            .all(|r| r["flowVersion"] == 2)
    );
    let mut numbers: Vec<i64> = done
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let n = &at(r, "ok")["output"]["n"];
            n.as_i64().or_else(|| n.as_str()?.parse().ok()).unwrap()
        })
        .collect();
    numbers.sort();
    assert_eq!(numbers, (0..1000).collect::<Vec<_>>());
    // Nothing failed is left to replay.
    let again = c
        .post("/runs/replay", json!({"flowId": id}))
        .await
        .expect(202)
        .body;
    assert_eq!(again["count"], 0);
}

#[tokio::test]
async fn a_waiting_run_is_cancelled_and_never_resumes() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (_, inbound) = flow(
        &c,
        webhook(json!([{"key": "wait", "type": "delay", "for": "2s"},
                       {"key": "create", "action": "create_customer", "input": {"name": "Late"}}])),
    )
    .await;
    let run = call(&server, &inbound, json!({})).await;
    eventually(
        "waiting",
        || async { c.get(&format!("/runs/{run}")).await.expect(200).body },
        |r| r["status"] == "waiting",
    )
    .await;
    let cancelled = c
        .post(&format!("/runs/{run}/cancel"), json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(cancelled["status"], "cancelled", "{cancelled}");
    c.post(&format!("/runs/{run}/cancel"), json!({}))
        .await
        .expect_error(409, "invalid_state");
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(
        c.get(&format!("/runs/{run}")).await.expect(200).body["status"],
        "cancelled"
    );
    assert!(
        all(&c, "/customers").await.is_empty(),
        "the step after the delay never ran"
    );
}

#[tokio::test]
async fn backfill_starts_each_missed_event_once() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (id, _) = flow(
        &c,
        json!({"name": "Welcome", "isEnabled": false,
               "trigger": {"type": "event", "event": "customer.created"},
               "steps": [{"key": "hello", "type": "set", "values": {"name": "{{trigger.name}}"}}]}),
    )
    .await;
    let began = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    for i in 0..150 {
        c.customer(&format!("Before {i}")).await;
    }
    c.post(&format!("/flows/{id}/enable"), json!({}))
        .await
        .expect(200);
    for i in 0..50 {
        c.customer(&format!("After {i}")).await;
    }
    let runs_path = format!("/runs?flowId={id}");
    eventually(
        "50 live runs",
        || async { json!(all(&c, &runs_path).await.len()) },
        |n| *n == 50,
    )
    .await;

    let dry = c
        .post(
            &format!("/flows/{id}/backfill"),
            json!({"from": 0, "dryRun": true}),
        )
        .await
        .expect(200)
        .body;
    let events = dry["events"].as_array().unwrap();
    assert_eq!(events.len(), 200, "{dry}");
    assert_eq!(dry["count"], 150);
    let duplicates = events.iter().filter(|e| e["reason"] == "duplicate").count();
    assert_eq!(duplicates, 50);
    assert!(
        events
            .iter()
            .filter(|e| e["wouldStart"] == true)
            .all(|e| e["reason"].is_null())
    );
    assert_eq!(
        all(&c, &runs_path).await.len(),
        50,
        "a dry run starts nothing"
    );
    // By time as by position: from an instant, and up to one before anything happened.
    let by_time = c
        .post(
            &format!("/flows/{id}/backfill"),
            json!({"from": began, "dryRun": true}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(
        (
            by_time["events"].as_array().unwrap().len(),
            by_time["count"].clone()
        ),
        (200, json!(150))
    );
    let none = c
        .post(
            &format!("/flows/{id}/backfill"),
            json!({"from": "2020-01-01T00:00:00Z", "to": began, "dryRun": true}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(none["events"], json!([]), "{none}");

    let real = c
        .post(&format!("/flows/{id}/backfill"), json!({"from": 0}))
        .await
        .expect(200)
        .body;
    assert_eq!(real["count"], 150);
    let runs = eventually(
        "200 finished runs",
        || async { json!(all(&c, &format!("{runs_path}&status=succeeded")).await) },
        |runs| runs.as_array().unwrap().len() == 200,
    )
    .await;
    let mut events: Vec<String> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            at(r, "hello")["output"]["name"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    events.sort();
    events.dedup();
    assert_eq!(events.len(), 200, "each customer once");
    let again = c
        .post(&format!("/flows/{id}/backfill"), json!({"from": 0}))
        .await
        .expect(200)
        .body;
    assert_eq!(again["count"], 0);
    assert_eq!(all(&c, &runs_path).await.len(), 200);
    // Runs are found by the event that started them.
    let event = real["events"][0]["eventId"].as_str().unwrap();
    let by_event = all(&c, &format!("{runs_path}&eventId={event}")).await;
    assert_eq!(by_event.len(), 1);

    c.post(
        &format!("/flows/{id}/backfill"),
        json!({"from": "yesterday"}),
    )
    .await
    .expect_error(422, "validation_failed");
}

/// The explanation of `flow` for `event`, once the dispatcher has seen it.
async fn explain(c: &Client, flow: &str, event: &str) -> Value {
    eventually(
        "explained",
        || async {
            c.get(&format!("/flows/{flow}/explain?eventId={event}"))
                .await
                .expect(200)
                .body
        },
        |e| e["reason"] != "pending",
    )
    .await
}

/// The ids of `kind` events, oldest first.
async fn events_of(c: &Client, kind: &str) -> Vec<String> {
    c.get(&format!("/events?types={kind}&limit=200"))
        .await
        .expect(200)
        .items()
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn explain_says_why_a_flow_did_or_did_not_start() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let set = json!([{"key": "s", "type": "set", "values": {"a": 1}}]);
    let (euro, _) = flow(
        &c,
        json!({"name": "EUR only", "trigger": {"type": "event", "event": "customer.created",
               "condition": {"left": "{{trigger.currency}}", "op": "equals", "right": "EUR"}},
               "steps": set}),
    )
    .await;
    let (off, _) = flow(
        &c,
        json!({"name": "Off", "isEnabled": false,
               "trigger": {"type": "event", "event": "customer.created"}, "steps": set}),
    )
    .await;
    let (copy, _) = flow(
        &c,
        json!({"name": "Copy", "trigger": {"type": "event", "event": "customer.created",
               "filters": {"currency": "USD"}},
               "steps": [{"key": "c", "action": "create_customer",
                          "input": {"name": "{{trigger.name}} copy", "currency": "USD"}}]}),
    )
    .await;
    let (slow, _) = flow(
        &c,
        json!({"name": "Budgeted", "trigger": {"type": "event", "event": "project.created"},
               "settings": {"maxRunsPerMinute": 1}, "steps": set}),
    )
    .await;
    let acme = c
        .post("/customers", json!({"name": "Acme", "currency": "USD"}))
        .await
        .expect(201)
        .id();
    for name in ["One", "Two", "Three"] {
        c.project(&acme, name).await;
    }
    let customers = events_of(&c, "customer.created").await;
    let projects = events_of(&c, "project.created").await;
    let created = &customers[0];

    let why = explain(&c, &euro, created).await;
    assert_eq!(
        (why["started"].clone(), why["reason"].clone()),
        (json!(false), json!("condition_false")),
        "{why}"
    );
    let leaf = &why["evaluated"]["condition"][0];
    assert_eq!(
        (
            leaf["left"].clone(),
            leaf["right"].clone(),
            leaf["result"].clone()
        ),
        (json!("USD"), json!("EUR"), json!(false)),
        "{why}"
    );
    assert_eq!(explain(&c, &off, created).await["reason"], "not_enabled");
    assert_eq!(
        explain(&c, &euro, &projects[0]).await["reason"],
        "other_type"
    );

    let started = explain(&c, &copy, created).await;
    assert_eq!(started["started"], true, "{started}");
    assert!(started["reason"].is_null());
    let run = c.finished_run(started["runId"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded");
    let customers = eventually(
        "the copy's event",
        || async { json!(events_of(&c, "customer.created").await) },
        |ids| ids.as_array().unwrap().len() == 2,
    )
    .await;
    let own = explain(&c, &copy, customers[1].as_str().unwrap()).await;
    assert_eq!(own["reason"], "own_change", "{own}");

    let held = eventually(
        "held by the budget",
        || async {
            let path = format!("/flows/{slow}/explain?eventId={}", projects[2]);
            c.get(&path).await.expect(200).body
        },
        |e| e["reason"] == "rate_limited",
    )
    .await;
    assert_eq!(
        (held["started"].clone(), held["reason"].clone()),
        (json!(true), json!("rate_limited")),
        "{held}"
    );
    assert!(held["runId"].is_string());

    c.get(&format!("/flows/{euro}/explain?eventId=evt_nothing"))
        .await
        .expect_error(404, "not_found");
    c.get(&format!("/flows/{euro}/explain"))
        .await
        .expect_error(400, "invalid_parameter");
}

#[tokio::test]
async fn explain_names_the_chain_and_fanout_limits() {
    let server = Server::start_with(TestDb::new().await, &[("TIMIX_FANOUT_LIMIT", "20")]).await;
    // Two flows that start each other stop at the chain's depth limit.
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (to_project, _) = flow(
        &c,
        json!({"name": "Ping", "trigger": {"type": "event", "event": "customer.created"},
               "steps": [{"key": "p", "action": "create_project",
                          "input": {"customerId": "{{trigger.id}}", "name": "From {{trigger.name}}"}}]}),
    )
    .await;
    let (to_customer, _) = flow(
        &c,
        json!({"name": "Pong", "trigger": {"type": "event", "event": "project.created"},
               "steps": [{"key": "c", "action": "create_customer", "input": {"name": "Of {{trigger.name}}"}}]}),
    )
    .await;
    c.customer("Root").await;
    let reasons = |c: Client, kind: &'static str, flow: String| async move {
        let mut reasons = Vec::new();
        for event in events_of(&c, kind).await {
            reasons.push(explain(&c, &flow, &event).await["reason"].clone());
        }
        reasons
    };
    let settled = eventually(
        "the chain's end",
        || async {
            let mut all = reasons(c.clone(), "customer.created", to_project.clone()).await;
            all.extend(reasons(c.clone(), "project.created", to_customer.clone()).await);
            json!(all)
        },
        |all| all.as_array().unwrap().contains(&json!("chain_limit")),
    )
    .await;
    assert!(
        settled
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| !r.is_null())
            .all(|r| r == "chain_limit"),
        "{settled}"
    );

    // Four flows that each copy every new customer exhaust the chain's run budget first.
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let mut copies = Vec::new();
    for i in 0..4 {
        let (id, _) = flow(
            &c,
            json!({"name": format!("Copy {i}"), "trigger": {"type": "event", "event": "customer.created"},
                   "steps": [{"key": "c", "action": "create_customer",
                              "input": {"name": format!("{{{{trigger.name}}}}/{i}")}}]}),
        )
        .await;
        copies.push(id);
    }
    c.customer("Root").await;
    let settled = eventually(
        "the budget's end",
        || async { json!(reasons(c.clone(), "customer.created", copies[0].clone()).await) },
        |all| all.as_array().unwrap().contains(&json!("fanout_limit")),
    )
    .await;
    let named: Vec<&Value> = settled
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| !r.is_null())
        .collect();
    assert!(
        named
            .iter()
            .all(|r| ["fanout_limit", "chain_limit", "own_change"].contains(&r.as_str().unwrap())),
        "{settled}"
    );
}

#[tokio::test]
async fn stalled_triggers_are_flagged_on_the_flow_and_in_metrics() {
    let env = [
        ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
        ("TIMIX_METRICS_TOKEN", "lifecycle-metrics"),
    ];
    let server = Server::start_with(TestDb::new().await, &env).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let set = json!([{"key": "s", "type": "set", "values": {"a": 1}}]);

    // An event flow that ran shows when; one that never ran shows nothing, and neither stalls.
    let (ran, _) = flow(
        &c,
        json!({"name": "Ran", "trigger": {"type": "event", "event": "customer.created"}, "steps": set}),
    )
    .await;
    let (idle, _) = flow(
        &c,
        json!({"name": "Idle", "trigger": {"type": "event", "event": "project.created"}, "steps": set}),
    )
    .await;
    c.customer("Acme").await;
    let shown = eventually(
        "lastTriggeredAt",
        || async { c.get(&format!("/flows/{ran}")).await.expect(200).body },
        |f| f["lastTriggeredAt"].is_string(),
    )
    .await;
    assert!(shown["stalled"].is_null(), "{shown}");
    let idle = c.get(&format!("/flows/{idle}")).await.expect(200).body;
    assert!(
        idle["lastTriggeredAt"].is_null() && idle["stalled"].is_null(),
        "{idle}"
    );

    // A poll whose source keeps failing.
    let source = Receiver::start().await;
    source.answer_always(500);
    let connection = c
        .post(
            "/connections",
            json!({"name": "CRM", "type": "api_key", "baseUrl": source.url,
                   "settings": {"header": "Authorization", "prefix": "Token "},
                   "credentials": {"apiKey": "s3cret"}}),
        )
        .await
        .expect(201)
        .id();
    let (polling, _) = flow(
        &c,
        json!({"name": "CRM contacts", "steps": set,
               "trigger": {"type": "poll", "connectionId": connection, "schedule": "* * * * * *",
                           "source": {"url": "/contacts", "items": "contacts", "id": "id"}}}),
    )
    .await;
    // A schedule that has had no process to fire it for ten minutes.
    let (scheduled, _) = flow(
        &c,
        json!({"name": "Every minute", "steps": set,
               "trigger": {"type": "schedule", "schedule": "0 * * * * *"}}),
    )
    .await;
    crate::harness::execute(
        &server.db,
        &format!("UPDATE flows SET enabled_at = enabled_at - 600000 WHERE id = '{scheduled}'"),
    )
    .await;
    crate::harness::execute(
        &server.db,
        &format!("UPDATE flow_versions SET created_at = created_at - 600000 WHERE flow_id = '{scheduled}'"),
    )
    .await;
    let missed = c.get(&format!("/flows/{scheduled}")).await.expect(200).body;
    assert_eq!(missed["stalled"]["reason"], "missed_fire", "{missed}");
    assert!(missed["stalled"]["since"].is_string());

    let failing = eventually(
        "the poll flagged",
        || async { c.get(&format!("/flows/{polling}")).await.expect(200).body },
        |f| f["stalled"]["reason"] == "poll_failing",
    )
    .await;
    assert!(
        failing["stalled"]["message"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{failing}"
    );
    let listed = all(&c, "/flows").await;
    let flagged: Vec<&Value> = listed
        .iter()
        .filter(|f| !f["stalled"].is_null())
        .map(|f| &f["id"])
        .collect();
    assert_eq!(flagged.len(), 2, "{listed:?}");

    let metrics = server.metrics("lifecycle-metrics").await;
    assert!(
        metrics.lines().any(|l| l == "timix_flows_stalled 2"),
        "{metrics}"
    );
    for (id, reason) in [(&polling, "poll_failing"), (&scheduled, "missed_fire")] {
        let line = format!("timix_flow_stalled{{flow_id=\"{id}\",reason=\"{reason}\"}} 1");
        assert!(metrics.lines().any(|l| l == line), "{line} in {metrics}");
    }

    // A new schedule counts from when it was set.
    let changed = c
        .patch(
            &format!("/flows/{scheduled}"),
            json!({"trigger": {"type": "schedule", "schedule": "30 * * * * *"}}),
        )
        .await
        .expect(200)
        .body;
    assert!(changed["stalled"].is_null(), "{changed}");
    // Disabled, a flow is not watched.
    c.post(&format!("/flows/{scheduled}/disable"), json!({}))
        .await
        .expect(200);
    assert!(c.get(&format!("/flows/{scheduled}")).await.expect(200).body["stalled"].is_null());
}

#[tokio::test]
async fn a_poll_flow_fetches_samples_from_its_source_without_runs() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let connection = c
        .post(
            "/connections",
            json!({"name": "Ourselves", "type": "api_key", "baseUrl": server.url(crate::harness::BASE),
                   "credentials": {"apiKey": org.key}}),
        )
        .await
        .expect(201)
        .id();
    for name in ["Old 1", "Old 2", "Old 3", "Old 4", "Old 5"] {
        c.customer(name).await;
    }
    let (id, _) = flow(
        &c,
        json!({"name": "New customers", "isEnabled": false,
               "trigger": {"type": "poll", "connectionId": connection, "source": "new_customer",
                           "schedule": "0 0 * * * *"},
               "steps": [{"key": "s", "type": "set", "values": {"name": "{{trigger.name}}"}}]}),
    )
    .await;
    let fetched = c
        .post(&format!("/flows/{id}/samples/fetch"), json!({}))
        .await
        .expect(200)
        .items();
    let names: Vec<&str> = fetched
        .iter()
        .map(|s| s["data"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["Old 5", "Old 4", "Old 3"],
        "newest first: {fetched:?}"
    );
    assert!(fetched.iter().all(|s| s["source"] == "poll"));
    assert!(
        all(&c, &format!("/runs?flowId={id}")).await.is_empty(),
        "a fetch starts no run"
    );
    // Drafts are checked against what the source really gives.
    let draft = c
        .put(
            &format!("/flows/{id}/draft"),
            json!({"steps": [{"key": "s", "type": "set", "values": {"name": "{{trigger.nmae}}", "id": "{{trigger.id}}"}}]}),
        )
        .await
        .expect(200)
        .body;
    let warned: Vec<&str> = draft["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["message"].as_str().unwrap())
        .collect();
    assert_eq!(warned.len(), 1, "{draft}");
    assert!(warned[0].contains("trigger.nmae"), "{draft}");

    // A source that fails says why; a webhook flow has no source to fetch from.
    let broken = Receiver::start().await;
    broken.answer_always(500);
    let bad = c
        .post(
            "/connections",
            json!({"name": "Down", "type": "api_key", "baseUrl": broken.url, "credentials": {"apiKey": "k"}}),
        )
        .await
        .expect(201)
        .id();
    c.patch(
        &format!("/flows/{id}"),
        json!({"trigger": {"type": "poll", "connectionId": bad, "schedule": "0 0 * * * *",
                           "source": {"url": "/contacts", "items": "contacts", "id": "id"}}}),
    )
    .await
    .expect(200);
    let failed = c
        .post(&format!("/flows/{id}/samples/fetch"), json!({}))
        .await
        .expect_error(409, "source_failed");
    assert!(
        failed.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{}",
        failed.body
    );
    let (hook, _) = flow(
        &c,
        webhook(json!([{"key": "s", "type": "set", "values": {"a": 1}}])),
    )
    .await;
    c.post(&format!("/flows/{hook}/samples/fetch"), json!({}))
        .await
        .expect_error(409, "invalid_state");
}

#[tokio::test]
async fn bad_input_and_other_organizations_get_clear_errors() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let set = json!([{"key": "s", "type": "set", "values": {"a": 1}}]);
    let (hook, url) = flow(&c, webhook(set.clone())).await;
    let (event, _) = flow(
        &c,
        json!({"name": "On customers", "trigger": {"type": "event", "event": "customer.created"}, "steps": set}),
    )
    .await;
    let run = c.finished_run(&call(&server, &url, json!({})).await).await;
    let run = run["id"].as_str().unwrap();

    let cases: Vec<(&str, String, Value, u16, &str)> = vec![
        (
            "PUT",
            format!("/flows/{hook}/draft"),
            json!({"steps": "nope"}),
            422,
            "validation_failed",
        ),
        (
            "PUT",
            format!("/flows/{hook}/draft"),
            json!({"isEnabled": false}),
            422,
            "validation_failed",
        ),
        (
            "PUT",
            format!("/flows/{hook}/draft"),
            json!({"color": 1}),
            422,
            "validation_failed",
        ),
        (
            "POST",
            format!("/flows/{hook}/draft/publish"),
            json!({}),
            404,
            "not_found",
        ),
        (
            "GET",
            format!("/flows/{hook}/versions/abc"),
            json!(null),
            404,
            "not_found",
        ),
        (
            "POST",
            format!("/flows/{hook}/versions/0/restore"),
            json!({}),
            404,
            "not_found",
        ),
        (
            "POST",
            format!("/flows/{hook}/test"),
            json!({"pinned": []}),
            422,
            "validation_failed",
        ),
        (
            "POST",
            format!("/flows/{hook}/test"),
            json!({"draft": true}),
            404,
            "not_found",
        ),
        (
            "POST",
            format!("/flows/{hook}/steps/s/test"),
            json!({"context": {"steps": 3}}),
            422,
            "validation_failed",
        ),
        (
            "POST",
            format!("/flows/{hook}/steps/s/test"),
            json!({"context": {"color": 1}}),
            422,
            "validation_failed",
        ),
        (
            "POST",
            format!("/flows/{event}/samples/listen"),
            json!({}),
            409,
            "invalid_state",
        ),
        (
            "GET",
            format!("/flows/{event}/explain?eventId=evt_x&extra=1"),
            json!(null),
            400,
            "invalid_parameter",
        ),
        (
            "POST",
            format!("/flows/{event}/backfill"),
            json!({}),
            422,
            "validation_failed",
        ),
        (
            "POST",
            format!("/flows/{event}/backfill"),
            json!({"from": "-5"}),
            422,
            "validation_failed",
        ),
        (
            "POST",
            format!("/flows/{event}/backfill"),
            json!({"from": 0, "to": true}),
            422,
            "validation_failed",
        ),
        (
            "POST",
            format!("/flows/{hook}/backfill"),
            json!({"from": 0}),
            422,
            "validation_failed",
        ),
        (
            "POST",
            format!("/runs/{run}/replay"),
            json!({"version": "newest"}),
            422,
            "validation_failed",
        ),
        (
            "POST",
            format!("/runs/{run}/replay"),
            json!({"from": 7}),
            422,
            "validation_failed",
        ),
        (
            "POST",
            format!("/runs/{run}/cancel"),
            json!({}),
            409,
            "invalid_state",
        ),
        (
            "POST",
            "/runs/replay".to_owned(),
            json!({}),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/runs/replay".to_owned(),
            json!({"flowId": hook, "status": "running"}),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/runs/replay".to_owned(),
            json!({"flowId": hook, "createdFrom": "soon"}),
            422,
            "validation_failed",
        ),
        (
            "POST",
            "/runs/replay".to_owned(),
            json!({"flowId": hook, "ids": []}),
            422,
            "validation_failed",
        ),
        (
            "GET",
            format!("/runs?flowId={hook}&createdFrom=soon"),
            json!(null),
            400,
            "invalid_parameter",
        ),
    ];
    for (method, path, body, status, code) in &cases {
        let answer = match *method {
            "GET" => c.get(path).await,
            "PUT" => c.put(path, body.clone()).await,
            _ => c.post(path, body.clone()).await,
        };
        assert_eq!(
            answer.status, *status,
            "{method} {path} {body}: {}",
            answer.body
        );
        answer.expect_error(*status, code);
    }

    // Another organization sees none of it.
    let other = server.db.bootstrap("business");
    let o = server.as_key(&other.key);
    for path in [
        format!("/flows/{hook}/versions"),
        format!("/flows/{hook}/versions/1"),
        format!("/flows/{hook}/samples"),
        format!("/flows/{event}/explain?eventId=evt_x"),
    ] {
        o.get(&path).await.expect_error(404, "not_found");
    }
    for path in [
        format!("/flows/{hook}/samples/listen"),
        format!("/flows/{hook}/test"),
        format!("/flows/{hook}/steps/s/test"),
        format!("/flows/{hook}/versions/1/restore"),
        format!("/flows/{event}/backfill"),
        format!("/runs/{run}/replay"),
        format!("/runs/{run}/cancel"),
    ] {
        let body = if path.ends_with("backfill") {
            json!({"from": 0})
        } else {
            json!({})
        };
        o.post(&path, body).await.expect_error(404, "not_found");
    }
    o.put(&format!("/flows/{hook}/draft"), json!({"steps": set}))
        .await
        .expect_error(404, "not_found");
    let foreign = o.post("/runs/replay", json!({"flowId": hook})).await;
    foreign.expect_error(404, "not_found");
}
