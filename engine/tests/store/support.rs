//! A fresh, migrated database per test and an organization with an owner's key to act as.

use std::path::PathBuf;

use timix_engine::access::auth::{self, Actor};
use timix_engine::access::bootstrap::{self, BootstrapInput};
use timix_engine::access::organizations::Plan;
use timix_engine::billing::customers::{Customer, CustomerInput, Customers};
use timix_engine::store::db::Db;
use timix_engine::store::resource;

/// The backend the tests run on, as `tests/it` reads it.
pub fn postgres() -> bool {
    match std::env::var("TIMIX_TEST_DATABASE").as_deref() {
        Ok("postgres") => true,
        Ok("sqlite") | Err(_) => false,
        Ok(other) => panic!("TIMIX_TEST_DATABASE must be sqlite or postgres, not {other}"),
    }
}

/// A database URL no other test uses: a SQLite file in a fresh folder, or a new Postgres
/// database. Asked for Postgres, it never falls back to SQLite (CI must test Postgres).
pub async fn fresh_url() -> String {
    let name = format!(
        "timix_t_{}",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    if postgres() {
        let admin = std::env::var("TIMIX_TEST_POSTGRES_URL")
            .expect("TIMIX_TEST_DATABASE=postgres needs TIMIX_TEST_POSTGRES_URL (an admin URL)");
        use sqlx::Connection;
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .unwrap_or_else(|e| panic!("cannot reach Postgres at TIMIX_TEST_POSTGRES_URL: {e}"));
        sqlx::Executor::execute(
            &mut conn,
            sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
        )
        .await
        .unwrap();
        let (prefix, _) = admin.rsplit_once('/').expect("URL has a database part");
        format!("{prefix}/{name}")
    } else {
        let dir: PathBuf = std::env::temp_dir().join(name);
        format!("sqlite://{}", dir.join("timix.db").display())
    }
}

/// A fresh database with every migration applied.
pub async fn db() -> Db {
    let db = Db::connect(&fresh_url().await).await.unwrap();
    db.migrate().await.unwrap();
    db
}

/// A new organization's owner, acting through its bootstrap key.
pub async fn owner(db: &Db, org_name: &str) -> Actor {
    let made = bootstrap::bootstrap(
        db,
        BootstrapInput {
            org_name,
            email: "owner@example.com",
            plan: Plan::Business,
            password: None,
            currency: "EUR",
            timezone: "Europe/Berlin",
        },
    )
    .await
    .unwrap();
    auth::authenticate(db, &made.api_key, None).await.unwrap()
}

/// Creates a customer named `name` through the shared resource operations.
pub async fn customer(db: &Db, actor: &Actor, name: &str) -> Customer {
    let input: CustomerInput = serde_json::from_value(serde_json::json!({ "name": name })).unwrap();
    resource::create::<Customers>(db, actor, input)
        .await
        .unwrap()
}
