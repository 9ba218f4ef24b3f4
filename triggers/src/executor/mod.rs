//! The flow executor: executes flow runs. A run is a job on the queue ([`RunJob`]); the worker
//! that takes it claims the run with a lease, then walks the flow's program ([`walk`]): each
//! action's input rendered from the trigger and earlier outputs, checked against the action's
//! schema, performed and recorded ([`step`]); conditions, branches, loops and delays decided and
//! recorded likewise. A retryable failure puts the run back in the queue after a backoff
//! (exponential with jitter, or the target's `Retry-After`); a permanent one fails the run with
//! the upstream error, unless the step's `onError` says otherwise; a `delay` parks the run,
//! holding no worker, until its time.

pub mod backlog;
mod step;
mod walk;

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use timix_actions::{Performer, ThisInstance};
use timix_engine::access::auth;
use timix_engine::automation::connections::Vault;
use timix_engine::automation::flows::{self, LiveFlow};
use timix_engine::automation::manifest::Manifests;
use timix_engine::automation::run_admission::RunAdmission;
use timix_engine::automation::runs::{self, Release, RunStatus, StepRecord, StepStatus, outcomes};
use timix_engine::error::Result;
use timix_engine::store::clock::{format_ms, now_ms};
use timix_engine::store::db::Db;
use timix_engine::store::jobs::{Job, JobHandler, Queues};
use tracing::Instrument;
use walk::{End, Walk};

pub use backlog::{Admit, Backlog, SharedBacklog};

/// The longest wait between two attempts of a step.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// What a process hands its own workers: a run it created already claimed (it executes it
/// at once), or the id of a run to claim.
#[derive(Debug)]
pub enum Handoff {
    /// With when it was handed over (its lease runs from its creation), and what the process
    /// that made it already read for it.
    Claimed(
        Box<runs::ClaimedRun>,
        std::time::Instant,
        Option<Box<Prepared>>,
    ),
    Due(String),
}

/// The flow and the actor a run was made with, read moments before (an inbound call checks
/// both before it accepts): its worker takes them instead of reading them again, when it
/// starts the run at once.
#[derive(Debug)]
pub struct Prepared {
    pub flow: LiveFlow,
    pub actor: auth::Actor,
}

/// How long after its hand-over a run's [`Prepared`] is still taken as it is.
const PREPARED_FOR: Duration = Duration::from_secs(1);

/// Where a process that also runs workers hands new runs over for immediate execution. The run
/// is committed first, so a run sent here and lost with the process is found by the sweeper
/// (a claimed one once its lease runs out).
#[derive(Clone)]
pub struct RunLane {
    sender: tokio::sync::mpsc::UnboundedSender<Handoff>,
    /// The lease a run created claimed is created with.
    pub lease_ms: i64,
    /// Claimed runs handed over and not finished yet.
    claimed: Arc<std::sync::atomic::AtomicUsize>,
    /// How many claimed runs may wait in the lane.
    capacity: usize,
    /// The runs waiting for a worker, which inbound calls are admitted by.
    pub backlog: Arc<Backlog>,
}

/// Claimed runs that may wait per worker slot of the lane: enough for a burst, few enough that
/// the wait stays well within a lease.
const CLAIMED_PER_SLOT: usize = 32;

/// Runs that may wait per worker slot before inbound calls are held: every worker has its next
/// run ready, and a run waits a few runs' time at most.
const WAITING_PER_SLOT: usize = 2;

impl RunLane {
    /// `capacity`: the runs executed at once; `backlog_limit`: the oldest wait beyond which
    /// inbound calls are refused (`None`: never).
    pub fn new(
        lease: Duration,
        capacity: usize,
        backlog_limit: Option<Duration>,
    ) -> (Self, tokio::sync::mpsc::UnboundedReceiver<Handoff>) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let lane = RunLane {
            sender,
            lease_ms: lease.as_millis() as i64,
            claimed: Arc::default(),
            capacity: capacity.max(1) * CLAIMED_PER_SLOT,
            backlog: Arc::new(Backlog::new(
                capacity.max(1) * WAITING_PER_SLOT,
                backlog_limit,
            )),
        };
        (lane, receiver)
    }

    /// Whether a run created claimed now would start soon. A claim's lease runs from its
    /// creation, so only so many may wait; one that waited long renews its lease first.
    pub fn has_room(&self) -> bool {
        self.claimed.load(std::sync::atomic::Ordering::Relaxed) < self.capacity
    }

    /// Hands over runs created claimed (after their transaction committed).
    pub fn hand_over(&self, claimed: Vec<runs::ClaimedRun>) {
        for run in claimed {
            self.hand_over_one(run, None);
        }
    }

    /// Hands over a run created claimed, with the flow and actor read for it.
    pub fn hand_over_one(&self, run: runs::ClaimedRun, prepared: Option<Prepared>) {
        self.claimed
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.backlog.entered();
        let _ = self.sender.send(Handoff::Claimed(
            Box::new(run),
            std::time::Instant::now(),
            prepared.map(Box::new),
        ));
    }
}

