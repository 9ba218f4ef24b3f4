//! Storage: one pool over SQLite or Postgres (sqlx `Any`), one set of queries for both.
//!
//! Queries are written with `?` placeholders and translated for Postgres; values go in as text or
//! integers only (instants as Unix milliseconds, money as minor units, flags as 0/1), which both
//! databases and the `Any` driver agree on. The few statements that differ live in [`Backend`].

mod direct;
mod listen;
mod sql;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::any::{AnyConnectOptions, AnyPoolOptions, AnyRow};
use sqlx::{AnyConnection, AnyPool, Connection, Executor, Transaction};
use tokio::sync::watch;

pub use direct::Lease;
pub use listen::{EventListener, Listener, RUNS_CHANNEL};
pub use sql::{Arg, Sql};

use crate::error::{Error, Result};

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("../migrations/postgres");

/// Every SQLite connection's settings. WAL lets readers run beside the one writer; a writer
/// waits for the lock instead of failing at once (CLI commands beside a server); a commit
/// reaches the WAL file before it is answered and the file is synced at checkpoints (see
/// docs/operations.md, "What a commit survives").
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA busy_timeout = 10000; \
                              PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn from_url(url: &str) -> Option<Self> {
        if url.starts_with("sqlite:") {
            Some(Self::Sqlite)
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Some(Self::Postgres)
        } else {
            None
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Sqlite => "sqlite",
            Self::Postgres => "postgres",
        }
    }

    /// Whether other processes hear of this database's commits (`LISTEN`/`NOTIFY`, see
    /// [`listen`]): runs are offered to the worker processes and readers of the event log woken
    /// without polling. SQLite has one process per file, which hears its own work in-process.
    pub fn notifies(self) -> bool {
        self == Self::Postgres
    }
}

/// The database handle every service works through. Cheap to clone.
#[derive(Clone)]
pub struct Db {
    /// Transactions and migrations.
    pool: AnyPool,
    /// Single statements (see [`direct`]).
    direct: Arc<direct::Direct>,
    backend: Backend,
    /// Bumped after every commit that appended events, so readers of the log need not poll.
    events_appended: Arc<watch::Sender<u64>>,
    /// SQLite has one writer at a time; its own busy-wait is unfair under load (a writer can
    /// starve past the timeout), so this process's write transactions queue here, in order.
    write_gate: Option<Arc<tokio::sync::Mutex<()>>>,
    /// Single statements waiting to be committed together (see [`Db::write_count`]).
    group: tokio::sync::mpsc::UnboundedSender<Grouped>,
}

/// A statement waiting for the next group commit, and who waits for its outcome.
struct Grouped {
    sql: Sql,
    reply: tokio::sync::oneshot::Sender<Result<u64>>,
}

/// Most statements one group commit takes.
const GROUP_LIMIT: usize = 256;

/// Commits the statements sent to [`Db::write_count`] in groups: each takes the statements
/// waiting when the previous commit ended, in one transaction. A statement that fails fails
/// alone: the transaction is rolled back and the others are run again without it (failures are
/// rare: the common path costs nothing extra). A commit that fails fails them all, and none of
/// them is committed.
async fn commit_groups(db: Db, mut queue: tokio::sync::mpsc::UnboundedReceiver<Grouped>) {
    let mut held = HeldConnection::default();
    while let Some(first) = queue.recv().await {
        let mut group = vec![first];
        while group.len() < GROUP_LIMIT {
            match queue.try_recv() {
                Ok(next) => group.push(next),
                Err(_) => break,
            }
        }
        let mut deadlocks = 0;
        while !group.is_empty() {
            let conn = match held.get(&db).await {
                Ok(conn) => conn,
                Err(error) => {
                    fail_all(&mut group, &error);
                    continue;
                }
            };
            let outcome = run_group(&db, conn, &group).await;
            if outcome.as_ref().is_err_and(GroupFailure::ends_connection) {
                held.forget();
            }
            match outcome {
                Ok(counts) => {
                    for (grouped, count) in group.drain(..).zip(counts) {
                        let _ = grouped.reply.send(Ok(count));
                    }
                }
                // Postgres: another process's transaction locked rows this group holds in the
                // other order, and the server chose ours. The rollback let the other go on; no
                // statement is at fault, so the group runs again as it was.
                Err(GroupFailure::Statement(_, error))
                    if is_deadlock(&error) && deadlocks < MAX_DEADLOCK_RETRIES =>
                {
                    deadlocks += 1;
                }
                Err(GroupFailure::Statement(at, error)) => {
                    let _ = group.remove(at).reply.send(Err(error));
                }
                Err(GroupFailure::Transaction(error)) => fail_all(&mut group, &error),
            }
        }
    }
}

