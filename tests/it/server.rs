//! Start-up, configuration, the operator's commands, and shutdown.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::harness::{Server, TestDb, backend};

#[tokio::test]
async fn starts_on_a_fresh_machine_and_answers_health() {
    let db = TestDb::new().await;
    let data_dir = db.dir.join("data");
    assert!(!data_dir.exists());
    let server = Server::start_with(db, &[]).await;
    let health = server.anonymous().get("/health").await.expect(200);
    assert_eq!(health.body["status"], "ok");
    assert_eq!(health.body["version"], env!("CARGO_PKG_VERSION"));
    assert!(
        health
            .header("x-request-id")
            .is_some_and(|id| !id.is_empty())
    );
    if backend() == "sqlite" {
        assert!(
            data_dir.join("timix.db").exists(),
            "the SQLite file is created in the data dir"
        );
        let mode = std::fs::read(data_dir.join("timix.db")).unwrap();
        // Byte 18 of the header is the write version: 2 means WAL.
        assert_eq!(mode[18], 2, "the database is in WAL mode");
    }
    assert!(server.log.lock().unwrap().contains("listening on "));
}

#[tokio::test]
async fn serve_with_no_configuration_uses_the_default_data_dir() {
    if backend() != "sqlite" {
        return; // Postgres runs always name a DATABASE_URL; this is the zero-configuration path.
    }
    let dir = std::env::temp_dir().join(format!("timix-bare-{}", ulid::Ulid::generate()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_timix"))
        .args([
            "bootstrap",
            "--org",
            "Bare",
            "--email",
            "bare@example.com",
            "--plan",
            "free",
        ])
        .current_dir(&dir)
        .env_remove("DATABASE_URL")
        .env_remove("TIMIX_DATA_DIR")
        .env_remove("TIMIX_CONFIG")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.join("timix-data").join("timix.db").exists());
}

#[tokio::test]
async fn bad_configuration_exits_non_zero_with_one_clear_line() {
    let db = TestDb::new().await;
    let cases: Vec<(Vec<(&str, String)>, &str)> = vec![
        (vec![("DATABASE_URL", "mysql://x".into())], "DATABASE_URL"),
        (vec![("TIMIX_LOG_FORMAT", "xml".into())], "TIMIX_LOG_FORMAT"),
        (
            vec![("TIMIX_WEBHOOK_RETRY_SCHEDULE", "5 parsecs".into())],
            "retry schedule",
        ),
        (
            vec![(
                "DATABASE_URL",
                "postgres://nobody:nothing@127.0.0.1:1/none".into(),
            )],
            "cannot open the database",
        ),
        (
            vec![
                (
                    "DATABASE_URL",
                    "sqlite:///proc/timix-cannot-live-here/x.db".into(),
                ),
                ("TIMIX_DATA_DIR", "/proc/timix-cannot-live-here".into()),
            ],
            "data dir",
        ),
        (
            vec![(
                "TIMIX_CONFIG",
                db.dir.join("missing.toml").display().to_string(),
            )],
            "config file",
        ),
    ];
    for (env, expected) in cases {
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_timix"));
        command
            .args(["serve", "--bind", "127.0.0.1:0"])
            .current_dir(&db.dir);
        command
            .env("DATABASE_URL", &db.url)
            .env("TIMIX_DATA_DIR", db.dir.join("data"));
        for (k, v) in &env {
            command.env(k, v);
        }
        let out = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{env:?} should fail");
        let lines: Vec<&str> = stderr
            .lines()
            .filter(|l| l.starts_with("timix: "))
            .collect();
        assert_eq!(lines.len(), 1, "{env:?}: one reason line, got: {stderr}");
        assert!(lines[0].contains(expected), "{env:?}: {stderr}");
    }
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_failure() {
    let server = Server::start().await;
    let out = server.db.cli_raw(&["serve", "--bind", &server.address]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("cannot listen on"), "{stderr}");
}

#[tokio::test]
async fn flags_beat_environment_which_beats_the_config_file() {
    let db = TestDb::new().await;
    let config = db.dir.join("timix.toml");
    std::fs::write(
        &config,
        "bind = \"127.0.0.1:1\"\nlog_format = \"json\"\nlog = \"error\"\n",
    )
    .unwrap();
    // The file's bind is beaten by the flag and its log filter by TIMIX_LOG=info (else the
    // ready line would not be logged); its log format applies (JSON lines).
    let server = Server::start_with(db, &[("TIMIX_CONFIG", config.to_str().unwrap())]).await;
    server.anonymous().get("/health").await.expect(200);
    let log = server.log.lock().unwrap().clone();
    let first = log.lines().find(|l| l.contains("listening on")).unwrap();
    assert!(
        serde_json::from_str::<Value>(first).is_ok(),
        "JSON log line: {first}"
    );
    // An unknown key in the file is refused with its name.
    std::fs::write(&config, "bnd = \"x\"\n").unwrap();
    let out = server
        .db
        .cli_raw(&["migrate", "--config", config.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("bnd"));
}

#[tokio::test]
async fn migrate_bootstrap_keys_and_org_update_work_beside_a_running_server() {
    let server = Server::start().await;
    server.db.cli(&["migrate"]);
    let org = server.db.bootstrap("starter");
    let owner = server.as_key(&org.key);
    let me = owner.get("/me").await.expect(200);
    assert_eq!(me.body["organization"]["plan"], "starter");
    assert_eq!(me.body["user"]["role"], "owner");
    assert_eq!(
        me.body["rateLimit"],
        json!({"limit": 120, "windowSeconds": 60})
    );

    let updated = server.db.cli(&[
        "org",
        "update",
        &org.id,
        "--plan",
        "business",
        "--billing-state",
        "past_due",
    ]);
    let updated: Value = serde_json::from_str(updated.trim()).unwrap();
    assert_eq!(updated["plan"], "business");
    let me = owner.get("/me").await.expect(200);
    assert_eq!(
        me.body["organization"]["plan"], "business",
        "a plan change applies at once"
    );
    assert_eq!(me.body["organization"]["billingState"], "past_due");
    assert_eq!(me.body["rateLimit"]["limit"], 1000);

    let key = server.db.key_for(&org.owner_id, &["--name", "ops"]);
    let me = server.as_key(&key).get("/me").await.expect(200);
    assert_eq!(me.body["apiKey"]["name"], "ops");

    let bad = server
        .db
        .cli_raw(&["org", "update", "org_nope", "--plan", "free"]);
    assert!(!bad.status.success());
}

#[tokio::test]
async fn sigterm_finishes_the_request_in_flight_and_exits_zero() {
    let mut server = Server::start().await;
    let org = server.db.bootstrap("business");
    let body = json!({"name": "Drained Ltd"}).to_string();
    let mut stream = TcpStream::connect(&server.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let head = format!(
        "POST /api/integration/v1/customers HTTP/1.1\r\nHost: x\r\nX-Api-Key: {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        org.key,
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&body.as_bytes()[..5]).unwrap();
    stream.flush().unwrap();
    // Wait until the server has the request, then ask it to stop while the body is unfinished.
    std::thread::sleep(Duration::from_millis(300));
    crate::harness::signal(server.pid(), "TERM");
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(&body.as_bytes()[5..]).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 201"), "{answer}");
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    // The acknowledged customer is there after a restart.
    let restarted = Server::start_with(
        TestDb {
            dir: server.db.dir.clone(),
            url: server.db.url.clone(),
        },
        &[],
    )
    .await;
    let list = restarted
        .as_key(&org.key)
        .get("/customers?name=Drained%20Ltd")
        .await
        .expect(200);
    assert_eq!(list.body["totalCount"], 1);
}

#[tokio::test]
async fn openapi_document_and_reference_page_are_served_by_the_binary() {
    let server = Server::start().await;
    let client = server.anonymous();
    let doc = client
        .get("/api/integration/v1/openapi.json")
        .await
        .expect(200);
    assert!(doc.body["openapi"].as_str().unwrap().starts_with("3.1"));
    let paths = doc.body["paths"].as_object().unwrap();
    for path in [
        "/health",
        "/me",
        "/organization",
        "/org-users",
        "/org-users/{id}",
        "/api-keys",
        "/api-keys/{id}",
        "/customers",
        "/customers/{id}",
        "/customers/by-external-id/{externalId}",
        "/projects",
        "/projects/{id}",
        "/tasks",
        "/tasks/{id}",
        "/subtasks",
        "/subtasks/{id}",
        "/events",
        "/usage",
        "/webhooks",
        "/webhooks/{id}",
        "/webhooks/{id}/test",
        "/webhooks/{id}/rotate-secret",
        "/webhooks/{id}/deliveries",
        "/webhooks/{id}/deliveries/{deliveryId}/retry",
        "/hooks",
        "/hooks/{id}",
        "/time-entries",
        "/time-entries/{id}",
        "/time-entries/by-external-id/{externalId}",
        "/time-entries/timer/start",
        "/time-entries/{id}/stop",
        "/timesheets",
        "/timesheets/{id}",
        "/timesheets/{id}/submit",
        "/timesheets/{id}/approve",
        "/timesheets/{id}/reject",
        "/holiday-profiles",
        "/holiday-profiles/{id}",
        "/invoices",
        "/invoices/{id}",
        "/invoices/{id}/issue",
        "/invoices/{id}/payments",
        "/invoices/{id}/void",
        "/invoices/{id}/pdf",
        "/financial-reports/revenue",
        "/financial-reports/revenue/export/csv",
        "/financial-reports/budget-health",
        "/financial-reports/budget-health/export/csv",
        "/financial-reports/unbilled-time",
        "/financial-reports/unbilled-time/export/csv",
        "/financial-reports/customer-billing",
        "/financial-reports/customer-billing/export/csv",
        "/manifests",
        "/manifests/{key}",
        "/flows",
        "/flows/{id}",
        "/flows/{id}/enable",
        "/flows/{id}/disable",
        "/flows/{id}/test",
        "/runs",
        "/runs/{id}",
        "/runs/{id}/replay",
        "/hooks/in/{token}",
    ] {
        assert!(
            paths.contains_key(&format!("/api/integration/v1{path}")),
            "missing {path}"
        );
    }
    let schemas = doc.body["components"]["schemas"].as_object().unwrap();
    for schema in [
        "Customer",
        "Project",
        "Task",
        "Subtask",
        "TimeEntry",
        "Timesheet",
        "Invoice",
        "HolidayProfile",
        "RevenueReport",
        "Flow",
        "Run",
        "ManifestView",
        "ErrorEnvelope",
        "CustomerList",
        "Event",
    ] {
        assert!(schemas.contains_key(schema), "missing schema {schema}");
    }
    assert!(doc.body["components"]["securitySchemes"]["apiKey"].is_object());

    let page = client.get("/docs/").await.expect(200);
    let html = page.body.as_str().unwrap();
    assert!(html.contains("swagger-ui"), "{html}");
    let init = client.get("/docs/swagger-initializer.js").await.expect(200);
    assert!(
        init.body
            .as_str()
            .unwrap()
            .contains("/api/integration/v1/openapi.json")
    );
    let bundle = client.get("/docs/swagger-ui-bundle.js").await.expect(200);
    assert!(
        bundle.body.as_str().unwrap().len() > 100_000,
        "the bundle is served, not fetched from a CDN"
    );
}
