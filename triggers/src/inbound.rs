//! Inbound webhook triggers: `POST /hooks/in/{token}` starts a run of the token's flow with the
//! payload as its trigger record. A flow with a secret takes only calls signed the way its
//! trigger names (`signature`, see [`crate::signatures`]). A sender's retry carrying the same
//! delivery id starts no second run. A flow that could not run (its owner is gone or
//! deactivated, its organization read-only) refuses the call instead of queueing a run that
//! would fail. A payload nested deeper than [`json::MAX_DEPTH`] levels is refused (422), so
//! that its run can always be read back. The run is paced by its organization's run budget,
//! and by the work waiting for this process's workers: a call is held while they are busy and
//! refused (503, `Retry-After`) when the oldest waiting run has waited past the operator's
//! limit (`executor::backlog`). A process without workers refuses by the runs waiting in the
//! database for the worker processes.

use serde_json::{Value, json};
use timix_engine::automation::connections::Vault;
use timix_engine::automation::flows;
use timix_engine::automation::run_admission::RunAdmission;
use timix_engine::automation::runs;
use timix_engine::error::{Error, Result};
use timix_engine::store::db::Db;
use timix_engine::store::jobs::Queues;
use timix_engine::store::json;

use crate::executor::{Admit, Prepared, RunLane, SharedBacklog, dispatch_runs};
use crate::signatures::{self, Headers, Refused};

/// What the sender gets back: the run it started; none for a retry of an earlier call.
pub struct Accepted {
    pub run_id: Option<String>,
    pub duplicate: bool,
    /// Kept as a sample of the flow (someone listens for a test event); no run.
    pub sample: bool,
}

/// Where accepted calls go.
#[derive(Clone, Copy)]
pub struct Inbound<'a> {
    pub db: &'a Db,
    /// Opens the flows' signing secrets.
    pub vault: &'a Vault,
    /// Paces the runs each organization starts.
    pub admission: &'a RunAdmission,
    /// Runs this process executes at once.
    pub lane: Option<&'a RunLane>,
    /// Without a lane: the runs waiting in the database for the worker processes, which pace
    /// the calls instead.
    pub shared_backlog: Option<&'a SharedBacklog>,
    pub queues: Option<&'a Queues>,
}

/// One call: the token of its URL, its headers and its body as received.
pub struct Call<'a> {
    pub token: &'a str,
    pub headers: Headers<'a>,
    pub body: &'a [u8],
}

/// Accepts one call of an inbound webhook.
pub async fn accept(inbound: Inbound<'_>, call: Call<'_>) -> Result<Accepted> {
    let Inbound {
        db,
        vault,
        admission,
        lane,
        shared_backlog,
        queues,
    } = inbound;
    let Some((flow, actor)) = flows::by_token(db, call.token).await? else {
        return Err(Error::NotFound("webhook"));
    };
    let delivery_id = match (flow.webhook_secret(vault)?, flow.signature()) {
        (Some(secret), Some(scheme)) => {
            let now = timix_engine::store::clock::now_ms() / 1000;
            signatures::verify(scheme, &secret, call.headers, call.body, now).map_err(
                |refused| match refused {
                    Refused::Signature(message) => {
                        Error::unauthenticated("invalid_signature", message)
                    }
                    Refused::Stale(message) => {
                        Error::unauthenticated("timestamp_out_of_tolerance", message)
                    }
                },
            )?
        }
        (Some(_), None) => {
            return Err(Error::Internal(
                "a webhook flow has a secret but no signature scheme".into(),
            ));
        }
        (None, _) => signatures::plain_delivery_id(call.headers),
    };
    // Only a caller who holds the credential learns why the flow cannot run. The actor read
    // for it goes with the run to a worker of this process.
    let actor = actor?;
    let too_deep = || Error::validation("", "too_deep", json::too_deep_message());
    // A NUL character (`\u0000`) in the payload is kept: stored JSON escapes it. A step that
    // sends it on to this API is refused there (422) like any other caller.
    let payload: Value = if call.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(call.body) {
            Ok(payload) => payload,
            Err(error) if json::is_too_deep(&error) => return Err(too_deep()),
            Err(_) => json!({"body": String::from_utf8_lossy(call.body)}),
        }
    };
    if json::depth(&payload) > json::MAX_DEPTH {
        return Err(too_deep());
    }
    if let Some(id) = &delivery_id
        && (id.is_empty() || id.len() > 255)
    {
        return Err(Error::InvalidParameter(
            "the delivery id (Idempotency-Key, webhook-id or the scheme's own) must be 1 to 255 characters"
                .into(),
        ));
    }
    if flow.listening_for_samples() {
        let mut tx = db.begin().await?;
        flows::samples::keep(&mut tx, &flow.id, "webhook", &payload).await?;
        tx.commit().await?;
        return Ok(Accepted {
            run_id: None,
            duplicate: false,
            sample: true,
        });
    }
    // Found while it listened, and the window closed since: a disabled flow starts nothing.
    if !flow.is_enabled {
        return Err(Error::NotFound("webhook"));
    }
    // Paced by the work waiting here, and refused before anything is written when too much
    // waits (see `executor::backlog`).
    let admitted = match (lane, shared_backlog) {
        (Some(lane), _) => lane.backlog.admit().await,
        (None, Some(shared)) => shared.admit(db).await?,
        (None, None) => Admit::Now,
    };
    if let Admit::Refused { retry_after } = admitted {
        return Err(Error::Overloaded {
            retry_after_secs: retry_after.as_secs(),
        });
    }
    let source = match delivery_id {
        Some(id) => format!("inbound:{id}"),
        None => format!("inbound:{}", ulid::Ulid::generate()),
    };
    let lineage = runs::Lineage::default();
    let new_run = runs::NewRun {
        flow: &flow,
        source_key: &source,
        trigger: &payload,
        lineage: &lineage,
        test: None,
    };
    let org_id = flow.org_id.clone();
    let wait = admission.book(&org_id).await?;
    // A throttled or limited flow's runs go through the queue, where those settings hold.
    let throttled =
        flow.settings.max_runs_per_minute.is_some() || flow.settings.max_concurrency.is_some();
    let run_id = match lane {
        // This process executes it at once: created claimed, handed over once committed.
        Some(lane) if lane.has_room() && wait.is_none() && !throttled => {
            let claimed = runs::start_claimed_now(db, &new_run, lane.lease_ms).await?;
            let id = claimed.as_ref().map(|run| run.id.clone());
            if let Some(run) = claimed {
                let prepared = Prepared { flow, actor };
                lane.hand_over_one(run, Some(prepared));
            }
            id
        }
        // A process that executes no runs (an API process) on Postgres: created open and offered
        // to the workers in one statement.
        None if wait.is_none() && !throttled && db.backend().notifies() => {
            runs::start_offered(db, &new_run).await?
        }
        _ => {
            let mut tx = db.begin().await?;
            // The flow's own throttle, if it has one, on top of the organization's.
            let wait = wait.max(runs::throttled(&mut tx, &flow).await?);
            let id = runs::start_at(&mut tx, &new_run, wait).await?;
            tx.commit().await?;
            // One booked for later is taken by the sweeper when its time comes.
            if wait.is_none() {
                dispatch_runs(db, lane, queues, id.iter().cloned().collect()).await;
            }
            id
        }
    };
    // A sender's retry started nothing: its slot goes back.
    if run_id.is_none() {
        admission.refund(&org_id);
    }
    Ok(Accepted {
        duplicate: run_id.is_none(),
        run_id,
        sample: false,
    })
}
