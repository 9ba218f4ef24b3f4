//! Unbilled time: billable time not yet on an invoice; approved time only unless asked for all
//! of it.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ReportQuery, Table, entries_sql, hours};
use crate::access::auth::{Actor, Permission};
use crate::error::Result;
use crate::store::db::{Db, row};
use crate::store::list::parse_bool;
use crate::store::money::format_amount;

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnbilledRow {
    pub customer_id: String,
    pub customer_name: String,
    pub project_id: String,
    pub project_name: String,
    pub currency: String,
    pub entries: i64,
    pub seconds: i64,
    #[schema(example = 6.5)]
    pub hours: f64,
    /// At the entries' rates (fixed-fee work counts hours only).
    #[schema(example = "840.00")]
    pub amount: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnbilledTotal {
    pub currency: String,
    pub seconds: i64,
    pub hours: f64,
    pub amount: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UnbilledReport {
    pub from: Option<String>,
    pub to: Option<String>,
    /// What was counted: `false`, approved time only (what invoicing bills now); `true`, all
    /// logged time, whatever its timesheet's status.
    pub include_unapproved: bool,
    pub items: Vec<UnbilledRow>,
    pub totals: Vec<UnbilledTotal>,
}

/// The unbilled-time report's query: every report's filters, and `includeUnapproved`.
#[derive(Debug, Clone, Default)]
pub struct UnbilledQuery {
    pub report: ReportQuery,
    pub include_unapproved: bool,
}

impl UnbilledQuery {
    /// Reads the query string; unknown parameters and bad values are a 400.
    pub fn parse(params: &[(String, String)]) -> Result<Self> {
        let mut include_unapproved = false;
        let mut rest = Vec::with_capacity(params.len());
        for (name, value) in params {
            if name == "includeUnapproved" {
                include_unapproved = parse_bool(name, value)?;
            } else {
                rest.push((name.clone(), value.clone()));
            }
        }
        Ok(Self {
            report: ReportQuery::parse(&rest, false)?,
            include_unapproved,
        })
    }
}

/// Billable time not yet on an invoice. By default approved time only: the time `POST
/// /invoices` with `from` and `to` would bill; with `include_unapproved`, also time of open,
/// submitted and rejected timesheets. Fixed-fee work shows its hours at no amount: its fee line
/// is worked out at invoicing, less what earlier invoices billed.
pub async fn unbilled_time(
    db: &Db,
    actor: &Actor,
    query: &UnbilledQuery,
) -> Result<UnbilledReport> {
    actor.require(Permission::ReadFinancials)?;
    let q = &query.report;
    let approval = if query.include_unapproved {
        ""
    } else {
        " AND e.approval_status = 'approved'"
    };
    let rows = entries_sql(
        actor,
        q,
        &format!("{approval} AND e.invoice_id IS NULL AND e.billable = 1"),
    )
    .fetch_all(db)
    .await?;
    // (customer name, customer id, project name, project id, currency) → (entries, seconds, amount)
    type Key = (String, String, String, String, String);
    let mut groups: BTreeMap<Key, (i64, i64, i128)> = BTreeMap::new();
    let mut totals: BTreeMap<String, (i64, i128)> = BTreeMap::new();
    for r in &rows {
        let currency = row::get_str(r, "currency")?;
        let seconds = row::get_i64(r, "duration_seconds")?;
        let amount = row::get_i64(r, "billable_amount")?;
        let g = groups
            .entry((
                row::get_str(r, "customer_name")?,
                row::get_str(r, "customer_id")?,
                row::get_str(r, "project_name")?,
                row::get_str(r, "project_id")?,
                currency.clone(),
            ))
            .or_default();
        g.0 += 1;
        g.1 += seconds;
        g.2 += i128::from(amount);
        let t = totals.entry(currency).or_default();
        t.0 += seconds;
        t.1 += i128::from(amount);
    }
    Ok(UnbilledReport {
        from: q.from.clone(),
        to: q.to.clone(),
        include_unapproved: query.include_unapproved,
        items: groups
            .into_iter()
            .map(
                |((customer_name, customer_id, project_name, project_id, currency), (n, s, a))| {
                    UnbilledRow {
                        customer_id,
                        customer_name,
                        project_id,
                        project_name,
                        entries: n,
                        seconds: s,
                        hours: hours(s),
                        amount: format_amount(a, &currency),
                        currency,
                    }
                },
            )
            .collect(),
        totals: totals
            .into_iter()
            .map(|(currency, (s, a))| UnbilledTotal {
                seconds: s,
                hours: hours(s),
                amount: format_amount(a, &currency),
                currency,
            })
            .collect(),
    })
}

impl UnbilledReport {
    pub fn table(&self) -> Table {
        Table {
            header: &[
                "customerId",
                "customerName",
                "projectId",
                "projectName",
                "currency",
                "entries",
                "hours",
                "amount",
            ],
            rows: self
                .items
                .iter()
                .map(|r| {
                    vec![
                        r.customer_id.clone(),
                        r.customer_name.clone(),
                        r.project_id.clone(),
                        r.project_name.clone(),
                        r.currency.clone(),
                        r.entries.to_string(),
                        r.hours.to_string(),
                        r.amount.clone(),
                    ]
                })
                .collect(),
        }
    }
}
