//! The lane's backlog: the runs handed to this process's workers and not started yet, oldest
//! first. Inbound webhook calls read it before they start a run:
//!
//! - while fewer runs wait than [`Backlog::room`], a call is accepted at once;
//! - beyond that, its answer waits (at most [`MAX_HOLD`]) for a run to start, so that a sender
//!   that waits for its answers is paced to the speed runs are done at instead of piling up
//!   work, and the call is then accepted;
//! - when the oldest waiting run has waited longer than the operator's limit
//!   (`TIMIX_INBOUND_BACKLOG`, 5 s by default), the call is refused with 503 and `Retry-After`
//!   before anything is written, so nothing accepted is ever dropped.
//!
//! The age of the oldest waiting run is the time work actually waits, whatever the runs do
//! (fast steps, slow targets, stuck workers), so no estimate of their speed is needed.
//!
//! A process that runs no workers (`--role api`) has no lane: its runs wait in the database for
//! the worker processes. [`SharedBacklog`] refuses its calls by the same rule, reading the age
//! of the oldest queued run from the database at most every [`SHARED_READ_EVERY`]; it holds no
//! call (no start reaches it to wake one).

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use timix_engine::automation::runs;
use timix_engine::error::Result;
use timix_engine::store::db::Db;

/// The longest an inbound call's answer waits for room.
pub const MAX_HOLD: Duration = Duration::from_secs(1);

/// What an inbound call may do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Now,
    /// Refused: the backlog is past the limit; the sender should retry after this long.
    Refused {
        retry_after: Duration,
    },
}

#[derive(Debug)]
pub struct Backlog {
    /// When each run waiting to start was handed over, oldest first.
    waiting: Mutex<VecDeque<Instant>>,
    /// Runs that may wait before calls are held.
    room: usize,
    /// The oldest wait accepted; `None` never refuses.
    limit: Option<Duration>,
    /// Signalled once whenever a run starts.
    started: tokio::sync::Notify,
    refused: AtomicU64,
    held: AtomicU64,
}

