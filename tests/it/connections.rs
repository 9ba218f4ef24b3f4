//! Connections (sealed, write-only credentials; tests; refusals) and what flows do with them:
//! poll triggers that mirror another organization over HTTP with an API key, across restarts
//! without duplicates; HTTP sources that fail and back off; steps that act through a connection.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::harness::{Client, Server, TestDb, query_texts};

const BASE: &str = "/api/integration/v1";

/// A server that may call loopback targets, with quick retries and short leases (a process
/// killed in the middle of a poll or a run holds it until its lease ends).
async fn server_on(db: TestDb) -> Server {
    Server::start_with(
        db,
        &[
            ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
            ("TIMIX_FLOW_RETRY_BASE", "100ms"),
            ("TIMIX_RUN_LEASE", "3s"),
        ],
    )
    .await
}

/// Waits until `check` holds (at most `seconds`), polling every 100 ms.
async fn eventually<F, Fut>(seconds: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(seconds);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn names(c: &Client) -> Vec<String> {
    let mut names: Vec<String> = c
        .get("/customers?pageSize=200")
        .await
        .expect(200)
        .items()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn credentials_are_sealed_write_only_and_checked() {
    let server = server_on(TestDb::new().await).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let secret_key = "bbl_this_key_must_never_be_stored_in_clear_0001";
    let created = c
        .post(
            "/connections",
            json!({"name": "Partner", "type": "api_key", "baseUrl": server.url(&format!("{BASE}/")),
                   "credentials": {"apiKey": secret_key}}),
        )
        .await
        .expect(201);
    let id = created.id();
    let body = created.body.to_string();
    assert!(!body.contains(secret_key), "never shown: {body}");
    assert_eq!(created.body["status"], "untested");
    assert_eq!(created.body["hasCredentials"], true);
    assert_eq!(created.body["settings"]["header"], "X-Api-Key");
    assert_eq!(
        created.body["baseUrl"],
        server.url(BASE),
        "kept without the trailing slash"
    );
    // Nothing in the database holds the key in clear; the sealing key is in the data dir.
    let stored = query_texts(&server.db, "SELECT secret FROM connections").await;
    assert_eq!(stored.len(), 1);
    assert!(!stored[0].contains(secret_key) && !stored[0].is_empty());
    let events = query_texts(&server.db, "SELECT data FROM events").await;
    assert!(events.iter().all(|e| !e.contains(secret_key)));
    assert!(server.db.dir.join("data/secret.key").exists());

    // The test calls GET /me with the key: a wrong key is an error with the reason.
    let tested = c
        .post(&format!("/connections/{id}/test"), json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "error");
    assert!(
        tested.body["lastError"].as_str().unwrap().contains("401"),
        "{}",
        tested.body
    );
    let fixed = c
        .patch(
            &format!("/connections/{id}"),
            json!({"credentials": {"apiKey": org.key}}),
        )
        .await
        .expect(200);
    assert_eq!(
        fixed.body["status"], "untested",
        "new credentials are untested"
    );
    let tested = c
        .post(&format!("/connections/{id}/test"), json!({}))
        .await
        .expect(200);
    assert_eq!(tested.body["status"], "ok", "{}", tested.body);
    assert!(tested.body["lastTestedAt"].is_string());
    let this = c
        .post("/connections", json!({"name": "Here", "type": "self"}))
        .await
        .expect(201);
    assert_eq!(this.body["status"], "ok");

    // Wrong connections are refused with the path of each field.
    let cases = [
        (json!({"name": "x"}), vec!["type"]),
        (
            json!({"name": "x", "type": "api_key", "baseUrl": "ftp://files.example.com"}),
            vec!["baseUrl", "credentials"],
        ),
        (
            json!({"name": "x", "type": "api_key", "baseUrl": "https://api.example.com", "credentials": {"key": "k"}}),
            vec!["credentials.apiKey", "credentials.key"],
        ),
        (
            json!({"name": "x", "type": "basic", "baseUrl": "https://api.example.com", "credentials": {"username": "u"}}),
            vec!["credentials.password"],
        ),
        (
            json!({"name": "x", "type": "oauth2", "baseUrl": "https://api.example.com",
                   "settings": {"authorizeUrl": "https://id.example.com/auth"}}),
            vec!["settings.clientId", "settings.tokenUrl"],
        ),
        (
            json!({"name": "x", "type": "self", "baseUrl": "https://api.example.com"}),
            vec!["baseUrl"],
        ),
        (
            json!({"name": "x", "type": "api_key", "baseUrl": "https://u:p@api.example.com", "credentials": {"apiKey": "k"},
                   "settings": {"header": "Bad Header"}}),
            vec!["baseUrl", "settings.header"],
        ),
    ];
    for (body, expected) in cases {
        let r = c
            .post("/connections", body.clone())
            .await
            .expect_error(422, "validation_failed");
        let mut fields = r.error_fields();
        fields.sort();
        assert_eq!(fields, expected, "{body}");
    }
    c.patch(&format!("/connections/{id}"), json!({"type": "basic"}))
        .await
        .expect_error(422, "validation_failed");

    // Admins only, in the log as in the API.
    let (_, manager) = c.user_with_key(&server.db, "manager").await;
    manager
        .get("/connections")
        .await
        .expect_error(403, "forbidden");
    let seen = manager.get("/events?limit=1000").await.expect(200).items();
    assert!(
        seen.iter()
            .all(|e| !e["type"].as_str().unwrap().starts_with("connection."))
    );
    let admin_seen = c
        .get("/events?types=connection.created")
        .await
        .expect(200)
        .items();
    assert_eq!(admin_seen.len(), 2);

    // A connection a flow uses cannot be deleted; then it can, and its secret goes with it.
    let flow = c
        .post("/flows", json!({"name": "Uses it", "trigger": {"type": "webhook"},
              "steps": [{"key": "a", "action": "create_customer", "connectionId": id, "input": {"name": "n"}}]}))
        .await
        .expect(201)
        .id();
    c.delete(&format!("/connections/{id}"))
        .await
        .expect_error(409, "in_use");
    c.delete(&format!("/flows/{flow}")).await.expect(204);
    c.delete(&format!("/connections/{id}")).await.expect(204);
    c.get(&format!("/connections/{id}"))
        .await
        .expect_error(404, "not_found");
    let left = query_texts(
        &server.db,
        &format!("SELECT COALESCE(secret, '') FROM connections WHERE id = '{id}'"),
    )
    .await;
    assert_eq!(left, vec![String::new()]);
    // Other organizations' connections do not exist for a flow.
    let other = server.db.bootstrap("business");
    let theirs = server
        .as_key(&other.key)
        .post("/connections", json!({"name": "Theirs", "type": "self"}))
        .await
        .expect(201)
        .id();
    let r = c
        .post("/flows", json!({"name": "x", "trigger": {"type": "poll", "connectionId": theirs, "source": "new_customer", "schedule": "* * * * * *"},
              "steps": [{"key": "a", "action": "create_customer", "connectionId": theirs, "input": {"name": "n"}}]}))
        .await
        .expect_error(422, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        vec!["steps[0].connectionId", "trigger.connectionId"]
    );

    // A process given another sealing key refuses to start, saying why.
    let other_key = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVphYmNkZWY=";
    let refused = server.db.cli_env(
        &["serve", "--bind", "127.0.0.1:0"],
        &[("TIMIX_SECRET_KEY", other_key)],
    );
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("TIMIX_SECRET_KEY"), "{stderr}");
}

/// A mirror flow in organization B polls A's customers over HTTP with A's key.
async fn mirror_flow(b: &Client, connection: &str) -> String {
    b.post(
        "/flows",
        json!({
            "name": "Mirror A's customers",
            "trigger": {"type": "poll", "connectionId": connection, "source": "new_customer", "schedule": "* * * * * *"},
            "steps": [{"key": "copy", "action": "create_customer",
                       "input": {"name": "{{trigger.name}}", "externalId": "a:{{trigger.id}}"}}]
        }),
    )
    .await
    .expect(201)
    .id()
}

#[tokio::test]
async fn a_poll_flow_mirrors_another_organization_over_http_without_duplicates() {
    let db = TestDb::new().await;
    let (dir, url) = (db.dir.clone(), db.url.clone());
    let server = server_on(db).await;
    let a = server.db.bootstrap("business");
    let b = server.db.bootstrap("business");
    let ca = server.as_key(&a.key);
    let cb = server.as_key(&b.key);
    ca.customer("Before the flow").await;
    let connection = cb
        .post(
            "/connections",
            json!({"name": "Org A", "type": "api_key", "baseUrl": server.url(BASE), "credentials": {"apiKey": a.key}}),
        )
        .await
        .expect(201)
        .id();
    let flow = mirror_flow(&cb, &connection).await;
    for name in ["Acme", "Globex", "Initech"] {
        ca.customer(name).await;
    }
    eventually(20, "three mirrored customers", || async {
        names(&cb).await.len() == 3
    })
    .await;
    assert_eq!(names(&cb).await, vec!["Acme", "Globex", "Initech"]);
    // Their runs recorded (a crash between a step's effect and its record would run the step
    // again: that is the executor's concern, not the poll's, which this test is about).
    eventually(20, "three finished runs", || async {
        cb.get(&format!("/runs?flowId={flow}&status=succeeded"))
            .await
            .expect(200)
            .items()
            .len()
            == 3
    })
    .await;

    // A crash and a restart: the cursor and the seen items are kept.
    crate::harness::signal(server.pid(), "KILL");
    drop(server);
    let server = server_on(TestDb { dir, url }).await;
    let ca = server.as_key(&a.key);
    let cb = server.as_key(&b.key);
    // The other side moved (a new port): editing the connection keeps the flow's cursor.
    cb.patch(
        &format!("/connections/{connection}"),
        json!({"baseUrl": server.url(BASE)}),
    )
    .await
    .expect_error(422, "validation_failed");
    cb.patch(
        &format!("/connections/{connection}"),
        json!({"baseUrl": server.url(BASE), "credentials": {"apiKey": a.key}}),
    )
    .await
    .expect(200);
    for name in ["Hooli", "Umbrella"] {
        ca.customer(name).await;
    }
    eventually(20, "five mirrored customers", || async {
        names(&cb).await.len() == 5
    })
    .await;
    // Several more polls read the same records again: nothing is started twice.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        names(&cb).await,
        vec!["Acme", "Globex", "Hooli", "Initech", "Umbrella"]
    );
    let runs = cb
        .get(&format!("/runs?flowId={flow}&pageSize=200"))
        .await
        .expect(200)
        .items();
    assert_eq!(runs.len(), 5, "one run per record");
    assert!(runs.iter().all(|r| r["status"] == "succeeded"), "{runs:?}");
    let flow_now = cb.get(&format!("/flows/{flow}")).await.expect(200).body;
    assert!(flow_now["lastError"].is_null(), "{flow_now}");
    assert_eq!(flow_now["trigger"]["source"], "new_customer");
}

