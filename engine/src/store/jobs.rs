//! The job queue. Jobs are durable (they survive a crash and a restart) and may be scheduled for
//! later. It is apalis underneath, behind this small interface of ours, so the library stays
//! replaceable and every job type is found by grepping for `impl Job for`.
//!
//! On SQLite the queue lives in its own file beside the main database (its migrations and its
//! writer lock stay apart); on Postgres in the `apalis` schema of the same database.

use std::future::Future;
use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use apalis::prelude::*;
use apalis_postgres::PostgresStorage;
use apalis_sqlite::SqliteStorage;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::store::db::Backend;

/// How often a worker looks for due jobs.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// A kind of job.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static {
    /// The queue's name. Stable: jobs already queued are found by it after a rename of the type.
    const QUEUE: &'static str;
}

/// What runs a job. An error is logged; retrying is the handler's business (it can push the
/// job again, later), so that a retry schedule survives restarts.
pub trait JobHandler<J: Job>: Send + Sync + 'static {
    fn perform(&self, job: J) -> impl Future<Output = Result<()>> + Send;
}

#[derive(Clone)]
enum Store {
    Sqlite(apalis_sqlite::SqlitePool),
    Postgres(apalis_postgres::PgPool),
}

/// Handle to the queues of one database. Cheap to clone.
#[derive(Clone)]
pub struct Queues {
    store: Store,
}

fn queue_error(e: impl std::fmt::Display) -> Error {
    Error::Internal(format!("job queue: {e}"))
}

/// Where the SQLite queue lives: beside the main file, `timix.db` → `timix-queue.db`.
fn sqlite_queue_url(database_url: &str) -> String {
    let rest = database_url
        .trim_start_matches("sqlite:")
        .trim_start_matches("//");
    let path = rest.split('?').next().unwrap_or_default();
    let p = Path::new(path);
    let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("timix");
    let file = p.with_file_name(format!("{stem}-queue.db"));
    format!("sqlite://{}", file.display())
}

/// The SQLite file of the queue beside a SQLite database (none for Postgres).
pub fn sqlite_queue_file(database_url: &str) -> Option<std::path::PathBuf> {
    crate::store::db::sqlite_file(database_url)?;
    let url = sqlite_queue_url(database_url);
    crate::store::db::sqlite_file(&url)
}

impl Queues {
    pub async fn open(database_url: &str) -> Result<Self> {
        let store = match Backend::from_url(database_url) {
            Some(Backend::Sqlite) => {
                let url = sqlite_queue_url(database_url);
                let options = apalis_sqlite::SqliteConnectOptions::from_str(&url)
                    .map_err(queue_error)?
                    .create_if_missing(true)
                    .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                    .busy_timeout(Duration::from_secs(10));
                // No round trip to test a connection before each statement (see
                // `store::db::direct`); the queue's file is local.
                let pool = apalis_sqlite::SqlitePoolOptions::new()
                    .max_connections(8)
                    .test_before_acquire(false)
                    .connect_with(options)
                    .await
                    .map_err(queue_error)?;
                SqliteStorage::setup(&pool).await.map_err(queue_error)?;
                Store::Sqlite(pool)
            }
            Some(Backend::Postgres) => {
                // A connection idle for long is tested before use; one that has just served
                // is not (a round trip to the server saved on each of the queue's statements).
                let pool = sqlx::postgres::PgPoolOptions::new()
                    .test_before_acquire(false)
                    .before_acquire(|conn, meta| {
                        Box::pin(async move {
                            if meta.idle_for > Duration::from_secs(30) {
                                sqlx::Connection::ping(conn).await?;
                            }
                            Ok(true)
                        })
                    })
                    .connect(database_url)
                    .await
                    .map_err(queue_error)?;
                PostgresStorage::setup(&pool).await.map_err(queue_error)?;
                Store::Postgres(pool)
            }
            None => {
                return Err(Error::Internal(
                    "unsupported database URL for the job queue".into(),
                ));
            }
        };
        Ok(Self { store })
    }

    /// Queues `job`, to run at once or after `delay` (on SQLite only; on Postgres a delayed job
    /// may wait for the next push, so schedule retries yourself and push them when due).
    pub async fn push<J: Job>(&self, job: J, delay: Option<Duration>) -> Result<()> {
        let mut builder = TaskBuilder::new(job);
        if let Some(delay) = delay {
            builder = builder.run_after(delay);
        }
        let task = builder.build();
        match &self.store {
            Store::Sqlite(pool) => {
                let mut storage = SqliteStorage::<J>::new(pool)
                    .with_config(apalis_sqlite::Config::default().queue(J::QUEUE));
                storage.push_task(task).await.map_err(queue_error)
            }
            Store::Postgres(pool) => {
                let mut storage = PostgresStorage::<J>::new(pool)
                    .with_config(apalis_postgres::Config::default().queue(J::QUEUE));
                storage.push_task(task).await.map_err(queue_error)
            }
        }
    }

    /// Queues several jobs to run at once, in one write.
    pub async fn push_many<J: Job>(&self, jobs: Vec<J>) -> Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        match &self.store {
            Store::Sqlite(pool) => {
                let mut storage = SqliteStorage::<J>::new(pool)
                    .with_config(apalis_sqlite::Config::default().queue(J::QUEUE));
                storage.push_bulk(jobs).await.map_err(queue_error)
            }
            Store::Postgres(pool) => {
                let mut storage = PostgresStorage::<J>::new(pool)
                    .with_config(apalis_postgres::Config::default().queue(J::QUEUE));
                storage.push_bulk(jobs).await.map_err(queue_error)
            }
        }
    }

    /// Runs jobs of type `J` with `handler`, up to `concurrency` at a time, until the future is
    /// dropped.
    pub async fn work<J: Job, H: JobHandler<J>>(
        &self,
        name: &str,
        handler: Arc<H>,
        concurrency: usize,
    ) -> Result<()> {
        match &self.store {
            Store::Sqlite(pool) => {
                let config = apalis_sqlite::Config::default()
                    .queue(J::QUEUE)
                    .batch_size(concurrency.max(1));
                let storage = SqliteStorage::<J>::new(pool).with_config(config);
                let strategy = Strategy::new().interval(POLL_INTERVAL);
                let worker = WorkerBuilder::new(name)
                    .backend(storage.poll_with_strategy(strategy))
                    .concurrency(concurrency.max(1))
                    .data(handler)
                    .build(perform::<J, H>);
                worker.run().await.map_err(queue_error)
            }
            Store::Postgres(pool) => {
                let config = apalis_postgres::Config::default()
                    .queue(J::QUEUE)
                    .batch_size(concurrency.max(1));
                // Woken by LISTEN when a job is pushed. Jobs are pushed when due: retries are
                // scheduled by their owners, not with delayed jobs.
                let storage = PostgresStorage::<J>::new(pool)
                    .with_config(config)
                    .with_pubsub();
                let worker = WorkerBuilder::new(name)
                    .backend(storage)
                    .concurrency(concurrency.max(1))
                    .data(handler)
                    .build(perform::<J, H>);
                worker.run().await.map_err(queue_error)
            }
        }
    }
}

async fn perform<J: Job, H: JobHandler<J>>(
    job: J,
    handler: Data<Arc<H>>,
) -> Result<(), BoxDynError> {
    handler
        .perform(job)
        .await
        .map_err(|e| Box::new(e) as BoxDynError)
}
