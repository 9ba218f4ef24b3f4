//! Budget health: each project's time and money against its budget.

use std::collections::BTreeMap;

use serde::Serialize;

use super::{ReportQuery, Table, hours};
use crate::access::auth::{Actor, Permission};
use crate::billing::budgets::{self, Usage};
use crate::error::Result;
use crate::store::db::{Db, Sql, row};
use crate::store::money::format_amount;

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
