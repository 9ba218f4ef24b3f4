//! The dispatcher's lease and cursor: one holder at a time, and a cursor that moves only for
//! the holder, from where it was.

use timix_engine::store::leases::DispatcherCursor;

use crate::support;

#[tokio::test]
async fn one_process_holds_the_dispatcher_lease_and_only_it_moves_the_cursor() {
    let db = support::db().await;
    let first = DispatcherCursor::new("dispatcher-a");
    let second = DispatcherCursor::new("dispatcher-b");

    assert!(
        first.take_lease(&db).await.unwrap(),
        "a free lease is taken"
    );
    assert!(first.take_lease(&db).await.unwrap(), "its holder renews it");
    assert!(
        !second.take_lease(&db).await.unwrap(),
        "a held lease is not taken by another process"
    );
    assert_eq!(first.position(&db).await.unwrap(), 0);

    let mut tx = db.begin().await.unwrap();
    assert!(
        !second.advance(&mut tx, 0, 10).await.unwrap(),
        "a process without the lease does not move the cursor"
    );
    assert!(first.advance(&mut tx, 0, 10).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(first.position(&db).await.unwrap(), 10);

    let mut tx = db.begin().await.unwrap();
    assert!(
        !first.advance(&mut tx, 0, 20).await.unwrap(),
        "a batch read before the cursor moved is not dispatched twice"
    );
    drop(tx);
    assert_eq!(second.position(&db).await.unwrap(), 10);
}
