//! What one organization's flows may cost the service: templates within their budget (and
//! never a crash), runs that stopped their worker twice poisoned instead of taken again, chains
//! of flows within their fan-out budget, and runs beyond the organization's budget queued for
//! later while another organization's run at once.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Client, Server, TestDb, execute, query_texts};

async fn finished(c: &Client, id: &str) -> Value {
    c.finished_run(id).await
}

/// A webhook flow with one `create_customer` step named by `name`; returns its id and URL.
async fn webhook_flow(c: &Client, name: &str) -> (String, String) {
    c.webhook_flow(json!({"type": "webhook"}), name).await
}

async fn call(server: &Server, url: &str, payload: &Value) -> String {
    let anonymous = server.anonymous();
    let accepted = anonymous
        .send(
            anonymous
                .request(reqwest::Method::POST, url)
                .header("content-type", "application/json")
                .body(payload.to_string()),
        )
        .await
        .expect(202);
    accepted.body["runId"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn no_template_takes_the_process_down() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    // Partials recurse: refused at save, with the path of the field.
    let recursive = "{{#*inline \"p\"}}x{{> p}}{{/inline}}{{> p}}";
    let refused = c
        .post(
            "/flows",
            json!({
                "name": "Recursive",
                "trigger": {"type": "webhook"},
                "steps": [{"key": "c", "action": "create_customer", "input": {"name": recursive}}]
            }),
        )
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(refused.error_fields(), vec!["steps[0].input.name"]);

    // One stored before the check (written straight to the database) fails its run plainly.
    let (flow, url) = webhook_flow(&c, "Plain {{trigger.name}}").await;
    let steps = json!([{"key": "c", "action": "create_customer", "input": {"name": recursive}}]);
    execute(
        &server.db,
        &format!(
            "UPDATE flows SET steps = '{}' WHERE id = '{flow}'",
            steps.to_string().replace('\'', "''")
        ),
    )
    .await;
    let run = finished(&c, &call(&server, &url, &json!({"name": "A"})).await).await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["steps"][0]["error"]["message"].as_str().unwrap();
    assert!(error.contains("partials"), "{error}");

    // Loops within loops over a 500-item payload: stopped by the budget, a short record kept.
    let nested = "{{#each trigger.items}}{{#each ../trigger.items}}{{#each ../../trigger.items}}x{{/each}}{{/each}}{{/each}}";
    let (_, url) = webhook_flow(&c, nested).await;
    let items: Vec<u8> = vec![1; 500];
    let payload = json!({"items": items});
    assert!(payload.to_string().len() < 2_500);
    let run = finished(&c, &call(&server, &url, &payload).await).await;
    assert_eq!(run["status"], "failed", "{run}");
    let error = run["steps"][0]["error"]["message"].as_str().unwrap();
    assert!(error.contains("steps[0].input.name"), "{error}");
    assert!(
        error.contains("1 MiB") || error.contains("1000000 steps"),
        "{error}"
    );
    // Output that grows instead: 200 items, each 4 KiB, twice over.
    let wide =
        "{{#each trigger.items}}{{#each ../trigger.items}}{{../../trigger.text}}{{/each}}{{/each}}";
    let (_, url) = webhook_flow(&c, wide).await;
    let items: Vec<u8> = vec![1; 200];
    let run = finished(
        &c,
        &call(
            &server,
            &url,
            &json!({"items": items, "text": "y".repeat(4096)}),
        )
        .await,
    )
    .await;
    assert_eq!(run["status"], "failed", "{run}");
    assert!(
        run["steps"][0]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("more than 1 MiB"),
        "{run}"
    );
    let listed = c.get("/runs?pageSize=100").await.expect(200);
    assert!(
        listed.body.to_string().len() < 200_000,
        "the runs list stays small: {} bytes",
        listed.body.to_string().len()
    );
    // The process is alive and serving.
    c.get("/me").await.expect(200);
    assert!(c.get("/customers").await.expect(200).items().is_empty());
}

#[tokio::test]
async fn a_run_that_stopped_its_worker_twice_is_poisoned() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (flow, _) = webhook_flow(&c, "Resumed {{trigger.n}}").await;
    let pending = json!([{"key": "customer", "action": "create_customer", "status": "pending",
        "input": null, "output": null, "error": null, "attempts": 1,
        "startedAt": null, "finishedAt": null}]);
    // Two runs a stopped worker held (running, lease long over): one whose worker stopped once
    // before, one that never did.
    for (id, takeovers, n) in [("run_poisoned", 1, 1), ("run_resumed", 0, 2)] {
        execute(
            &server.db,
            &format!(
                "INSERT INTO runs (id, org_id, flow_id, source_key, status, trigger, steps, depth, root_id, \
                 next_attempt_at, lease_until, lease_token, created_at, started_at, updated_at, takeovers) \
                 VALUES ('{id}', '{}', '{flow}', 'inbound:{id}', 'running', '{{\"n\": {n}}}', '{pending}', 0, '{id}', \
                 1, 1, 'gone', 1, 1, 1, {takeovers})",
                org.id
            ),
        )
        .await;
    }
    let poisoned = finished(&c, "run_poisoned").await;
    assert_eq!(poisoned["status"], "failed", "{poisoned}");
    assert_eq!(
        poisoned["steps"][0]["error"]["code"], "poisoned",
        "{poisoned}"
    );
    assert!(
        poisoned["error"]
            .as_str()
            .unwrap()
            .contains("not taken again"),
        "{poisoned}"
    );
    let resumed = finished(&c, "run_resumed").await;
    assert_eq!(resumed["status"], "succeeded", "{resumed}");
    let names: Vec<Value> = c
        .get("/customers")
        .await
        .expect(200)
        .items()
        .iter()
        .map(|x| x["name"].clone())
        .collect();
    assert_eq!(
        names,
        vec![json!("Resumed 2")],
        "the poisoned run did nothing"
    );
    // Replayed by hand, it gets a fresh chance.
    c.post("/runs/run_poisoned/replay", json!({}))
        .await
        .expect(200);
    assert_eq!(finished(&c, "run_poisoned").await["status"], "succeeded");
}

