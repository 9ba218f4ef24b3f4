//! The dispatcher: reads the event log in order from a durable cursor and turns every event into
//! one delivery per matching subscription. The deliveries and the advanced cursor are committed
//! together, so an event is never skipped and never dispatched twice; the delivery jobs are
//! queued right after (a job lost in a crash in between is found again by the sweeper).
//! One dispatcher works at a time across processes: it holds a lease it keeps renewing.

use std::collections::HashMap;
use std::time::Duration;

use std::sync::Arc;

use timix_connectors::webhooks::{DeliveryJob, FastAttempt};

use crate::executor::{RunLane, dispatch_runs};
use timix_engine::automation::flows;
use timix_engine::automation::run_admission::RunAdmission;
use timix_engine::automation::runs::{self, Lineage};
use timix_engine::automation::webhooks::deliveries::{self, DeliveryStatus};
use timix_engine::automation::webhooks::{self, Subscription};
use timix_engine::error::Result;
use timix_engine::store::clock::{now_ms, parse_instant};
use timix_engine::store::db::{Backend, Db};
use timix_engine::store::events;
use timix_engine::store::jobs::Queues;
use timix_engine::store::leases::DispatcherCursor;

const BATCH: i64 = 500;
/// How many flows may start each other in a row (A's step makes the event that starts B…).
pub const MAX_CHAIN_DEPTH: i64 = 5;
/// How many runs one chain of flows may start in all, from its root event or run (the depth
/// limit alone lets a few flows on one event multiply into thousands of runs).
pub const DEFAULT_FANOUT_LIMIT: i64 = 100;

pub struct Dispatcher {
    pub db: Db,
    pub queues: Queues,
    /// The cursor in the event log, and this process's name in its lease.
    pub cursor: DispatcherCursor,
    /// Postgres URL to `LISTEN` on, so events of other processes wake this one at once.
    pub listen_url: Option<String>,
    /// Deliveries queued by this process are also handed here, to be attempted at once in this
    /// process; the durable job stays as the fallback (a delivery is attempted once either way).
    pub fast_lane: Option<tokio::sync::mpsc::UnboundedSender<FastAttempt>>,
    /// Where the runs it starts go for immediate execution, when this process runs them.
    pub run_lane: Option<RunLane>,
    /// Paces the runs each organization starts; none lets every run start at once.
    pub admission: Option<Arc<RunAdmission>>,
    /// Most runs one chain of flows may start ([`DEFAULT_FANOUT_LIMIT`]).
    pub fanout_limit: i64,
}

impl Dispatcher {
    pub fn new(db: Db, queues: Queues, database_url: &str) -> Self {
        let listen_url = (db.backend() == Backend::Postgres).then(|| database_url.to_owned());
        Self {
            db,
            queues,
            cursor: DispatcherCursor::new(format!("dispatcher-{}", ulid::Ulid::generate())),
            listen_url,
            fast_lane: None,
            run_lane: None,
            admission: None,
            fanout_limit: DEFAULT_FANOUT_LIMIT,
        }
    }

