//! How the senders of inbound webhooks sign their calls, one scheme each: Standard Webhooks,
//! Stripe, GitHub, Slack, and the body-only HMAC of earlier timix versions. Each check answers
//! the sender's delivery id (what a retry repeats, so it starts no second run) or why the call
//! is refused. A scheme with a timestamp refuses calls more than [`TOLERANCE_SECS`] away from
//! now, so a captured call cannot be replayed later under a fresh delivery id; GitHub and the
//! body-only HMAC sign no timestamp, so replay protection there rests on the delivery id alone.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::Value;
use sha2::Sha256;

/// How far a signed timestamp may be from now, either way: five minutes.
pub const TOLERANCE_SECS: i64 = 5 * 60;

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    /// The signature (or a header it needs) is missing, malformed or does not match.
    Signature(String),
    /// Signed, but at a time outside the tolerance window.
    Stale(String),
}

/// Reads one request header by its (lower-case) name.
pub type Headers<'a> = &'a (dyn Fn(&str) -> Option<String> + Sync);

/// Checks a call against `scheme` (one of `timix_engine::automation::flows::SIGNATURE_SCHEMES`) and
/// `secret`, `now` in Unix seconds. Answers the sender's delivery id, if it gives one.
pub fn verify(
    scheme: &str,
    secret: &str,
    headers: Headers<'_>,
    body: &[u8],
    now: i64,
) -> Result<Option<String>, Refused> {
    match scheme {
        "standard" => standard(secret, headers, body, now),
        "stripe" => stripe(secret, headers, body, now),
        "github" => github(secret, headers, body),
        "slack" => slack(secret, headers, body, now),
        "hmac" => hmac_body(secret, headers, body),
        other => Err(Refused::Signature(format!(
            "the flow names an unknown signature scheme {other:?}"
        ))),
    }
}

/// The delivery id of an unsigned call, or of the body-only HMAC scheme: `Idempotency-Key`, else
/// `webhook-id`.
pub fn plain_delivery_id(headers: Headers<'_>) -> Option<String> {
    headers("idempotency-key").or_else(|| headers("webhook-id"))
}

fn mac(key: &[u8], parts: &[&[u8]]) -> Hmac<Sha256> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac
}

/// Whether any of the candidate signatures (raw bytes) is the MAC, compared in constant time.
fn any_matches(mac: &Hmac<Sha256>, candidates: impl IntoIterator<Item = Vec<u8>>) -> bool {
    candidates
        .into_iter()
        .any(|candidate| mac.clone().verify_slice(&candidate).is_ok())
}

fn required(headers: Headers<'_>, name: &str) -> Result<String, Refused> {
    headers(name)
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| Refused::Signature(format!("the {name} header is missing")))
}

fn timestamp(text: &str, header: &str, now: i64) -> Result<i64, Refused> {
    let ts: i64 = text
        .parse()
        .map_err(|_| Refused::Signature(format!("{header} is not a Unix time in seconds")))?;
    if now
        .checked_sub(ts)
        .is_none_or(|d| d.unsigned_abs() > TOLERANCE_SECS as u64)
    {
        return Err(Refused::Stale(format!(
            "{header} is more than {} minutes away from now: the call is refused as a replay \
             (check the sender's clock)",
            TOLERANCE_SECS / 60
        )));
    }
    Ok(ts)
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.is_ascii() {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&text[i..i + 2], 16).ok())
        .collect()
}

fn mismatch(header: &str) -> Refused {
    Refused::Signature(format!(
        "{header} does not match the flow's secret and this call's body"
    ))
}

/// Standard Webhooks v1: `webhook-signature: v1,<base64>` (several, space-separated) over
/// `{webhook-id}.{webhook-timestamp}.{body}`, keyed with the bytes of the `whsec_` secret.
fn standard(
    secret: &str,
    headers: Headers<'_>,
    body: &[u8],
    now: i64,
) -> Result<Option<String>, Refused> {
    let id = required(headers, "webhook-id")?;
    let ts = required(headers, "webhook-timestamp")?;
    let signatures = required(headers, "webhook-signature")?;
    let key = timix_engine::automation::flows::standard_webhooks_key(secret)
        .ok_or_else(|| Refused::Signature("the flow's secret is not a whsec_ secret".into()))?;
    let expected = mac(&key, &[id.as_bytes(), b".", ts.as_bytes(), b".", body]);
    let candidates = signatures
        .split_whitespace()
        .filter_map(|s| s.strip_prefix("v1,"))
        .filter_map(|s| B64.decode(s).ok());
    if !any_matches(&expected, candidates) {
        return Err(mismatch("webhook-signature"));
    }
    timestamp(&ts, "webhook-timestamp", now)?;
    Ok(Some(id))
}

