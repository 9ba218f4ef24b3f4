//! Time entries: time a user spent on a subtask, logged by hand or by a timer. An entry carries
//! its derived task, project and customer, its week's timesheet, and its billable rate and
//! amount (repriced when a rate above it changes, until it is invoiced). Approved or invoiced
//! entries are locked.

use serde::{Deserialize, Serialize};

use crate::access::auth::{Actor, Permission};
use crate::access::idempotency;
use crate::billing::budgets;
use crate::billing::projects;
use crate::billing::timesheets;
use crate::error::{Error, FieldError, Problems, Result};
use crate::store::checks::{self, LONG_TEXT, SHORT_TEXT};
use crate::store::clock::{
    Millis, date_in_zone, format_date, format_ms, format_opt, now_ms, parse_date, parse_date_field,
    parse_instant_field,
};
use crate::store::db::{Db, Runner, Sql, Tx, row};
use crate::store::events::{self, NewEvent};
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

    fn decode(row: &row::Row) -> Result<TimeEntry> {
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
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub subtask_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub user_id: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "2026-11-20")]
    pub date: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "2026-11-20T09:00:00Z")]
    pub started_at: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "2026-11-20T10:30:00Z")]
    pub ended_at: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<i64>, example = 5400)]
    pub duration_seconds: Patch<i64>,
    #[serde(default)]
    #[schema(value_type = Option<bool>)]
    pub billable: Patch<bool>,
    #[serde(default)]
    #[schema(value_type = Option<String>, example = "Homepage wireframes")]
    pub notes: Patch<String>,
    #[serde(default)]
    #[schema(value_type = Option<String>)]
    pub external_id: Patch<String>,
}

/// The body of `POST /time-entries/timer/start`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TimerStart {
    pub subtask_id: String,
    /// Defaults to the key's user; managers may start a timer for someone else.
    pub user_id: Option<String>,
    pub notes: Option<String>,
    pub billable: Option<bool>,
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

/// The when of an entry after checks: the date and the instants, consistent with each other.
#[derive(Debug, Clone, PartialEq)]
struct Timing {
    date: String,
    started_at: Option<Millis>,
    ended_at: Option<Millis>,
    duration_seconds: i64,
}

#[derive(Debug, Clone, PartialEq)]
struct Current {
    timing: Timing,
    is_running: bool,
    billable_requested: bool,
    notes: Option<String>,
    external_id: Option<String>,
}

