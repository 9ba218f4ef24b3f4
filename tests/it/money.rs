//! The money fixture the pricing, timesheet, report and invoice tests share: three customers in
//! two currencies, rates at every level, fixed-fee and non-billable work, thirteen entries whose
//! every figure is computed by hand.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::harness::{Client, Org, Server};

/// The fixture's ids by name.
pub struct Fixture {
    ids: BTreeMap<&'static str, String>,
}

impl Fixture {
    pub fn id(&self, name: &str) -> &str {
        &self.ids[name]
    }
}

pub async fn create(c: &Client, path: &str, body: Value) -> String {
    c.post(path, body).await.expect(201).id()
}

/// Builds the fixture:
///
/// | customer | project (method, rate, budget) | task (rate) |
/// |---|---|---|
/// | Acme, EUR, 100.00 | Acme Web (hourly, 120.00, 8 h) | Design (150.00), Dev |
/// |  | Acme Support (hourly, –, 400.00) | Tickets, Docs (not billable) |
/// | Beta, USD | Beta App (hourly) | Build (150.00), QA |
/// | Cobalt, Inc., EUR | Cobalt Fixed (fixed fee 2000.00) | Fixed work |
/// |  | Cobalt Internal (non-billable) | Internal |
/// |  | Cobalt Hourly (hourly) | Consulting |
///
/// Olivia Owner bills 80.00 an hour, Max Member 60.00 (EUR, the organization's currency).
async fn fixture(owner: &Client, member_id: &str) -> Fixture {
    let mut ids = BTreeMap::new();
    let acme = create(owner, "/customers", json!({"name": "Acme", "hourlyRate": "100.00", "email": "billing@acme.example", "address": "1 Main Street\n10115 Berlin"})).await;
    let beta = create(
        owner,
        "/customers",
        json!({"name": "Beta", "currency": "USD"}),
    )
    .await;
    let cobalt = create(owner, "/customers", json!({"name": "Cobalt, Inc."})).await;
    let project = |customer: &str, name: &str, extra: Value| {
        let mut body = extra;
        body["customerId"] = json!(customer);
        body["name"] = json!(name);
        body
    };
    let web = create(
        owner,
        "/projects",
        project(
            &acme,
            "Acme Web",
            json!({"hourlyRate": "120.00", "budgetHours": 8}),
        ),
    )
    .await;
    let support = create(
        owner,
        "/projects",
        project(&acme, "Acme Support", json!({"budgetAmount": "400.00"})),
    )
    .await;
    let app = create(owner, "/projects", project(&beta, "Beta App", json!({}))).await;
    let fixed = create(
        owner,
        "/projects",
        project(
            &cobalt,
            "Cobalt Fixed",
            json!({"billingMethod": "fixed_fee", "fixedFee": "2000.00"}),
        ),
    )
    .await;
    let internal = create(
        owner,
        "/projects",
        project(
            &cobalt,
            "Cobalt Internal",
            json!({"billingMethod": "non_billable"}),
        ),
    )
    .await;
    let hourly = create(
        owner,
        "/projects",
        project(&cobalt, "Cobalt Hourly", json!({})),
    )
    .await;
    let tasks = [
        ("design", &web, "Design", json!({"hourlyRate": "150.00"})),
        ("dev", &web, "Dev", json!({})),
        ("tickets", &support, "Tickets", json!({})),
        ("docs", &support, "Docs", json!({"billable": false})),
        ("build", &app, "Build", json!({"hourlyRate": "150.00"})),
        ("qa", &app, "QA", json!({})),
        ("fixed", &fixed, "Fixed work", json!({})),
        ("internal", &internal, "Internal", json!({})),
        ("consulting", &hourly, "Consulting", json!({})),
    ];
    for (key, project, name, extra) in tasks {
        let mut body = extra;
        body["projectId"] = json!(project);
        body["name"] = json!(name);
        let task = create(owner, "/tasks", body).await;
        ids.insert(key, owner.subtask(&task, "Work").await);
    }
    for (key, id) in [
        ("acme", acme),
        ("beta", beta),
        ("cobalt", cobalt),
        ("web", web),
        ("support", support),
        ("app", app),
        ("fixedProject", fixed),
        ("hourly", hourly),
        ("member", member_id.to_owned()),
    ] {
        ids.insert(key, id);
    }
    Fixture { ids }
}