#[tokio::test]
async fn a_chain_of_flows_starts_at_most_its_fanout_budget() {
    let server = Server::start_with(TestDb::new().await, &[("TIMIX_FANOUT_LIMIT", "20")]).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    // Four flows on `customer.created` that each create a customer: without a budget, one
    // change becomes hundreds of runs within the depth limit.
    let mut flows = Vec::new();
    for i in 0..4 {
        let flow = c
            .post(
                "/flows",
                json!({
                    "name": format!("Copy {i}"),
                    "trigger": {"type": "event", "event": "customer.created"},
                    "steps": [{"key": "c", "action": "create_customer",
                               "input": {"name": format!("{{{{trigger.name}}}}/{i}")}}]
                }),
            )
            .await
            .expect(201)
            .id();
        flows.push(flow);
    }
    c.post("/customers", json!({"name": "Root"}))
        .await
        .expect(201);
    // Wait until the runs stop growing and none is left to finish.
    let started = Instant::now();
    let mut last = 0;
    let mut quiet_since = Instant::now();
    loop {
        let counts = query_texts(
            &server.db,
            "SELECT CAST(COUNT(*) AS TEXT) FROM runs UNION ALL \
             SELECT CAST(COUNT(*) AS TEXT) FROM runs WHERE status IN ('queued', 'running')",
        )
        .await;
        let (total, open): (usize, usize) =
            (counts[0].parse().unwrap(), counts[1].parse().unwrap());
        if total != last || open > 0 {
            last = total;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() > Duration::from_secs(2) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "{total} runs");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        last, 20,
        "one change started exactly its chain's budget of runs"
    );
    let reasons: Vec<String> = c
        .get("/flows")
        .await
        .expect(200)
        .items()
        .iter()
        .filter_map(|f| f["lastError"].as_str().map(str::to_owned))
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("fanout_limit")),
        "the flows say why: {reasons:?}"
    );
    // A person's next change is a new chain, with a budget of its own.
    c.post("/customers", json!({"name": "Second"}))
        .await
        .expect(201);
    let started = Instant::now();
    while query_texts(&server.db, "SELECT id FROM runs").await.len() < 24 {
        assert!(started.elapsed() < Duration::from_secs(30));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn runs_beyond_an_organizations_budget_wait_and_others_do_not() {
    let server = Server::start_with(TestDb::new().await, &[("TIMIX_RUNS_PER_MINUTE", "6")]).await;
    let noisy = server.db.bootstrap("business");
    let quiet = server.db.bootstrap("business");
    let (n, q) = (server.as_key(&noisy.key), server.as_key(&quiet.key));
    let (_, noisy_url) = webhook_flow(&n, "Noisy {{trigger.i}}").await;
    let (_, quiet_url) = webhook_flow(&q, "Quiet").await;
    // A minute's budget starts at once; the rest is accepted and queued, one every 10 s.
    let mut ids = Vec::new();
    for i in 0..9 {
        ids.push(call(&server, &noisy_url, &json!({"i": i})).await);
    }
    for id in &ids[..6] {
        assert_eq!(finished(&n, id).await["status"], "succeeded");
    }
    let now = chrono::Utc::now();
    for (k, id) in ids[6..].iter().enumerate() {
        let run = n.get(&format!("/runs/{id}")).await.expect(200).body;
        assert_eq!(run["status"], "queued", "{run}");
        let due: chrono::DateTime<chrono::Utc> =
            run["nextAttemptAt"].as_str().unwrap().parse().unwrap();
        let wait = (due - now).num_milliseconds();
        assert!(
            wait > 4_000 + 10_000 * k as i64 && wait <= 10_000 * (k as i64 + 1) + 1_000,
            "run {k} waits {wait} ms"
        );
    }
    // Another organization is not behind them.
    let run = finished(&q, &call(&server, &quiet_url, &json!({})).await).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    // The first queued one starts when its time comes.
    assert_eq!(finished(&n, &ids[6]).await["status"], "succeeded");
}
