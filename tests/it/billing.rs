//! Money end to end: a hand-computed fixture (three customers in two currencies, rates at every
//! level, fixed-fee and non-billable work, a void and a part payment) whose every report figure,
//! invoice total, CSV row and PDF text is asserted exactly; and invoice numbering under
//! concurrent issues.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::harness::{Client, Server};

/// The fixture's ids by name.
struct Fixture {
    ids: BTreeMap<&'static str, String>,
}

impl Fixture {
    fn id(&self, name: &str) -> &str {
        &self.ids[name]
    }
}

async fn create(c: &Client, path: &str, body: Value) -> String {
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

fn csv_lines(body: &Value) -> Vec<String> {
    body.as_str()
        .expect("a CSV body")
        .lines()
        .map(str::to_owned)
        .collect()
}

#[tokio::test]
async fn every_figure_of_the_fixture_is_exact() {
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
    let amounts: Vec<(&str, &str, bool)> = logged
        .iter()
        .map(|e| {
            (
                e["billableAmount"].as_str().unwrap(),
                e["currency"].as_str().unwrap(),
                e["billable"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        amounts,
        vec![
            ("300.00", "EUR", true),
            ("360.00", "EUR", true),
            ("180.00", "EUR", true),
            ("250.00", "EUR", true),
            ("0.00", "EUR", false),
            ("600.00", "USD", true),
            ("0.00", "USD", true),
            ("0.00", "EUR", true),
            ("0.00", "EUR", false),
            ("106.67", "EUR", true),
            ("45.00", "EUR", true),
            ("150.00", "EUR", true),
            ("200.00", "EUR", true),
        ]
    );
    let rates: Vec<Value> = logged.iter().map(|e| e["billableRate"].clone()).collect();
    assert_eq!(
        rates,
        vec![
            json!("150.00"),
            json!("120.00"),
            json!("120.00"),
            json!("100.00"),
            Value::Null,
            json!("150.00"),
            Value::Null,
            Value::Null,
            Value::Null,
            json!("80.00"),
            json!("60.00"),
            json!("150.00"),
            json!("100.00"),
        ]
    );

    // Budget thresholds: Acme Web once at 80 %, Acme Support at 80 % and 100 % together.
    let thresholds: Vec<(String, i64)> = owner
        .get("/events?types=project.budget_threshold_reached")
        .await
        .expect(200)
        .items()
        .iter()
        .map(|e| {
            (
                e["resourceId"].as_str().unwrap().to_owned(),
                e["data"]["budgetThreshold"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        thresholds,
        vec![
            (f.id("web").to_owned(), 80),
            (f.id("support").to_owned(), 80),
            (f.id("support").to_owned(), 100),
        ]
    );

    // Week one (Monday 2 to Sunday 8 November) is submitted and approved for both.
    let mut sheets = Vec::new();
    for (user, client) in [(&org.owner_id, &owner), (&member_id, &member)] {
        let page = owner
            .get(&format!("/timesheets?userId={user}&periodStart=2026-11-02"))
            .await
            .expect(200);
        let sheet = page.items()[0].clone();
        let id = sheet["id"].as_str().unwrap().to_owned();
        client
            .post(&format!("/timesheets/{id}/submit"), json!({}))
            .await
            .expect(200);
        owner
            .post(&format!("/timesheets/{id}/approve"), json!({}))
            .await
            .expect(200);
        sheets.push(sheet);
    }
    let sheet_figures: Vec<(i64, i64, i64)> = sheets
        .iter()
        .map(|s| {
            (
                s["totalSeconds"].as_i64().unwrap(),
                s["billableSeconds"].as_i64().unwrap(),
                s["expectedSeconds"].as_i64().unwrap(),
            )
        })
        .collect();
    // Owner: E1 E4 E5 E8 E9 E10, 40 h expected. Member: E2 E3 E6 E7 E11, 32 h over four of
    // five working days (2 November is a company day).
    assert_eq!(
        sheet_figures,
        vec![(53400, 39000, 144000), (40500, 40500, 92160)]
    );

    // Revenue by customer, whole history.
    let revenue = owner
        .get("/financial-reports/revenue")
        .await
        .expect(200)
        .body;
    assert_eq!(revenue["groupBy"], "customer");
    assert_eq!(
        revenue["items"],
        json!([
            {"key": f.id("acme"), "name": "Acme", "currency": "EUR", "totalSeconds": 46800, "totalHours": 13.0, "billableSeconds": 43200, "billableHours": 12.0, "billableAmount": "1440.00"},
            {"key": f.id("beta"), "name": "Beta", "currency": "USD", "totalSeconds": 21600, "totalHours": 6.0, "billableSeconds": 21600, "billableHours": 6.0, "billableAmount": "600.00"},
            {"key": f.id("cobalt"), "name": "Cobalt, Inc.", "currency": "EUR", "totalSeconds": 36300, "totalHours": 10.0833, "billableSeconds": 25500, "billableHours": 7.0833, "billableAmount": "151.67"},
        ])
    );
    assert_eq!(
        revenue["totals"],
        json!([
            {"currency": "EUR", "totalSeconds": 83100, "totalHours": 23.0833, "billableSeconds": 68700, "billableHours": 19.0833, "billableAmount": "1591.67"},
            {"currency": "USD", "totalSeconds": 21600, "totalHours": 6.0, "billableSeconds": 21600, "billableHours": 6.0, "billableAmount": "600.00"},
        ])
    );
    // By user, week one only.
    let by_user = owner
        .get("/financial-reports/revenue?groupBy=user&from=2026-11-02&to=2026-11-08")
        .await
        .expect(200)
        .body;
    let rows: Vec<(String, String, i64, i64, String)> = by_user["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["name"].as_str().unwrap().to_owned(),
                r["currency"].as_str().unwrap().to_owned(),
                r["totalSeconds"].as_i64().unwrap(),
                r["billableSeconds"].as_i64().unwrap(),
                r["billableAmount"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        rows,
        vec![
            (
                "Max Member".into(),
                "EUR".into(),
                18900,
                18900,
                "585.00".into()
            ),
            (
                "Max Member".into(),
                "USD".into(),
                21600,
                21600,
                "600.00".into()
            ),
            (
                "Olivia Owner".into(),
                "EUR".into(),
                53400,
                39000,
                "656.67".into()
            ),
        ]
    );
    let by_month = owner
        .get(&format!(
            "/financial-reports/revenue?groupBy=month&customerId={}",
            f.id("acme")
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(by_month["items"][0]["key"], "2026-11");
    assert_eq!(by_month["items"][0]["billableAmount"], "1440.00");
    assert_eq!(by_month["items"].as_array().unwrap().len(), 1);
    let by_project = owner
        .get(&format!(
            "/financial-reports/revenue?groupBy=project&projectId={}",
            f.id("web")
        ))
        .await
        .expect(200)
        .body;
    assert_eq!(by_project["items"][0]["name"], "Acme Web");
    assert_eq!(by_project["items"][0]["billableAmount"], "990.00");
    owner
        .get("/financial-reports/revenue?groupBy=week")
        .await
        .expect_error(400, "invalid_parameter");
    owner
        .get("/financial-reports/revenue?from=2026-11-09&to=2026-11-01")
        .await
        .expect_error(400, "invalid_parameter");

    // Budget health.
    let budgets = owner
        .get("/financial-reports/budget-health")
        .await
        .expect(200)
        .body;
    assert_eq!(
        budgets["items"],
        json!([
            {"projectId": f.id("support"), "projectName": "Acme Support", "customerId": f.id("acme"), "customerName": "Acme", "currency": "EUR",
             "budgetHours": null, "spentHours": 5.5, "budgetAmount": "400.00", "spentAmount": "450.00", "percentUsed": 112.5, "status": "over"},
            {"projectId": f.id("web"), "projectName": "Acme Web", "customerId": f.id("acme"), "customerName": "Acme", "currency": "EUR",
             "budgetHours": 8.0, "spentHours": 7.5, "budgetAmount": null, "spentAmount": "990.00", "percentUsed": 93.7, "status": "warning"},
        ])
    );
    assert_eq!(
        budgets["totals"],
        json!([{"currency": "EUR", "projects": 2, "over": 1, "warning": 1, "budgetAmount": "400.00", "spentAmount": "1440.00"}])
    );

    // Unbilled time: the approved week's billable entries.
    let unbilled = owner
        .get("/financial-reports/unbilled-time")
        .await
        .expect(200)
        .body;
    let expected_unbilled = json!([
        {"customerId": f.id("acme"), "customerName": "Acme", "projectId": f.id("support"), "projectName": "Acme Support", "currency": "EUR", "entries": 1, "seconds": 9000, "hours": 2.5, "amount": "250.00"},
        {"customerId": f.id("acme"), "customerName": "Acme", "projectId": f.id("web"), "projectName": "Acme Web", "currency": "EUR", "entries": 3, "seconds": 23400, "hours": 6.5, "amount": "840.00"},
        {"customerId": f.id("beta"), "customerName": "Beta", "projectId": f.id("app"), "projectName": "Beta App", "currency": "USD", "entries": 2, "seconds": 21600, "hours": 6.0, "amount": "600.00"},
        {"customerId": f.id("cobalt"), "customerName": "Cobalt, Inc.", "projectId": f.id("fixedProject"), "projectName": "Cobalt Fixed", "currency": "EUR", "entries": 1, "seconds": 18000, "hours": 5.0, "amount": "0.00"},
        {"customerId": f.id("cobalt"), "customerName": "Cobalt, Inc.", "projectId": f.id("hourly"), "projectName": "Cobalt Hourly", "currency": "EUR", "entries": 2, "seconds": 7500, "hours": 2.0833, "amount": "151.67"},
    ]);
    assert_eq!(unbilled["items"], expected_unbilled);
    assert_eq!(
        unbilled["totals"],
        json!([
            {"currency": "EUR", "seconds": 57900, "hours": 16.0833, "amount": "1241.67"},
            {"currency": "USD", "seconds": 21600, "hours": 6.0, "amount": "600.00"},
        ])
    );
    let csv = owner
        .get("/financial-reports/unbilled-time/export/csv")
        .await
        .expect(200);
    assert_eq!(csv.header("content-type"), Some("text/csv; charset=utf-8"));
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"unbilled-time.csv\"")
    );
    assert_eq!(
        csv_lines(&csv.body),
        vec![
            "customerId,customerName,projectId,projectName,currency,entries,hours,amount"
                .to_owned(),
            format!(
                "{},Acme,{},Acme Support,EUR,1,2.5,250.00",
                f.id("acme"),
                f.id("support")
            ),
            format!(
                "{},Acme,{},Acme Web,EUR,3,6.5,840.00",
                f.id("acme"),
                f.id("web")
            ),
            format!(
                "{},Beta,{},Beta App,USD,2,6,600.00",
                f.id("beta"),
                f.id("app")
            ),
            format!(
                "{},\"Cobalt, Inc.\",{},Cobalt Fixed,EUR,1,5,0.00",
                f.id("cobalt"),
                f.id("fixedProject")
            ),
            format!(
                "{},\"Cobalt, Inc.\",{},Cobalt Hourly,EUR,2,2.0833,151.67",
                f.id("cobalt"),
                f.id("hourly")
            ),
        ]
    );

    // Invoice 1: Acme's November, 19 % tax, part paid, overdue.
    let acme_draft = owner
        .post("/invoices", json!({"customerId": f.id("acme"), "from": "2026-11-01", "to": "2026-11-30", "taxRate": "19.00", "notes": "Thank you!"}))
        .await
        .expect(201)
        .body;
    assert_eq!(acme_draft["status"], "draft");
    assert!(acme_draft["number"].is_null(), "numbers come at issue time");
    let lines: Vec<(String, String, String, String, usize)> = acme_draft["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["description"].as_str().unwrap().to_owned(),
                l["quantity"].as_str().unwrap().to_owned(),
                l["unitPrice"].as_str().unwrap().to_owned(),
                l["amount"].as_str().unwrap().to_owned(),
                l["timeEntryIds"].as_array().unwrap().len(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (
                "Acme Support: Tickets".into(),
                "2.5".into(),
                "100.00".into(),
                "250.00".into(),
                1
            ),
            (
                "Acme Web: Design".into(),
                "2".into(),
                "150.00".into(),
                "300.00".into(),
                1
            ),
            (
                "Acme Web: Dev".into(),
                "4.5".into(),
                "120.00".into(),
                "540.00".into(),
                2
            ),
        ]
    );
    assert_eq!(
        (
            &acme_draft["subtotal"],
            &acme_draft["taxTotal"],
            &acme_draft["total"],
            &acme_draft["amountDue"]
        ),
        (
            &json!("1090.00"),
            &json!("207.10"),
            &json!("1297.10"),
            &json!("1297.10")
        )
    );
    let acme_id = acme_draft["id"].as_str().unwrap().to_owned();
    // Invoiced entries are locked; nothing of Acme is left to bill.
    let billed = &acme_draft["lines"][0]["timeEntryIds"][0];
    let entry = owner
        .get(&format!("/time-entries/{}", billed.as_str().unwrap()))
        .await
        .expect(200);
    assert_eq!(entry.body["invoiceId"], acme_id.as_str());
    assert_eq!(entry.body["isLocked"], true);
    owner
        .post(
            "/invoices",
            json!({"customerId": f.id("acme"), "from": "2026-11-01", "to": "2026-11-30"}),
        )
        .await
        .expect_error(422, "validation_failed");
    let issued = owner
        .post(
            &format!("/invoices/{acme_id}/issue"),
            json!({"issueDate": "2026-11-16", "dueDate": "2026-11-20"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(issued["number"], "INV-0001");
    assert_eq!(issued["status"], "issued");
    owner
        .patch(
            &format!("/invoices/{acme_id}"),
            json!({"notes": "too late"}),
        )
        .await
        .expect_error(409, "invoice_not_draft");
    owner
        .post(
            &format!("/invoices/{acme_id}/payments"),
            json!({"amount": "1300.00"}),
        )
        .await
        .expect_error(422, "validation_failed");
    let part_paid = owner
        .post(
            &format!("/invoices/{acme_id}/payments"),
            json!({"amount": "500.00", "paidOn": "2026-11-18", "method": "bank_transfer"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(part_paid["status"], "issued");
    assert_eq!(part_paid["amountPaid"], "500.00");
    assert_eq!(part_paid["amountDue"], "797.10");
    assert_eq!(part_paid["isOverdue"], true);
    owner
        .post(&format!("/invoices/{acme_id}/void"), json!({}))
        .await
        .expect_error(409, "invoice_has_payments");

    // Invoice 2: Beta, issued then voided: its time is unbilled again.
    let beta_draft = owner
        .post(
            "/invoices",
            json!({"customerId": f.id("beta"), "from": "2026-11-01", "to": "2026-11-30"}),
        )
        .await
        .expect(201)
        .body;
    assert_eq!(beta_draft["currency"], "USD");
    assert_eq!(beta_draft["total"], "600.00");
    assert_eq!(beta_draft["lines"].as_array().unwrap().len(), 2);
    let beta_id = beta_draft["id"].as_str().unwrap().to_owned();
    let beta_issued = owner
        .post(
            &format!("/invoices/{beta_id}/issue"),
            json!({"issueDate": "2026-11-16", "dueDate": "2099-12-31"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(beta_issued["number"], "INV-0002");
    let voided = owner
        .post(&format!("/invoices/{beta_id}/void"), json!({}))
        .await
        .expect(200)
        .body;
    assert_eq!(voided["status"], "void");
    assert_eq!(
        voided["number"], "INV-0002",
        "a void invoice keeps its number"
    );

    // Invoice 3: Cobalt's fixed fee, its hourly time at two user rates, and a manual line; paid.
    let cobalt_draft = owner
        .post("/invoices", json!({"customerId": f.id("cobalt"), "from": "2026-11-01", "to": "2026-11-30", "lines": [{"description": "Hosting", "quantity": "2", "unitPrice": "49.50"}]}))
        .await
        .expect(201)
        .body;
    let lines: Vec<(String, String, String, String)> = cobalt_draft["lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            (
                l["kind"].as_str().unwrap().to_owned(),
                l["quantity"].as_str().unwrap().to_owned(),
                l["unitPrice"].as_str().unwrap().to_owned(),
                l["amount"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (
                "fixed_fee".into(),
                "1".into(),
                "2000.00".into(),
                "2000.00".into()
            ),
            (
                "time".into(),
                "1.333".into(),
                "80.00".into(),
                "106.67".into()
            ),
            ("time".into(), "0.75".into(), "60.00".into(), "45.00".into()),
            ("manual".into(), "2".into(), "49.50".into(), "99.00".into()),
        ]
    );
    assert_eq!(cobalt_draft["total"], "2250.67");
    let cobalt_id = cobalt_draft["id"].as_str().unwrap().to_owned();
    // Editing a draft: manual lines replaced, time lines kept.
    let edited = owner
        .patch(&format!("/invoices/{cobalt_id}"), json!({"lines": [{"description": "Hosting", "quantity": "2", "unitPrice": "49.50"}], "dueDate": "2099-12-31"}))
        .await
        .expect(200)
        .body;
    assert_eq!(edited["total"], "2250.67");
    assert_eq!(edited["lines"].as_array().unwrap().len(), 4);
    let cobalt_issued = owner
        .post(
            &format!("/invoices/{cobalt_id}/issue"),
            json!({"issueDate": "2026-11-16"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(cobalt_issued["number"], "INV-0003");
    assert_eq!(cobalt_issued["dueDate"], "2099-12-31");
    let paid = owner
        .post(
            &format!("/invoices/{cobalt_id}/payments"),
            json!({"amount": "2250.67", "paidOn": "2026-11-20"}),
        )
        .await
        .expect(200)
        .body;
    assert_eq!(paid["status"], "paid");
    assert_eq!(paid["amountDue"], "0.00");

    // Customer billing: the void invoice does not count.
    let billing = owner
        .get("/financial-reports/customer-billing")
        .await
        .expect(200)
        .body;
    assert_eq!(
        billing["items"],
        json!([
            {"customerId": f.id("acme"), "customerName": "Acme", "currency": "EUR", "invoices": 1, "invoiced": "1297.10", "paid": "500.00", "outstanding": "797.10", "overdue": "797.10"},
            {"customerId": f.id("cobalt"), "customerName": "Cobalt, Inc.", "currency": "EUR", "invoices": 1, "invoiced": "2250.67", "paid": "2250.67", "outstanding": "0.00", "overdue": "0.00"},
        ])
    );
    assert_eq!(
        billing["totals"],
        json!([{"currency": "EUR", "invoiced": "3547.77", "paid": "2750.67", "outstanding": "797.10", "overdue": "797.10"}])
    );
    let csv = owner
        .get("/financial-reports/customer-billing/export/csv?from=2026-11-01&to=2026-11-30")
        .await
        .expect(200);
    assert_eq!(
        csv_lines(&csv.body),
        vec![
            "customerId,customerName,currency,invoices,invoiced,paid,outstanding,overdue"
                .to_owned(),
            format!("{},Acme,EUR,1,1297.10,500.00,797.10,797.10", f.id("acme")),
            format!(
                "{},\"Cobalt, Inc.\",EUR,1,2250.67,2250.67,0.00,0.00",
                f.id("cobalt")
            ),
        ]
    );
    owner
        .get("/financial-reports/customer-billing?projectId=x")
        .await
        .expect_error(400, "invalid_parameter");

    // What is left unbilled: Beta's time, freed by the void.
    let unbilled = owner
        .get("/financial-reports/unbilled-time")
        .await
        .expect(200)
        .body;
    assert_eq!(unbilled["items"], json!([expected_unbilled[2].clone()]));
    assert_eq!(
        unbilled["totals"],
        json!([{"currency": "USD", "seconds": 21600, "hours": 6.0, "amount": "600.00"}])
    );

    // The other exports carry the same figures as their JSON.
    let revenue_csv = owner
        .get("/financial-reports/revenue/export/csv")
        .await
        .expect(200);
    assert_eq!(
        csv_lines(&revenue_csv.body),
        vec![
            "key,name,currency,totalHours,billableHours,billableAmount".to_owned(),
            format!("{},Acme,EUR,13,12,1440.00", f.id("acme")),
            format!("{},Beta,USD,6,6,600.00", f.id("beta")),
            format!(
                "{},\"Cobalt, Inc.\",EUR,10.0833,7.0833,151.67",
                f.id("cobalt")
            ),
        ]
    );
    let budget_csv = owner
        .get("/financial-reports/budget-health/export/csv")
        .await
        .expect(200);
    assert_eq!(
        csv_lines(&budget_csv.body),
        vec![
            "projectId,projectName,customerName,currency,budgetHours,spentHours,budgetAmount,spentAmount,percentUsed,status".to_owned(),
            format!("{},Acme Support,Acme,EUR,,5.5,400.00,450.00,112.5,over", f.id("support")),
            format!("{},Acme Web,Acme,EUR,8,7.5,,990.00,93.7,warning", f.id("web")),
        ]
    );

    // The PDF, read back by poppler.
    let pdf = owner
        .send(owner.request(reqwest::Method::GET, &format!("/invoices/{acme_id}/pdf")))
        .await
        .expect(200);
    assert_eq!(pdf.header("content-type"), Some("application/pdf"));
    assert_eq!(
        pdf.header("content-disposition"),
        Some("inline; filename=\"INV-0001.pdf\"")
    );
    let text = pdf_text(&owner, &acme_id).await;
    if let Some(text) = text {
        for needle in [
            "Invoice INV-0001",
            "Test Org",
            "Acme",
            "billing@acme.example",
            "10115 Berlin",
            "2026-11-16",
            "2026-11-20",
            "Acme Support: Tickets",
            "Acme Web: Dev",
            "4.5 h",
            "540.00",
            "Subtotal",
            "1090.00 EUR",
            "Tax (19.00%)",
            "207.10 EUR",
            "1297.10 EUR",
            "500.00 EUR",
            "Amount due",
            "797.10 EUR",
            "Thank you!",
        ] {
            assert!(text.contains(needle), "the PDF shows {needle:?}:\n{text}");
        }
    }
}

/// The text of an invoice's PDF as `pdftotext -layout` reads it, once `pdftoppm` has rendered
/// its first page (kept as `target/test-artifacts/invoice.png`). None, with a loud message,
/// where poppler is missing, except in CI where it must be there.
async fn pdf_text(client: &Client, invoice_id: &str) -> Option<String> {
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

#[tokio::test]
async fn concurrent_issues_get_gap_free_unique_numbers() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let owner = server.as_key(&org.key);
    let customer = owner.customer("Acme").await;
    let mut drafts = Vec::new();
    for i in 0..12 {
        drafts.push(
            owner
                .post("/invoices", json!({"customerId": customer, "lines": [{"description": format!("Line {i}"), "unitPrice": "10.00"}]}))
                .await
                .expect(201)
                .id(),
        );
    }
    // One draft is deleted and one issue fails: neither may leave a gap.
    owner
        .delete(&format!("/invoices/{}", drafts.pop().unwrap()))
        .await
        .expect(204);
    let tasks: Vec<_> = drafts
        .iter()
        .map(|id| {
            let c = owner.clone();
            let id = id.clone();
            tokio::spawn(async move {
                c.post(
                    &format!("/invoices/{id}/issue"),
                    json!({"issueDate": "2026-11-20", "dueDate": "2026-11-01"}),
                )
                .await
                .expect_error(422, "validation_failed");
                c.post(&format!("/invoices/{id}/issue"), json!({}))
                    .await
                    .expect(200)
                    .body["number"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
        })
        .collect();
    let mut numbers = Vec::new();
    for t in tasks {
        numbers.push(t.await.unwrap());
    }
    numbers.sort();
    let expected: Vec<String> = (1..=11).map(|n| format!("INV-{n:04}")).collect();
    assert_eq!(numbers, expected);
    // Issuing twice is refused; the number stays.
    owner
        .post(&format!("/invoices/{}/issue", drafts[0]), json!({}))
        .await
        .expect_error(409, "invoice_not_draft");
    let issued_events = owner
        .get("/events?types=invoice.issued&limit=100")
        .await
        .expect(200)
        .items();
    assert_eq!(issued_events.len(), 11);
}

#[tokio::test]
async fn a_retried_payment_is_recorded_once() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let owner = server.as_key(&org.key);
    let customer = owner.customer("Acme").await;
    let id = owner
        .post("/invoices", json!({"customerId": customer, "lines": [{"description": "Audit", "quantity": "3", "unitPrice": "100.00"}]}))
        .await
        .expect(201)
        .id();
    owner
        .post(&format!("/invoices/{id}/issue"), json!({}))
        .await
        .expect(200);
    let pay = || {
        owner
            .request(reqwest::Method::POST, &format!("/invoices/{id}/payments"))
            .header("Idempotency-Key", "pay-7f3a")
            .json(&json!({"amount": "120.00"}))
    };
    let first = owner.send(pay()).await.expect(200);
    let again = owner.send(pay()).await.expect(200);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    let invoice = owner.get(&format!("/invoices/{id}")).await.expect(200);
    assert_eq!(invoice.body["amountPaid"], "120.00");
    assert_eq!(invoice.body["amountDue"], "180.00");
    assert_eq!(invoice.body["payments"].as_array().unwrap().len(), 1);
    // Viewers and members read no invoices and pay none.
    let (_, member) = owner.user_with_key(&server.db, "member").await;
    member
        .post(
            &format!("/invoices/{id}/payments"),
            json!({"amount": "1.00"}),
        )
        .await
        .expect_error(403, "forbidden");
    member
        .get(&format!("/invoices/{id}/pdf"))
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn edge_invoices_are_handled_not_failed() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let owner = server.as_key(&org.key);
    let customer = owner.customer("Acme").await;
    // Too large to hold: refused on the line, not overflowed.
    let r = owner
        .post("/invoices", json!({"customerId": customer, "lines": [{"description": "x", "quantity": "10000000", "unitPrice": "10000000000.00"}]}))
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["lines[0].amount"]);
    let r = owner
        .post(
            "/invoices",
            json!({"customerId": customer, "lines": [
            {"description": "x", "quantity": "900", "unitPrice": "10000000000.00"},
            {"description": "y", "quantity": "900", "unitPrice": "10000000000.00"}]}),
        )
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["lines"]);
    // Nothing to pay: issued and paid at once, both announced; it can still be voided.
    let free = owner
        .post("/invoices", json!({"customerId": customer, "lines": [{"description": "Goodwill", "unitPrice": "0.00"}]}))
        .await
        .expect(201)
        .id();
    let issued = owner
        .post(&format!("/invoices/{free}/issue"), json!({}))
        .await
        .expect(200);
    assert_eq!(issued.body["status"], "paid");
    let kinds: Vec<String> = owner
        .get("/events?types=invoice.issued,invoice.paid")
        .await
        .expect(200)
        .items()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kinds, vec!["invoice.issued", "invoice.paid"]);
    owner
        .post(&format!("/invoices/{free}/void"), json!({}))
        .await
        .expect(200);
    // Sorting by total pages with a cursor.
    for i in 1..=3 {
        owner
            .post("/invoices", json!({"customerId": customer, "lines": [{"description": "x", "unitPrice": format!("{i}.00")}]}))
            .await
            .expect(201);
    }
    let first = owner
        .get("/invoices?sort=-total&pageSize=2&cursor=")
        .await
        .expect(200);
    let next = first.body["nextCursor"].as_str().unwrap().to_owned();
    let rest = owner
        .get(&format!("/invoices?sort=-total&pageSize=2&cursor={next}"))
        .await
        .expect(200);
    let totals: Vec<Value> = first
        .items()
        .iter()
        .chain(rest.items().iter())
        .map(|i| i["total"].clone())
        .collect();
    assert_eq!(
        totals,
        vec![json!("3.00"), json!("2.00"), json!("1.00"), json!("0.00")]
    );
    // Those who may not read invoices do not read them in the event log either.
    let (_, viewer) = owner.user_with_key(&server.db, "viewer").await;
    let seen = viewer.get("/events?limit=1000").await.expect(200).items();
    assert!(!seen.is_empty());
    assert!(
        seen.iter()
            .all(|e| !e["type"].as_str().unwrap().starts_with("invoice.")),
        "no invoice event for a viewer"
    );
}
