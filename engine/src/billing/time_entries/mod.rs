//! Time entries: time a user spent on a subtask, logged by hand or by a timer. An entry carries
//! its derived task, project and customer, its week's timesheet, and its billable rate and
//! amount (repriced when a rate above it changes, until it is invoiced). Approved or invoiced
//! entries are locked.

mod links;
mod pricing;
mod timers;
mod timing;

use serde::{Deserialize, Serialize};

pub(crate) use links::{refuse_move, set_approval_status, set_invoice};
use pricing::Pricing;
pub use pricing::amount_of;
pub(crate) use pricing::reprice;
use timers::timer_conflict;
pub use timers::{start_timer, stop_timer};
use timing::{Current, Timing, timing};

use crate::access::auth::{Actor, Permission};
use crate::billing::budgets;
use crate::billing::timesheets;
use crate::error::{Error, FieldError, Problems, Result};
use crate::store::checks::{self, LONG_TEXT, SHORT_TEXT};
use crate::store::clock::{format_ms, format_opt, now_ms, parse_date};
use crate::store::db::{Sql, Tx, row};
use crate::store::events;
use crate::store::ids;
use crate::store::list::{FilterKind, ListSpec};
use crate::store::money::format_amount;
use crate::store::patch::Patch;
use crate::store::resource::{self, Resource};
use crate::store::rows;

pub const NOUN: &str = "time_entry";
/// The longest entry: one day.
pub const MAX_DURATION_SECONDS: i64 = 24 * 3600;

pub const LIST: ListSpec = ListSpec {
    table: "time_entries",
    sorts: &[("date", "date"), ("durationSeconds", "duration_seconds")],
    filters: &[
        ("userId", "user_id", FilterKind::Text),
        ("subtaskId", "subtask_id", FilterKind::Text),
        ("taskId", "task_id", FilterKind::Text),
        ("projectId", "project_id", FilterKind::Text),
        ("customerId", "customer_id", FilterKind::Text),
        ("timesheetId", "timesheet_id", FilterKind::Text),
        ("invoiceId", "invoice_id", FilterKind::Text),
        ("approvalStatus", "approval_status", FilterKind::Text),
        ("date", "date", FilterKind::Text),
        ("from", "date", FilterKind::Min),
        ("to", "date", FilterKind::Max),
        ("isRunning", "is_running", FilterKind::Bool),
        ("billable", "billable", FilterKind::Bool),
        ("externalId", "external_id", FilterKind::Text),
    ],
    search: Some("notes"),
    soft_delete: true,
};

/// The shared operations ([`resource`]) for this resource.
pub struct TimeEntries;

