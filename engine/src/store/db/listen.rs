//! Hearing other processes' work: on Postgres writers `pg_notify` a channel on commit, and a
//! reader `LISTEN`s to it instead of polling. The event log's writers notify `timix_events`;
//! a process that queues runs for other processes' workers notifies `timix_runs`
//! (`runs::offer`).

use sqlx::postgres::PgListener;

use super::Db;
use crate::error::Result;

/// The channel the event log's writers notify (see `events::begin_write`).
const EVENTS_CHANNEL: &str = "timix_events";

/// The channel notified when runs are offered to every worker (see `runs::offer`).
pub const RUNS_CHANNEL: &str = "timix_runs";

/// Wakes when another process notifies its channel. On SQLite it never wakes: other processes
/// do not write there, and this process's own work reaches it in the process.
pub struct Listener {
    listener: Option<PgListener>,
}

/// The listener of the event log's channel.
pub type EventListener = Listener;

impl Db {
    /// Listens for events committed by other processes; `url` is this database's URL.
    pub async fn listen_events(&self, url: &str) -> Result<Listener> {
        self.listen(url, EVENTS_CHANNEL).await
    }

    /// Listens for runs other processes offer to every worker.
    pub async fn listen_runs(&self, url: &str) -> Result<Listener> {
        self.listen(url, RUNS_CHANNEL).await
    }

    async fn listen(&self, url: &str, channel: &str) -> Result<Listener> {
        if !self.backend.notifies() {
            return Ok(Listener { listener: None });
        }
        let mut listener = PgListener::connect(url).await?;
        listener.listen(channel).await?;
        Ok(Listener {
            listener: Some(listener),
        })
    }
}

impl Listener {
    /// Waits for the next notification, then takes those that arrived with it (one wake for
    /// a burst). A broken connection ends the wait too, a second later (the listener
    /// reconnects on the next call; a server that is down does not spin its caller): either
    /// way the caller looks again.
    pub async fn notified(&mut self) {
        match self.listener.as_mut() {
            Some(listener) => {
                if listener.recv().await.is_err() {
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    return;
                }
                // Those already arrived are taken without waiting (a zero timeout polls once).
                while let Ok(Ok(_)) =
                    tokio::time::timeout(std::time::Duration::ZERO, listener.recv()).await
                {
                }
            }
            None => std::future::pending().await,
        }
    }
}
