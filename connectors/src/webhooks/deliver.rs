//! Delivering events to webhooks and REST hooks: one signed POST per attempt, every attempt
//! logged, failures retried on the configured schedule (with jitter, or when the receiver's
//! `Retry-After` says), a `410 Gone` ending the subscription, and a delivery dead after the last
//! attempt until it is retried by hand.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use timix_engine::automation::connections::Vault;
use timix_engine::automation::webhooks::deliveries::{self, AttemptRecord, DeliveryStatus};
use timix_engine::automation::webhooks::{self, Subscription, subscriptions};
use timix_engine::error::{Error, Result};
use timix_engine::store::clock::now_ms;
use timix_engine::store::db::Db;
use timix_engine::store::events::{self, Event};
use timix_engine::store::jobs::{Job, JobHandler, Queues};

use super::sign::signature_header;
use crate::outbound::{Outbound, refused_target};

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
    delivery_id: &'a str,
    /// 1 for the first attempt.
    number: i64,
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
        let Some(claimed) = deliveries::claim(&self.db, delivery_id).await? else {
            return Ok(None);
        };
        let subscription = webhooks::subscription(&self.db, &claimed.subscription_id)
            .await?
            .filter(|s| s.is_enabled);
        let Some(subscription) = subscription else {
            deliveries::give_up(
                &self.db,
                delivery_id,
                "the subscription was removed or disabled",
            )
            .await?;
            return Ok(None);
        };
        let Some(event) = events::by_id(&self.db, &claimed.event_id).await? else {
            deliveries::give_up(&self.db, delivery_id, "the event no longer exists").await?;
            return Ok(None);
        };
        Ok(Some((claimed.attempts, Arc::new(event), subscription)))
    }

    /// Whether a queued job should attempt its delivery now: a duplicate job (the delivery is
    /// done, or being sent) ends here with a read, not a write. Waits if it came a little early.
    async fn is_due(&self, delivery_id: &str) -> Result<bool> {
        let Some(state) = deliveries::due_state(&self.db, delivery_id).await? else {
            return Ok(false);
        };
        if !state.status.awaits_attempt() {
            return Ok(false);
        }
        // The queue schedules to the second: a job may come a little early. Wait for its time.
        if let Some(early) = state
            .next_attempt_at
            .map(|t| t - now_ms())
            .filter(|ms| *ms > 0)
        {
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
            delivery_id,
            number,
            started_at,
            duration_ms,
            result: &result,
        };

        let succeeded = result.status.is_some_and(|s| (200..300).contains(&s));
        if succeeded {
            subscriptions::mark_recovered(&self.db, &subscription).await?;
            return self
                .finish_attempt(&attempt, DeliveryStatus::Succeeded, None)
                .await;
        }
        if result.status == Some(410) {
            self.end_subscription(&subscription, "the endpoint answered 410 Gone")
                .await?;
            return self
                .finish_attempt(&attempt, DeliveryStatus::Dead, None)
                .await;
        }
        let failing_since =
            subscriptions::mark_failing(&self.db, &subscription, started_at).await?;
        if started_at - failing_since >= DISABLE_AFTER_MS && subscription.kind == "webhook" {
            self.end_subscription(&subscription, "every delivery failed for five days")
                .await?;
            return self
                .finish_attempt(&attempt, DeliveryStatus::Dead, None)
                .await;
        }
        let Some(planned) = self.schedule.get(attempts_before as usize).copied() else {
            return self
                .finish_attempt(&attempt, DeliveryStatus::Dead, None)
                .await;
        };
        let delay = match result.retry_after {
            Some(wanted) => wanted.min(MAX_RETRY_AFTER),
            None => jitter(planned),
        };
        // The retry is queued when due by the sweeper.
        self.finish_attempt(&attempt, DeliveryStatus::Failed, Some(delay))
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
        attempt: &Attempt<'_>,
        status: DeliveryStatus,
        retry_in: Option<Duration>,
    ) -> Result<()> {
        let result = attempt.result;
        self.log
            .write(AttemptRecord {
                delivery_id: attempt.delivery_id.to_owned(),
                number: attempt.number,
                status,
                next_attempt_at: retry_in.map(|d| now_ms() + d.as_millis() as i64),
                started_at: attempt.started_at,
                duration_ms: attempt.duration_ms,
                status_code: result.status.map(i64::from),
                excerpt: result.excerpt.clone(),
                error: result.error.clone(),
            })
            .await
    }

    /// A REST hook is removed; a webhook is disabled, with a `webhook_endpoint.disabled` event.
    async fn end_subscription(&self, subscription: &Subscription, reason: &str) -> Result<()> {
        subscriptions::end_subscription(&self.db, subscription, reason).await?;
        tracing::info!(subscription_id = %subscription.id, %reason, "Subscription ended.");
        Ok(())
    }
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
                let (records, replies): (Vec<_>, Vec<_>) = batch.into_iter().unzip();
                let written = deliveries::record_attempts(&db, &records)
                    .await
                    .map_err(|e| e.to_string());
                for reply in replies {
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

/// Attempts the deliveries handed to this process's fast lane (by the dispatcher and the
/// sweeper), at most `concurrency` at once, until every sender is gone. Each also has a durable
/// job: an attempt that cannot run here is made by the job.
pub async fn serve_fast_lane(
    deliverer: Arc<Deliverer>,
    mut lane: tokio::sync::mpsc::UnboundedReceiver<FastAttempt>,
    concurrency: usize,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency));
    while let Some(attempt) = lane.recv().await {
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let deliverer = deliverer.clone();
        tokio::spawn(async move {
            if let Err(error) = deliverer.attempt_now(attempt).await {
                tracing::warn!(%error, "A delivery attempt failed to run; its job will retry it.");
            }
            drop(slot);
        });
    }
}

/// ±20% around `delay`, so that retries of many deliveries spread out.
fn jitter(delay: Duration) -> Duration {
    delay.mul_f64(rand::random_range(0.8..1.2))
}
