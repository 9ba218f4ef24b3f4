//! The price of an entry: its billable rate read from the hierarchy and the user, its amount,
//! and repricing when a rate above it changes.

use super::{LIST, NOUN, from_row};
use crate::access::auth::Actor;
use crate::billing::{budgets, projects, timesheets};
use crate::error::{Error, Result};
use crate::store::clock::now_ms;
use crate::store::db::{QueryTarget, Sql, Tx, row};
use crate::store::events;
use crate::store::resource;
use crate::store::rows;

/// What the hierarchy and the user say about the price of an entry.
pub(super) struct Pricing {
    pub(super) task_id: String,
    pub(super) project_id: String,
    pub(super) customer_id: String,
    pub(super) currency: String,
    /// False on non-billable projects and tasks.
    pub(super) billable_allowed: bool,
    /// None on fixed-fee projects and when no level sets a rate.
    pub(super) rate: Option<i64>,
}

impl Pricing {
    pub(super) async fn load(
        tx: &mut Tx,
        actor: &Actor,
        subtask_id: &str,
        user_id: &str,
    ) -> Result<Self> {
        let not_found = || {
            Error::validation(
                "subtaskId",
                "not_found",
                "subtaskId does not name a subtask of this organization",
            )
        };
        let subtask = rows::live_row(&mut *tx, "subtasks", actor.org_id(), subtask_id)
            .await?
            .ok_or_else(not_found)?;
        // The project must be live and not archived.
        projects::parent(
            tx,
            actor.org_id(),
            &row::get_str(&subtask, "project_id")?,
            "subtaskId",
        )
        .await?;
        Self::of_task(tx, &row::get_str(&subtask, "task_id")?, user_id)
            .await?
            .ok_or_else(not_found)
    }

    /// The price of a task's work by `user_id`, read from the hierarchy as it is now.
    pub(super) async fn of_task(tx: &mut Tx, task_id: &str, user_id: &str) -> Result<Option<Self>> {
        let Some(r) = Sql::new(
            "SELECT t.billable AS task_billable, t.hourly_rate AS task_rate, p.id AS project_id, \
             p.billing_method, p.hourly_rate AS project_rate, p.currency, p.customer_id, \
             c.hourly_rate AS customer_rate, c.currency AS customer_currency, \
             u.billable_rate AS user_rate, o.currency AS org_currency \
             FROM tasks t JOIN projects p ON p.id = t.project_id JOIN customers c ON c.id = p.customer_id \
             JOIN organizations o ON o.id = p.org_id LEFT JOIN org_users u ON u.id = ? \
             WHERE t.id = ?",
        )
        .arg(user_id)
        .arg(task_id)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let method = row::get_str(&r, "billing_method")?;
        let currency = row::get_str(&r, "currency")?;
        // A rate prices only work in its own currency: a user's is in the organization's, a
        // customer's in the customer's (which a project keeps from its creation).
        let in_currency = |column: &str| row::get_str(&r, column).is_ok_and(|c| c == currency);
        let user_rate = row::get_opt_i64(&r, "user_rate")?.filter(|_| in_currency("org_currency"));
        let customer_rate =
            row::get_opt_i64(&r, "customer_rate")?.filter(|_| in_currency("customer_currency"));
        let rate = match method.as_str() {
            "hourly" => row::get_opt_i64(&r, "task_rate")?
                .or(row::get_opt_i64(&r, "project_rate")?)
                .or(customer_rate)
                .or(user_rate),
            _ => None,
        };
        Ok(Some(Self {
            task_id: task_id.to_owned(),
            project_id: row::get_str(&r, "project_id")?,
            customer_id: row::get_str(&r, "customer_id")?,
            currency,
            billable_allowed: row::get_bool(&r, "task_billable")? && method != "non_billable",
            rate,
        }))
    }

    /// (billable, rate, amount) of `seconds` of work asked to be billable or not.
    pub(super) fn price(&self, requested: bool, seconds: i64) -> (bool, Option<i64>, i64) {
        let billable = requested && self.billable_allowed;
        let rate = self.rate.filter(|_| billable);
        (billable, rate, rate.map_or(0, |r| amount_of(seconds, r)))
    }
}

/// `seconds` at `rate` per hour, rounded half up to the minor unit.
pub fn amount_of(seconds: i64, rate: i64) -> i64 {
    (i128::from(seconds) * i128::from(rate) + 1800).div_euclid(3600) as i64
}

/// After a rate or a billing setting changed: reprices the entries below `id` (`column` is
/// `customer_id`, `project_id`, `task_id` or `user_id`) that are not invoiced yet, each with its
/// `time_entry.updated`. Invoiced entries keep the price they were billed at.
pub(crate) async fn reprice(tx: &mut Tx, org_id: &str, column: &str, id: &str) -> Result<()> {
    let mut sql = Sql::new("SELECT * FROM time_entries WHERE org_id = ? AND ");
    sql.bind(org_id)
        .push(column)
        .push(" = ? AND invoice_id IS NULL AND is_running = 0 AND deleted_at IS NULL")
        .bind(id);
    if tx.locks_rows() {
        sql.push(" FOR UPDATE");
    }
    let rows = sql.fetch_all(&mut *tx).await?;
    let mut sheets = std::collections::BTreeSet::new();
    let mut projects = std::collections::BTreeSet::new();
    for r in rows {
        let before = from_row(&r)?;
        let Some(pricing) = Pricing::of_task(tx, &before.task_id, &before.user_id).await? else {
            continue;
        };
        let (billable, rate, amount) = pricing.price(
            row::get_bool(&r, "billable_requested")?,
            before.duration_seconds,
        );
        let unchanged = billable == before.billable
            && rate == row::get_opt_i64(&r, "billable_rate")?
            && amount == row::get_i64(&r, "billable_amount")?;
        if unchanged {
            continue;
        }
        Sql::new(
            "UPDATE time_entries SET billable = ?, billable_rate = ?, billable_amount = ?, updated_at = ? WHERE id = ?",
        )
        .arg(billable)
        .arg(rate)
        .arg(amount)
        .arg(now_ms())
        .arg(&before.id)
        .execute(&mut *tx)
        .await?;
        let after = from_row(&resource::reload_row(tx, LIST.table, &before.id).await?)?;
        events::updated(tx, org_id, NOUN, &before.id, (&before, &after)).await?;
        sheets.insert(after.timesheet_id);
        projects.insert(after.project_id);
    }
    for sheet in sheets {
        timesheets::refresh_totals(tx, &sheet).await?;
    }
    for project in projects {
        budgets::check(tx, &project).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_round_half_up_to_the_minor_unit() {
        // 1 h 30 min at 100.00 = 150.00
        assert_eq!(amount_of(5400, 10_000), 15_000);
        // 1 s at 0.01/h = 0.0000027… → 0.00
        assert_eq!(amount_of(1, 1), 0);
        // 20 min at 0.10/h = 0.0333… → 0.03; 30 min at 0.01/h = 0.005 → 0.01 (half up)
        assert_eq!(amount_of(1200, 10), 3);
        assert_eq!(amount_of(1800, 1), 1);
        // No overflow on large rates.
        assert_eq!(
            amount_of(86_400, i64::MAX / 100_000),
            (i64::MAX / 100_000) * 24
        );
    }
}
