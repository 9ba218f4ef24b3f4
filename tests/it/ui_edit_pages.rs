//! The web UI's edit pages: a connection's new key, settings and base URL; replacing a
//! connection in the flows that use it; a webhook's URL, events and state; a user's role and
//! deactivation; and the key form starting at the lowest role. Over plain HTTP (refusals at
//! their fields) and in headless Chromium (`tests/ui/ui_edit_pages.mjs`).

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Client, Script, Server, TestDb, backend, kept_dir};
use crate::ui::{Browser, PASSWORD, bootstrap_with_password};

const MIA_PASSWORD: &str = "mia's own password";

/// A member invited through the UI who has set a password: `(id, email)`.
async fn invited_member(server: &Server, owner: &mut Browser, api: &Client) -> (String, String) {
    let email = format!(
        "mia-{}@example.com",
        ulid::Ulid::generate().to_string().to_lowercase()
    );
    let csrf = owner.get("/users").await.csrf();
    let page = owner
        .post(
            "/users",
            &[
                ("_csrf", &csrf),
                ("email", &email),
                ("name", "Mia"),
                ("role", "member"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::CREATED, "{}", page.body);
    let start = page.body.find("/invite/").expect("an invitation link");
    let link: String = page.body[start..]
        .chars()
        .take_while(|c| *c != '"')
        .collect();
    let mut mia = Browser::new(server);
    let csrf = mia.get(&link).await.csrf();
    let page = mia
        .post(
            &link,
            &[
                ("_csrf", &csrf),
                ("password", MIA_PASSWORD),
                ("confirm", MIA_PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let users = api
        .get(&format!("/api/integration/v1/org-users?email={email}"))
        .await
        .items();
    (users[0]["id"].as_str().unwrap().to_owned(), email)
}

/// An API-key connection to this instance, with `key`.
async fn connection(api: &Client, server: &Server, name: &str, key: &str) -> String {
    api.post(
        "/api/integration/v1/connections",
        json!({"name": name, "type": "api_key", "baseUrl": server.url("/api/integration/v1"),
               "credentials": {"apiKey": key}}),
    )
    .await
    .expect(201)
    .id()
}

/// A disabled flow whose `steps` name connections.
async fn flow(api: &Client, name: &str, steps: Value) -> String {
    api.post(
        "/api/integration/v1/flows",
        json!({"name": name, "isEnabled": false,
               "trigger": {"type": "event", "event": "customer.created"}, "steps": steps}),
    )
    .await
    .expect(201)
    .id()
}

fn project_step(connection: &str) -> Value {
    json!({"key": "project", "action": "create_project", "connectionId": connection,
           "input": {"customerId": "{{trigger.id}}", "name": "Project for {{trigger.name}}"}})
}

#[tokio::test]
async fn an_edit_the_api_refuses_comes_back_with_its_reason_and_nothing_changes() {
    let server =
        Server::start_with(TestDb::new().await, &[("TIMIX_ALLOW_PRIVATE_TARGETS", "1")]).await;
    let (email, key, owner_id) = bootstrap_with_password(&server.db, "Acme");
    let api = server.as_key(&key);
    let mut owner = Browser::new(&server);
    owner.log_in(&email, PASSWORD).await;

    // A new base URL without the key again: the stored key is not sent elsewhere.
    let id = connection(&api, &server, "Here", &key).await;
    let path = format!("/connections/{id}/edit");
    let page = owner.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("New API key"), "{}", page.body);
    assert!(!page.body.contains(&key), "a stored key is never shown");
    let csrf = page.csrf();
    let page = owner
        .post(
            &path,
            &[
                ("_csrf", &csrf),
                ("name", "Elsewhere"),
                ("baseUrl", "https://timix.example.com/api/integration/v1"),
                ("header", "X-Api-Key"),
                ("apiKey", ""),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.body.contains("give the credentials again"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("value=\"Elsewhere\""),
        "kept what was typed"
    );
    let stored = api
        .get(&format!("/api/integration/v1/connections/{id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(stored["name"], "Here");

    // Only the name: saved, and the connection keeps its key and status.
    let page = owner
        .post(
            &path,
            &[
                ("_csrf", &csrf),
                ("name", "Renamed"),
                ("baseUrl", stored["baseUrl"].as_str().unwrap()),
                ("header", "X-Api-Key"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let stored = api
        .get(&format!("/api/integration/v1/connections/{id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(stored["name"], "Renamed");
    assert_eq!(stored["hasCredentials"], true);

    // A webhook without events is refused at its events.
    let hook = api
        .post(
            "/api/integration/v1/webhooks",
            json!({"url": "https://hooks.timix.invalid/a", "events": ["customer.created"]}),
        )
        .await
        .expect(201)
        .body;
    let hook_id = hook["id"].as_str().unwrap();
    let path = format!("/webhooks/{hook_id}/edit");
    let csrf = owner.get(&path).await.csrf();
    let page = owner
        .post(
            &path,
            &[
                ("_csrf", &csrf),
                ("url", "https://hooks.timix.invalid/b"),
                ("isEnabled", "true"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("field-error"), "{}", page.body);
    let stored = api
        .get(&format!("/api/integration/v1/webhooks/{hook_id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(stored["url"], "https://hooks.timix.invalid/a");

    // The last owner cannot make themself an admin: said on the form.
    let path = format!("/users/{owner_id}");
    let csrf = owner.get(&path).await.csrf();
    let page = owner
        .post(
            &path,
            &[("_csrf", &csrf), ("name", "Owner"), ("role", "admin")],
        )
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT, "{}", page.body);
    assert!(
        page.body.contains("at least one active owner"),
        "{}",
        page.body
    );

    // Without JavaScript, the key form starts at viewer.
    let page = owner.get("/keys").await;
    assert!(
        page.body.contains("<option value=\"viewer\" selected>"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_connector_connection_takes_new_settings_and_keeps_its_client() {
    let server = Server::start().await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme");
    let api = server.as_key(&key);
    let id = api
        .post(
            "/api/integration/v1/connections",
            json!({"name": "Books", "connector": "quickbooks", "settings": {"realmId": "123", "clientId": "client-1"},
                   "credentials": {"clientSecret": "first secret"}}),
        )
        .await
        .expect(201)
        .id();
    let mut owner = Browser::new(&server);
    owner.log_in(&email, PASSWORD).await;
    let path = format!("/connections/{id}/edit");
    let page = owner.get(&path).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    // Its own settings to edit, not what the connector fills in.
    assert!(
        page.body.contains("&quot;realmId&quot;: &quot;123&quot;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("testPath"), "{}", page.body);
    assert!(page.body.contains("value=\"client-1\""), "{}", page.body);
    assert!(page.body.contains("New client secret"), "{}", page.body);
    assert!(!page.body.contains("first secret"));

    // Settings that are not JSON: at their field, nothing written.
    let csrf = page.csrf();
    let page = owner
        .post(
            &path,
            &[
                ("_csrf", &csrf),
                ("name", "Books"),
                ("settingsJson", "{realmId"),
                ("clientId", "client-1"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(page.body.contains("not valid JSON"), "{}", page.body);

    // Another company: the base URL is made from it again (the field emptied), the client kept.
    let page = owner
        .post(
            &path,
            &[
                ("_csrf", &csrf),
                ("name", "Books (EU)"),
                ("baseUrl", ""),
                ("settingsJson", "{\"realmId\": \"456\"}"),
                ("clientId", "client-1"),
                ("clientSecret", ""),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let stored = api
        .get(&format!("/api/integration/v1/connections/{id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(stored["name"], "Books (EU)");
    assert_eq!(stored["settings"]["realmId"], "456");
    assert_eq!(stored["settings"]["clientId"], "client-1");
    assert_eq!(
        stored["baseUrl"],
        "https://quickbooks.api.intuit.com/v3/company/456"
    );

    // A new client and secret; the edit page offers to connect (authorize) from there.
    let page = owner
        .post(
            &path,
            &[
                ("_csrf", &csrf),
                ("name", "Books (EU)"),
                (
                    "baseUrl",
                    "https://quickbooks.api.intuit.com/v3/company/456",
                ),
                ("settingsJson", "{\"realmId\": \"456\"}"),
                ("clientId", "client-2"),
                ("clientSecret", "second secret"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let stored = api
        .get(&format!("/api/integration/v1/connections/{id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(stored["settings"]["clientId"], "client-2");
    assert_eq!(stored["settings"]["realmId"], "456");
    let page = owner.get(&path).await;
    assert!(
        page.body
            .contains(&format!("action=\"/connections/{id}/connect\"")),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn in_chromium_connections_webhooks_and_users_are_edited() {
    let out = kept_dir(&format!("ui-screenshots/{}-edit-pages", backend()));
    let Some(script) = Script::browser("ui_edit_pages.mjs", &out).ready() else {
        return;
    };
    let server =
        Server::start_with(TestDb::new().await, &[("TIMIX_ALLOW_PRIVATE_TARGETS", "1")]).await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme Ltd");
    let api = server.as_key(&key);
    let mut owner = Browser::new(&server);
    owner.log_in(&email, PASSWORD).await;
    let (mia_id, mia_email) = invited_member(&server, &mut owner, &api).await;

    // The key checksum fails: the test call is refused without a lookup.
    let wrong = connection(
        &api,
        &server,
        "Our other timix",
        "bbl_not_a_key_of_this_instance_000000000000",
    )
    .await;
    let replacement = connection(&api, &server, "Backup timix", &key).await;
    // Another type is never offered in its place.
    api.post(
        "/api/integration/v1/connections",
        json!({"name": "Here", "type": "self"}),
    )
    .await
    .expect(201);
    let plain = flow(&api, "Plain", json!([project_step(&wrong)])).await;
    let nested = flow(
        &api,
        "Nested",
        json!([{"key": "check", "type": "if",
                "condition": {"left": "{{trigger.name}}", "op": "isNotEmpty"},
                "then": [project_step(&wrong)]}]),
    )
    .await;
    let untouched = flow(&api, "Untouched", json!([project_step(&replacement)])).await;
    let hook = api
        .post(
            "/api/integration/v1/webhooks",
            json!({"url": "https://hooks.timix.invalid/first", "events": ["customer.created"]}),
        )
        .await
        .expect(201)
        .id();

    let report = script
        .env("BASE", server.url(""))
        .env("EMAIL", &email)
        .env("PASSWORD", PASSWORD)
        .env("CONNECTION", &wrong)
        .env("GOOD_KEY", &key)
        .env("REPLACEMENT", &replacement)
        .env("WEBHOOK", &hook)
        .env("USER_ID", &mia_id)
        .env("USER_EMAIL", &mia_email)
        .env("USER_PASSWORD", MIA_PASSWORD)
        .run()
        .await;
    assert!(report["failure"].is_null(), "{report:#}");

    // The key rotated on the edit page: the test failed before and passes after.
    assert_eq!(report["testBefore"]["badge"], "error", "{report:#}");
    assert!(
        report["testBefore"]["alert"]
            .as_str()
            .unwrap()
            .starts_with("The test failed"),
        "{report:#}"
    );
    assert_eq!(report["editForm"]["name"], "Our other timix");
    assert_eq!(
        report["editForm"]["baseUrl"],
        server.url("/api/integration/v1")
    );
    assert_eq!(report["editForm"]["header"], "X-Api-Key");
    assert_eq!(report["editForm"]["keyEmpty"], true);
    assert!(
        report["savedNotice"]
            .as_str()
            .unwrap()
            .contains("Press Test"),
        "{report:#}"
    );
    assert_eq!(report["savedBadge"], "untested");
    assert_eq!(report["testAfter"]["badge"], "ok", "{report:#}");
    assert!(
        report["testAfter"]["notice"]
            .as_str()
            .unwrap()
            .contains("The test passed")
    );
    let stored = api
        .get(&format!("/api/integration/v1/connections/{wrong}"))
        .await
        .expect(200)
        .body;
    assert_eq!(stored["name"], "Our other timix (rotated)");
    assert_eq!(stored["status"], "ok");

    // Replaced in the two flows that named it (one in a nested step), and only there.
    let mut used_by: Vec<&str> = report["usedBy"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    used_by.sort();
    assert_eq!(used_by, ["Nested", "Plain"], "{report:#}");
    assert_eq!(
        report["replacementChoices"],
        json!(["Backup timix (untested)"]),
        "only a connection of the same type is offered"
    );
    assert!(
        report["replaced"]["notice"]
            .as_str()
            .unwrap()
            .contains("Replaced with Backup timix in 2 flows"),
        "{report:#}"
    );
    let changed = report["replaced"]["flows"].as_array().unwrap();
    assert_eq!(changed.len(), 2, "{report:#}");
    assert!(
        changed
            .iter()
            .all(|f| f.as_str().unwrap().contains("now uses Backup timix")),
        "{report:#}"
    );
    assert_eq!(report["replaced"]["stillUsedBy"], 0);
    let plain = api
        .get(&format!("/api/integration/v1/flows/{plain}"))
        .await
        .expect(200)
        .body;
    assert_eq!(plain["steps"][0]["connectionId"], replacement.as_str());
    assert_eq!(plain["version"], 2);
    let nested = api
        .get(&format!("/api/integration/v1/flows/{nested}"))
        .await
        .expect(200)
        .body;
    assert_eq!(
        nested["steps"][0]["then"][0]["connectionId"],
        replacement.as_str()
    );
    let untouched = api
        .get(&format!("/api/integration/v1/flows/{untouched}"))
        .await
        .expect(200)
        .body;
    assert_eq!(untouched["version"], 1);
    // Nothing names it now: it can be deleted.
    api.delete(&format!("/api/integration/v1/connections/{wrong}"))
        .await
        .expect(204);

    // The webhook as edited, on its page and in the API.
    assert_eq!(
        report["webhookForm"]["url"],
        "https://hooks.timix.invalid/first"
    );
    assert_eq!(
        report["webhookForm"]["checked"],
        json!(["customer.created"])
    );
    assert_eq!(report["webhookForm"]["enabled"], true);
    assert_eq!(report["webhookPage"]["notice"], "The webhook is saved.");
    let heading = report["webhookPage"]["heading"].as_str().unwrap();
    assert!(
        heading.contains("https://hooks.timix.invalid/changed") && heading.contains("disabled"),
        "{heading}"
    );
    assert_eq!(
        report["webhookPage"]["events"],
        json!(["project.created", "invoice.paid"])
    );
    assert_eq!(report["webhookPage"]["description"], "Billing system");
    let stored = api
        .get(&format!("/api/integration/v1/webhooks/{hook}"))
        .await
        .expect(200)
        .body;
    assert_eq!(stored["url"], "https://hooks.timix.invalid/changed");
    assert_eq!(stored["events"], json!(["project.created", "invoice.paid"]));
    assert_eq!(stored["isEnabled"], false);

    // The user's role, deactivation (login refused) and reactivation (login works).
    assert_eq!(report["userRoleBefore"], "member");
    assert!(
        report["userRoleChoices"][0]
            .as_str()
            .unwrap()
            .starts_with("viewer: reads"),
        "{report:#}"
    );
    assert_eq!(report["roleNotice"], "Saved: Mia is manager.");
    assert!(
        report["deactivated"]["notice"]
            .as_str()
            .unwrap()
            .contains("deactivated"),
        "{report:#}"
    );
    assert_eq!(report["deactivated"]["badge"], "deactivated");
    assert!(
        report["deactivated"]["dialog"]
            .as_str()
            .unwrap()
            .starts_with("Deactivate Mia?")
    );
    assert_eq!(report["deactivatedLogin"]["path"], "/login", "{report:#}");
    assert_eq!(
        report["deactivatedLogin"]["alert"],
        "That e-mail and password do not match an account."
    );
    assert!(
        report["reactivatedNotice"]
            .as_str()
            .unwrap()
            .contains("active again")
    );
    assert_eq!(report["reactivatedLogin"]["path"], "/", "{report:#}");
    assert_eq!(report["reactivatedLogin"]["role"], "manager");
    let mia = api
        .get(&format!("/api/integration/v1/org-users/{mia_id}"))
        .await
        .expect(200)
        .body;
    assert_eq!(mia["role"], "manager");
    assert_eq!(mia["isActive"], true);

    // The key form's default is viewer, each role with its meaning; a key made without
    // choosing is a viewer's.
    assert_eq!(report["keyRole"], "viewer");
    let choices = report["keyRoleChoices"].as_array().unwrap();
    assert_eq!(choices.len(), 5, "an owner may give any role: {choices:?}");
    assert!(
        choices.iter().all(|c| c
            .as_str()
            .unwrap()
            .split_once(": ")
            .is_some_and(|(_, m)| !m.is_empty())),
        "{choices:?}"
    );
    let me = server
        .as_key(report["newKey"].as_str().unwrap())
        .get("/api/integration/v1/me")
        .await
        .expect(200)
        .body;
    assert_eq!(me["apiKey"]["name"], "Reporting script");
    let keys = api.get("/api/integration/v1/api-keys").await.items();
    let made = keys
        .iter()
        .find(|k| k["name"] == "Reporting script")
        .unwrap();
    assert_eq!(made["role"], "viewer");

    let errors: Vec<&Value> = report["consoleErrors"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| !e.as_str().unwrap_or_default().contains("status of 401"))
        .collect();
    assert!(errors.is_empty(), "{errors:?}");
    for shot in report["screenshots"].as_array().unwrap() {
        let file = out.join(format!("{}.png", shot.as_str().unwrap()));
        assert!(std::fs::metadata(&file).unwrap().len() > 10_000, "{file:?}");
    }
}