/// Checks the time fields of `input` against the entry's `current` ones (none on create).
fn timing(
    p: &mut Problems,
    input: &mut TimeEntryInput,
    current: Option<&Current>,
    zone: &str,
) -> Option<Timing> {
    let running = current.is_some_and(|c| c.is_running);
    let instant =
        |p: &mut Problems, field: &str, patch: Patch<String>, old: Option<Millis>| match patch {
            Patch::Absent => Some(old),
            Patch::Null => Some(None),
            Patch::Value(text) => p.take(parse_instant_field(field, &text)).map(Some),
        };
    let old = current.map(|c| &c.timing);
    let ended_patched = !input.ended_at.is_absent();
    let started = instant(
        p,
        "startedAt",
        std::mem::take(&mut input.started_at),
        old.and_then(|t| t.started_at),
    )?;
    let ended = instant(
        p,
        "endedAt",
        std::mem::take(&mut input.ended_at),
        old.and_then(|t| t.ended_at),
    )?;
    let duration_patch = match std::mem::take(&mut input.duration_seconds) {
        // Out of range: said once here, and kept out of the arithmetic below.
        Patch::Value(d) if !(0..=MAX_DURATION_SECONDS).contains(&d) => {
            p.add(
                "durationSeconds",
                "invalid",
                format!("durationSeconds must be from 1 to {MAX_DURATION_SECONDS} (24 hours)"),
            );
            Patch::Value(-1)
        }
        other => other,
    };
    if running && (ended_patched || !duration_patch.is_absent()) {
        p.add(
            "endedAt",
            "timer_running",
            "the timer is running: stop it before setting endedAt or durationSeconds",
        );
        return None;
    }
    let (ended, duration) = if running {
        (None, 0)
    } else {
        match (duration_patch, started, ended) {
            (Patch::Null, ..) => {
                p.add(
                    "durationSeconds",
                    "required",
                    "durationSeconds cannot be null",
                );
                return None;
            }
            (Patch::Value(d), Some(s), Some(e)) if ended_patched => {
                if e - s != d * 1000 {
                    p.add(
                        "durationSeconds",
                        "inconsistent",
                        "durationSeconds must equal endedAt minus startedAt",
                    );
                    return None;
                }
                (Some(e), d)
            }
            // A new duration with a start moves the end.
            (Patch::Value(d), Some(s), _) => (Some(s + d * 1000), d),
            (Patch::Value(_), None, Some(_)) => {
                p.add("startedAt", "required", "endedAt needs startedAt");
                return None;
            }
            (Patch::Value(d), None, None) => (None, d),
            (Patch::Absent, Some(s), Some(e)) => {
                // Untouched instants keep their duration (a timer stopped within a second).
                let kept = old
                    .filter(|t| t.started_at == Some(s) && t.ended_at == Some(e))
                    .map(|t| t.duration_seconds);
                if e <= s && kept.is_none() {
                    p.add("endedAt", "invalid", "endedAt must be after startedAt");
                    return None;
                }
                (Some(e), kept.unwrap_or((e - s) / 1000))
            }
            (Patch::Absent, Some(s), None) => match old.map(|t| t.duration_seconds) {
                Some(d) => (Some(s + d * 1000), d),
                None => {
                    p.add(
                        "durationSeconds",
                        "required",
                        "give durationSeconds or endedAt with startedAt",
                    );
                    return None;
                }
            },
            (Patch::Absent, None, Some(_)) => {
                p.add("startedAt", "required", "endedAt needs startedAt");
                return None;
            }
            (Patch::Absent, None, None) => match old.map(|t| t.duration_seconds) {
                Some(d) => (None, d),
                None => {
                    p.add(
                        "durationSeconds",
                        "required",
                        "give durationSeconds, or startedAt and endedAt",
                    );
                    return None;
                }
            },
        }
    };
    // A stopped timer may be shorter than a second; time logged by hand may not.
    let duration_ok = running
        || (1..=MAX_DURATION_SECONDS).contains(&duration)
        || duration == old.map_or(-1, |t| t.duration_seconds);
    if !duration_ok {
        p.add(
            "durationSeconds",
            "invalid",
            format!("durationSeconds must be from 1 to {MAX_DURATION_SECONDS} (24 hours)"),
        );
    }
    let date = match std::mem::take(&mut input.date) {
        Patch::Value(text) => p.take(parse_date_field("date", &text))?,
        Patch::Null => {
            p.add("date", "required", "date cannot be null");
            return None;
        }
        Patch::Absent => match (old, started) {
            (Some(t), _) => t.date.clone(),
            (None, Some(s)) => format_date(date_in_zone(s, zone)),
            (None, None) => {
                p.push(FieldError::required("date"));
                return None;
            }
        },
    };
    duration_ok.then_some(Timing {
        date,
        started_at: started,
        ended_at: ended,
        duration_seconds: duration,
    })
}

/// What the hierarchy and the user say about the price of an entry.
struct Pricing {
    task_id: String,
    project_id: String,
    customer_id: String,
    currency: String,
    /// False on non-billable projects and tasks.
    billable_allowed: bool,
    /// None on fixed-fee projects and when no level sets a rate.
    rate: Option<i64>,
}

