//! The role matrix, exercised through the API for every role.

use serde_json::json;

use crate::harness::{Client, Resp, Server};

const ROLES: [&str; 5] = ["viewer", "member", "manager", "admin", "owner"];

fn rank(role: &str) -> usize {
    ROLES.iter().position(|r| *r == role).unwrap()
}

/// Asserts that `r` succeeded when `allowed`, else was refused as `forbidden`.
#[track_caller]
fn allowed_or_forbidden(r: Resp, allowed: bool, what: &str, role: &str) {
    if allowed {
        assert!(
            (200..300).contains(&r.status),
            "{role} should {what}: {} {}",
            r.status,
            r.body
        );
    } else {
        assert_eq!(r.status, 403, "{role} must not {what}: {}", r.body);
        assert_eq!(r.body["error"]["code"], "forbidden", "{role} {what}");
    }
}

#[tokio::test]
async fn every_role_can_do_exactly_what_the_matrix_says() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let owner = server.as_key(&org.key);
    let customer = owner.customer("Acme").await;
    let project = owner.project(&customer, "Site").await;
    let task = owner.task(&project, "Build").await;

    let mut clients: Vec<(&str, Client)> = Vec::new();
    for role in ROLES {
        let client = if role == "owner" {
            owner.clone()
        } else {
            owner.user_with_key(&server.db, role).await.1
        };
        clients.push((role, client));
    }

    for (role, client) in &clients {
        let at_least = |least: &str| rank(role) >= rank(least);
        let me = client.get("/me").await.expect(200);
        assert_eq!(me.body["user"]["role"], *role);

        // Everyone reads.
        for path in [
            "/customers",
            "/projects",
            "/tasks",
            "/subtasks",
            "/org-users",
            "/events",
            "/organization",
        ] {
            client.get(path).await.expect(200);
        }
        let n = ulid::Ulid::generate().to_string();
        allowed_or_forbidden(
            client.post("/customers", json!({"name": n})).await,
            at_least("manager"),
            "create customers",
            role,
        );
        allowed_or_forbidden(
            client
                .post("/projects", json!({"customerId": customer, "name": n}))
                .await,
            at_least("manager"),
            "create projects",
            role,
        );
        allowed_or_forbidden(
            client
                .post("/tasks", json!({"projectId": project, "name": n}))
                .await,
            at_least("member"),
            "create tasks",
            role,
        );
        allowed_or_forbidden(
            client
                .post("/subtasks", json!({"taskId": task, "name": n}))
                .await,
            at_least("member"),
            "create subtasks",
            role,
        );
        allowed_or_forbidden(
            client
                .patch(&format!("/tasks/{task}"), json!({"status": "in_progress"}))
                .await,
            at_least("member"),
            "update tasks",
            role,
        );
        allowed_or_forbidden(
            client
                .post(
                    "/org-users",
                    json!({"email": format!("{n}@example.com"), "name": "New", "role": "viewer"}),
                )
                .await,
            at_least("admin"),
            "add users",
            role,
        );
        allowed_or_forbidden(
            client.get("/api-keys").await,
            at_least("admin"),
            "list API keys",
            role,
        );
        allowed_or_forbidden(
            client.post("/api-keys", json!({"name": n})).await,
            at_least("admin"),
            "create API keys",
            role,
        );
        allowed_or_forbidden(
            client
                .patch("/organization", json!({"timezone": "Europe/Berlin"}))
                .await,
            at_least("owner"),
            "change the organization",
            role,
        );
        let permissions: Vec<String> =
            serde_json::from_value(me.body["permissions"].clone()).unwrap();
        assert_eq!(
            permissions.contains(&"customers:write".to_owned()),
            at_least("manager"),
            "{role}"
        );
        assert_eq!(
            permissions.contains(&"tasks:write".to_owned()),
            at_least("member"),
            "{role}"
        );
        assert_eq!(
            permissions.contains(&"organization:write".to_owned()),
            at_least("owner"),
            "{role}"
        );
    }
}

#[tokio::test]
async fn nobody_grants_or_touches_a_role_above_their_own() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let owner = server.as_key(&org.key);
    let (_, admin) = owner.user_with_key(&server.db, "admin").await;
    admin
        .post(
            "/org-users",
            json!({"email": "boss@example.com", "name": "Boss", "role": "owner"}),
        )
        .await
        .expect_error(403, "forbidden");
    admin
        .patch(
            &format!("/org-users/{}", org.owner_id),
            json!({"name": "Renamed"}),
        )
        .await
        .expect_error(403, "forbidden");
    admin
        .delete(&format!("/org-users/{}", org.owner_id))
        .await
        .expect_error(403, "forbidden");
    // The last owner cannot step down or leave.
    owner
        .patch(
            &format!("/org-users/{}", org.owner_id),
            json!({"role": "admin"}),
        )
        .await
        .expect_error(409, "conflict");
    owner
        .delete(&format!("/org-users/{}", org.owner_id))
        .await
        .expect_error(409, "conflict");
    // With a second owner, they can.
    let second = owner
        .post(
            "/org-users",
            json!({"email": "two@example.com", "name": "Two", "role": "owner"}),
        )
        .await
        .expect(201)
        .id();
    owner
        .patch(&format!("/org-users/{second}"), json!({"role": "admin"}))
        .await
        .expect(200);
}