/// Stripe: `Stripe-Signature: t=<ts>,v1=<hex>[,v1=…]` over `{t}.{body}`, keyed with the secret
/// as written. The delivery id is the event's `id` in the body.
fn stripe(
    secret: &str,
    headers: Headers<'_>,
    body: &[u8],
    now: i64,
) -> Result<Option<String>, Refused> {
    let header = required(headers, "stripe-signature")?;
    let pairs = header.split(',').filter_map(|p| p.trim().split_once('='));
    let mut ts = None;
    let mut candidates = Vec::new();
    for (key, value) in pairs {
        match key {
            "t" => ts = Some(value.to_owned()),
            "v1" => candidates.extend(decode_hex(value)),
            _ => {}
        }
    }
    let ts = ts.ok_or_else(|| Refused::Signature("Stripe-Signature has no t=".into()))?;
    let expected = mac(secret.as_bytes(), &[ts.as_bytes(), b".", body]);
    if !any_matches(&expected, candidates) {
        return Err(mismatch("Stripe-Signature"));
    }
    timestamp(&ts, "Stripe-Signature's t", now)?;
    Ok(body_field(body, "id").or_else(|| Some(format!("stripe:{ts}:{header}"))))
}

/// GitHub: `X-Hub-Signature-256: sha256=<hex>` over the body, keyed with the secret as written;
/// the delivery id is `X-GitHub-Delivery`. GitHub signs no timestamp.
fn github(secret: &str, headers: Headers<'_>, body: &[u8]) -> Result<Option<String>, Refused> {
    let header = required(headers, "x-hub-signature-256")?;
    let expected = mac(secret.as_bytes(), &[body]);
    let candidate = header.strip_prefix("sha256=").and_then(decode_hex);
    if !any_matches(&expected, candidate) {
        return Err(mismatch("X-Hub-Signature-256"));
    }
    Ok(headers("x-github-delivery"))
}

/// Slack: `X-Slack-Signature: v0=<hex>` over `v0:{X-Slack-Request-Timestamp}:{body}`, keyed
/// with the signing secret as written. Slack sends no delivery id header: the Events API's
/// `event_id` serves, else the signed timestamp and signature (an identical replay).
fn slack(
    secret: &str,
    headers: Headers<'_>,
    body: &[u8],
    now: i64,
) -> Result<Option<String>, Refused> {
    let ts = required(headers, "x-slack-request-timestamp")?;
    let header = required(headers, "x-slack-signature")?;
    let expected = mac(secret.as_bytes(), &[b"v0:", ts.as_bytes(), b":", body]);
    let candidate = header.strip_prefix("v0=").and_then(decode_hex);
    if !any_matches(&expected, candidate) {
        return Err(mismatch("X-Slack-Signature"));
    }
    timestamp(&ts, "X-Slack-Request-Timestamp", now)?;
    Ok(body_field(body, "event_id").or_else(|| Some(format!("slack:{ts}:{header}"))))
}

/// The body-only HMAC of earlier versions: `X-Timix-Signature: sha256=<hex>`. It signs no
/// timestamp and no id: a captured call can be replayed under a fresh delivery id.
fn hmac_body(secret: &str, headers: Headers<'_>, body: &[u8]) -> Result<Option<String>, Refused> {
    let header = required(headers, "x-timix-signature")?;
    let expected = mac(secret.as_bytes(), &[body]);
    let candidate = header.strip_prefix("sha256=").and_then(decode_hex);
    if !any_matches(&expected, candidate) {
        return Err(mismatch("X-Timix-Signature"));
    }
    Ok(plain_delivery_id(headers))
}

