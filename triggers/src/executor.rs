//! The flow executor: executes flow runs. A run is a job on the queue ([`RunJob`]); the worker that takes it
//! claims the run with a lease, then performs its steps in order: render the step's input from
//! the trigger and earlier outputs, check it against the action's schema, perform it, record it.
//! A retryable failure puts the run back in the queue after a backoff (exponential with jitter,
//! or the target's `Retry-After`); a permanent one fails the run with the upstream error.

use std::sync::Arc;
use std::time::Duration;

use rand::RngExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use timix_actions::{ActionResult, Performer, ThisInstance};
use timix_engine::access::auth::{self, Actor, ApiKeyRef};
use timix_engine::automation::connections::{self, Resolved, Vault};
use timix_engine::automation::flows::{self, LiveFlow};
use timix_engine::automation::manifest::{ActionManifest, Manifests};
use timix_engine::automation::run_admission::RunAdmission;
use timix_engine::automation::runs::{self, StepRecord, StepStatus};
use timix_engine::automation::template;
use timix_engine::error::Result;
use timix_engine::store::clock::{format_ms, now_ms};
use timix_engine::store::db::Db;
use timix_engine::store::events;
use timix_engine::store::jobs::{Job, JobHandler, Queues};
use tracing::Instrument;

/// The longest wait between two attempts of a step.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

/// What a process hands its own workers: a run it created already claimed (it executes it
/// at once), or the id of a run to claim.
#[derive(Debug)]
pub enum Handoff {
    /// With when it was handed over: its lease runs from its creation.
    Claimed(runs::ClaimedRun, std::time::Instant),
    Due(String),
}

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
}

/// Claimed runs that may wait per worker slot of the lane: enough for a burst, few enough that
/// the wait stays well within a lease.
const CLAIMED_PER_SLOT: usize = 32;

impl RunLane {
    pub fn new(
        lease: Duration,
        capacity: usize,
    ) -> (Self, tokio::sync::mpsc::UnboundedReceiver<Handoff>) {
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let lane = RunLane {
            sender,
            lease_ms: lease.as_millis() as i64,
            claimed: Arc::default(),
            capacity: capacity.max(1) * CLAIMED_PER_SLOT,
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
            self.claimed
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = self
                .sender
                .send(Handoff::Claimed(run, std::time::Instant::now()));
        }
    }
}

