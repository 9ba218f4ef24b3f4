//! Schedule triggers: each enabled flow with a cron schedule starts a run at every fire time.
//! A fire time is the run's source (`schedule:<instant>`), unique per flow, so any number of
//! processes may tick at once and each fire time still starts exactly one run. A schedule is
//! read in the flow's `settings.timezone`, else its organization's time zone (daylight saving
//! included: see [`flows::fire_times`]). Fire times missed while no process ran are made up for
//! the last minute only.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde_json::json;
use timix_engine::automation::flows;
use timix_engine::automation::run_admission::RunAdmission;
use timix_engine::automation::runs;
use timix_engine::error::Result;
use timix_engine::store::clock::{format_ms, now_ms};
use timix_engine::store::db::Db;

use crate::executor::FlowExecutor;

/// How far back a tick looks for fire times it may have missed.
const CATCH_UP_MS: i64 = 60_000;

/// Starts the runs of every fire time since the previous tick at `last` (less a second, for
/// fires that landed as it ran; at most a minute back) until now, all in one transaction;
/// returns the new run ids. A fire time beyond its organization's run budget is skipped (a
/// later one comes soon) and the flow says so; one the previous tick looked at already is not
/// counted again.
pub async fn tick(db: &Db, admission: &RunAdmission, last: Option<i64>) -> Result<Vec<String>> {
    let now = now_ms();
    let since = last.map(|t| t - 1_000);
    let mut fires = Vec::new();
    let mut skipped = Vec::new();
    let scheduled = flows::scheduled(db).await?;
    let zones = if scheduled.is_empty() {
        Default::default()
    } else {
        flows::organization_zones(db).await?
    };
    for flow in scheduled {
        let Some(text) = flow.trigger["schedule"].as_str() else {
            continue;
        };
        let Ok(schedule) = flows::parse_schedule(text) else {
            continue;
        };
        let since = since
            .unwrap_or(now - CATCH_UP_MS)
            .max(now - CATCH_UP_MS)
            .max(flow.enabled_at.unwrap_or(now));
        let zone = zone_of(&flow, &zones);
        let due = flows::fire_times(&schedule, zone, since, now);
        for at in due {
            let seen_before = last.is_some_and(|last| at <= last);
            if !seen_before && !admission.admit_now(&flow.org_id).await? {
                skipped.push(flow.clone());
                break;
            }
            fires.push((flow.clone(), at, zone, !seen_before));
        }
    }
    let mut started = Vec::new();
    let mut throttled = Vec::new();
    if !fires.is_empty() {
        let mut tx = db.begin().await?;
        for (flow, at, zone, booked) in &fires {
            let text = flow.trigger["schedule"].as_str().unwrap_or_default();
            let local = DateTime::<Utc>::from_timestamp_millis(*at).map(|t| {
                t.with_timezone(zone)
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            });
            let at = format_ms(*at);
            let trigger = json!({"firedAt": at, "localTime": local, "timezone": zone.name(), "schedule": text});
            let source = format!("schedule:{at}");
            let run = runs::NewRun {
                flow,
                source_key: &source,
                trigger: &trigger,
                lineage: &runs::Lineage::default(),
                test: None,
            };
            // Beyond the flow's own `maxRunsPerMinute` a fire time is skipped like one beyond
            // the organization's budget: a schedule firing faster than its limit would
            // otherwise queue without end.
            if runs::throttled(&mut tx, flow).await?.is_some() {
                if *booked {
                    admission.refund(&flow.org_id);
                }
                throttled.push(flow.clone());
                continue;
            }
            match runs::start(&mut tx, &run).await? {
                Some(id) => started.push(id),
                // A fire time another process started already: its slot goes back.
                None if *booked => admission.refund(&flow.org_id),
                None => {}
            }
        }
        tx.commit().await?;
    }
    for (flow, why) in skipped
        .iter()
        .map(|f| (f, SKIPPED))
        .chain(throttled.iter().map(|f| (f, THROTTLED)))
    {
        if flow.last_error.as_deref() != Some(why) {
            flows::note_error(db, &flow.id, Some(why)).await?;
        }
    }
    Ok(started)
}

/// The zone a flow's schedule is read in: its own setting, else its organization's, else UTC.
fn zone_of(flow: &flows::LiveFlow, zones: &std::collections::HashMap<String, String>) -> Tz {
    flow.settings
        .timezone
        .as_deref()
        .or_else(|| zones.get(&flow.org_id).map(String::as_str))
        .and_then(|name| name.parse().ok())
        .unwrap_or(Tz::UTC)
}

/// What a flow whose fire time was skipped says.
const SKIPPED: &str = "a fire time was skipped (rate_limited): the organization started as many runs \
                       as its plan allows a minute";

/// What a flow whose fire time was beyond its own `maxRunsPerMinute` says.
const THROTTLED: &str = "a fire time was skipped (rate_limited): the flow started as many runs as its \
                         maxRunsPerMinute allows a minute";

/// Ticks every second and runs what fired.
pub async fn run(executor: Arc<FlowExecutor>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    // After the first tick only fire times since the previous one are looked at (less a second,
    // for fires that landed as the tick ran): no rewrite of a minute of fire times each second.
    let mut last: Option<i64> = None;
    loop {
        every.tick().await;
        let now = now_ms();
        match tick(&executor.db, &executor.admission, last).await {
            Ok(ids) => {
                last = Some(now);
                for run_id in ids {
                    let executor = executor.clone();
                    tokio::spawn(async move {
                        if let Err(error) = executor.execute(&run_id).await {
                            tracing::warn!(run = %run_id, %error, "A scheduled run could not be executed.");
                        }
                    });
                }
            }
            Err(error) => tracing::warn!(%error, "Could not start scheduled runs."),
        }
    }
}
