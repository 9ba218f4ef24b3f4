//! Pricing: every entry of the money fixture is priced at the rate the hierarchy and the user
//! set above it, and budgets announce their thresholds once each.

use serde_json::{Value, json};

use crate::money;

#[tokio::test]
async fn every_entry_is_priced_at_the_rate_above_it() {
    let b = money::logged().await;
    let logged = &b.logged;
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
}

#[tokio::test]
async fn budget_thresholds_are_reached_once_each() {
    let b = money::logged().await;
    let (owner, f) = (&b.owner, &b.f);
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
}