/// Answers every statement of a group that could not be committed.
fn fail_all(group: &mut Vec<Grouped>, error: &Error) {
    let message = error.to_string();
    for grouped in group.drain(..) {
        let _ = grouped.reply.send(Err(Error::Internal(format!(
            "group commit failed: {message}"
        ))));
    }
}

/// The group committer's own connection and when it last served.
#[derive(Default)]
struct HeldConnection {
    held: Option<(AnyConnection, std::time::Instant)>,
}

impl HeldConnection {
    /// The connection, tested first if it was idle for a while, or a new one.
    async fn get(&mut self, db: &Db) -> Result<&mut AnyConnection> {
        let kept = match self.held.take() {
            Some((conn, since)) => direct::alive(conn, db.backend, since).await,
            None => None,
        };
        let conn = match kept {
            Some(conn) => conn,
            None => db.direct.open().await?,
        };
        Ok(&mut self.held.insert((conn, std::time::Instant::now())).0)
    }

    /// Drops the connection: the next group opens another.
    fn forget(&mut self) {
        self.held = None;
    }
}

/// How many times a group that deadlocked with another transaction runs again.
const MAX_DEADLOCK_RETRIES: u32 = 10;

/// Whether the database ended the statement to break a deadlock (or a serialization
/// conflict): running it again is expected to succeed.
fn is_deadlock(error: &Error) -> bool {
    match error {
        Error::Database(sqlx::Error::Database(e)) => {
            matches!(e.code().as_deref(), Some("40P01" | "40001"))
        }
        _ => false,
    }
}

enum GroupFailure {
    /// The statement at this index failed; nothing was committed.
    Statement(usize, Error),
    /// The transaction could not begin, roll back or commit.
    Transaction(Error),
}

impl GroupFailure {
    /// Whether the committer's connection is unfit for the next group.
    fn ends_connection(&self) -> bool {
        match self {
            Self::Statement(_, Error::Database(e)) => !direct::survives(e),
            Self::Statement(..) => false,
            Self::Transaction(_) => true,
        }
    }
}

async fn run_group(
    db: &Db,
    conn: &mut AnyConnection,
    group: &[Grouped],
) -> std::result::Result<Vec<u64>, GroupFailure> {
    let _turn = db.write_turn().await;
    let backend = db.backend;
    if let [alone] = group {
        // Its own statement commits it: no transaction around it (two round trips fewer).
        let count = alone
            .sql
            .execute(Held { conn, backend })
            .await
            .map_err(|e| GroupFailure::Statement(0, e))?;
        return Ok(vec![count]);
    }
    if backend == Backend::Postgres
        && let Some(messages) = messages(group)
    {
        return run_in_messages(conn, messages, group.len()).await;
    }
    let begin = match backend {
        Backend::Sqlite => "BEGIN IMMEDIATE",
        Backend::Postgres => "BEGIN",
    };
    let transaction = |e: sqlx::Error| GroupFailure::Transaction(e.into());
    conn.execute(begin).await.map_err(transaction)?;
    let mut counts = Vec::with_capacity(group.len());
    for (at, grouped) in group.iter().enumerate() {
        match grouped.sql.execute(Held { conn, backend }).await {
            Ok(count) => counts.push(count),
            Err(error) => {
                conn.execute("ROLLBACK").await.map_err(transaction)?;
                return Err(GroupFailure::Statement(at, error));
            }
        }
    }
    conn.execute("COMMIT").await.map_err(transaction)?;
    Ok(counts)
}

/// The most a message of a group carries, one statement larger than this aside. A larger one
/// leaves the client in more than one write (TLS writes at most 16 KiB a record) and sqlx does
/// not set `TCP_NODELAY` on its sockets: the last write would wait for the server's delayed
/// acknowledgement, tens of milliseconds.
const MESSAGE_LIMIT: usize = 12 * 1024;

