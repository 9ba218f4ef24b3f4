//! Per-key rate limits: GCRA (a smooth token bucket), so a client that follows the headers never
//! meets a 429, yet a burst of a whole minute's budget is allowed.
//!
//! On SQLite the state lives in this process's memory. On Postgres every process draws from one
//! shared state per key, but not on every request: a process leases a slice of the key's budget
//! (up to a twentieth of it) in one small transaction and spends it locally. The trade-off: tokens
//! leased by one process and not yet spent are not available to another, so a client spreading
//! requests over several processes may meet its limit a few requests early; it never gets more
//! than its budget. A refusal is remembered locally until it expires, so a client hammering past
//! its limit costs no database round trips either.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::error::Result;
use crate::store::db::{Backend, Db, Sql, row};

const MICROS: i64 = 1_000_000;

/// A budget: `limit` requests per `window_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub limit: u32,
    pub window_seconds: u32,
}

impl Rate {
    pub fn per_minute(limit: u32) -> Self {
        Self {
            limit: limit.max(1),
            window_seconds: 60,
        }
    }

    fn window_us(self) -> i64 {
        self.window_seconds as i64 * MICROS
    }

    /// Time one request "costs": the window divided by the limit.
    fn interval_us(self) -> i64 {
        (self.window_us() / self.limit as i64).max(1)
    }
}

/// What the limiter says of one request, with everything the headers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    pub allowed: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Unix seconds at which the full budget is available again.
    pub reset_at: i64,
    /// Seconds until the full budget is available again.
    pub reset_after: i64,
    /// When refused: seconds until one request is allowed.
    pub retry_after: i64,
    pub window_seconds: u32,
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or_default()
}

fn ceil_seconds(us: i64) -> i64 {
    (us.max(0) + MICROS - 1) / MICROS
}

/// GCRA: `tat` is the key's theoretical arrival time. Returns the decision and the new `tat`.
/// Taking `cost` requests at once (a lease) succeeds only if all fit.
pub fn gcra(tat: i64, now: i64, quota: Rate, cost: u32) -> (Decision, i64) {
    let t = quota.interval_us();
    let window = quota.window_us();
    let base = tat.max(now);
    let new_tat = base + t * cost as i64;
    let decision = |allowed: bool, tat_after: i64| {
        let used = tat_after - now;
        let remaining = ((window - used).max(0) / t) as u32;
        Decision {
            allowed,
            limit: quota.limit,
            remaining: remaining.min(quota.limit),
            reset_at: ceil_seconds(tat_after.max(now)),
            reset_after: ceil_seconds(used),
            retry_after: if allowed {
                0
            } else {
                ceil_seconds(new_tat - now - window).max(1)
            },
            window_seconds: quota.window_seconds,
        }
    };
    if new_tat - now > window {
        (decision(false, base), tat)
    } else {
        (decision(true, new_tat), new_tat)
    }
}

/// How many requests fit now, given the key's `tat`.
fn available(tat: i64, now: i64, quota: Rate) -> u32 {
    let used = tat.max(now) - now;
    ((quota.window_us() - used).max(0) / quota.interval_us()) as u32
}

/// A key's leased budget on this process (shared mode).
#[derive(Debug, Clone, Copy)]
pub struct Lease {
    limit: u32,
    /// Tokens leased and not yet spent.
    tokens: u32,
    /// The shared `tat` right after the lease: what every process together has taken.
    shared_tat: i64,
    /// Refused until this instant, without asking the database.
    refused_until: i64,
}

pub enum Limiter {
    /// One process: the state is here.
    Local(Mutex<HashMap<String, i64>>),
    /// Several processes on one Postgres: leases from `rate_limit_state`.
    Shared {
        db: Db,
        leases: Mutex<HashMap<String, Lease>>,
    },
}

impl Limiter {
    pub fn for_database(db: &Db) -> Self {
        match db.backend() {
            Backend::Sqlite => Limiter::Local(Mutex::new(HashMap::new())),
            Backend::Postgres => Limiter::Shared {
                db: db.clone(),
                leases: Mutex::new(HashMap::new()),
            },
        }
    }

