//! Timesheets: one per user and week (the organization's `weekStartsOn`), created with the
//! week's first entry, then submitted, approved or rejected. Approval locks the week's entries.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::access::auth::{Actor, Permission};
use crate::access::organizations::Organization;
use crate::billing::holiday_profiles;
use crate::billing::time_entries;
use crate::error::{Error, Result};
use crate::store::checks::{self, LONG_TEXT};
use crate::store::clock::{format_date, format_ms, format_opt, now_ms, week_start, weekday};
use crate::store::db::{Db, Sql, Tx, row};
use crate::store::events::{self, NewEvent};
use crate::store::ids;
use crate::store::list::{self, FilterKind, ListParams, ListSpec, Page};

pub const NOUN: &str = "timesheet";

pub const LIST: ListSpec = ListSpec {
    table: "timesheets",
    sorts: &[("periodStart", "period_start"), ("status", "status")],
    filters: &[
        ("userId", "user_id", FilterKind::Text),
        ("status", "status", FilterKind::Text),
        ("periodStart", "period_start", FilterKind::Text),
        ("from", "period_start", FilterKind::Min),
        ("to", "period_start", FilterKind::Max),
    ],
    search: None,
    soft_delete: false,
};

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Timesheet {
    /// `ts_…`
    pub id: String,
    pub user_id: String,
    /// First day of the week, `YYYY-MM-DD`.
    #[schema(example = "2026-11-16")]
    pub period_start: String,
    /// Last day of the week.
    #[schema(example = "2026-11-22")]
    pub period_end: String,
    /// `open`, `submitted`, `approved` or `rejected`.
    #[schema(example = "submitted")]
    pub status: String,
    /// Logged time of the week's stopped entries.
    #[schema(example = 144000)]
    pub total_seconds: i64,
    pub total_hours: f64,
    pub billable_seconds: i64,
    /// The user's capacity for the week: working days that are not holidays.
    #[schema(example = 144000)]
    pub expected_seconds: i64,
    pub expected_hours: f64,
    pub submitted_at: Option<String>,
    /// When it was approved or rejected, and by whom.
    pub decided_at: Option<String>,
    pub decided_by: Option<String>,
    pub rejection_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

/// The body of `POST /timesheets/{id}/reject`.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RejectInput {
    #[schema(
        max_length = 10000,
        pattern = r"^[^\u0000]*$",
        example = "Please split the Friday entry by task"
    )]
    pub reason: Option<String>,
}

