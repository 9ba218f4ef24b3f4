//! Scale-out on one Postgres: API processes (`--role api`) behind a load balancer and worker
//! processes (`--role worker`) beside them. A burst of writes spread over both API processes,
//! with one worker and one API process killed with `kill -9` in the middle: every acknowledged
//! record starts exactly one flow run that succeeds, and every acknowledged event is delivered to
//! its webhook at least once. Inbound calls accepted by an API process are offered to every
//! worker process at once (no queued job each), and each runs once.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Server, TestDb, backend, query_texts, sample, signal};
use crate::receiver::Receiver;

fn same_database(db: &TestDb) -> TestDb {
    TestDb {
        dir: db.dir.clone(),
        url: db.url.clone(),
    }
}

#[tokio::test]
async fn api_and_worker_processes_lose_nothing_when_one_of_each_is_killed_mid_burst() {
    if backend() != "postgres" {
        eprintln!(
            "SKIPPED on SQLite: one process per database file; this runs in the Postgres pass"
        );
        return;
    }
    let db = TestDb::new().await;
    let env = [
        ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
        ("TIMIX_FLOW_RETRY_BASE", "100ms"),
        // A killed worker's runs and deliveries are taken over after this.
        ("TIMIX_RUN_LEASE", "3s"),
        ("TIMIX_WEBHOOK_RETRY_SCHEDULE", "1s,1s,2s,5s"),
    ];
    let workers = [
        Server::start_as(same_database(&db), &env, "worker").await,
        Server::start_as(same_database(&db), &env, "worker").await,
    ];
    let apis = [
        Server::start_as(same_database(&db), &env, "api").await,
        Server::start_as(db, &env, "api").await,
    ];
    let org = apis[0].db.bootstrap("business");
    let clients = [apis[0].as_key(&org.key), apis[1].as_key(&org.key)];
    let hooks = Receiver::start().await;
    let actions = Receiver::start().await;
    clients[0]
        .post(
            "/api/integration/v1/webhooks",
            json!({"url": hooks.url, "events": ["customer.created"]}),
        )
        .await
        .expect(201);
    let flow = clients[1]
        .post("/api/integration/v1/flows", json!({
            "name": "Mirror",
            "trigger": {"type": "event", "event": "customer.created"},
            "steps": [{"key": "send", "action": "http_request",
                       "input": {"method": "POST", "url": actions.url, "body": {"id": "{{trigger.id}}"}}}]
        }))
        .await
        .expect(201)
        .id();

    // The burst: writes alternate between the two API processes, several at a time.
    let mut acknowledged = BTreeSet::new();
    let (mut worker_killed, mut api_killed) = (false, false);
    for round in 0..20 {
        let mut writes = tokio::task::JoinSet::new();
        for i in 0..6 {
            let request = clients[i % 2]
                .request(reqwest::Method::POST, "/customers")
                .json(&json!({"name": format!("C{round}-{i}")}));
            writes.spawn(request.send());
        }
        for answer in writes.join_all().await {
            // A write to the killed process fails without an answer: not acknowledged.
            if let Ok(answer) = answer
                && answer.status() == 201
            {
                let body: serde_json::Value = answer.json().await.unwrap();
                acknowledged.insert(body["id"].as_str().unwrap().to_owned());
            }
        }
        if round == 6 && !worker_killed {
            signal(workers[0].pid(), "KILL");
            worker_killed = true;
        }
        if round == 10 && !api_killed {
            signal(apis[1].pid(), "KILL");
            api_killed = true;
        }
    }
    assert!(
        acknowledged.len() >= 60,
        "{} acknowledged",
        acknowledged.len()
    );

    // Exactly one run per acknowledged customer, each succeeded (the survivors take over the
    // killed worker's leases).
    let api = &clients[0];
    let started = Instant::now();
    let runs = loop {
        let runs = api
            .get(&format!(
                "/api/integration/v1/runs?flowId={flow}&pageSize=200"
            ))
            .await
            .expect(200)
            .items();
        let succeeded = runs.iter().filter(|r| r["status"] == "succeeded").count();
        if succeeded >= acknowledged.len() {
            break runs;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "{succeeded} of {} runs succeeded",
            acknowledged.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let mut per_customer: BTreeMap<String, usize> = BTreeMap::new();
    for run in &runs {
        *per_customer
            .entry(run["trigger"]["id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for id in &acknowledged {
        assert_eq!(per_customer.get(id), Some(&1), "runs of {id}");
    }
    assert!(runs.iter().all(|r| r["status"] == "succeeded"));
    // Every run's request reached the receiver (at least once: a step cut off by the kill is
    // sent again by the process that takes it over).
    let sent: BTreeSet<String> = actions
        .received()
        .iter()
        .map(|r| r.json()["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        acknowledged.is_subset(&sent),
        "every run's request was sent"
    );

    // Every acknowledged event reached the webhook at least once.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let delivered: BTreeSet<String> = hooks
            .received()
            .iter()
            .filter_map(|r| r.json()["data"]["id"].as_str().map(str::to_owned))
            .collect();
        let missing: Vec<&String> = acknowledged.difference(&delivered).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} events never delivered: {missing:?}",
            missing.len()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn runs_an_api_process_accepts_are_offered_to_competing_workers_and_each_runs_once() {
    if backend() != "postgres" {
        eprintln!(
            "SKIPPED on SQLite: one process per database file; this runs in the Postgres pass"
        );
        return;
    }
    let db = TestDb::new().await;
    let env = [("TIMIX_ALLOW_PRIVATE_TARGETS", "1")];
    let _workers = [
        Server::start_as(same_database(&db), &env, "worker").await,
        Server::start_as(same_database(&db), &env, "worker").await,
    ];
    let api = Server::start_as(same_database(&db), &env, "api").await;
    let org = api.db.bootstrap("business");
    let client = api.as_key(&org.key);
    let actions = Receiver::start().await;
    let flow = client
        .post("/api/integration/v1/flows", json!({
            "name": "Forward",
            "trigger": {"type": "webhook"},
            "steps": [{"key": "send", "action": "http_request",
                       "input": {"method": "POST", "url": actions.url, "body": {"n": "{{trigger.n}}"}}}]
        }))
        .await
        .expect(201);
    let hook = flow.body["trigger"]["webhookUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let calls = 60;
    let sender = api.anonymous();
    for wave in 0..(calls / 6) {
        let mut sent = tokio::task::JoinSet::new();
        for i in 0..6 {
            let request = sender
                .request(reqwest::Method::POST, &hook)
                .json(&json!({"n": wave * 6 + i}));
            sent.spawn(request.send());
        }
        for answer in sent.join_all().await {
            assert_eq!(answer.unwrap().status(), 202);
        }
    }
    let received = actions.wait_for(calls, 60).await;
    let mut per_call: BTreeMap<String, usize> = BTreeMap::new();
    for request in &received {
        *per_call.entry(request.json()["n"].to_string()).or_default() += 1;
    }
    assert_eq!(per_call.len(), calls, "every call's run sent its request");
    assert!(
        per_call.values().all(|&n| n == 1),
        "a run was executed twice: {per_call:?}"
    );
    // The workers took the runs from the runs table: no job was queued for any of them.
    let jobs = query_texts(
        &db,
        "SELECT COUNT(*)::text FROM apalis.jobs WHERE job_type = 'runs'",
    )
    .await;
    assert_eq!(jobs, ["0"], "jobs queued for runs");
}

#[tokio::test]
async fn an_api_process_refuses_calls_while_runs_wait_too_long_for_the_workers() {
    if backend() != "postgres" {
        eprintln!(
            "SKIPPED on SQLite: one process per database file; this runs in the Postgres pass"
        );
        return;
    }
    let db = TestDb::new().await;
    let env = [
        ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
        ("TIMIX_INBOUND_BACKLOG", "1s"),
        ("TIMIX_METRICS_TOKEN", "api-backlog"),
    ];
    // No worker yet: every accepted run waits in the database.
    let api = Server::start_as(same_database(&db), &env, "api").await;
    let org = api.db.bootstrap("business");
    let client = api.as_key(&org.key);
    let actions = Receiver::start().await;
    let flow = client
        .post("/api/integration/v1/flows", json!({
            "name": "Forward",
            "trigger": {"type": "webhook"},
            "steps": [{"key": "send", "action": "http_request",
                       "input": {"method": "POST", "url": actions.url, "body": {"n": "{{trigger.n}}"}}}]
        }))
        .await
        .expect(201);
    let id = flow.id();
    let hook = flow.body["trigger"]["webhookUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let sender = api.anonymous();
    for n in 0..5 {
        sender.post(&hook, json!({"n": n})).await.expect(202);
    }
    let metrics = || api.metrics("api-backlog");
    let value = |text: &str, series: &str| -> f64 {
        sample(text, series).unwrap_or_else(|| panic!("no {series} in {text}"))
    };
    // Below the limit nothing is refused; past it (plus the 100 ms a reading is kept), calls are
    // refused before anything is written.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics().await;
        assert_eq!(value(&text, "timix_run_backlog"), 5.0, "{text}");
        if value(&text, "timix_run_backlog_oldest_seconds") > 1.2 {
            break;
        }
        assert!(Instant::now() < deadline, "{text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for n in 5..8 {
        let answer = sender.post(&hook, json!({"n": n})).await;
        let answer = answer.expect_error(503, "overloaded");
        let retry: u64 = answer.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    }
    let text = metrics().await;
    assert_eq!(
        value(&text, "timix_inbound_calls_total{outcome=\"refused\"}"),
        3.0
    );
    assert_eq!(
        value(&text, "timix_run_backlog"),
        5.0,
        "refused calls wrote nothing"
    );

    // A worker drains the backlog: each accepted call's run is done once, and calls are
    // accepted again.
    let _worker = Server::start_as(db, &env, "worker").await;
    actions.wait_for(5, 60).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let answer = sender.post(&hook, json!({"n": 8})).await;
        if answer.status == 202 {
            break;
        }
        answer.expect_error(503, "overloaded");
        assert!(Instant::now() < deadline, "still refused");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let received = actions.wait_for(6, 60).await;
    let mut numbers: Vec<String> = received.iter().map(|r| r.json()["n"].to_string()).collect();
    numbers.sort();
    assert_eq!(numbers, ["0", "1", "2", "3", "4", "8"]);
    let runs = client
        .get(&format!("/api/integration/v1/runs?flowId={id}&pageSize=50"))
        .await
        .expect(200)
        .items();
    assert_eq!(
        runs.len(),
        6,
        "one run per accepted call, none for a refused one"
    );
}
