//! Soft deletes: a tombstoned row is kept but is no longer live, by id or by external id.

use timix_engine::billing::customers::Customers;
use timix_engine::store::clock::now_ms;
use timix_engine::store::resource;
use timix_engine::store::rows;

use crate::support;

#[tokio::test]
async fn a_tombstoned_row_is_not_live() {
    let db = support::db().await;
    let actor = support::owner(&db, "Rows").await;
    let other = support::owner(&db, "Other").await;
    let customer = support::customer(&db, &actor, "Acme").await;
    let live = rows::live_row(&db, "customers", actor.org_id(), &customer.id)
        .await
        .unwrap();
    assert!(live.is_some());
    // Another organization never sees it.
    let foreign = rows::live_row(&db, "customers", other.org_id(), &customer.id)
        .await
        .unwrap();
    assert!(foreign.is_none());

    rows::soft_delete(&db, "customers", &customer.id, now_ms())
        .await
        .unwrap();
    let live = rows::live_row(&db, "customers", actor.org_id(), &customer.id)
        .await
        .unwrap();
    assert!(live.is_none());
    assert!(
        resource::get::<Customers>(&db, &actor, &customer.id)
            .await
            .is_err()
    );
    assert_eq!(
        rows::count_live_children(&db, "customers", "org_id", actor.org_id())
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn a_tombstoned_row_frees_its_external_id() {
    let db = support::db().await;
    let actor = support::owner(&db, "External").await;
    let input =
        serde_json::from_value(serde_json::json!({"name": "Acme", "externalId": "crm-1"})).unwrap();
    let customer = resource::create::<Customers>(&db, &actor, input)
        .await
        .unwrap();
    let found = rows::live_row_by_external_id(&db, "customers", actor.org_id(), "crm-1")
        .await
        .unwrap();
    assert!(found.is_some());
    resource::delete::<Customers>(&db, &actor, &customer.id)
        .await
        .unwrap();
    let found = rows::live_row_by_external_id(&db, "customers", actor.org_id(), "crm-1")
        .await
        .unwrap();
    assert!(found.is_none());
}
