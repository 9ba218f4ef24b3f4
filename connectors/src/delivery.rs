//! Delivering events to webhooks and REST hooks: one signed POST per attempt, every attempt
//! logged, failures retried on the configured schedule (with jitter, or when the receiver's
//! `Retry-After` says), a `410 Gone` ending the subscription, and a delivery dead after the last
//! attempt until it is retried by hand.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use timix_engine::automation::connections::Vault;
use timix_engine::automation::webhooks::{self, Subscription};
use timix_engine::error::{Error, Result};
use timix_engine::store::clock::now_ms;
use timix_engine::store::db::{Db, Sql, row};
use timix_engine::store::events::{self, Event};
use timix_engine::store::ids;
use timix_engine::store::jobs::{Job, JobHandler, Queues};

use crate::outbound::{Outbound, refused_target};
use crate::signing::signature_header;

/// Attempt one delivery (`dlv_…`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeliveryJob {
    pub delivery_id: String,
}

impl Job for DeliveryJob {
    const QUEUE: &'static str = "webhook-deliveries";
}

/// A subscription failing every delivery this long is disabled.
const DISABLE_AFTER_MS: i64 = 5 * 24 * 3600 * 1000;
/// Longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How much of a receiver's answer is kept with the attempt.
const EXCERPT_BYTES: usize = 1024;

/// The body every receiver gets.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Payload<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    occurred_at: &'a str,
    organization_id: &'a str,
    data: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    changed_fields: Option<&'a Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<&'a Value>,
}

pub fn payload(event: &Event) -> Vec<u8> {
    serde_json::to_vec(&Payload {
        id: &event.id,
        kind: &event.kind,
        occurred_at: &event.occurred_at,
        organization_id: &event.organization_id,
        data: &event.data,
        changed_fields: event.changed_fields.as_ref(),
        previous: event.previous.as_ref(),
    })
    .unwrap_or_default()
}

/// Runs delivery jobs.
pub struct Deliverer {
    pub db: Db,
    pub queues: Queues,
    pub outbound: Outbound,
    /// Opens the subscriptions' signing secrets.
    pub vault: Vault,
    /// Delays before the 2nd, 3rd… attempts.
    pub schedule: Vec<Duration>,
    pub log: AttemptLog,
}

/// One attempt, as it is logged.
struct Attempt<'a> {
    started_at: i64,
    duration_ms: i64,
    result: &'a AttemptResult,
}

/// What one attempt came to.
struct AttemptResult {
    status: Option<u16>,
    retry_after: Option<Duration>,
    excerpt: Option<String>,
    error: Option<String>,
}

impl JobHandler<DeliveryJob> for Deliverer {
    async fn perform(&self, job: DeliveryJob) -> Result<()> {
        if !self.is_due(&job.delivery_id).await? {
            return Ok(());
        }
        self.attempt(&job.delivery_id, None).await
    }
}

/// A delivery to attempt at once in this process, with the event and subscription when the
/// caller (the dispatcher) already holds them, which saves reading them again.
pub struct FastAttempt {
    pub delivery_id: String,
    pub known: Option<(Arc<Event>, Subscription)>,
}

impl Deliverer {
    pub async fn attempt_now(&self, fast: FastAttempt) -> Result<()> {
        self.attempt(&fast.delivery_id, fast.known).await
    }

    /// Claims a delivery that is due: whoever else tries (a duplicate job) stops here. Returns
    /// its attempts so far, its event and subscription; `None` when it is not ours to attempt.
    async fn claim(&self, delivery_id: &str) -> Result<Option<(i64, Arc<Event>, Subscription)>> {
        let now = now_ms();
        let Some(row) = Sql::new(
            "UPDATE deliveries SET status = 'sending', updated_at = ? WHERE id = ? AND status IN ('pending', 'failed') \
             AND (next_attempt_at IS NULL OR next_attempt_at <= ?) RETURNING attempts, subscription_id, event_id",
        )
        .arg(now)
        .arg(delivery_id)
        .arg(now + 10)
        .fetch_optional(&self.db)
        .await?
        else {
            return Ok(None);
        };
        let attempts = row::get_i64(&row, "attempts")?;
        let subscription_id = row::get_str(&row, "subscription_id")?;
        let event_id = row::get_str(&row, "event_id")?;
        let subscription = webhooks::subscription(&self.db, &subscription_id)
            .await?
            .filter(|s| s.is_enabled);
        let Some(subscription) = subscription else {
            self.finish(
                delivery_id,
                "dead",
                None,
                Some("the subscription was removed or disabled"),
            )
            .await?;
            return Ok(None);
        };
        let Some(event) = events::by_id(&self.db, &event_id).await? else {
            self.finish(
                delivery_id,
                "dead",
                None,
                Some("the event no longer exists"),
            )
            .await?;
            return Ok(None);
        };
        Ok(Some((attempts, Arc::new(event), subscription)))
    }