    /// Takes one request from the key's budget, or says when to come back.
    pub async fn acquire(&self, key_id: &str, quota: Rate) -> Result<Decision> {
        let now = now_us();
        match self {
            Limiter::Local(state) => {
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                let tat = state.get(key_id).copied().unwrap_or(0);
                let (decision, new_tat) = gcra(tat, now, quota, 1);
                state.insert(key_id.to_owned(), new_tat);
                Ok(decision)
            }
            Limiter::Shared { db, leases } => {
                if let Some(decision) = Self::spend_lease(leases, key_id, quota, now) {
                    return Ok(decision);
                }
                let fresh = lease(db, key_id, quota, now).await?;
                leases
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(key_id.to_owned(), fresh);
                Ok(Self::spend_lease(leases, key_id, quota, now)
                    .unwrap_or_else(|| refused(fresh.shared_tat, now, quota)))
            }
        }
    }

    /// Spends a leased token, or repeats a remembered refusal; `None` means "lease more".
    fn spend_lease(
        leases: &Mutex<HashMap<String, Lease>>,
        key_id: &str,
        quota: Rate,
        now: i64,
    ) -> Option<Decision> {
        let mut leases = leases.lock().unwrap_or_else(|e| e.into_inner());
        let lease = leases.get_mut(key_id)?;
        if lease.limit != quota.limit {
            // The plan changed: the old lease is in the old currency.
            leases.remove(key_id);
            return None;
        }
        if lease.tokens > 0 {
            lease.tokens -= 1;
            let shared = available(lease.shared_tat, now, quota);
            let remaining = (lease.tokens + shared).min(quota.limit);
            let used = lease.shared_tat.max(now) - now;
            return Some(Decision {
                allowed: true,
                limit: quota.limit,
                remaining,
                reset_at: ceil_seconds(lease.shared_tat.max(now)),
                reset_after: ceil_seconds(used),
                retry_after: 0,
                window_seconds: quota.window_seconds,
            });
        }
        if now < lease.refused_until {
            return Some(refused(lease.shared_tat, now, quota));
        }
        None
    }

    /// Gives back the request just taken (a `304 Not Modified` is free).
    pub fn refund(&self, key_id: &str, quota: Rate) {
        match self {
            Limiter::Local(state) => {
                let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(tat) = state.get_mut(key_id) {
                    *tat -= quota.interval_us();
                }
            }
            Limiter::Shared { leases, .. } => {
                let mut leases = leases.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(lease) = leases.get_mut(key_id)
                    && lease.limit == quota.limit
                {
                    lease.tokens += 1;
                }
            }
        }
    }

    /// The key's budget now, without taking anything (for `/usage`).
    pub async fn peek(&self, key_id: &str, quota: Rate) -> Result<Decision> {
        let now = now_us();
        let (tat, local) = match self {
            Limiter::Local(state) => {
                let state = state.lock().unwrap_or_else(|e| e.into_inner());
                (state.get(key_id).copied().unwrap_or(0), 0)
            }
            Limiter::Shared { db, leases } => {
                let local = leases
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(key_id)
                    .filter(|l| l.limit == quota.limit)
                    .map_or(0, |l| l.tokens);
                let row = Sql::new("SELECT tat_us FROM rate_limit_state WHERE api_key_id = ?")
                    .arg(key_id)
                    .fetch_optional(db)
                    .await?;
                (
                    row.map(|r| row::get_i64(&r, "tat_us"))
                        .transpose()?
                        .unwrap_or(0),
                    local,
                )
            }
        };
        let used = tat.max(now) - now;
        Ok(Decision {
            allowed: true,
            limit: quota.limit,
            remaining: (available(tat, now, quota) + local).min(quota.limit),
            reset_at: ceil_seconds(tat.max(now)),
            reset_after: ceil_seconds(used),
            retry_after: 0,
            window_seconds: quota.window_seconds,
        })
    }

