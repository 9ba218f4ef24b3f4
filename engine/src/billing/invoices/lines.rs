//! An invoice's lines: given by hand or built from approved time, their amounts and totals.

use std::collections::BTreeMap;

use super::{InvoiceLine, LineInput, MAX_LINES, json_of};
use crate::billing::customers::Customer;
use crate::error::{Error, FieldError, Problems, Result};
use crate::store::checks::{self, SHORT_TEXT};
use crate::store::db::{Sql, Tx, row};
use crate::store::ids;
use crate::store::money::{
    Amount, format_amount, format_decimal, max_amount, parse_amount, parse_decimal,
};
use crate::store::patch::Patch;

/// A line in minor units, before it is shown.
#[derive(Debug, Clone)]
pub(super) struct Line {
    pub(super) kind: &'static str,
    pub(super) description: String,
    pub(super) quantity_milli: i64,
    pub(super) unit_price: i64,
    pub(super) amount: i64,
    pub(super) project_id: Option<String>,
    pub(super) task_id: Option<String>,
    pub(super) entries: Vec<String>,
    /// Time lines: the exact seconds billed, of which `quantity_milli` is the rounded hours.
    pub(super) seconds: i64,
}

impl Line {
    pub(super) fn shown(&self, currency: &str) -> InvoiceLine {
        InvoiceLine {
            id: ids::new_id(ids::INVOICE_LINE),
            kind: self.kind.to_owned(),
            description: self.description.clone(),
            quantity: format_decimal(self.quantity_milli, 3)
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_owned(),
            unit_price: format_amount(self.unit_price, currency),
            amount: format_amount(self.amount, currency),
            project_id: self.project_id.clone(),
            task_id: self.task_id.clone(),
            time_entry_ids: self.entries.clone(),
        }
    }
}

/// `quantity` × `unit_price`, rounded half up to the minor unit.
pub(super) fn line_amount(quantity_milli: i64, unit_price: i64) -> i128 {
    (i128::from(quantity_milli) * i128::from(unit_price) + 500) / 1000
}

/// An amount that fits what an invoice can hold, or the field error that says it does not.
pub(super) fn bounded(field: &str, amount: i128, currency: &str) -> Result<i64, FieldError> {
    i64::try_from(amount)
        .ok()
        .filter(|a| *a <= max_amount(currency))
        .ok_or_else(|| {
            FieldError::new(
                field,
                "too_large",
                format!(
                    "{field} would be more than {} {currency}",
                    format_amount(max_amount(currency), currency)
                ),
            )
        })
}

pub(super) fn manual_lines(p: &mut Problems, lines: Vec<LineInput>, currency: &str) -> Vec<Line> {
    if lines.len() > MAX_LINES {
        p.add(
            "lines",
            "too_long",
            format!("an invoice holds at most {MAX_LINES} lines"),
        );
    }
    let mut out = Vec::new();
    for (i, line) in lines.into_iter().enumerate() {
        let description = p.take(checks::required_text(
            &format!("lines[{i}].description"),
            Some(line.description),
            SHORT_TEXT,
        ));
        let quantity = match line.quantity {
            None => Some(1000),
            Some(q) => p.take(parse_decimal(&format!("lines[{i}].quantity"), &q.0, 3)),
        };
        let unit_price = p.take(parse_amount(
            &format!("lines[{i}].unitPrice"),
            &line.unit_price.0,
            currency,
        ));
        let amount = match (quantity, unit_price) {
            (Some(q), Some(u)) => p.take(bounded(
                &format!("lines[{i}].amount"),
                line_amount(q, u),
                currency,
            )),
            _ => None,
        };
        if let (Some(description), Some(quantity_milli), Some(unit_price), Some(amount)) =
            (description, quantity, unit_price, amount)
        {
            out.push(Line {
                kind: "manual",
                description,
                quantity_milli,
                unit_price,
                amount,
                project_id: None,
                task_id: None,
                entries: Vec::new(),
                seconds: 0,
            });
        }
    }
    out
}

