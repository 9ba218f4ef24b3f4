//! Invoices: drafted from the money fixture's approved time and by hand, issued, part paid,
//! voided, exported and rendered with every figure exact; numbers stay gap-free under concurrent
//! issues, a retried payment counts once, and edge cases are answered, not failed.

use serde_json::{Value, json};

use crate::harness::Server;
use crate::money::{self, csv_lines, pdf_text};

#[tokio::test]
async fn invoices_of_the_approved_fixture_are_exact() {
    let b = money::logged().await;
    money::approve_week_one(&b).await;
    let (owner, f) = (&b.owner, &b.f);
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
    assert_eq!(
        unbilled["items"],
        json!([
            {"customerId": f.id("beta"), "customerName": "Beta", "projectId": f.id("app"), "projectName": "Beta App", "currency": "USD", "entries": 2, "seconds": 21600, "hours": 6.0, "amount": "600.00"},
        ])
    );
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
    let text = pdf_text(owner, &acme_id).await;
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

/// `isOverdue` and `overdue=true` judge by the same day: today in the organization's zone. At
/// UTC+14, "yesterday" there is today in UTC for 14 hours of every day, when a UTC reading
/// would call the invoice not yet due.
#[tokio::test]
async fn an_invoice_due_yesterday_in_the_organizations_zone_is_overdue_both_ways() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let owner = server.as_key(&org.key);
    owner
        .patch("/organization", json!({"timezone": "Etc/GMT-14"}))
        .await
        .expect(200);
    let customer = owner.customer("Far East Ltd").await;
    let id = owner
        .post(
            "/invoices",
            json!({"customerId": customer, "lines": [{"description": "Audit", "unitPrice": "100.00"}]}),
        )
        .await
        .expect(201)
        .id();
    let today_there = (chrono::Utc::now() + chrono::Duration::hours(14)).date_naive();
    let yesterday_there = (today_there - chrono::Days::new(1))
        .format("%Y-%m-%d")
        .to_string();
    let issued = owner
        .post(
            &format!("/invoices/{id}/issue"),
            json!({"issueDate": yesterday_there, "dueDate": yesterday_there}),
        )
        .await
        .expect(200);
    assert_eq!(issued.body["isOverdue"], true, "{}", issued.body);

    let overdue = owner
        .get("/invoices?overdue=true")
        .await
        .expect(200)
        .items();
    let ids: Vec<&str> = overdue.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, [id.as_str()]);
    assert_eq!(overdue[0]["isOverdue"], true);
    let one = owner.get(&format!("/invoices/{id}")).await.expect(200);
    assert_eq!(one.body["isOverdue"], true);
    let not_overdue = owner
        .get("/invoices?overdue=false")
        .await
        .expect(200)
        .items();
    assert!(not_overdue.is_empty(), "{not_overdue:?}");
}
