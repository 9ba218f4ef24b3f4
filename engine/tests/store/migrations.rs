//! Migrations apply on an empty database, and again without effect.

use timix_engine::store::db::{Db, Sql};

use crate::support;

#[tokio::test]
async fn migrations_apply_once_and_again_without_effect() {
    let db = Db::connect(&support::fresh_url().await).await.unwrap();
    assert!(!db.migrations_applied().await.unwrap());
    db.migrate().await.unwrap();
    assert!(db.migrations_applied().await.unwrap());
    db.migrate().await.unwrap();
    assert!(db.migrations_applied().await.unwrap());
    // The schema is there: the tables every write touches answer.
    for table in ["organizations", "events", "customers", "idempotency_keys"] {
        Sql::new(&format!("SELECT COUNT(*) FROM {table}"))
            .fetch_one(&db)
            .await
            .unwrap_or_else(|e| panic!("{table}: {e}"));
    }
}
