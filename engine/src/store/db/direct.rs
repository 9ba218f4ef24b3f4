//! Connections lent without sqlx's pool, for single statements (a read, a `RETURNING` write)
//! and held by the group committer.
//!
//! sqlx's pool tests a connection before lending it (`test_before_acquire`) and always again
//! when it comes back (a ping on release that cannot be turned off). On SQLite each test is a
//! hand-off to the connection's thread and back, on Postgres a round trip to the server: two
//! of every three hand-offs a statement cost. A connection here is lent as it is; one that saw
//! an error of the connection (not of its statement), or whose statement was cut off half way,
//! is closed instead of being lent again. One that has been idle for a while is tested first
//! (on Postgres: the server may have closed it, or restarted), so a statement does not fail for
//! a connection that died while nobody used it. When one lent connection is found dead, the
//! idle ones are all tested before their next use: a server restart ends them together.

use std::ops::{Deref, DerefMut};
use std::time::{Duration, Instant};

use sqlx::any::AnyConnectOptions;
use sqlx::{AnyConnection, ConnectOptions, Connection, Executor};
use tokio::sync::{Semaphore, SemaphorePermit};

use super::Backend;
use crate::error::Result;

/// How long a statement waits for a free connection before it fails (as the pool's).
const LEND_TIMEOUT: Duration = Duration::from_secs(10);

/// A Postgres connection idle for longer than this is tested with a round trip before use.
pub(super) const IDLE_CHECK: Duration = Duration::from_secs(1);

pub(super) struct Direct {
    options: AnyConnectOptions,
    backend: Backend,
    idle: std::sync::Mutex<Vec<(AnyConnection, Instant)>>,
    permits: Semaphore,
}

impl Direct {
    /// At most `size` connections, opened when first needed and kept.
    pub(super) fn new(options: AnyConnectOptions, backend: Backend, size: usize) -> Self {
        Self {
            options,
            backend,
            idle: std::sync::Mutex::new(Vec::with_capacity(size)),
            permits: Semaphore::new(size),
        }
    }

    /// A connection for one statement: an idle one, or a new one while fewer than the limit
    /// are open.
    pub(super) async fn lend(&self) -> Result<Lease<'_>> {
        let permit = tokio::time::timeout(LEND_TIMEOUT, self.permits.acquire())
            .await
            .map_err(|_| sqlx::Error::PoolTimedOut)?
            .map_err(|_| sqlx::Error::PoolClosed)?;
        let idle = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let conn = match idle {
            Some((conn, since)) => match alive(conn, self.backend, since).await {
                Some(conn) => conn,
                None => self.open().await?,
            },
            None => self.open().await?,
        };
        Ok(Lease {
            conn: Some(conn),
            home: self,
            outcome: Outcome::CutOff,
            _permit: permit,
        })
    }

    /// Has every idle connection tested before its next use, as if it had been idle for long.
    fn suspect_idle(&self) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        match Instant::now().checked_sub(IDLE_CHECK * 2) {
            Some(long_ago) => idle.iter_mut().for_each(|(_, since)| *since = long_ago),
            // A clock too young to go back that far: close them instead.
            None => idle.clear(),
        }
    }

    /// A new connection with this process's settings (SQLite's pragmas).
    pub(super) async fn open(&self) -> Result<AnyConnection> {
        open(&self.options, self.backend).await
    }
}

/// Opens a connection; on SQLite with the settings every connection of this process has.
pub(super) async fn open(options: &AnyConnectOptions, backend: Backend) -> Result<AnyConnection> {
    let mut conn = options.connect().await?;
    if backend == Backend::Sqlite {
        conn.execute(super::SQLITE_PRAGMAS).await?;
    }
    Ok(conn)
}

/// `conn`, if it still answers: tested only when it has been idle on Postgres since `since`.
pub(super) async fn alive(
    mut conn: AnyConnection,
    backend: Backend,
    since: Instant,
) -> Option<AnyConnection> {
    if backend == Backend::Sqlite || since.elapsed() <= IDLE_CHECK {
        return Some(conn);
    }
    conn.ping().await.ok().map(|()| conn)
}

/// Whether a connection is fit for its next statement after this one failed with `error`:
/// the database refused the statement, or its rows did not decode, but the connection itself
/// answered.
pub(super) fn survives(error: &sqlx::Error) -> bool {
    if let sqlx::Error::Database(e) = error {
        // Postgres ends the session with a fatal error (an administrator's command, a
        // shutdown): the connection is gone though the server answered.
        return e
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .is_none_or(|pg| {
                !matches!(
                    pg.severity(),
                    sqlx::postgres::PgSeverity::Fatal | sqlx::postgres::PgSeverity::Panic
                )
            });
    }
    matches!(
        error,
        sqlx::Error::RowNotFound
            | sqlx::Error::ColumnDecode { .. }
            | sqlx::Error::ColumnNotFound(_)
            | sqlx::Error::ColumnIndexOutOfBounds { .. }
            | sqlx::Error::Decode(_)
            | sqlx::Error::Encode(_)
            | sqlx::Error::TypeNotFound { .. }
    )
}

/// A lent connection. It goes back to the idle ones when dropped, if its statement ended
/// (see [`Lease::settle`]); otherwise it is closed.
pub struct Lease<'a> {
    conn: Option<AnyConnection>,
    home: &'a Direct,
    outcome: Outcome,
    _permit: SemaphorePermit<'a>,
}

/// How a lent connection's statement ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// It answered (rows, or a refusal of the statement): the connection is lent again.
    Answered,
    /// Dropped before its answer (a timeout, a cancelled request): the connection is closed.
    CutOff,
    /// The connection failed: closed, and the idle ones are suspect.
    Lost,
}

impl Lease<'_> {
    /// Records how the statement ended: the connection is lent again unless it failed.
    pub(super) fn settle<T>(&mut self, outcome: &std::result::Result<T, sqlx::Error>) {
        self.outcome = match outcome {
            Ok(_) => Outcome::Answered,
            Err(e) if survives(e) => Outcome::Answered,
            Err(_) => Outcome::Lost,
        };
    }
}

impl Deref for Lease<'_> {
    type Target = AnyConnection;
    fn deref(&self) -> &AnyConnection {
        self.conn
            .as_ref()
            .expect("a lease holds its connection until dropped")
    }
}

impl DerefMut for Lease<'_> {
    fn deref_mut(&mut self) -> &mut AnyConnection {
        self.conn
            .as_mut()
            .expect("a lease holds its connection until dropped")
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        match self.outcome {
            Outcome::Answered => self
                .home
                .idle
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push((conn, Instant::now())),
            // A connection not put back closes as it drops (SQLite: its thread ends; Postgres:
            // the server sees the socket close).
            Outcome::CutOff => drop(conn),
            Outcome::Lost => {
                drop(conn);
                self.home.suspect_idle();
            }
        }
    }
}