    /// Forgets keys whose budget is full again (their state equals a fresh one).
    pub fn forget_idle(&self) {
        let now = now_us();
        match self {
            Limiter::Local(state) => state
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, tat| *tat > now),
            Limiter::Shared { leases, .. } => leases
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .retain(|_, l| l.tokens > 0 || l.refused_until > now || l.shared_tat > now),
        }
    }
}

fn refused(shared_tat: i64, now: i64, quota: Rate) -> Decision {
    let (decision, _) = gcra(shared_tat, now, quota, 1);
    if decision.allowed {
        // Budget came back since the lease: report it as the next request's chance.
        Decision {
            allowed: false,
            retry_after: 1,
            ..decision
        }
    } else {
        decision
    }
}

/// Leases up to a twentieth of the key's budget from the shared state.
async fn lease(db: &Db, key_id: &str, quota: Rate, now: i64) -> Result<Lease> {
    let slice = (quota.limit / 20).max(1);
    let mut tx = db.begin().await?;
    Sql::new("INSERT INTO rate_limit_state (api_key_id, tat_us) VALUES (?, 0) ON CONFLICT (api_key_id) DO NOTHING")
        .arg(key_id)
        .execute(&mut tx)
        .await?;
    let row = Sql::new("SELECT tat_us FROM rate_limit_state WHERE api_key_id = ? FOR UPDATE")
        .arg(key_id)
        .fetch_one(&mut tx)
        .await?;
    let tat = row::get_i64(&row, "tat_us")?;
    let tokens = available(tat, now, quota).min(slice);
    if tokens == 0 {
        tx.commit().await?;
        let (decision, _) = gcra(tat, now, quota, 1);
        return Ok(Lease {
            limit: quota.limit,
            tokens: 0,
            shared_tat: tat,
            refused_until: now + decision.retry_after.max(1) * MICROS,
        });
    }
    let (_, new_tat) = gcra(tat, now, quota, tokens);
    Sql::new("UPDATE rate_limit_state SET tat_us = ? WHERE api_key_id = ?")
        .arg(new_tat)
        .arg(key_id)
        .execute(&mut tx)
        .await?;
    tx.commit().await?;
    Ok(Lease {
        limit: quota.limit,
        tokens,
        shared_tat: new_tat,
        refused_until: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minute_of_budget_at_once_then_the_next_is_refused() {
        let quota = Rate::per_minute(300);
        let now = 1_000_000_000_000;
        let mut tat = 0;
        for i in 0..300 {
            let (d, next) = gcra(tat, now, quota, 1);
            assert!(d.allowed, "request {}", i + 1);
            assert_eq!(d.remaining, 299 - i);
            tat = next;
        }
        let (d, same) = gcra(tat, now, quota, 1);
        assert!(
            !d.allowed,
            "the 301st request in the same instant is refused"
        );
        assert_eq!(same, tat, "a refusal costs nothing");
        assert_eq!(d.remaining, 0);
        assert_eq!(d.retry_after, 1);
        assert_eq!(d.reset_after, 60);
        // One interval later (60 s / 300 = 200 ms) exactly one more fits.
        let (d, _) = gcra(tat, now + 200_000, quota, 1);
        assert!(d.allowed);
        assert_eq!(d.remaining, 0);
    }

    #[test]
    fn a_client_that_paces_itself_is_never_refused() {
        let quota = Rate::per_minute(120);
        let mut now = 5_000_000;
        let mut tat = 0;
        for _ in 0..1000 {
            let (d, next) = gcra(tat, now, quota, 1);
            assert!(d.allowed);
            tat = next;
            now += 500_000;
        }
    }

    #[test]
    fn leases_take_a_slice_or_nothing() {
        let quota = Rate::per_minute(300);
        let (d, tat) = gcra(0, 0, quota, 15);
        assert!(d.allowed);
        assert_eq!(available(tat, 0, quota), 285);
        let (d, _) = gcra(tat, 0, quota, 286);
        assert!(!d.allowed);
    }
}