pub fn csv_lines(body: &Value) -> Vec<String> {
    body.as_str()
        .expect("a CSV body")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// The fixture with its thirteen entries (E1–E13) logged, and who logged them.
pub struct Books {
    /// Kept for the life of the test: the server the clients talk to.
    pub _server: Server,
    pub org: Org,
    pub owner: Client,
    pub member: Client,
    pub member_id: String,
    pub f: Fixture,
    /// The entries as `POST /time-entries` answered, in order.
    pub logged: Vec<Value>,
}

/// Starts a server and logs the fixture's entries (E5 asks to be billable on a task that is not).
pub async fn logged() -> Books {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let owner = server.as_key(&org.key);
    owner
        .patch(
            "/organization",
            json!({"weekStartsOn": "monday", "timezone": "UTC", "currency": "EUR"}),
        )
        .await
        .expect(200);
    owner
        .patch(
            &format!("/org-users/{}", org.owner_id),
            json!({"name": "Olivia Owner", "billableRate": "80.00"}),
        )
        .await
        .expect(200);
    let (member_id, member) = owner.user_with_key(&server.db, "member").await;
    let profile = create(
        &owner,
        "/holiday-profiles",
        json!({"name": "Berlin", "holidays": [{"date": "2026-11-02", "name": "Company day"}]}),
    )
    .await;
    owner
        .patch(&format!("/org-users/{member_id}"), json!({"name": "Max Member", "billableRate": "60.00", "weeklyCapacityHours": 32, "holidayProfileId": profile}))
        .await
        .expect(200);
    let f = fixture(&owner, &member_id).await;

    // (who, subtask, date, seconds, extra): entries E1–E13 in order.
    let entries = [
        (&owner, "design", "2026-11-02", 7200, json!({})), // E1 150.00/h: 300.00
        (&member, "dev", "2026-11-03", 10800, json!({})),  // E2 project 120.00/h: 360.00
        (&member, "dev", "2026-11-04", 5400, json!({})),   // E3 180.00; Acme Web passes 80 %
        (&owner, "tickets", "2026-11-03", 9000, json!({})), // E4 customer 100.00/h: 250.00
        (
            &owner,
            "docs",
            "2026-11-05",
            3600,
            json!({"billable": true}),
        ), // E5 task not billable
        (&member, "build", "2026-11-04", 14400, json!({})), // E6 150.00 USD/h: 600.00 USD
        (&member, "qa", "2026-11-05", 7200, json!({})),    // E7 no USD rate: 0.00 USD
        (&owner, "fixed", "2026-11-06", 18000, json!({})), // E8 fixed fee: hours only
        (&owner, "internal", "2026-11-06", 10800, json!({})), // E9 non-billable project
        (&owner, "consulting", "2026-11-02", 4800, json!({})), // E10 user 80.00/h: 106.67
        (&member, "consulting", "2026-11-03", 2700, json!({})), // E11 user 60.00/h: 45.00
        (&owner, "design", "2026-11-10", 3600, json!({})), // E12 next week, not approved: 150.00
        (&member, "tickets", "2026-11-11", 7200, json!({})), // E13 200.00: Acme Support passes 80 and 100 %
    ];
    let mut logged = Vec::new();
    for (who, subtask, date, seconds, extra) in entries {
        let mut body = extra;
        body["subtaskId"] = json!(f.id(subtask));
        body["date"] = json!(date);
        body["durationSeconds"] = json!(seconds);
        logged.push(who.post("/time-entries", body).await.expect(201).body);
    }
    Books {
        _server: server,
        org,
        owner,
        member,
        member_id,
        f,
        logged,
    }
}

/// Submits and approves week one (Monday 2 to Sunday 8 November) for both users; returns their
/// timesheets as listed before the approval.
pub async fn approve_week_one(b: &Books) -> Vec<Value> {
    let mut sheets = Vec::new();
    for (user, client) in [(&b.org.owner_id, &b.owner), (&b.member_id, &b.member)] {
        let page = b
            .owner
            .get(&format!("/timesheets?userId={user}&periodStart=2026-11-02"))
            .await
            .expect(200);
        let sheet = page.items()[0].clone();
        let id = sheet["id"].as_str().unwrap().to_owned();
        client
            .post(&format!("/timesheets/{id}/submit"), json!({}))
            .await
            .expect(200);
        b.owner
            .post(&format!("/timesheets/{id}/approve"), json!({}))
            .await
            .expect(200);
        sheets.push(sheet);
    }
    sheets
}

/// The text of an invoice's PDF as `pdftotext -layout` reads it, once `pdftoppm` has rendered
/// its first page (kept as `target/test-artifacts/invoice.png`). None, with a loud message,
/// where poppler is missing, except in CI where it must be there.
pub async fn pdf_text(client: &Client, invoice_id: &str) -> Option<String> {
    if std::process::Command::new("pdftotext")
        .arg("-v")
        .output()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "CI must install poppler-utils (pdftotext, pdftoppm)"
        );
        eprintln!("SKIPPED: PDF rendering checks need poppler-utils (pdftotext, pdftoppm)");
        return None;
    }
    let bytes = client
        .request(reqwest::Method::GET, &format!("/invoices/{invoice_id}/pdf"))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert!(bytes.starts_with(b"%PDF-"), "a PDF document");
    let dir = std::env::temp_dir().join(format!("timix-pdf-{}", ulid::Ulid::generate()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("invoice.pdf");
    std::fs::write(&file, &bytes).unwrap();
    let rendered = std::process::Command::new("pdftoppm")
        .args(["-png", "-r", "60", "-f", "1", "-l", "1", "-singlefile"])
        .arg(&file)
        .arg(dir.join("invoice"))
        .output()
        .unwrap();
    assert!(
        rendered.status.success(),
        "pdftoppm renders it: {rendered:?}"
    );
    let png = std::fs::read(dir.join("invoice.png")).unwrap();
    assert!(png.len() > 1000, "a page with something on it");
    let artifacts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/test-artifacts");
    if std::fs::create_dir_all(&artifacts).is_ok() {
        let _ = std::fs::write(artifacts.join("invoice.png"), &png);
    }
    let text = std::process::Command::new("pdftotext")
        .args(["-layout"])
        .arg(&file)
        .arg("-")
        .output()
        .unwrap();
    assert!(text.status.success(), "pdftotext reads it: {text:?}");
    let _ = std::fs::remove_dir_all(&dir);
    Some(String::from_utf8_lossy(&text.stdout).into_owned())
}