/// Hands new runs to this process's lane when it has one; else, on Postgres, offers them to
/// every process's workers at once (`runs::offer`); else queues a job for each.
pub async fn dispatch_runs(
    db: &Db,
    lane: Option<&RunLane>,
    queues: Option<&Queues>,
    run_ids: Vec<String>,
) {
    if run_ids.is_empty() {
        return;
    }
    if let Some(lane) = lane {
        for id in run_ids {
            lane.backlog.entered();
            let _ = lane.sender.send(Handoff::Due(id));
        }
        return;
    }
    if db.backend().notifies() {
        if let Err(error) = runs::offer(db, &run_ids).await {
            tracing::warn!(%error, "Could not offer runs to the workers; the sweeper will.");
        }
        return;
    }
    if let Some(queues) = queues {
        let jobs = run_ids
            .into_iter()
            .map(|run_id| RunJob { run_id })
            .collect();
        if let Err(error) = queues.push_many(jobs).await {
            tracing::warn!(%error, "Could not queue run jobs; the sweeper will.");
        }
    }
}

/// Executes the runs handed to the lane, at most `concurrency` at a time.
pub async fn serve_lane(
    executor: Arc<FlowExecutor>,
    lane_handle: RunLane,
    mut lane: tokio::sync::mpsc::UnboundedReceiver<Handoff>,
    concurrency: usize,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    while let Some(handoff) = lane.recv().await {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        lane_handle.backlog.started();
        let executor = executor.clone();
        let claimed = lane_handle.claimed.clone();
        tokio::spawn(async move {
            let (run_id, result) = match handoff {
                Handoff::Claimed(run, handed_at, prepared) => {
                    let id = run.id.clone();
                    let result = executor.execute_handed(*run, handed_at, prepared).await;
                    claimed.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                    (id, result)
                }
                Handoff::Due(id) => {
                    let result = executor.execute(&id).await;
                    (id, result)
                }
            };
            if let Err(error) = result {
                tracing::warn!(run = %run_id, %error, "A run could not be executed.");
            }
            drop(permit);
        });
    }
}

/// "Execute this run": a run id on the `runs` queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunJob {
    pub run_id: String,
}

impl Job for RunJob {
    const QUEUE: &'static str = "runs";
}

/// Executes flow runs, performing their steps.
pub struct FlowExecutor {
    pub db: Db,
    pub manifests: Arc<Manifests>,
    /// The connectors of the versions flows were saved with.
    pub connectors: Arc<timix_engine::automation::connectors::Registry>,
    pub performer: Arc<Performer>,
    /// The in-process API client steps on this instance go through.
    pub this_instance: Arc<dyn ThisInstance>,
    /// Opens the credentials of the connections steps use.
    pub vault: Vault,
    /// The first retry's delay; each next one doubles it.
    pub retry_base: Duration,
    /// How long this worker holds a run between two saved steps; then another may take it.
    pub lease: Duration,
    /// Paces the runs each organization starts (schedules and polls book through it).
    pub admission: Arc<RunAdmission>,
    /// Which organizations follow successful runs (whose `run.succeeded` is logged).
    pub followers: Arc<outcomes::SuccessFollowers>,
    /// When this process last wrote each flow's `lastTriggeredAt`.
    pub marks: flows::watch::TriggerMarks,
}

/// The actor a flow's steps (and its poll source) act as: its owner, on the flow's behalf.
pub async fn acting_for(db: &Db, flow: &flows::LiveFlow) -> Result<auth::Actor> {
    auth::acting_user(db, &flow.org_id, &flow.created_by, flows::acting_key(flow)).await
}

