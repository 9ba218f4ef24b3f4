//! Inbound webhook triggers: `POST /hooks/in/{token}` starts a run of the token's flow with the
//! payload as its trigger record. A flow with a secret takes only calls signed the way its
//! trigger names (`signature`, see [`crate::signatures`]). A sender's retry carrying the same
//! delivery id starts no second run. A flow that could not run (its owner is gone or
//! deactivated, its organization read-only) refuses the call instead of queueing a run that
//! would fail.

use serde_json::{Value, json};
use timix_engine::connections::Vault;
use timix_engine::db::Db;
use timix_engine::error::{Error, Result};
use timix_engine::flows;
use timix_engine::jobs::Queues;
use timix_engine::runs;

use crate::flow_runner::{RunLane, dispatch_runs};
use crate::signatures::{self, Headers, Refused};

/// What the sender gets back: the run it started; none for a retry of an earlier call.
pub struct Accepted {
    pub run_id: Option<String>,
    pub duplicate: bool,
}

/// Where accepted calls go.
#[derive(Clone, Copy)]
pub struct Inbound<'a> {
    pub db: &'a Db,
    /// Opens the flows' signing secrets.
    pub vault: &'a Vault,
    /// Runs this process executes at once.
    pub lane: Option<&'a RunLane>,
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
        lane,
        queues,
    } = inbound;
    let Some(flow) = flows::by_token(db, call.token).await? else {
        return Err(Error::NotFound("webhook"));
    };
    let delivery_id = match (flow.webhook_secret(vault)?, flow.signature()) {
        (Some(secret), Some(scheme)) => {
            let now = timix_engine::time::now_ms() / 1000;
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
    // Only a caller who holds the credential learns why the flow cannot run.
    flows::check_runnable(db, &flow).await?;
    let payload: Value = if call.body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        serde_json::from_slice(call.body)
            .unwrap_or_else(|_| json!({"body": String::from_utf8_lossy(call.body)}))
    };
    if let Some(id) = &delivery_id
        && (id.is_empty() || id.len() > 255)
    {
        return Err(Error::InvalidParameter(
            "the delivery id (Idempotency-Key, webhook-id or the scheme's own) must be 1 to 255 characters"
                .into(),
        ));
    }
    let source = match delivery_id {
        Some(id) => format!("inbound:{id}"),
        None => format!("inbound:{}", ulid::Ulid::generate()),
    };
    let run_id = match lane {
        // This process executes it at once: created claimed, handed over once committed.
        Some(lane) if lane.has_room() => {
            let claimed =
                runs::start_claimed_now(db, &flow, &source, &payload, 0, lane.lease_ms).await?;
            let id = claimed.as_ref().map(|run| run.id.clone());
            lane.hand_over(claimed.into_iter().collect());
            id
        }
        _ => {
            let mut tx = db.begin().await?;
            let id = runs::start(&mut tx, &flow, &source, &payload, 0).await?;
            tx.commit().await?;
            dispatch_runs(lane, queues, id.iter().cloned().collect()).await;
            id
        }
    };
    Ok(Accepted {
        duplicate: run_id.is_none(),
        run_id,
    })
}