/// Hands new runs to this process's lane when it has one, else queues a job for each.
pub async fn dispatch_runs(lane: Option<&RunLane>, queues: Option<&Queues>, run_ids: Vec<String>) {
    if run_ids.is_empty() {
        return;
    }
    if let Some(lane) = lane {
        for id in run_ids {
            let _ = lane.sender.send(Handoff::Due(id));
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
        let executor = executor.clone();
        let claimed = lane_handle.claimed.clone();
        tokio::spawn(async move {
            let (run_id, result) = match handoff {
                Handoff::Claimed(run, handed_at) => {
                    let id = run.id.clone();
                    let result = executor.execute_handed(run, handed_at).await;
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

    /// Who a flow acts as: its creator, with the creator's role as it is now.
    pub async fn actor_of(&self, flow: &flows::LiveFlow) -> Result<auth::Actor> {
        let on_behalf = ApiKeyRef {
            id: format!("flow:{}", flow.id),
            name: flow.name.clone(),
            prefix: String::new(),
            expires_at: None,
        };
        auth::acting_user(&self.db, &flow.org_id, &flow.created_by, on_behalf).await
    }

    /// Executes a run if it is due and nobody else holds it.
    pub async fn execute(&self, run_id: &str) -> Result<()> {
        match runs::claim(&self.db, run_id, self.lease_ms()).await? {
            Some(run) => self.execute_claimed(run).await,
            None => Ok(()),
        }
    }

    /// Executes a run handed over claimed. One that waited a quarter of its lease renews it
    /// first, and is left alone if another worker took it meanwhile.
    pub async fn execute_handed(
        &self,
        run: runs::ClaimedRun,
        handed_at: std::time::Instant,
    ) -> Result<()> {
        if handed_at.elapsed() > self.lease / 4
            && !runs::renew(&self.db, &run, self.lease_ms()).await?
        {
            return Ok(());
        }
        self.execute_claimed(run).await
    }

    /// Executes a run this worker holds, from its first unfinished step. Every log line of it
    /// (the in-process API calls of its steps included) carries its `run_id` and `flow_id`.
    pub async fn execute_claimed(&self, run: runs::ClaimedRun) -> Result<()> {
        let span = tracing::info_span!("run", run_id = %run.id, flow_id = %run.flow_id);
        async move {
            tracing::debug!("Run started.");
            let outcome = self.execute_steps(run).await;
            match &outcome {
                Ok(()) => tracing::info!("Finished working on the run."),
                Err(error) => tracing::warn!(%error, "Run could not be executed."),
            }
            outcome
        }
        .instrument(span)
        .await
    }

    async fn execute_steps(&self, run: runs::ClaimedRun) -> Result<()> {
        let mut steps = run.steps.clone();
        let Some(flow) = flows::live(&self.db, &run.flow_id).await? else {
            return runs::finish(&self.db, &run, &steps, Some("the flow was deleted")).await;
        };
        if run.takeovers >= runs::POISONED_AFTER {
            return self.poisoned(&flow.id, &run, &mut steps).await;
        }
        let actor = match self.actor_of(&flow).await {
            Ok(actor) => actor,
            Err(error) => {
                return self.fail(&flow.id, &run, &steps, &error.to_string()).await;
            }
        };
        let mut outputs = Map::new();
        for (i, record) in steps.clone().iter().enumerate() {
            if record.status == StepStatus::Succeeded {
                outputs.insert(
                    record.key.clone(),
                    record.output.clone().unwrap_or(Value::Null),
                );
                continue;
            }
            let context = json!({
                "trigger": run.trigger,
                "steps": outputs,
                "flow": flows::context_of(&flow),
                "now": format_ms(now_ms()),
            });
            let prepared = match self.prepare(&flow, context, i, &mut steps[i]).await? {
                Ok(prepared) => prepared,
                Err(error) => return self.step_failed(&run, &mut steps, i, error).await,
            };
            steps[i].attempts += 1;
            steps[i].started_at = Some(format_ms(now_ms()));
            let action = prepared.action;
            let outcome = self.attempt(&flow, &run, &actor, prepared).await;
            match outcome {
                ActionResult::Done(output) => {
                    let step = &mut steps[i];
                    step.status = StepStatus::Succeeded;
                    step.error = None;
                    step.finished_at = Some(format_ms(now_ms()));
                    step.output = Some(output.clone());
                    outputs.insert(step.key.clone(), output);
                    // The last step is saved with the run's end.
                    if i + 1 < steps.len()
                        && !runs::save_steps(&self.db, &run, &steps, self.lease_ms()).await?
                    {
                        // Taken over by another worker: it carries on, this one stops.
                        return Ok(());
                    }
                }
                ActionResult::Retry { error, after }
                    if steps[i].attempts < action.retry.max_attempts =>
                {
                    steps[i].error = Some(error);
                    let wait = backoff(self.retry_base, steps[i].attempts, after);
                    return runs::retry_at(
                        &self.db,
                        &run,
                        &steps,
                        now_ms() + wait.as_millis() as i64,
                    )
                    .await;
                }
                ActionResult::Retry { error, .. } | ActionResult::Fail(error) => {
                    return self.step_failed(&run, &mut steps, i, error).await;
                }
            }
        }
        runs::finish(&self.db, &run, &steps, None).await?;
        if flow.last_error.is_some() {
            flows::note_error(&self.db, &flow.id, None).await?;
        }
        Ok(())
    }

    /// Readies step `i` of `flow`: its action, its input rendered from `context` and checked
    /// against the action's schema (kept on `record`, also when it is refused), and its
    /// connection. A refusal is the error the step fails with.
    async fn prepare(
        &self,
        flow: &LiveFlow,
        context: Value,
        i: usize,
        record: &mut StepRecord,
    ) -> Result<std::result::Result<Prepared<'_>, Value>> {
        let definition = flow
            .steps
            .as_array()
            .and_then(|steps| steps.iter().find(|d| d["key"] == record.key.as_str()))
            .cloned()
            .unwrap_or(Value::Null);
        let Some(action) = self.manifests.actions.get(&record.action) else {
            let message = format!("{} is no longer an action", record.action);
            return Ok(Err(failure("unknown_manifest", &message)));
        };
        let mut input = match render_input(definition["input"].clone(), context, i).await {
            Ok(input) => input,
            Err((path, e)) => {
                return Ok(Err(
                    json!({"code": "template", "message": format!("{path}: {e}"), "field": path}),
                ));
            }
        };
        self.manifests.coerce_input(&action.key, &mut input);
        record.input = Some(input.clone());
        if let Err(problems) = self.manifests.check_input(&action.key, &input) {
            let details: Vec<Value> = problems
                .iter()
                .map(|(path, message)| json!({"field": path, "message": message}))
                .collect();
            return Ok(Err(json!({
                "code": "invalid_input",
                "message": format!("the input does not match {}: {}", action.key, problems[0].1),
                "details": details,
            })));
        }
        let connection = match definition["connectionId"].as_str() {
            None => None,
            Some(id) => {
                match connections::resolve(&self.db, &self.vault, &flow.org_id, id).await? {
                    Some(c) => Some(c),
                    None => {
                        return Ok(Err(failure(
                            "connection_not_found",
                            format!("the connection {id} was deleted"),
                        )));
                    }
                }
            }
        };
        Ok(Ok(Prepared {
            action,
            input,
            connection,
        }))
    }

    /// One attempt of a readied step, as the flow's owner; the changes it makes are this
    /// flow's, one level deeper in a chain.
    async fn attempt(
        &self,
        flow: &LiveFlow,
        run: &runs::ClaimedRun,
        actor: &Actor,
        step: Prepared<'_>,
    ) -> ActionResult {
        let cause = events::Cause {
            flow_id: flow.id.clone(),
            depth: run.depth + 1,
            root: run.root.clone(),
        };
        events::CAUSE
            .scope(
                cause,
                self.performer.perform(
                    timix_actions::Caller {
                        this: &*self.this_instance,
                        actor,
                    },
                    step.action,
                    &step.input,
                    step.connection.as_ref(),
                ),
            )
            .await
    }

    /// Fails a run whose worker stopped (a crash, a kill) each of the last times it held it,
    /// with no step finished in between: taking it again would most likely stop the next one.
    async fn poisoned(
        &self,
        flow_id: &str,
        run: &runs::ClaimedRun,
        steps: &mut [StepRecord],
    ) -> Result<()> {
        tracing::warn!(run = %run.id, takeovers = run.takeovers, "Run poisoned: not taken again.");
        let message = format!(
            "the run stopped its worker {} times without finishing a step (a crash or a kill); \
             it is not taken again. Replay it once the cause is fixed",
            run.takeovers
        );
        let Some(i) = steps.iter().position(|s| s.status != StepStatus::Succeeded) else {
            return self
                .fail(flow_id, run, steps, &format!("poisoned: {message}"))
                .await;
        };
        self.step_failed(run, steps, i, failure("poisoned", message))
            .await
    }

    async fn step_failed(
        &self,
        run: &runs::ClaimedRun,
        steps: &mut [StepRecord],
        i: usize,
        error: Value,
    ) -> Result<()> {
        let message = format!(
            "step {} ({}) failed: {}",
            steps[i].key,
            steps[i].action,
            error["message"].as_str().unwrap_or("error")
        );
        let step = &mut steps[i];
        step.status = StepStatus::Failed;
        step.error = Some(error);
        step.finished_at = Some(format_ms(now_ms()));
        self.fail(&run.flow_id, run, steps, &message).await
    }

    async fn fail(
        &self,
        flow_id: &str,
        run: &runs::ClaimedRun,
        steps: &[StepRecord],
        message: &str,
    ) -> Result<()> {
        runs::finish(&self.db, run, steps, Some(message)).await?;
        flows::note_error(&self.db, flow_id, Some(message)).await
    }
}

/// A step ready to be performed.
struct Prepared<'m> {
    action: &'m ActionManifest,
    input: Value,
    connection: Option<Resolved>,
}

/// Renders a step's input. Templates that run the engine (loops, conditions, helpers) render
/// on the blocking pool, never on the async workers: within their budget they are bounded, but
/// not free, and other organizations' requests share those workers.
async fn render_input(
    input: Value,
    context: Value,
    step: usize,
) -> std::result::Result<Value, (String, template::TemplateError)> {
    let at = format!("steps[{step}].input");
    if !template::needs_engine(&input) {
        return template::render_value(&input, &context, &at);
    }
    let render_at = at.clone();
    tokio::task::spawn_blocking(move || template::render_value(&input, &context, &render_at))
        .await
        .unwrap_or_else(|_| {
            Err((
                at,
                template::TemplateError("the template could not be rendered".into()),
            ))
        })
}

/// The safety net under the queue: every `every`, runs that are due (a retry whose time has
/// come, a new run whose job has not been taken, a run a crashed worker left) are executed here,
/// at most `concurrency` at a time. The claim on each run keeps it to one execution.
pub async fn sweep_runs(executor: Arc<FlowExecutor>, every: Duration, concurrency: usize) {
    let slots = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut tick = tokio::time::interval(every);
    loop {
        tick.tick().await;
        let free = slots.available_permits() as i64;
        if free == 0 {
            continue;
        }
        match runs::take_due(&executor.db, free).await {
            Ok(ids) => {
                for run_id in ids {
                    let Ok(permit) = slots.clone().acquire_owned().await else {
                        return;
                    };
                    let executor = executor.clone();
                    tokio::spawn(async move {
                        if let Err(error) = executor.execute(&run_id).await {
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
