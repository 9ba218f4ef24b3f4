//! Request counts per key and day. Counted in memory and added to the database every few
//! seconds (one upsert per key and day, not one write per request); a crash loses at most the
//! last few seconds of counts, which are statistics, not money.

use std::collections::HashMap;
use std::sync::Mutex;

use chrono::{Datelike, Days, NaiveDate, Utc};
use serde::Serialize;

use crate::access::auth::{Actor, Permission};
use crate::access::rate_limits::Decision;
use crate::error::Result;
use crate::store::db::{Db, Sql, row};

#[derive(Default)]
pub struct UsageCounter {
    /// (organization, key, day) → requests not yet written.
    pending: Mutex<HashMap<(String, String, String), i64>>,
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

impl UsageCounter {
    pub fn count(&self, org_id: &str, key_id: &str) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        *pending
            .entry((org_id.to_owned(), key_id.to_owned(), today().to_string()))
            .or_default() += 1;
    }

    /// Adds the pending counts to the database.
    pub async fn flush(&self, db: &Db) -> Result<()> {
        let pending = std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()));
        for ((org_id, key_id, day), n) in pending {
            let written = Sql::new(
                "INSERT INTO api_usage_daily (org_id, api_key_id, day, requests) VALUES (?, ?, ?, ?) \
                 ON CONFLICT (org_id, api_key_id, day) DO UPDATE SET requests = api_usage_daily.requests + excluded.requests",
            )
            .arg(&org_id)
            .arg(&key_id)
            .arg(&day)
            .arg(n)
            .execute(db)
            .await;
            if let Err(error) = written {
                // Keep the count for the next flush rather than lose it.
                *self
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .entry((org_id, key_id, day))
                    .or_default() += n;
                return Err(error);
            }
        }
        Ok(())
    }

    fn unflushed(&self, org_id: &str, key_id: Option<&str>, day: &str) -> i64 {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|((o, k, d), _)| o == org_id && d == day && key_id.is_none_or(|id| id == k))
            .map(|(_, n)| *n)
            .sum()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Usage {
    /// This key's rate limit right now.
    pub rate_limit: RateLimitNow,
    /// Requests of this key and of the whole organization.
    pub key: Totals,
    pub organization: Totals,
    /// One row per day, oldest first, for the last 90 days (today included).
    pub daily: Vec<DailyUsage>,
    pub forecast: Forecast,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitNow {
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds at which the full budget is back.
    pub reset: i64,
    pub window_seconds: u32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Totals {
    pub today: i64,
    pub last7_days: i64,
    pub last30_days: i64,
    pub last90_days: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DailyUsage {
    /// `YYYY-MM-DD` (UTC)
    pub date: String,
    pub key: i64,
    pub organization: i64,
}

/// A linear forecast of this month's requests from the month so far.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Forecast {
    /// `YYYY-MM`
    pub month: String,
    pub key_so_far: i64,
    pub organization_so_far: i64,
    pub key_projected: i64,
    pub organization_projected: i64,
}

pub async fn report(
    db: &Db,
    counter: &UsageCounter,
    actor: &Actor,
    now: Decision,
) -> Result<Usage> {
    actor.require(Permission::ReadAll)?;
    let today = today();
    let first = today - Days::new(89);
    let rows = Sql::new(
        "SELECT day, api_key_id, CAST(SUM(requests) AS BIGINT) AS requests FROM api_usage_daily \
         WHERE org_id = ? AND day >= ? GROUP BY day, api_key_id",
    )
    .arg(actor.org_id())
    .arg(first.to_string())
    .fetch_all(db)
    .await?;
    let mut by_day: HashMap<String, (i64, i64)> = HashMap::new();
    for r in &rows {
        let day = row::get_str(r, "day")?;
        let n = row::get_i64(r, "requests")?;
        let entry = by_day.entry(day).or_default();
        entry.1 += n;
        if row::get_str(r, "api_key_id")? == actor.api_key.id {
            entry.0 += n;
        }
    }
    let mut daily = Vec::with_capacity(90);
    let mut day = first;
    while day <= today {
        let date = day.to_string();
        let (key, org) = by_day.get(&date).copied().unwrap_or_default();
        daily.push(DailyUsage {
            key: key + counter.unflushed(actor.org_id(), Some(&actor.api_key.id), &date),
            organization: org + counter.unflushed(actor.org_id(), None, &date),
            date,
        });
        day = day + Days::new(1);
    }
    let totals = |pick: fn(&DailyUsage) -> i64| {
        let last = |n: usize| daily.iter().rev().take(n).map(pick).sum();
        Totals {
            today: last(1),
            last7_days: last(7),
            last30_days: last(30),
            last90_days: last(90),
        }
    };
    let month_prefix = format!("{:04}-{:02}", today.year(), today.month());
    let so_far = |pick: fn(&DailyUsage) -> i64| -> i64 {
        daily
            .iter()
            .filter(|d| d.date.starts_with(&month_prefix))
            .map(pick)
            .sum()
    };
    let days_in_month = {
        let next = if today.month() == 12 {
            NaiveDate::from_ymd_opt(today.year() + 1, 1, 1)
        } else {
            NaiveDate::from_ymd_opt(today.year(), today.month() + 1, 1)
        };
        next.map_or(30, |n| (n - Days::new(1)).day() as i64)
    };
    let project = |n: i64| n * days_in_month / today.day() as i64;
    let key_so_far = so_far(|d| d.key);
    let organization_so_far = so_far(|d| d.organization);
    Ok(Usage {
        rate_limit: RateLimitNow {
            limit: now.limit,
            remaining: now.remaining,
            reset: now.reset_at,
            window_seconds: now.window_seconds,
        },
        key: totals(|d| d.key),
        organization: totals(|d| d.organization),
        forecast: Forecast {
            month: month_prefix.clone(),
            key_so_far,
            organization_so_far,
            key_projected: project(key_so_far),
            organization_projected: project(organization_so_far),
        },
        daily,
    })
}