impl Pricing {
    async fn load(tx: &mut Tx, actor: &Actor, subtask_id: &str, user_id: &str) -> Result<Self> {
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
    async fn of_task(tx: &mut Tx, task_id: &str, user_id: &str) -> Result<Option<Self>> {
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
    fn price(&self, requested: bool, seconds: i64) -> (bool, Option<i64>, i64) {
        let billable = requested && self.billable_allowed;
        let rate = self.rate.filter(|_| billable);
        (billable, rate, rate.map_or(0, |r| amount_of(seconds, r)))
    }
}

/// `seconds` at `rate` per hour, rounded half up to the minor unit.
pub fn amount_of(seconds: i64, rate: i64) -> i64 {
    (i128::from(seconds) * i128::from(rate) + 1800).div_euclid(3600) as i64
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
    let entry = resource::reload::<TimeEntries>(tx, &id).await?;
    events::created(tx, actor.org_id(), NOUN, &id, &entry).await?;
    timesheets::refresh_totals(tx, &timesheet_id).await?;
    budgets::check(tx, &entry.project_id).await?;
    Ok(entry)
}

/// The unique index on running entries speaks for a concurrent second timer.
fn timer_conflict(error: Error) -> Error {
    match &error {
        Error::Database(sqlx::Error::Database(db))
            if db.is_unique_violation() && db.message().contains("running") =>
        {
            already_running()
        }
        Error::Conflict { message, .. } if message.contains("conflicts with an existing") => {
            already_running()
        }
        _ => error,
    }
}

fn already_running() -> Error {
    Error::Conflict {
        code: "timer_already_running",
        message: "this user already has a running timer: stop it first".into(),
    }
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
    p.into_result()?;
    let missing = || Error::Internal("time entry fields missing after validation".into());
    write_new(
        tx,
        actor,
        NewEntry {
            user_id,
            subtask_id: subtask_id.ok_or_else(missing)?,
            timing: timing.ok_or_else(missing)?,
            is_running: false,
            billable_requested: input.billable.into_option().unwrap_or(true),
            notes: notes.ok_or_else(missing)?,
            external_id: external_id.ok_or_else(missing)?,
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
    p.into_result()?;
    let missing = || Error::Internal("time entry fields missing after validation".into());
    let timing = timing.ok_or_else(missing)?;
    let next = Current {
        timing,
        is_running: current.is_running,
        billable_requested,
        notes: notes.ok_or_else(missing)?,
        external_id: external_id.ok_or_else(missing)?,
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
    let after = resource::reload::<TimeEntries>(tx, &before.id).await?;
    events::updated(tx, actor.org_id(), NOUN, &before.id, &before, &after).await?;
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

async fn timer_event(tx: &mut Tx, actor: &Actor, kind: &str, entry: &TimeEntry) -> Result<()> {
    events::append(
        tx,
        NewEvent {
            org_id: actor.org_id(),
            kind: format!("timer.{kind}"),
            resource_id: &entry.id,
            data: serde_json::to_value(entry).map_err(|e| Error::Internal(e.to_string()))?,
            changed: None,
        },
    )
    .await
    .map(drop)
}

/// Starts a timer: a running entry from now. One running timer per user.
pub async fn start_timer(db: &Db, actor: &Actor, input: TimerStart) -> Result<TimeEntry> {
    actor.require(Permission::WriteOwnTime)?;
    let mut p = Problems::default();
    let notes = p.take(checks::opt_text("notes", input.notes, LONG_TEXT));
    let external_id = p.take(checks::opt_text(
        "externalId",
        input.external_id,
        SHORT_TEXT,
    ));
    p.into_result()?;
    let user_id = input.user_id.unwrap_or_else(|| actor.user_id.clone());
    let mut tx = events::begin_write(db).await?;
    let running = Sql::new(
        "SELECT id FROM time_entries WHERE org_id = ? AND user_id = ? AND is_running = 1 AND deleted_at IS NULL",
    )
    .arg(actor.org_id())
    .arg(&user_id)
    .fetch_optional(&mut tx)
    .await?;
    if running.is_some() {
        check_owner(actor, &user_id)?;
        return Err(already_running());
    }
    let now = now_ms();
    let entry = write_new(
        &mut tx,
        actor,
        NewEntry {
            user_id,
            subtask_id: input.subtask_id,
            timing: Timing {
                date: format_date(date_in_zone(now, &actor.organization.timezone)),
                started_at: Some(now),
                ended_at: None,
                duration_seconds: 0,
            },
            is_running: true,
            billable_requested: input.billable.unwrap_or(true),
            notes: notes.flatten(),
            external_id: external_id.flatten(),
        },
    )
    .await?;
    timer_event(&mut tx, actor, "started", &entry).await?;
    idempotency::record(&mut tx, actor, 201, &entry).await?;
    tx.commit().await?;
    Ok(entry)
}

/// Stops a running timer: the entry ends now and is priced.
pub async fn stop_timer(db: &Db, actor: &Actor, id: &str) -> Result<TimeEntry> {
    actor.require(Permission::WriteOwnTime)?;
    let mut tx = events::begin_write(db).await?;
    let row = rows::live_row(&mut tx, LIST.table, actor.org_id(), id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let before = from_row(&row)?;
    check_owner(actor, &before.user_id)?;
    actor.check_if_match(&before)?;
    if !before.is_running {
        return Err(Error::Conflict {
            code: "timer_not_running",
            message: "this entry's timer is not running".into(),
        });
    }
    let started = row::get_opt_i64(&row, "started_at")?.unwrap_or_else(now_ms);
    let ended = now_ms().max(started);
    let duration = ((ended - started) / 1000).min(MAX_DURATION_SECONDS);
    check_unlocked(&before)?;
    // Priced as the hierarchy stands, archived or not: a running timer must always stop.
    let pricing = Pricing::of_task(&mut tx, &before.task_id, &before.user_id)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let (billable, rate, amount) =
        pricing.price(row::get_bool(&row, "billable_requested")?, duration);
    Sql::new(
        "UPDATE time_entries SET is_running = 0, ended_at = ?, duration_seconds = ?, billable = ?, \
         billable_rate = ?, billable_amount = ?, updated_at = ? WHERE id = ?",
    )
    .arg(started + duration * 1000)
    .arg(duration)
    .arg(billable)
    .arg(rate)
    .arg(amount)
    .arg(now_ms())
    .arg(id)
    .execute(&mut tx)
    .await?;
    let after = resource::reload::<TimeEntries>(&mut tx, id).await?;
    events::updated(&mut tx, actor.org_id(), NOUN, id, &before, &after).await?;
    timer_event(&mut tx, actor, "stopped", &after).await?;
    after_write(&mut tx, &before, &after).await?;
    idempotency::record(&mut tx, actor, 200, &after).await?;
    tx.commit().await?;
    Ok(after)
}

/// Sets the approval status of a timesheet's entries, each with its `time_entry.updated`.
pub(crate) async fn set_approval_status(
    tx: &mut Tx,
    org_id: &str,
    timesheet_id: &str,
    status: &str,
) -> Result<()> {
    let rows = Sql::new(
        "SELECT * FROM time_entries WHERE timesheet_id = ? AND deleted_at IS NULL AND approval_status <> ?",
    )
    .arg(timesheet_id)
    .arg(status)
    .fetch_all(&mut *tx)
    .await?;
    for r in rows {
        let before = from_row(&r)?;
        Sql::new("UPDATE time_entries SET approval_status = ?, updated_at = ? WHERE id = ?")
            .arg(status)
            .arg(now_ms())
            .arg(&before.id)
            .execute(&mut *tx)
            .await?;
        let after = resource::reload::<TimeEntries>(tx, &before.id).await?;
        events::updated(tx, org_id, NOUN, &before.id, &before, &after).await?;
    }
    Ok(())
}

/// Links entries to an invoice (or frees them with `None`), each with its `time_entry.updated`.
pub(crate) async fn set_invoice(
    tx: &mut Tx,
    org_id: &str,
    entry_ids: &[String],
    invoice: Option<(&str, &str)>,
) -> Result<()> {
    for id in entry_ids {
        let r = Sql::new("SELECT * FROM time_entries WHERE id = ?")
            .arg(id.as_str())
            .fetch_one(&mut *tx)
            .await?;
        let before = from_row(&r)?;
        Sql::new(
            "UPDATE time_entries SET invoice_id = ?, invoice_line_id = ?, updated_at = ? WHERE id = ?",
        )
        .arg(invoice.map(|i| i.0))
        .arg(invoice.map(|i| i.1))
        .arg(now_ms())
        .arg(id.as_str())
        .execute(&mut *tx)
        .await?;
        let after = resource::reload::<TimeEntries>(tx, id).await?;
        events::updated(tx, org_id, NOUN, id, &before, &after).await?;
    }
    Ok(())
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
        let after = resource::reload::<TimeEntries>(tx, &before.id).await?;
        events::updated(tx, org_id, NOUN, &before.id, &before, &after).await?;
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

/// Refuses to move a record with logged time to another parent (`column` is `subtask_id`,
/// `task_id` or `project_id`): its entries' customer and project would change under billed or
/// approved history.
pub(crate) async fn refuse_move(
    tx: &mut Tx,
    column: &str,
    id: &str,
    noun: &str,
    field: &str,
) -> Result<()> {
    let mut sql = Sql::new("SELECT COUNT(*) FROM time_entries WHERE ");
    sql.push(column)
        .push(" = ? AND deleted_at IS NULL")
        .bind(id);
    let entries = row::get_i64(&sql.fetch_one(&mut *tx).await?, 0)?;
    if entries > 0 {
        return Err(Error::Conflict {
            code: "has_time_entries",
            message: format!(
                "the {noun} has {entries} time entries: it cannot change {field}; create a new {noun} instead"
            ),
        });
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