type QueryPairs = Vec<(String, String)>;

/// A small JSON API of contacts behind a key, that answers 429 and 500 when told to.
#[derive(Clone, Default)]
struct Contacts {
    items: Arc<Mutex<Vec<Value>>>,
    failures: Arc<Mutex<Vec<u16>>>,
    queries: Arc<Mutex<Vec<QueryPairs>>>,
    /// When each failure was answered.
    failed_at: Arc<Mutex<Vec<Instant>>>,
}

async fn contacts(
    State(api): State<Contacts>,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some("Token s3cret") {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    api.queries.lock().unwrap().push(query.clone());
    if let Some(status) = api.failures.lock().unwrap().pop() {
        api.failed_at.lock().unwrap().push(Instant::now());
        let mut response = (StatusCode::from_u16(status).unwrap(), "busy").into_response();
        if status == 429 {
            response
                .headers_mut()
                .insert("retry-after", "1".parse().unwrap());
        }
        return response;
    }
    let since: i64 = query
        .iter()
        .find(|(k, _)| k == "since_seq")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    // Pages of two, by an opaque page token.
    let page: usize = query
        .iter()
        .find(|(k, _)| k == "page_token")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let all: Vec<Value> = api
        .items
        .lock()
        .unwrap()
        .iter()
        .filter(|i| i["seq"].as_i64().unwrap() >= since)
        .cloned()
        .collect();
    let chunk: Vec<Value> = all.iter().skip(page * 2).take(2).cloned().collect();
    let next = (all.len() > (page + 1) * 2).then(|| (page + 1).to_string());
    Json(json!({"data": {"contacts": chunk}, "paging": {"next": next}})).into_response()
}

/// The first finished run of a flow (at most 20 s).
async fn eventually_run(c: &Client, flow: &str) -> Value {
    let first = || async {
        c.get(&format!("/runs?flowId={flow}"))
            .await
            .expect(200)
            .items()
            .last()
            .cloned()
            .unwrap_or(Value::Null)
    };
    eventually(20, "a finished run", || async {
        let run = first().await;
        run["status"] == "succeeded" || run["status"] == "failed"
    })
    .await;
    first().await
}

#[tokio::test]
async fn an_http_source_is_paged_deduplicated_and_backs_off_when_it_fails() {
    let api = Contacts::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route("/v1/contacts", axum::routing::get(contacts))
        .with_state(api.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    let add = |seq: i64, name: &str| {
        api.items
            .lock()
            .unwrap()
            .push(json!({"contact_id": seq * 10, "seq": seq, "name": name}));
    };
    add(1, "Already there");

    let server = server_on(TestDb::new().await).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let connection = c
        .post("/connections", json!({"name": "CRM", "type": "api_key", "baseUrl": format!("http://127.0.0.1:{port}/v1"),
              "settings": {"header": "Authorization", "prefix": "Token "}, "credentials": {"apiKey": "s3cret"}}))
        .await
        .expect(201)
        .id();
    // Without a time cursor: what is there at the first poll is old; afterwards each new
    // contact once, read across pages.
    let flow = c
        .post("/flows", json!({
            "name": "CRM contacts become customers",
            "trigger": {"type": "poll", "connectionId": connection, "schedule": "* * * * * *",
                        "source": {"url": "/contacts", "items": "data.contacts", "id": "contact_id",
                                   "next": {"param": "page_token", "field": "paging.next"}}},
            "steps": [{"key": "c", "action": "create_customer", "input": {"name": "{{trigger.name}}"}}]
        }))
        .await
        .expect(201)
        .id();
    eventually(10, "the first poll", || async {
        !api.queries.lock().unwrap().is_empty()
    })
    .await;
    for (seq, name) in [(2, "Two"), (3, "Three"), (4, "Four")] {
        add(seq, name);
    }
    eventually(20, "three new customers", || async {
        names(&c).await.len() == 3
    })
    .await;
    assert_eq!(names(&c).await, vec!["Four", "Three", "Two"]);
    assert!(
        api.queries
            .lock()
            .unwrap()
            .iter()
            .any(|q| q.contains(&("page_token".into(), "1".into()))),
        "the second page was read"
    );

    // The source fails (500, then 429 with Retry-After): the error shows on the flow, polls
    // back off, and the next good poll clears it.
    api.failures.lock().unwrap().extend([429, 500, 500]);
    eventually(20, "the error on the flow", || async {
        let flow = c.get(&format!("/flows/{flow}")).await.expect(200).body;
        flow["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("poll failed") && e.contains("500"))
    })
    .await;
    add(5, "Five");
    eventually(40, "the fifth customer after the failures", || async {
        names(&c).await.len() == 4
    })
    .await;
    // The schedule says every second; after failures the waits grow (5 s, then 10 s, ±20 %;
    // the 429's Retry-After of 1 s is honoured instead).
    let failed_at = api.failed_at.lock().unwrap().clone();
    assert_eq!(failed_at.len(), 3);
    let first_wait = failed_at[1] - failed_at[0];
    let second_wait = failed_at[2] - failed_at[1];
    assert!(first_wait >= Duration::from_secs(4), "{first_wait:?}");
    assert!(second_wait >= Duration::from_secs(8), "{second_wait:?}");
    eventually(10, "the error cleared", || async {
        c.get(&format!("/flows/{flow}")).await.expect(200).body["lastError"].is_null()
    })
    .await;

    // A since cursor: the source is asked for what came after the highest value seen.
    let since_flow = c
        .post("/flows", json!({
            "name": "By sequence",
            "trigger": {"type": "poll", "connectionId": connection, "schedule": "* * * * * *",
                        "source": {"url": "/contacts", "items": "data.contacts", "id": "contact_id",
                                   "since": {"param": "since_seq", "field": "seq"},
                                   "next": {"param": "page_token", "field": "paging.next"}}},
            "steps": [{"key": "c", "action": "http_request", "connectionId": connection,
                       "input": {"method": "GET", "url": "/contacts", "query": {"since_seq": "{{trigger.seq}}"}}}]
        }))
        .await
        .expect(201)
        .id();
    // Its first poll takes what is there as seen; then it asks for what follows the highest
    // sequence number seen, and runs for the new contact only.
    eventually(10, "the first poll of the second flow", || async {
        api.queries
            .lock()
            .unwrap()
            .iter()
            .any(|q| q.contains(&("page_token".into(), "2".into())))
    })
    .await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    add(6, "Six");
    let run = eventually_run(&c, &since_flow).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["trigger"]["name"], "Six");
    // The number was mapped into a text field: coerced to "6", as the schema asks.
    assert_eq!(run["steps"][0]["input"]["query"]["since_seq"], "6");
    let contacts = &run["steps"][0]["output"]["body"]["data"]["contacts"];
    assert_eq!(contacts.as_array().unwrap().len(), 1, "{contacts}");
    assert!(
        api.queries
            .lock()
            .unwrap()
            .iter()
            .any(|q| q.contains(&("since_seq".into(), "5".into()))),
        "the cursor was sent"
    );
    let runs = c
        .get(&format!("/runs?flowId={since_flow}"))
        .await
        .expect(200)
        .items();
    assert_eq!(runs.len(), 1, "{runs:?}");

    // Bad HTTP sources are refused with their paths.
    let r = c
        .post(
            "/flows",
            json!({
                "name": "x",
                "trigger": {"type": "poll", "connectionId": connection, "schedule": "* * * * * *",
                            "source": {"url": "contacts", "since": {"param": "s"}, "colour": 1}},
                "steps": [{"key": "c", "action": "create_customer", "input": {"name": "n"}}]
            }),
        )
        .await
        .expect_error(422, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "trigger.source.colour",
            "trigger.source.since",
            "trigger.source.url"
        ]
    );
}

#[tokio::test]
async fn steps_act_through_an_api_key_connection_on_another_instance() {
    let server = server_on(TestDb::new().await).await;
    let a = server.db.bootstrap("business");
    let b = server.db.bootstrap("business");
    let ca = server.as_key(&a.key);
    let cb = server.as_key(&b.key);
    let to_a = cb
        .post(
            "/connections",
            json!({"name": "Org A", "type": "api_key", "baseUrl": server.url(BASE), "credentials": {"apiKey": a.key}}),
        )
        .await
        .expect(201)
        .id();
    // B's new customers get a project in A (created there as a customer first).
    let flow = cb
        .post("/flows", json!({
            "name": "Copy to A",
            "trigger": {"type": "event", "event": "customer.created"},
            "steps": [
                {"key": "there", "action": "create_customer", "connectionId": to_a, "input": {"name": "{{trigger.name}} (from B)"}},
                {"key": "project", "action": "create_project", "connectionId": to_a,
                 "input": {"customerId": "{{steps.there.id}}", "name": "Onboarding"}},
                {"key": "found", "action": "find_customer", "connectionId": to_a, "input": {"q": "{{trigger.name}}"}}
            ]
        }))
        .await
        .expect(201)
        .id();
    cb.customer("Acme").await;
    let first_run = || async {
        let runs = cb
            .get(&format!("/runs?flowId={flow}"))
            .await
            .expect(200)
            .items();
        runs.first().cloned().unwrap_or(Value::Null)
    };
    eventually(20, "the run", || async {
        let run = first_run().await;
        run["status"] == "succeeded" || run["status"] == "failed"
    })
    .await;
    let run = first_run().await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(names(&ca).await, vec!["Acme (from B)"]);
    assert_eq!(names(&cb).await, vec!["Acme"]);
    let project = &run["steps"][1]["output"];
    assert_eq!(project["name"], "Onboarding");
    assert_eq!(run["steps"][2]["output"]["name"], "Acme (from B)");
    // A revoked key fails the step with the other side's 401, kept on the run.
    let keys = ca.get("/api-keys").await.expect(200).items();
    let key_id = keys[0]["id"].as_str().unwrap();
    ca.delete(&format!("/api-keys/{key_id}")).await.expect(204);
    cb.customer("Globex").await;
    eventually(20, "the failed run", || async {
        cb.get(&format!("/runs?flowId={flow}&status=failed"))
            .await
            .expect(200)
            .items()
            .len()
            == 1
    })
    .await;
    let failed = &cb
        .get(&format!("/runs?flowId={flow}&status=failed"))
        .await
        .expect(200)
        .items()[0];
    assert_eq!(failed["steps"][0]["error"]["status"], 401, "{failed}");
}