impl JobHandler<RunJob> for FlowExecutor {
    async fn perform(&self, job: RunJob) -> Result<()> {
        let result = self.execute(&job.run_id).await;
        if let Err(error) = &result {
            // The run stays due: the sweeper queues it again.
            tracing::warn!(run = %job.run_id, %error, "A run could not be executed.");
        }
        result
    }
}

/// The delay before attempt `attempts + 1`: the target's `Retry-After` when it gave one, else
/// `base · 2^(attempts-1)` within ±20 %, never more than [`MAX_BACKOFF`].
pub fn backoff(base: Duration, attempts: u32, retry_after: Option<Duration>) -> Duration {
    if let Some(after) = retry_after {
        return after.min(MAX_BACKOFF);
    }
    let exponential = base.saturating_mul(1u32 << attempts.saturating_sub(1).min(16));
    let jitter = rand::rng().random_range(0.8..1.2);
    exponential.mul_f64(jitter).min(MAX_BACKOFF)
}

fn failure(code: &str, message: impl Into<String>) -> Value {
    json!({"code": code, "message": message.into()})
}

impl FlowExecutor {
    fn lease_ms(&self) -> i64 {
        self.lease.as_millis() as i64
    }

    /// Executes a run if it is due and nobody else holds it; then, for a flow with a
    /// `maxConcurrency`, the run next in line for the slot it frees.
    pub async fn execute(&self, run_id: &str) -> Result<()> {
        let mut next = Some(run_id.to_owned());
        while let Some(id) = next.take() {
            if let Some(run) = runs::claim(&self.db, &id, self.lease_ms()).await? {
                next = self.execute_traced(run, None).await?;
            }
        }
        Ok(())
    }

    /// Executes a run handed over claimed. One that waited a quarter of its lease renews it
    /// first, and is left alone if another worker took it meanwhile.
    pub async fn execute_handed(
        &self,
        run: runs::ClaimedRun,
        handed_at: std::time::Instant,
        prepared: Option<Box<Prepared>>,
    ) -> Result<()> {
        if handed_at.elapsed() > self.lease / 4
            && !runs::renew(&self.db, &run, self.lease_ms()).await?
        {
            return Ok(());
        }
        // Read moments ago for this very run: taken as it is; later, read again.
        let prepared = prepared.filter(|p| {
            handed_at.elapsed() < PREPARED_FOR
                && run.test.is_none()
                && run.flow_version == Some(p.flow.version)
        });
        self.execute_traced(run, prepared.map(|p| *p))
            .await
            .map(drop)
    }

    /// Executes a run this worker holds, from its first unfinished step. Every log line of it
    /// (the in-process API calls of its steps included) carries its `run_id` and `flow_id`.
    pub async fn execute_claimed(&self, run: runs::ClaimedRun) -> Result<()> {
        self.execute_traced(run, None).await.map(drop)
    }

    /// [`Self::execute_claimed`]; answers the run next in line when the flow limits how many of
    /// its runs execute at once.
    async fn execute_traced(
        &self,
        run: runs::ClaimedRun,
        prepared: Option<Prepared>,
    ) -> Result<Option<String>> {
        let span = tracing::info_span!("run", run_id = %run.id, flow_id = %run.flow_id);
        async move {
            tracing::debug!("Run started.");
            let outcome = self.execute_steps(run, prepared).await;
            match &outcome {
                // Recorded in the run itself: a line a run would flood the log at thousands a
                // second.
                Ok(_) => tracing::debug!("Finished working on the run."),
                Err(error) => tracing::warn!(%error, "Run could not be executed."),
            }
            outcome
        }
        .instrument(span)
        .await
    }

    async fn execute_steps(
        &self,
        run: runs::ClaimedRun,
        prepared: Option<Prepared>,
    ) -> Result<Option<String>> {
        let (flow, actor) = match prepared {
            Some(Prepared { flow, actor }) => (flow, Ok(actor)),
            None => match flows::for_run(&self.db, &run.flow_id, run.flow_version).await? {
                Some(found) => found,
                None => {
                    runs::finish(&self.db, &run, &run.steps, Some("the flow was deleted")).await?;
                    return Ok(None);
                }
            },
        };
        // A test of a draft runs the draft's steps.
        let flow = match run.test.as_ref().and_then(|t| t.steps.as_ref()) {
            Some(steps) => flows::with_steps(flow, steps),
            None => flow,
        };
        self.execute_flow(&flow, run, actor).await?;
        if flow.settings.max_concurrency.is_none() {
            return Ok(None);
        }
        runs::next_in_line(&self.db, &flow.id).await
    }

