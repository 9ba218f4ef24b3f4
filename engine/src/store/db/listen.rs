//! Hearing other processes' events: on Postgres the event log's writers `pg_notify` the
//! `timix_events` channel on commit, and a reader `LISTEN`s to it instead of polling.

use sqlx::postgres::PgListener;

use super::{Backend, Db};
use crate::error::Result;

/// The channel the event log's writers notify (see `events::begin_write`).
const EVENTS_CHANNEL: &str = "timix_events";

/// Wakes when another process commits events. On SQLite it never wakes: other processes do not
/// write there, and this process's own events come through [`Db::watch_events`].
pub struct EventListener {
    listener: Option<PgListener>,
}

impl Db {
    /// Listens for events committed by other processes; `url` is this database's URL.
    pub async fn listen_events(&self, url: &str) -> Result<EventListener> {
        if self.backend != Backend::Postgres {
            return Ok(EventListener { listener: None });
        }
        let mut listener = PgListener::connect(url).await?;
        listener.listen(EVENTS_CHANNEL).await?;
        Ok(EventListener {
            listener: Some(listener),
        })
    }
}

impl EventListener {
    /// Waits for the next notification. A broken connection ends the wait too (the listener
    /// reconnects on the next call): either way the caller reads the log again.
    pub async fn notified(&mut self) {
        match self.listener.as_mut() {
            Some(listener) => {
                let _ = listener.recv().await;
            }
            None => std::future::pending().await,
        }
    }
}