/// Lines for the approved, unbilled, billable time of `customer` (in its currency) in
/// `from..=to`: one per task and rate on hourly projects, one per fixed-fee project (its fee,
/// less what earlier invoices already billed of it).
pub(super) async fn time_lines(
    tx: &mut Tx,
    org_id: &str,
    customer: &Customer,
    from: &str,
    to: &str,
) -> Result<Vec<Line>> {
    let (customer_id, currency) = (customer.id.as_str(), customer.currency.as_str());
    let mut sql = Sql::new(
        "SELECT e.id, e.project_id, e.task_id, e.duration_seconds, e.billable_rate, e.billable_amount, \
         p.name AS project_name, p.billing_method, p.fixed_fee, t.name AS task_name \
         FROM time_entries e JOIN projects p ON p.id = e.project_id JOIN tasks t ON t.id = e.task_id \
         WHERE e.org_id = ? AND e.customer_id = ? AND e.currency = ? AND e.date >= ? AND e.date <= ? \
         AND e.approval_status = 'approved' AND e.invoice_id IS NULL AND e.billable = 1 \
         AND e.is_running = 0 AND e.deleted_at IS NULL \
         ORDER BY p.name, p.id, t.name, t.id, e.date, e.id",
    );
    sql.bind(org_id)
        .bind(customer_id)
        .bind(currency)
        .bind(from)
        .bind(to);
    if tx.backend() == crate::Backend::Postgres {
        sql.push(" FOR UPDATE OF e");
    }
    let rows = sql.fetch_all(&mut *tx).await?;
    let mut lines: Vec<Line> = Vec::new();
    // (project, task or "", rate) → index in `lines`, keeping the query's order.
    let mut index: BTreeMap<(String, String, Option<i64>), usize> = BTreeMap::new();
    for r in &rows {
        let project_id = row::get_str(r, "project_id")?;
        let project_name = row::get_str(r, "project_name")?;
        let fixed = row::get_str(r, "billing_method")? == "fixed_fee";
        let (task_key, rate) = if fixed {
            (String::new(), None)
        } else {
            (
                row::get_str(r, "task_id")?,
                row::get_opt_i64(r, "billable_rate")?,
            )
        };
        let key = (project_id.clone(), task_key.clone(), rate);
        let at = match index.get(&key) {
            Some(at) => *at,
            None => {
                let line = if fixed {
                    let fee = row::get_opt_i64(r, "fixed_fee")?.unwrap_or(0);
                    let billed = fixed_fee_billed(tx, org_id, &project_id).await?;
                    let remaining = (fee - billed).max(0);
                    Line {
                        kind: "fixed_fee",
                        description: format!("{project_name}: fixed fee"),
                        quantity_milli: 1000,
                        unit_price: remaining,
                        amount: remaining,
                        project_id: Some(project_id.clone()),
                        task_id: None,
                        entries: Vec::new(),
                        seconds: 0,
                    }
                } else {
                    Line {
                        kind: "time",
                        description: format!("{project_name}: {}", row::get_str(r, "task_name")?),
                        quantity_milli: 0,
                        unit_price: rate.unwrap_or(0),
                        amount: 0,
                        project_id: Some(project_id.clone()),
                        task_id: Some(task_key.clone()),
                        entries: Vec::new(),
                        seconds: 0,
                    }
                };
                lines.push(line);
                index.insert(key, lines.len() - 1);
                lines.len() - 1
            }
        };
        let line = &mut lines[at];
        line.entries.push(row::get_str(r, "id")?);
        if line.kind == "time" {
            // The amount is the sum of the entries' amounts, so that every report agrees
            // with the invoice to the cent; the hours shown are rounded to the thousandth.
            line.seconds += row::get_i64(r, "duration_seconds")?;
            line.quantity_milli = (line.seconds * 1000 + 1800) / 3600;
            line.amount = bounded(
                "from",
                i128::from(line.amount) + i128::from(row::get_i64(r, "billable_amount")?),
                currency,
            )
            .map_err(|e| Error::Validation(vec![e]))?;
        }
    }
    Ok(lines)
}

/// What earlier, not voided invoices billed of a fixed-fee project.
pub(super) async fn fixed_fee_billed(tx: &mut Tx, org_id: &str, project_id: &str) -> Result<i64> {
    let rows = Sql::new(
        "SELECT lines, currency FROM invoices WHERE org_id = ? AND status <> 'void' AND deleted_at IS NULL",
    )
    .arg(org_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut billed = 0;
    for r in rows {
        let lines: Vec<InvoiceLine> = json_of(&r, "lines")?;
        let currency = row::get_str(&r, "currency")?;
        for line in lines {
            if line.kind == "fixed_fee" && line.project_id.as_deref() == Some(project_id) {
                billed += parse_amount("amount", &line.amount, &currency)
                    .map_err(|e| Error::Internal(e.message))?;
            }
        }
    }
    Ok(billed)
}

pub(super) struct Totals {
    pub(super) subtotal: i64,
    pub(super) tax_total: i64,
    pub(super) total: i64,
}

/// Sums the lines and the tax; an invoice whose total would not fit is refused on `lines`.
pub(super) fn totals(lines: &[InvoiceLine], tax_rate_bp: i64, currency: &str) -> Result<Totals> {
    let mut subtotal: i128 = 0;
    for line in lines {
        subtotal += i128::from(
            parse_amount("amount", &line.amount, currency)
                .map_err(|e| Error::Internal(e.message))?,
        );
    }
    let tax_total = (subtotal * i128::from(tax_rate_bp) + 5000) / 10_000;
    let fit =
        |amount: i128| bounded("lines", amount, currency).map_err(|e| Error::Validation(vec![e]));
    Ok(Totals {
        subtotal: fit(subtotal)?,
        tax_total: fit(tax_total)?,
        total: fit(subtotal + tax_total)?,
    })
}

pub(super) fn tax_rate(p: &mut Problems, patch: Patch<Amount>, current: i64) -> i64 {
    match patch {
        Patch::Absent => current,
        Patch::Null => 0,
        Patch::Value(rate) => match parse_decimal("taxRate", &rate.0, 2) {
            Ok(bp) if bp <= 10_000 => bp,
            _ => {
                p.add(
                    "taxRate",
                    "invalid",
                    "taxRate must be a percentage from 0 to 100 with at most 2 decimals, e.g. \"19.00\"",
                );
                current
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_amounts_round_half_up() {
        // 2.5 × 10.01 = 25.025 → 25.03
        assert_eq!(line_amount(2500, 1001), 2503);
        assert_eq!(line_amount(1000, 4900), 4900);
        assert_eq!(line_amount(333, 100), 33);
    }
}
