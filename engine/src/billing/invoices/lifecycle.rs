//! An invoice after drafting: issued with gap-free numbers, paid in parts, or voided.

use super::{
    DEFAULT_PAYMENT_TERM_DAYS, Invoice, Invoices, IssueInput, LIST, NOUN, Payment, PaymentInput,
    check_dates, entry_ids, from_row, not_draft, org_today, to_json,
};
use crate::access::auth::{Actor, Permission};
use crate::access::idempotency::{self, Answer};
use crate::billing::time_entries;
use crate::error::{Error, Problems, Result};
use crate::store::checks::{self, SHORT_TEXT};
use crate::store::clock::{
    date_in_zone, format_date, format_ms, now_ms, parse_date, parse_date_field,
};
use crate::store::db::{Db, Sql, Tx, row};
use crate::store::events::{self, NewEvent};
use crate::store::ids;
use crate::store::money::{format_amount, parse_amount};
use crate::store::resource;
use crate::store::rows;

/// Opens a write on one invoice: the locked row, decoded and checked against `If-Match`.
pub(super) async fn locked(tx: &mut Tx, actor: &Actor, id: &str) -> Result<Invoice> {
    actor.require(Permission::WriteInvoices)?;
    let row = rows::live_row(&mut *tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let invoice = from_row(&row, &org_today(actor))?;
    actor.check_if_match(&invoice)?;
    Ok(invoice)
}

/// Logs `invoice.updated` and `invoice.{verb}`, records the idempotent answer and commits.
pub(super) async fn finish(
    mut tx: Tx,
    actor: &Actor,
    before: &Invoice,
    verb: Option<&str>,
) -> Result<Invoice> {
    let after = resource::reload::<Invoices>(&mut tx, actor, &before.id).await?;
    events::updated(&mut tx, actor.org_id(), NOUN, &before.id, (before, &after)).await?;
    if let Some(verb) = verb {
        events::append(
            &mut tx,
            NewEvent {
                org_id: actor.org_id(),
                kind: format!("{NOUN}.{verb}"),
                resource_id: &after.id,
                data: serde_json::to_value(&after).map_err(|e| Error::Internal(e.to_string()))?,
                changed: None,
            },
        )
        .await?;
    }
    idempotency::record(&mut tx, actor, Answer::Changed, &after).await?;
    tx.commit().await?;
    Ok(after)
}

/// Issues a draft: the next number of the organization, in the same transaction, so numbers
/// have no gaps and no duplicates however many issue at once.
pub async fn issue(db: &Db, actor: &Actor, id: &str, input: IssueInput) -> Result<Invoice> {
    let mut tx = events::begin_write(db).await?;
    let before = locked(&mut tx, actor, id).await?;
    if before.status != "draft" {
        return Err(not_draft(&before, "issued"));
    }
    let mut p = Problems::default();
    let today = format_date(date_in_zone(now_ms(), &actor.organization.timezone));
    let issue_date = match input.issue_date {
        Some(d) => p.take(parse_date_field("issueDate", &d)),
        None => Some(before.issue_date.clone().unwrap_or(today)),
    };
    let due_date = match (input.due_date, before.due_date.clone(), &issue_date) {
        (Some(d), ..) => p.take(parse_date_field("dueDate", &d)),
        (None, Some(d), _) => Some(d),
        (None, None, Some(issue)) => {
            parse_date(issue).map(|d| format_date(d + chrono::Days::new(DEFAULT_PAYMENT_TERM_DAYS)))
        }
        (None, None, None) => None,
    };
    check_dates(&mut p, issue_date.as_deref(), due_date.as_deref());
    if before.lines.is_empty() {
        p.add(
            "lines",
            "required",
            "an invoice needs at least one line to be issued",
        );
    }
    p.into_result()?;
    let counter = Sql::new(
        "INSERT INTO org_counters (org_id, name, value) VALUES (?, 'invoice', 1) \
         ON CONFLICT (org_id, name) DO UPDATE SET value = org_counters.value + 1 RETURNING value",
    )
    .arg(actor.org_id())
    .fetch_one(&mut tx)
    .await?;
    let number = format!("INV-{:04}", row::get_i64(&counter, "value")?);
    let paid_now = before.total == format_amount(0, &before.currency);
    Sql::new(
        "UPDATE invoices SET number = ?, status = ?, issue_date = ?, due_date = ?, issued_at = ?, paid_at = ?, \
         updated_at = ? WHERE id = ?",
    )
    .arg(number)
    .arg(if paid_now { "paid" } else { "issued" })
    .arg(issue_date)
    .arg(due_date)
    .arg(now_ms())
    .arg(paid_now.then(now_ms))
    .arg(now_ms())
    .arg(id)
    .execute(&mut tx)
    .await?;
    if paid_now {
        // Nothing to pay: issued and paid in one step, and both are announced.
        let issued = resource::reload::<Invoices>(&mut tx, actor, id).await?;
        events::append(
            &mut tx,
            NewEvent {
                org_id: actor.org_id(),
                kind: format!("{NOUN}.issued"),
                resource_id: id,
                data: serde_json::to_value(&issued).map_err(|e| Error::Internal(e.to_string()))?,
                changed: None,
            },
        )
        .await?;
        return finish(tx, actor, &before, Some("paid")).await;
    }
    finish(tx, actor, &before, Some("issued")).await
}

/// Records a payment; the invoice is paid when nothing is due any more.
pub async fn pay(db: &Db, actor: &Actor, id: &str, input: PaymentInput) -> Result<Invoice> {
    let mut tx = events::begin_write(db).await?;
    let before = locked(&mut tx, actor, id).await?;
    if before.status != "issued" {
        return Err(Error::Conflict {
            code: "invalid_state",
            message: format!("a {} invoice takes no payments", before.status),
        });
    }
    let mut p = Problems::default();
    let amount = p.take(parse_amount("amount", &input.amount.0, &before.currency));
    let paid_on = match input.paid_on {
        Some(d) => p.take(parse_date_field("paidOn", &d)),
        None => Some(format_date(date_in_zone(
            now_ms(),
            &actor.organization.timezone,
        ))),
    };
    let method = p.take(checks::opt_text("method", input.method, SHORT_TEXT));
    let reference = p.take(checks::opt_text("reference", input.reference, SHORT_TEXT));
    let total = row_total(&before)?;
    let paid = parse_amount("amountPaid", &before.amount_paid, &before.currency)
        .map_err(|e| Error::Internal(e.message))?;
    if let Some(amount) = amount {
        if amount == 0 {
            p.add("amount", "invalid", "amount must be more than zero");
        } else if amount > total - paid {
            p.add(
                "amount",
                "exceeds_amount_due",
                format!(
                    "amount is more than the {} {} due",
                    before.amount_due, before.currency
                ),
            );
        }
    }
    let ok = p.finish("payment")?;
    let amount = ok.get(amount)?;
    let mut payments = before.payments.clone();
    payments.push(Payment {
        id: ids::new_id(ids::PAYMENT),
        amount: format_amount(amount, &before.currency),
        paid_on: ok.get(paid_on)?,
        method: ok.get(method)?,
        reference: ok.get(reference)?,
        created_at: format_ms(now_ms()),
    });
    let fully_paid = paid + amount == total;
    Sql::new(
        "UPDATE invoices SET amount_paid = ?, payments = ?, status = ?, paid_at = ?, updated_at = ? WHERE id = ?",
    )
    .arg(paid + amount)
    .arg(to_json(&payments)?)
    .arg(if fully_paid { "paid" } else { "issued" })
    .arg(fully_paid.then(now_ms))
    .arg(now_ms())
    .arg(id)
    .execute(&mut tx)
    .await?;
    finish(tx, actor, &before, fully_paid.then_some("paid")).await
}

pub(super) fn row_total(invoice: &Invoice) -> Result<i64> {
    parse_amount("total", &invoice.total, &invoice.currency).map_err(|e| Error::Internal(e.message))
}

/// Voids an issued invoice without payments: its number stays used, its time is free again.
pub async fn void(db: &Db, actor: &Actor, id: &str) -> Result<Invoice> {
    let mut tx = events::begin_write(db).await?;
    let before = locked(&mut tx, actor, id).await?;
    match before.status.as_str() {
        // A paid invoice without payments is one that had nothing to pay.
        "issued" | "paid" if before.payments.is_empty() => {}
        "issued" | "paid" => {
            return Err(Error::Conflict {
                code: "invoice_has_payments",
                message: "the invoice has payments: it cannot be voided".into(),
            });
        }
        "draft" => {
            return Err(Error::Conflict {
                code: "invalid_state",
                message: "a draft is not voided but deleted".into(),
            });
        }
        _ => {
            return Err(Error::Conflict {
                code: "invalid_state",
                message: "the invoice is already void".into(),
            });
        }
    }
    Sql::new("UPDATE invoices SET status = 'void', voided_at = ?, updated_at = ? WHERE id = ?")
        .arg(now_ms())
        .arg(now_ms())
        .arg(id)
        .execute(&mut tx)
        .await?;
    time_entries::set_invoice(&mut tx, actor.org_id(), &entry_ids(&before), None).await?;
    finish(tx, actor, &before, Some("voided")).await
}
