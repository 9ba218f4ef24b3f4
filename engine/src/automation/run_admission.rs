//! Admission of new runs: each organization may start so many runs a minute (by plan, or as
//! the operator sets). A run beyond that is not dropped: it is created queued for the first
//! instant its organization's budget allows, so one organization's burst waits in the queue
//! instead of taking the workers and the database from every other.
//!
//! The pace is GCRA (as for API keys): a whole minute's budget may start at once, then runs are
//! spaced evenly. Each process paces the runs it creates; on Postgres with several processes
//! that start runs (inbound calls spread over API processes) an organization may get up to that
//! many times its budget.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::access::organizations::Plan;
use crate::error::Result;
use crate::store::clock::{Millis, now_ms};
use crate::store::db::{Db, Sql, row};

/// Runs an organization may start per minute on each plan.
pub fn runs_per_minute(plan: Plan) -> u32 {
    match plan {
        Plan::Free => 100,
        Plan::Starter => 500,
        Plan::Professional => 2_000,
        Plan::Business => 10_000,
    }
}

/// How long a looked-up plan is trusted before it is read again.
const PLAN_TTL_MS: Millis = 60_000;
const WINDOW_US: i64 = 60_000_000;

/// One organization's pace.
#[derive(Debug, Clone, Copy)]
struct Pace {
    /// Theoretical arrival time of the next run, in microseconds.
    tat_us: i64,
    per_minute: u32,
    checked_at: Millis,
}

/// Decides when new runs may begin; see the module docs.
pub struct RunAdmission {
    db: Db,
    /// The operator's budget for every organization; `Some(0)` lifts it.
    per_minute: Option<u32>,
    orgs: Mutex<HashMap<String, Pace>>,
}

impl RunAdmission {
    /// `per_minute`: the operator's budget (`TIMIX_RUNS_PER_MINUTE`); None for the plans'.
    pub fn new(db: Db, per_minute: Option<u32>) -> Self {
        RunAdmission {
            db,
            per_minute,
            orgs: Mutex::new(HashMap::new()),
        }
    }

    /// Books the next run of `org_id`: None when it may begin now, else the instant it may
    /// (the organization's budget is spent until then).
    pub async fn book(&self, org_id: &str) -> Result<Option<Millis>> {
        let now = now_ms();
        let Some(per_minute) = self.per_minute_of(org_id, now).await? else {
            return Ok(None);
        };
        let begin_us = self.take_slot(org_id, now, per_minute, |_| true);
        Ok((begin_us > now * 1000).then(|| (begin_us + 999) / 1000))
    }

    /// Books the next run of `org_id` only if it may begin now (a schedule's fire time, which
    /// is skipped rather than queued behind a spent budget).
    pub async fn admit_now(&self, org_id: &str) -> Result<bool> {
        let now = now_ms();
        let Some(per_minute) = self.per_minute_of(org_id, now).await? else {
            return Ok(true);
        };
        let begin_us = self.take_slot(org_id, now, per_minute, |begin_us| begin_us <= now * 1000);
        Ok(begin_us <= now * 1000)
    }

    /// Gives back a slot booked for a run that was not started after all (its source had
    /// started one already).
    pub fn refund(&self, org_id: &str) {
        let mut orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(pace) = orgs.get_mut(org_id) {
            pace.tat_us -= (WINDOW_US / pace.per_minute.max(1) as i64).max(1);
        }
    }

    /// The next slot of `org_id` (when its run may begin, in microseconds), taken if `take`
    /// says so.
    fn take_slot(
        &self,
        org_id: &str,
        now: Millis,
        per_minute: u32,
        take: impl FnOnce(i64) -> bool,
    ) -> i64 {
        let mut orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
        let pace = orgs.entry(org_id.to_owned()).or_insert(Pace {
            tat_us: 0,
            per_minute,
            checked_at: now,
        });
        let (begin_us, tat_us) = next_slot(pace.tat_us, now * 1000, per_minute);
        if take(begin_us) {
            pace.tat_us = tat_us;
        }
        begin_us
    }

    /// The organization's budget; None when unlimited.
    async fn per_minute_of(&self, org_id: &str, now: Millis) -> Result<Option<u32>> {
        if let Some(n) = self.per_minute {
            return Ok((n > 0).then_some(n));
        }
        let known = {
            let orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
            orgs.get(org_id).copied()
        };
        if let Some(pace) = known
            && now - pace.checked_at < PLAN_TTL_MS
        {
            return Ok(Some(pace.per_minute));
        }
        let row = Sql::new("SELECT plan FROM organizations WHERE id = ?")
            .arg(org_id)
            .fetch_optional(&self.db)
            .await?;
        let plan = match row {
            Some(r) => Plan::parse(&row::get_str(&r, "plan")?).unwrap_or(Plan::Free),
            None => Plan::Free,
        };
        let per_minute = runs_per_minute(plan);
        let mut orgs = self.orgs.lock().unwrap_or_else(|e| e.into_inner());
        let pace = orgs.entry(org_id.to_owned()).or_insert(Pace {
            tat_us: 0,
            per_minute,
            checked_at: now,
        });
        pace.per_minute = per_minute;
        pace.checked_at = now;
        Ok(Some(per_minute))
    }
}

/// GCRA with booking: given the theoretical arrival time `tat_us`, the next run begins at the
/// returned instant (now while a minute's budget is left, else as soon as a slot frees), and
/// the arrival time moves one interval on.
fn next_slot(tat_us: i64, now_us: i64, per_minute: u32) -> (i64, i64) {
    let interval = (WINDOW_US / per_minute.max(1) as i64).max(1);
    let tat = tat_us.max(now_us) + interval;
    let begin = (tat - WINDOW_US).max(now_us);
    (begin, tat)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_of_budget_starts_at_once_then_runs_are_spaced() {
        let now = 1_000_000_000;
        let mut tat = 0;
        for _ in 0..60 {
            let (begin, next) = next_slot(tat, now, 60);
            assert_eq!(begin, now);
            tat = next;
        }
        // The 61st waits one interval (a second), the 62nd two.
        let (begin, next) = next_slot(tat, now, 60);
        assert_eq!(begin, now + 1_000_000);
        let (begin, _) = next_slot(next, now, 60);
        assert_eq!(begin, now + 2_000_000);
        // After a quiet minute the whole budget is back.
        let (begin, _) = next_slot(tat, now + 2 * WINDOW_US, 60);
        assert_eq!(begin, now + 2 * WINDOW_US);
    }

    #[test]
    fn plans_grow_their_budgets() {
        let budgets: Vec<u32> = [
            Plan::Free,
            Plan::Starter,
            Plan::Professional,
            Plan::Business,
        ]
        .into_iter()
        .map(runs_per_minute)
        .collect();
        assert!(budgets.windows(2).all(|w| w[0] < w[1]), "{budgets:?}");
    }
}
