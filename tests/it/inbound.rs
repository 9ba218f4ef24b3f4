//! Inbound webhook triggers: each sender's signature scheme (Standard Webhooks, Stripe, GitHub,
//! Slack, the body-only HMAC), late replays refused, retries deduplicated, the scheme checked
//! when a flow is saved, and flows that could not run refusing calls instead of queueing runs.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::harness::{Client, Resp, Server, sample};

/// A Standard Webhooks secret (the specification's test vector's).
const WHSEC: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn hmac_hex(key: &str, parts: &[&[u8]]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn webhook_flow(c: &Client, trigger: Value) -> (String, String) {
    c.webhook_flow(trigger, "{{trigger.name}}").await
}

/// A call as a sender makes it: the body and the headers its scheme signs with.
struct Signed {
    body: String,
    headers: Vec<(String, String)>,
}

/// Signs `name`'s call as `scheme`'s sender does, at `ts`, under `delivery`.
fn sign(scheme: &str, secret: &str, ts: i64, delivery: &str, name: &str) -> Signed {
    let pair = |k: &str, v: String| (k.to_owned(), v);
    match scheme {
        "standard" => {
            let body = json!({"name": name}).to_string();
            // Signed by the Standard Webhooks reference library, not by timix's own code.
            let signature = standardwebhooks::Webhook::new(secret)
                .unwrap()
                .sign(delivery, ts, body.as_bytes())
                .unwrap();
            Signed {
                headers: vec![
                    pair("webhook-id", delivery.to_owned()),
                    pair("webhook-timestamp", ts.to_string()),
                    pair("webhook-signature", signature),
                ],
                body,
            }
        }
        "stripe" => {
            let body = json!({"id": delivery, "object": "event", "name": name}).to_string();
            let v1 = hmac_hex(secret, &[ts.to_string().as_bytes(), b".", body.as_bytes()]);
            Signed {
                headers: vec![pair("Stripe-Signature", format!("t={ts},v1={v1}"))],
                body,
            }
        }
        "github" => {
            let body = json!({"action": "opened", "name": name}).to_string();
            let signature = hmac_hex(secret, &[body.as_bytes()]);
            Signed {
                headers: vec![
                    pair("X-Hub-Signature-256", format!("sha256={signature}")),
                    pair("X-GitHub-Delivery", delivery.to_owned()),
                    pair("X-GitHub-Event", "issues".to_owned()),
                ],
                body,
            }
        }
        "slack" => {
            let body =
                json!({"type": "event_callback", "event_id": delivery, "name": name}).to_string();
            let v0 = hmac_hex(
                secret,
                &[b"v0:", ts.to_string().as_bytes(), b":", body.as_bytes()],
            );
            Signed {
                headers: vec![
                    pair("X-Slack-Request-Timestamp", ts.to_string()),
                    pair("X-Slack-Signature", format!("v0={v0}")),
                ],
                body,
            }
        }
        _ => {
            let body = json!({"name": name}).to_string();
            let signature = hmac_hex(secret, &[body.as_bytes()]);
            Signed {
                headers: vec![
                    pair("X-Timix-Signature", format!("sha256={signature}")),
                    pair("webhook-id", delivery.to_owned()),
                ],
                body,
            }
        }
    }
}

async fn post(server: &Server, url: &str, body: &str, headers: &[(String, String)]) -> Resp {
    let anonymous = server.anonymous();
    let mut request = anonymous
        .request(reqwest::Method::POST, url)
        .header("content-type", "application/json")
        .body(body.to_owned());
    for (name, value) in headers {
        request = request.header(name, value);
    }
    anonymous.send(request).await
}

/// Waits until a flow has `n` runs, all finished, and answers them.
async fn finished_runs(c: &Client, flow: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = c.get(&format!("/runs?flowId={flow}")).await.expect(200);
        let items = runs.items();
        if items.len() == n
            && items
                .iter()
                .all(|r| r["status"] == "succeeded" || r["status"] == "failed")
        {
            return items;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} finished runs of {flow}: {}",
            runs.body
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn each_signature_scheme_takes_signed_calls_once_and_refuses_late_replays() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let cases = [
        ("standard", WHSEC, true),
        ("stripe", "whsec_stripe_endpoint_secret", true),
        ("github", "It's a Secret to Everybody", false),
        ("slack", "8f742231b10e8888abcd99yyyzzz85a5", true),
        ("hmac", "a-shared-secret-of-32-characters", false),
    ];
    for (scheme, secret, timestamped) in cases {
        let (flow, url) = webhook_flow(
            &c,
            json!({"type": "webhook", "signature": scheme, "secret": secret}),
        )
        .await;
        let shown = c.get(&format!("/flows/{flow}")).await.expect(200);
        assert_eq!(shown.body["trigger"]["signature"], scheme);
        assert_eq!(shown.body["trigger"]["hasSecret"], true);

        // A signed call starts a run.
        let call = sign(scheme, secret, now(), &format!("{scheme}-1"), scheme);
        let first = post(&server, &url, &call.body, &call.headers)
            .await
            .expect(202);
        assert!(first.body["runId"].is_string(), "{scheme}: {}", first.body);
        // The sender's retry (the same delivery id) starts none.
        let retry = post(&server, &url, &call.body, &call.headers)
            .await
            .expect(202);
        assert_eq!(retry.body["duplicate"], true, "{scheme}");
        assert!(retry.body["runId"].is_null(), "{scheme}");

        // A wrong signature, or none, is refused.
        let tampered = call.body.replace(scheme, "someone else");
        post(&server, &url, &tampered, &call.headers)
            .await
            .expect_error(401, "invalid_signature");
        post(&server, &url, &call.body, &[])
            .await
            .expect_error(401, "invalid_signature");
        if scheme != "standard" {
            let other = sign(scheme, "another-secret-of-20c", now(), "x", scheme);
            post(&server, &url, &other.body, &other.headers)
                .await
                .expect_error(401, "invalid_signature");
        }

        // The same call signed 10 minutes ago, re-sent with a fresh delivery id.
        let late = sign(scheme, secret, now() - 600, &format!("{scheme}-2"), scheme);
        let replay = post(&server, &url, &late.body, &late.headers).await;
        if timestamped {
            replay.expect_error(401, "timestamp_out_of_tolerance");
            finished_runs(&c, &flow, 1).await;
        } else {
            // GitHub and the body-only HMAC sign no time: only the delivery id dedupes.
            replay.expect(202);
            finished_runs(&c, &flow, 2).await;
        }
        let runs = finished_runs(&c, &flow, if timestamped { 1 } else { 2 }).await;
        assert!(
            runs.iter().all(|r| r["status"] == "succeeded"),
            "{scheme}: {runs:?}"
        );
    }
    // Slack's request-URL check and slash commands carry no event id: an identical replay
    // inside the window is the same delivery.
    let (flow, url) = webhook_flow(
        &c,
        json!({"type": "webhook", "signature": "slack", "secret": "8f742231b10e8888abcd99yyyzzz85a5"}),
    )
    .await;
    let ts = now().to_string();
    let body = "name=slash&command=%2Ftimix";
    let v0 = hmac_hex(
        "8f742231b10e8888abcd99yyyzzz85a5",
        &[b"v0:", ts.as_bytes(), b":", body.as_bytes()],
    );
    let headers = [
        ("X-Slack-Request-Timestamp".to_owned(), ts),
        ("X-Slack-Signature".to_owned(), format!("v0={v0}")),
    ];
    post(&server, &url, body, &headers).await.expect(202);
    let again = post(&server, &url, body, &headers).await.expect(202);
    assert_eq!(again.body["duplicate"], true);
    finished_runs(&c, &flow, 1).await;
}

#[tokio::test]
async fn the_signature_scheme_is_checked_when_saved_and_kept_when_re_saved() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let steps = json!([{"key": "customer", "action": "create_customer",
                        "input": {"name": "{{trigger.name}}"}}]);
    let refused = [
        (
            json!({"type": "webhook", "signature": "svix", "secret": WHSEC}),
            "trigger.signature",
        ),
        (
            json!({"type": "webhook", "signature": "github"}),
            "trigger.signature",
        ),
        (
            json!({"type": "webhook", "signature": "stripe", "secret": null}),
            "trigger.signature",
        ),
        (
            json!({"type": "webhook", "signature": 7, "secret": WHSEC}),
            "trigger.signature",
        ),
        // The default scheme, Standard Webhooks, takes whsec_ secrets only.
        (
            json!({"type": "webhook", "secret": "not base64, but long enough"}),
            "trigger.secret",
        ),
    ];
    for (trigger, field) in refused {
        let r = c
            .post(
                "/flows",
                json!({"name": "Bad", "trigger": trigger, "steps": steps}),
            )
            .await;
        assert_eq!(
            r.expect_error(422, "validation_failed").error_fields(),
            vec![field],
            "{trigger}"
        );
    }

    // With a secret and no scheme: Standard Webhooks.
    let (flow, url) = webhook_flow(&c, json!({"type": "webhook", "secret": WHSEC})).await;
    let read = c.get(&format!("/flows/{flow}")).await.expect(200).body;
    assert_eq!(read["trigger"]["signature"], "standard");
    // Re-saving what was read (without the secret, never shown) keeps the secret and scheme.
    let saved = c
        .patch(
            &format!("/flows/{flow}"),
            json!({"name": "Renamed", "trigger": read["trigger"]}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(saved["trigger"]["signature"], "standard");
    assert_eq!(saved["trigger"]["hasSecret"], true);
    let call = sign("standard", WHSEC, now(), "msg_kept", "kept");
    post(&server, &url, &call.body, &call.headers)
        .await
        .expect(202);
    // A trigger re-sent without its scheme keeps it too.
    let saved = c
        .patch(
            &format!("/flows/{flow}"),
            json!({"trigger": {"type": "webhook"}}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(saved["trigger"]["signature"], "standard");
    // Another scheme with its secret.
    let saved = c
        .patch(
            &format!("/flows/{flow}"),
            json!({"trigger": {"type": "webhook", "signature": "github",
                               "secret": "It's a Secret to Everybody"}}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(saved["trigger"]["signature"], "github");
    let call = sign("github", "It's a Secret to Everybody", now(), "gh-1", "gh");
    post(&server, &url, &call.body, &call.headers)
        .await
        .expect(202);
    // Without a secret the URL alone is the credential: no scheme.
    let saved = c
        .patch(
            &format!("/flows/{flow}"),
            json!({"trigger": {"type": "webhook", "secret": null}}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(saved["trigger"]["signature"], Value::Null);
    assert_eq!(saved["trigger"]["hasSecret"], false);
    post(&server, &url, "{\"name\": \"open\"}", &[])
        .await
        .expect(202);
    finished_runs(&c, &flow, 3).await;
}

#[tokio::test]
async fn a_flow_that_cannot_run_refuses_inbound_calls_instead_of_queueing_runs() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (admin_id, admin) = c.user_with_key(&server.db, "admin").await;
    let (by_admin, admin_url) = webhook_flow(&admin, json!({"type": "webhook"})).await;
    let (by_owner, owner_url) = webhook_flow(&c, json!({"type": "webhook"})).await;
    post(&server, &admin_url, "{\"name\": \"First\"}", &[])
        .await
        .expect(202);
    finished_runs(&c, &by_admin, 1).await;

    // The owner whose role the steps act with is deactivated: 409, no run.
    c.patch(
        &format!("/org-users/{admin_id}"),
        json!({"isActive": false}),
    )
    .await
    .expect(200);
    post(&server, &admin_url, "{\"name\": \"Second\"}", &[])
        .await
        .expect_error(409, "flow_owner_inactive");
    // Removed: the same.
    c.delete(&format!("/org-users/{admin_id}"))
        .await
        .expect(204);
    post(&server, &admin_url, "{\"name\": \"Third\"}", &[])
        .await
        .expect_error(409, "flow_owner_inactive");
    finished_runs(&c, &by_admin, 1).await;

    // A read-only organization: 403, as its writes; no run.
    server
        .db
        .cli(&["org", "update", &org.id, "--billing-state", "read_only"]);
    post(&server, &owner_url, "{\"name\": \"Fourth\"}", &[])
        .await
        .expect_error(403, "organization_read_only");
    assert!(
        c.get(&format!("/runs?flowId={by_owner}"))
            .await
            .expect(200)
            .items()
            .is_empty()
    );
    // Active again: calls start runs again.
    server
        .db
        .cli(&["org", "update", &org.id, "--billing-state", "active"]);
    post(&server, &owner_url, "{\"name\": \"Fifth\"}", &[])
        .await
        .expect(202);
    finished_runs(&c, &by_owner, 1).await;
}

#[tokio::test]
async fn a_backlog_past_the_limit_refuses_calls_with_503_and_loses_nothing_accepted() {
    let env = [
        ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
        ("TIMIX_INBOUND_BACKLOG", "5s"),
        ("TIMIX_METRICS_TOKEN", "backlog-metrics"),
    ];
    let server = Server::start_with(crate::harness::TestDb::new().await, &env).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    // Every run's one step takes 8 s at the receiver, so runs wait for the 32 workers.
    let receiver = crate::receiver::Receiver::start().await;
    receiver.slow(Duration::from_secs(8));
    let flow = c
        .post(
            "/flows",
            json!({"name": "Forward", "trigger": {"type": "webhook"},
                   "steps": [{"key": "send", "action": "http_request",
                              "input": {"method": "POST", "url": receiver.url, "body": {"n": "{{trigger.n}}"}}}]}),
        )
        .await
        .expect(201);
    let id = flow.id();
    let url = flow.body["trigger"]["webhookUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    // Calls sent at once, each on its own task, answered in the order sent.
    let calls = |numbers: std::ops::Range<usize>| {
        let mut set = tokio::task::JoinSet::new();
        for n in numbers {
            let (anonymous, url) = (server.anonymous(), url.clone());
            set.spawn(async move { (n, anonymous.post(&url, json!({"n": n})).await) });
        }
        async move {
            let mut answers = set.join_all().await;
            answers.sort_by_key(|(n, _)| *n);
            answers
                .into_iter()
                .map(|(_, answer)| answer)
                .collect::<Vec<_>>()
        }
    };

    // 100 calls at once: 32 runs start and the others wait, more than the 64 that may wait.
    let first = calls(0..100).await;
    assert!(first.iter().all(|r| r.status == 202), "all accepted");
    // The next call's answer waits for room (a second at most; no run starts in it), and as
    // the oldest run has waited less than the 5 s allowed, it is accepted.
    assert_eq!(calls(100..101).await[0].status, 202);
    // Once the oldest waiting run has waited more than 5 s (it starts at 8 s), calls are
    // refused before anything is written, with the wait as Retry-After.
    let metrics = || server.metrics("backlog-metrics");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let oldest = sample(&metrics().await, "timix_run_backlog_oldest_seconds").unwrap();
        if oldest > 5.1 {
            break;
        }
        assert!(Instant::now() < deadline, "oldest wait {oldest}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let refused = calls(101..111).await;
    for answer in &refused {
        assert_eq!(answer.status, 503, "{:?}", answer.body);
        assert_eq!(answer.body["error"]["code"], "overloaded");
        let retry: u64 = answer.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=60).contains(&retry), "Retry-After: {retry}");
    }
    let metrics = metrics().await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "timix_inbound_calls_total{outcome=\"refused\"} 10"),
        "{metrics}"
    );
    let held: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("timix_inbound_calls_total{outcome=\"held\"} "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(held >= 1, "{metrics}");

    // The receiver answers at once from now on: the backlog drains.
    receiver.slow(Duration::ZERO);

    // Every accepted call's run is done, once; the refused ones started nothing.
    let deadline = Instant::now() + Duration::from_secs(90);
    let runs = loop {
        let runs = c
            .get(&format!("/runs?flowId={id}&limit=200"))
            .await
            .expect(200)
            .items();
        if runs.iter().filter(|r| r["status"] == "succeeded").count() == 101 {
            break runs;
        }
        assert!(Instant::now() < deadline, "{} runs", runs.len());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(runs.len(), 101);
    let mut sent: Vec<u64> = receiver
        .received()
        .iter()
        .map(|r| match &r.json()["n"] {
            Value::String(n) => n.parse().unwrap(),
            n => n.as_u64().unwrap(),
        })
        .collect();
    sent.sort_unstable();
    assert_eq!(sent, (0..101).collect::<Vec<u64>>());
    // Drained: calls are accepted at once again.
    assert_eq!(calls(111..112).await[0].status, 202);
}