/// Postgres: a group as a few messages, `BEGIN; …; COMMIT` with the arguments written in
/// ([`Sql::inlined_for_postgres`]). None when a statement's arguments cannot be.
fn messages(group: &[Grouped]) -> Option<Vec<String>> {
    let mut messages = Vec::new();
    let mut message = String::from("BEGIN;\n");
    for grouped in group {
        let statement = grouped.sql.inlined_for_postgres()?;
        let statement = statement.trim_end().trim_end_matches(';');
        if !message.is_empty() && message.len() + statement.len() + 2 > MESSAGE_LIMIT {
            messages.push(std::mem::take(&mut message));
        }
        message.push_str(statement);
        // On a line of its own: a statement ending in a `--` comment does not swallow the next.
        message.push_str(";\n");
    }
    message.push_str("COMMIT");
    messages.push(message);
    Some(messages)
}

/// Runs a group sent as [`messages`]: a round trip a message, where a statement at a time
/// takes one each and the transaction two more. The server answers each statement in order
/// (`BEGIN`'s first) and stops at the first that fails, which tells which one it was.
async fn run_in_messages(
    conn: &mut AnyConnection,
    messages: Vec<String>,
    statements: usize,
) -> std::result::Result<Vec<u64>, GroupFailure> {
    use futures_util::StreamExt;
    let mut answers = Vec::with_capacity(statements + 2);
    let mut failed = None;
    for message in messages {
        let mut results = sqlx::raw_sql(sqlx::AssertSqlSafe(message)).fetch_many(&mut *conn);
        while let Some(answer) = results.next().await {
            match answer {
                Ok(sqlx::Either::Left(done)) => answers.push(done.rows_affected()),
                Ok(sqlx::Either::Right(_row)) => {}
                Err(error) => {
                    failed = Some(error);
                    break;
                }
            }
        }
        if failed.is_some() {
            break;
        }
    }
    let transaction = |e: sqlx::Error| GroupFailure::Transaction(e.into());
    match failed {
        None if answers.len() == statements + 2 => Ok(answers[1..=statements].to_vec()),
        None => Err(GroupFailure::Transaction(Error::Internal(format!(
            "a group of {statements} statements got {} answers",
            answers.len()
        )))),
        // BEGIN failed, or COMMIT (which then rolled back): the transaction as a whole.
        Some(error) if answers.is_empty() || answers.len() > statements => Err(transaction(error)),
        Some(error) => {
            conn.execute("ROLLBACK").await.map_err(transaction)?;
            Err(GroupFailure::Statement(answers.len() - 1, error.into()))
        }
    }
}

