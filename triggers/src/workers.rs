//! The background work of a process, started from one context value: the dispatcher, webhook
//! delivery, the flow executor's workers, schedules, polls and the housekeeping that forgets
//! what is past its retention.

use std::sync::Arc;
use std::time::Duration;

use timix_actions::{Performer, ThisInstance};
use timix_connectors::outbound::Outbound;
use timix_connectors::webhooks::{
    AttemptLog, Deliverer, DeliveryJob, FastAttempt, serve_fast_lane, sweep,
};
use timix_engine::Db;
use timix_engine::access::rate_limits::Limiter;
use timix_engine::access::usage::UsageCounter;
use timix_engine::automation::connections::Vault;
use timix_engine::automation::manifest::Manifests;
use timix_engine::automation::run_admission::RunAdmission;
use timix_engine::store::jobs::{Job, JobHandler, Queues};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::task::JoinHandle;

use crate::dispatcher::Dispatcher;
use crate::executor::{FlowExecutor, Handoff, RunJob, RunLane, serve_lane, sweep_runs};
use crate::poller::Poller;

/// Deliveries in flight at once, per process.
const DELIVERY_CONCURRENCY: usize = 64;
/// Flow runs one worker performs at a time.
pub const RUN_CONCURRENCY: usize = 32;
/// Poll flows read at once by one process.
const POLL_CONCURRENCY: usize = 16;
/// How long a webhook delivery's request may take.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// The operator's settings the workers obey.
#[derive(Debug, Clone)]
pub struct WorkerSettings {
    /// The database's URL: on Postgres the dispatcher `LISTEN`s on it.
    pub database_url: String,
    /// Whether webhooks may be sent to private addresses.
    pub allow_private_targets: bool,
    /// Delays before a delivery's 2nd, 3rd… attempts.
    pub webhook_retry_schedule: Vec<Duration>,
    /// The first retry's delay of a flow step; each next one doubles it.
    pub flow_retry_base: Duration,
    /// How long a worker holds a run or a poll between two saves.
    pub run_lease: Duration,
    /// Most runs one chain of flows may start.
    pub fanout_limit: i64,
    pub idempotency_retention: Duration,
    pub run_retention: Duration,
}

/// Everything the workers are started from.
pub struct WorkerContext {
    pub db: Db,
    pub queues: Queues,
    pub manifests: Arc<Manifests>,
    /// The connectors flows' steps and poll triggers name.
    pub connectors: Arc<timix_engine::automation::connectors::Registry>,
    /// Where senders reach this service, for the webhook subscriptions made for flows.
    pub public_url: String,
    pub vault: Vault,
    /// Paces the runs each organization starts.
    pub admission: Arc<RunAdmission>,
    /// Performs the steps' actions (the one the application state holds).
    pub performer: Arc<Performer>,
    /// The in-process API client steps on this instance go through.
    pub this_instance: Arc<dyn ThisInstance>,
    /// This process's run lane (the application state holds the same) and its receiving end.
    pub run_lane: RunLane,
    pub run_lane_receiver: UnboundedReceiver<Handoff>,
    pub settings: WorkerSettings,
}

/// The running workers; [`Workers::stop`] ends them.
pub struct Workers {
    tasks: Vec<JoinHandle<()>>,
}

