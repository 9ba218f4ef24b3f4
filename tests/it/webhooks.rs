//! Webhooks and REST hooks: signed, retried, logged, never lost.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{Client, Server, TestDb};
use crate::receiver::Receiver;

/// A server that may call loopback receivers, with a short retry schedule.
async fn server() -> Server {
    Server::start_with(
        TestDb::new().await,
        &[
            ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
            ("TIMIX_WEBHOOK_RETRY_SCHEDULE", "100ms,200ms,300ms"),
        ],
    )
    .await
}

/// A loopback-friendly server, an organization, its owner's client and a receiver.
struct Setup {
    server: Server,
    org: crate::harness::Org,
    c: Client,
    receiver: Receiver,
}

async fn setup() -> Setup {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    Setup {
        server,
        org,
        c,
        receiver: Receiver::start().await,
    }
}

async fn webhook(c: &Client, url: &str, events: Value) -> (String, String) {
    let r = c
        .post("/webhooks", json!({"url": url, "events": events}))
        .await
        .expect(201);
    let secret = r.body["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"));
    (r.id(), secret)
}

fn verify(secret: &str, got: &crate::receiver::Received) -> bool {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&got.body, &got.headers)
        .is_ok()
}

/// Polls a webhook's deliveries until `check` accepts them.
async fn deliveries_until(
    c: &Client,
    webhook: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let items = c
            .get(&format!("/webhooks/{webhook}/deliveries"))
            .await
            .expect(200)
            .items();
        if check(&items) {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "deliveries never matched: {items:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn events_are_delivered_signed_per_standard_webhooks() {
    let Setup {
        server: _server,
        org,
        c,
        receiver,
    } = setup().await;
    let (id, secret) = webhook(&c, &receiver.url, json!(["customer.created"])).await;
    let shown = c.get(&format!("/webhooks/{id}")).await.expect(200);
    assert!(
        shown.body.get("secret").is_none(),
        "the secret is shown once"
    );

    let customer = c.customer("Acme").await;
    c.project(&customer, "Not subscribed").await;
    let got = receiver.wait_for(1, 20).await;
    let first = &got[0];
    assert!(
        verify(&secret, first),
        "an independent Standard Webhooks verifier accepts it"
    );
    assert!(!verify(&crate::harness::other_secret(), first));
    let body = first.json();
    assert_eq!(body["type"], "customer.created");
    assert_eq!(body["organizationId"], org.id);
    assert_eq!(body["data"]["id"], customer);
    let event = c.get("/events?types=customer.created").await.items()[0].clone();
    assert_eq!(body["id"], event["id"]);
    assert_eq!(first.header("webhook-id"), event["id"].as_str().unwrap());
    assert_eq!(first.header("content-type"), "application/json");

    let items = deliveries_until(&c, &id, |d| d.len() == 1 && d[0]["status"] == "succeeded").await;
    assert_eq!(items[0]["attempts"][0]["statusCode"], 200);
    assert_eq!(items[0]["eventType"], "customer.created");
    // Only the subscribed type was sent.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(receiver.received().len(), 1);
}

#[tokio::test]
async fn a_failing_receiver_is_retried_with_the_same_id_until_it_succeeds() {
    let Setup {
        server: _server,
        org: _org,
        c,
        receiver,
    } = setup().await;
    receiver.script(vec![(500, vec![]), (502, vec![])]);
    let (id, secret) = webhook(&c, &receiver.url, json!(["*"])).await;
    c.customer("Retried").await;
    let got = receiver.wait_for(3, 20).await;
    let ids: HashSet<String> = got.iter().map(|g| g.header("webhook-id")).collect();
    assert_eq!(ids.len(), 1, "the webhook-id is stable across retries");
    assert!(got.iter().all(|g| verify(&secret, g)));
    let items = deliveries_until(&c, &id, |d| {
        d.first().is_some_and(|x| x["status"] == "succeeded")
    })
    .await;
    let attempts = items[0]["attempts"].as_array().unwrap();
    let codes: Vec<i64> = attempts
        .iter()
        .map(|a| a["statusCode"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, vec![500, 502, 200]);
    assert!(
        attempts[0]["responseExcerpt"]
            .as_str()
            .unwrap()
            .contains("ok")
    );
    assert!(
        attempts
            .iter()
            .all(|a| a["durationMs"].as_i64().unwrap() >= 0)
    );
}

#[tokio::test]
async fn retry_after_on_429_is_honoured() {
    let Setup {
        server: _server,
        org: _org,
        c,
        receiver,
    } = setup().await;
    receiver.script(vec![(429, vec![("retry-after", "2".into())])]);
    webhook(&c, &receiver.url, json!(["customer.created"])).await;
    c.customer("Patient").await;
    let got = receiver.wait_for(2, 20).await;
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(1800),
        "waited {gap:?}, not the 2 s asked (schedule says 100 ms)"
    );
}

#[tokio::test]
async fn after_the_last_attempt_a_delivery_is_dead_until_retried_by_hand() {
    let Setup {
        server: _server,
        org: _org,
        c,
        receiver,
    } = setup().await;
    receiver.answer_always(500);
    let (id, _) = webhook(&c, &receiver.url, json!(["customer.created"])).await;
    c.customer("Doomed").await;
    let items = deliveries_until(&c, &id, |d| {
        d.first().is_some_and(|x| x["status"] == "dead")
    })
    .await;
    assert_eq!(
        items[0]["attempts"].as_array().unwrap().len(),
        4,
        "the first attempt and three retries"
    );
    receiver.answer_always(200);
    let delivery = items[0]["id"].as_str().unwrap();
    let retried = c
        .post(
            &format!("/webhooks/{id}/deliveries/{delivery}/retry"),
            json!({}),
        )
        .await
        .expect(202);
    assert_eq!(retried.body["status"], "pending");
    deliveries_until(&c, &id, |d| d[0]["status"] == "succeeded").await;
    c.post(
        &format!("/webhooks/{id}/deliveries/dlv_nope/retry"),
        json!({}),
    )
    .await
    .expect_error(404, "not_found");
}

#[tokio::test]
async fn gone_disables_a_webhook_and_removes_a_rest_hook() {
    let Setup {
        server: _server,
        org: _org,
        c,
        receiver,
    } = setup().await;
    receiver.answer_always(410);
    let (id, _) = webhook(&c, &receiver.url, json!(["customer.created"])).await;
    let hook = c
        .post(
            "/hooks",
            json!({"targetUrl": format!("{}?zap=1", receiver.url), "event": "customer.created"}),
        )
        .await
        .expect(201)
        .id();
    c.customer("Gone").await;
    receiver.wait_for(2, 20).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let w = c.get(&format!("/webhooks/{id}")).await.expect(200);
        let hooks = c.get("/hooks").await.expect(200);
        if w.body["isEnabled"] == false && hooks.items().is_empty() {
            assert!(w.body["disabledReason"].as_str().unwrap().contains("410"));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not ended: {} {}",
            w.body,
            hooks.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = c
        .get("/events?types=webhook_endpoint.disabled")
        .await
        .expect(200);
    assert_eq!(events.items()[0]["resourceId"], id);
    c.get(&format!("/hooks/{hook}"))
        .await
        .expect_error(405, "method_not_allowed");
    // Enabling it again works and clears the reason.
    let again = c
        .patch(&format!("/webhooks/{id}"), json!({"isEnabled": true}))
        .await
        .expect(200);
    assert_eq!(again.body["disabledReason"], Value::Null);
}

#[tokio::test]
async fn a_rotated_secret_signs_beside_the_old_one() {
    let Setup {
        server: _server,
        org: _org,
        c,
        receiver,
    } = setup().await;
    let (id, old) = webhook(&c, &receiver.url, json!(["customer.created"])).await;
    let rotated = c
        .post(&format!("/webhooks/{id}/rotate-secret"), json!({}))
        .await
        .expect(200);
    let new = rotated.body["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    c.customer("Rotated").await;
    let got = receiver.wait_for(1, 20).await;
    assert!(
        verify(&new, &got[0]) && verify(&old, &got[0]),
        "{}",
        got[0].header("webhook-signature")
    );
    assert_eq!(got[0].header("webhook-signature").split(' ').count(), 2);
}

#[tokio::test]
async fn a_test_event_goes_to_its_webhook_only() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (a, b) = (Receiver::start().await, Receiver::start().await);
    let (id_a, _) = webhook(&c, &a.url, json!(["*"])).await;
    webhook(&c, &b.url, json!(["*"])).await;
    c.post(&format!("/webhooks/{id_a}/test"), json!({}))
        .await
        .expect(202);
    c.customer("After the test").await;
    let got_a = a.wait_for(2, 20).await;
    let got_b = b.wait_for(1, 20).await;
    let types_a: Vec<String> = got_a
        .iter()
        .map(|g| g.json()["type"].as_str().unwrap().to_owned())
        .collect();
    assert!(types_a.contains(&"webhook.test".to_owned()));
    assert!(got_b.iter().all(|g| g.json()["type"] != "webhook.test"));
}

#[tokio::test]
async fn rest_hooks_subscribe_idempotently_with_aliases_and_filters() {
    let Setup {
        server: _server,
        org: _org,
        c,
        receiver,
    } = setup().await;
    let first = c.post("/hooks", json!({"target_url": receiver.url, "event": "customer.created", "filters": {"name": "Acme"}})).await.expect(201);
    assert_eq!(first.body["targetUrl"], receiver.url);
    assert_eq!(first.body["event"], "customer.created");
    assert!(first.header("location").unwrap().ends_with(&first.id()));
    let again = c
        .post(
            "/hooks",
            json!({"url": receiver.url, "event": "customer.created"}),
        )
        .await
        .expect(200);
    assert_eq!(again.id(), first.id());
    let r = c
        .post(
            "/hooks",
            json!({"hookUrl": receiver.url, "event": "customer.exploded"}),
        )
        .await;
    assert_eq!(
        r.expect_error(422, "validation_failed").error_fields(),
        vec!["event"]
    );
    c.customer("Globex").await;
    c.customer("Acme").await;
    let got = receiver.wait_for(1, 20).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.received().len(),
        1,
        "only the customer matching the filter"
    );
    assert_eq!(got[0].json()["data"]["name"], "Acme");
    c.delete(&format!("/hooks/{}", first.id()))
        .await
        .expect(204);
    c.delete(&format!("/hooks/{}", first.id()))
        .await
        .expect(204);
    assert!(c.get("/hooks").await.items().is_empty());
}

#[tokio::test]
async fn private_targets_are_refused_unless_the_operator_allows_them() {
    // Saved while the operator allowed private targets (the harness's default)...
    let db = TestDb::new().await;
    let (dir, url) = (db.dir.clone(), db.url.clone());
    let mut open = Server::start_with(db, &[]).await;
    let org = open.db.bootstrap("business");
    let receiver = Receiver::start().await;
    let (kept, _) = webhook(
        &open.as_key(&org.key),
        &receiver.url,
        json!(["customer.created"]),
    )
    .await;
    assert!(open.terminate().success());
    drop(open);
    // ...then served without that permission, on the same database.
    let server =
        Server::start_with(TestDb { dir, url }, &[("TIMIX_ALLOW_PRIVATE_TARGETS", "0")]).await;
    let c = server.as_key(&org.key);
    // An address named outright is refused when saved, with the field's path.
    for target in [
        "http://127.0.0.1:9/hook",
        "http://localhost:9/hook",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://[64:ff9b::a9fe:a9fe]/latest/meta-data",
        "http://169.254.169.254/latest/meta-data",
        "http://10.0.0.7/hook",
        "http://[fd00::7]/hook",
    ] {
        let r = c.post("/webhooks", json!({"url": target})).await;
        assert_eq!(
            r.expect_error(422, "validation_failed").error_fields(),
            vec!["url"],
            "{target}"
        );
        let r = c
            .post(
                "/hooks",
                json!({"targetUrl": target, "event": "customer.created"}),
            )
            .await;
        assert_eq!(
            r.expect_error(422, "validation_failed").error_fields(),
            vec!["targetUrl"],
            "{target}"
        );
        let r = c
            .post(
                "/connections",
                json!({"name": "Inside", "type": "api_key", "baseUrl": target,
                       "credentials": {"apiKey": "k"}}),
            )
            .await;
        assert_eq!(
            r.expect_error(422, "validation_failed").error_fields(),
            vec!["baseUrl"],
            "{target}"
        );
    }
    let r = c
        .patch(
            &format!("/webhooks/{kept}"),
            json!({"url": "http://192.168.1.1/x"}),
        )
        .await;
    let details = &r.body["error"]["details"][0];
    assert_eq!(details["code"], "private_target", "{}", r.body);
    assert_eq!(
        r.expect_error(422, "validation_failed").error_fields(),
        vec!["url"]
    );
    // Public targets are fine.
    c.post("/webhooks", json!({"url": "https://example.com/hook"}))
        .await
        .expect(201);
    // A target saved earlier is refused again at delivery: nothing reaches it.
    c.customer("Blocked").await;
    let items = deliveries_until(&c, &kept, |d| {
        d.first()
            .is_some_and(|x| !x["attempts"].as_array().unwrap().is_empty())
    })
    .await;
    let error = items[0]["attempts"][0]["error"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        error.contains("private") || error.contains("loopback"),
        "{error}"
    );
    assert!(
        receiver.received().is_empty(),
        "nothing reached the private address"
    );
    let r = c
        .post("/webhooks", json!({"url": "ftp://example.com/x"}))
        .await;
    assert_eq!(
        r.expect_error(422, "validation_failed").error_fields(),
        vec!["url"]
    );
}

#[tokio::test]
async fn kill_9_in_the_middle_of_a_burst_loses_no_acknowledged_event() {
    let db = TestDb::new().await;
    let (dir, url) = (db.dir.clone(), db.url.clone());
    let env = [
        ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
        ("TIMIX_WEBHOOK_RETRY_SCHEDULE", "100ms,200ms,300ms,1s,1s,1s"),
    ];
    let server = Server::start_with(db, &env).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    receiver.slow(Duration::from_millis(40));
    webhook(&c, &receiver.url, json!(["customer.created"])).await;

    // A burst of creates from several clients; kill -9 while it and its deliveries are in flight.
    let mut writers = Vec::new();
    for w in 0..4 {
        let c = c.clone();
        writers.push(tokio::spawn(async move {
            let mut acked = Vec::new();
            for i in 0..40 {
                let r = c
                    .request(reqwest::Method::POST, "/customers")
                    .json(&json!({"name": format!("W{w}-{i}")}))
                    .send()
                    .await;
                match r {
                    Ok(r) if r.status() == 201 => acked.push(
                        r.json::<Value>().await.unwrap()["id"]
                            .as_str()
                            .unwrap()
                            .to_owned(),
                    ),
                    _ => break,
                }
            }
            acked
        }));
    }
    receiver.wait_for(10, 30).await;
    crate::harness::signal(server.pid(), "KILL");
    let mut acknowledged = HashSet::new();
    for w in writers {
        acknowledged.extend(w.await.unwrap());
    }
    drop(server);
    assert!(
        acknowledged.len() >= 10,
        "the burst was under way: {}",
        acknowledged.len()
    );

    let restarted = Server::start_with(TestDb { dir, url }, &env).await;
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let delivered: HashSet<String> = receiver
            .received()
            .iter()
            .map(|g| g.json()["data"]["id"].as_str().unwrap().to_owned())
            .collect();
        let missing: Vec<&String> = acknowledged
            .iter()
            .filter(|id| !delivered.contains(*id))
            .collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} acknowledged customers never delivered, e.g. {:?}",
            missing.len(),
            &missing[..missing.len().min(3)]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(restarted);
}