impl Db {
    /// Opens the database at `url` (creating a SQLite file and its folder if needed).
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::from_url(url).ok_or_else(|| {
            Error::Internal(format!(
                "unsupported database URL (expected sqlite:// or postgres://): {url}"
            ))
        })?;
        let mut url = url.to_owned();
        if backend == Backend::Sqlite {
            url = prepare_sqlite_url(&url)?;
        }
        let options = AnyConnectOptions::from_str(&url)?;
        // SQLite: a thread a connection, and its own page cache; one write transaction at a
        // time (the write gate), and on two cores more readers than this only wait for each
        // other. Postgres: as many as a server's default 100 allows for a few processes.
        let (transactions, statements) = match backend {
            Backend::Sqlite => (2, 3),
            Backend::Postgres => (6, 9),
        };
        let pool_options = AnyPoolOptions::new()
            .max_connections(transactions)
            .acquire_timeout(Duration::from_secs(10))
            // A connection that has just served needs no round trip to show it is alive.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for > direct::IDLE_CHECK {
                        conn.ping().await?;
                    }
                    Ok(true)
                })
            });
        let pool = match backend {
            Backend::Sqlite => {
                pool_options
                    .after_connect(|conn, _| {
                        Box::pin(async move {
                            conn.execute(SQLITE_PRAGMAS).await?;
                            Ok(())
                        })
                    })
                    .connect_with(options.clone())
                    .await?
            }
            Backend::Postgres => pool_options.connect_with(options.clone()).await?,
        };
        // Postgres groups too: every commit waits for its WAL flush, and statements that share
        // one transaction share the flush and the server's work per transaction.
        let (group, queue) = tokio::sync::mpsc::unbounded_channel();
        let db = Self {
            pool,
            direct: Arc::new(direct::Direct::new(options, backend, statements)),
            backend,
            events_appended: Arc::new(watch::Sender::new(0)),
            write_gate: (backend == Backend::Sqlite).then(|| Arc::new(tokio::sync::Mutex::new(()))),
            group,
        };
        // The committer's own handle sends to a closed queue: the queue ends, and the task
        // with it, when the last handle the application holds is dropped.
        let (closed, _) = tokio::sync::mpsc::unbounded_channel();
        tokio::spawn(commit_groups(
            Self {
                group: closed,
                ..db.clone()
            },
            queue,
        ));
        Ok(db)
    }

    /// Applies every pending migration of this backend.
    pub async fn migrate(&self) -> Result<()> {
        match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.run(&self.pool).await?,
            Backend::Postgres => POSTGRES_MIGRATIONS.run(&self.pool).await?,
        }
        Ok(())
    }

    /// True when every migration this binary knows of has been applied.
    pub async fn migrations_applied(&self) -> Result<bool> {
        let known = match self.backend {
            Backend::Sqlite => SQLITE_MIGRATIONS.iter().count(),
            Backend::Postgres => POSTGRES_MIGRATIONS.iter().count(),
        } as i64;
        let applied = match Sql::new("SELECT COUNT(*) FROM _sqlx_migrations WHERE success")
            .fetch_one(self)
            .await
        {
            Ok(row) => sql::get_i64(&row, 0)?,
            // No migrations table yet: nothing applied.
            Err(Error::Database(_)) => 0,
            Err(e) => return Err(e),
        };
        Ok(applied >= known)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a transaction that will write. On SQLite it takes the write lock up front
    /// (`BEGIN IMMEDIATE`), so a read-then-write never fails half way with `SQLITE_BUSY`.
    pub async fn begin(&self) -> Result<Tx> {
        let turn = self.write_turn().await;
        let inner = match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        };
        Ok(Tx {
            inner,
            backend: self.backend,
            events_appended: false,
            notify: self.events_appended.clone(),
            _turn: turn,
        })
    }

    /// This process's turn to write, on SQLite (none needed on Postgres).
    async fn write_turn(&self) -> Option<tokio::sync::OwnedMutexGuard<()>> {
        match &self.write_gate {
            Some(gate) => Some(gate.clone().lock_owned().await),
            None => None,
        }
    }

    /// Runs one writing statement and answers the rows it returns (`RETURNING`). On SQLite it
    /// waits its turn at the write gate like a transaction, instead of busy-waiting for the
    /// file's write lock against the transactions holding it.
    pub async fn write(&self, sql: &Sql) -> Result<Vec<row::Row>> {
        match self.backend {
            // One statement commits itself: no transaction around it.
            Backend::Sqlite => {
                let _turn = self.write_turn().await;
                sql.fetch_all(self).await
            }
            Backend::Postgres => sql.fetch_all(self).await,
        }
    }

    /// [`Db::write`] for a statement that returns nothing: the number of rows it changed, once
    /// committed. Statements sent at once by many tasks are committed together (one
    /// transaction for all that wait): on SQLite that is where its single writer spends its
    /// time, on Postgres each commit waits for a WAL flush.
    pub async fn write_count(&self, sql: &Sql) -> Result<u64> {
        let closing = || Error::Internal("the database is closing".into());
        let (reply, outcome) = tokio::sync::oneshot::channel();
        let grouped = Grouped {
            sql: sql.clone(),
            reply,
        };
        // A statement not taken (the committer has stopped) drops its reply here, not later.
        self.group.send(grouped).map_err(|_| closing())?;
        outcome.await.unwrap_or_else(|_| Err(closing()))
    }

    /// A receiver that sees a change whenever this process commits new events; readers of the
    /// log wait on it instead of polling. (Other processes' events: `LISTEN timix_events`.)
    pub fn watch_events(&self) -> watch::Receiver<u64> {
        self.events_appended.subscribe()
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// A write transaction. Dropping it without [`Tx::commit`] rolls it back.
pub struct Tx {
    inner: Transaction<'static, sqlx::Any>,
    backend: Backend,
    events_appended: bool,
    notify: Arc<watch::Sender<u64>>,
    /// This transaction's turn at the SQLite write gate, released when it ends.
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Tx {
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn conn(&mut self) -> &mut sqlx::AnyConnection {
        &mut self.inner
    }

    /// Marks that this transaction appended to the event log: readers are woken on commit.
    pub(crate) fn note_event(&mut self) {
        self.events_appended = true;
    }

    pub async fn commit(self) -> Result<()> {
        self.inner.commit().await?;
        if self.events_appended {
            self.notify.send_modify(|n| *n = n.wrapping_add(1));
        }
        Ok(())
    }
}

/// Where a query runs: a connection lent for it, or an open transaction.
pub trait QueryTarget: Send {
    fn backend(&self) -> Backend;
    fn connection(&mut self) -> impl Future<Output = Result<Conn<'_>>> + Send;

    /// Whether rows read here should be locked until commit (`FOR UPDATE`). Only Postgres
    /// write transactions need it: SQLite's `BEGIN IMMEDIATE` already serialises writers.
    fn locks_rows(&self) -> bool {
        false
    }
}

impl QueryTarget for &Db {
    fn backend(&self) -> Backend {
        self.backend
    }
    async fn connection(&mut self) -> Result<Conn<'_>> {
        Ok(Conn::Lent(self.direct.lend().await?))
    }
}

impl QueryTarget for &mut Tx {
    fn backend(&self) -> Backend {
        self.backend
    }
    fn locks_rows(&self) -> bool {
        self.backend == Backend::Postgres
    }
    async fn connection(&mut self) -> Result<Conn<'_>> {
        Ok(Conn::Held(self.conn()))
    }
}

