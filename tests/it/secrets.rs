//! Secrets at rest: the data dir and its files are the owner's alone, webhook signing secrets
//! and inbound webhook secrets are sealed in the database (also those an earlier version stored
//! in plaintext, sealed at start), and inbound webhook tokens stay out of the logs.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::harness::{Client, Server, TestDb, backend, execute, hmac_hex, query_texts};
use crate::receiver::{Received, Receiver};

/// What a sealed secret starts with in the database.
const SEALED: &str = "sealed:v1:";

fn verifies(secret: &str, got: &Received) -> bool {
    standardwebhooks::Webhook::new(secret)
        .unwrap()
        .verify(&got.body, &got.headers)
        .is_ok()
}

/// Waits (at most 20 s) until the receiver got `n` requests.
async fn received(receiver: &Receiver, n: usize) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = receiver.received();
        if got.len() >= n {
            return got;
        }
        assert!(Instant::now() < deadline, "only {} received", got.len());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most 20 s) until a run of `flow` succeeded.
async fn succeeded_run(c: &Client, flow: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let runs = c.get(&format!("/runs?flowId={flow}")).await.expect(200);
        if let Some(run) = runs
            .items()
            .into_iter()
            .find(|r| r["status"] == "succeeded")
        {
            return run;
        }
        assert!(Instant::now() < deadline, "no run succeeded: {}", runs.body);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Waits (at most 10 s) until the server's log has a line containing `text`.
fn wait_for_log(server: &Server, text: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let log = server.log.lock().unwrap().clone();
        if log.contains(text) {
            return log;
        }
        assert!(Instant::now() < deadline, "no {text:?} in the log:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(unix)]
fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[cfg(unix)]
fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[cfg(unix)]
#[tokio::test]
async fn the_data_dir_and_its_files_are_the_owners_alone() {
    let db = TestDb::new().await;
    let data = db.dir.join("data");
    // What an earlier version (or a lax umask) left: readable by everyone.
    std::fs::create_dir_all(&data).unwrap();
    set_mode(&data, 0o755);
    let key = data.join("secret.key");
    std::fs::write(&key, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=").unwrap();
    set_mode(&key, 0o644);
    let sqlite = backend() == "sqlite";
    if sqlite {
        // An empty file is an empty SQLite database.
        std::fs::write(data.join("timix.db"), b"").unwrap();
        set_mode(&data.join("timix.db"), 0o644);
    }
    let server = Server::start_with(db, &[]).await;
    let log = wait_for_log(&server, "Tightened the data dir");
    assert!(log.contains("secret.key"), "{log}");
    let org = server.db.bootstrap("business");
    server.as_key(&org.key).customer("Written").await;

    assert_eq!(mode(&data), 0o700);
    let mut expected = vec!["secret.key"];
    if sqlite {
        expected.extend([
            "timix.db",
            "timix.db-wal",
            "timix.db-shm",
            "timix-queue.db",
            "timix-queue.db-wal",
            "timix-queue.db-shm",
        ]);
    }
    let present: Vec<String> = std::fs::read_dir(&data)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    for name in expected {
        assert!(present.iter().any(|p| p == name), "{name} in {present:?}");
    }
    for name in &present {
        assert_eq!(mode(&data.join(name)), 0o600, "{name}");
    }

    // A fresh data dir is made private from the start.
    let fresh = TestDb::new().await;
    let fresh_data = fresh.dir.join("data");
    let server = Server::start_with(fresh, &[]).await;
    let org = server.db.bootstrap("business");
    server.as_key(&org.key).customer("Written").await;
    assert_eq!(mode(&fresh_data), 0o700);
    for entry in std::fs::read_dir(&fresh_data).unwrap() {
        let path = entry.unwrap().path();
        assert_eq!(mode(&path), 0o600, "{}", path.display());
    }
    assert!(
        !server
            .log
            .lock()
            .unwrap()
            .contains("Tightened the data dir"),
        "nothing to tighten"
    );
}

/// Every stored value that could hold a secret, as text.
async fn stored_texts(db: &TestDb) -> Vec<String> {
    let mut texts = Vec::new();
    for sql in [
        "SELECT secret FROM subscriptions",
        "SELECT previous_secret FROM subscriptions WHERE previous_secret IS NOT NULL",
        "SELECT webhook_secret FROM flows WHERE webhook_secret IS NOT NULL",
        "SELECT trigger FROM flows",
        "SELECT data FROM events",
    ] {
        texts.extend(query_texts(db, sql).await);
    }
    texts
}

#[tokio::test]
async fn signing_secrets_are_sealed_at_rest_and_still_sign_and_verify() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    let created = c
        .post(
            "/webhooks",
            json!({"url": receiver.url, "events": ["customer.created"]}),
        )
        .await
        .expect(201);
    let webhook = created.id();
    let first = created.body["secret"].as_str().unwrap().to_owned();
    let rotated = c
        .post(&format!("/webhooks/{webhook}/rotate-secret"), json!({}))
        .await
        .expect(200);
    let second = rotated.body["secret"].as_str().unwrap().to_owned();
    let hook_secret = "an-inbound-secret-never-stored";
    let flow = c
        .post(
            "/flows",
            json!({"name": "Inbound", "trigger": {"type": "webhook", "signature": "hmac", "secret": hook_secret},
                   "steps": [{"key": "customer", "action": "create_customer",
                              "input": {"name": "{{trigger.name}}"}}]}),
        )
        .await
        .expect(201);

    let texts = stored_texts(&server.db).await;
    for secret in [&first, &second, &hook_secret.to_owned()] {
        assert!(
            texts.iter().all(|t| !t.contains(secret.as_str())),
            "{secret} is stored in the clear"
        );
    }
    for sql in [
        "SELECT secret FROM subscriptions",
        "SELECT previous_secret FROM subscriptions",
        "SELECT webhook_secret FROM flows",
    ] {
        let values = query_texts(&server.db, sql).await;
        assert!(!values.is_empty());
        assert!(values.iter().all(|v| v.starts_with(SEALED)), "{values:?}");
    }

    // Deliveries are signed with both secrets during the rotation.
    c.customer("Signed").await;
    let got = received(&receiver, 1).await;
    assert!(verifies(&second, &got[0]));
    assert!(verifies(&first, &got[0]));
    // Inbound calls still verify.
    let url = flow.body["trigger"]["webhookUrl"].as_str().unwrap();
    let body = json!({"name": "Inbound customer"}).to_string();
    let anonymous = server.anonymous();
    let call = anonymous
        .request(reqwest::Method::POST, url)
        .header(
            "X-Timix-Signature",
            format!("sha256={}", hmac_hex(hook_secret, body.as_bytes())),
        )
        .body(body);
    anonymous.send(call).await.expect(202);
    succeeded_run(&c, &flow.id()).await;
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[tokio::test]
async fn plaintext_secrets_of_an_earlier_version_are_sealed_at_start_and_keep_working() {
    let db = TestDb::new().await;
    let (dir, url) = (db.dir.clone(), db.url.clone());
    let mut first = Server::start_with(db, &[]).await;
    let org = first.db.bootstrap("business");
    assert!(first.terminate().success());
    drop(first);

    // Rows as an earlier version wrote them: secrets in plaintext, the inbound one also inside
    // the trigger, and no signature scheme.
    let receiver = Receiver::start().await;
    let (current, previous) = (
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "whsec_dGhlIHByZXZpb3VzIHNlY3JldCwgMzIgYnl0ZXM=",
    );
    let inbound_secret = "legacy-inbound-secret-16";
    let token = "LegacyToken0123456789abcdefABCDEF";
    let now = now_ms();
    let db = TestDb { dir, url };
    execute(
        &db,
        &format!(
            "INSERT INTO subscriptions (id, org_id, kind, url, events, is_enabled, secret, previous_secret, \
             previous_secret_until, created_by, created_at, updated_at) VALUES ('whk_legacy', '{}', 'webhook', \
             '{}', '[\"customer.created\"]', 1, '{current}', '{previous}', {}, '{}', {now}, {now})",
            org.id,
            receiver.url,
            now + 3_600_000,
            org.owner_id
        ),
    )
    .await;
    let steps = r#"[{"key":"customer","action":"create_customer","connectionId":null,"input":{"name":"{{trigger.name}}"}}]"#;
    execute(
        &db,
        &format!(
            "INSERT INTO flows (id, org_id, name, is_enabled, trigger_type, event_type, trigger, steps, webhook_token, \
             webhook_secret, created_by, enabled_at, created_at, updated_at) VALUES ('flw_legacy', '{}', 'Legacy', 1, \
             'webhook', NULL, '{{\"secret\":\"{inbound_secret}\",\"type\":\"webhook\"}}', '{steps}', '{token}', \
             '{inbound_secret}', '{}', {now}, {now}, {now})",
            org.id, org.owner_id
        ),
    )
    .await;

    let server = Server::start_with(db, &[]).await;
    wait_for_log(&server, "Sealed webhook secrets");
    let texts = stored_texts(&server.db).await;
    for secret in [current, previous, inbound_secret] {
        assert!(
            texts.iter().all(|t| !t.contains(secret)),
            "{secret} is still in the clear"
        );
    }
    let sealed = [
        query_texts(&server.db, "SELECT secret FROM subscriptions").await,
        query_texts(&server.db, "SELECT previous_secret FROM subscriptions").await,
        query_texts(&server.db, "SELECT webhook_secret FROM flows").await,
    ]
    .concat();
    assert!(sealed.iter().all(|v| v.starts_with(SEALED)), "{sealed:?}");
    let c = server.as_key(&org.key);
    let flow = c.get("/flows/flw_legacy").await.expect(200).body;
    assert_eq!(flow["trigger"]["signature"], "hmac", "{flow}");
    assert_eq!(flow["trigger"]["hasSecret"], true);
    assert!(flow["trigger"].get("secret").is_none());

    // The sender of the old flow signs as before, and it verifies.
    let body = json!({"name": "From the legacy sender"}).to_string();
    let anonymous = server.anonymous();
    let call = anonymous
        .request(
            reqwest::Method::POST,
            &format!("/api/integration/v1/hooks/in/{token}"),
        )
        .header(
            "X-Timix-Signature",
            format!("sha256={}", hmac_hex(inbound_secret, body.as_bytes())),
        )
        .body(body);
    anonymous.send(call).await.expect(202);
    succeeded_run(&c, "flw_legacy").await;
    // The old webhook is still signed with its secrets (both, until the rotation ends).
    c.customer("Delivered").await;
    let got = received(&receiver, 1).await;
    assert!(verifies(current, &got[0]));
    assert!(verifies(previous, &got[0]));

    // Once sealed, a restart changes nothing.
    let (dir, url) = (server.db.dir.clone(), server.db.url.clone());
    let mut server = server;
    assert!(server.terminate().success());
    drop(server);
    let again = Server::start_with(TestDb { dir, url }, &[]).await;
    let resealed = [
        query_texts(&again.db, "SELECT secret FROM subscriptions").await,
        query_texts(&again.db, "SELECT previous_secret FROM subscriptions").await,
        query_texts(&again.db, "SELECT webhook_secret FROM flows").await,
    ]
    .concat();
    assert_eq!(resealed, sealed);
    assert!(!again.log.lock().unwrap().contains("Sealed webhook secrets"));
}

#[tokio::test]
async fn inbound_webhook_tokens_stay_out_of_the_logs() {
    // Debug: every request is logged with its span (method and path).
    let server = Server::start_with(
        TestDb::new().await,
        &[("TIMIX_LOG", "info,timix_web=debug")],
    )
    .await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (flow, url) = c
        .webhook_flow(json!({"type": "webhook"}), "{{trigger.name}}")
        .await;
    let token = url.rsplit('/').next().unwrap().to_owned();
    let anonymous = server.anonymous();
    anonymous
        .send(
            anonymous
                .request(reqwest::Method::POST, &url)
                .body("{\"name\": \"Logged\"}"),
        )
        .await
        .expect(202);
    let unknown = "UnknownTokenThatIsNotInTheLogs42";
    anonymous
        .send(anonymous.request(
            reqwest::Method::POST,
            &format!("/api/integration/v1/hooks/in/{unknown}"),
        ))
        .await
        .expect_error(404, "not_found");
    succeeded_run(&c, &flow).await;
    let log = wait_for_log(&server, "/hooks/in/<redacted>");
    assert!(!log.contains(&token), "the token is in the log:\n{log}");
    assert!(!log.contains(unknown), "a token is in the log:\n{log}");
}