    /// Whether a queued job should attempt its delivery now: a duplicate job (the delivery is
    /// done, or being sent) ends here with a read, not a write. Waits if it came a little early.
    async fn is_due(&self, delivery_id: &str) -> Result<bool> {
        let Some(state) = Sql::new("SELECT status, next_attempt_at FROM deliveries WHERE id = ?")
            .arg(delivery_id)
            .fetch_optional(&self.db)
            .await?
        else {
            return Ok(false);
        };
        if !matches!(
            row::get_str(&state, "status")?.as_str(),
            "pending" | "failed"
        ) {
            return Ok(false);
        }
        // The queue schedules to the second: a job may come a little early. Wait for its time.
        let due = row::get_opt_i64(&state, "next_attempt_at")?;
        if let Some(early) = due.map(|t| t - now_ms()).filter(|ms| *ms > 0) {
            if early > 2_000 {
                let job = DeliveryJob {
                    delivery_id: delivery_id.to_owned(),
                };
                self.queues
                    .push(job, Some(Duration::from_millis(early as u64)))
                    .await?;
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(early as u64)).await;
        }
        Ok(true)
    }

    async fn attempt(
        &self,
        delivery_id: &str,
        known: Option<(Arc<Event>, Subscription)>,
    ) -> Result<()> {
        // A delivery handed over by its dispatcher was created claimed ('sending'): first attempt.
        let (attempts_before, event, subscription) = match known {
            Some((event, subscription)) => (0, event, subscription),
            None => match self.claim(delivery_id).await? {
                Some(claimed) => claimed,
                None => return Ok(()),
            },
        };

        let started_at = now_ms();
        let clock = Instant::now();
        let result = self.send(&subscription, &event).await;
        let duration_ms = clock.elapsed().as_millis() as i64;
        let number = attempts_before + 1;
        let attempt = Attempt {
            started_at,
            duration_ms,
            result: &result,
        };

        let succeeded = result.status.is_some_and(|s| (200..300).contains(&s));
        if succeeded {
            if subscription.failing_since.is_some() {
                Sql::new("UPDATE subscriptions SET failing_since = NULL WHERE id = ?")
                    .arg(&subscription.id)
                    .execute(&self.db)
                    .await?;
            }
            return self
                .finish_attempt(delivery_id, number, "succeeded", None, &attempt)
                .await;
        }
        if result.status == Some(410) {
            self.end_subscription(&subscription, "the endpoint answered 410 Gone")
                .await?;
            return self
                .finish_attempt(delivery_id, number, "dead", None, &attempt)
                .await;
        }
        let failing_since = match subscription.failing_since {
            Some(t) => t,
            None => {
                Sql::new("UPDATE subscriptions SET failing_since = ? WHERE id = ?")
                    .arg(started_at)
                    .arg(&subscription.id)
                    .execute(&self.db)
                    .await?;
                started_at
            }
        };
        if started_at - failing_since >= DISABLE_AFTER_MS && subscription.kind == "webhook" {
            self.end_subscription(&subscription, "every delivery failed for five days")
                .await?;
            return self
                .finish_attempt(delivery_id, number, "dead", None, &attempt)
                .await;
        }
        let Some(planned) = self.schedule.get(attempts_before as usize).copied() else {
            return self
                .finish_attempt(delivery_id, number, "dead", None, &attempt)
                .await;
        };
        let delay = match result.retry_after {
            Some(wanted) => wanted.min(MAX_RETRY_AFTER),
            None => jitter(planned),
        };
        // The retry is queued when due by `queue_due_retries`.
        self.finish_attempt(delivery_id, number, "failed", Some(delay), &attempt)
            .await
    }

