//! Single statements sent at once are committed together (`Db::write_count`): each caller
//! learns its own outcome, a failing statement fails alone, and two processes whose groups lock
//! the same rows in opposite orders both finish.

use timix_engine::store::db::{Db, Sql};

use crate::support;

/// Renames an organization: one grouped statement.
async fn rename(db: &Db, org_id: &str, name: String) -> timix_engine::error::Result<u64> {
    db.write_count(
        &Sql::new("UPDATE organizations SET name = ? WHERE id = ?")
            .arg(name)
            .arg(org_id),
    )
    .await
}

#[tokio::test]
async fn statements_sent_together_each_get_their_outcome_and_a_failing_one_fails_alone() {
    let db = support::db().await;
    let actor = support::owner(&db, "Grouped").await;
    let org_id = actor.org_id().to_owned();
    let mut sent = Vec::new();
    for n in 0..40 {
        let (db, org_id) = (db.clone(), org_id.clone());
        sent.push(tokio::spawn(async move {
            if n == 17 {
                // NOT NULL violated: fails, and only this one.
                db.write_count(
                    &Sql::new("UPDATE organizations SET name = NULL WHERE id = ?").arg(org_id),
                )
                .await
            } else if n == 23 {
                rename(&db, "org_none", format!("Nobody {n}")).await
            } else {
                rename(&db, &org_id, format!("Grouped {n}")).await
            }
        }));
    }
    let mut outcomes = Vec::new();
    for task in sent {
        outcomes.push(task.await.unwrap());
    }
    for (n, outcome) in outcomes.iter().enumerate() {
        match n {
            17 => assert!(outcome.is_err(), "the failing statement: {outcome:?}"),
            23 => assert_eq!(outcome.as_ref().ok(), Some(&0), "no such row"),
            _ => assert_eq!(
                outcome.as_ref().ok(),
                Some(&1),
                "statement {n}: {outcome:?}"
            ),
        }
    }
    let name = Sql::new("SELECT name FROM organizations WHERE id = ?")
        .arg(&org_id)
        .fetch_one(&db)
        .await
        .unwrap();
    let name = timix_engine::store::db::row::get_str(&name, "name").unwrap();
    assert!(name.starts_with("Grouped "), "{name}");
}

#[tokio::test]
async fn two_processes_locking_the_same_rows_in_opposite_orders_both_finish() {
    let url = support::fresh_url().await;
    let first = Db::connect(&url).await.unwrap();
    first.migrate().await.unwrap();
    let second = Db::connect(&url).await.unwrap();
    let a = support::owner(&first, "A").await.org_id().to_owned();
    let b = support::owner(&first, "B").await.org_id().to_owned();
    let mut sent = Vec::new();
    for round in 0..150 {
        // Each process sends both at once (one group), in its own order.
        for (db, order) in [(&first, [&a, &b]), (&second, [&b, &a])] {
            for org_id in order {
                let (db, org_id) = (db.clone(), org_id.clone());
                sent.push(tokio::spawn(async move {
                    rename(&db, &org_id, format!("Round {round}")).await
                }));
            }
        }
    }
    for task in sent {
        assert_eq!(task.await.unwrap().ok(), Some(1));
    }
}