fn from_row(r: &row::Row) -> Result<Timesheet> {
    let total = row::get_i64(r, "total_seconds")?;
    let expected = row::get_i64(r, "expected_seconds")?;
    Ok(Timesheet {
        id: row::get_str(r, "id")?,
        user_id: row::get_str(r, "user_id")?,
        period_start: row::get_str(r, "period_start")?,
        period_end: row::get_str(r, "period_end")?,
        status: row::get_str(r, "status")?,
        total_seconds: total,
        total_hours: checks::hours(Some(total)).unwrap_or_default(),
        billable_seconds: row::get_i64(r, "billable_seconds")?,
        expected_seconds: expected,
        expected_hours: checks::hours(Some(expected)).unwrap_or_default(),
        submitted_at: format_opt(row::get_opt_i64(r, "submitted_at")?),
        decided_at: format_opt(row::get_opt_i64(r, "decided_at")?),
        decided_by: row::get_opt_str(r, "decided_by")?,
        rejection_reason: row::get_opt_str(r, "rejection_reason")?,
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

pub async fn list(db: &Db, actor: &Actor, params: &ListParams) -> Result<Page<Timesheet>> {
    actor.require(Permission::ReadAll)?;
    list::list(db, actor.org_id(), &LIST, params, from_row).await
}

pub async fn get(db: &Db, actor: &Actor, id: &str) -> Result<Timesheet> {
    actor.require(Permission::ReadAll)?;
    let row = Sql::new("SELECT * FROM timesheets WHERE id = ? AND org_id = ?")
        .arg(id)
        .arg(actor.org_id())
        .fetch_optional(db)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    from_row(&row)
}

/// The week of `date` for `user_id`: its id and status, creating the timesheet if needed.
pub(crate) async fn for_date(
    tx: &mut Tx,
    org: &Organization,
    user_id: &str,
    date: NaiveDate,
) -> Result<(String, String)> {
    let first = week_start(
        date,
        weekday(&org.week_starts_on).unwrap_or(chrono::Weekday::Mon),
    );
    let last = first + chrono::Days::new(6);
    let period_start = format_date(first);
    let find = || {
        let mut sql = Sql::new(
            "SELECT id, status FROM timesheets WHERE org_id = ? AND user_id = ? AND period_start = ?",
        );
        sql.bind(org.id.as_str())
            .bind(user_id)
            .bind(period_start.as_str());
        sql
    };
    let mut select = find();
    if tx.backend() == crate::Backend::Postgres {
        select.push(" FOR UPDATE");
    }
    if let Some(r) = select.fetch_optional(&mut *tx).await? {
        return Ok((row::get_str(&r, "id")?, row::get_str(&r, "status")?));
    }
    let expected = holiday_profiles::expected_seconds(tx, &org.id, user_id, first, last).await?;
    let now = now_ms();
    // A concurrent writer may create the same week: the unique index keeps one, both use it.
    Sql::new(
        "INSERT INTO timesheets (id, org_id, user_id, period_start, period_end, status, total_seconds, \
         billable_seconds, expected_seconds, created_at, updated_at) VALUES (?, ?, ?, ?, ?, 'open', 0, 0, ?, ?, ?) \
         ON CONFLICT (org_id, user_id, period_start) DO NOTHING",
    )
    .arg(ids::new_id(ids::TIMESHEET))
    .arg(org.id.as_str())
    .arg(user_id)
    .arg(period_start.as_str())
    .arg(format_date(last))
    .arg(expected)
    .arg(now)
    .arg(now)
    .execute(&mut *tx)
    .await?;
    let mut select = find();
    if tx.backend() == crate::Backend::Postgres {
        select.push(" FOR UPDATE");
    }
    let r = select.fetch_one(&mut *tx).await?;
    Ok((row::get_str(&r, "id")?, row::get_str(&r, "status")?))
}

/// Recomputes a timesheet's totals from its entries (after an entry was written).
pub(crate) async fn refresh_totals(tx: &mut Tx, id: &str) -> Result<()> {
    let totals = Sql::new(
        "SELECT CAST(COALESCE(SUM(duration_seconds), 0) AS BIGINT) AS total, \
         CAST(COALESCE(SUM(CASE WHEN billable = 1 THEN duration_seconds ELSE 0 END), 0) AS BIGINT) AS billable \
         FROM time_entries WHERE timesheet_id = ? AND deleted_at IS NULL AND is_running = 0",
    )
    .arg(id)
    .fetch_one(&mut *tx)
    .await?;
    Sql::new(
        "UPDATE timesheets SET total_seconds = ?, billable_seconds = ?, updated_at = ? \
         WHERE id = ? AND (total_seconds <> ? OR billable_seconds <> ?)",
    )
    .arg(row::get_i64(&totals, "total")?)
    .arg(row::get_i64(&totals, "billable")?)
    .arg(now_ms())
    .arg(id)
    .arg(row::get_i64(&totals, "total")?)
    .arg(row::get_i64(&totals, "billable")?)
    .execute(&mut *tx)
    .await
    .map(drop)
}

/// Submits a week for approval: its owner (or a manager) asks for it to be approved.
pub async fn submit(db: &Db, actor: &Actor, id: &str) -> Result<Timesheet> {
    actor.require(Permission::WriteOwnTime)?;
    let mut tx = events::begin_write(db).await?;
    let sheet = locked(&mut tx, actor, id).await?;
    if sheet.user_id != actor.user_id {
        actor.require(Permission::WriteAnyTime)?;
    }
    if !matches!(sheet.status.as_str(), "open" | "rejected") {
        return Err(state_conflict(&sheet, "submitted"));
    }
    refuse_running(&mut tx, id).await?;
    Sql::new(
        "UPDATE timesheets SET status = 'submitted', submitted_at = ?, decided_at = NULL, decided_by = NULL, \
         rejection_reason = NULL, updated_at = ? WHERE id = ?",
    )
    .arg(now_ms())
    .arg(now_ms())
    .arg(id)
    .execute(&mut tx)
    .await?;
    finish(tx, actor, id, "submitted").await
}

pub async fn approve(db: &Db, actor: &Actor, id: &str) -> Result<Timesheet> {
    actor.require(Permission::ApproveTimesheets)?;
    let mut tx = events::begin_write(db).await?;
    let sheet = locked(&mut tx, actor, id).await?;
    if sheet.status != "submitted" {
        return Err(state_conflict(&sheet, "approved"));
    }
    // A timer started after the submission would end inside an approved week.
    refuse_running(&mut tx, id).await?;
    Sql::new(
        "UPDATE timesheets SET status = 'approved', decided_at = ?, decided_by = ?, updated_at = ? WHERE id = ?",
    )
    .arg(now_ms())
    .arg(actor.user_id.as_str())
    .arg(now_ms())
    .arg(id)
    .execute(&mut tx)
    .await?;
    finish(tx, actor, id, "approved").await
}

/// Sends a week back to its owner. An approved week can be reopened this way as long as none of
/// its entries is invoiced.
pub async fn reject(db: &Db, actor: &Actor, id: &str, input: RejectInput) -> Result<Timesheet> {
    actor.require(Permission::ApproveTimesheets)?;
    let reason = checks::opt_text("reason", input.reason, LONG_TEXT)
        .map_err(|e| Error::Validation(vec![e]))?;
    let mut tx = events::begin_write(db).await?;
    let sheet = locked(&mut tx, actor, id).await?;
    if !matches!(sheet.status.as_str(), "submitted" | "approved") {
        return Err(state_conflict(&sheet, "rejected"));
    }
    let invoiced = Sql::new(
        "SELECT COUNT(*) FROM time_entries WHERE timesheet_id = ? AND invoice_id IS NOT NULL AND deleted_at IS NULL",
    )
    .arg(id)
    .fetch_one(&mut tx)
    .await?;
    if row::get_i64(&invoiced, 0)? > 0 {
        return Err(Error::Conflict {
            code: "entry_locked",
            message: "entries of this week are invoiced: void the invoice first".into(),
        });
    }
    Sql::new(
        "UPDATE timesheets SET status = 'rejected', decided_at = ?, decided_by = ?, rejection_reason = ?, \
         updated_at = ? WHERE id = ?",
    )
    .arg(now_ms())
    .arg(actor.user_id.as_str())
    .arg(reason)
    .arg(now_ms())
    .arg(id)
    .execute(&mut tx)
    .await?;
    finish(tx, actor, id, "rejected").await
}

/// Locks the week's entries, then the sheet: entry writes lock their entry before its sheet,
/// so the same order here keeps Postgres from deadlocking an approval against an edit.
async fn locked(tx: &mut Tx, actor: &Actor, id: &str) -> Result<Timesheet> {
    let mut sql = Sql::new("SELECT * FROM timesheets WHERE id = ? AND org_id = ?");
    sql.bind(id).bind(actor.org_id());
    if tx.backend() == crate::Backend::Postgres {
        Sql::new("SELECT id FROM time_entries WHERE timesheet_id = ? AND org_id = ? FOR UPDATE")
            .arg(id)
            .arg(actor.org_id())
            .fetch_all(&mut *tx)
            .await?;
        sql.push(" FOR UPDATE");
    }
    let row = sql
        .fetch_optional(&mut *tx)
        .await?
        .ok_or(Error::NotFound(NOUN))?;
    let sheet = from_row(&row)?;
    actor.check_if_match(&sheet)?;
    Ok(sheet)
}

/// A week with a running timer is not finished: 409 `timer_running`.
async fn refuse_running(tx: &mut Tx, id: &str) -> Result<()> {
    let running = Sql::new(
        "SELECT COUNT(*) FROM time_entries WHERE timesheet_id = ? AND is_running = 1 AND deleted_at IS NULL",
    )
    .arg(id)
    .fetch_one(&mut *tx)
    .await?;
    if row::get_i64(&running, 0)? > 0 {
        return Err(Error::Conflict {
            code: "timer_running",
            message: "a timer is still running in this week: stop it first".into(),
        });
    }
    Ok(())
}

fn state_conflict(sheet: &Timesheet, wanted: &str) -> Error {
    Error::Conflict {
        code: "invalid_state",
        message: format!("a {} timesheet cannot be {wanted}", sheet.status),
    }
}

/// Carries the new status to the week's entries, logs `timesheet.{status}` and commits.
async fn finish(mut tx: Tx, actor: &Actor, id: &str, status: &str) -> Result<Timesheet> {
    time_entries::set_approval_status(&mut tx, actor.org_id(), id, status).await?;
    let row = Sql::new("SELECT * FROM timesheets WHERE id = ?")
        .arg(id)
        .fetch_one(&mut tx)
        .await?;
    let sheet = from_row(&row)?;
    events::append(
        &mut tx,
        NewEvent {
            org_id: actor.org_id(),
            kind: format!("{NOUN}.{status}"),
            resource_id: id,
            data: serde_json::to_value(&sheet).map_err(|e| Error::Internal(e.to_string()))?,
            changed: None,
        },
    )
    .await?;
    crate::access::idempotency::record(
        &mut tx,
        actor,
        crate::access::idempotency::Answer::Changed,
        &sheet,
    )
    .await?;
    tx.commit().await?;
    Ok(sheet)
}
