//! Flows end to end: refused when wrong (with the path of the field), event-triggered chains,
//! inbound webhooks, retries of flaky targets, permanent failures and replays.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Client, Server, TestDb, hmac_hex};
use crate::receiver::Receiver;

/// A server that may call loopback targets, with quick retries.
async fn server() -> Server {
    Server::start_with(
        TestDb::new().await,
        &[
            ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
            ("TIMIX_FLOW_RETRY_BASE", "100ms"),
        ],
    )
    .await
}

/// Waits until a run is finished and returns it.
pub(crate) async fn finished_run(c: &Client, id: &str) -> Value {
    c.finished_run(id).await
}

/// Waits for the first run of a flow and returns it once finished.
async fn run_of(c: &Client, flow: &str) -> Value {
    let started = Instant::now();
    loop {
        let runs = c.get(&format!("/runs?flowId={flow}")).await.expect(200);
        if let Some(run) = runs.items().last() {
            return finished_run(c, run["id"].as_str().unwrap()).await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no run of {flow} started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_wrong_flow_is_refused_with_the_path_of_each_field() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let cases = [
        (
            json!({"name": "x", "trigger": {"type": "event", "event": "customer.created"},
                   "steps": [{"key": "a", "action": "launch_rocket", "input": {}}]}),
            vec!["steps[0].action"],
        ),
        (
            json!({"name": "x", "trigger": {"type": "event", "event": "customer.created"},
                   "steps": [{"key": "a", "action": "create_project", "input": {"name": "{{trigger.name}}"}}]}),
            vec!["steps[0].input.customerId"],
        ),
        (
            json!({"name": "x", "trigger": {"type": "event", "event": "customer.created"},
                   "steps": [{"key": "a", "action": "create_project", "input": {"customerId": "{{trigger.id", "name": "n"}}]}),
            vec!["steps[0].input.customerId"],
        ),
        (
            json!({"name": "x", "trigger": {"type": "schedule", "schedule": "every tuesday"},
                   "steps": [{"key": "a", "action": "create_customer", "input": {"name": "n"}}]}),
            vec!["trigger.schedule"],
        ),
        (
            json!({"name": "x", "trigger": {"type": "event", "event": "customer.exploded"},
                   "steps": [{"key": "a", "action": "create_customer", "input": {"name": "n", "color": "red"}}]}),
            vec!["steps[0].input.color", "trigger.event"],
        ),
        (
            json!({"name": "", "trigger": {"type": "carrier_pigeon"}, "steps": []}),
            vec!["name", "steps", "trigger.type"],
        ),
        (
            json!({"name": "x", "trigger": {"type": "webhook"},
                   "steps": [{"key": "a", "action": "create_customer", "input": {"name": "n"}},
                             {"key": "a", "action": "create_customer", "input": {"name": "n"}}]}),
            vec!["steps[1].key"],
        ),
    ];
    for (body, expected) in cases {
        let r = c
            .post("/flows", body.clone())
            .await
            .expect_error(422, "validation_failed");
        let mut fields = r.error_fields();
        fields.sort();
        assert_eq!(fields, expected, "{body}");
    }
    // A five-field cron expression is fine; so is a six-field one.
    for schedule in ["*/5 * * * *", "0 30 9 * * Mon-Fri"] {
        c.post("/flows", json!({"name": "Nightly", "trigger": {"type": "schedule", "schedule": schedule},
                               "steps": [{"key": "a", "action": "create_customer", "input": {"name": "n"}}]}))
            .await
            .expect(201);
    }
    // Flows are for admins: reading them too (an inbound URL is a credential), in the log too.
    let (_, manager) = c.user_with_key(&server.db, "manager").await;
    manager.get("/flows").await.expect_error(403, "forbidden");
    manager.get("/runs").await.expect_error(403, "forbidden");
    let seen = manager.get("/events?limit=1000").await.expect(200).items();
    assert!(
        seen.iter()
            .all(|e| !e["type"].as_str().unwrap().starts_with("flow."))
    );
    assert!(
        !c.get("/events?types=flow.created")
            .await
            .expect(200)
            .items()
            .is_empty()
    );
    manager
        .post("/flows", json!({"name": "x", "trigger": {"type": "webhook"}, "steps": [{"key": "a", "action": "create_customer", "input": {"name": "n"}}]}))
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn a_new_customer_gets_a_project_a_task_and_a_subtask() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let flow = c
        .post("/flows", json!({
            "name": "Onboarding",
            "trigger": {"type": "event", "event": "customer.created", "filters": {"currency": "EUR"}},
            "steps": [
                {"key": "project", "action": "create_project",
                 "input": {"customerId": "{{trigger.id}}", "name": "Onboarding {{trigger.name}}", "budgetHours": 10}},
                {"key": "task", "action": "create_task",
                 "input": {"projectId": "{{steps.project.id}}", "name": "Kick-off for {{upper trigger.name}}"}},
                {"key": "subtask", "action": "create_subtask",
                 "input": {"taskId": "{{steps.task.id}}", "name": "Agenda ({{date trigger.createdAt \"%d.%m.%Y\"}})"}}
            ]
        }))
        .await
        .expect(201);
    assert_eq!(flow.body["isEnabled"], true);
    let flow_id = flow.id();
    // Not matching the filter: no run.
    c.post(
        "/customers",
        json!({"name": "Dollar Inc", "currency": "USD"}),
    )
    .await
    .expect(201);
    let customer = c
        .post("/customers", json!({"name": "Acme"}))
        .await
        .expect(201);
    let run = run_of(&c, &flow_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"]["id"], customer.id().as_str());
    let steps = run["steps"].as_array().unwrap();
    assert_eq!(steps.len(), 3);
    assert!(
        steps
            .iter()
            .all(|s| s["status"] == "succeeded" && s["attempts"] == 1)
    );
    assert_eq!(
        steps[0]["input"]["budgetHours"], 10,
        "a number stays a number"
    );
    let project = &steps[0]["output"];
    assert_eq!(project["name"], "Onboarding Acme");
    assert_eq!(project["customerId"], customer.id().as_str());
    assert_eq!(steps[1]["output"]["name"], "Kick-off for ACME");
    let subtask = &steps[2]["output"];
    assert!(subtask["name"].as_str().unwrap().starts_with("Agenda ("));
    // The records are real, made through the API's own rules, with their events.
    let got = c
        .get(&format!("/subtasks/{}", subtask["id"].as_str().unwrap()))
        .await
        .expect(200);
    assert_eq!(got.body["projectId"], project["id"]);
    let created: Vec<String> = c
        .get("/events?types=project.created,task.created,subtask.created")
        .await
        .expect(200)
        .items()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        created,
        vec!["project.created", "task.created", "subtask.created"]
    );
    // One run per event: the dollar customer started none.
    let runs = c.get(&format!("/runs?flowId={flow_id}")).await.expect(200);
    assert_eq!(runs.items().len(), 1);

    // Disabled: events start nothing.
    c.post(&format!("/flows/{flow_id}/disable"), json!({}))
        .await
        .expect(200);
    c.post("/customers", json!({"name": "Later"}))
        .await
        .expect(201);
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        c.get(&format!("/runs?flowId={flow_id}"))
            .await
            .items()
            .len(),
        1
    );
}

#[tokio::test]
async fn an_inbound_webhook_starts_a_run_once() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let secret = "a-shared-secret-of-32-characters";
    let flow = c
        .post("/flows", json!({
            "name": "Form → customer",
            "trigger": {"type": "webhook", "signature": "hmac", "secret": secret},
            "steps": [{"key": "customer", "action": "create_customer",
                       "input": {"name": "{{trigger.company}}", "email": "{{trigger.contact.email}}"}}]
        }))
        .await
        .expect(201);
    assert_eq!(flow.body["trigger"]["hasSecret"], true);
    assert_eq!(flow.body["trigger"]["signature"], "hmac");
    assert!(
        flow.body["trigger"].get("secret").is_none(),
        "the secret is never shown"
    );
    let url = flow.body["trigger"]["webhookUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(url.starts_with("/api/integration/v1/hooks/in/"));
    let anonymous = server.anonymous();
    let payload =
        json!({"company": "Initech", "contact": {"email": "peter@initech.example"}}).to_string();
    let post = |signature: Option<String>, id: Option<&str>| {
        let mut request = anonymous
            .request(reqwest::Method::POST, &url)
            .header("content-type", "application/json")
            .body(payload.clone());
        if let Some(s) = signature {
            request = request.header("X-Timix-Signature", s);
        }
        if let Some(id) = id {
            request = request.header("webhook-id", id);
        }
        request
    };
    anonymous
        .send(post(None, None))
        .await
        .expect_error(401, "invalid_signature");
    anonymous
        .send(post(Some("sha256=00".into()), None))
        .await
        .expect_error(401, "invalid_signature");
    let signature = format!("sha256={}", hmac_hex(secret, payload.as_bytes()));
    // A sender's own Authorization header is not taken for an API key; an absurd key is refused.
    let with_bearer =
        post(Some(signature.clone()), None).header("Authorization", "Bearer sender-token");
    let other = anonymous.send(with_bearer).await.expect(202);
    let long_key = "k".repeat(300);
    anonymous
        .send(post(Some(signature.clone()), Some(&long_key)))
        .await
        .expect_error(400, "invalid_parameter");
    let accepted = anonymous
        .send(post(Some(signature.clone()), Some("msg_1")))
        .await
        .expect(202);
    let run_id = accepted.body["runId"].as_str().unwrap().to_owned();
    // The sender's retry starts nothing new.
    let again = anonymous
        .send(post(Some(signature), Some("msg_1")))
        .await
        .expect(202);
    assert_eq!(again.body["duplicate"], true);
    let run = finished_run(&c, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    finished_run(&c, other.body["runId"].as_str().unwrap()).await;
    assert_eq!(run["steps"][0]["output"]["name"], "Initech");
    assert_eq!(run["steps"][0]["output"]["email"], "peter@initech.example");
    assert_eq!(
        c.get("/customers?name=Initech").await.items().len(),
        2,
        "one per accepted call"
    );

    anonymous
        .send(
            anonymous
                .request(reqwest::Method::POST, "/api/integration/v1/hooks/in/nope")
                .body("{}"),
        )
        .await
        .expect_error(404, "not_found");
    let huge = "x".repeat(2 * 1024 * 1024);
    let r = anonymous
        .send(anonymous.request(reqwest::Method::POST, &url).body(huge))
        .await;
    assert_eq!(r.status, 413, "{}", r.body);
}

#[tokio::test]
async fn a_flaky_target_is_retried_and_a_refusal_fails_the_run() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    receiver.script(vec![(503, vec![]), (500, vec![])]);
    let flow = c
        .post("/flows", json!({
            "name": "Tell the CRM",
            "trigger": {"type": "event", "event": "customer.created"},
            "steps": [{"key": "notify", "action": "http_request",
                       "input": {"method": "POST", "url": receiver.url, "body": {"customer": "{{trigger.name}}"}}}]
        }))
        .await
        .expect(201)
        .id();
    c.post("/customers", json!({"name": "Acme"}))
        .await
        .expect(201);
    let run = run_of(&c, &flow).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["steps"][0]["attempts"], 3, "503, 500, then 200");
    assert_eq!(run["steps"][0]["output"]["status"], 200);
    let received = receiver.received();
    assert_eq!(received.len(), 3);
    assert_eq!(received[2].json(), json!({"customer": "Acme"}));

    // A permanent refusal (422 from the API) fails the run at once, the upstream error kept.
    let broken = c
        .post("/flows", json!({
            "name": "Broken",
            "trigger": {"type": "event", "event": "task.created"},
            "steps": [{"key": "project", "action": "create_project",
                       "input": {"customerId": "cus_does_not_exist", "name": "{{trigger.name}}"}}]
        }))
        .await
        .expect(201)
        .id();
    let customer = c.customer("Beta").await;
    let project = c.project(&customer, "Site").await;
    c.task(&project, "Design").await;
    let run = run_of(&c, &broken).await;
    assert_eq!(run["status"], "failed");
    let step = &run["steps"][0];
    assert_eq!(step["attempts"], 1, "no retry of a permanent error");
    assert_eq!(step["error"]["status"], 422);
    assert_eq!(step["error"]["code"], "validation_failed");
    assert_eq!(step["error"]["details"][0]["field"], "customerId");
    assert!(run["error"].as_str().unwrap().contains("project"));
    let flow_now = c.get(&format!("/flows/{broken}")).await.expect(200);
    assert!(
        flow_now.body["lastError"]
            .as_str()
            .unwrap()
            .contains("customerId")
    );
    // Replay runs the failed step again (and it fails again the same way).
    let replayed = c
        .post(
            &format!("/runs/{}/replay", run["id"].as_str().unwrap()),
            json!({}),
        )
        .await
        .expect(200);
    assert_eq!(replayed.body["status"], "queued");
    let again = finished_run(&c, run["id"].as_str().unwrap()).await;
    assert_eq!(again["status"], "failed");
    c.post(
        &format!("/runs/{}/replay", run["id"].as_str().unwrap()),
        json!({}),
    )
    .await
    .expect(200);
    // A template that names a missing field fails with its path.
    let missing = c
        .post("/flows", json!({
            "name": "Missing",
            "trigger": {"type": "webhook"},
            "steps": [{"key": "c", "action": "create_customer", "input": {"name": "{{trigger.nope}}"}}]
        }))
        .await
        .expect(201)
        .id();
    let test = c
        .post(&format!("/flows/{missing}/test"), json!({}))
        .await
        .expect(202);
    let run = finished_run(&c, test.body["id"].as_str().unwrap()).await;
    assert_eq!(run["status"], "failed");
    assert_eq!(run["steps"][0]["error"]["code"], "template");
    assert_eq!(run["steps"][0]["error"]["field"], "steps[0].input.name");
}

