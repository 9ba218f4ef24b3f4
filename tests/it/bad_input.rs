//! Input the database cannot store or read back: a NUL character (U+0000) in a path, a query, a
//! JSON string or key, a form; numbers beyond a BIGINT; a cursor altered by hand; JSON nested
//! deeper than the documented limit. Each is refused with the API's envelope (or, in the web UI,
//! the form shown again) with its exact status and code, and nothing is written. The same body
//! runs on SQLite and on Postgres, where a NUL used to be a 500.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::Method;
use serde_json::{Value, json};

use crate::flows::finished_run;
use crate::harness::{Client, Resp, Server, TestDb, query_texts};
use crate::ui::{Browser, PASSWORD, bootstrap_with_password};

/// Rows in every table a refused request could have written to.
async fn written(db: &TestDb) -> String {
    let tables = [
        "customers",
        "projects",
        "tasks",
        "subtasks",
        "time_entries",
        "org_users",
        "holiday_profiles",
        "flows",
        "runs",
        "subscriptions",
        "connections",
        "events",
        "idempotency_keys",
        "login_failures",
        "web_sessions",
    ];
    let counts: Vec<String> = tables
        .iter()
        .map(|t| format!("'{t}=' || CAST((SELECT COUNT(*) FROM {t}) AS TEXT)"))
        .collect();
    let sql = format!("SELECT {}", counts.join(" || ',' || "));
    query_texts(db, &sql).await.remove(0)
}

/// Asserts the envelope of a refusal, and the field a 422 names.
#[track_caller]
fn refused(what: &str, r: Resp, status: u16, code: &str, field: Option<&str>) {
    assert_eq!(r.status, status, "{what}: {}", r.body);
    assert_eq!(r.body["error"]["code"], code, "{what}: {}", r.body);
    assert!(
        r.body["error"]["requestId"].as_str().is_some(),
        "{what}: {}",
        r.body
    );
    if let Some(field) = field {
        assert_eq!(
            r.error_fields(),
            vec![field.to_owned()],
            "{what}: {}",
            r.body
        );
    }
}

/// `{"a":{"a":…1…}}`, `levels` objects deep, with `extra` fields at the top.
fn nested(levels: usize, extra: Value) -> Value {
    let mut value = json!(1);
    for _ in 0..levels.saturating_sub(1) {
        value = json!({ "a": value });
    }
    let mut top = extra;
    if levels > 0 {
        top["a"] = value;
    }
    top
}

