//! The dead-trigger watch: when a flow last began a run (written at most once a minute per
//! flow), and whether an enabled schedule or poll flow has stopped firing when it should (a fire
//! time passed without its run, a poll overdue or failing again and again; computed when read,
//! from what the scheduler and the poller leave behind).

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;

use super::{Flow, LiveFlow, fire_times, live, live_from_row, parse_schedule};
use crate::error::Result;
use crate::store::clock::{Millis, format_ms, now_ms};
use crate::store::db::{Db, Sql, row};

/// How late a fire time's run, or a due poll, may be before the flow counts as stalled.
pub const GRACE_MS: Millis = 2 * 60_000;
/// Polls that fail in a row before the flow counts as stalled.
pub const FAILING_POLLS: i64 = 3;
/// How far back a schedule's fire times are looked at: a short stretch first (a schedule
/// firing every second has many), then longer ones, at most a day.
const LOOK_BACK_MS: [Millis; 3] = [5 * 60_000, 60 * 60_000, 24 * 60 * 60_000];
/// Most stalled flows `/metrics` names.
pub const MAX_NAMED: usize = 500;

/// Why an enabled flow counts as stalled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StallReason {
    /// A fire time of its schedule passed without its run.
    MissedFire,
    /// Its poll is overdue: no process polled it when it was due.
    PollLate,
    /// Its source failed at the last polls in a row.
    PollFailing,
}

impl StallReason {
    pub fn as_str(self) -> &'static str {
        match self {
            StallReason::MissedFire => "missed_fire",
            StallReason::PollLate => "poll_late",
            StallReason::PollFailing => "poll_failing",
        }
    }
}

/// A stalled trigger, as a flow shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Stalled {
    pub reason: StallReason,
    pub message: String,
    /// The missed fire time, when the poll was due, or the last successful poll.
    pub since: Option<String>,
}

/// How often one process writes a flow's `last_triggered_at` at most.
const MARK_EVERY_MS: Millis = 60_000;

/// When this process last wrote each flow's `last_triggered_at`: a run's path pays for the
/// write once a minute per flow, not once a run.
#[derive(Debug, Default)]
pub struct TriggerMarks {
    written: Mutex<HashMap<String, Millis>>,
}

impl TriggerMarks {
    /// Notes that a live run of the flow began at `at`.
    pub async fn note(&self, db: &Db, flow_id: &str, at: Millis) -> Result<()> {
        {
            let mut written = self.written.lock().unwrap_or_else(|e| e.into_inner());
            if written
                .get(flow_id)
                .is_some_and(|last| at < last + MARK_EVERY_MS)
            {
                return Ok(());
            }
            written.insert(flow_id.to_owned(), at);
        }
        db.write_count(
            &Sql::new(
                "UPDATE flows SET last_triggered_at = ? WHERE id = ? \
                 AND (last_triggered_at IS NULL OR last_triggered_at < ?)",
            )
            .arg(at)
            .arg(flow_id)
            .arg(at),
        )
        .await
        .map(drop)
    }
}

async fn organization_zone(db: &Db, org_id: &str) -> Result<Option<String>> {
    Sql::new("SELECT timezone FROM organizations WHERE id = ?")
        .arg(org_id)
        .fetch_optional(db)
        .await?
        .map(|r| row::get_str(&r, "timezone"))
        .transpose()
}