#[tokio::test]
async fn a_schedule_starts_one_run_per_fire_time() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let flow = c
        .post("/flows", json!({
            "name": "Every second",
            "trigger": {"type": "schedule", "schedule": "* * * * * *"},
            "steps": [{"key": "c", "action": "create_customer", "input": {"name": "Tick {{trigger.firedAt}}"}}]
        }))
        .await
        .expect(201)
        .id();
    let started = Instant::now();
    loop {
        let runs = c
            .get(&format!("/runs?flowId={flow}&status=succeeded"))
            .await
            .expect(200);
        if runs.items().len() >= 3 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "too few scheduled runs"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    c.post(&format!("/flows/{flow}/disable"), json!({}))
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runs = c
        .get(&format!("/runs?flowId={flow}&pageSize=200"))
        .await
        .expect(200)
        .items();
    let mut fired: Vec<String> = runs
        .iter()
        .map(|r| r["trigger"]["firedAt"].as_str().unwrap().to_owned())
        .collect();
    let count = fired.len();
    fired.sort();
    fired.dedup();
    assert_eq!(fired.len(), count, "one run per fire time");
    // As many customers as runs, each named after its fire time.
    let customers = c
        .get("/customers?q=tick&pageSize=200")
        .await
        .expect(200)
        .items();
    assert_eq!(customers.len(), count);
    // Disabled: no more.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let after = c
        .get(&format!("/runs?flowId={flow}&pageSize=200"))
        .await
        .expect(200)
        .items();
    assert_eq!(after.len(), count);
}

