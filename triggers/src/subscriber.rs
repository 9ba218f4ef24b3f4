//! Webhook triggers of connectors: for each enabled flow with one, the subscription is made at
//! the system it watches (the connector's `subscribe` request, given the flow's inbound URL and
//! signing secret), and ended (`unsubscribe`) once the flow is disabled, deleted or given
//! another trigger. A failure shows on the flow and is tried again after a growing wait.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use timix_actions::{ActionResult, Call, refusal, text_of, truncate};
use timix_engine::automation::connections::{self, Resolved};
use timix_engine::automation::connectors::{HttpRequest, TriggerHow, dig};
use timix_engine::automation::flows;
use timix_engine::automation::subscriptions::{self, Unwanted, Wanted};
use timix_engine::error::Result;
use timix_engine::store::clock::{Millis, now_ms};

use crate::executor::{FlowExecutor, backoff};

/// The first wait after a failed attempt; each next failure doubles it.
const FAILURE_BACKOFF: Duration = Duration::from_secs(5);
/// Attempts to end a subscription before it is forgotten (the system may have ended it).
const END_ATTEMPTS: i64 = 5;
/// Subscriptions made or ended per round.
const PER_ROUND: usize = 20;

/// Makes and ends the subscriptions of connectors' webhook triggers.
pub struct Subscriber {
    pub executor: Arc<FlowExecutor>,
    /// Where senders reach this service (`https://timix.example.com`).
    pub public_url: String,
}

/// Rounds every `every`, for ever.
pub async fn run(subscriber: Arc<Subscriber>, every: Duration) {
    loop {
        if let Err(error) = subscriber.round().await {
            tracing::warn!(%error, "Could not look at the webhook subscriptions.");
        }
        tokio::time::sleep(every).await;
    }
}

/// The subscribe or unsubscribe request of a stored trigger, in the connector version it was
/// saved with.
async fn requests(
    executor: &FlowExecutor,
    org_id: &str,
    trigger: &Value,
) -> std::result::Result<(HttpRequest, HttpRequest), String> {
    let key = trigger["source"].as_str().unwrap_or_default();
    let version = trigger["connector"].as_str().unwrap_or_default();
    let loaded = executor
        .connectors
        .version(&executor.db, org_id, version)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("the connector version of {key} is gone"))?;
    let name = key.split_once('.').map_or(key, |(_, n)| n);
    match loaded.trigger(name).map(|t| &t.how) {
        Some(TriggerHow::Webhook {
            subscribe,
            unsubscribe,
            ..
        }) => Ok((subscribe.clone(), unsubscribe.clone())),
        _ => Err(format!("{key} is no longer a webhook trigger")),
    }
}

/// What a failed request says.
fn message_of(outcome: ActionResult) -> String {
    match outcome {
        ActionResult::Retry { error, .. }
        | ActionResult::Fail(error)
        | ActionResult::Done(error) => text_of(&error["message"]),
    }
}

impl Subscriber {
    /// Ends what is no longer wanted, then makes what is: one claim at a time, so that a claim
    /// never waits behind other requests long enough to expire.
    async fn round(&self) -> Result<()> {
        let db = &self.executor.db;
        subscriptions::revive(db).await?;
        for _ in 0..PER_ROUND {
            let Some(unwanted) = subscriptions::claim_unwanted(db, 1).await?.pop() else {
                break;
            };
            self.end(unwanted).await?;
        }
        for _ in 0..PER_ROUND {
            let Some(wanted) = subscriptions::claim_wanted(db, 1).await?.pop() else {
                break;
            };
            self.make(wanted).await?;
        }
        Ok(())
    }

    fn inbound_url(&self, token: &str) -> String {
        format!(
            "{}{}{token}",
            self.public_url.trim_end_matches('/'),
            flows::INBOUND_PATH
        )
    }