/// The newest fire time of a schedule flow due more than [`GRACE_MS`] ago (since it was
/// enabled, within a day), if its run was never created.
async fn missed_fire(db: &Db, flow: &LiveFlow, now: Millis) -> Result<Option<Stalled>> {
    let Some(schedule) = flow.trigger["schedule"]
        .as_str()
        .and_then(|s| parse_schedule(s).ok())
    else {
        return Ok(None);
    };
    let zone_name = match &flow.settings.timezone {
        Some(zone) => Some(zone.clone()),
        None => organization_zone(db, &flow.org_id).await?,
    };
    let zone = zone_name
        .and_then(|z| z.parse::<chrono_tz::Tz>().ok())
        .unwrap_or(chrono_tz::UTC);
    let to = now - GRACE_MS;
    // Fire times count from when the flow was enabled, or got the schedule it has now.
    let since_version =
        Sql::new("SELECT created_at FROM flow_versions WHERE flow_id = ? AND version = ?")
            .arg(flow.id.as_str())
            .arg(flow.version)
            .fetch_optional(db)
            .await?
            .map(|r| row::get_i64(&r, "created_at"))
            .transpose()?
            .unwrap_or(0);
    let enabled = flow.enabled_at.unwrap_or(now).max(since_version);
    let last = LOOK_BACK_MS.iter().find_map(|back| {
        let from = enabled.max(to - back);
        if from > to {
            return None;
        }
        fire_times(&schedule, zone, from, to)
            .into_iter()
            .rfind(|at| (from..=to).contains(at))
    });
    let Some(last) = last else {
        return Ok(None);
    };
    let at = format_ms(last);
    let fired = Sql::new("SELECT id FROM runs WHERE flow_id = ? AND source_key = ?")
        .arg(flow.id.as_str())
        .arg(format!("schedule:{at}"))
        .fetch_optional(db)
        .await?
        .is_some();
    Ok((!fired).then(|| Stalled {
        reason: StallReason::MissedFire,
        message: format!("the fire time {at} passed without a run (no process was scheduling, or the organization's run budget was spent)"),
        since: Some(at),
    }))
}

/// A poll flow whose source failed [`FAILING_POLLS`] times in a row, or whose poll is overdue.
async fn poll_stall(db: &Db, flow: &LiveFlow, now: Millis) -> Result<Option<Stalled>> {
    let Some(state) = Sql::new(
        "SELECT failures, last_error, next_poll_at, last_succeeded_at FROM poll_state WHERE flow_id = ?",
    )
    .arg(flow.id.as_str())
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    let failures = row::get_i64(&state, "failures")?;
    if failures >= FAILING_POLLS {
        let error = row::get_opt_str(&state, "last_error")?.unwrap_or_default();
        return Ok(Some(Stalled {
            reason: StallReason::PollFailing,
            message: format!("the last {failures} polls failed: {error}"),
            since: row::get_opt_i64(&state, "last_succeeded_at")?.map(format_ms),
        }));
    }
    let due = row::get_i64(&state, "next_poll_at")?;
    Ok((due < now - GRACE_MS).then(|| Stalled {
        reason: StallReason::PollLate,
        message: format!(
            "the poll due at {} has not run: no process is polling",
            format_ms(due)
        ),
        since: Some(format_ms(due)),
    }))
}

/// Whether an enabled schedule or poll flow is stalled now.
pub async fn stall_of(db: &Db, flow: &LiveFlow, now: Millis) -> Result<Option<Stalled>> {
    if !flow.is_enabled {
        return Ok(None);
    }
    match flow.trigger["type"].as_str() {
        Some("schedule") => missed_fire(db, flow, now).await,
        Some("poll") => poll_stall(db, flow, now).await,
        _ => Ok(None),
    }
}

/// Fills in whether the flows the API shows are stalled.
pub async fn annotate<'f>(db: &Db, flows: impl IntoIterator<Item = &'f mut Flow>) -> Result<()> {
    let now = now_ms();
    for flow in flows {
        let watched =
            flow.is_enabled && matches!(flow.trigger["type"].as_str(), Some("schedule" | "poll"));
        flow.stalled = match watched {
            true => match live(db, &flow.id).await? {
                Some(live) => stall_of(db, &live, now).await?,
                None => None,
            },
            false => None,
        };
    }
    Ok(())
}

/// Every enabled schedule and poll flow that is stalled now, with its organization (at most
/// [`MAX_NAMED`]), and how many are.
pub async fn stalled_flows(db: &Db) -> Result<(Vec<(String, Stalled)>, usize)> {
    let now = now_ms();
    let rows = Sql::new(
        "SELECT * FROM flows WHERE trigger_type IN ('schedule', 'poll') AND is_enabled = 1 AND deleted_at IS NULL",
    )
    .fetch_all(db)
    .await?;
    let mut named = Vec::new();
    let mut count = 0;
    for r in &rows {
        let flow = live_from_row(r)?;
        if let Some(stalled) = stall_of(db, &flow, now).await? {
            count += 1;
            if named.len() < MAX_NAMED {
                named.push((flow.id, stalled));
            }
        }
    }
    Ok((named, count))
}