    /// Dispatches until the future is dropped.
    pub async fn run(self) {
        let mut local = self.db.watch_events();
        let mut listener = match &self.listen_url {
            Some(url) => match self.db.listen_events(url).await {
                Ok(listener) => Some(listener),
                Err(error) => {
                    tracing::warn!(%error, "Cannot LISTEN for events; polling every second.");
                    None
                }
            },
            None => None,
        };
        loop {
            let more = match self.step().await {
                Ok(more) => more,
                Err(error) => {
                    tracing::warn!(%error, "Dispatching failed; retrying.");
                    false
                }
            };
            if more {
                continue;
            }
            let remote = async {
                match listener.as_mut() {
                    Some(l) => l.notified().await,
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = local.changed() => {},
                _ = remote => {},
                _ = tokio::time::sleep(Duration::from_secs(1)) => {},
            }
        }
    }

    /// One batch. Returns whether there may be more right away.
    pub async fn step(&self) -> Result<bool> {
        if !self.cursor.take_lease(&self.db).await? {
            return Ok(false);
        }
        let cursor = self.cursor.position(&self.db).await?;
        let batch = events::after(&self.db, cursor, BATCH).await?;
        let Some(last) = batch.last().map(|e| e.seq) else {
            return Ok(false);
        };
        let mut subscriptions: HashMap<String, Vec<Subscription>> = HashMap::new();
        let mut tx = self.db.begin().await?;
        // The cursor moves only if this process still holds the lease and nobody moved it.
        if !self.cursor.advance(&mut tx, cursor, last).await? {
            return Ok(false);
        }
        let mut queued = Vec::new();
        let mut started_runs = Vec::new();
        let mut claimed_runs = Vec::new();
        let mut cut: Vec<(String, Cut)> = Vec::new();
        // Runs each chain started so far: counted once per batch, then kept up to date here.
        let mut chain_runs: HashMap<String, i64> = HashMap::new();
        let mut listening: HashMap<(String, String), Vec<flows::LiveFlow>> = HashMap::new();
        let now = now_ms();
        let batch: Vec<Arc<events::Event>> = batch.into_iter().map(Arc::new).collect();
        for event in &batch {
            let occurred = parse_instant(&event.occurred_at).unwrap_or(now);
            let key = (event.organization_id.clone(), event.kind.clone());
            if !listening.contains_key(&key) {
                let found = flows::listening(&mut tx, &key.0, &key.1).await?;
                listening.insert(key.clone(), found);
            }
            let lineage = Lineage {
                depth: event.origin_depth,
                root: Some(
                    event
                        .origin_root
                        .clone()
                        .unwrap_or_else(|| event.id.clone()),
                ),
            };
            for flow in &listening[&key] {
                let enabled_before = flow.enabled_at.is_some_and(|at| at <= occurred);
                if !enabled_before || !flows::matches_filters(&flow.trigger, &event.data) {
                    continue;
                }
                // A flow never starts on its own changes, and chains of flows end.
                if event.origin_flow.as_deref() == Some(flow.id.as_str()) {
                    continue;
                }
                if event.origin_depth >= MAX_CHAIN_DEPTH {
                    cut.push((flow.id.clone(), Cut::Depth));
                    continue;
                }
                // A change a flow made: its chain may start only so many runs in all.
                if let Some(root) = &event.origin_root {
                    if !chain_runs.contains_key(root) {
                        let so_far = runs::count_of_root(&mut tx, root).await?;
                        chain_runs.insert(root.clone(), so_far);
                    }
                    let so_far = chain_runs.get_mut(root).expect("counted above");
                    if *so_far >= self.fanout_limit {
                        cut.push((flow.id.clone(), Cut::Fanout(self.fanout_limit)));
                        continue;
                    }
                    *so_far += 1;
                }
                let wait = match &self.admission {
                    Some(admission) => admission.book(&flow.org_id).await?,
                    None => None,
                };
                // Unique per (flow, event): a replayed batch starts nothing twice.
                let new_run = runs::NewRun {
                    flow,
                    source_key: &event.id,
                    trigger: &event.data,
                    lineage: &lineage,
                };
                let started = match &self.run_lane {
                    Some(lane) if lane.has_room() && wait.is_none() => {
                        let claimed = runs::start_claimed(&mut tx, &new_run, lane.lease_ms).await?;
                        let started = claimed.is_some();
                        claimed_runs.extend(claimed);
                        started
                    }
                    _ => {
                        let run = runs::start_at(&mut tx, &new_run, wait).await?;
                        let started = run.is_some();
                        // A run booked for later is taken by the sweeper when its time comes.
                        if wait.is_none() {
                            started_runs.extend(run);
                        }
                        started
                    }
                };
                // A replayed batch started nothing new: the slot goes back.
                if let (false, Some(admission)) = (started, &self.admission) {
                    admission.refund(&flow.org_id);
                }
            }
            if !subscriptions.contains_key(&event.organization_id) {
                let subs = webhooks::enabled_for(&mut tx, &event.organization_id).await?;
                subscriptions.insert(event.organization_id.clone(), subs);
            }
            for sub in &subscriptions[&event.organization_id] {
                if occurred < sub.created_at || !sub.wants(&event.kind, &event.data) {
                    continue;
                }
                // Handed to this process's fast lane, it is created claimed.
                let status = if self.fast_lane.is_some() {
                    DeliveryStatus::Sending
                } else {
                    DeliveryStatus::Pending
                };
                if let Some(id) = deliveries::create(&mut tx, event, &sub.id, status).await? {
                    queued.push((id, event.clone(), sub.clone()));
                }
            }
        }
        tx.commit().await?;
        let jobs: Vec<DeliveryJob> = queued
            .iter()
            .map(|(id, ..)| DeliveryJob {
                delivery_id: id.clone(),
            })
            .collect();
        if let Some(lane) = &self.fast_lane {
            for (delivery_id, event, subscription) in queued {
                let _ = lane.send(FastAttempt {
                    delivery_id,
                    known: Some((event, subscription)),
                });
            }
        }
        // The deliveries are committed: a job that cannot be queued now is found by the sweeper.
        if let Err(error) = self.queues.push_many(jobs).await {
            tracing::warn!(%error, "Could not queue delivery jobs; the sweeper will.");
        }
        dispatch_runs(self.run_lane.as_ref(), Some(&self.queues), started_runs).await;
        if let Some(lane) = &self.run_lane {
            lane.hand_over(claimed_runs);
        }
        for (flow_id, reason) in cut {
            if let Err(error) = flows::note_error(&self.db, &flow_id, Some(&reason.message())).await
            {
                tracing::warn!(%error, "Could not note a cut chain of flows.");
            }
        }
        Ok(batch.len() as i64 == BATCH)
    }
}

/// Why an event did not start a flow's run although the flow listens to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// The chain of flows starting each other is [`MAX_CHAIN_DEPTH`] deep.
    Depth,
    /// The chain started this many runs already.
    Fanout(i64),
}

impl Cut {
    /// The reason shown on the flow.
    fn message(self) -> String {
        match self {
            Cut::Depth => {
                format!(
                    "not started (chain_limit): a chain of {MAX_CHAIN_DEPTH} flows starting each other"
                )
            }
            Cut::Fanout(limit) => format!(
                "not started (fanout_limit): the chain of flows this change belongs to started {limit} runs already"
            ),
        }
    }
}
