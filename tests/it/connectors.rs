//! Connectors as data: installed through the API and used by a flow at once, refused with
//! every problem, new versions that flows keep or take when re-saved, deletion refused while in
//! use, organizations kept apart, and the operator's folder read without a restart.

use std::sync::{Arc, Mutex};

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use serde_json::{Value, json};

use crate::harness::{Client, Server, TestDb};
use crate::standins::{self, eventually};

/// A small notes service: what it was sent, and the notes it holds.
#[derive(Clone, Default)]
struct Notes {
    sent: Arc<Mutex<Vec<(String, String, Value)>>>,
}

impl Notes {
    async fn start() -> (Notes, String) {
        let notes = Notes::default();
        let record = |path: &'static str| {
            move |State(notes): State<Notes>, headers: HeaderMap, body: axum::body::Bytes| async move {
                let auth = headers
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                notes
                    .sent
                    .lock()
                    .unwrap()
                    .push((path.to_owned(), auth, body.clone()));
                axum::Json(json!({"note": {"id": "n_1", "text": body["text"]}})).into_response()
            }
        };
        let app = axum::Router::new()
            .route("/api/notes", axum::routing::post(record("/notes")))
            .route("/api/v2/notes", axum::routing::post(record("/v2/notes")))
            .route(
                "/api/me",
                axum::routing::get(|| async { axum::Json(json!({"id": "me"})) }),
            )
            .with_state(notes.clone());
        let url = standins::serve(app).await;
        (notes, format!("{url}/api"))
    }

    fn sent(&self) -> Vec<(String, String, Value)> {
        self.sent.lock().unwrap().clone()
    }
}

const NOTES: &str = r#"
key: notes
label: Notes
version: 1.0.0
description: A notes service.
baseUrl: https://notes.example/api
auth: {type: bearer}
test: {method: GET, path: /me}
actions:
  - key: add_note
    kind: create
    noun: Note
    label: Add a note
    description: Adds a note.
    input: {type: object, required: [text], properties: {text: {type: string, title: Text}}}
    request: {method: POST, path: /notes, body: {text: "{{input.text}}"}}
    output: {select: item, field: note}
    sample: {id: n1, text: Hello}
triggers:
  - key: new_note
    kind: poll
    noun: Note
    label: New note
    description: Each new note.
    source: {path: /notes, items: notes, id: id}
    sample: {id: n1}
"#;

async fn install(c: &Client, yaml: &str) -> crate::harness::Resp {
    c.send(
        c.request(reqwest::Method::POST, "/connectors")
            .header("content-type", "application/yaml")
            .body(yaml.to_owned()),
    )
    .await
}

async fn replace(c: &Client, key: &str, yaml: &str) -> crate::harness::Resp {
    c.send(
        c.request(reqwest::Method::PUT, &format!("/connectors/{key}"))
            .header("content-type", "application/yaml")
            .body(yaml.to_owned()),
    )
    .await
}

