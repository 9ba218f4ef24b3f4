//! API keys and authentication: format, checksum, hashing, expiry, revocation, headers, plans,
//! and read-only organizations.

use serde_json::json;

use crate::harness::{Server, backend};

#[tokio::test]
async fn a_key_works_in_either_header_and_nothing_else_gets_in() {
    let server = Server::start().await;
    let org = server.db.bootstrap("professional");
    let anonymous = server.anonymous();
    anonymous
        .get("/me")
        .await
        .expect_error(401, "unauthenticated");

    let bearer = anonymous
        .send(
            anonymous
                .request(reqwest::Method::GET, "/me")
                .bearer_auth(&org.key),
        )
        .await
        .expect(200);
    assert_eq!(bearer.body["organization"]["id"], org.id);
    server.as_key(&org.key).get("/me").await.expect(200);

    // Right format, wrong checksum: refused as malformed.
    let mut tampered = org.key.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'A' { b'B' } else { b'A' };
    let r = server
        .as_key(&String::from_utf8(tampered).unwrap())
        .get("/me")
        .await
        .expect_error(401, "unauthenticated");
    assert!(
        r.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("malformed")
    );
    // A well-formed key that was never issued.
    let unknown = server.db.key_for(&org.owner_id, &[]);
    let other_server = Server::start().await;
    other_server
        .as_key(&unknown)
        .get("/me")
        .await
        .expect_error(401, "unauthenticated");
    server
        .as_key("not-a-key")
        .get("/customers")
        .await
        .expect_error(401, "unauthenticated");
}

#[tokio::test]
async fn organization_header_must_match_the_key() {
    let server = Server::start().await;
    let org = server.db.bootstrap("professional");
    let client = server.as_key(&org.key);
    for header in ["X-Organization-Id", "X-Workspace-Id"] {
        client
            .send(
                client
                    .request(reqwest::Method::GET, "/customers")
                    .header(header, "org_someone_else"),
            )
            .await
            .expect_error(403, "organization_mismatch");
        client
            .send(
                client
                    .request(reqwest::Method::GET, "/customers")
                    .header(header, &org.id),
            )
            .await
            .expect(200);
    }
}