/// A text field at the top of a JSON body.
fn body_field(body: &[u8], field: &str) -> Option<String> {
    serde_json::from_slice::<Value>(body)
        .ok()?
        .get(field)?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn headers(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + Sync + use<> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_ascii_lowercase(), (*v).to_owned()))
            .collect();
        move |name: &str| map.get(name).cloned()
    }

    fn hex(mac: Hmac<Sha256>) -> String {
        mac.finalize()
            .into_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    #[test]
    fn standard_webhooks_test_vector() {
        // The Standard Webhooks specification's test vector (also in its libraries' tests).
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        let ts = 1614265330;
        let signature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";
        let call = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", signature),
        ]);
        assert_eq!(
            verify("standard", secret, &call, body, ts + 10),
            Ok(Some("msg_p5jXN8AQM9LWM0D4loKWxJek".into()))
        );
        // Several signatures (a rotation): any one matching is enough.
        let rotated = headers(&[
            ("webhook-id", "msg_p5jXN8AQM9LWM0D4loKWxJek"),
            ("webhook-timestamp", "1614265330"),
            (
                "webhook-signature",
                &format!("v1,bm90IHRoaXMgb25l v1a,xyz {signature}"),
            ),
        ]);
        assert!(verify("standard", secret, &rotated, body, ts).is_ok());
        // Another body, id or secret does not match.
        assert!(matches!(
            verify("standard", secret, &call, br#"{"test": 2432232315}"#, ts),
            Err(Refused::Signature(_))
        ));
        let other_id = headers(&[
            ("webhook-id", "msg_other"),
            ("webhook-timestamp", "1614265330"),
            ("webhook-signature", signature),
        ]);
        assert!(matches!(
            verify("standard", secret, &other_id, body, ts),
            Err(Refused::Signature(_))
        ));
        assert!(matches!(
            verify(
                "standard",
                "whsec_dGhpcyBpcyBhbm90aGVyIHNlY3JldA==",
                &call,
                body,
                ts
            ),
            Err(Refused::Signature(_))
        ));
        // Signed, but too old or too far ahead.
        for now in [ts + TOLERANCE_SECS + 1, ts - TOLERANCE_SECS - 1] {
            assert!(matches!(
                verify("standard", secret, &call, body, now),
                Err(Refused::Stale(_))
            ));
        }
        assert!(verify("standard", secret, &call, body, ts + TOLERANCE_SECS).is_ok());
        // Missing headers.
        assert!(matches!(
            verify("standard", secret, &headers(&[]), body, ts),
            Err(Refused::Signature(_))
        ));
    }

    #[test]
    fn github_documented_vector() {
        // GitHub's "Validating webhook deliveries" example.
        let call = headers(&[
            (
                "X-Hub-Signature-256",
                "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
            ),
            ("X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958"),
        ]);
        assert_eq!(
            verify(
                "github",
                "It's a Secret to Everybody",
                &call,
                b"Hello, World!",
                0
            ),
            Ok(Some("72d3162e-cc78-11e3-81ab-4c9367dc0958".into()))
        );
        assert!(matches!(
            verify(
                "github",
                "It's a Secret to Everybody",
                &call,
                b"Hello, World?",
                0
            ),
            Err(Refused::Signature(_))
        ));
        assert!(matches!(
            verify("github", "Another secret", &call, b"Hello, World!", 0),
            Err(Refused::Signature(_))
        ));
    }

    #[test]
    fn slack_documented_example() {
        // Slack's "Verifying requests from Slack" example.
        let secret = "8f742231b10e8888abcd99yyyzzz85a5";
        let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        let signature = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
        let call = headers(&[
            ("X-Slack-Request-Timestamp", "1531420618"),
            ("X-Slack-Signature", signature),
        ]);
        let id = verify("slack", secret, &call, body, 1531420618 + 60).unwrap();
        // No event_id in a slash command: the signed timestamp and signature stand for it.
        assert_eq!(id, Some(format!("slack:1531420618:{signature}")));
        assert!(matches!(
            verify("slack", secret, &call, body, 1531420618 + 600),
            Err(Refused::Stale(_))
        ));
        assert!(matches!(
            verify("slack", secret, &call, &body[1..], 1531420618),
            Err(Refused::Signature(_))
        ));
        // An Events API call names its event.
        let event = br#"{"type":"event_callback","event_id":"Ev08MFMKH6"}"#;
        let sig = hex(mac(secret.as_bytes(), &[b"v0:1531420618:", event]));
        let call = headers(&[
            ("X-Slack-Request-Timestamp", "1531420618"),
            ("X-Slack-Signature", &format!("v0={sig}")),
        ]);
        assert_eq!(
            verify("slack", secret, &call, event, 1531420618),
            Ok(Some("Ev08MFMKH6".into()))
        );
    }

    #[test]
    fn stripe_signatures() {
        // Computed independently (Python's hmac) for this secret, time and body, as Stripe's
        // libraries compute `v1`.
        let secret = "whsec_test_secret";
        let body = br#"{"id": "evt_test_webhook", "object": "event"}"#;
        let good = "aafb6f8becb4b5db5da0da34d6fb419de5f0866d738651a835f821a8a96cf1f3";
        let call = headers(&[(
            "Stripe-Signature",
            &format!("t=1700000000,v1=deadbeef,v1={good},v0=abc"),
        )]);
        assert_eq!(
            verify("stripe", secret, &call, body, 1700000000 + 299),
            Ok(Some("evt_test_webhook".into()))
        );
        assert!(matches!(
            verify("stripe", secret, &call, body, 1700000000 + 301),
            Err(Refused::Stale(_))
        ));
        assert!(matches!(
            verify("stripe", "whsec_other", &call, body, 1700000000),
            Err(Refused::Signature(_))
        ));
        let no_time = headers(&[("Stripe-Signature", &format!("v1={good}"))]);
        assert!(matches!(
            verify("stripe", secret, &no_time, body, 1700000000),
            Err(Refused::Signature(_))
        ));
    }

    #[test]
    fn body_only_hmac_of_earlier_versions() {
        let secret = "a-secret-of-16-chars";
        let header = format!("sha256={}", hex(mac(secret.as_bytes(), &[b"{}"])));
        let call = headers(&[("X-Timix-Signature", &header), ("webhook-id", "msg_1")]);
        assert_eq!(
            verify("hmac", secret, &call, b"{}", 0),
            Ok(Some("msg_1".into()))
        );
        assert!(verify("hmac", secret, &call, b"{ }", 0).is_err());
        assert!(verify("hmac", "another-secret-16ch", &call, b"{}", 0).is_err());
        assert!(verify("hmac", secret, &headers(&[]), b"{}", 0).is_err());
        let bad = headers(&[("X-Timix-Signature", "sha256=zz")]);
        assert!(verify("hmac", secret, &bad, b"{}", 0).is_err());
        assert!(verify("nonsense", secret, &call, b"{}", 0).is_err());
    }
}
