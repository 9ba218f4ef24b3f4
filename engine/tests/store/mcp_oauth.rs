//! MCP's OAuth clients at the bound of never-used registrations: the oldest make room.

use timix_engine::access::mcp_oauth::{self, ClientMetadata, ErrorCode};
use timix_engine::store::clock::now_ms;
use timix_engine::store::db::{Db, Sql};

use crate::support;

async fn register(db: &Db, name: &str, max_unused: i64) -> mcp_oauth::Outcome<String> {
    let metadata = ClientMetadata {
        redirect_uris: vec!["https://app.example/cb".into()],
        client_name: Some(name.into()),
        token_endpoint_auth_method: Some("none".into()),
        ..Default::default()
    };
    Ok(mcp_oauth::register(db, metadata, max_unused)
        .await
        .unwrap()?
        .client
        .id)
}

/// Makes a client look registered `minutes` ago.
async fn age(db: &Db, id: &str, minutes: i64) {
    db.write_count(
        &Sql::new("UPDATE oauth_clients SET created_at = ? WHERE id = ?")
            .arg(now_ms() - minutes * 60_000)
            .arg(id),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn at_the_bound_the_oldest_unused_clients_make_room() {
    let db = support::db().await;
    let oldest = register(&db, "Oldest", 3).await.unwrap();
    let older = register(&db, "Older", 3).await.unwrap();
    let used = register(&db, "Used", 3).await.unwrap();
    // Used clients do not count, and are never forgotten to make room.
    db.write_count(
        &Sql::new("UPDATE oauth_clients SET last_used_at = ? WHERE id = ?")
            .arg(now_ms())
            .arg(used.as_str()),
    )
    .await
    .unwrap();
    age(&db, &used, 60).await;
    let recent = register(&db, "Recent", 3).await.unwrap();

    // Full, and every never-used client still within its 15 minutes: refused for now.
    let refused = register(&db, "Refused", 3).await.unwrap_err();
    assert_eq!(refused.code, ErrorCode::TemporarilyUnavailable);

    // Past their 15 minutes, the oldest never-used client makes room, and only it.
    age(&db, &oldest, 30).await;
    age(&db, &older, 20).await;
    let newest = register(&db, "Newest", 3).await.unwrap();
    assert!(mcp_oauth::client(&db, &oldest).await.unwrap().is_none());
    for kept in [&older, &used, &recent, &newest] {
        assert!(
            mcp_oauth::client(&db, kept).await.unwrap().is_some(),
            "{kept}"
        );
    }
}
