//! Project budgets: how much of a budget (hours, amount or both) the logged time has used, and
//! the `project.budget_threshold_reached` event, announced once at 80% and once at 100%.

use serde_json::{Value, json};

use crate::billing::projects;
use crate::error::{Error, Result};
use crate::store::checks;
use crate::store::db::{QueryTarget, Sql, Tx, row};
use crate::store::events::{self, NewEvent};
use crate::store::money::format_amount;

/// The thresholds announced, in percent of the budget.
pub const THRESHOLDS: [i64; 2] = [80, 100];

/// What a project has spent against its budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub budget_seconds: Option<i64>,
    pub budget_amount: Option<i64>,
    pub spent_seconds: i64,
    pub spent_amount: i64,
}

impl Usage {
    /// Whether `percent` of a budget is used: of the hours or of the amount, whichever is more.
    pub fn reached(&self, percent: i64) -> bool {
        let over = |spent: i64, budget: Option<i64>| {
            budget.is_some_and(|b| i128::from(spent) * 100 >= i128::from(b) * i128::from(percent))
        };
        over(self.spent_seconds, self.budget_seconds) || over(self.spent_amount, self.budget_amount)
    }

    /// The larger of the two shares used, in tenths of a percent (rounded down); None without a
    /// budget. A budget of zero counts as fully used.
    pub fn permille_used(&self) -> Option<i64> {
        let share = |spent: i64, budget: Option<i64>| {
            budget.map(|b| {
                if b == 0 {
                    1000
                } else {
                    (i128::from(spent) * 1000 / i128::from(b)) as i64
                }
            })
        };
        match (
            share(self.spent_seconds, self.budget_seconds),
            share(self.spent_amount, self.budget_amount),
        ) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        }
    }

    /// `ok` below 80%, `warning` from 80%, `over` from 100%.
    pub fn status(&self) -> &'static str {
        if self.reached(100) {
            "over"
        } else if self.reached(80) {
            "warning"
        } else {
            "ok"
        }
    }
}

/// Sums the stopped, live entries of a project (of `from`..=`to` when given).
pub async fn usage_of(
    conn: impl QueryTarget,
    project: &row::Row,
    from: Option<&str>,
    to: Option<&str>,
) -> Result<Usage> {
    let mut sql = Sql::new(
        "SELECT CAST(COALESCE(SUM(duration_seconds), 0) AS BIGINT) AS seconds, CAST(COALESCE(SUM(billable_amount), 0) AS BIGINT) AS amount \
         FROM time_entries WHERE project_id = ? AND deleted_at IS NULL AND is_running = 0",
    );
    sql.bind(row::get_str(project, "id")?);
    if let Some(from) = from {
        sql.and(" AND date >= ?", from);
    }
    if let Some(to) = to {
        sql.and(" AND date <= ?", to);
    }
    let spent = sql.fetch_one(conn).await?;
    Ok(Usage {
        budget_seconds: row::get_opt_i64(project, "budget_seconds")?,
        budget_amount: row::get_opt_i64(project, "budget_amount")?,
        spent_seconds: row::get_i64(&spent, "seconds")?,
        spent_amount: row::get_i64(&spent, "amount")?,
    })
}

/// After time was logged on a project: announces each threshold it has newly reached.
pub(crate) async fn check(tx: &mut Tx, project_id: &str) -> Result<()> {
    // Locked, so that two entries committing together cannot both announce one threshold.
    let mut sql = Sql::new("SELECT * FROM projects WHERE id = ?");
    sql.bind(project_id);
    if tx.locks_rows() {
        sql.push(" FOR UPDATE");
    }
    let project = sql.fetch_one(&mut *tx).await?;
    if row::get_opt_i64(&project, "budget_seconds")?.is_none()
        && row::get_opt_i64(&project, "budget_amount")?.is_none()
    {
        return Ok(());
    }
    let announced = row::get_i64(&project, "budget_alert_level")?;
    let usage = usage_of(&mut *tx, &project, None, None).await?;
    let reached: Vec<i64> = THRESHOLDS
        .into_iter()
        .filter(|t| *t > announced && usage.reached(*t))
        .collect();
    let Some(highest) = reached.last() else {
        return Ok(());
    };
    Sql::new("UPDATE projects SET budget_alert_level = ? WHERE id = ?")
        .arg(*highest)
        .arg(project_id)
        .execute(&mut *tx)
        .await?;
    let org_id = row::get_str(&project, "org_id")?;
    let data = serde_json::to_value(projects::from_row(&project)?)
        .map_err(|e| Error::Internal(e.to_string()))?;
    for threshold in reached {
        events::append(
            tx,
            NewEvent {
                org_id: &org_id,
                kind: "project.budget_threshold_reached".into(),
                resource_id: project_id,
                data: with_usage(data.clone(), threshold, &usage)?,
                changed: None,
            },
        )
        .await?;
    }
    Ok(())
}

/// The project as the event carries it: the project plus the threshold and what was spent.
fn with_usage(mut project: Value, threshold: i64, usage: &Usage) -> Result<Value> {
    let currency = project["currency"].as_str().unwrap_or("EUR").to_owned();
    let object = project
        .as_object_mut()
        .ok_or_else(|| Error::Internal("project is not an object".into()))?;
    object.insert("budgetThreshold".into(), json!(threshold));
    object.insert(
        "percentUsed".into(),
        json!(usage.permille_used().unwrap_or(0) as f64 / 10.0),
    );
    object.insert(
        "spentHours".into(),
        json!(checks::hours(Some(usage.spent_seconds))),
    );
    object.insert(
        "spentAmount".into(),
        json!(format_amount(usage.spent_amount, &currency)),
    );
    Ok(project)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_larger_share_decides() {
        let usage = Usage {
            budget_seconds: Some(10 * 3600),
            budget_amount: Some(100_000),
            spent_seconds: 7 * 3600,
            spent_amount: 80_000,
        };
        assert!(usage.reached(80));
        assert!(!usage.reached(100));
        assert_eq!(usage.permille_used(), Some(800));
        assert_eq!(usage.status(), "warning");
        let hours_only = Usage {
            budget_amount: None,
            ..usage
        };
        assert_eq!(hours_only.permille_used(), Some(700));
        assert_eq!(hours_only.status(), "ok");
        let over = Usage {
            spent_seconds: 10 * 3600,
            ..hours_only
        };
        assert_eq!(over.status(), "over");
    }
}
