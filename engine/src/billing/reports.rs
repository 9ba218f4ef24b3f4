//! Financial reports: revenue, budget health, unbilled time and customer billing. Amounts are
//! summed in minor units per currency and never converted: every total is per currency.
//! Each report also gives its rows as a table (header and cells) for the CSV export.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::access::auth::{Actor, Permission};
use crate::billing::budgets::{self, Usage};
use crate::error::{Error, Result};
use crate::store::checks;
use crate::store::clock::{date_in_zone, format_date, now_ms, parse_date_field};
use crate::store::db::{Db, Sql, row};
use crate::store::money::format_amount;

/// What every report is asked: a period of work dates and optional customer and project.
#[derive(Debug, Clone, Default)]
pub struct ReportQuery {
    pub from: Option<String>,
    pub to: Option<String>,
    pub customer_id: Option<String>,
    pub project_id: Option<String>,
    pub group_by: Option<String>,
}

pub const GROUPS: [&str; 4] = ["customer", "project", "user", "month"];

impl ReportQuery {
    /// Reads the query string; unknown parameters and bad values are a 400.
    pub fn parse(params: &[(String, String)], takes_group_by: bool) -> Result<Self> {
        let bad = |m: String| Error::InvalidParameter(m);
        let mut q = ReportQuery::default();
        for (name, value) in params {
            match name.as_str() {
                "from" => {
                    q.from = Some(parse_date_field("from", value).map_err(|e| bad(e.message))?)
                }
                "to" => q.to = Some(parse_date_field("to", value).map_err(|e| bad(e.message))?),
                "customerId" => q.customer_id = Some(value.clone()),
                "projectId" => q.project_id = Some(value.clone()),
                "groupBy" if takes_group_by => {
                    if !GROUPS.contains(&value.as_str()) {
                        return Err(bad(format!("groupBy must be one of {}", GROUPS.join(", "))));
                    }
                    q.group_by = Some(value.clone());
                }
                other => {
                    return Err(bad(format!(
                        "unknown parameter {}",
                        crate::store::json::quote(other)
                    )));
                }
            }
        }
        if let (Some(from), Some(to)) = (&q.from, &q.to)
            && to < from
        {
            return Err(bad("to must not be before from".into()));
        }
        Ok(q)
    }
}

/// A report as a table: the CSV export writes exactly this.
pub struct Table {
    pub header: &'static [&'static str],
    pub rows: Vec<Vec<String>>,
}

fn hours(seconds: i64) -> f64 {
    checks::hours(Some(seconds)).unwrap_or_default()
}

/// Time entries that count: live, stopped, in the period, of the customer and project asked.
fn entries_sql(actor: &Actor, q: &ReportQuery, extra: &str) -> Sql {
    let mut sql = Sql::new(
        "SELECT e.duration_seconds, e.billable, e.billable_amount, e.currency, e.date, e.user_id, \
         e.customer_id, e.project_id, c.name AS customer_name, p.name AS project_name, u.name AS user_name \
         FROM time_entries e JOIN customers c ON c.id = e.customer_id JOIN projects p ON p.id = e.project_id \
         JOIN org_users u ON u.id = e.user_id \
         WHERE e.org_id = ? AND e.deleted_at IS NULL AND e.is_running = 0",
    );
    sql.bind(actor.org_id());
    sql.push(extra);
    if let Some(from) = &q.from {
        sql.and(" AND e.date >= ?", from.as_str());
    }
    if let Some(to) = &q.to {
        sql.and(" AND e.date <= ?", to.as_str());
    }
    if let Some(id) = &q.customer_id {
        sql.and(" AND e.customer_id = ?", id.as_str());
    }
    if let Some(id) = &q.project_id {
        sql.and(" AND e.project_id = ?", id.as_str());
    }
    sql
}

// ---------------------------------------------------------------------------------------------
// Revenue

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

