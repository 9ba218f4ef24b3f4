//! Revenue: billable hours and amounts per customer, project, user or month.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ReportQuery, Table, entries_sql, hours};
use crate::access::auth::{Actor, Permission};
use crate::error::Result;
use crate::store::db::{Db, row};
use crate::store::money::format_amount;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevenueRow {
    /// The customer, project or user id, or the month `YYYY-MM`.
    #[schema(example = "cus_01JD4Z8Q2W3E4R5T6Y7U8I9O0P")]
    pub key: String,
    #[schema(example = "Acme")]
    pub name: String,
    #[schema(example = "EUR")]
    pub currency: String,
    pub total_seconds: i64,
    pub total_hours: f64,
    pub billable_seconds: i64,
    pub billable_hours: f64,
    /// Billable time at its rates. Fixed-fee work counts hours, not amounts (its fee is
    /// invoiced: see customer billing).
    #[schema(example = "1440.00")]
    pub billable_amount: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevenueTotal {
    pub currency: String,
    pub total_seconds: i64,
    pub total_hours: f64,
    pub billable_seconds: i64,
    pub billable_hours: f64,
    pub billable_amount: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RevenueReport {
    pub from: Option<String>,
    pub to: Option<String>,
    /// `customer` (the default), `project`, `user` or `month`.
    pub group_by: String,
    pub items: Vec<RevenueRow>,
    pub totals: Vec<RevenueTotal>,
}

#[derive(Default, Clone, Copy)]
struct Sums {
    total: i64,
    billable: i64,
    amount: i128,
}

pub async fn revenue(db: &Db, actor: &Actor, q: &ReportQuery) -> Result<RevenueReport> {
    actor.require(Permission::ReadFinancials)?;
    let group_by = q.group_by.clone().unwrap_or_else(|| "customer".into());
    let rows = entries_sql(actor, q, "").fetch_all(db).await?;
    // (sort name, key, currency) → (name, sums)
    let mut groups: BTreeMap<(String, String, String), Sums> = BTreeMap::new();
    let mut totals: BTreeMap<String, Sums> = BTreeMap::new();
    for r in &rows {
        let (key, name) = match group_by.as_str() {
            "project" => (
                row::get_str(r, "project_id")?,
                row::get_str(r, "project_name")?,
            ),
            "user" => (row::get_str(r, "user_id")?, row::get_str(r, "user_name")?),
            "month" => {
                let month = row::get_str(r, "date")?.chars().take(7).collect::<String>();
                (month.clone(), month)
            }
            _ => (
                row::get_str(r, "customer_id")?,
                row::get_str(r, "customer_name")?,
            ),
        };
        let currency = row::get_str(r, "currency")?;
        let seconds = row::get_i64(r, "duration_seconds")?;
        let billable = row::get_bool(r, "billable")?;
        let amount = row::get_i64(r, "billable_amount")?;
        for sums in [
            groups.entry((name, key, currency.clone())).or_default(),
            totals.entry(currency).or_default(),
        ] {
            sums.total += seconds;
            if billable {
                sums.billable += seconds;
            }
            sums.amount += i128::from(amount);
        }
    }
    let items = groups
        .into_iter()
        .map(|((name, key, currency), s)| RevenueRow {
            key,
            name,
            total_seconds: s.total,
            total_hours: hours(s.total),
            billable_seconds: s.billable,
            billable_hours: hours(s.billable),
            billable_amount: format_amount(s.amount, &currency),
            currency,
        })
        .collect();
    let totals = totals
        .into_iter()
        .map(|(currency, s)| RevenueTotal {
            total_seconds: s.total,
            total_hours: hours(s.total),
            billable_seconds: s.billable,
            billable_hours: hours(s.billable),
            billable_amount: format_amount(s.amount, &currency),
            currency,
        })
        .collect();
    Ok(RevenueReport {
        from: q.from.clone(),
        to: q.to.clone(),
        group_by,
        items,
        totals,
    })
}

impl RevenueReport {
    pub fn table(&self) -> Table {
        Table {
            header: &[
                "key",
                "name",
                "currency",
                "totalHours",
                "billableHours",
                "billableAmount",
            ],
            rows: self
                .items
                .iter()
                .map(|r| {
                    vec![
                        r.key.clone(),
                        r.name.clone(),
                        r.currency.clone(),
                        r.total_hours.to_string(),
                        r.billable_hours.to_string(),
                        r.billable_amount.clone(),
                    ]
                })
                .collect(),
        }
    }
}