/// A cursor as the API makes them, with values (JSON text) of the caller's choice.
fn cursor(values: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!(r#"{{"s":"-createdAt","v":{values}}}"#))
}

async fn webhook_flow(api: &Client) -> (String, String) {
    api.webhook_flow(json!({"type": "webhook"}), "{{trigger.name}}")
        .await
}

async fn raw(client: &Client, method: Method, path: &str, body: &str) -> Resp {
    client
        .send(
            client
                .request(method, path)
                .header("content-type", "application/json")
                .body(body.to_owned()),
        )
        .await
}

#[tokio::test]
async fn input_the_database_cannot_store_is_refused_and_nothing_is_written() {
    let server = Server::start().await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme");
    let api = server.as_key(&key);
    let anonymous = server.anonymous();
    let customer = api.customer("Initech").await;
    let project = api.project(&customer, "Launch").await;
    let task = api.task(&project, "Plan").await;
    let subtask = api.subtask(&task, "Draft").await;
    let (_, inbound) = webhook_flow(&api).await;
    let before = written(&server.db).await;

    // A NUL in the path: with and without a key, in the API and in the web UI.
    let page = reqwest::Client::new();
    let cases = [
        (
            "a customer id",
            api.get(&format!("/customers/{customer}%00")).await,
        ),
        (
            "a patched customer",
            api.patch("/customers/abc%00def", json!({"name": "x"}))
                .await,
        ),
        (
            "an external id",
            api.put("/customers/by-external-id/a%00b", json!({"name": "x"}))
                .await,
        ),
        (
            "an inbound webhook token",
            anonymous.post("/hooks/in/abc%00def", json!({})).await,
        ),
        (
            "a UI page",
            anonymous.send(page.get(server.url("/runs/run_%00"))).await,
        ),
        (
            "an invitation",
            anonymous
                .send(page.get(server.url("/invite/abc%00def")))
                .await,
        ),
    ];
    for (what, r) in cases {
        refused(what, r, 400, "invalid_parameter", None);
    }

    // A NUL in the query: filters, search, list parameters, the OAuth2 callback.
    for path in [
        "/customers?name=a%00b",
        "/customers?q=%00",
        "/customers?externalId=%00",
        "/customers?a%00=1",
        "/projects?customerId=cus_%00",
        "/events?types=customer.created%00",
        "/runs?flowId=%00",
        "/financial-reports/revenue?customerId=%00",
    ] {
        refused(path, api.get(path).await, 400, "invalid_parameter", None);
    }
    refused(
        "the OAuth2 callback",
        anonymous.get("/oauth2/callback?state=a%00b").await,
        400,
        "invalid_parameter",
        None,
    );

    // A NUL in a JSON string or key: a 422 naming the field, for every resource.
    let cases = [
        ("/customers", json!({"name": "a\u{0}b"}), "name"),
        (
            "/customers",
            json!({"name": "ok", "notes": "\u{0}"}),
            "notes",
        ),
        ("/customers", json!({"name": "ok", "x\u{0}": 1}), "x\\u0000"),
        (
            "/projects",
            json!({"customerId": customer, "name": "ok", "code": "P\u{0}"}),
            "code",
        ),
        (
            "/time-entries",
            json!({"subtaskId": subtask, "date": "2026-11-02", "durationSeconds": 60, "notes": "\u{0}"}),
            "notes",
        ),
        (
            "/org-users",
            json!({"email": "a\u{0}@example.com", "name": "A", "role": "member"}),
            "email",
        ),
        (
            "/holiday-profiles",
            json!({"name": "DE", "holidays": [{"date": "2026-12-25", "name": "X\u{0}"}]}),
            "holidays[0].name",
        ),
        (
            "/flows",
            json!({"name": "f", "trigger": {"type": "webhook"},
                   "steps": [{"key": "a", "action": "create_customer", "input": {"name": "a\u{0}"}}]}),
            "steps[0].input.name",
        ),
        (
            "/webhooks",
            json!({"url": "https://example.com/\u{0}", "events": ["*"]}),
            "url",
        ),
        (
            "/hooks",
            json!({"targetUrl": "https://example.com/h", "event": "customer.created\u{0}"}),
            "event",
        ),
        (
            "/connections",
            json!({"name": "\u{0}", "type": "self"}),
            "name",
        ),
        ("/api-keys", json!({"name": "k\u{0}"}), "name"),
    ];
    for (path, body, field) in cases {
        let what = format!("POST {path} {body}");
        refused(
            &what,
            api.post(path, body).await,
            422,
            "validation_failed",
            Some(field),
        );
    }
    refused(
        "PATCH a customer",
        api.patch(&format!("/customers/{customer}"), json!({"name": "\u{0}"}))
            .await,
        422,
        "validation_failed",
        Some("name"),
    );
    refused(
        "PATCH the organization",
        api.patch("/organization", json!({"name": "Acme\u{0}"}))
            .await,
        422,
        "validation_failed",
        Some("name"),
    );

    // Numbers that do not fit a BIGINT (or any sane range), in queries and JSON.
    for path in [
        "/customers?page=99999999999999999999",
        "/customers?pageSize=9223372036854775808",
        "/customers?isArchived=99999999999999999999",
        "/events?after=99999999999999999999",
        "/events?limit=-9223372036854775809",
        "/time-entries?from=99999999999999999999",
    ] {
        refused(path, api.get(path).await, 400, "invalid_parameter", None);
    }
    for (path, body, field) in [
        (
            "/time-entries",
            r#"{"subtaskId":"SUB","date":"2026-11-02","durationSeconds":99999999999999999999}"#,
            "durationSeconds",
        ),
        (
            "/time-entries",
            r#"{"subtaskId":"SUB","date":"2026-11-02","durationSeconds":9223372036854775807}"#,
            "durationSeconds",
        ),
        (
            "/time-entries",
            r#"{"subtaskId":"SUB","date":"2026-11-02","durationSeconds":-9223372036854775808}"#,
            "durationSeconds",
        ),
        (
            "/subtasks",
            r#"{"taskId":"TASK","name":"x","estimateHours":1e308}"#,
            "estimateHours",
        ),
        (
            "/customers",
            r#"{"name":"x","hourlyRate":"99999999999999999999"}"#,
            "hourlyRate",
        ),
        (
            "/customers",
            r#"{"name":"x","hourlyRate":18446744073709551615}"#,
            "hourlyRate",
        ),
        (
            "/org-users",
            r#"{"email":"big@example.com","name":"B","role":"member","weeklyCapacityHours":1e300}"#,
            "weeklyCapacityHours",
        ),
    ] {
        let body = body.replace("SUB", &subtask).replace("TASK", &task);
        let what = format!("POST {path} {body}");
        refused(
            &what,
            raw(&api, Method::POST, path, &body).await,
            422,
            "validation_failed",
            Some(field),
        );
    }

    // A cursor altered by hand: values of the wrong kind, out of range, or with a NUL.
    for values in [
        r#"["text","cus_1"]"#,
        r#"[1e30,"cus_1"]"#,
        r#"[99999999999999999999,"cus_1"]"#,
        r#"[-9223372036854775809,"cus_1"]"#,
        r#"[1,2]"#,
        r#"[1,"cus_\u0000"]"#,
    ] {
        let path = format!("/customers?cursor={}", cursor(values));
        refused(
            &format!("cursor {values}"),
            api.get(&path).await,
            400,
            "invalid_parameter",
            None,
        );
    }

    // An inbound webhook payload nested too deep: refused at the door, no run.
    for levels in [124, 1000] {
        let body = format!("{}1{}", "{\"a\":".repeat(levels), "}".repeat(levels));
        refused(
            &format!("an inbound payload {levels} levels deep"),
            raw(&anonymous, Method::POST, &inbound, &body).await,
            422,
            "validation_failed",
            Some(""),
        );
    }

    // The login form: shown again with the reason, no attempt counted.
    let mut browser = Browser::new(&server);
    let page = browser.log_in("a\u{0}b@example.com", PASSWORD).await;
    assert_eq!(page.status.as_u16(), 422, "{}", page.body);
    assert!(page.body.contains("NUL character"), "{}", page.body);
    assert!(page.body.contains("name=\"password\""), "the form again");

    // A form of the UI behind a login: shown again with the API's reason at its field.
    let page = browser.log_in(&email, PASSWORD).await;
    assert_eq!(page.status.as_u16(), 303, "{}", page.body);
    let before_form = written(&server.db).await;
    let csrf = browser.get("/connections").await.csrf();
    let page = browser
        .post(
            "/connections",
            &[("_csrf", &csrf), ("name", "Here\u{0}"), ("type", "self")],
        )
        .await;
    assert_eq!(page.status.as_u16(), 422, "{}", page.body);
    assert!(page.body.contains("NUL character"), "{}", page.body);
    assert!(page.body.contains("name=\"name\""), "the form again");
    assert_eq!(
        written(&server.db).await,
        before_form,
        "the form wrote nothing"
    );

    // Nothing refused was written (the UI login above opened the one session).
    let after = written(&server.db).await;
    assert_eq!(
        after,
        before.replace("web_sessions=0", "web_sessions=1"),
        "refused input was written"
    );

    // An inbound payload with a NUL is kept (stored JSON escapes it) and readable; the step
    // that sends it on to this API is refused there like any caller, and the run fails.
    let accepted = anonymous
        .post(&inbound, json!({"name": "a\u{0}b"}))
        .await
        .expect(202);
    let run_id = accepted.body["runId"].as_str().unwrap().to_owned();
    let run = finished_run(&api, &run_id).await;
    assert_eq!(run["trigger"]["name"], "a\u{0}b", "{run}");
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(
        run["steps"][0]["error"]["code"], "validation_failed",
        "{run}"
    );
    assert_eq!(
        run["steps"][0]["error"]["details"][0]["field"], "name",
        "{run}"
    );
    let page = browser.get(&format!("/runs/{run_id}")).await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.body);
    let customers = api.get("/customers?q=a").await.expect(200);
    assert!(
        customers.items().iter().all(|c| c["name"] != "a\u{0}b"),
        "{}",
        customers.body
    );
}

