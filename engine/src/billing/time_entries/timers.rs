//! Timers: a running entry started now and stopped later, one per user.

use super::pricing::Pricing;
use super::timing::Timing;
use super::{
    LIST, MAX_DURATION_SECONDS, NOUN, NewEntry, TimeEntries, TimeEntry, TimerStart, after_write,
    check_owner, check_unlocked, from_row, write_new,
};
use crate::access::auth::{Actor, Permission};
use crate::access::idempotency::{self, Answer};
use crate::error::{Error, Problems, Result};
use crate::store::checks::{self, LONG_TEXT, SHORT_TEXT};
use crate::store::clock::{date_in_zone, format_date, now_ms};
use crate::store::db::{Db, Sql, Tx, row};
use crate::store::events::{self, NewEvent};
use crate::store::resource;
use crate::store::rows;

/// The unique index on running entries speaks for a concurrent second timer.
pub(super) fn timer_conflict(error: Error) -> Error {
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
    idempotency::record(&mut tx, actor, Answer::Created, &entry).await?;
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
    let after = resource::reload::<TimeEntries>(&mut tx, actor, id).await?;
    events::updated(&mut tx, actor.org_id(), NOUN, id, (&before, &after)).await?;
    timer_event(&mut tx, actor, "stopped", &after).await?;
    after_write(&mut tx, &before, &after).await?;
    idempotency::record(&mut tx, actor, Answer::Changed, &after).await?;
    tx.commit().await?;
    Ok(after)
}
