//! Customer billing: what each customer was invoiced, paid and still owes.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ReportQuery, Table};
use crate::access::auth::{Actor, Permission};
use crate::error::{Error, Result};
use crate::store::clock::{date_in_zone, format_date, now_ms};
use crate::store::db::{Db, Sql, row};
use crate::store::money::format_amount;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerBillingRow {
    pub customer_id: String,
    pub customer_name: String,
    pub currency: String,
    /// Issued and paid invoices (drafts and void ones do not count).
    pub invoices: i64,
    #[schema(example = "1297.10")]
    pub invoiced: String,
    #[schema(example = "500.00")]
    pub paid: String,
    #[schema(example = "797.10")]
    pub outstanding: String,
    /// Outstanding on invoices past their due date.
    #[schema(example = "797.10")]
    pub overdue: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerBillingTotal {
    pub currency: String,
    pub invoiced: String,
    pub paid: String,
    pub outstanding: String,
    pub overdue: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct CustomerBillingReport {
    /// The period of issue dates.
    pub from: Option<String>,
    pub to: Option<String>,
    pub items: Vec<CustomerBillingRow>,
    pub totals: Vec<CustomerBillingTotal>,
}

#[derive(Default, Clone, Copy)]
struct Billing {
    count: i64,
    invoiced: i128,
    paid: i128,
    overdue: i128,
}

pub async fn customer_billing(
    db: &Db,
    actor: &Actor,
    q: &ReportQuery,
) -> Result<CustomerBillingReport> {
    actor.require(Permission::ReadFinancials)?;
    if q.project_id.is_some() {
        return Err(Error::InvalidParameter(
            "projectId does not apply to customer billing (invoices span projects)".into(),
        ));
    }
    let mut sql = Sql::new(
        "SELECT i.customer_id, c.name AS customer_name, i.currency, i.total, i.amount_paid, i.due_date \
         FROM invoices i JOIN customers c ON c.id = i.customer_id \
         WHERE i.org_id = ? AND i.deleted_at IS NULL AND i.status IN ('issued', 'paid')",
    );
    sql.bind(actor.org_id());
    if let Some(from) = &q.from {
        sql.and(" AND i.issue_date >= ?", from.as_str());
    }
    if let Some(to) = &q.to {
        sql.and(" AND i.issue_date <= ?", to.as_str());
    }
    if let Some(id) = &q.customer_id {
        sql.and(" AND i.customer_id = ?", id.as_str());
    }
    let rows = sql.fetch_all(db).await?;
    let today = format_date(date_in_zone(now_ms(), &actor.organization.timezone));
    let mut groups: BTreeMap<(String, String, String), Billing> = BTreeMap::new();
    let mut totals: BTreeMap<String, Billing> = BTreeMap::new();
    for r in &rows {
        let currency = row::get_str(r, "currency")?;
        let total = row::get_i64(r, "total")?;
        let paid = row::get_i64(r, "amount_paid")?;
        let overdue = row::get_opt_str(r, "due_date")?.is_some_and(|d| d < today);
        for b in [
            groups
                .entry((
                    row::get_str(r, "customer_name")?,
                    row::get_str(r, "customer_id")?,
                    currency.clone(),
                ))
                .or_default(),
            totals.entry(currency).or_default(),
        ] {
            b.count += 1;
            b.invoiced += i128::from(total);
            b.paid += i128::from(paid);
            if overdue {
                b.overdue += i128::from(total - paid);
            }
        }
    }
    Ok(CustomerBillingReport {
        from: q.from.clone(),
        to: q.to.clone(),
        items: groups
            .into_iter()
            .map(
                |((customer_name, customer_id, currency), b)| CustomerBillingRow {
                    customer_id,
                    customer_name,
                    invoices: b.count,
                    invoiced: format_amount(b.invoiced, &currency),
                    paid: format_amount(b.paid, &currency),
                    outstanding: format_amount(b.invoiced - b.paid, &currency),
                    overdue: format_amount(b.overdue, &currency),
                    currency,
                },
            )
            .collect(),
        totals: totals
            .into_iter()
            .map(|(currency, b)| CustomerBillingTotal {
                invoiced: format_amount(b.invoiced, &currency),
                paid: format_amount(b.paid, &currency),
                outstanding: format_amount(b.invoiced - b.paid, &currency),
                overdue: format_amount(b.overdue, &currency),
                currency,
            })
            .collect(),
    })
}

impl CustomerBillingReport {
    pub fn table(&self) -> Table {
        Table {
            header: &[
                "customerId",
                "customerName",
                "currency",
                "invoices",
                "invoiced",
                "paid",
                "outstanding",
                "overdue",
            ],
            rows: self
                .items
                .iter()
                .map(|r| {
                    vec![
                        r.customer_id.clone(),
                        r.customer_name.clone(),
                        r.currency.clone(),
                        r.invoices.to_string(),
                        r.invoiced.clone(),
                        r.paid.clone(),
                        r.outstanding.clone(),
                        r.overdue.clone(),
                    ]
                })
                .collect(),
        }
    }
}