#[tokio::test]
async fn a_webhook_failing_for_five_days_is_disabled() {
    let Setup {
        server,
        org: _org,
        c,
        receiver,
    } = setup().await;
    receiver.answer_always(500);
    let (id, _) = webhook(&c, &receiver.url, json!(["customer.created"])).await;
    // Its failure streak began six days ago.
    let six_days_ago = chrono_ms() - 6 * 24 * 3600 * 1000;
    crate::harness::execute(
        &server.db,
        &format!("UPDATE subscriptions SET failing_since = {six_days_ago} WHERE id = '{id}'"),
    )
    .await;
    c.customer("Straw").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let w = c.get(&format!("/webhooks/{id}")).await.expect(200);
        if w.body["isEnabled"] == false {
            assert!(
                w.body["disabledReason"]
                    .as_str()
                    .unwrap()
                    .contains("five days"),
                "{}",
                w.body
            );
            break;
        }
        assert!(Instant::now() < deadline, "never disabled: {}", w.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let events = c
        .get("/events?types=webhook_endpoint.disabled")
        .await
        .expect(200);
    assert_eq!(events.items().len(), 1);
    assert_eq!(
        events.items()[0]["data"]["reason"],
        "every delivery failed for five days"
    );
}

fn chrono_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn two_processes_on_one_postgres_dispatch_each_event_once() {
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
        ("TIMIX_WEBHOOK_RETRY_SCHEDULE", "100ms,200ms"),
    ];
    let a = Server::start_with(db, &env).await;
    let b = Server::start_with(shared, &env).await;
    let org = a.db.bootstrap("business");
    let (ca, cb) = (a.as_key(&org.key), b.as_key(&org.key));
    let receiver = Receiver::start().await;
    webhook(&ca, &receiver.url, json!(["customer.created"])).await;
    for i in 0..30 {
        let c = if i % 2 == 0 { &ca } else { &cb };
        c.customer(&format!("Shared {i}")).await;
    }
    let got = receiver.wait_for(30, 30).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got = if receiver.received().len() > got.len() {
        receiver.received()
    } else {
        got
    };
    let ids: HashSet<String> = got.iter().map(|g| g.header("webhook-id")).collect();
    assert_eq!(ids.len(), 30, "every event delivered");
    assert_eq!(
        got.len(),
        30,
        "and each once: one dispatcher works at a time"
    );
}