impl Workers {
    /// Ends every worker (work they had not committed is taken up again by the sweepers).
    pub fn stop(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

/// Starts the workers of a process that runs background work.
pub fn start(cx: WorkerContext) -> Workers {
    let mut tasks = vec![tokio::spawn(purge_expired(
        cx.db.clone(),
        cx.settings.idempotency_retention,
        cx.settings.run_retention,
    ))];
    tasks.extend(start_delivery(&cx));
    tasks.extend(start_flows(cx));
    Workers { tasks }
}

/// Flow runs: the workers that execute them and the sweeper that queues due retries and runs a
/// crashed process left behind. (Event-triggered runs are started by the dispatcher.)
fn start_flows(cx: WorkerContext) -> Vec<JoinHandle<()>> {
    let executor = Arc::new(FlowExecutor {
        db: cx.db,
        manifests: cx.manifests,
        connectors: cx.connectors,
        performer: cx.performer,
        this_instance: cx.this_instance,
        vault: cx.vault,
        retry_base: cx.settings.flow_retry_base,
        lease: cx.settings.run_lease,
        admission: cx.admission,
        followers: Arc::default(),
        marks: Default::default(),
    });
    let poller = Arc::new(Poller {
        executor: executor.clone(),
        lane: Some(cx.run_lane.clone()),
        queues: Some(cx.queues.clone()),
        lease: cx.settings.run_lease,
    });
    let workers = work_forever::<RunJob, _>(cx.queues, "runs", executor.clone(), RUN_CONCURRENCY);
    let sweeper = sweep_runs(
        executor.clone(),
        Duration::from_millis(100),
        RUN_CONCURRENCY,
        cx.settings.database_url.clone(),
    );
    let scheduler = crate::scheduler::run(executor.clone());
    let subscriber = crate::subscriber::run(
        Arc::new(crate::subscriber::Subscriber {
            executor: executor.clone(),
            public_url: cx.public_url.clone(),
        }),
        Duration::from_secs(1),
    );
    let polls = crate::poller::run(poller, Duration::from_millis(250), POLL_CONCURRENCY);
    let lane = serve_lane(executor, cx.run_lane, cx.run_lane_receiver, RUN_CONCURRENCY);
    vec![
        tokio::spawn(lane),
        tokio::spawn(workers),
        tokio::spawn(sweeper),
        tokio::spawn(scheduler),
        tokio::spawn(subscriber),
        tokio::spawn(polls),
    ]
}

/// Webhook delivery: the dispatcher, the workers that send, and the sweeper that requeues what a
/// crash left behind.
fn start_delivery(cx: &WorkerContext) -> Vec<JoinHandle<()>> {
    let (db, queues, settings) = (&cx.db, &cx.queues, &cx.settings);
    let mut dispatcher = Dispatcher::new(db.clone(), queues.clone(), &settings.database_url);
    dispatcher.run_lane = Some(cx.run_lane.clone());
    dispatcher.admission = Some(cx.admission.clone());
    dispatcher.fanout_limit = settings.fanout_limit;
    let (lane, fast) = tokio::sync::mpsc::unbounded_channel::<FastAttempt>();
    dispatcher.fast_lane = Some(lane.clone());
    let deliverer = Arc::new(Deliverer {
        db: db.clone(),
        queues: queues.clone(),
        outbound: Outbound::new(settings.allow_private_targets, DELIVERY_TIMEOUT),
        vault: cx.vault.clone(),
        schedule: settings.webhook_retry_schedule.clone(),
        log: AttemptLog::start(db.clone()),
    });
    let workers = work_forever::<DeliveryJob, _>(
        queues.clone(),
        "deliveries",
        deliverer.clone(),
        DELIVERY_CONCURRENCY,
    );
    // Due retries and stalled deliveries are queued (durably) and also tried at once here.
    let sweeper = sweep::run(db.clone(), queues.clone(), lane);
    let fast_lane = serve_fast_lane(deliverer, fast, DELIVERY_CONCURRENCY);
    vec![
        tokio::spawn(dispatcher.run()),
        tokio::spawn(workers),
        tokio::spawn(sweeper),
        tokio::spawn(fast_lane),
    ]
}

/// Takes jobs of type `J` from the queue with `handler`, `concurrency` at a time; a worker that
/// stops (its database was unreachable, say) is started again a second later.
async fn work_forever<J: Job, H: JobHandler<J>>(
    queues: Queues,
    name: &'static str,
    handler: Arc<H>,
    concurrency: usize,
) {
    for round in 0u64.. {
        let worker = format!("{name}-{}-{round}", std::process::id());
        match queues
            .work::<J, _>(&worker, handler.clone(), concurrency)
            .await
        {
            Ok(()) => tracing::warn!(queue = name, "A worker stopped; starting it again."),
            Err(error) => {
                tracing::error!(queue = name, %error, "A worker failed; starting it again.")
            }
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Starts writing request counts every few seconds and forgetting idle rate-limit state every
/// minute, for a process that serves the API.
pub fn keep_request_counters(
    db: Db,
    usage: Arc<UsageCounter>,
    limiter: Arc<Limiter>,
) -> JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        let mut ticks = 0u64;
        loop {
            tick.tick().await;
            ticks += 1;
            if let Err(error) = usage.flush(&db).await {
                tracing::warn!(%error, "Could not save request counts; will retry.");
            }
            if ticks.is_multiple_of(12) {
                limiter.forget_idle();
            }
        }
    })
}

/// Forgets idempotency keys past their retention, tombstones past the sync window, finished
/// runs past theirs, seen items of old poll triggers, expired web sessions, invitations and
/// failed logins, and MCP's expired OAuth codes, tokens and unused clients.
async fn purge_expired(db: Db, idempotency_retention: Duration, run_retention: Duration) {
    let every =
        (idempotency_retention / 4).clamp(Duration::from_millis(250), Duration::from_secs(600));
    let mut tick = tokio::time::interval(every);
    let mut last_tombstone_purge: Option<std::time::Instant> = None;
    loop {
        tick.tick().await;
        match timix_engine::access::idempotency::purge(
            &db,
            idempotency_retention.as_millis() as i64,
        )
        .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(purged = n, "Purged expired idempotency keys."),
            Err(error) => tracing::warn!(%error, "Could not purge idempotency keys."),
        }
        if last_tombstone_purge.is_none_or(|t| t.elapsed() >= Duration::from_secs(3600)) {
            last_tombstone_purge = Some(std::time::Instant::now());
            let tables = [
                "time_entries",
                "invoices",
                "subtasks",
                "tasks",
                "projects",
                "customers",
                "holiday_profiles",
            ];
            match timix_engine::store::list::purge_tombstones(&db, &tables).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "Purged expired tombstones."),
                Err(error) => tracing::warn!(%error, "Could not purge tombstones."),
            }
            let retention = run_retention.as_millis() as i64;
            match timix_engine::automation::runs::purge_finished(&db, retention, 100).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(purged = n, "Deleted finished runs past their retention."),
                Err(error) => tracing::warn!(%error, "Could not delete old runs."),
            }
            match timix_engine::automation::polls::purge_stale_seen(&db).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(purged = n, "Forgot seen items of old poll triggers."),
                Err(error) => tracing::warn!(%error, "Could not forget old seen items."),
            }
            match timix_engine::access::web_sessions::purge_expired(&db).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(purged = n, "Purged expired sessions and invitations."),
                Err(error) => tracing::warn!(%error, "Could not purge expired sessions."),
            }
            match timix_engine::access::mcp_oauth::purge_expired(&db).await {
                Ok(0) => {}
                Ok(n) => tracing::debug!(purged = n, "Purged expired MCP OAuth codes and tokens."),
                Err(error) => tracing::warn!(%error, "Could not purge MCP OAuth codes and tokens."),
            }
        }
    }
}