    async fn connection(&self, org_id: &str, id: &str) -> std::result::Result<Resolved, String> {
        let executor = &self.executor;
        connections::resolve(&executor.db, &executor.vault, org_id, id)
            .await
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("the connection {id} was deleted"))
    }

    /// Sends a connector's request through a connection; the answer's body.
    async fn send(
        &self,
        connection: &Resolved,
        spec: &HttpRequest,
        data: &Value,
    ) -> std::result::Result<Value, (u16, String)> {
        let call = Call::described(spec, data).map_err(|e| (0, e))?;
        let reply = self
            .executor
            .performer
            .call_out(connection, &call)
            .await
            .map_err(|outcome| (0, message_of(outcome)))?;
        match refusal(connection, &reply) {
            None => Ok(reply.body),
            Some(error) => Err((
                reply.status,
                format!(
                    "{} {} answered {}: {}",
                    call.method,
                    spec.path,
                    reply.status,
                    truncate(&text_of(&error["message"]), 300)
                ),
            )),
        }
    }

    async fn subscribe(&self, wanted: &Wanted) -> std::result::Result<Option<String>, String> {
        let flow = &wanted.flow;
        let (subscribe, _) = requests(&self.executor, &flow.org_id, &flow.trigger).await?;
        let connection = self
            .connection(
                &flow.org_id,
                flow.trigger["connectionId"].as_str().unwrap_or_default(),
            )
            .await?;
        let secret = flow
            .webhook_secret(&self.executor.vault)
            .map_err(|e| e.to_string())?;
        let data = json!({
            "input": flow.trigger["input"],
            "webhookUrl": self.inbound_url(&wanted.token),
            "secret": secret,
        });
        let body = self
            .send(&connection, &subscribe, &data)
            .await
            .map_err(|(_, message)| message)?;
        Ok(subscribe
            .id
            .as_deref()
            .map(|path| dig(&body, path))
            .filter(|id| !id.is_null())
            .map(text_of))
    }

    async fn make(&self, wanted: Wanted) -> Result<()> {
        let db = &self.executor.db;
        let flow_id = wanted.flow.id.clone();
        match self.subscribe(&wanted).await {
            Ok(remote_id) => {
                subscriptions::made(db, &flow_id, remote_id.as_deref()).await?;
                if wanted.flow.last_error.is_some() {
                    flows::note_error(db, &flow_id, None).await?;
                }
            }
            Err(message) => {
                let failures = wanted.failures + 1;
                let message = format!("the webhook subscription failed: {message}");
                subscriptions::failed(db, &flow_id, &message, failures, self.next_at(failures))
                    .await?;
                flows::note_error(db, &flow_id, Some(&message)).await?;
            }
        }
        Ok(())
    }

    fn next_at(&self, failures: i64) -> Millis {
        let wait = backoff(
            FAILURE_BACKOFF,
            u32::try_from(failures).unwrap_or(u32::MAX),
            None,
        );
        now_ms() + wait.as_millis() as Millis
    }

    async fn end(&self, unwanted: Unwanted) -> Result<()> {
        let db = &self.executor.db;
        if !unwanted.made {
            return subscriptions::ended(db, &unwanted.flow_id).await;
        }
        let outcome = match (
            requests(&self.executor, &unwanted.org_id, &unwanted.trigger).await,
            self.connection(&unwanted.org_id, &unwanted.connection_id)
                .await,
        ) {
            (Ok((_, unsubscribe)), Ok(connection)) => {
                let data = json!({
                    "input": unwanted.trigger["input"],
                    "subscription": {"id": unwanted.remote_id},
                });
                match self.send(&connection, &unsubscribe, &data).await {
                    Ok(_) => Ok(()),
                    // Already gone there.
                    Err((404 | 410, _)) => Ok(()),
                    Err((_, message)) => Err(message),
                }
            }
            // Nothing left to end it with.
            (Err(message), _) | (_, Err(message)) => {
                tracing::warn!(flow = %unwanted.flow_id, %message, "A webhook subscription cannot be ended; it is forgotten.");
                Ok(())
            }
        };
        match outcome {
            Ok(()) => subscriptions::ended(db, &unwanted.flow_id).await,
            Err(message) if unwanted.failures + 1 >= END_ATTEMPTS => {
                tracing::warn!(flow = %unwanted.flow_id, %message, "A webhook subscription could not be ended; it is forgotten.");
                subscriptions::ended(db, &unwanted.flow_id).await
            }
            Err(message) => {
                let failures = unwanted.failures + 1;
                subscriptions::failed(
                    db,
                    &unwanted.flow_id,
                    &message,
                    failures,
                    self.next_at(failures),
                )
                .await
            }
        }
    }
}
