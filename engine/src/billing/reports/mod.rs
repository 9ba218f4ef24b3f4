//! Financial reports: revenue, budget health, unbilled time and customer billing. Amounts are
//! summed in minor units per currency and never converted: every total is per currency.
//! Each report also gives its rows as a table (header and cells) for the CSV export.

mod budget_health;
mod customer_billing;
mod revenue;
mod unbilled;

pub use budget_health::{BudgetReport, BudgetRow, BudgetTotal, budget_health};
pub use customer_billing::{
    CustomerBillingReport, CustomerBillingRow, CustomerBillingTotal, customer_billing,
};
pub use revenue::{RevenueReport, RevenueRow, RevenueTotal, revenue};
pub use unbilled::{UnbilledQuery, UnbilledReport, UnbilledRow, UnbilledTotal, unbilled_time};

use crate::access::auth::Actor;
use crate::error::{Error, Result};
use crate::store::checks;
use crate::store::clock::parse_date_field;
use crate::store::db::Sql;

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
