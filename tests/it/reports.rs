//! Financial reports on the money fixture's approved week: revenue by customer, user, month and
//! project, budget health and unbilled time, in JSON and CSV, every figure exact.

use serde_json::json;

use crate::money::{self, csv_lines};

#[tokio::test]
async fn reports_of_the_approved_fixture_are_exact() {
    let b = money::logged().await;
    money::approve_week_one(&b).await;
    let (owner, f) = (&b.owner, &b.f);
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
}