#[tokio::test]
async fn keys_are_shown_once_stored_hashed_and_revocation_is_immediate() {
    let server = Server::start().await;
    let org = server.db.bootstrap("professional");
    let owner = server.as_key(&org.key);
    let created = owner
        .post(
            "/api-keys",
            json!({"name": "Zapier", "expiresAt": "2099-01-01T00:00:00Z"}),
        )
        .await
        .expect(201);
    let key = created.body["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("bbl_") && key.len() == 42, "{key}");
    assert_eq!(created.body["prefix"], key[..12]);
    assert_eq!(created.body["role"], "owner");
    assert_eq!(created.body["expiresAt"], "2099-01-01T00:00:00.000Z");
    let id = created.id();
    assert!(created.header("location").unwrap().ends_with(&id));

    let shown = owner.get(&format!("/api-keys/{id}")).await.expect(200);
    assert!(
        shown.body.get("key").is_none(),
        "the key is never shown again"
    );
    let listed = owner.get("/api-keys").await.expect(200);
    assert!(listed.items().iter().all(|k| k.get("key").is_none()));
    assert_eq!(listed.body["totalCount"], 2);

    let new_client = server.as_key(&key);
    new_client.get("/me").await.expect(200);
    let used = owner.get(&format!("/api-keys/{id}")).await.expect(200);
    assert!(
        used.body["lastUsedAt"].is_string(),
        "lastUsedAt is kept: {}",
        used.body
    );

    if backend() == "sqlite" {
        // Only the hash is stored: the key appears nowhere in the database files.
        let data = server.db.dir.join("data");
        for entry in std::fs::read_dir(&data).unwrap() {
            let bytes = std::fs::read(entry.unwrap().path()).unwrap();
            assert!(!bytes.windows(key.len()).any(|w| w == key.as_bytes()));
            assert!(
                !bytes
                    .windows(org.key.len())
                    .any(|w| w == org.key.as_bytes())
            );
        }
    }

    owner.delete(&format!("/api-keys/{id}")).await.expect(204);
    new_client
        .get("/me")
        .await
        .expect_error(401, "api_key_revoked");
    owner.delete(&format!("/api-keys/{id}")).await.expect(204);
    let revoked = owner.get(&format!("/api-keys/{id}")).await.expect(200);
    assert!(revoked.body["revokedAt"].is_string());
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let server = Server::start().await;
    let org = server.db.bootstrap("professional");
    let expired = server
        .db
        .key_for(&org.owner_id, &["--expires-at", "2020-01-01T00:00:00Z"]);
    server
        .as_key(&expired)
        .get("/me")
        .await
        .expect_error(401, "api_key_expired");
    let owner = server.as_key(&org.key);
    let r = owner
        .post(
            "/api-keys",
            json!({"name": "old", "expiresAt": "2020-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(
        r.expect_error(422, "validation_failed").error_fields(),
        vec!["expiresAt"]
    );
}

#[tokio::test]
async fn creating_keys_needs_professional_or_business() {
    let server = Server::start().await;
    for (plan, allowed) in [
        ("free", false),
        ("starter", false),
        ("professional", true),
        ("business", true),
    ] {
        let org = server.db.bootstrap(plan);
        let r = server
            .as_key(&org.key)
            .post("/api-keys", json!({"name": "k"}))
            .await;
        if allowed {
            r.expect(201);
        } else {
            r.expect_error(403, "plan_required");
        }
    }
}

#[tokio::test]
async fn a_key_acts_with_the_lower_of_its_role_and_its_owners() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let owner = server.as_key(&org.key);
    let (admin_id, admin) = owner.user_with_key(&server.db, "admin").await;
    // An admin can make a weaker key for themself, never a stronger one.
    admin
        .post("/api-keys", json!({"name": "x", "role": "owner"}))
        .await
        .expect_error(403, "forbidden");
    let viewer_key = admin
        .post("/api-keys", json!({"name": "ro", "role": "viewer"}))
        .await
        .expect(201);
    let viewer = server.as_key(viewer_key.body["key"].as_str().unwrap());
    assert_eq!(viewer.get("/me").await.body["user"]["role"], "viewer");
    viewer
        .post("/customers", json!({"name": "nope"}))
        .await
        .expect_error(403, "forbidden");
    // Demoting the user lowers every key of theirs at once.
    owner
        .patch(&format!("/org-users/{admin_id}"), json!({"role": "member"}))
        .await
        .expect(200);
    assert_eq!(admin.get("/me").await.body["user"]["role"], "member");
    admin
        .post("/api-keys", json!({"name": "y"}))
        .await
        .expect_error(403, "forbidden");
    // Deactivating or removing the user stops their keys.
    owner
        .patch(
            &format!("/org-users/{admin_id}"),
            json!({"isActive": false}),
        )
        .await
        .expect(200);
    admin.get("/me").await.expect_error(401, "unauthenticated");
    owner
        .delete(&format!("/org-users/{admin_id}"))
        .await
        .expect(204);
    viewer.get("/me").await.expect_error(401, "api_key_revoked");
}

#[tokio::test]
async fn read_only_organizations_read_but_refuse_every_write() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let owner = server.as_key(&org.key);
    let customer = owner.customer("Before").await;
    server
        .db
        .cli(&["org", "update", &org.id, "--billing-state", "read_only"]);
    owner.get("/customers").await.expect(200);
    owner
        .get(&format!("/customers/{customer}"))
        .await
        .expect(200);
    owner.get("/events").await.expect(200);
    let me = owner.get("/me").await.expect(200);
    assert_eq!(
        me.body["permissions"],
        json!(["read", "financials:read", "flows:read"])
    );
    for r in [
        owner.post("/customers", json!({"name": "x"})).await,
        owner
            .patch(&format!("/customers/{customer}"), json!({"name": "y"}))
            .await,
        owner.delete(&format!("/customers/{customer}")).await,
        owner
            .put("/customers/by-external-id/e1", json!({"name": "z"}))
            .await,
        owner.patch("/organization", json!({"name": "n"})).await,
        owner.post("/api-keys", json!({"name": "k"})).await,
        owner
            .post("/org-users", json!({"email": "a@b.co", "name": "A"}))
            .await,
    ] {
        r.expect_error(403, "organization_read_only");
    }
    server
        .db
        .cli(&["org", "update", &org.id, "--billing-state", "active"]);
    owner
        .post("/customers", json!({"name": "x"}))
        .await
        .expect(201);
}
