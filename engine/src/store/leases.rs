//! The dispatcher's durable cursor in the event log and the lease that lets one process at a
//! time move it (`dispatcher_state`).

use crate::error::Result;
use crate::store::clock::now_ms;
use crate::store::db::{Db, Sql, Tx, row};

/// The dispatcher's row in `dispatcher_state`. It turns events into webhook deliveries and flow
/// runs both; the stored key is still `webhooks` (its first job) because renaming stored data
/// would let a process of the previous version, during a rolling upgrade, take a second lease
/// and dispatch beside the new one.
pub const DISPATCHER: &str = "webhooks";

/// How long a lease lasts unless renewed.
pub const LEASE_MS: i64 = 10_000;

/// One holder's handle on the dispatcher's cursor and lease.
#[derive(Debug, Clone)]
pub struct DispatcherCursor {
    /// The process holding (or wanting) the lease.
    owner: String,
}

impl DispatcherCursor {
    pub fn new(owner: impl Into<String>) -> Self {
        Self {
            owner: owner.into(),
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// Takes or renews the lease for [`LEASE_MS`]; false when another process holds it.
    pub async fn take_lease(&self, db: &Db) -> Result<bool> {
        let now = now_ms();
        Sql::new(
            "INSERT INTO dispatcher_state (name, last_seq, lease_owner, lease_until) VALUES (?, 0, NULL, 0) \
             ON CONFLICT (name) DO NOTHING",
        )
        .arg(DISPATCHER)
        .execute(db)
        .await?;
        let taken = Sql::new(
            "UPDATE dispatcher_state SET lease_owner = ?, lease_until = ? WHERE name = ? \
             AND (lease_owner = ? OR lease_owner IS NULL OR lease_until < ?)",
        )
        .arg(&self.owner)
        .arg(now + LEASE_MS)
        .arg(DISPATCHER)
        .arg(&self.owner)
        .arg(now)
        .execute(db)
        .await?;
        Ok(taken == 1)
    }

    /// The sequence number of the last event dispatched.
    pub async fn position(&self, db: &Db) -> Result<i64> {
        let state = Sql::new("SELECT last_seq FROM dispatcher_state WHERE name = ?")
            .arg(DISPATCHER)
            .fetch_one(db)
            .await?;
        row::get_i64(&state, "last_seq")
    }

    /// Moves the cursor from `from` to `to` in `tx`, only if this holder still has the lease and
    /// nobody moved it meanwhile. False when it did not move: the batch is not this holder's.
    pub async fn advance(&self, tx: &mut Tx, from: i64, to: i64) -> Result<bool> {
        let moved = Sql::new(
            "UPDATE dispatcher_state SET last_seq = ? WHERE name = ? AND lease_owner = ? AND last_seq = ?",
        )
        .arg(to)
        .arg(DISPATCHER)
        .arg(&self.owner)
        .arg(from)
        .execute(&mut *tx)
        .await?;
        Ok(moved == 1)
    }
}
