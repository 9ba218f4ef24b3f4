//! The error envelope, for everything that can go wrong with a request.

use serde_json::json;

use crate::harness::Server;

#[tokio::test]
async fn unknown_routes_and_wrong_methods_get_the_envelope() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let client = server.as_key(&org.key);
    client
        .get("/nothing-here")
        .await
        .expect_error(404, "not_found");
    client
        .get("/api/other")
        .await
        .expect_error(404, "not_found");
    let r = client
        .send(client.request(reqwest::Method::PUT, "/customers"))
        .await
        .expect_error(405, "method_not_allowed");
    assert!(r.header("allow").unwrap().contains("GET"));
    client
        .send(client.request(reqwest::Method::POST, "/health"))
        .await
        .expect_error(405, "method_not_allowed");
}

#[tokio::test]
async fn bodies_that_are_not_right_json_are_refused_clearly() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let client = server.as_key(&org.key);
    let post = |body: &'static str, content_type: &'static str| {
        client
            .request(reqwest::Method::POST, "/customers")
            .header("content-type", content_type)
            .body(body)
    };
    client
        .send(post("{\"name\": ", "application/json"))
        .await
        .expect_error(400, "invalid_json");
    client
        .send(post("name=x", "application/x-www-form-urlencoded"))
        .await
        .expect_error(415, "unsupported_media_type");
    client
        .send(post("{\"name\": \"x\"}", "text/plain"))
        .await
        .expect_error(415, "unsupported_media_type");
    client
        .send(post("{\"name\": \"x\"}", "application/json; charset=utf-8"))
        .await
        .expect(201);
    let r = client
        .send(post("[1, 2]", "application/json"))
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(r.error_fields(), vec![""]);

    // Too large: refused from its Content-Length, before the body is read.
    let mut stream = std::net::TcpStream::connect(&server.address).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "POST /api/integration/v1/customers HTTP/1.1\r\nHost: x\r\nX-Api-Key: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
        org.key,
        2 * 1024 * 1024
    );
    std::io::Write::write_all(&mut stream, head.as_bytes()).unwrap();
    let mut answer = vec![0u8; 4096];
    let n = std::io::Read::read(&mut stream, &mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("\"payload_too_large\""), "{answer}");

    let r = client
        .post("/customers", json!({"name": 5}))
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["name"]);
    let r = client
        .post("/customers", json!({"name": "x", "colour": "red"}))
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["colour"]);
    assert_eq!(r.body["error"]["details"][0]["code"], "unknown_field");
}

#[tokio::test]
async fn missing_and_invalid_fields_are_all_named_in_details() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let client = server.as_key(&org.key);
    let r = client
        .post(
            "/customers",
            json!({"email": "not-an-email", "currency": "euro", "hourlyRate": "12.345"}),
        )
        .await
        .expect_error(422, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, vec!["currency", "email", "name"]);
    let r = client
        .post("/projects", json!({"billingMethod": "barter"}))
        .await
        .expect_error(422, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, vec!["billingMethod", "customerId", "name"]);
    let r = client
        .post("/org-users", json!({"name": "No Email"}))
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["email"]);
    let r = client
        .patch(
            "/organization",
            json!({"plan": "business", "weekStartsOn": "caturday"}),
        )
        .await;
    let mut fields = r.expect_error(422, "validation_failed").error_fields();
    fields.sort();
    assert_eq!(fields, vec!["plan", "weekStartsOn"]);
    let r = client
        .patch("/organization", json!({"timezone": "Mars/Olympus"}))
        .await;
    assert_eq!(
        r.expect_error(422, "validation_failed").error_fields(),
        vec!["timezone"]
    );
    // A valid change goes through and is returned.
    let r = client
        .patch(
            "/organization",
            json!({"timezone": "Europe/Berlin", "weekStartsOn": "sunday", "currency": "USD"}),
        )
        .await;
    let r = r.expect(200);
    assert_eq!(r.body["timezone"], "Europe/Berlin");
    assert_eq!(r.body["weekStartsOn"], "sunday");
    assert_eq!(r.body["currency"], "USD");
}