// ---------------------------------------------------------------------------------------------
// Budget health

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetRow {
    pub project_id: String,
    pub project_name: String,
    pub customer_id: String,
    pub customer_name: String,
    pub currency: String,
    pub budget_hours: Option<f64>,
    pub spent_hours: f64,
    pub budget_amount: Option<String>,
    /// Billable time at its rates.
    pub spent_amount: String,
    /// The larger of the hours and amount shares, to a tenth of a percent (rounded down).
    #[schema(example = 93.7)]
    pub percent_used: f64,
    /// `ok` below 80%, `warning` from 80%, `over` from 100%.
    #[schema(example = "warning")]
    pub status: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetTotal {
    pub currency: String,
    pub projects: i64,
    pub over: i64,
    pub warning: i64,
    pub budget_amount: String,
    pub spent_amount: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BudgetReport {
    /// Without `from` and `to` the whole life of each project counts.
    pub from: Option<String>,
    pub to: Option<String>,
    pub items: Vec<BudgetRow>,
    pub totals: Vec<BudgetTotal>,
}

pub async fn budget_health(db: &Db, actor: &Actor, q: &ReportQuery) -> Result<BudgetReport> {
    actor.require(Permission::ReadFinancials)?;
    let mut sql = Sql::new(
        "SELECT p.*, c.name AS customer_name FROM projects p JOIN customers c ON c.id = p.customer_id \
         WHERE p.org_id = ? AND p.deleted_at IS NULL \
         AND (p.budget_seconds IS NOT NULL OR p.budget_amount IS NOT NULL)",
    );
    sql.bind(actor.org_id());
    if let Some(id) = &q.customer_id {
        sql.and(" AND p.customer_id = ?", id.as_str());
    }
    if let Some(id) = &q.project_id {
        sql.and(" AND p.id = ?", id.as_str());
    }
    sql.push(" ORDER BY p.name, p.id");
    let projects = sql.fetch_all(db).await?;
    let mut items = Vec::with_capacity(projects.len());
    let mut totals: BTreeMap<String, BudgetTotal> = BTreeMap::new();
    let mut amounts: BTreeMap<String, (i128, i128)> = BTreeMap::new();
    for p in &projects {
        let usage: Usage = budgets::usage_of(db, p, q.from.as_deref(), q.to.as_deref()).await?;
        let currency = row::get_str(p, "currency")?;
        let status = usage.status();
        let total = totals
            .entry(currency.clone())
            .or_insert_with(|| BudgetTotal {
                currency: currency.clone(),
                projects: 0,
                over: 0,
                warning: 0,
                budget_amount: String::new(),
                spent_amount: String::new(),
            });
        total.projects += 1;
        match status {
            "over" => total.over += 1,
            "warning" => total.warning += 1,
            _ => {}
        }
        let sums = amounts.entry(currency.clone()).or_default();
        sums.0 += i128::from(usage.budget_amount.unwrap_or(0));
        sums.1 += i128::from(usage.spent_amount);
        items.push(BudgetRow {
            project_id: row::get_str(p, "id")?,
            project_name: row::get_str(p, "name")?,
            customer_id: row::get_str(p, "customer_id")?,
            customer_name: row::get_str(p, "customer_name")?,
            budget_hours: usage.budget_seconds.map(hours),
            spent_hours: hours(usage.spent_seconds),
            budget_amount: usage.budget_amount.map(|a| format_amount(a, &currency)),
            spent_amount: format_amount(usage.spent_amount, &currency),
            percent_used: usage.permille_used().unwrap_or(0) as f64 / 10.0,
            status: status.to_owned(),
            currency,
        });
    }
    let totals = totals
        .into_values()
        .map(|mut t| {
            let (budget, spent) = amounts[&t.currency];
            t.budget_amount = format_amount(budget, &t.currency);
            t.spent_amount = format_amount(spent, &t.currency);
            t
        })
        .collect();
    Ok(BudgetReport {
        from: q.from.clone(),
        to: q.to.clone(),
        items,
        totals,
    })
}

impl BudgetReport {
    pub fn table(&self) -> Table {
        Table {
            header: &[
                "projectId",
                "projectName",
                "customerName",
                "currency",
                "budgetHours",
                "spentHours",
                "budgetAmount",
                "spentAmount",
                "percentUsed",
                "status",
            ],
            rows: self
                .items
                .iter()
                .map(|r| {
                    vec![
                        r.project_id.clone(),
                        r.project_name.clone(),
                        r.customer_name.clone(),
                        r.currency.clone(),
                        r.budget_hours.map(|h| h.to_string()).unwrap_or_default(),
                        r.spent_hours.to_string(),
                        r.budget_amount.clone().unwrap_or_default(),
                        r.spent_amount.clone(),
                        format!("{:.1}", r.percent_used),
                        r.status.clone(),
                    ]
                })
                .collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Unbilled time

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
    pub items: Vec<UnbilledRow>,
    pub totals: Vec<UnbilledTotal>,
}

/// Approved, billable time not yet on an invoice: the time `POST /invoices` with `from` and
/// `to` would bill (fixed-fee work shows its hours at no amount: its fee line is worked out at
/// invoicing, less what earlier invoices billed).
pub async fn unbilled_time(db: &Db, actor: &Actor, q: &ReportQuery) -> Result<UnbilledReport> {
    actor.require(Permission::ReadFinancials)?;
    let rows = entries_sql(
        actor,
        q,
        " AND e.approval_status = 'approved' AND e.invoice_id IS NULL AND e.billable = 1",
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

// ---------------------------------------------------------------------------------------------
// Customer billing

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