    /// `actor`: who the steps act as, or why nobody can.
    async fn execute_flow(
        &self,
        flow: &LiveFlow,
        run: runs::ClaimedRun,
        actor: Result<auth::Actor>,
    ) -> Result<()> {
        if run.takeovers >= runs::POISONED_AFTER {
            return self.poisoned(flow, &run).await;
        }
        let actor = match actor {
            Ok(actor) => actor,
            Err(error) => {
                let message = error.to_string();
                return self
                    .release(flow, &run, &run.steps, End::Failed(message))
                    .await;
            }
        };
        if run.test.is_none()
            && let Err(error) = self.marks.note(&self.db, &flow.id, now_ms()).await
        {
            tracing::warn!(flow = %flow.id, %error, "Could not note when the flow was triggered.");
        }
        let mut walk = Walk::new(self, flow, &run, &actor);
        let end = self.holding_lease(&run, walk.run()).await?;
        let saves = walk.saves;
        let records = std::mem::take(&mut walk.records);
        drop(walk);
        let run = runs::ClaimedRun { saves, ..run };
        self.release(flow, &run, &records, end).await
    }

    /// Does `work` on a run this worker holds, extending the run's lease every third of it
    /// meanwhile: a step may take longer than the lease (a slow target, a long in-process call)
    /// without another worker taking the run over and performing the step a second time. The
    /// lease still runs out soon after this process dies.
    async fn holding_lease<T>(&self, run: &runs::ClaimedRun, work: impl Future<Output = T>) -> T {
        let every = (self.lease / 3).max(Duration::from_millis(10));
        // Polled beside the work, never instead of it: the work may hold the SQLite write turn a
        // renewal waits for.
        let renewing = async {
            let mut renewals = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
            renewals.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                renewals.tick().await;
                // One that no longer holds the run finds out at its next save and stops.
                if let Err(error) = runs::renew(&self.db, run, self.lease_ms()).await {
                    tracing::warn!(%error, "Could not extend the run's lease.");
                }
            }
        };
        tokio::select! {
            biased;
            done = work => done,
            never = renewing => never,
        }
    }

    /// Lets go of a run as its walk ended, and shows a failure on the flow (a success clears
    /// it).
    async fn release(
        &self,
        flow: &LiveFlow,
        run: &runs::ClaimedRun,
        records: &[StepRecord],
        end: End,
    ) -> Result<()> {
        let saved = run.saves > 0;
        // A test tells only whoever runs it: no event, no streak, nothing shown on the flow.
        let live = run.test.is_none();
        // Failures are always announced (they count towards disabling the flow); a success
        // when it ends a streak of failures or someone follows successes.
        let announce = live
            && match &end {
                End::Failed(_) => true,
                End::Succeeded | End::Filtered => {
                    flow.consecutive_failures > 0
                        || (matches!(end, End::Succeeded)
                            && self.followers.follows(&self.db, &flow.org_id).await?)
                }
                _ => false,
            };
        let finish = |status, error| Release::Finish {
            status,
            error,
            announce,
        };
        let how = match &end {
            End::Succeeded => finish(RunStatus::Succeeded, None),
            End::Failed(message) => finish(RunStatus::Failed, Some(message.as_str())),
            End::Filtered => finish(RunStatus::Filtered, None),
            End::RetryAt(at) => Release::RetryAt(*at),
            End::WaitUntil(at) => Release::WaitUntil(*at),
            End::TakenOver => return Ok(()),
        };
        // The flow shows a run's failure by the time the run does.
        if let (true, End::Failed(message)) = (live, &end) {
            flows::note_error(&self.db, &flow.id, Some(message)).await?;
        }
        runs::release(&self.db, run, records, saved, how).await?;
        if live && matches!(end, End::Succeeded | End::Filtered) && flow.last_error.is_some() {
            flows::note_error(&self.db, &flow.id, None).await?;
        }
        Ok(())
    }

    /// Fails a run whose worker stopped (a crash, a kill) each of the last times it held it,
    /// with no step finished in between: taking it again would most likely stop the next one.
    async fn poisoned(&self, flow: &LiveFlow, run: &runs::ClaimedRun) -> Result<()> {
        tracing::warn!(run = %run.id, takeovers = run.takeovers, "Run poisoned: not taken again.");
        let message = format!(
            "the run stopped its worker {} times without finishing a step (a crash or a kill); \
             it is not taken again. Replay it once the cause is fixed",
            run.takeovers
        );
        let mut records = run.steps.clone();
        // The node it was at: the last one reached and not finished.
        let at = records
            .iter_mut()
            .rev()
            .find(|r| r.status == StepStatus::Pending);
        let reason = match at {
            Some(record) => {
                record.status = StepStatus::Failed;
                record.error = Some(failure("poisoned", &message));
                record.finished_at = Some(format_ms(now_ms()));
                format!("step {} failed: {message}", record.path)
            }
            None => format!("poisoned: {message}"),
        };
        self.release(flow, run, &records, End::Failed(reason)).await
    }
}

