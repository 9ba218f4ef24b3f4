//! The event log: appended in the write's transaction, read back in `seq` order, where `seq`
//! order is commit order, and a rolled-back write leaves nothing behind.

use std::sync::{Arc, Mutex};

use serde_json::json;
use timix_engine::store::db::Db;
use timix_engine::store::events::{self, NewEvent};

use crate::support;

async fn last_seq(db: &Db) -> i64 {
    let mut seq = 0;
    loop {
        let page = events::after(db, seq, 1000).await.unwrap();
        match page.last() {
            Some(e) => seq = e.seq,
            None => return seq,
        }
    }
}

fn event<'a>(org_id: &'a str, kind: &str, resource_id: &'a str) -> NewEvent<'a> {
    NewEvent {
        org_id,
        kind: kind.to_owned(),
        resource_id,
        data: json!({ "id": resource_id }),
        changed: None,
    }
}

#[tokio::test]
async fn appended_events_read_back_in_order() {
    let db = support::db().await;
    let actor = support::owner(&db, "Log").await;
    let start = last_seq(&db).await;
    let mut tx = events::begin_write(&db).await.unwrap();
    let mut seqs = Vec::new();
    for i in 0..3 {
        let id = format!("res_{i}");
        seqs.push(
            events::append(&mut tx, event(actor.org_id(), "test.appended", &id))
                .await
                .unwrap(),
        );
    }
    tx.commit().await.unwrap();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    let read = events::after(&db, start, 100).await.unwrap();
    assert_eq!(read.iter().map(|e| e.seq).collect::<Vec<_>>(), seqs);
    assert_eq!(
        read.iter()
            .map(|e| e.resource_id.as_str())
            .collect::<Vec<_>>(),
        ["res_0", "res_1", "res_2"]
    );
    assert!(read.iter().all(|e| e.kind == "test.appended"));
    assert!(read.iter().all(|e| e.organization_id == actor.org_id()));
    // `after` starts strictly after the seq it is given and honours its limit.
    let rest = events::after(&db, seqs[0], 1).await.unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].seq, seqs[1]);
}

#[tokio::test]
async fn a_rolled_back_write_leaves_no_event() {
    let db = support::db().await;
    let actor = support::owner(&db, "Rollback").await;
    let start = last_seq(&db).await;
    {
        let mut tx = events::begin_write(&db).await.unwrap();
        events::append(&mut tx, event(actor.org_id(), "test.lost", "res_lost"))
            .await
            .unwrap();
        // Dropped without commit: rolled back.
    }
    let mut tx = events::begin_write(&db).await.unwrap();
    let kept = events::append(&mut tx, event(actor.org_id(), "test.kept", "res_kept"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let read = events::after(&db, start, 100).await.unwrap();
    assert_eq!(read.len(), 1, "{read:?}");
    assert_eq!(read[0].kind, "test.kept");
    assert_eq!(read[0].seq, kept);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn seq_order_is_commit_order_under_concurrent_writers() {
    let db = support::db().await;
    let actor = support::owner(&db, "Concurrent").await;
    let org_id = actor.org_id().to_owned();
    let start = last_seq(&db).await;
    // Each writer notes its resource just before committing, while it still holds the log:
    // the notes are in commit order.
    let committed = Arc::new(Mutex::new(Vec::new()));
    let mut writers = Vec::new();
    for w in 0..8 {
        let (db, org_id, committed) = (db.clone(), org_id.clone(), committed.clone());
        writers.push(tokio::spawn(async move {
            for i in 0..5 {
                let id = format!("res_{w}_{i}");
                let mut tx = events::begin_write(&db).await.unwrap();
                events::append(&mut tx, event(&org_id, "test.concurrent", &id))
                    .await
                    .unwrap();
                tokio::task::yield_now().await;
                committed.lock().unwrap().push(id);
                tx.commit().await.unwrap();
            }
        }));
    }
    for w in writers {
        tokio::time::timeout(std::time::Duration::from_secs(60), w)
            .await
            .expect("writers finish within a minute")
            .unwrap();
    }
    let read = events::after(&db, start, 1000).await.unwrap();
    assert!(read.windows(2).all(|w| w[0].seq < w[1].seq));
    let in_seq_order: Vec<String> = read.into_iter().map(|e| e.resource_id).collect();
    assert_eq!(in_seq_order, *committed.lock().unwrap());
}
