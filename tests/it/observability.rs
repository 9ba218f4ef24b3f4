//! What operators watch: `/health`, `/ready`, `/metrics` behind its token, and JSON logs that
//! name each request's and each run's ids.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::harness::{BASE, Client, Server, TestDb, execute, sample};
use crate::receiver::Receiver;

const TOKEN: &str = "metrics-token-for-tests";

/// A deadline for a wait: panics with `what` once `seconds` have passed.
struct Deadline(Instant, &'static str);

impl Deadline {
    fn new(seconds: u64, what: &'static str) -> Self {
        Deadline(Instant::now() + Duration::from_secs(seconds), what)
    }

    async fn tick(&self) {
        assert!(Instant::now() < self.0, "timed out waiting for {}", self.1);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn scrape(server: &Server, token: Option<&str>) -> (u16, String) {
    let mut request = reqwest::Client::new().get(server.url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.text().await.unwrap())
}

#[tokio::test]
async fn health_and_ready_answer_without_a_key_at_the_root_and_under_the_api() {
    let server = Server::start().await;
    for path in ["/health", &format!("{BASE}/health")] {
        let r = raw_get(&server, path).await.expect(200);
        assert_eq!(r.body["status"], "ok", "{path}");
    }
    for path in ["/ready", &format!("{BASE}/ready")] {
        let r = raw_get(&server, path).await.expect(200);
        assert_eq!(r.body, json!({"status": "ready"}));
    }
    // A migration this binary knows of but the database lacks: not ready, in the envelope.
    execute(
        &server.db,
        "DELETE FROM _sqlx_migrations WHERE version = (SELECT MAX(version) FROM _sqlx_migrations)",
    )
    .await;
    let r = raw_get(&server, "/ready").await;
    let r = r.expect_error(503, "not_ready");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("migrations")
    );
    raw_get(&server, "/health").await.expect(200);
}

/// A GET of a path outside the API base, decoded like the harness does.
async fn raw_get(server: &Server, path: &str) -> crate::harness::Resp {
    let c = server.anonymous();
    let url = server.url(path);
    c.send(reqwest::Client::new().get(url)).await
}

#[tokio::test]
async fn metrics_are_not_served_without_a_configured_token() {
    let server = Server::start().await;
    let (status, body) = scrape(&server, Some("anything")).await;
    assert_eq!(status, 404, "{body}");
}

async fn flow_and_webhook(c: &Client, receiver: &Receiver) -> String {
    c.post(
        "/webhooks",
        json!({"url": receiver.url, "events": ["customer.created"]}),
    )
    .await
    .expect(201);
    c.post(
        "/flows",
        json!({"name": "Onboarding", "trigger": {"type": "event", "event": "customer.created"},
               "steps": [{"key": "p", "action": "create_project",
                          "input": {"customerId": "{{trigger.id}}", "name": "Onboarding"}}]}),
    )
    .await
    .expect(201)
    .id()
}

#[tokio::test]
async fn metrics_count_requests_runs_deliveries_and_poll_lag_behind_their_token() {
    let server = Server::start_with(
        TestDb::new().await,
        &[
            ("TIMIX_METRICS_TOKEN", TOKEN),
            ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
        ],
    )
    .await;
    assert_eq!(scrape(&server, None).await.0, 401);
    assert_eq!(scrape(&server, Some("wrong")).await.0, 401);

    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let receiver = Receiver::start().await;
    flow_and_webhook(&c, &receiver).await;
    let customer = c.customer("Acme").await;
    for _ in 0..3 {
        c.get(&format!("/customers/{customer}")).await.expect(200);
    }
    c.get("/customers/cus_nope").await.expect(404);
    let connection = c
        .post("/connections", json!({"name": "Here", "type": "self"}))
        .await
        .expect(201)
        .id();
    let poll = c
        .post(
            "/flows",
            json!({"name": "Poll", "trigger": {"type": "poll", "connectionId": connection,
                                               "source": "new_customer", "schedule": "* * * * * *"},
                   "steps": [{"key": "a", "action": "find_customer", "input": {"q": "{{trigger.name}}"}}]}),
        )
        .await;
    let poll = poll.expect(201).id();

    let deadline = Deadline::new(30, "a succeeded run, delivery and poll");
    let text = loop {
        let text = scrape(&server, Some(TOKEN)).await.1;
        if sample(&text, "timix_runs{status=\"succeeded\"}") >= Some(1.0)
            && sample(&text, "timix_deliveries{status=\"succeeded\"}") >= Some(1.0)
            && text.contains(&format!("timix_poll_lag_seconds{{flow_id=\"{poll}\"}}"))
        {
            break text;
        }
        deadline.tick().await;
    };
    let route = format!("{BASE}/customers/{{id}}");
    assert_eq!(
        sample(
            &text,
            &format!(
                "timix_http_requests_total{{route=\"{route}\",method=\"GET\",status=\"200\"}}"
            )
        ),
        Some(3.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            &format!(
                "timix_http_requests_total{{route=\"{route}\",method=\"GET\",status=\"404\"}}"
            )
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            &format!(
                "timix_http_request_duration_seconds_count{{route=\"{route}\",method=\"GET\"}}"
            )
        ),
        Some(4.0)
    );
    assert!(text.contains("# TYPE timix_http_request_duration_seconds histogram"));
    assert_eq!(sample(&text, "timix_database_up"), Some(1.0));
    assert!(sample(&text, "timix_queue_depth{queue=\"runs\"}").is_some());
    assert!(
        sample(
            &text,
            "timix_queue_oldest_age_seconds{queue=\"deliveries\"}"
        )
        .is_some()
    );
    let lag = sample(
        &text,
        &format!("timix_poll_lag_seconds{{flow_id=\"{poll}\"}}"),
    )
    .unwrap();
    assert!((0.0..60.0).contains(&lag), "lag {lag}");
    // Raw ids never become label values: the route template does.
    assert!(!text.contains(&customer), "{text}");
}

/// The server's stderr, one parsed JSON object per line (panics on a line that is not JSON).
fn json_lines(server: &Server) -> Vec<Value> {
    let log = server.log.lock().unwrap().clone();
    log.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

/// Whether a JSON log line names `field` = `value`, in its own fields or any of its spans.
fn names(line: &Value, field: &str, value: &str) -> bool {
    let spans = line["spans"].as_array().cloned().unwrap_or_default();
    line["fields"][field] == value
        || line["span"][field] == value
        || spans.iter().any(|s| s[field] == value)
}

#[tokio::test]
async fn json_logs_carry_the_request_id_and_the_run_and_flow_ids() {
    let server = Server::start_with(
        TestDb::new().await,
        &[
            ("TIMIX_LOG_FORMAT", "json"),
            // A run's own lines are at debug (a line a run would flood the log).
            (
                "TIMIX_LOG",
                "info,timix_web::request_id=debug,timix_triggers::executor=debug",
            ),
        ],
    )
    .await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let flow = c
        .post(
            "/flows",
            json!({"name": "Onboarding", "trigger": {"type": "event", "event": "customer.created"},
                   "steps": [{"key": "p", "action": "create_project",
                              "input": {"customerId": "{{trigger.id}}", "name": "Onboarding"}}]}),
        )
        .await
        .expect(201)
        .id();
    c.send(
        c.request(reqwest::Method::POST, "/customers")
            .header("x-request-id", "req-observed-1")
            .json(&json!({"name": "Acme"})),
    )
    .await
    .expect(201);
    let deadline = Deadline::new(30, "the run to finish");
    let run = loop {
        let runs = c.get("/runs").await;
        if let Some(r) = runs.items().first()
            && r["status"] == "succeeded"
        {
            break r["id"].as_str().unwrap_or_default().to_owned();
        }
        deadline.tick().await;
    };
    let deadline = Deadline::new(10, "the run's log lines");
    while !json_lines(&server).iter().any(|l| names(l, "run_id", &run)) {
        deadline.tick().await;
    }
    let lines = json_lines(&server);
    assert!(
        lines
            .iter()
            .any(|l| names(l, "request_id", "req-observed-1")),
        "no line names the request id"
    );
    let run_lines: Vec<&Value> = lines.iter().filter(|l| names(l, "run_id", &run)).collect();
    assert!(run_lines.iter().all(|l| names(l, "flow_id", &flow)));
    assert!(
        lines
            .iter()
            .all(|l| l["level"].is_string() && l["timestamp"].is_string())
    );
}