/// A connection to the notes service and a webhook flow whose one step adds a note.
async fn notes_flow(c: &Client, base: &str) -> (String, String) {
    let connection = c
        .post(
            "/connections",
            json!({"name": "Notes", "connector": "notes", "baseUrl": base,
                   "credentials": {"token": "t0ken"}}),
        )
        .await
        .expect(201);
    assert_eq!(connection.body["connector"], "notes");
    assert_eq!(connection.body["type"], "bearer");
    let flow = c
        .post(
            "/flows",
            json!({"name": "Note every call", "trigger": {"type": "webhook"},
                   "steps": [{"key": "note", "action": "notes.add_note",
                              "connectionId": connection.id(), "input": {"text": "{{trigger.text}}"}}]}),
        )
        .await
        .expect(201);
    let url = flow.body["trigger"]["webhookUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    (flow.id(), url)
}

async fn call(c: &Client, url: &str, text: &str) -> Value {
    let run = c
        .send(
            c.request(reqwest::Method::POST, url)
                .json(&json!({"text": text})),
        )
        .await
        .expect(202);
    c.finished_run(run.body["runId"].as_str().unwrap()).await
}

#[tokio::test]
async fn a_connector_installed_through_the_api_runs_in_a_flow_at_once() {
    let (notes, base) = Notes::start().await;
    let server = standins::server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);

    let installed = install(&c, NOTES).await.expect(201);
    assert_eq!(installed.body["source"], "organization");
    assert_eq!(installed.body["revision"], 1);
    assert_eq!(installed.body["actions"], json!(["notes.add_note"]));
    assert_eq!(
        installed.header("location"),
        Some("/api/integration/v1/connectors/notes")
    );
    let listed = c.get("/connectors").await.expect(200);
    let keys: Vec<&str> = listed.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["key"].as_str().unwrap())
        .collect();
    assert_eq!(keys[0], "timix");
    for key in [
        "notes",
        "slack",
        "hubspot",
        "google_sheets",
        "github",
        "stripe",
        "quickbooks",
    ] {
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    let manifest = c.get("/manifests/notes.add_note").await.expect(200);
    assert_eq!(manifest.body["connector"], "notes");
    assert_eq!(
        c.get("/manifests/notes.new_note").await.expect(200).body["kind"],
        "trigger"
    );

    // Used by a flow in the same breath: no restart, no wait.
    let (_, url) = notes_flow(&c, &base).await;
    let run = call(&c, &url, "Hello").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(
        run["steps"][0]["output"],
        json!({"id": "n_1", "text": "Hello"})
    );
    assert_eq!(
        notes.sent(),
        vec![(
            "/notes".to_owned(),
            "Bearer t0ken".to_owned(),
            json!({"text": "Hello"})
        )]
    );

    // Another organization does not see it, nor can name it.
    let other = server.db.bootstrap("business");
    let o = server.as_key(&other.key);
    o.get("/connectors/notes")
        .await
        .expect_error(404, "not_found");
    o.post(
        "/connections",
        json!({"name": "Notes", "connector": "notes", "baseUrl": base, "credentials": {"token": "x"}}),
    )
    .await
    .expect_error(422, "validation_failed");
    // Nor can a member install one.
    let (_, member) = c.user_with_key(&server.db, "member").await;
    install(&member, &NOTES.replace("key: notes", "key: mine"))
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn a_bad_connector_is_refused_with_every_problem() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let bad = NOTES
        .replace("version: 1.0.0", "version: first")
        .replace(
            "auth: {type: bearer}",
            "auth: {type: bearer, header: X-Key}",
        )
        .replace(
            "method: POST, path: /notes",
            "method: POST, path: \"/notes/{{input.id\"",
        )
        .replace(
            "text: {type: string, title: Text}",
            "text: {type: string, x-lookup: folders}",
        )
        .replace(
            "items: notes, id: id",
            "items: notes, id: id, pagination: {style: page}",
        );
    let refused = install(&c, &bad)
        .await
        .expect_error(422, "validation_failed");
    let fields = refused.error_fields();
    for field in [
        "/version",
        "/auth",
        "/actions/0/request/path",
        "/triggers/0/source/pagination",
    ] {
        assert!(
            fields.iter().any(|f| f.starts_with(field)),
            "{field} in {fields:?}"
        );
    }
    // The x-lookup is checked once the document fits the format.
    let lookup = NOTES.replace(
        "text: {type: string, title: Text}",
        "text: {type: string, x-lookup: folders}",
    );
    let refused = install(&c, &lookup)
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(
        refused.error_fields(),
        vec!["/actions/0/input/properties/text/x-lookup"]
    );
    // Not YAML at all, another content type, a catalogue key: each with its own answer.
    install(&c, "key: [")
        .await
        .expect_error(400, "invalid_yaml");
    c.send(
        c.request(reqwest::Method::POST, "/connectors")
            .header("content-type", "text/plain")
            .body(NOTES),
    )
    .await
    .expect_error(415, "unsupported_media_type");
    install(&c, &NOTES.replace("key: notes", "key: slack"))
        .await
        .expect_error(409, "key_taken");
    // JSON is the same document.
    c.post("/connectors", notes_as_json()).await.expect(201);
    install(&c, NOTES).await.expect_error(409, "already_exists");
    assert!(
        c.get("/connectors/notes").await.expect(200).body["versionId"]
            .as_str()
            .unwrap()
            .starts_with("cnv_")
    );
}

