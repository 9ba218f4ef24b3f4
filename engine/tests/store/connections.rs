//! Single statements run on connections lent without a test round trip: one whose statement
//! was refused or cut off half way does not disturb the next statement, and on Postgres
//! connections the server closed are replaced before use: those idle for a while, and all idle
//! ones once one was found closed.

use std::time::Duration;

use timix_engine::store::db::{Backend, Db, QueryTarget, Sql, row};

use crate::support;

/// A query that takes a while on either backend.
fn slow_query(db: &Db) -> Sql {
    match db.backend() {
        Backend::Sqlite => Sql::new(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000000) \
             SELECT COUNT(*) FROM c",
        ),
        Backend::Postgres => Sql::new("SELECT pg_sleep(2)"),
    }
}

/// Reads back `value` through a statement of its own.
async fn echo(db: &Db, value: &str) -> String {
    let row = Sql::new("SELECT ? AS v")
        .arg(value)
        .fetch_one(db)
        .await
        .unwrap();
    row::get_str(&row, "v").unwrap()
}

#[tokio::test]
async fn a_refused_or_cut_off_statement_leaves_the_next_ones_their_own_answers() {
    let db = support::db().await;
    let refused = Sql::new("SELECT no_such_column FROM organizations")
        .fetch_all(&db)
        .await;
    assert!(refused.is_err(), "the statement should be refused");
    for n in 0..10 {
        assert_eq!(
            echo(&db, &format!("after a refusal {n}")).await,
            format!("after a refusal {n}")
        );
    }
    let cut_off =
        tokio::time::timeout(Duration::from_millis(50), slow_query(&db).fetch_one(&db)).await;
    assert!(cut_off.is_err(), "the slow query should still be running");
    // Several at once: whichever connection each is lent, it answers its own statement.
    let echoes = (0..12).map(|n| {
        let db = db.clone();
        tokio::spawn(async move { (n, echo(&db, &format!("after a cut {n}")).await) })
    });
    for task in echoes.collect::<Vec<_>>() {
        let (n, answer) = task.await.unwrap();
        assert_eq!(answer, format!("after a cut {n}"));
    }
}

/// The server ends every other connection of this database (as on a restart); how many.
async fn end_other_connections(target: impl QueryTarget) -> i64 {
    let ended = Sql::new(
        "SELECT COUNT(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) AS ended",
    )
    .fetch_one(target)
    .await
    .unwrap();
    row::get_i64(&ended, "n").unwrap()
}

/// Sends `count` statements at once, each reading back its own value, and each holding its
/// connection for a moment so that every one is lent a connection of its own.
async fn answers(db: &Db, label: &str, count: usize) -> Vec<timix_engine::Result<()>> {
    let reads = (0..count).map(|n| {
        let db = db.clone();
        let value = format!("{label}, {n}");
        tokio::spawn(async move {
            let row = Sql::new("SELECT ? AS v FROM (SELECT pg_sleep(0.05)) AS held")
                .arg(&value)
                .fetch_one(&db)
                .await?;
            assert_eq!(row::get_str(&row, "v").unwrap(), value);
            Ok(())
        })
    });
    let mut answers = Vec::with_capacity(count);
    for task in reads.collect::<Vec<_>>() {
        answers.push(task.await.unwrap());
    }
    answers
}

/// As many statements at once as there are connections to lend.
const ALL_CONNECTIONS: usize = 9;

#[tokio::test]
async fn connections_the_server_closed_are_replaced_before_use() {
    if !support::postgres() {
        eprintln!(
            "SKIPPED here (SQLite has no server to close connections): runs with \
             TIMIX_TEST_DATABASE=postgres, as in CI"
        );
        return;
    }
    let db = support::db().await;
    let actor = support::owner(&db, "Closed").await;
    let all_answered = |answers: Vec<timix_engine::Result<()>>, when: &str| {
        for answer in answers {
            if let Err(e) = answer {
                panic!("{when}: a closed connection was lent untested: {e}");
            }
        }
    };
    // Open every lent connection, the committer's and a transaction's.
    all_answered(answers(&db, "opened", ALL_CONNECTIONS).await, "opening");
    let rename = |name: &str| {
        Sql::new("UPDATE organizations SET name = ? WHERE id = ?")
            .arg(name)
            .arg(actor.org_id())
    };
    assert_eq!(db.write_count(&rename("Before")).await.unwrap(), 1);
    let mut tx = db.begin().await.unwrap();
    rename("In a transaction").execute(&mut tx).await.unwrap();
    tx.commit().await.unwrap();

    // Closed while idle for longer than IDLE_CHECK: each is tested and replaced, nothing fails.
    assert!(
        end_other_connections(&db).await >= 2,
        "connections were open"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(db.write_count(&rename("After")).await.unwrap(), 1);
    let mut tx = db.begin().await.unwrap();
    rename("After, in a transaction")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    all_answered(
        answers(&db, "after", ALL_CONNECTIONS).await,
        "after a while",
    );

    // Closed again, by a transaction's statement so that no lent connection stays open, and
    // used at once (no idle time to test them): the first statement meets a closed connection
    // and fails; that has the other idle connections tested before their next use, so no
    // other statement fails.
    let mut tx = db.begin().await.unwrap();
    end_other_connections(&mut tx).await;
    tx.commit().await.unwrap();
    // Ended by a signal: give the server's processes a moment to go (well within IDLE_CHECK).
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        answers(&db, "first", 1).await[0].is_err(),
        "the first statement should meet a closed connection"
    );
    for round in 0..3 {
        let when = format!("round {round}");
        all_answered(answers(&db, &when, ALL_CONNECTIONS).await, &when);
    }
}
