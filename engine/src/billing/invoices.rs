//! Invoices: drafts built from a customer's approved, unbilled time (or from explicit lines),
//! issued with gap-free numbers, paid in parts, or voided (which frees their time).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::access::auth::{Actor, Permission};
use crate::access::idempotency;
use crate::billing::customers;
use crate::billing::time_entries;
use crate::error::{Error, FieldError, Problems, Result};
use crate::store::checks::{self, LONG_TEXT, SHORT_TEXT};
use crate::store::clock::{
    date_in_zone, format_date, format_ms, format_opt, now_ms, parse_date, parse_date_field,
};
use crate::store::db::{Db, Sql, Tx, row};
use crate::store::events::{self, NewEvent};
use crate::store::ids;
use crate::store::list::{FilterKind, ListSpec};
use crate::store::money::{
    Amount, format_amount, format_decimal, max_amount, parse_amount, parse_decimal,
};
use crate::store::patch::Patch;
use crate::store::resource::{self, Resource};
use crate::store::rows;

pub const NOUN: &str = "invoice";
pub const STATUSES: [&str; 4] = ["draft", "issued", "paid", "void"];
/// Days from issue to due when no due date is given.
pub const DEFAULT_PAYMENT_TERM_DAYS: u64 = 30;
const MAX_LINES: usize = 500;

pub const LIST: ListSpec = ListSpec {
    table: "invoices",
    sorts: &[("status", "status"), ("total", "total")],
    filters: &[
        ("customerId", "customer_id", FilterKind::Text),
        ("status", "status", FilterKind::Text),
        ("number", "number", FilterKind::Text),
        ("currency", "currency", FilterKind::Text),
        ("externalId", "external_id", FilterKind::Text),
        ("from", "issue_date", FilterKind::Min),
        ("to", "issue_date", FilterKind::Max),
    ],
    search: Some("number"),
    soft_delete: true,
};

/// The shared operations ([`resource`]) for this resource.
pub struct Invoices;

