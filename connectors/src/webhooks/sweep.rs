//! The sweeper: queues the retries that are due (every 100 ms) and, every 5 s, the deliveries
//! whose job was lost or whose attempt was cut short by a crash; each is also handed to this
//! process's fast lane to be attempted at once.

use std::time::Duration;

use timix_engine::automation::webhooks::deliveries;
use timix_engine::error::Result;
use timix_engine::store::db::Db;
use timix_engine::store::jobs::Queues;
use tokio::sync::mpsc::UnboundedSender;

use super::deliver::{DeliveryJob, FastAttempt};

/// How often due retries are looked for.
const TICK: Duration = Duration::from_millis(100);
/// Stalled deliveries are looked for every this many ticks (5 s).
const STALLED_EVERY: u64 = 50;
/// A pending delivery without an attempt for this long lost its job.
const STALLED_AFTER_MS: i64 = 30_000;

/// Sweeps until the future is dropped.
pub async fn run(db: Db, queues: Queues, lane: UnboundedSender<FastAttempt>) {
    let hand_over = |ids: Vec<String>| {
        for delivery_id in ids {
            drop(lane.send(FastAttempt {
                delivery_id,
                known: None,
            }));
        }
    };
    let mut tick = tokio::time::interval(TICK);
    for round in 0u64.. {
        tick.tick().await;
        match queue_due_retries(&db, &queues).await {
            Ok(ids) => hand_over(ids),
            Err(error) => tracing::warn!(%error, "Could not queue due retries."),
        }
        if round.is_multiple_of(STALLED_EVERY) {
            match requeue_stalled(&db, &queues, STALLED_AFTER_MS).await {
                Ok(ids) if ids.is_empty() => {}
                Ok(ids) => {
                    tracing::info!(requeued = ids.len(), "Requeued stalled deliveries.");
                    hand_over(ids);
                }
                Err(error) => tracing::warn!(%error, "Could not requeue stalled deliveries."),
            }
        }
    }
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
    let ids = deliveries::take_due_retries(db).await?;
    for id in &ids {
        queue_or_log(queues, id).await;
    }
    Ok(ids)
}

/// Re-queues deliveries whose job was lost (a crash between a commit and the queue) or whose
/// attempt was cut short (a crash while sending). Returns their ids.
pub async fn requeue_stalled(db: &Db, queues: &Queues, grace_ms: i64) -> Result<Vec<String>> {
    let ids = deliveries::take_stalled(db, grace_ms).await?;
    for id in &ids {
        queue_or_log(queues, id).await;
    }
    Ok(ids)
}
