//! Idempotency records: a claimed key's answer is stored with its write and replayed; the same
//! key with another request is refused.

use timix_engine::access::idempotency::{self, Answer, Outcome};
use timix_engine::billing::customers::Customers;
use timix_engine::error::Error;
use timix_engine::store::resource;

use crate::support;

#[tokio::test]
async fn a_recorded_answer_is_replayed_and_a_reused_key_refused() {
    let db = support::db().await;
    let mut actor = support::owner(&db, "Idempotent").await;
    let key_id = actor.api_key.id.clone();
    let Outcome::Fresh(claim) = idempotency::claim(&db, &key_id, "k-1", "hash-a", "/customers")
        .await
        .unwrap()
    else {
        panic!("a new key is fresh");
    };
    // A second claim while the first runs is refused, not run twice.
    assert!(matches!(
        idempotency::claim(&db, &key_id, "k-1", "hash-a", "/customers").await,
        Err(Error::Conflict { .. })
    ));
    actor.conditions.idempotency = Some(claim);
    let input = serde_json::from_value(serde_json::json!({"name": "Acme"})).unwrap();
    let created = resource::create::<Customers>(&db, &actor, input)
        .await
        .unwrap();

    let Outcome::Replay(stored) = idempotency::claim(&db, &key_id, "k-1", "hash-a", "/customers")
        .await
        .unwrap()
    else {
        panic!("a finished key replays");
    };
    assert_eq!(stored.answer, Answer::Created);
    assert_eq!(
        stored.location.as_deref(),
        Some(format!("/customers/{}", created.id).as_str())
    );
    let body: serde_json::Value = serde_json::from_str(&stored.body).unwrap();
    assert_eq!(body["id"], created.id.as_str());
    assert_eq!(body["name"], "Acme");

    assert!(matches!(
        idempotency::claim(&db, &key_id, "k-1", "hash-b", "/customers").await,
        Err(Error::IdempotencyKeyReused)
    ));
    assert!(
        idempotency::claim(&db, &key_id, "", "hash-a", "/customers")
            .await
            .is_err()
    );
}