/// [`NOTES`] as JSON.
fn notes_as_json() -> Value {
    json!({
        "key": "notes", "label": "Notes", "version": "1.0.0", "description": "A notes service.",
        "baseUrl": "https://notes.example/api", "auth": {"type": "bearer"},
        "test": {"method": "GET", "path": "/me"},
        "actions": [{"key": "add_note", "kind": "create", "noun": "Note", "label": "Add a note",
            "description": "Adds a note.",
            "input": {"type": "object", "required": ["text"], "properties": {"text": {"type": "string"}}},
            "request": {"method": "POST", "path": "/notes", "body": {"text": "{{input.text}}"}},
            "output": {"select": "item", "field": "note"}, "sample": {"id": "n1"}}],
        "triggers": [{"key": "new_note", "kind": "poll", "noun": "Note", "label": "New note",
            "description": "Each new note.", "source": {"path": "/notes", "items": "notes", "id": "id"},
            "sample": {"id": "n1"}}]
    })
}

#[tokio::test]
async fn flows_keep_the_connector_version_they_were_saved_with_and_deletion_waits_for_them() {
    let (notes, base) = Notes::start().await;
    let server = standins::server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    install(&c, NOTES).await.expect(201);
    let (flow, url) = notes_flow(&c, &base).await;
    let saved = c.get(&format!("/flows/{flow}")).await.expect(200);
    let v1 = saved.body["steps"][0]["connector"]
        .as_str()
        .unwrap()
        .to_owned();

    // Version 2 posts elsewhere; the flow keeps version 1 until it is saved again.
    let v2 = NOTES
        .replace("version: 1.0.0", "version: 2.0.0")
        .replace("path: /notes, body", "path: /v2/notes, body");
    let replaced = replace(&c, "notes", &v2).await.expect(200);
    assert_eq!(replaced.body["revision"], 2);
    assert_ne!(replaced.body["versionId"], v1.as_str());
    assert_eq!(call(&c, &url, "Still v1").await["status"], "succeeded");
    assert_eq!(notes.sent().last().unwrap().0, "/notes");
    let steps = saved.body["steps"].clone();
    c.patch(&format!("/flows/{flow}"), json!({"steps": steps}))
        .await
        .expect(200);
    assert_eq!(call(&c, &url, "Now v2").await["status"], "succeeded");
    assert_eq!(notes.sent().last().unwrap().0, "/v2/notes");
    // A key is the URL's.
    replace(&c, "notes", &v2.replace("key: notes", "key: other"))
        .await
        .expect_error(422, "validation_failed");
    replace(&c, "nothing", &v2.replace("key: notes", "key: nothing"))
        .await
        .expect_error(404, "not_found");

    // In use: refused, naming the flow; free once the flow is gone.
    let refused = c
        .delete("/connectors/notes")
        .await
        .expect_error(409, "in_use");
    assert!(
        refused.body["error"]["message"]
            .as_str()
            .unwrap()
            .contains(&flow)
    );
    c.delete(&format!("/flows/{flow}")).await.expect(204);
    c.delete("/connectors/notes").await.expect(204);
    c.get("/connectors/notes")
        .await
        .expect_error(404, "not_found");
    // Catalogue connectors are not the organization's to delete.
    c.delete("/connectors/slack")
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn a_flow_naming_a_connector_is_checked_against_it() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let own = c
        .post("/connections", json!({"name": "Me", "type": "self"}))
        .await
        .expect(201)
        .id();
    let refused = c
        .post(
            "/flows",
            json!({"name": "Bad", "trigger": {"type": "poll", "connectionId": own, "schedule": "*/5 * * * *",
                                              "source": "slack.new_message", "input": {}},
                   "steps": [{"key": "a", "action": "slack.post_message", "input": {"text": "x"}},
                             {"key": "b", "action": "slack.post_message", "connectionId": own,
                              "input": {"channel": "C1", "text": "x"}},
                             {"key": "c", "action": "slack.nothing", "input": {}}]}),
        )
        .await
        .expect_error(422, "validation_failed");
    let fields = refused.error_fields();
    for field in [
        "trigger.connectionId",
        "trigger.input",
        "steps[0].connectionId",
        "steps[0].input.channel",
        "steps[1].connectionId",
        "steps[2].action",
    ] {
        assert!(fields.iter().any(|f| f == field), "{field} in {fields:?}");
    }
}

