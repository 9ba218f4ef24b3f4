//! The dispatcher: reads the event log in order from a durable cursor and turns every event into
//! one run per listening flow and one delivery per matching subscription. The runs, the
//! deliveries and the advanced cursor are committed together, so an event is never skipped and
//! never dispatched twice; the jobs are queued right after (a job lost in a crash in between is
//! found again by the sweepers).
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
use timix_engine::store::clock::{Millis, now_ms, parse_instant};
use timix_engine::store::db::{Db, Tx};
use timix_engine::store::events;
use timix_engine::store::jobs::Queues;
use timix_engine::store::leases::DispatcherCursor;

const BATCH: i64 = 500;
pub use timix_engine::automation::runs::MAX_CHAIN_DEPTH;
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
        let listen_url = db.backend().notifies().then(|| database_url.to_owned());
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
        // Finished runs join the log (run.succeeded, run.failed) before the log is read on.
        let announced = runs::outcomes::announce(&self.db).await?;
        let cursor = self.cursor.position(&self.db).await?;
        let events = events::after(&self.db, cursor, BATCH).await?;
        let Some(last) = events.last().map(|e| e.seq) else {
            return Ok(announced > 0);
        };
        let full = events.len() as i64 == BATCH || announced > 0;
        let mut tx = self.db.begin().await?;
        // The cursor moves only if this process still holds the lease and nobody moved it.
        if !self.cursor.advance(&mut tx, cursor, last).await? {
            return Ok(false);
        }
        let mut batch = Batch::default();
        let now = now_ms();
        for event in events.into_iter().map(Arc::new) {
            let occurred = parse_instant(&event.occurred_at).unwrap_or(now);
            self.start_runs(&mut tx, &mut batch, &event, occurred)
                .await?;
            self.create_deliveries(&mut tx, &mut batch, &event, occurred)
                .await?;
        }
        tx.commit().await?;
        self.hand_on(batch).await;
        Ok(full)
    }

    /// Starts a run of every enabled flow that listens to `event`, unless its chain is cut.
    async fn start_runs(
        &self,
        tx: &mut Tx,
        batch: &mut Batch,
        event: &events::Event,
        occurred: Millis,
    ) -> Result<()> {
        let key = (event.organization_id.clone(), event.kind.clone());
        if !batch.listening.contains_key(&key) {
            let found = flows::listening(&mut *tx, &key.0, &key.1).await?;
            batch.listening.insert(key.clone(), found);
        }
        // Taken out while its flows start (which changes the batch), put back after.
        let listening = batch.listening.remove(&key).unwrap_or_default();
        let lineage = Lineage {
            depth: event.origin_depth,
            root: Some(
                event
                    .origin_root
                    .clone()
                    .unwrap_or_else(|| event.id.clone()),
            ),
        };
        for flow in &listening {
            let enabled_before = flow.enabled_at.is_some_and(|at| at <= occurred);
            if !enabled_before {
                continue;
            }
            match flows::starts_on(flow, event) {
                Ok(true) => {}
                Ok(false) => continue,
                Err(reason) => {
                    tracing::info!(flow = %flow.id, event = %event.id, %reason, "The flow's condition could not be evaluated; no run.");
                    continue;
                }
            }
            // A flow never starts on its own changes.
            if event.origin_flow.as_deref() == Some(flow.id.as_str()) {
                continue;
            }
            if let Some(cut) = self.chain_cut(tx, batch, event).await? {
                batch.cut.push((flow.id.clone(), cut));
                continue;
            }
            let new_run = runs::NewRun {
                flow,
                source_key: &event.id,
                trigger: &event.data,
                lineage: &lineage,
                test: None,
            };
            self.start_run(tx, batch, &new_run).await?;
        }
        batch.listening.insert(key, listening);
        Ok(())
    }

    /// Whether the chain of flows `event` belongs to may not start another run: it is too deep,
    /// or it started its budget of runs (counted once per batch, then kept up to date here).
    async fn chain_cut(
        &self,
        tx: &mut Tx,
        batch: &mut Batch,
        event: &events::Event,
    ) -> Result<Option<Cut>> {
        if event.origin_depth >= MAX_CHAIN_DEPTH {
            return Ok(Some(Cut::Depth));
        }
        // Only a change a flow made has a root: its chain may start only so many runs in all.
        let Some(root) = &event.origin_root else {
            return Ok(None);
        };
        if !batch.chain_runs.contains_key(root) {
            let so_far = runs::count_of_root(&mut *tx, root).await?;
            batch.chain_runs.insert(root.clone(), so_far);
        }
        let so_far = batch.chain_runs.get_mut(root).expect("counted above");
        if *so_far >= self.fanout_limit {
            return Ok(Some(Cut::Fanout(self.fanout_limit)));
        }
        *so_far += 1;
        Ok(None)
    }

    /// Starts a flow's run for an event: claimed for this process's lane when it has room and
    /// the organization's budget allows it now, queued otherwise (until the budget allows it).
    async fn start_run(
        &self,
        tx: &mut Tx,
        batch: &mut Batch,
        new_run: &runs::NewRun<'_>,
    ) -> Result<()> {
        let flow = new_run.flow;
        let wait = match &self.admission {
            Some(admission) => admission.book(&flow.org_id).await?,
            None => None,
        };
        // The flow's own throttle, if it has one, on top of the organization's.
        let wait = wait.max(runs::throttled(&mut *tx, flow).await?);
        // Unique per (flow, event): a replayed batch starts nothing twice.
        let started = match &self.run_lane {
            // A flow limiting its concurrent runs has them claimed where the limit holds.
            Some(lane)
                if lane.has_room() && wait.is_none() && flow.settings.max_concurrency.is_none() =>
            {
                let claimed = runs::start_claimed(&mut *tx, new_run, lane.lease_ms).await?;
                let started = claimed.is_some();
                batch.claimed_runs.extend(claimed);
                started
            }
            _ => {
                let run = runs::start_at(&mut *tx, new_run, wait).await?;
                let started = run.is_some();
                // A run booked for later is taken by the sweeper when its time comes.
                if wait.is_none() {
                    batch.started_runs.extend(run);
                }
                started
            }
        };
        // A replayed batch started nothing new: the slot goes back.
        if let (false, Some(admission)) = (started, &self.admission) {
            admission.refund(&flow.org_id);
        }
        Ok(())
    }

    /// Creates a delivery of `event` for every enabled subscription that wants it.
    async fn create_deliveries(
        &self,
        tx: &mut Tx,
        batch: &mut Batch,
        event: &Arc<events::Event>,
        occurred: Millis,
    ) -> Result<()> {
        let org = &event.organization_id;
        if !batch.subscriptions.contains_key(org) {
            let found = webhooks::enabled_for(&mut *tx, org).await?;
            batch.subscriptions.insert(org.clone(), found);
        }
        // Handed to this process's fast lane, a delivery is created claimed.
        let status = if self.fast_lane.is_some() {
            DeliveryStatus::Sending
        } else {
            DeliveryStatus::Pending
        };
        for sub in &batch.subscriptions[org] {
            if occurred < sub.created_at || !sub.wants(&event.kind, &event.data) {
                continue;
            }
            if let Some(id) = deliveries::create(&mut *tx, event, &sub.id, status).await? {
                batch.deliveries.push((id, event.clone(), sub.clone()));
            }
        }
        Ok(())
    }

    /// After the batch committed: deliveries and runs go to this process's lanes and to the
    /// queue, and flows whose chain was cut say why.
    async fn hand_on(&self, batch: Batch) {
        match &self.fast_lane {
            // Created claimed ("sending") and attempted here at once, with no job: should this
            // process stop first, the sweeper finds them still sending past an attempt's
            // timeout and queues them again.
            Some(lane) => {
                for (delivery_id, event, subscription) in batch.deliveries {
                    let _ = lane.send(FastAttempt {
                        delivery_id,
                        known: Some((event, subscription)),
                    });
                }
            }
            None => {
                let jobs: Vec<DeliveryJob> = batch
                    .deliveries
                    .into_iter()
                    .map(|(delivery_id, ..)| DeliveryJob { delivery_id })
                    .collect();
                // The deliveries are committed: a job that cannot be queued now is found by
                // the sweeper.
                if let Err(error) = self.queues.push_many(jobs).await {
                    tracing::warn!(%error, "Could not queue delivery jobs; the sweeper will.");
                }
            }
        }
        // Before the runs start, so that whoever sees them can see why a chain was cut.
        for (flow_id, reason) in batch.cut {
            if let Err(error) = flows::note_error(&self.db, &flow_id, Some(&reason.message())).await
            {
                tracing::warn!(%error, "Could not note a cut chain of flows.");
            }
        }
        dispatch_runs(
            &self.db,
            self.run_lane.as_ref(),
            Some(&self.queues),
            batch.started_runs,
        )
        .await;
        if let Some(lane) = &self.run_lane {
            lane.hand_over(batch.claimed_runs);
        }
    }
}

/// What one batch of events starts and creates, gathered inside its transaction and handed on
/// after it commits, with what the batch looked up once.
#[derive(Default)]
struct Batch {
    deliveries: Vec<(String, Arc<events::Event>, Subscription)>,
    /// Runs queued to start now.
    started_runs: Vec<String>,
    /// Runs created claimed by this process's lane.
    claimed_runs: Vec<runs::ClaimedRun>,
    /// Flows whose run was not started, and why.
    cut: Vec<(String, Cut)>,
    /// Runs each chain started so far, by root.
    chain_runs: HashMap<String, i64>,
    /// Enabled flows by (organization, event type).
    listening: HashMap<(String, String), Vec<flows::LiveFlow>>,
    /// Enabled subscriptions by organization.
    subscriptions: HashMap<String, Vec<Subscription>>,
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