/// A run a sweep took: claimed for this worker already, or marked for a claim of its own.
enum Taken {
    Claimed(Box<runs::ClaimedRun>),
    Marked(String),
}

/// Every `every`, and on Postgres whenever another process offers runs (`runs::offer`), runs
/// that are due (an offered run, a retry whose time has come, a new run whose job has not been
/// taken, a run a crashed worker left) are executed here, at most `concurrency` at a time. A
/// sweep claims them in one statement (those of flows with `maxConcurrency` on their own), and
/// the claim keeps each to one execution; workers of several processes take different runs
/// (`runs::take_due`).
pub async fn sweep_runs(
    executor: Arc<FlowExecutor>,
    every: Duration,
    concurrency: usize,
    database_url: String,
) {
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tick = tokio::time::interval(every);
    // Ticks missed while waiting for a slot are not made up in a burst.
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut offered = match executor.db.listen_runs(&database_url).await {
        Ok(listener) => Some(listener),
        Err(error) => {
            tracing::warn!(%error, "Cannot LISTEN for offered runs; looking for them every {every:?}.");
            None
        }
    };
    loop {
        let offer = async {
            match offered.as_mut() {
                Some(listener) => listener.notified().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tick.tick() => {},
            _ = offer => {},
        }
        // A wake while every slot is busy sweeps once one frees, not at the next tick: the
        // runs offered meanwhile would wait for it.
        let Ok(first) = slots.clone().acquire_owned().await else {
            return;
        };
        let free = slots.available_permits() as i64 + 1;
        match runs::take_due(&executor.db, free, executor.lease_ms()).await {
            Ok(swept) => {
                let taken = swept
                    .claimed
                    .into_iter()
                    .map(|run| Taken::Claimed(Box::new(run)))
                    .chain(swept.marked.into_iter().map(Taken::Marked));
                let mut first = Some(first);
                for taken in taken {
                    let permit = match first.take() {
                        Some(permit) => permit,
                        None => match slots.clone().acquire_owned().await {
                            Ok(permit) => permit,
                            Err(_) => return,
                        },
                    };
                    let executor = executor.clone();
                    tokio::spawn(async move {
                        let (run_id, outcome) = match taken {
                            Taken::Claimed(run) => {
                                (run.id.clone(), executor.execute_claimed(*run).await)
                            }
                            Taken::Marked(id) => {
                                let outcome = executor.execute(&id).await;
                                (id, outcome)
                            }
                        };
                        if let Err(error) = outcome {
                            tracing::warn!(run = %run_id, %error, "A run could not be executed.");
                        }
                        drop(permit);
                    });
                }
            }
            Err(error) => tracing::warn!(%error, "Could not look for due runs."),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_jitter_and_honours_retry_after() {
        let base = Duration::from_secs(1);
        for (attempts, nominal) in [(1, 1.0), (2, 2.0), (3, 4.0), (5, 16.0)] {
            let wait = backoff(base, attempts, None).as_secs_f64();
            assert!(
                (nominal * 0.8..=nominal * 1.2).contains(&wait),
                "{attempts}: {wait}"
            );
        }
        assert_eq!(
            backoff(base, 1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            backoff(base, 40, None).min(MAX_BACKOFF),
            MAX_BACKOFF.min(backoff(base, 40, None))
        );
        assert!(backoff(base, 40, None) <= MAX_BACKOFF);
    }
}
