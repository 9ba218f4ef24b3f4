//! Inbound webhook triggers: `POST /hooks/in/{token}` starts a run of the token's flow with the
//! payload as its trigger record. A flow with a secret takes only signed calls
//! (`X-Timix-Signature: sha256=<hex HMAC-SHA256 of the body>`). A sender's retry carrying the
//! same `Idempotency-Key` or `webhook-id` starts no second run. A payload nested deeper than
//! [`json::MAX_DEPTH`] levels is refused (422), so that its run can always be read back.

use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use timix_engine::db::Db;
use timix_engine::error::{Error, Result};
use timix_engine::flows;
use timix_engine::jobs::Queues;
use timix_engine::json;
use timix_engine::run_admission::RunAdmission;
use timix_engine::runs;

use crate::flow_runner::{RunLane, dispatch_runs};

/// What the sender gets back: the run it started; none for a retry of an earlier call.
pub struct Accepted {
    pub run_id: Option<String>,
    pub duplicate: bool,
}

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
pub fn signature_matches(secret: &str, body: &[u8], signature: Option<&str>) -> bool {
    let Some(hex) = signature.and_then(|s| s.trim().strip_prefix("sha256=")) else {
        return false;
    };
    let Some(expected) = decode_hex(hex) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

/// Where the runs inbound calls start go: the database, the organization's pace, and this
/// process's lane or the queue.
pub struct Starts<'a> {
    pub db: &'a Db,
    pub admission: &'a RunAdmission,
    pub lane: Option<&'a RunLane>,
    pub queues: Option<&'a Queues>,
}

/// Accepts one call of an inbound webhook.
pub async fn accept(
    starts: &Starts<'_>,
    token: &str,
    signature: Option<&str>,
    delivery_id: Option<&str>,
    body: &[u8],
) -> Result<Accepted> {
    let Starts {
        db,
        admission,
        lane,
        queues,
    } = *starts;
    let Some(flow) = flows::by_token(db, token).await? else {
        return Err(Error::NotFound("webhook"));
    };
    if let Some(secret) = &flow.webhook_secret
        && !signature_matches(secret, body, signature)
    {
        return Err(Error::unauthenticated(
            "invalid_signature",
            "X-Timix-Signature is missing or does not match the flow's secret",
        ));
    }
    let too_deep = || Error::validation("", "too_deep", json::too_deep_message());
    // A NUL character (`\u0000`) in the payload is kept: stored JSON escapes it. A step that
    // sends it on to this API is refused there (422) like any other caller.
    let payload: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        match serde_json::from_slice(body) {
            Ok(payload) => payload,
            Err(error) if json::is_too_deep(&error) => return Err(too_deep()),
            Err(_) => json!({"body": String::from_utf8_lossy(body)}),
        }
    };
    if json::depth(&payload) > json::MAX_DEPTH {
        return Err(too_deep());
    }
    if let Some(id) = delivery_id
        && (id.is_empty() || id.len() > 255)
    {
        return Err(Error::InvalidParameter(
            "Idempotency-Key and webhook-id must be 1 to 255 characters".into(),
        ));
    }
    let source = match delivery_id {
        Some(id) => format!("inbound:{id}"),
        None => format!("inbound:{}", ulid::Ulid::generate()),
    };
    let lineage = runs::Lineage::default();
    let wait = admission.book(&flow.org_id).await?;
    let run_id = match lane {
        // This process executes it at once: created claimed, handed over once committed.
        Some(lane) if lane.has_room() && wait.is_none() => {
            let claimed =
                runs::start_claimed_now(db, &flow, &source, &payload, &lineage, lane.lease_ms)
                    .await?;
            let id = claimed.as_ref().map(|run| run.id.clone());
            lane.hand_over(claimed.into_iter().collect());
            id
        }
        _ => {
            let mut tx = db.begin().await?;
            let id = runs::start_at(&mut tx, &flow, &source, &payload, &lineage, wait).await?;
            tx.commit().await?;
            // One booked for later is taken by the sweeper when its time comes.
            if wait.is_none() {
                dispatch_runs(lane, queues, id.iter().cloned().collect()).await;
            }
            id
        }
    };
    Ok(Accepted {
        duplicate: run_id.is_none(),
        run_id,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked() {
        let mut mac = Hmac::<Sha256>::new_from_slice(b"a-secret-of-16-chars").unwrap();
        mac.update(b"{}");
        let hex: String = mac
            .finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let header = format!("sha256={hex}");
        assert!(signature_matches(
            "a-secret-of-16-chars",
            b"{}",
            Some(&header)
        ));
        assert!(!signature_matches(
            "a-secret-of-16-chars",
            b"{ }",
            Some(&header)
        ));
        assert!(!signature_matches(
            "another-secret-16ch",
            b"{}",
            Some(&header)
        ));
        assert!(!signature_matches("a-secret-of-16-chars", b"{}", None));
        assert!(!signature_matches(
            "a-secret-of-16-chars",
            b"{}",
            Some("sha256=zz")
        ));
    }
}