impl Resource for Invoices {
    type Item = Invoice;
    type Input = InvoiceInput;
    const NOUN: &'static str = NOUN;
    const LIST: ListSpec = LIST;
    const READ: Permission = Permission::ReadFinancials;
    const WRITE: Permission = Permission::WriteInvoices;
    const CHILDREN: &'static [(&'static str, &'static str, &'static str)] = &[];

    fn decode(row: &row::Row) -> Result<Invoice> {
        from_row(row)
    }

    fn external_id(input: &mut InvoiceInput) -> &mut Patch<String> {
        &mut input.external_id
    }

    async fn insert(tx: &mut Tx, actor: &Actor, input: InvoiceInput) -> Result<Invoice> {
        insert(tx, actor, input).await
    }

    async fn update(
        tx: &mut Tx,
        actor: &Actor,
        row: &row::Row,
        input: InvoiceInput,
    ) -> Result<Invoice> {
        apply_update(tx, actor, row, input).await
    }

    fn check_delete(_actor: &Actor, last: &Invoice) -> Result<()> {
        if last.status == "draft" {
            Ok(())
        } else {
            Err(Error::Conflict {
                code: "invoice_not_draft",
                message: "only a draft can be deleted: void an issued invoice instead".into(),
            })
        }
    }

    async fn after_delete(tx: &mut Tx, actor: &Actor, last: &Invoice) -> Result<()> {
        time_entries::set_invoice(tx, actor.org_id(), &entry_ids(last), None).await
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct InvoiceLine {
    /// `inl_…`
    pub id: String,
    /// `time` (hours of a task at one rate), `fixed_fee` (a fixed-fee project) or `manual`.
    #[schema(example = "time")]
    pub kind: String,
    #[schema(example = "Acme Web: Design")]
    pub description: String,
    /// Hours for time lines, units otherwise; up to three decimals.
    #[schema(example = "2.5")]
    pub quantity: String,
    #[schema(example = "120.00")]
    pub unit_price: String,
    #[schema(example = "300.00")]
    pub amount: String,
    pub project_id: Option<String>,
    pub task_id: Option<String>,
    /// The entries this line bills; they are locked while the invoice is not void.
    pub time_entry_ids: Vec<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Payment {
    /// `pay_…`
    pub id: String,
    pub amount: String,
    /// `YYYY-MM-DD`
    pub paid_on: String,
    pub method: Option<String>,
    pub reference: Option<String>,
    pub created_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Invoice {
    /// `inv_…`
    #[schema(example = "inv_01JD4Z8Q2W3E4R5T6Y7U8I9O0P")]
    pub id: String,
    /// Assigned when issued: `INV-0001`, gap-free per organization.
    #[schema(example = "INV-0001")]
    pub number: Option<String>,
    pub customer_id: String,
    /// `draft`, `issued`, `paid` or `void`.
    #[schema(example = "issued")]
    pub status: String,
    /// The customer's currency.
    #[schema(example = "EUR")]
    pub currency: String,
    #[schema(example = "2026-11-23")]
    pub issue_date: Option<String>,
    #[schema(example = "2026-12-23")]
    pub due_date: Option<String>,
    /// The period whose time was billed, when built from time.
    pub period_from: Option<String>,
    pub period_to: Option<String>,
    /// Percent, e.g. `"19.00"`.
    #[schema(example = "19.00")]
    pub tax_rate: String,
    pub lines: Vec<InvoiceLine>,
    pub payments: Vec<Payment>,
    #[schema(example = "1090.00")]
    pub subtotal: String,
    #[schema(example = "207.10")]
    pub tax_total: String,
    #[schema(example = "1297.10")]
    pub total: String,
    #[schema(example = "500.00")]
    pub amount_paid: String,
    #[schema(example = "797.10")]
    pub amount_due: String,
    /// Issued, not fully paid, and past its due date.
    pub is_overdue: bool,
    pub notes: Option<String>,
    pub external_id: Option<String>,
    pub issued_at: Option<String>,
    pub paid_at: Option<String>,
    pub voided_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A line given by hand.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LineInput {
    #[schema(example = "Hosting, November")]
    pub description: String,
    /// Up to three decimals; default 1.
    #[schema(value_type = Option<String>, example = "1")]
    pub quantity: Option<Amount>,
    #[schema(value_type = String, example = "49.00")]
    pub unit_price: Amount,
}

/// The body of `POST /invoices` and `PATCH /invoices/{id}` (drafts only). On create
/// `customerId` is required, and `from` with `to` (bill the customer's approved, unbilled,
/// billable time of that period), `lines`, or both. `lines` on a PATCH replaces the manual
/// lines; lines built from time stay until the draft is deleted.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvoiceInput {
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub customer_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "2026-11-01")]
    pub from: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "2026-11-30")]
    pub to: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<LineInput>>)]
    pub lines: Patch<Vec<LineInput>>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub issue_date: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub due_date: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "19.00")]
    pub tax_rate: Patch<Amount>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub notes: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub external_id: Patch<String>,
}

/// The body of `POST /invoices/{id}/issue`; both dates are optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueInput {
    /// Defaults to the draft's, else today in the organization's time zone.
    pub issue_date: Option<String>,
    /// Defaults to the draft's, else 30 days after the issue date.
    pub due_date: Option<String>,
}

/// The body of `POST /invoices/{id}/payments`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentInput {
    #[schema(value_type = String, example = "500.00")]
    pub amount: Amount,
    /// Defaults to today.
    pub paid_on: Option<String>,
    #[schema(example = "bank_transfer")]
    pub method: Option<String>,
    pub reference: Option<String>,
}

fn json_of<T: for<'de> Deserialize<'de>>(r: &row::Row, column: &str) -> Result<T> {
    serde_json::from_str(&row::get_str(r, column)?)
        .map_err(|e| Error::Internal(format!("stored invoice {column}: {e}")))
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))
}