    async fn send(&self, subscription: &Subscription, event: &Event) -> AttemptResult {
        let failed = |error: String| AttemptResult {
            status: None,
            retry_after: None,
            excerpt: None,
            error: Some(error),
        };
        let url = match self.outbound.check(&subscription.url) {
            Ok(url) => url,
            Err(e) => return failed(e.to_string()),
        };
        let secrets = match subscription.secrets(&self.vault) {
            Ok(secrets) => secrets,
            Err(e) => return failed(format!("the signing secret could not be opened: {e}")),
        };
        let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
        let body = payload(event);
        let timestamp = now_ms() / 1000;
        let request = self
            .outbound
            .client()
            .post(url)
            .header("content-type", "application/json")
            .header("webhook-id", &event.id)
            .header("webhook-timestamp", timestamp.to_string())
            .header(
                "webhook-signature",
                signature_header(&secrets, &event.id, timestamp, &body),
            )
            .body(body);
        match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let retry_after = if status == 429 || status == 503 {
                    response
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok())
                        .map(Duration::from_secs)
                } else {
                    None
                };
                let bytes = response.bytes().await.unwrap_or_default();
                let excerpt =
                    String::from_utf8_lossy(&bytes[..bytes.len().min(EXCERPT_BYTES)]).into_owned();
                AttemptResult {
                    status: Some(status),
                    retry_after,
                    excerpt: Some(excerpt),
                    error: (300..400)
                        .contains(&status)
                        .then(|| "redirects are not followed".to_owned()),
                }
            }
            Err(e) => {
                let reason = refused_target(&e).unwrap_or_else(|| {
                    if e.is_timeout() {
                        "timed out".to_owned()
                    } else {
                        let mut text = e.to_string();
                        let mut source = std::error::Error::source(&e);
                        while let Some(s) = source {
                            text.push_str(": ");
                            text.push_str(&s.to_string());
                            source = s.source();
                        }
                        text
                    }
                });
                failed(reason)
            }
        }
    }

    /// Logs the attempt and moves the delivery on (committed with other attempts' logs).
    async fn finish_attempt(
        &self,
        delivery_id: &str,
        attempts: i64,
        status: &str,
        retry_in: Option<Duration>,
        attempt: &Attempt<'_>,
    ) -> Result<()> {
        let result = attempt.result;
        self.log
            .write(AttemptRecord {
                delivery_id: delivery_id.to_owned(),
                number: attempts,
                status: status.to_owned(),
                next_attempt_at: retry_in.map(|d| now_ms() + d.as_millis() as i64),
                started_at: attempt.started_at,
                duration_ms: attempt.duration_ms,
                status_code: result.status.map(i64::from),
                excerpt: result.excerpt.clone(),
                error: result.error.clone(),
            })
            .await
    }

    async fn finish(
        &self,
        delivery_id: &str,
        status: &str,
        retry_in: Option<Duration>,
        error: Option<&str>,
    ) -> Result<()> {
        let now = now_ms();
        Sql::new("UPDATE deliveries SET status = ?, next_attempt_at = ?, last_error = ?, updated_at = ? WHERE id = ?")
            .arg(status)
            .arg(retry_in.map(|d| now + d.as_millis() as i64))
            .arg(error)
            .arg(now)
            .arg(delivery_id)
            .execute(&self.db)
            .await
            .map(drop)
    }

    /// A REST hook is removed; a webhook is disabled, with a `webhook_endpoint.disabled` event.
    async fn end_subscription(&self, subscription: &Subscription, reason: &str) -> Result<()> {
        let now = now_ms();
        let mut tx = events::begin_write(&self.db).await?;
        if subscription.kind == "hook" {
            Sql::new("UPDATE subscriptions SET deleted_at = ?, updated_at = ? WHERE id = ?")
                .arg(now)
                .arg(now)
                .arg(&subscription.id)
                .execute(&mut tx)
                .await?;
        } else {
            Sql::new("UPDATE subscriptions SET is_enabled = 0, disabled_reason = ?, updated_at = ? WHERE id = ?")
                .arg(reason)
                .arg(now)
                .arg(&subscription.id)
                .execute(&mut tx)
                .await?;
            events::append(
                &mut tx,
                events::NewEvent {
                    org_id: &subscription.org_id,
                    kind: "webhook_endpoint.disabled".into(),
                    resource_id: &subscription.id,
                    data: serde_json::json!({"id": subscription.id, "url": subscription.url, "reason": reason}),
                    changed: None,
                },
            )
            .await?;
        }
        tracing::info!(subscription_id = %subscription.id, %reason, "Subscription ended.");
        tx.commit().await
    }
}

/// An attempt's log entry and the delivery's state after it.
pub struct AttemptRecord {
    delivery_id: String,
    number: i64,
    status: String,
    next_attempt_at: Option<i64>,
    started_at: i64,
    duration_ms: i64,
    status_code: Option<i64>,
    excerpt: Option<String>,
    error: Option<String>,
}