#[tokio::test]
async fn two_processes_on_one_postgres_never_run_a_step_twice() {
    if crate::harness::backend() != "postgres" {
        eprintln!(
            "SKIPPED on SQLite: one process per database file; this runs in the Postgres pass"
        );
        return;
    }
    let db = TestDb::new().await;
    let shared = TestDb {
        dir: db.dir.clone(),
        url: db.url.clone(),
    };
    let env = [
        ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
        ("TIMIX_FLOW_RETRY_BASE", "100ms"),
    ];
    let a = Server::start_with(db, &env).await;
    let b = Server::start_with(shared, &env).await;
    let org = a.db.bootstrap("business");
    let (ca, cb) = (a.as_key(&org.key), b.as_key(&org.key));
    let receiver = Receiver::start().await;
    // Every third call fails once: retries must not duplicate either.
    receiver.script(vec![
        (503, vec![]),
        (200, vec![]),
        (200, vec![]),
        (503, vec![]),
    ]);
    let flow = ca
        .post("/flows", json!({
            "name": "Mirror",
            "trigger": {"type": "event", "event": "customer.created"},
            "steps": [{"key": "send", "action": "http_request",
                       "input": {"method": "POST", "url": receiver.url, "body": {"id": "{{trigger.id}}"}}}]
        }))
        .await
        .expect(201)
        .id();
    let mut ids = Vec::new();
    for i in 0..30 {
        let c = if i % 2 == 0 { &ca } else { &cb };
        ids.push(
            c.post("/customers", json!({"name": format!("C{i}")}))
                .await
                .expect(201)
                .id(),
        );
    }
    let started = Instant::now();
    loop {
        let done = ca
            .get(&format!(
                "/runs?flowId={flow}&status=succeeded&pageSize=200"
            ))
            .await
            .expect(200)
            .items()
            .len();
        if done == ids.len() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{done} of {} runs done",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let runs = ca
        .get(&format!("/runs?flowId={flow}&pageSize=200"))
        .await
        .expect(200)
        .items();
    assert_eq!(runs.len(), ids.len(), "one run per event");
    // Each customer reached the receiver exactly once with a 2xx answer.
    let mut delivered: Vec<String> = Vec::new();
    let received = receiver.received();
    let attempts: u64 = runs
        .iter()
        .map(|r| r["steps"][0]["attempts"].as_u64().unwrap())
        .sum();
    assert_eq!(
        received.len() as u64,
        attempts,
        "every attempt recorded, none unrecorded"
    );
    for r in &runs {
        delivered.push(r["trigger"]["id"].as_str().unwrap().to_owned());
    }
    delivered.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(delivered, expected);
}

#[tokio::test]
async fn a_step_slower_than_the_lease_is_not_taken_over_while_its_worker_lives() {
    let env = [
        ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
        ("TIMIX_RUN_LEASE", "1s"),
    ];
    let server = Server::start_with(TestDb::new().await, &env).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    // The step takes three leases; the sweeper looks for runs whose lease ended every 100 ms.
    let receiver = Receiver::start().await;
    receiver.slow(Duration::from_secs(3));
    let flow = c
        .post("/flows", json!({
            "name": "Slow",
            "trigger": {"type": "event", "event": "customer.created"},
            "steps": [{"key": "send", "action": "http_request",
                       "input": {"method": "POST", "url": receiver.url, "body": {"id": "{{trigger.id}}"}}}]
        }))
        .await
        .expect(201)
        .id();
    c.post("/customers", json!({"name": "Acme"}))
        .await
        .expect(201);
    let run = run_of(&c, &flow).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["steps"][0]["attempts"], 1, "{run}");
    // Had the run been taken over, its step would have been sent again meanwhile.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 1, "the step was performed once");
}

