//! A flow's settings at work: `maxConcurrency` runs one at a time in order, `maxRunsPerMinute`
//! queues what is beyond it (none dropped; a schedule's fire times beyond it are skipped), and a
//! schedule read in a time zone.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Client, Server, TestDb};
use crate::receiver::Receiver;

const ENV: [(&str, &str); 2] = [
    ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
    ("TIMIX_FLOW_RETRY_BASE", "100ms"),
];

/// A webhook flow posting `{"n": …}` to `receiver` with `settings`; its inbound URL.
async fn sending_flow(c: &Client, receiver: &Receiver, settings: Value) -> (String, String) {
    let flow = c
        .post("/flows", json!({
            "name": "Send", "trigger": {"type": "webhook"}, "settings": settings,
            "steps": [{"key": "send", "action": "http_request",
                       "input": {"method": "POST", "url": receiver.url, "body": {"n": "{{trigger.n}}"}}}]
        }))
        .await
        .expect(201);
    let url = flow.body["trigger"]["webhookUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    (flow.id(), url)
}

async fn runs_of(c: &Client, flow: &str) -> Vec<Value> {
    c.get(&format!("/runs?flowId={flow}&pageSize=100"))
        .await
        .expect(200)
        .items()
}

#[tokio::test]
async fn max_concurrency_one_runs_one_at_a_time_in_order() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    receiver.slow(Duration::from_millis(300));
    let (flow, url) = sending_flow(&c, &receiver, json!({"maxConcurrency": 1})).await;
    for n in 0..4 {
        server
            .anonymous()
            .post(&url, json!({"n": n}))
            .await
            .expect(202);
    }
    let started = Instant::now();
    loop {
        let runs = runs_of(&c, &flow).await;
        if runs.len() == 4 && runs.iter().all(|r| r["status"] == "succeeded") {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "{runs:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        receiver.max_in_flight(),
        1,
        "never two runs of the flow at once"
    );
    let order: Vec<i64> = receiver
        .received()
        .iter()
        .map(|r| r.json()["n"].as_i64().unwrap())
        .collect();
    assert_eq!(order, [0, 1, 2, 3], "in the order they came");
}

#[tokio::test]
async fn max_runs_per_minute_queues_the_rest_and_drops_none() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    let (flow, url) = sending_flow(&c, &receiver, json!({"maxRunsPerMinute": 2})).await;
    let sent_at = chrono::Utc::now();
    for n in 0..4 {
        server
            .anonymous()
            .post(&url, json!({"n": n}))
            .await
            .expect(202);
    }
    receiver.wait_for(2, 20).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(receiver.received().len(), 2, "two in the first minute");
    let runs = runs_of(&c, &flow).await;
    assert_eq!(runs.len(), 4, "none dropped");
    let queued: Vec<&Value> = runs.iter().filter(|r| r["status"] == "queued").collect();
    assert_eq!(queued.len(), 2, "{runs:?}");
    for run in queued {
        let at =
            chrono::DateTime::parse_from_rfc3339(run["nextAttemptAt"].as_str().unwrap()).unwrap();
        let wait = (at.with_timezone(&chrono::Utc) - sent_at).num_seconds();
        assert!(
            (55..=65).contains(&wait),
            "queued for the next minute: {wait} s"
        );
    }
}

#[tokio::test]
async fn max_runs_per_minute_skips_schedule_fire_times_beyond_it() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let flow = c
        .post(
            "/flows",
            json!({
                "name": "Every second", "settings": {"maxRunsPerMinute": 2},
                "trigger": {"type": "schedule", "schedule": "* * * * * *"},
                "steps": [{"key": "s", "type": "set", "values": {"at": "{{trigger.firedAt}}"}}]
            }),
        )
        .await
        .expect(201)
        .id();
    // A schedule firing faster than its limit skips the fire times beyond it (queued, they
    // would pile up without end), and says so on the flow.
    let started = Instant::now();
    let shown = loop {
        let shown = c.get(&format!("/flows/{flow}")).await.expect(200).body;
        if shown["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("maxRunsPerMinute"))
        {
            break shown;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "never skipped: {shown}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    c.post(&format!("/flows/{flow}/disable"), json!({}))
        .await
        .expect(200);
    let runs = runs_of(&c, &flow).await;
    // Two a minute (a third when the test straddles a minute's turn).
    assert!((2..=3).contains(&runs.len()), "{runs:?} {shown}");
    assert!(runs.iter().all(|r| r["status"] != "queued"), "{runs:?}");
}

#[tokio::test]
async fn a_schedule_fires_in_its_time_zone() {
    let server = Server::start_with(TestDb::new().await, &ENV).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let flow = c
        .post("/flows", json!({
            "name": "Every second in Kolkata",
            "trigger": {"type": "schedule", "schedule": "* * * * * *"},
            "settings": {"timezone": "Asia/Kolkata"},
            "steps": [{"key": "noted", "type": "set", "values": {"at": "{{trigger.localTime}}"}}]
        }))
        .await
        .expect(201);
    assert_eq!(flow.body["settings"]["timezone"], "Asia/Kolkata");
    let id = flow.id();
    let started = Instant::now();
    let run = loop {
        if let Some(run) = runs_of(&c, &id).await.first() {
            break c.finished_run(run["id"].as_str().unwrap()).await;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no scheduled run"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(run["trigger"]["timezone"], "Asia/Kolkata");
    assert!(
        run["trigger"]["localTime"]
            .as_str()
            .unwrap()
            .ends_with("+05:30"),
        "{run}"
    );
    assert!(run["trigger"]["firedAt"].as_str().unwrap().ends_with('Z'));
    c.patch(
        &format!("/flows/{id}"),
        json!({"settings": {"timezone": "Moon/Base"}}),
    )
    .await
    .expect_error(422, "validation_failed");
}
