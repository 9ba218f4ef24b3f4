//! Storing deliveries: one row per (subscription, event) made by the dispatcher, moved through
//! its [`DeliveryStatus`]es by the deliverer and the sweeper, with every attempt logged; listed
//! and retried by hand by the webhook's owner.

use serde::Serialize;

use super::live_subscription;
use crate::access::auth::{Actor, Permission};
use crate::error::{Error, Result};
use crate::store::clock::{Millis, format_ms, format_opt, now_ms};
use crate::store::db::{Arg, Db, Sql, Tx, row};
use crate::store::events::Event;
use crate::store::ids;
use crate::store::list::{self, FilterKind, ListParams, ListSpec, Page};

/// Where a delivery stands. Stored (and shown) as the lower-case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Due (at `next_attempt_at`), its job queued.
    Pending,
    /// Claimed by a deliverer, an attempt under way.
    Sending,
    /// The last attempt succeeded.
    Succeeded,
    /// The last attempt failed; retried at `next_attempt_at`.
    Failed,
    /// Given up: no attempt left, the subscription ended, or the event is gone. Retried by hand.
    Dead,
}

impl DeliveryStatus {
    pub const ALL: [Self; 5] = [
        Self::Pending,
        Self::Sending,
        Self::Succeeded,
        Self::Failed,
        Self::Dead,
    ];

    /// The stored name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Sending => "sending",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Dead => "dead",
        }
    }

    /// The status stored as `text`.
    pub fn parse(text: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|s| s.as_str() == text)
            .ok_or_else(|| Error::Internal(format!("unknown delivery status {text:?}")))
    }

    /// Deliveries still to be made: pending, being sent, or awaiting a retry.
    pub const WAITING: [Self; 3] = [Self::Pending, Self::Sending, Self::Failed];

    /// Whether an attempt may be made (when due): pending or failed.
    pub fn awaits_attempt(self) -> bool {
        matches!(self, Self::Pending | Self::Failed)
    }
}

impl std::fmt::Display for DeliveryStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<DeliveryStatus> for Arg {
    fn from(status: DeliveryStatus) -> Self {
        Arg::from(status.as_str())
    }
}

/// A delivery with its attempts, for `GET /webhooks/{id}/deliveries`.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Delivery {
    /// `dlv_…`
    pub id: String,
    pub event_id: String,
    pub event_type: String,
    /// `pending`, `succeeded`, `failed` (will retry) or `dead` (gave up; retry by hand).
    #[schema(value_type = String)]
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<String>,
    pub attempts: Vec<Attempt>,
    pub created_at: String,
    pub updated_at: String,
}

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Attempt {
    pub number: i64,
    pub started_at: String,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    /// The start of the receiver's answer.
    pub response_excerpt: Option<String>,
    pub error: Option<String>,
}

pub const DELIVERY_LIST: ListSpec = ListSpec {
    table: "deliveries",
    sorts: &[],
    filters: &[
        ("status", "status", FilterKind::Text),
        ("eventType", "event_type", FilterKind::Text),
    ],
    search: None,
    soft_delete: false,
};

pub async fn list_deliveries(
    db: &Db,
    actor: &Actor,
    webhook_id: &str,
    params: &ListParams,
) -> Result<Page<Delivery>> {
    actor.require(Permission::ManageWebhooks)?;
    live_subscription(db, actor, "webhook", webhook_id).await?;
    let fixed = [("subscription_id", Arg::from(webhook_id))];
    let scope = list::Scope {
        org_id: actor.org_id(),
        fixed: &fixed,
    };
    let mut page = list::list_where(db, scope, &DELIVERY_LIST, params, delivery_from_row).await?;
    for item in page.items.iter_mut() {
        if let list::Item::Live(delivery) = item {
            delivery.attempts = attempts(db, &delivery.id).await?;
        }
    }
    Ok(page)
}

fn delivery_from_row(r: &row::Row) -> Result<Delivery> {
    Ok(Delivery {
        id: row::get_str(r, "id")?,
        event_id: row::get_str(r, "event_id")?,
        event_type: row::get_str(r, "event_type")?,
        status: DeliveryStatus::parse(&row::get_str(r, "status")?)?,
        next_attempt_at: format_opt(row::get_opt_i64(r, "next_attempt_at")?),
        attempts: Vec::new(),
        created_at: format_ms(row::get_i64(r, "created_at")?),
        updated_at: format_ms(row::get_i64(r, "updated_at")?),
    })
}

async fn attempts(db: &Db, delivery_id: &str) -> Result<Vec<Attempt>> {
    let rows = Sql::new("SELECT * FROM delivery_attempts WHERE delivery_id = ? ORDER BY number")
        .arg(delivery_id)
        .fetch_all(db)
        .await?;
    rows.iter()
        .map(|r| {
            Ok(Attempt {
                number: row::get_i64(r, "number")?,
                started_at: format_ms(row::get_i64(r, "started_at")?),
                duration_ms: row::get_i64(r, "duration_ms")?,
                status_code: row::get_opt_i64(r, "status_code")?,
                response_excerpt: row::get_opt_str(r, "response_excerpt")?,
                error: row::get_opt_str(r, "error")?,
            })
        })
        .collect()
}