#[tokio::test]
async fn the_operators_folder_is_read_again_without_a_restart_and_a_broken_file_is_skipped() {
    let db = TestDb::new().await;
    let dir = db.dir.join("connectors");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("notes.yaml"), NOTES).unwrap();
    std::fs::write(dir.join("broken.yaml"), "key: broken\nlabel: [").unwrap();
    let checked = db.cli_env(
        &["manifests", "check"],
        &[("TIMIX_CONNECTORS_DIR", dir.to_str().unwrap())],
    );
    assert!(!checked.status.success());
    let out = String::from_utf8_lossy(&checked.stdout);
    assert!(out.contains("broken.yaml"), "{out}");
    assert!(out.contains("notes"), "{out}");

    let dir_text = dir.to_str().unwrap().to_owned();
    let server = Server::start_with(db, &[("TIMIX_CONNECTORS_DIR", &dir_text)]).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let keys = || async {
        json!(
            c.get("/connectors").await.expect(200).body["items"]
                .as_array()
                .unwrap()
                .iter()
                .filter(|c| c["source"] == "instance")
                .map(|c| c["key"].clone())
                .collect::<Vec<_>>()
        )
    };
    assert_eq!(keys().await, json!(["notes"]));
    // A new file, and the broken one mended: both picked up while running.
    std::fs::write(
        dir.join("broken.yaml"),
        NOTES.replace("key: notes", "key: mended"),
    )
    .unwrap();
    std::fs::create_dir_all(dir.join("todo")).unwrap();
    std::fs::write(
        dir.join("todo/connector.yaml"),
        NOTES.replace("key: notes", "key: todo"),
    )
    .unwrap();
    eventually("the folder read again", keys, |k| {
        k == &json!(["mended", "notes", "todo"])
    })
    .await;
    // An organization cannot take an instance key.
    install(&c, &NOTES.replace("key: notes", "key: todo"))
        .await
        .expect_error(409, "key_taken");
}

/// A service that keeps webhook subscriptions: what it was asked to make and to end.
#[derive(Clone, Default)]
struct Hooks {
    made: Arc<Mutex<Vec<Value>>>,
    ended: Arc<Mutex<Vec<String>>>,
}

const WATCHED: &str = r#"
key: folders
label: Folders
version: 1.0.0
description: Folders that tell who watches them.
baseUrl: https://folders.example/api
auth: {type: bearer}
test: {method: GET, path: /me}
actions:
  - key: touch
    kind: request
    noun: Folder
    label: Touch a folder
    description: Touches a folder.
    input: {type: object, properties: {name: {type: string}}}
    request: {method: POST, path: /touch}
    output: {select: item}
    sample: {}
  - key: touch_again
    kind: request
    noun: Folder
    label: Touch a folder again
    description: Touches a folder again.
    input: {type: object, properties: {name: {type: string}}}
    request: {method: POST, path: /touch}
    output: {select: item}
    sample: {}
triggers:
  - key: note_added
    kind: webhook
    noun: Note
    label: Note added
    description: Each note added to a folder, sent by the service.
    input: {type: object, required: [folder], properties: {folder: {type: string}}}
    subscribe:
      method: POST
      path: "/folders/{{input.folder}}/hooks"
      body: {url: "{{webhookUrl}}", secret: "{{secret}}"}
      id: hook.id
    unsubscribe: {method: DELETE, path: "/folders/{{input.folder}}/hooks/{{subscription.id}}"}
    signature: github
    sample: {text: Hello}
"#;

