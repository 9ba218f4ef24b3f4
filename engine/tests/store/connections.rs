//! Single statements run on connections lent without a test round trip: one whose statement
//! was refused or cut off half way does not disturb the next statement, and on Postgres
//! connections the server closed while idle are replaced before use, not failed on.

use std::time::Duration;

use timix_engine::store::db::{Backend, Db, Sql, row};

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
async fn end_other_connections(db: &Db) -> i64 {
    let ended = Sql::new(
        "SELECT COUNT(*) AS n FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
         WHERE datname = current_database() AND pid <> pg_backend_pid()) AS ended",
    )
    .fetch_one(db)
    .await
    .unwrap();
    row::get_i64(&ended, "n").unwrap()
}

#[tokio::test]
async fn connections_the_server_closed_while_idle_are_replaced_before_use() {
    if !support::postgres() {
        eprintln!(
            "SKIPPED here (SQLite has no server to close connections): runs with \
             TIMIX_TEST_DATABASE=postgres, as in CI"
        );
        return;
    }
    let db = support::db().await;
    let actor = support::owner(&db, "Closed").await;
    // Open several lent connections, the committer's and a transaction's.
    let reads = (0..8).map(|n| {
        let db = db.clone();
        tokio::spawn(async move { echo(&db, &n.to_string()).await })
    });
    for task in reads.collect::<Vec<_>>() {
        task.await.unwrap();
    }
    let rename = |name: &str| {
        Sql::new("UPDATE organizations SET name = ? WHERE id = ?")
            .arg(name)
            .arg(actor.org_id())
    };
    assert_eq!(db.write_count(&rename("Before")).await.unwrap(), 1);
    let mut tx = db.begin().await.unwrap();
    rename("In a transaction").execute(&mut tx).await.unwrap();
    tx.commit().await.unwrap();

    assert!(
        end_other_connections(&db).await >= 2,
        "connections were open"
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let reads = (0..8).map(|n| {
        let db = db.clone();
        tokio::spawn(async move { echo(&db, &format!("after {n}")).await })
    });
    for (n, task) in reads.collect::<Vec<_>>().into_iter().enumerate() {
        assert_eq!(task.await.unwrap(), format!("after {n}"));
    }
    assert_eq!(db.write_count(&rename("After")).await.unwrap(), 1);
    let mut tx = db.begin().await.unwrap();
    rename("After, in a transaction")
        .execute(&mut tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();

    // Closed while in use (no idle time to test them): each fails its statement once at most
    // and is not lent again.
    end_other_connections(&db).await;
    // Ended by a signal: give the server's processes time to go (well within IDLE_CHECK).
    tokio::time::sleep(Duration::from_millis(200)).await;
    for round in 0..4 {
        // As many at once as there are connections to lend, so that each is used.
        let reads = (0..9).map(|n| {
            let db = db.clone();
            let value = format!("round {round}, {n}");
            tokio::spawn(async move {
                let answer = Sql::new("SELECT ? AS v").arg(&value).fetch_one(&db).await;
                (value, answer.map(|row| row::get_str(&row, "v").unwrap()))
            })
        });
        for task in reads.collect::<Vec<_>>() {
            match task.await.unwrap() {
                (sent, Ok(answer)) => assert_eq!(answer, sent),
                // The first round meets the closed connections, once each.
                (_, Err(_)) if round == 0 => {}
                (_, Err(e)) => panic!("round {round}: a closed connection was lent again: {e}"),
            }
        }
    }
}