#[tokio::test]
async fn every_response_carries_a_request_id_and_echoes_the_callers() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let client = server.as_key(&org.key);
    for r in [
        client.get("/health").await,
        client.get("/customers").await,
        client.get("/nope").await,
        server.anonymous().get("/me").await,
        client.get("/customers/cus_missing").await,
    ] {
        assert!(
            r.header("x-request-id").is_some_and(|v| v.len() > 4),
            "{:?}",
            r.headers
        );
    }
    let r = client
        .send(
            client
                .request(reqwest::Method::GET, "/customers/cus_missing")
                .header("X-Request-Id", "trace-abc-123"),
        )
        .await
        .expect_error(404, "not_found");
    assert_eq!(r.header("x-request-id"), Some("trace-abc-123"));
    assert_eq!(r.body["error"]["requestId"], "trace-abc-123");

    // Only `[A-Za-z0-9._-]{1,128}` is kept; anything else gets a fresh id.
    let longest = "a".repeat(128);
    for kept in ["Trace_1.2-3", longest.as_str()] {
        let r = client
            .send(
                client
                    .request(reqwest::Method::GET, "/me")
                    .header("X-Request-Id", kept),
            )
            .await
            .expect(200);
        assert_eq!(r.header("x-request-id"), Some(kept));
    }
    let too_long = "a".repeat(129);
    for replaced in [
        "trace abc",
        "trace\\nSet-Cookie: x=1",
        "a%0Ab",
        "<script>",
        "a/b",
        too_long.as_str(),
    ] {
        let r = client
            .send(
                client
                    .request(reqwest::Method::GET, "/customers/cus_missing")
                    .header("X-Request-Id", replaced),
            )
            .await
            .expect_error(404, "not_found");
        let id = r.header("x-request-id").unwrap().to_owned();
        assert_ne!(id, replaced);
        assert!(id.starts_with("req_") && id.len() > 20, "{id}");
        assert_eq!(r.body["error"]["requestId"], id.as_str());
    }
}

#[tokio::test]
async fn error_bodies_stay_small_whatever_the_input() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let client = server.as_key(&org.key);
    let huge = "x".repeat(100 * 1024);
    let step = |action: &str| {
        json!({"name": "f", "trigger": {"type": "webhook"},
               "steps": [{"key": "a", "action": action, "input": {}}]})
    };
    let cases = [
        ("/customers", json!({"name": "a", huge.as_str(): 1})),
        ("/customers", json!({"name": huge.as_str()})),
        (
            "/customers",
            json!({"name": "a", "hourlyRate": huge.as_str()}),
        ),
        (
            "/customers",
            json!({"name": "a", "isArchived": huge.as_str()}),
        ),
        (
            "/customers",
            json!({"name": "a", "currency": huge.as_str()}),
        ),
        ("/flows", step(&huge)),
        (
            "/flows",
            json!({"name": "f", "trigger": {"type": "event", "event": huge.as_str()}, "steps": []}),
        ),
        (
            "/flows",
            json!({"name": "f", "trigger": {"type": "schedule", "schedule": huge.as_str()}, "steps": []}),
        ),
        (
            "/flows",
            json!({"name": "f", "trigger": {"type": "webhook", huge.as_str(): 1}, "steps": []}),
        ),
        (
            "/flows",
            json!({"name": "f", "trigger": {"type": "webhook"},
                   "steps": [{"key": "a", "action": "create_customer", "input": {"name": "x", huge.as_str(): 1}}]}),
        ),
        (
            "/webhooks",
            json!({"url": "https://example.com/h", "events": [huge.as_str()]}),
        ),
        (
            "/hooks",
            json!({"targetUrl": "https://example.com/h", "event": huge.as_str()}),
        ),
        (
            "/time-entries",
            json!({"subtaskId": "sub_x", "durationSeconds": huge.as_str()}),
        ),
        (
            "/connections",
            json!({"name": "c", "type": "api_key", "baseUrl": "https://example.com",
                   "credentials": {"apiKey": "k"}, "settings": {huge.as_str(): 1}}),
        ),
    ];
    for (path, body) in cases {
        let response = client
            .send(client.request(reqwest::Method::POST, path).json(&body))
            .await;
        let size = response.body.to_string().len();
        assert!(
            (400..500).contains(&response.status) && response.body["error"]["code"].is_string(),
            "POST {path}: {} {}",
            response.status,
            &response.body.to_string()[..size.min(300)]
        );
        assert!(
            size < 4 * 1024,
            "POST {path}: the error is {size} bytes: {}",
            &response.body.to_string()[..600]
        );
    }
    // A long query parameter name or value (the URI has its own limit, 64 KB).
    let long = "y".repeat(20 * 1024);
    for path in [
        format!("/customers?{long}=1"),
        format!("/customers?sort={long}"),
        format!("/events?{long}=1"),
        format!("/financial-reports/revenue?{long}=1"),
    ] {
        let response = client
            .get(&path)
            .await
            .expect_error(400, "invalid_parameter");
        let size = response.body.to_string().len();
        assert!(size < 4 * 1024, "GET {}…: {size} bytes", &path[..30]);
    }
}

#[tokio::test]
async fn bad_query_parameters_are_400s() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let client = server.as_key(&org.key);
    for path in [
        "/customers?pageSize=0",
        "/customers?pageSize=201",
        "/customers?page=0",
        "/customers?page=abc",
        "/customers?sort=colour",
        "/customers?customer_id=x",
        "/customers?updatedSince=yesterday",
        "/customers?includeDeleted=true",
        "/customers?isArchived=maybe",
        "/customers?cursor=garbage",
        "/customers?page=2&cursor=",
        "/events?limit=0",
        "/events?limit=1001",
        "/events?after=-1",
    ] {
        client
            .get(path)
            .await
            .expect_error(400, "invalid_parameter");
    }
}