impl Resource for TimeEntries {
    type Item = TimeEntry;
    type Input = TimeEntryInput;
    const NOUN: &'static str = NOUN;
    const LIST: ListSpec = LIST;
    const WRITE: Permission = Permission::WriteOwnTime;
    const CHILDREN: &'static [(&'static str, &'static str, &'static str)] = &[];

    fn decode(_actor: &Actor, row: &row::Row) -> Result<TimeEntry> {
        from_row(row)
    }

    fn external_id(input: &mut TimeEntryInput) -> &mut Patch<String> {
        &mut input.external_id
    }

    async fn insert(tx: &mut Tx, actor: &Actor, input: TimeEntryInput) -> Result<TimeEntry> {
        insert(tx, actor, input).await
    }

    async fn update(
        tx: &mut Tx,
        actor: &Actor,
        row: &row::Row,
        input: TimeEntryInput,
    ) -> Result<TimeEntry> {
        apply_update(tx, actor, row, input).await
    }

    fn check_delete(actor: &Actor, last: &TimeEntry) -> Result<()> {
        check_owner(actor, &last.user_id)?;
        check_unlocked(last)
    }

    async fn after_delete(tx: &mut Tx, _actor: &Actor, last: &TimeEntry) -> Result<()> {
        timesheets::refresh_totals(tx, &last.timesheet_id).await?;
        budgets::check(tx, &last.project_id).await
    }
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct TimeEntry {
    /// `te_…`
    #[schema(example = "te_01JD4Z8Q2W3E4R5T6Y7U8I9O0P")]
    pub id: String,
    pub subtask_id: String,
    /// Derived from the subtask.
    pub task_id: String,
    pub project_id: String,
    pub customer_id: String,
    pub user_id: String,
    /// The week's timesheet.
    pub timesheet_id: String,
    /// `YYYY-MM-DD`
    #[schema(example = "2026-11-16")]
    pub date: String,
    #[schema(example = "2026-11-16T09:00:00.000Z")]
    pub started_at: Option<String>,
    #[schema(example = "2026-11-16T12:30:00.000Z")]
    pub ended_at: Option<String>,
    /// 0 while the timer runs.
    #[schema(example = 12600)]
    pub duration_seconds: i64,
    #[schema(example = 3.5)]
    pub hours: f64,
    pub is_running: bool,
    /// False on non-billable projects and tasks, whatever was asked.
    pub billable: bool,
    #[schema(example = "EUR")]
    pub currency: String,
    /// The rate that applies: the task's, else the project's, else the customer's, else the
    /// user's. Null on fixed-fee projects, on non-billable time and when no rate is set.
    #[schema(example = "120.00")]
    pub billable_rate: Option<String>,
    /// Duration × rate, rounded half up to the currency's minor unit.
    #[schema(example = "420.00")]
    pub billable_amount: String,
    pub notes: Option<String>,
    /// The timesheet's status: `open`, `submitted`, `approved` or `rejected`.
    #[schema(example = "open")]
    pub approval_status: String,
    pub invoice_id: Option<String>,
    /// Approved or invoiced: edits are refused with 409 `entry_locked`.
    pub is_locked: bool,
    pub external_id: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The body of `POST`, `PATCH` and `PUT /by-external-id`. On create `subtaskId` is required,
/// with `durationSeconds` or `startedAt` and `endedAt` (any two of the three, consistent);
/// `date` defaults to the day `startedAt` falls on in the organization's time zone, and
/// `userId` to the key's user.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimeEntryInput {
    /// A subtask (`sub_…`) of the organization, in a project that is not archived.
    #[serde(default)]
    #[schema(value_type = String, required = true)]
    pub subtask_id: Patch<String>,
    /// An active user (`usr_…`) of the organization; only managers and up log others' time.
    #[serde(default)]
    #[schema(value_type = String)]
    pub user_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = String, format = Date, example = "2026-11-20")]
    pub date: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-11-20T09:00:00Z")]
    pub started_at: Patch<String>,
    /// After `startedAt`, which it needs.
    #[serde(default)]
    #[schema(value_type = Option<String>, format = DateTime, example = "2026-11-20T10:30:00Z")]
    pub ended_at: Patch<String>,
    /// From 1 second to 24 hours; with both `startedAt` and `endedAt`, their difference.
    #[serde(default)]
    #[schema(value_type = i64, minimum = 1, maximum = 86400, example = 5400)]
    pub duration_seconds: Patch<i64>,
    #[serde(default)]
    #[schema(value_type = bool)]
    pub billable: Patch<bool>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 10000, pattern = r"^[^\u0000]*$",
             example = "Homepage wireframes")]
    pub notes: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, max_length = 200, pattern = r"^[^\u0000]*$")]
    pub external_id: Patch<String>,
}

/// The body of `POST /time-entries/timer/start`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimerStart {
    /// A subtask (`sub_…`) of the organization, in a project that is not archived.
    pub subtask_id: String,
    /// Defaults to the key's user; managers may start a timer for someone else.
    pub user_id: Option<String>,
    #[schema(max_length = 10000, pattern = r"^[^\u0000]*$")]
    pub notes: Option<String>,
    pub billable: Option<bool>,
    #[schema(max_length = 200, pattern = r"^[^\u0000]*$")]
    pub external_id: Option<String>,
}

