//! Invoices: drafts built from a customer's approved, unbilled time (or from explicit lines),
//! issued with gap-free numbers, paid in parts, or voided (which frees their time).

mod lifecycle;
mod lines;

use serde::{Deserialize, Serialize};

pub use lifecycle::{issue, pay, void};
use lines::{manual_lines, tax_rate, time_lines, totals};

use crate::access::auth::{Actor, Permission};
use crate::billing::customers;
use crate::billing::time_entries;
use crate::error::{Error, FieldError, Problems, Result};
use crate::store::checks::{self, LONG_TEXT, SHORT_TEXT};
use crate::store::clock::{
    date_in_zone, format_date, format_ms, format_opt, now_ms, parse_date_field,
};
use crate::store::db::{Arg, Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::list::{self, FilterKind, ListParams, ListSpec};
use crate::store::money::{Amount, format_amount, format_decimal};
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

/// `overdue=true`: issued, not fully paid, due before the `?` date (the organization's today,
/// [`org_today`]). Kept in step with [`overdue`], which sets [`Invoice::is_overdue`].
const OVERDUE: &str =
    "status = 'issued' AND total > amount_paid AND due_date IS NOT NULL AND due_date < ?";
const NOT_OVERDUE: &str =
    "NOT (status = 'issued' AND total > amount_paid AND due_date IS NOT NULL AND due_date < ?)";

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

    fn decode(actor: &Actor, row: &row::Row) -> Result<Invoice> {
        from_row(row, &org_today(actor))
    }

    fn external_id(input: &mut InvoiceInput) -> &mut Patch<String> {
        &mut input.external_id
    }

    /// The list's parameters and `overdue` (`true`/`false`), judged against today in the
    /// organization's time zone, which the generic filters do not know.
    fn list_params(actor: &Actor, query: &[(String, String)]) -> Result<ListParams> {
        let (overdue, rest): (Vec<_>, Vec<_>) = query
            .iter()
            .cloned()
            .partition(|(name, _)| name == "overdue");
        let mut params = ListParams::parse(&LIST, &rest)?;
        if let Some((name, value)) = overdue.last() {
            let condition = if list::parse_bool(name, value)? {
                OVERDUE
            } else {
                NOT_OVERDUE
            };
            params.and_where(condition, vec![Arg::from(org_today(actor))]);
        }
        Ok(params)
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
    /// Issued, not fully paid, and due before today in the organization's time zone: what
    /// `overdue=true` lists.
    pub is_overdue: bool,
    pub notes: Option<String>,
    pub external_id: Option<String>,
    pub issued_at: Option<String>,
    pub paid_at: Option<String>,
    pub voided_at: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// A line given by hand. Its amount, quantity × unit price, fits in 13 whole digits.
#[derive(Debug, Clone, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LineInput {
    #[schema(
        max_length = 200,
        pattern = r"^[\s\u0085]*[^\s\u0000\u0085][^\u0000]*$",
        example = "Hosting, November"
    )]
    pub description: String,
    /// A decimal string with up to three decimals; default 1.
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,13}(\.[0-9]{1,3}0*)?$", example = "1")]
    pub quantity: Option<Amount>,
    /// In the customer's currency: a decimal string with at most two decimals (none for a
    /// currency without minor units, such as JPY).
    #[schema(value_type = String, pattern = r"^[0-9]{1,13}(\.[0-9]{1,2}0*)?$", example = "49.00")]
    pub unit_price: Amount,
}

/// The body of `POST /invoices` and `PATCH /invoices/{id}` (drafts only). On create
/// `customerId` is required, and `from` with `to` (bill the customer's approved, unbilled,
/// billable time of that period), `lines`, or both. `lines` on a PATCH replaces the manual
/// lines; lines built from time stay until the draft is deleted. A PATCH cannot change
/// `customerId`, `from` or `to`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct InvoiceInput {
    /// A live, not archived customer (`cus_…`) of the organization.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub customer_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date, example = "2026-11-01")]
    pub from: Patch<String>,
    /// Not before `from`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date, example = "2026-11-30")]
    pub to: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<Vec<LineInput>>, max_items = 500)]
    pub lines: Patch<Vec<LineInput>>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub issue_date: Patch<String>,
    /// Not before `issueDate`.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = Date)]
    pub due_date: Patch<String>,
    /// A percentage from 0 to 100 with at most two decimals; `null` means 0.
    #[serde(default)]
    #[schema(value_type = Option<String>, pattern = r"^([0-9]{1,2}(\.[0-9]{1,2}0*)?|100(\.0+)?)$",
             example = "19.00")]
    pub tax_rate: Patch<Amount>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub notes: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000]*$")]
    pub external_id: Patch<String>,
}