#[tokio::test]
async fn a_run_cut_off_by_a_crash_finishes_after_the_restart() {
    let db = TestDb::new().await;
    let (dir, url) = (db.dir.clone(), db.url.clone());
    let env = [
        ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
        ("TIMIX_FLOW_RETRY_BASE", "100ms"),
        ("TIMIX_RUN_LEASE", "2s"),
    ];
    let server = Server::start_with(db, &env).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    receiver.slow(Duration::from_secs(2));
    let flow = c
        .post("/flows", json!({
            "name": "Slow",
            "trigger": {"type": "event", "event": "customer.created"},
            "steps": [
                {"key": "send", "action": "http_request", "input": {"method": "POST", "url": receiver.url, "body": {"id": "{{trigger.id}}"}}},
                {"key": "project", "action": "create_project", "input": {"customerId": "{{trigger.id}}", "name": "After the call"}}
            ]
        }))
        .await
        .expect(201)
        .id();
    c.post("/customers", json!({"name": "Acme"}))
        .await
        .expect(201);
    // The first step is in flight (the receiver takes 2 s to answer): the process dies.
    let started = Instant::now();
    loop {
        let runs = c
            .get(&format!("/runs?flowId={flow}&status=running"))
            .await
            .expect(200);
        if !runs.items().is_empty() {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the run did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    crate::harness::signal(server.pid(), "KILL");
    drop(server);
    assert!(receiver.received().is_empty(), "killed before the answer");
    // Answered at once from now on.
    receiver.slow(Duration::ZERO);

    let restarted = Server::start_with(TestDb { dir, url }, &env).await;
    let c = restarted.as_key(&org.key);
    let run = run_of(&c, &flow).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["steps"][1]["output"]["name"], "After the call");
    assert_eq!(
        c.get("/projects?name=After%20the%20call")
            .await
            .items()
            .len(),
        1
    );
    // The interrupted call was made again after the restart (at least once, as documented).
    assert!(!receiver.received().is_empty());
}

#[tokio::test]
async fn flows_do_not_start_themselves_and_chains_end() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let copy = |suffix: &str| {
        json!({
            "name": format!("Copy {suffix}"),
            "trigger": {"type": "event", "event": "customer.created"},
            "steps": [{"key": "c", "action": "create_customer", "input": {"name": format!("{{{{trigger.name}}}}{suffix}")}}]
        })
    };
    // Alone, a flow that creates what it listens to runs once: its own change starts nothing.
    let lone = c.post("/flows", copy("+")).await.expect(201).id();
    c.post("/customers", json!({"name": "A"})).await.expect(201);
    run_of(&c, &lone).await;
    tokio::time::sleep(Duration::from_millis(800)).await;
    let names: Vec<String> = c
        .get("/customers?sort=name")
        .await
        .expect(200)
        .items()
        .iter()
        .map(|x| x["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["A", "A+"]);

    // Two flows that start each other stop after five links.
    c.post("/flows", copy("*")).await.expect(201);
    c.post("/customers", json!({"name": "B"})).await.expect(201);
    let started = Instant::now();
    let expected = 1 + 2 * 5;
    loop {
        let count = c
            .get("/customers?q=b&pageSize=100")
            .await
            .expect(200)
            .items()
            .len();
        if count >= expected {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "{count} customers"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let count = c
        .get("/customers?q=b&pageSize=100")
        .await
        .expect(200)
        .items()
        .len();
    assert_eq!(count, expected, "the chain ended at five links");
}

#[tokio::test]
async fn finished_runs_past_their_retention_and_stale_seen_items_are_deleted() {
    let db = TestDb::new().await;
    let (dir, url) = (db.dir.clone(), db.url.clone());
    let env = [("TIMIX_RUN_RETENTION", "2s")];
    let mut server = Server::start_with(db, &env).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let flow = c
        .post("/flows", json!({
            "name": "Inbound",
            "trigger": {"type": "webhook"},
            "steps": [{"key": "c", "action": "create_customer", "input": {"name": "{{trigger.name}}"}}]
        }))
        .await
        .expect(201)
        .body;
    let inbound = flow["trigger"]["webhookUrl"].as_str().unwrap().to_owned();
    for name in ["A", "B"] {
        server
            .anonymous()
            .send(
                server
                    .anonymous()
                    .request(reqwest::Method::POST, &inbound)
                    .json(&json!({"name": name})),
            )
            .await
            .expect(202);
    }
    let runs = |c: &Client| {
        let c = c.clone();
        let flow = flow["id"].as_str().unwrap().to_owned();
        async move {
            c.get(&format!("/runs?flowId={flow}&pageSize=50"))
                .await
                .expect(200)
                .items()
        }
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while runs(&c)
        .await
        .iter()
        .filter(|r| r["status"] == "succeeded")
        .count()
        < 2
    {
        assert!(Instant::now() < deadline, "the runs never finished");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A seen item of a flow that polls no more.
    crate::harness::execute(
        &server.db,
        "INSERT INTO poll_seen (flow_id, item_key, seen_at) VALUES ('flw_gone', 'abc:1', 0)",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.terminate();
    // The purge runs when a worker starts, then hourly.
    let server = Server::start_with(TestDb { dir, url }, &env).await;
    let c = server.as_key(&org.key);
    let deadline = Instant::now() + Duration::from_secs(20);
    while !runs(&c).await.is_empty() {
        assert!(Instant::now() < deadline, "the old runs were kept");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seen = crate::harness::query_texts(&server.db, "SELECT item_key FROM poll_seen").await;
    assert!(seen.is_empty(), "{seen:?}");
    // The customers the runs made stay.
    assert_eq!(c.get("/customers").await.expect(200).items().len(), 2);
}