pub(crate) fn from_row(r: &row::Row) -> Result<TimeEntry> {
    let currency = row::get_str(r, "currency")?;
    let duration = row::get_i64(r, "duration_seconds")?;
    let approval_status = row::get_str(r, "approval_status")?;
    let invoice_id = row::get_opt_str(r, "invoice_id")?;
    Ok(TimeEntry {
        id: row::get_str(r, "id")?,
        subtask_id: row::get_str(r, "subtask_id")?,
        task_id: row::get_str(r, "task_id")?,
        project_id: row::get_str(r, "project_id")?,
        customer_id: row::get_str(r, "customer_id")?,
        user_id: row::get_str(r, "user_id")?,
        timesheet_id: row::get_str(r, "timesheet_id")?,
        date: row::get_str(r, "date")?,
        started_at: format_opt(row::get_opt_i64(r, "started_at")?),
        ended_at: format_opt(row::get_opt_i64(r, "ended_at")?),
        duration_seconds: duration,
        hours: checks::hours(Some(duration)).unwrap_or_default(),
        is_running: row::get_bool(r, "is_running")?,
        billable: row::get_bool(r, "billable")?,
        billable_rate: row::get_opt_i64(r, "billable_rate")?.map(|m| format_amount(m, &currency)),
        billable_amount: format_amount(row::get_i64(r, "billable_amount")?, &currency),
        currency,
        notes: row::get_opt_str(r, "notes")?,
        is_locked: approval_status == "approved" || invoice_id.is_some(),
        approval_status,
        invoice_id,
        external_id: row::get_opt_str(r, "external_id")?,
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

/// Members log only their own time; managers and up anyone's.
fn check_owner(actor: &Actor, user_id: &str) -> Result<()> {
    if user_id == actor.user_id {
        Ok(())
    } else {
        actor.require(Permission::WriteAnyTime)
    }
}

fn locked_error(message: impl Into<String>) -> Error {
    Error::Conflict {
        code: "entry_locked",
        message: message.into(),
    }
}

fn check_unlocked(entry: &TimeEntry) -> Result<()> {
    if entry.invoice_id.is_some() {
        Err(locked_error(
            "the entry is invoiced: void the invoice to change it",
        ))
    } else if entry.approval_status == "approved" {
        Err(locked_error(
            "the entry's timesheet is approved: reject it to change the entry",
        ))
    } else {
        Ok(())
    }
}

async fn check_user(tx: &mut Tx, actor: &Actor, user_id: &str) -> Result<()> {
    check_owner(actor, user_id)?;
    match rows::live_row(&mut *tx, "org_users", actor.org_id(), user_id).await? {
        Some(r) if row::get_bool(&r, "is_active")? => Ok(()),
        Some(_) => Err(Error::validation(
            "userId",
            "inactive",
            "userId names a deactivated user",
        )),
        None => Err(Error::validation(
            "userId",
            "not_found",
            "userId does not name a user of this organization",
        )),
    }
}

/// The timesheet of the entry's week; an approved week takes no new or moved entries.
async fn week_of(
    tx: &mut Tx,
    actor: &Actor,
    user_id: &str,
    date: &str,
) -> Result<(String, String)> {
    let day = parse_date(date).ok_or_else(|| Error::Internal(format!("date {date}")))?;
    let (id, status) = timesheets::for_date(tx, &actor.organization, user_id, day).await?;
    if status == "approved" {
        return Err(locked_error(format!(
            "the week of {date} is approved: its timesheet must be rejected before it takes changes"
        )));
    }
    Ok((id, status))
}

struct NewEntry {
    user_id: String,
    subtask_id: String,
    timing: Timing,
    is_running: bool,
    billable_requested: bool,
    notes: Option<String>,
    external_id: Option<String>,
}

async fn write_new(tx: &mut Tx, actor: &Actor, new: NewEntry) -> Result<TimeEntry> {
    check_user(tx, actor, &new.user_id).await?;
    let pricing = Pricing::load(tx, actor, &new.subtask_id, &new.user_id).await?;
    let (timesheet_id, approval_status) =
        week_of(tx, actor, &new.user_id, &new.timing.date).await?;
    let (billable, rate, amount) =
        pricing.price(new.billable_requested, new.timing.duration_seconds);
    let id = ids::new_id(ids::TIME_ENTRY);
    let now = now_ms();
    Sql::new(
        "INSERT INTO time_entries (id, org_id, user_id, subtask_id, task_id, project_id, customer_id, \
         timesheet_id, date, started_at, ended_at, duration_seconds, is_running, billable, billable_requested, \
         currency, billable_rate, billable_amount, notes, approval_status, external_id, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    )
    .arg(&id)
    .arg(actor.org_id())
    .arg(&new.user_id)
    .arg(&new.subtask_id)
    .arg(&pricing.task_id)
    .arg(&pricing.project_id)
    .arg(&pricing.customer_id)
    .arg(&timesheet_id)
    .arg(&new.timing.date)
    .arg(new.timing.started_at)
    .arg(new.timing.ended_at)
    .arg(new.timing.duration_seconds)
    .arg(new.is_running)
    .arg(billable)
    .arg(new.billable_requested)
    .arg(&pricing.currency)
    .arg(rate)
    .arg(amount)
    .arg(new.notes)
    .arg(approval_status)
    .arg(new.external_id)
    .arg(now)
    .arg(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| timer_conflict(rows::external_id_conflict(e, NOUN)))?;
    let entry = resource::reload::<TimeEntries>(tx, actor, &id).await?;
    events::created(tx, actor.org_id(), NOUN, &id, &entry).await?;
    timesheets::refresh_totals(tx, &timesheet_id).await?;
    budgets::check(tx, &entry.project_id).await?;
    Ok(entry)
}

async fn insert(tx: &mut Tx, actor: &Actor, mut input: TimeEntryInput) -> Result<TimeEntry> {
    let mut p = Problems::default();
    let subtask_id = match std::mem::take(&mut input.subtask_id) {
        Patch::Value(id) => Some(id),
        _ => {
            p.push(FieldError::required("subtaskId"));
            None
        }
    };
    let user_id = match std::mem::take(&mut input.user_id) {
        Patch::Value(id) => id,
        _ => actor.user_id.clone(),
    };
    let timing = timing(&mut p, &mut input, None, &actor.organization.timezone);
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
    let ok = p.finish("time entry")?;
    write_new(
        tx,
        actor,
        NewEntry {
            user_id,
            subtask_id: ok.get(subtask_id)?,
            timing: ok.get(timing)?,
            is_running: false,
            billable_requested: input.billable.into_option().unwrap_or(true),
            notes: ok.get(notes)?,
            external_id: ok.get(external_id)?,
        },
    )
    .await
}

fn current_of(r: &row::Row) -> Result<Current> {
    Ok(Current {
        timing: Timing {
            date: row::get_str(r, "date")?,
            started_at: row::get_opt_i64(r, "started_at")?,
            ended_at: row::get_opt_i64(r, "ended_at")?,
            duration_seconds: row::get_i64(r, "duration_seconds")?,
        },
        is_running: row::get_bool(r, "is_running")?,
        billable_requested: row::get_bool(r, "billable_requested")?,
        notes: row::get_opt_str(r, "notes")?,
        external_id: row::get_opt_str(r, "external_id")?,
    })
}

async fn apply_update(
    tx: &mut Tx,
    actor: &Actor,
    row: &row::Row,
    mut input: TimeEntryInput,
) -> Result<TimeEntry> {
    let before = from_row(row)?;
    check_owner(actor, &before.user_id)?;
    check_unlocked(&before)?;
    let current = current_of(row)?;
    let mut p = Problems::default();
    let subtask_id = match std::mem::take(&mut input.subtask_id) {
        Patch::Value(id) => id,
        Patch::Absent => before.subtask_id.clone(),
        Patch::Null => {
            p.add("subtaskId", "required", "subtaskId cannot be null");
            String::new()
        }
    };
    let user_id = match std::mem::take(&mut input.user_id) {
        Patch::Value(id) => id,
        Patch::Absent => before.user_id.clone(),
        Patch::Null => {
            p.add("userId", "required", "userId cannot be null");
            String::new()
        }
    };
    let timing = timing(
        &mut p,
        &mut input,
        Some(&current),
        &actor.organization.timezone,
    );
    let notes = p.take(checks::opt_text(
        "notes",
        input.notes.apply(current.notes.clone()),
        LONG_TEXT,
    ));
    let external_id = p.take(checks::opt_text(
        "externalId",
        input.external_id.apply(current.external_id.clone()),
        SHORT_TEXT,
    ));
    let billable_requested = match input.billable {
        Patch::Value(b) => b,
        Patch::Absent => current.billable_requested,
        Patch::Null => {
            p.add("billable", "required", "billable cannot be null");
            false
        }
    };
    let ok = p.finish("time entry")?;
    let timing = ok.get(timing)?;
    let next = Current {
        timing,
        is_running: current.is_running,
        billable_requested,
        notes: ok.get(notes)?,
        external_id: ok.get(external_id)?,
    };
    if next == current && subtask_id == before.subtask_id && user_id == before.user_id {
        return Ok(before);
    }
    if user_id != before.user_id {
        check_user(tx, actor, &user_id).await?;
    }
    // A new subtask must be open for time; the entry's own may since have been archived.
    let pricing = if subtask_id == before.subtask_id {
        Pricing::of_task(tx, &before.task_id, &user_id)
            .await?
            .ok_or(Error::NotFound(NOUN))?
    } else {
        Pricing::load(tx, actor, &subtask_id, &user_id).await?
    };
    let (timesheet_id, approval_status) = week_of(tx, actor, &user_id, &next.timing.date).await?;
    let (billable, rate, amount) =
        pricing.price(next.billable_requested, next.timing.duration_seconds);
    Sql::new(
        "UPDATE time_entries SET user_id = ?, subtask_id = ?, task_id = ?, project_id = ?, customer_id = ?, \
         timesheet_id = ?, date = ?, started_at = ?, ended_at = ?, duration_seconds = ?, billable = ?, \
         billable_requested = ?, currency = ?, billable_rate = ?, billable_amount = ?, notes = ?, approval_status = ?, external_id = ?, \
         updated_at = ? WHERE id = ?",
    )
    .arg(&user_id)
    .arg(&subtask_id)
    .arg(&pricing.task_id)
    .arg(&pricing.project_id)
    .arg(&pricing.customer_id)
    .arg(&timesheet_id)
    .arg(&next.timing.date)
    .arg(next.timing.started_at)
    .arg(next.timing.ended_at)
    .arg(next.timing.duration_seconds)
    .arg(billable)
    .arg(next.billable_requested)
    .arg(&pricing.currency)
    .arg(rate)
    .arg(amount)
    .arg(next.notes)
    .arg(approval_status)
    .arg(next.external_id)
    .arg(now_ms())
    .arg(&before.id)
    .execute(&mut *tx)
    .await
    .map_err(|e| rows::external_id_conflict(e, NOUN))?;
    let after = resource::reload::<TimeEntries>(tx, actor, &before.id).await?;
    events::updated(tx, actor.org_id(), NOUN, &before.id, (&before, &after)).await?;
    after_write(tx, &before, &after).await?;
    Ok(after)
}

/// Keeps the timesheets and budgets an entry left and joined up to date.
async fn after_write(tx: &mut Tx, before: &TimeEntry, after: &TimeEntry) -> Result<()> {
    timesheets::refresh_totals(tx, &after.timesheet_id).await?;
    if before.timesheet_id != after.timesheet_id {
        timesheets::refresh_totals(tx, &before.timesheet_id).await?;
    }
    budgets::check(tx, &after.project_id).await?;
    if before.project_id != after.project_id {
        budgets::check(tx, &before.project_id).await?;
    }
    Ok(())
}
