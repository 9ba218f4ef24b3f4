//! Single statements sent at once are committed together (`Db::write_count`): each caller
//! learns its own outcome, a failing statement fails alone, and two processes whose groups lock
//! the same rows in opposite orders both finish.

use timix_engine::store::db::{Db, Sql, row};

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

#[tokio::test]
async fn values_sent_together_are_stored_exactly_as_sent() {
    let db = support::db().await;
    let texts = [
        "it's",
        "back\\slash \\' and \\\\",
        "\\'; DROP TABLE organizations; --",
        "E'quoted'::text",
        "$1 ? $$ dollars $$",
        "日本語 ✓ 🚀",
        "",
        "line\nbreak\ttab",
        // Larger than a message of a group: the group goes in several.
        &"x'\\".repeat(3000),
        &"y".repeat(9000),
    ];
    let mut orgs = Vec::new();
    for n in 0..texts.len() {
        orgs.push(
            support::owner(&db, &format!("Org {n}"))
                .await
                .org_id()
                .to_owned(),
        );
    }
    // Sent at once: committed as groups.
    let mut sent = Vec::new();
    for (n, (org_id, text)) in orgs.iter().zip(texts).enumerate() {
        let db = db.clone();
        let statement = Sql::new("UPDATE organizations SET name = ?, updated_at = ? WHERE id = ?")
            .arg(text)
            .arg(-(n as i64) * 1_000_000_007)
            .arg(org_id.as_str());
        sent.push(tokio::spawn(
            async move { db.write_count(&statement).await },
        ));
    }
    // One that fails (NOT NULL), sent with them: it fails alone.
    let failing = {
        let (db, org_id) = (db.clone(), orgs[0].clone());
        tokio::spawn(async move {
            db.write_count(
                &Sql::new("UPDATE organizations SET name = NULL WHERE id = ?").arg(org_id),
            )
            .await
        })
    };
    for task in sent {
        assert_eq!(task.await.unwrap().ok(), Some(1));
    }
    assert!(failing.await.unwrap().is_err());
    for (n, (org_id, text)) in orgs.iter().zip(texts).enumerate() {
        let row = Sql::new("SELECT name, updated_at FROM organizations WHERE id = ?")
            .arg(org_id.as_str())
            .fetch_one(&db)
            .await
            .unwrap();
        assert_eq!(row::get_str(&row, "name").unwrap(), text);
        assert_eq!(
            row::get_i64(&row, "updated_at").unwrap(),
            -(n as i64) * 1_000_000_007
        );
    }
    let count = Sql::new("SELECT COUNT(*) AS n FROM organizations")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(row::get_i64(&count, "n").unwrap(), texts.len() as i64);
}