#[tokio::test]
async fn webhooks_are_managed_by_admins_in_their_own_organization() {
    let server = server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (_, manager) = c.user_with_key(&server.db, "manager").await;
    manager
        .post("/webhooks", json!({"url": "https://example.com/x"}))
        .await
        .expect_error(403, "forbidden");
    manager
        .get("/webhooks")
        .await
        .expect_error(403, "forbidden");
    manager
        .post(
            "/hooks",
            json!({"targetUrl": "https://example.com/x", "event": "customer.created"}),
        )
        .await
        .expect_error(403, "forbidden");

    let (id, _) = webhook(&c, "https://example.com/a", json!(["*"])).await;
    webhook(
        &c,
        "https://example.com/b",
        json!(["customer.created", "project.updated"]),
    )
    .await;
    c.post(
        "/hooks",
        json!({"targetUrl": "https://example.com/z", "event": "customer.created"}),
    )
    .await
    .expect(201);
    let list = c.get("/webhooks").await.expect(200);
    assert_eq!(
        list.body["totalCount"], 2,
        "hooks are not webhooks: {}",
        list.body
    );
    assert!(list.items().iter().all(|w| w.get("secret").is_none()));
    let r = c
        .patch(
            &format!("/webhooks/{id}"),
            json!({"events": ["customer.teleported"]}),
        )
        .await;
    assert_eq!(
        r.expect_error(422, "validation_failed").error_fields(),
        vec!["events"]
    );
    let r = c
        .patch(
            &format!("/webhooks/{id}"),
            json!({"url": "https://example.com/new", "description": "Billing"}),
        )
        .await
        .expect(200);
    assert_eq!(r.body["url"], "https://example.com/new");
    let r = c
        .post(
            "/webhooks",
            json!({"url": "https://example.com/x", "events": []}),
        )
        .await;
    assert_eq!(
        r.expect_error(422, "validation_failed").error_fields(),
        vec!["events"]
    );

    let other = server.db.bootstrap("business");
    let them = server.as_key(&other.key);
    them.get(&format!("/webhooks/{id}"))
        .await
        .expect_error(404, "not_found");
    them.post(&format!("/webhooks/{id}/test"), json!({}))
        .await
        .expect_error(404, "not_found");
    them.get(&format!("/webhooks/{id}/deliveries"))
        .await
        .expect_error(404, "not_found");
    assert_eq!(them.get("/webhooks").await.body["totalCount"], 0);

    c.delete(&format!("/webhooks/{id}")).await.expect(204);
    c.get(&format!("/webhooks/{id}"))
        .await
        .expect_error(404, "not_found");
}