/// The group committer's connection.
struct Held<'a> {
    conn: &'a mut AnyConnection,
    backend: Backend,
}

impl QueryTarget for Held<'_> {
    fn backend(&self) -> Backend {
        self.backend
    }
    async fn connection(&mut self) -> Result<Conn<'_>> {
        Ok(Conn::Held(self.conn))
    }
}

/// The connection a statement runs on.
pub enum Conn<'a> {
    /// Lent for this statement.
    Lent(Lease<'a>),
    /// A transaction's, or the group committer's.
    Held(&'a mut AnyConnection),
}

impl Conn<'_> {
    pub(super) fn get(&mut self) -> &mut AnyConnection {
        match self {
            Self::Lent(lease) => lease,
            Self::Held(conn) => conn,
        }
    }

    /// The outcome of a statement run here; a lent connection that failed with it is not lent
    /// again.
    pub(super) fn settle<T>(&mut self, outcome: std::result::Result<T, sqlx::Error>) -> Result<T> {
        if let Self::Lent(lease) = self {
            lease.settle(&outcome);
        }
        Ok(outcome?)
    }
}

/// Makes sure the folder of a SQLite file exists and that the file is created on first use.
/// The file a SQLite URL names; none for Postgres or an in-memory database. Beside it SQLite
/// keeps `-wal` and `-shm` files.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    if Backend::from_url(url) != Some(Backend::Sqlite) {
        return None;
    }
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

fn prepare_sqlite_url(url: &str) -> Result<String> {
    let rest = url.trim_start_matches("sqlite:").trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path == ":memory:" {
        return Ok(url.to_owned());
    }
    if let Some(parent) = Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent).map_err(|e| {
            Error::Internal(format!(
                "cannot create data directory {}: {e}",
                parent.display()
            ))
        })?;
    }
    Ok(if url.contains("mode=") {
        url.to_owned()
    } else if url.contains('?') {
        format!("{url}&mode=rwc")
    } else {
        format!("{url}?mode=rwc")
    })
}

/// Row helpers shared by the store modules.
pub mod row {
    pub use super::sql::{get_bool, get_i64, get_opt_i64, get_opt_str, get_str};
    pub use sqlx::any::AnyRow as Row;
}

pub type Row = AnyRow;