/// The body of `POST /invoices/{id}/issue`; both dates are optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IssueInput {
    /// Defaults to the draft's, else today in the organization's time zone.
    #[schema(format = Date)]
    pub issue_date: Option<String>,
    /// Not before the issue date. Defaults to the draft's, else 30 days after the issue date.
    #[schema(format = Date)]
    pub due_date: Option<String>,
}

/// The body of `POST /invoices/{id}/payments`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct PaymentInput {
    /// More than zero and at most the amount due, in the invoice's currency: a decimal
    /// string with at most two decimals (none for a currency without minor units, such as JPY).
    #[schema(value_type = String, pattern = r"^(?![0.]*$)[0-9]{1,13}(\.[0-9]{1,2}0*)?$",
             example = "500.00")]
    pub amount: Amount,
    /// Defaults to today.
    #[schema(format = Date)]
    pub paid_on: Option<String>,
    #[schema(max_length = 200, pattern = r"^[^\u0000]*$", example = "bank_transfer")]
    pub method: Option<String>,
    #[schema(max_length = 200, pattern = r"^[^\u0000]*$")]
    pub reference: Option<String>,
}

fn json_of<T: for<'de> Deserialize<'de>>(r: &row::Row, column: &str) -> Result<T> {
    serde_json::from_str(&row::get_str(r, column)?)
        .map_err(|e| Error::Internal(format!("stored invoice {column}: {e}")))
}

fn to_json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| Error::Internal(e.to_string()))
}

/// Today (`YYYY-MM-DD`) in the actor's organization's time zone: the day `overdue` and
/// `isOverdue` are judged against.
pub(crate) fn org_today(actor: &Actor) -> String {
    format_date(date_in_zone(now_ms(), &actor.organization.timezone))
}

/// Issued, not fully paid, and due before `today`: the [`OVERDUE`] condition in Rust.
fn overdue(status: &str, total: i64, paid: i64, due_date: Option<&str>, today: &str) -> bool {
    status == "issued" && total > paid && due_date.is_some_and(|d| d < today)
}

/// An invoice row, with `isOverdue` judged against `today` (see [`org_today`]).
pub(crate) fn from_row(r: &row::Row, today: &str) -> Result<Invoice> {
    let currency = row::get_str(r, "currency")?;
    let money = |column: &str| row::get_i64(r, column).map(|m| format_amount(m, &currency));
    let total = row::get_i64(r, "total")?;
    let paid = row::get_i64(r, "amount_paid")?;
    let status = row::get_str(r, "status")?;
    let due_date = row::get_opt_str(r, "due_date")?;
    Ok(Invoice {
        id: row::get_str(r, "id")?,
        number: row::get_opt_str(r, "number")?,
        customer_id: row::get_str(r, "customer_id")?,
        is_overdue: overdue(&status, total, paid, due_date.as_deref(), today),
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
    let ok = p.finish("invoice")?;
    let customer =
        customers::parent(tx, actor.org_id(), &ok.get(customer_id)?, "customerId").await?;
    let mut p = Problems::default();
    let manual = manual_lines(&mut p, manual, &customer.currency);
    p.into_result()?;
    let mut lines = match (&from, &to) {
        (Some(from), Some(to)) => {
            let lines = time_lines(tx, actor.org_id(), &customer, from, to).await?;
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
    .arg(ok.get(notes)?)
    .arg(ok.get(external_id)?)
    .arg(now)
    .arg(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, NOUN))?;
    for line in &shown {
        let ids: Vec<String> = line.time_entry_ids.clone();
        time_entries::set_invoice(tx, actor.org_id(), &ids, Some((&id, &line.id))).await?;
    }
    let invoice = resource::reload::<Invoices>(tx, actor, &id).await?;
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
    let before = from_row(row, &org_today(actor))?;
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
    let ok = p.finish("invoice")?;
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
    .arg(ok.get(notes)?)
    .arg(ok.get(external_id)?)
    .arg(now_ms())
    .arg(&before.id)
    .execute(&mut *tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, NOUN))?;
    let after = resource::reload::<Invoices>(tx, actor, &before.id).await?;
    events::updated(tx, actor.org_id(), NOUN, &before.id, (&before, &after)).await?;
    Ok(after)
}