#[tokio::test]
async fn a_webhook_trigger_is_subscribed_while_its_flow_is_enabled() {
    use axum::extract::Path;
    let hooks = Hooks::default();
    let app = axum::Router::new()
        .route(
            "/api/folders/{folder}/hooks",
            axum::routing::post(
                |State(hooks): State<Hooks>, Path(folder): Path<String>, axum::Json(body): axum::Json<Value>| async move {
                    if folder == "locked" {
                        return (
                            axum::http::StatusCode::FORBIDDEN,
                            axum::Json(json!({"message": "this folder is locked"})),
                        )
                            .into_response();
                    }
                    hooks.made.lock().unwrap().push(json!({"folder": folder, "body": body}));
                    axum::Json(json!({"hook": {"id": "h7"}})).into_response()
                },
            ),
        )
        .route(
            "/api/folders/{folder}/hooks/{id}",
            axum::routing::delete(
                |State(hooks): State<Hooks>, Path((folder, id)): Path<(String, String)>| async move {
                    hooks.ended.lock().unwrap().push(format!("{folder}/{id}"));
                    axum::http::StatusCode::NO_CONTENT
                },
            ),
        )
        .with_state(hooks.clone());
    let base = format!("{}/api", standins::serve(app).await);
    let server = standins::server().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    install(&c, WATCHED).await.expect(201);
    let connection = c
        .post(
            "/connections",
            json!({"name": "Folders", "connector": "folders", "baseUrl": base, "credentials": {"token": "t"}}),
        )
        .await
        .expect(201)
        .id();
    let flow = c
        .post(
            "/flows",
            json!({"name": "Notes become customers",
                   "trigger": {"type": "webhook", "source": "folders.note_added", "connectionId": connection,
                               "input": {"folder": "inbox"}},
                   "steps": [{"key": "c", "action": "create_customer", "input": {"name": "{{trigger.text}}"}}]}),
        )
        .await
        .expect(201);
    assert_eq!(flow.body["trigger"]["signature"], "github");
    assert_eq!(flow.body["trigger"]["hasSecret"], true);
    let path = flow.body["trigger"]["webhookUrl"]
        .as_str()
        .unwrap()
        .to_owned();
    let flow = flow.id();

    // Made at once, with the flow's URL and the secret the service signs with.
    let made = eventually(
        "the subscription",
        || async { json!(hooks.made.lock().unwrap().clone()) },
        |made| made.as_array().unwrap().len() == 1,
    )
    .await;
    let made = &made[0];
    assert_eq!(made["folder"], "inbox");
    assert_eq!(made["body"]["url"], server.url(&path));
    let secret = made["body"]["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 24, "{secret}");

    // The service's calls, signed with that secret, start runs; others are refused.
    let body = json!({"text": "Hello"}).to_string();
    let signature = format!(
        "sha256={}",
        crate::harness::hmac_hex(&secret, body.as_bytes())
    );
    let sent = c
        .send(
            c.request(reqwest::Method::POST, &path)
                .header("content-type", "application/json")
                .header("x-hub-signature-256", signature)
                .body(body.clone()),
        )
        .await
        .expect(202);
    let run = c.finished_run(sent.body["runId"].as_str().unwrap()).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    c.send(
        c.request(reqwest::Method::POST, &path)
            .header("content-type", "application/json")
            .header("x-hub-signature-256", "sha256=00")
            .body(body),
    )
    .await
    .expect_error(401, "invalid_signature");

    // Another folder: the old subscription ends, a new one is made, with the same secret.
    c.patch(
        &format!("/flows/{flow}"),
        json!({"trigger": {"type": "webhook", "source": "folders.note_added", "connectionId": connection,
                           "input": {"folder": "archive"}}}),
    )
    .await
    .expect(200);
    eventually(
        "the subscription moved",
        || async {
            json!([
                hooks.ended.lock().unwrap().clone(),
                hooks.made.lock().unwrap().len()
            ])
        },
        |v| v == &json!([["inbox/h7"], 2]),
    )
    .await;
    assert_eq!(
        hooks.made.lock().unwrap()[1]["body"]["secret"],
        secret.as_str()
    );

    // Disabled: ended there.
    c.post(&format!("/flows/{flow}/disable"), json!({}))
        .await
        .expect(200);
    eventually(
        "the subscription ended",
        || async { json!(hooks.ended.lock().unwrap().clone()) },
        |ended| ended == &json!(["inbox/h7", "archive/h7"]),
    )
    .await;

    // A subscription the service refuses shows on the flow.
    let locked = c
        .post(
            "/flows",
            json!({"name": "Locked", "trigger": {"type": "webhook", "source": "folders.note_added",
                   "connectionId": connection, "input": {"folder": "locked"}},
                   "steps": [{"key": "c", "action": "create_customer", "input": {"name": "x"}}]}),
        )
        .await
        .expect(201)
        .id();
    let shown = eventually(
        "the failure shown",
        || async { c.get(&format!("/flows/{locked}")).await.expect(200).body },
        |f| f["lastError"].is_string(),
    )
    .await;
    let error = shown["lastError"].as_str().unwrap();
    assert!(
        error.contains("subscription failed") && error.contains("this folder is locked"),
        "{error}"
    );
}