type LogRequest = (
    AttemptRecord,
    tokio::sync::oneshot::Sender<Result<(), String>>,
);

/// Group commit of attempt logs: attempts finishing together are written in one transaction,
/// and each caller returns once its own record is committed.
#[derive(Clone)]
pub struct AttemptLog {
    sender: tokio::sync::mpsc::Sender<LogRequest>,
}

impl AttemptLog {
    /// Starts the writer; it stops when the last handle is dropped.
    pub fn start(db: Db) -> Self {
        let (sender, mut receiver) = tokio::sync::mpsc::channel::<LogRequest>(4096);
        tokio::spawn(async move {
            while let Some(first) = receiver.recv().await {
                let mut batch = vec![first];
                while batch.len() < 512 {
                    match receiver.try_recv() {
                        Ok(next) => batch.push(next),
                        Err(_) => break,
                    }
                }
                let written = write_batch(&db, &batch).await.map_err(|e| e.to_string());
                for (_, reply) in batch {
                    let _ = reply.send(written.clone());
                }
            }
        });
        Self { sender }
    }

    async fn write(&self, record: AttemptRecord) -> Result<()> {
        let stopped = || Error::Internal("the attempt log has stopped".into());
        let (reply, done) = tokio::sync::oneshot::channel();
        self.sender
            .send((record, reply))
            .await
            .map_err(|_| stopped())?;
        done.await.map_err(|_| stopped())?.map_err(Error::Internal)
    }
}

async fn write_batch(db: &Db, batch: &[LogRequest]) -> Result<()> {
    let now = now_ms();
    let mut tx = db.begin().await?;
    for (r, _) in batch {
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
        .arg(r.status.as_str())
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

/// ±20% around `delay`, so that retries of many deliveries spread out.
fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(rand::random_range(0.8..1.2))
}

/// Queues a delivery's job. A job that cannot be queued now (the queue is busy) is found again
/// by the next sweep; the caller also attempts the delivery at once.
async fn queue_or_log(queues: &Queues, delivery_id: &str) {
    let job = DeliveryJob {
        delivery_id: delivery_id.to_owned(),
    };
    if let Err(error) = queues.push(job, None).await {
        tracing::warn!(%error, %delivery_id, "Could not queue a delivery job.");
    }
}

/// Queues the retries that are due. Returns their ids.
pub async fn queue_due_retries(db: &Db, queues: &Queues) -> Result<Vec<String>> {
    let now = now_ms();
    let rows = Sql::new(
        "SELECT id FROM deliveries WHERE status = 'failed' AND next_attempt_at <= ? LIMIT 1000",
    )
    .arg(now)
    .fetch_all(db)
    .await?;
    let mut queued = Vec::new();
    for r in &rows {
        let id = row::get_str(r, "id")?;
        // Only one process queues a given retry.
        let mine = Sql::new("UPDATE deliveries SET status = 'pending', updated_at = ? WHERE id = ? AND status = 'failed'")
            .arg(now)
            .arg(&id)
            .execute(db)
            .await?;
        if mine == 1 {
            queue_or_log(queues, &id).await;
            queued.push(id);
        }
    }
    Ok(queued)
}

/// Re-queues deliveries whose job was lost (a crash between a commit and the queue) or whose
/// attempt was cut short (a crash while sending). Returns their ids.
pub async fn requeue_stalled(db: &Db, queues: &Queues, grace_ms: i64) -> Result<Vec<String>> {
    let now = now_ms();
    let rows = Sql::new(
        "SELECT id FROM deliveries WHERE (status = 'pending' AND next_attempt_at < ?) \
         OR (status = 'sending' AND updated_at < ?) LIMIT 1000",
    )
    .arg(now - grace_ms)
    // An attempt times out after 15 s: one still "sending" after 20 s was cut short.
    .arg(now - 20_000)
    .fetch_all(db)
    .await?;
    let mut requeued = Vec::new();
    for r in &rows {
        let id = row::get_str(r, "id")?;
        Sql::new("UPDATE deliveries SET status = 'pending', next_attempt_at = ?, updated_at = ? WHERE id = ?")
            .arg(now)
            .arg(now)
            .arg(&id)
            .execute(db)
            .await?;
        queue_or_log(queues, &id).await;
        requeued.push(id);
    }
    Ok(requeued)
}