/// Makes a delivery of this webhook due again now; returns it. The caller enqueues it.
pub async fn retry_delivery(
    db: &Db,
    actor: &Actor,
    webhook_id: &str,
    delivery_id: &str,
) -> Result<Delivery> {
    actor.require(Permission::ManageWebhooks)?;
    live_subscription(db, actor, "webhook", webhook_id).await?;
    let now = now_ms();
    let changed = Sql::new(
        "UPDATE deliveries SET status = ?, next_attempt_at = ?, updated_at = ? \
         WHERE id = ? AND subscription_id = ? AND org_id = ?",
    )
    .arg(DeliveryStatus::Pending)
    .arg(now)
    .arg(now)
    .arg(delivery_id)
    .arg(webhook_id)
    .arg(actor.org_id())
    .execute(db)
    .await?;
    if changed == 0 {
        return Err(Error::NotFound("delivery"));
    }
    let row = Sql::new("SELECT * FROM deliveries WHERE id = ?")
        .arg(delivery_id)
        .fetch_one(db)
        .await?;
    let mut delivery = delivery_from_row(&row)?;
    delivery.attempts = attempts(db, delivery_id).await?;
    Ok(delivery)
}

/// Records the dispatcher's delivery of `event` to a subscription, in the dispatcher's
/// transaction, with `status` pending (its job is queued) or sending (handed to this process's
/// fast lane, claimed already). Returns its id, or `None` when the event was already delivered
/// to that subscription (a replayed batch).
pub async fn create(
    tx: &mut Tx,
    event: &Event,
    subscription_id: &str,
    status: DeliveryStatus,
) -> Result<Option<String>> {
    let id = ids::new_id("dlv");
    let now = now_ms();
    let inserted = Sql::new(
        "INSERT INTO deliveries (id, org_id, subscription_id, event_id, event_seq, event_type, status, \
         attempts, next_attempt_at, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?) \
         ON CONFLICT (subscription_id, event_id) DO NOTHING",
    )
    .arg(&id)
    .arg(&event.organization_id)
    .arg(subscription_id)
    .arg(&event.id)
    .arg(event.seq)
    .arg(&event.kind)
    .arg(status)
    .arg(now)
    .arg(now)
    .arg(now)
    .execute(&mut *tx)
    .await?;
    Ok((inserted == 1).then_some(id))
}

/// A delivery's status and when it is due, as a queued job reads them.
#[derive(Debug, Clone, Copy)]
pub struct DueState {
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<Millis>,
}

/// The delivery's [`DueState`]; `None` when it does not exist.
pub async fn due_state(db: &Db, delivery_id: &str) -> Result<Option<DueState>> {
    let Some(state) = Sql::new("SELECT status, next_attempt_at FROM deliveries WHERE id = ?")
        .arg(delivery_id)
        .fetch_optional(db)
        .await?
    else {
        return Ok(None);
    };
    Ok(Some(DueState {
        status: DeliveryStatus::parse(&row::get_str(&state, "status")?)?,
        next_attempt_at: row::get_opt_i64(&state, "next_attempt_at")?,
    }))
}

/// A delivery claimed for an attempt.
#[derive(Debug, Clone)]
pub struct Claimed {
    /// Attempts made before this one.
    pub attempts: i64,
    pub subscription_id: String,
    pub event_id: String,
}

/// Claims a delivery that awaits an attempt and is due (or nearly: within 10 ms), moving it to
/// sending. Whoever else tries (a duplicate job) gets `None`.
pub async fn claim(db: &Db, delivery_id: &str) -> Result<Option<Claimed>> {
    let now = now_ms();
    let Some(row) = Sql::new(
        "UPDATE deliveries SET status = ?, updated_at = ? WHERE id = ? AND status IN (?, ?) \
         AND (next_attempt_at IS NULL OR next_attempt_at <= ?) RETURNING attempts, subscription_id, event_id",
    )
    .arg(DeliveryStatus::Sending)
    .arg(now)
    .arg(delivery_id)
    .arg(DeliveryStatus::Pending)
    .arg(DeliveryStatus::Failed)
    .arg(now + 10)
    .fetch_optional(db)
    .await?
    else {
        return Ok(None);
    };
    Ok(Some(Claimed {
        attempts: row::get_i64(&row, "attempts")?,
        subscription_id: row::get_str(&row, "subscription_id")?,
        event_id: row::get_str(&row, "event_id")?,
    }))
}

/// Gives a claimed delivery up without an attempt (its subscription or event is gone): dead,
/// with `reason` as its last error.
pub async fn give_up(db: &Db, delivery_id: &str, reason: &str) -> Result<()> {
    let now = now_ms();
    Sql::new("UPDATE deliveries SET status = ?, next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?")
        .arg(DeliveryStatus::Dead)
        .arg(None::<i64>)
        .arg(reason)
        .arg(now)
        .arg(delivery_id)
        .execute(db)
        .await
        .map(drop)
}