#[tokio::test]
async fn a_payload_at_the_nesting_limit_is_shown_and_a_deeper_one_is_refused() {
    const LIMIT: usize = 64;
    let server = Server::start().await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme");
    let api = server.as_key(&key);
    let anonymous = server.anonymous();
    let (_, inbound) = webhook_flow(&api).await;

    // Just past the limit, far past it, and past what the JSON parser itself reads: 422.
    for levels in [LIMIT + 1, 124, 2000] {
        let text = if levels < 128 {
            nested(levels, json!({"name": "Deep"})).to_string()
        } else {
            format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
        };
        for (client, path) in [(&anonymous, inbound.as_str()), (&api, "/customers")] {
            let r = raw(client, Method::POST, path, &text).await;
            assert_eq!(r.error_fields(), vec![String::new()], "{}", r.body);
            assert_eq!(r.body["error"]["details"][0]["code"], "too_deep");
            refused(
                &format!("{path}, {levels} levels"),
                r,
                422,
                "validation_failed",
                None,
            );
        }
    }
    assert!(api.get("/customers").await.expect(200).items().is_empty());
    assert!(api.get("/runs").await.expect(200).items().is_empty());

    // At the limit: accepted, run, and shown whole by the API and the UI.
    let payload = nested(LIMIT, json!({"name": "Deep"}));
    let accepted = anonymous.post(&inbound, payload).await.expect(202);
    let run_id = accepted.body["runId"].as_str().unwrap().to_owned();
    let run = finished_run(&api, &run_id).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let mut inner = &run["trigger"];
    for _ in 0..LIMIT {
        inner = &inner["a"];
    }
    assert_eq!(inner, &json!(1), "the deepest value is kept: {run}");
    let listed = api.get("/runs").await.expect(200);
    assert_eq!(listed.item_ids(), vec![run_id.clone()]);

    let mut browser = Browser::new(&server);
    assert_eq!(browser.log_in(&email, PASSWORD).await.status.as_u16(), 303);
    let page = browser.get(&format!("/runs/{run_id}")).await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.body);
    assert!(page.body.contains("succeeded"), "{}", page.body);
    let page = browser.get("/runs").await;
    assert_eq!(page.status.as_u16(), 200, "{}", page.body);
    assert!(page.body.contains(&run_id), "{}", page.body);
}