impl Backlog {
    pub fn new(room: usize, limit: Option<Duration>) -> Self {
        Backlog {
            waiting: Mutex::new(VecDeque::new()),
            room: room.max(1),
            limit: limit.filter(|l| !l.is_zero()),
            started: tokio::sync::Notify::new(),
            refused: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Instant>> {
        self.waiting.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A run handed over to wait for a worker.
    pub fn entered(&self) {
        self.lock().push_back(Instant::now());
    }

    /// The oldest waiting run got a worker: one held call may take its place (waking them all
    /// would have every held call look at once for the one place).
    pub fn started(&self) {
        self.lock().pop_front();
        self.started.notify_one();
    }

    /// Runs waiting to start.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How long the oldest waiting run has waited (zero when none waits).
    pub fn oldest_wait(&self) -> Duration {
        self.lock().front().map_or(Duration::ZERO, Instant::elapsed)
    }

    /// Calls refused, and calls whose answer waited for room, since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    pub fn held(&self) -> u64 {
        self.held.load(Ordering::Relaxed)
    }

    /// Whether an inbound call may start a run now; see the module docs.
    pub async fn admit(&self) -> Admit {
        let deadline = tokio::time::Instant::now() + MAX_HOLD;
        // Whether this call's answer has waited for room.
        let mut waited = false;
        loop {
            // A start between the look and the wait leaves a permit: it is not missed.
            let started = self.started.notified();
            let (waiting, oldest) = {
                let waiting = self.lock();
                (waiting.len(), waiting.front().map(Instant::elapsed))
            };
            if let (Some(limit), Some(oldest)) = (self.limit, oldest)
                && waiting >= self.room
                && oldest > limit
            {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return refused(oldest);
            }
            // Room, or held long enough without passing the limit: it waits its turn.
            if waiting < self.room || tokio::time::Instant::now() >= deadline {
                if waited {
                    self.held.fetch_add(1, Ordering::Relaxed);
                }
                return Admit::Now;
            }
            waited = true;
            let _ = tokio::time::timeout_at(deadline, started).await;
        }
    }
}

/// A refusal: the wait the oldest run had is what a retry would meet now.
fn refused(oldest: Duration) -> Admit {
    Admit::Refused {
        retry_after: Duration::from_secs(oldest.as_secs().clamp(1, 60)),
    }
}

/// How old the shared backlog's reading may be when a call is admitted by it.
pub const SHARED_READ_EVERY: Duration = Duration::from_millis(100);

/// The backlog of a process without workers: the queued runs in the database, waiting for the
/// worker processes. See the module docs.
#[derive(Debug)]
pub struct SharedBacklog {
    /// The oldest wait accepted; `None` never refuses.
    limit: Option<Duration>,
    /// The last reading: when it was taken, and how long the oldest queued run had waited then.
    reading: Mutex<Option<(Instant, Duration)>>,
    /// Taken by the one call that reads the database again; the others go by the last reading.
    reader: tokio::sync::Mutex<()>,
    refused: AtomicU64,
}

impl SharedBacklog {
    pub fn new(limit: Option<Duration>) -> Self {
        SharedBacklog {
            limit: limit.filter(|l| !l.is_zero()),
            reading: Mutex::new(None),
            reader: tokio::sync::Mutex::new(()),
            refused: AtomicU64::new(0),
        }
    }

    fn last_reading(&self) -> Option<(Instant, Duration)> {
        *self.reading.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long the oldest queued run has waited: the last reading, aged since it was taken,
    /// or a new one when it is older than [`SHARED_READ_EVERY`].
    async fn oldest_wait(&self, db: &Db) -> Result<Duration> {
        let aged = |(at, oldest): (Instant, Duration)| {
            if oldest.is_zero() {
                oldest
            } else {
                oldest + at.elapsed()
            }
        };
        let last = self.last_reading();
        if let Some(last) = last
            && last.0.elapsed() < SHARED_READ_EVERY
        {
            return Ok(aged(last));
        }
        // One call reads; those arriving meanwhile go by the last reading, if there is one.
        let _reader = match (self.reader.try_lock(), last) {
            (Ok(reader), _) => reader,
            (Err(_), Some(last)) => return Ok(aged(last)),
            (Err(_), None) => self.reader.lock().await,
        };
        if let Some(last) = self.last_reading()
            && last.0.elapsed() < SHARED_READ_EVERY
        {
            return Ok(aged(last));
        }
        let oldest = runs::longest_wait(db).await?;
        *self.reading.lock().unwrap_or_else(|e| e.into_inner()) = Some((Instant::now(), oldest));
        Ok(oldest)
    }

    /// Whether an inbound call may start a run now: refused when the oldest queued run has
    /// waited past the limit.
    pub async fn admit(&self, db: &Db) -> Result<Admit> {
        let Some(limit) = self.limit else {
            return Ok(Admit::Now);
        };
        let oldest = self.oldest_wait(db).await?;
        if oldest <= limit {
            return Ok(Admit::Now);
        }
        self.refused.fetch_add(1, Ordering::Relaxed);
        Ok(refused(oldest))
    }

    /// Calls refused since the start.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn calls_are_accepted_held_and_refused_by_the_oldest_wait() {
        let backlog = std::sync::Arc::new(Backlog::new(2, Some(Duration::from_millis(300))));
        assert_eq!(backlog.admit().await, Admit::Now);
        backlog.entered();
        backlog.entered();
        // Full: the call waits for a start, then goes in.
        let held = tokio::spawn({
            let backlog = backlog.clone();
            async move { backlog.admit().await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!held.is_finished(), "held while no run starts");
        backlog.started();
        assert_eq!(held.await.unwrap(), Admit::Now);
        assert_eq!(backlog.held(), 1);
        // Past the limit: refused at once, with the wait as Retry-After (at least a second).
        backlog.entered();
        tokio::time::sleep(Duration::from_millis(350)).await;
        assert_eq!(
            backlog.admit().await,
            Admit::Refused {
                retry_after: Duration::from_secs(1)
            }
        );
        assert_eq!(backlog.refused(), 1);
        // Drained: accepted again.
        backlog.started();
        backlog.started();
        assert!(backlog.is_empty());
        assert_eq!(backlog.admit().await, Admit::Now);
    }

    #[tokio::test]
    async fn without_a_limit_nothing_is_refused() {
        let backlog = Backlog::new(1, None);
        backlog.entered();
        tokio::time::sleep(Duration::from_millis(20)).await;
        // Held for at most MAX_HOLD, then accepted.
        let started = Instant::now();
        assert_eq!(backlog.admit().await, Admit::Now);
        assert!(started.elapsed() >= MAX_HOLD);
        assert_eq!(backlog.refused(), 0);
    }
}