/// An attempt's log entry and the delivery's state after it.
#[derive(Debug, Clone)]
pub struct AttemptRecord {
    pub delivery_id: String,
    /// 1 for the first attempt.
    pub number: i64,
    /// The delivery's status after the attempt.
    pub status: DeliveryStatus,
    /// When it is retried (a failed delivery).
    pub next_attempt_at: Option<Millis>,
    pub started_at: Millis,
    pub duration_ms: i64,
    pub status_code: Option<i64>,
    pub excerpt: Option<String>,
    pub error: Option<String>,
}

/// Logs attempts and moves their deliveries on, all in one transaction (a group commit).
pub async fn record_attempts(db: &Db, records: &[AttemptRecord]) -> Result<()> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    for r in records {
        Sql::new(
            "INSERT INTO delivery_attempts (id, delivery_id, number, started_at, duration_ms, status_code, \
             response_excerpt, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .arg(ids::new_id("att"))
        .arg(&r.delivery_id)
        .arg(r.number)
        .arg(r.started_at)
        .arg(r.duration_ms)
        .arg(r.status_code)
        .arg(r.excerpt.clone())
        .arg(r.error.clone())
        .execute(&mut tx)
        .await?;
        Sql::new(
            "UPDATE deliveries SET status = ?, attempts = ?, next_attempt_at = ?, last_status_code = ?, \
             last_error = ?, updated_at = ? WHERE id = ?",
        )
        .arg(r.status)
        .arg(r.number)
        .arg(r.next_attempt_at)
        .arg(r.status_code)
        .arg(r.error.clone())
        .arg(now)
        .arg(&r.delivery_id)
        .execute(&mut tx)
        .await?;
    }
    tx.commit().await
}

/// Moves the failed deliveries whose retry is due back to pending, so their jobs can be
/// queued. Only one process takes a given retry. Returns the ids taken (at most 1000).
pub async fn take_due_retries(db: &Db) -> Result<Vec<String>> {
    let now = now_ms();
    let rows =
        Sql::new("SELECT id FROM deliveries WHERE status = ? AND next_attempt_at <= ? LIMIT 1000")
            .arg(DeliveryStatus::Failed)
            .arg(now)
            .fetch_all(db)
            .await?;
    let mut taken = Vec::new();
    for r in &rows {
        let id = row::get_str(r, "id")?;
        let mine = Sql::new(
            "UPDATE deliveries SET status = ?, updated_at = ? WHERE id = ? AND status = ?",
        )
        .arg(DeliveryStatus::Pending)
        .arg(now)
        .arg(&id)
        .arg(DeliveryStatus::Failed)
        .execute(db)
        .await?;
        if mine == 1 {
            taken.push(id);
        }
    }
    Ok(taken)
}

/// Makes due again the deliveries whose job was lost (pending for over `grace_ms`: a crash
/// between a commit and the queue) or whose attempt was cut short (a crash while sending), so
/// their jobs can be queued again. Returns their ids (at most 1000).
pub async fn take_stalled(db: &Db, grace_ms: i64) -> Result<Vec<String>> {
    let now = now_ms();
    let rows = Sql::new(
        "SELECT id FROM deliveries WHERE (status = ? AND next_attempt_at < ?) \
         OR (status = ? AND updated_at < ?) LIMIT 1000",
    )
    .arg(DeliveryStatus::Pending)
    .arg(now - grace_ms)
    .arg(DeliveryStatus::Sending)
    // An attempt times out after 15 s: one still "sending" after 20 s was cut short.
    .arg(now - 20_000)
    .fetch_all(db)
    .await?;
    let mut taken = Vec::new();
    for r in &rows {
        let id = row::get_str(r, "id")?;
        Sql::new(
            "UPDATE deliveries SET status = ?, next_attempt_at = ?, updated_at = ? WHERE id = ?",
        )
        .arg(DeliveryStatus::Pending)
        .arg(now)
        .arg(now)
        .arg(&id)
        .execute(db)
        .await?;
        taken.push(id);
    }
    Ok(taken)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_stored_and_shown_as_their_names() {
        for status in DeliveryStatus::ALL {
            assert_eq!(DeliveryStatus::parse(status.as_str()).unwrap(), status);
            assert_eq!(
                serde_json::to_value(status).unwrap(),
                serde_json::json!(status.as_str())
            );
        }
        let names: Vec<&str> = DeliveryStatus::ALL.iter().map(|s| s.as_str()).collect();
        assert_eq!(names, ["pending", "sending", "succeeded", "failed", "dead"]);
        assert!(DeliveryStatus::parse("gone").is_err());
        let waiting: Vec<_> = DeliveryStatus::ALL
            .into_iter()
            .filter(|s| s.awaits_attempt())
            .collect();
        assert_eq!(waiting, [DeliveryStatus::Pending, DeliveryStatus::Failed]);
    }
}