pub(crate) fn from_row(r: &row::Row) -> Result<Invoice> {
    let currency = row::get_str(r, "currency")?;
    let money = |column: &str| row::get_i64(r, column).map(|m| format_amount(m, &currency));
    let total = row::get_i64(r, "total")?;
    let paid = row::get_i64(r, "amount_paid")?;
    let status = row::get_str(r, "status")?;
    let due_date = row::get_opt_str(r, "due_date")?;
    let today = format_date(date_in_zone(now_ms(), "UTC"));
    Ok(Invoice {
        id: row::get_str(r, "id")?,
        number: row::get_opt_str(r, "number")?,
        customer_id: row::get_str(r, "customer_id")?,
        is_overdue: status == "issued"
            && total > paid
            && due_date.as_deref().is_some_and(|d| *d < *today),
        status,
        issue_date: row::get_opt_str(r, "issue_date")?,
        due_date,
        period_from: row::get_opt_str(r, "period_from")?,
        period_to: row::get_opt_str(r, "period_to")?,
        tax_rate: format_decimal(row::get_i64(r, "tax_rate_bp")?, 2),
        lines: json_of(r, "lines")?,
        payments: json_of(r, "payments")?,
        subtotal: money("subtotal")?,
        tax_total: money("tax_total")?,
        total: money("total")?,
        amount_paid: money("amount_paid")?,
        amount_due: format_amount(total - paid, &currency),
        currency,
        notes: row::get_opt_str(r, "notes")?,
        external_id: row::get_opt_str(r, "external_id")?,
        issued_at: format_opt(row::get_opt_i64(r, "issued_at")?),
        paid_at: format_opt(row::get_opt_i64(r, "paid_at")?),
        voided_at: format_opt(row::get_opt_i64(r, "voided_at")?),
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

fn entry_ids(invoice: &Invoice) -> Vec<String> {
    invoice
        .lines
        .iter()
        .flat_map(|l| l.time_entry_ids.iter().cloned())
        .collect()
}

/// A line in minor units, before it is shown.
#[derive(Debug, Clone)]
struct Line {
    kind: &'static str,
    description: String,
    quantity_milli: i64,
    unit_price: i64,
    amount: i64,
    project_id: Option<String>,
    task_id: Option<String>,
    entries: Vec<String>,
    /// Time lines: the exact seconds billed, of which `quantity_milli` is the rounded hours.
    seconds: i64,
}

impl Line {
    fn shown(&self, currency: &str) -> InvoiceLine {
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
fn line_amount(quantity_milli: i64, unit_price: i64) -> i128 {
    (i128::from(quantity_milli) * i128::from(unit_price) + 500) / 1000
}

/// An amount that fits what an invoice can hold, or the field error that says it does not.
fn bounded(field: &str, amount: i128, currency: &str) -> Result<i64, FieldError> {
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

fn manual_lines(p: &mut Problems, lines: Vec<LineInput>, currency: &str) -> Vec<Line> {
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

/// Lines for the approved, unbilled, billable time of a customer in `from..=to`: one per
/// task and rate on hourly projects, one per fixed-fee project (its fee, less what earlier
/// invoices already billed of it).
async fn time_lines(
    tx: &mut Tx,
    org_id: &str,
    customer_id: &str,
    currency: &str,
    from: &str,
    to: &str,
) -> Result<Vec<Line>> {
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
async fn fixed_fee_billed(tx: &mut Tx, org_id: &str, project_id: &str) -> Result<i64> {
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

struct Totals {
    subtotal: i64,
    tax_total: i64,
    total: i64,
}

/// Sums the lines and the tax; an invoice whose total would not fit is refused on `lines`.
fn totals(lines: &[InvoiceLine], tax_rate_bp: i64, currency: &str) -> Result<Totals> {
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

fn tax_rate(p: &mut Problems, patch: Patch<Amount>, current: i64) -> i64 {
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

fn opt_date(
    p: &mut Problems,
    field: &str,
    patch: Patch<String>,
    current: Option<String>,
) -> Option<String> {
    match patch.apply(current) {
        None => None,
        Some(d) => p.take(parse_date_field(field, &d)),
    }
}

fn check_dates(p: &mut Problems, issue: Option<&str>, due: Option<&str>) {
    if let (Some(issue), Some(due)) = (issue, due)
        && due < issue
    {
        p.add("dueDate", "invalid", "dueDate must not be before issueDate");
    }
}

async fn insert(tx: &mut Tx, actor: &Actor, input: InvoiceInput) -> Result<Invoice> {
    let mut p = Problems::default();
    let customer_id = match &input.customer_id {
        Patch::Value(id) => Some(id.clone()),
        _ => {
            p.push(FieldError::required("customerId"));
            None
        }
    };
    let from = opt_date(&mut p, "from", input.from, None);
    let to = opt_date(&mut p, "to", input.to, None);
    match (&from, &to) {
        (Some(f), Some(t)) if t < f => p.add("to", "invalid", "to must not be before from"),
        (Some(_), None) => p.push(FieldError::required("to")),
        (None, Some(_)) => p.push(FieldError::required("from")),
        (None, None) if input.lines.is_absent() => p.add(
            "lines",
            "required",
            "give from and to (to bill time), lines, or both",
        ),
        _ => {}
    }
    let tax_rate_bp = tax_rate(&mut p, input.tax_rate, 0);
    let issue_date = opt_date(&mut p, "issueDate", input.issue_date, None);
    let due_date = opt_date(&mut p, "dueDate", input.due_date, None);
    check_dates(&mut p, issue_date.as_deref(), due_date.as_deref());
    let notes = p.take(checks::opt_text(
        "notes",
        input.notes.into_option(),
        LONG_TEXT,
    ));
    let external_id = p.take(checks::opt_text(
        "externalId",
        input.external_id.into_option(),
        SHORT_TEXT,
    ));
    let manual = input.lines.into_option().unwrap_or_default();
    p.into_result()?;
    let missing = || Error::Internal("invoice fields missing after validation".into());
    let customer = customers::parent(
        tx,
        actor.org_id(),
        &customer_id.ok_or_else(missing)?,
        "customerId",
    )
    .await?;
    let mut p = Problems::default();
    let manual = manual_lines(&mut p, manual, &customer.currency);
    p.into_result()?;
    let mut lines = match (&from, &to) {
        (Some(from), Some(to)) => {
            let lines = time_lines(
                tx,
                actor.org_id(),
                &customer.id,
                &customer.currency,
                from,
                to,
            )
            .await?;
            if lines.is_empty() {
                return Err(Error::validation(
                    "from",
                    "nothing_to_invoice",
                    format!(
                        "the customer has no approved, unbilled, billable time from {from} to {to}"
                    ),
                ));
            }
            lines
        }
        _ => Vec::new(),
    };
    lines.extend(manual);
    let shown: Vec<InvoiceLine> = lines.iter().map(|l| l.shown(&customer.currency)).collect();
    let sums = totals(&shown, tax_rate_bp, &customer.currency)?;
    let id = ids::new_id(ids::INVOICE);
    let now = now_ms();
    Sql::new(
        "INSERT INTO invoices (id, org_id, customer_id, status, currency, issue_date, due_date, period_from, \
         period_to, tax_rate_bp, subtotal, tax_total, total, amount_paid, lines, payments, notes, external_id, \
         created_at, updated_at) VALUES (?, ?, ?, 'draft', ?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, '[]', ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(actor.org_id())
    .arg(&customer.id)
    .arg(&customer.currency)
    .arg(issue_date)
    .arg(due_date)
    .arg(from)
    .arg(to)
    .arg(tax_rate_bp)
    .arg(sums.subtotal)
    .arg(sums.tax_total)
    .arg(sums.total)
    .arg(to_json(&shown)?)
    .arg(notes.ok_or_else(missing)?)
    .arg(external_id.ok_or_else(missing)?)
    .arg(now)
    .arg(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, NOUN))?;
    for line in &shown {
        let ids: Vec<String> = line.time_entry_ids.clone();
        time_entries::set_invoice(tx, actor.org_id(), &ids, Some((&id, &line.id))).await?;
    }
    let invoice = resource::reload::<Invoices>(tx, &id).await?;
    events::created(tx, actor.org_id(), NOUN, &id, &invoice).await?;
    Ok(invoice)
}

fn not_draft(invoice: &Invoice, what: &str) -> Error {
    Error::Conflict {
        code: "invoice_not_draft",
        message: format!("a {} invoice cannot be {what}", invoice.status),
    }
}

async fn apply_update(
    tx: &mut Tx,
    actor: &Actor,
    row: &row::Row,
    input: InvoiceInput,
) -> Result<Invoice> {
    let before = from_row(row)?;
    if before.status != "draft" {
        return Err(not_draft(&before, "edited"));
    }
    let mut p = Problems::default();
    match &input.customer_id {
        Patch::Value(id) if *id == before.customer_id => {}
        Patch::Absent => {}
        _ => p.add(
            "customerId",
            "immutable",
            "a draft's customer cannot change: create a new invoice",
        ),
    }
    for (field, patch) in [("from", &input.from), ("to", &input.to)] {
        if !patch.is_absent() {
            p.add(
                field,
                "immutable",
                format!("{field} cannot change: create a new invoice"),
            );
        }
    }
    let current_bp = row::get_i64(row, "tax_rate_bp")?;
    let tax_rate_bp = tax_rate(&mut p, input.tax_rate, current_bp);
    let issue_date = opt_date(
        &mut p,
        "issueDate",
        input.issue_date,
        before.issue_date.clone(),
    );
    let due_date = opt_date(&mut p, "dueDate", input.due_date, before.due_date.clone());
    check_dates(&mut p, issue_date.as_deref(), due_date.as_deref());
    let notes = p.take(checks::opt_text(
        "notes",
        input.notes.apply(before.notes.clone()),
        LONG_TEXT,
    ));
    let external_id = p.take(checks::opt_text(
        "externalId",
        input.external_id.apply(before.external_id.clone()),
        SHORT_TEXT,
    ));
    let lines = match input.lines {
        Patch::Absent => before.lines.clone(),
        patch => {
            let mut kept: Vec<InvoiceLine> = before
                .lines
                .iter()
                .filter(|l| l.kind != "manual")
                .cloned()
                .collect();
            let manual = manual_lines(
                &mut p,
                patch.into_option().unwrap_or_default(),
                &before.currency,
            );
            kept.extend(manual.iter().map(|l| l.shown(&before.currency)));
            kept
        }
    };
    p.into_result()?;
    let missing = || Error::Internal("invoice fields missing after validation".into());
    let sums = totals(&lines, tax_rate_bp, &before.currency)?;
    Sql::new(
        "UPDATE invoices SET issue_date = ?, due_date = ?, tax_rate_bp = ?, subtotal = ?, tax_total = ?, \
         total = ?, lines = ?, notes = ?, external_id = ?, updated_at = ? WHERE id = ?",
    )
    .arg(issue_date)
    .arg(due_date)
    .arg(tax_rate_bp)
    .arg(sums.subtotal)
    .arg(sums.tax_total)
    .arg(sums.total)
    .arg(to_json(&lines)?)
    .arg(notes.ok_or_else(missing)?)
    .arg(external_id.ok_or_else(missing)?)
    .arg(now_ms())
    .arg(&before.id)
    .execute(&mut *tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, NOUN))?;
    let after = resource::reload::<Invoices>(tx, &before.id).await?;
    events::updated(tx, actor.org_id(), NOUN, &before.id, &before, &after).await?;
    Ok(after)
}

/// Opens a write on one invoice: the locked row, decoded and checked against `If-Match`.
async fn locked(tx: &mut Tx, actor: &Actor, id: &str) -> Result<Invoice> {
    actor.require(Permission::WriteInvoices)?;
    let row = rows::live_row(&mut *tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let invoice = from_row(&row)?;
    actor.check_if_match(&invoice)?;
    Ok(invoice)
}

/// Logs `invoice.updated` and `invoice.{verb}`, records the idempotent answer and commits.
async fn finish(
    mut tx: Tx,
    actor: &Actor,
    before: &Invoice,
    verb: Option<&str>,
) -> Result<Invoice> {
    let after = resource::reload::<Invoices>(&mut tx, &before.id).await?;
    events::updated(&mut tx, actor.org_id(), NOUN, &before.id, before, &after).await?;
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
    idempotency::record(&mut tx, actor, 200, &after).await?;
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
        let issued = resource::reload::<Invoices>(&mut tx, id).await?;
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
    p.into_result()?;
    let missing = || Error::Internal("payment fields missing after validation".into());
    let amount = amount.ok_or_else(missing)?;
    let mut payments = before.payments.clone();
    payments.push(Payment {
        id: ids::new_id(ids::PAYMENT),
        amount: format_amount(amount, &before.currency),
        paid_on: paid_on.ok_or_else(missing)?,
        method: method.ok_or_else(missing)?,
        reference: reference.ok_or_else(missing)?,
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

fn row_total(invoice: &Invoice) -> Result<i64> {
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
