//! The Zapier, Make and Workato apps `timix export` writes: generated from the manifests (a new
//! manifest appears in all three), the Zapier app validated by `zapier-platform-schema` and run
//! with `zapier-platform-core` against a live server, the Make app's every request executed
//! against a live server by a small interpreter of the IML it uses, the Workato connector parsed
//! by Ruby with its requests matched against the API's paths.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

use crate::actions::approved_time;
use crate::harness::{Client, Server, TestDb};
use crate::receiver::Receiver;

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("timix-{name}-{}", ulid::Ulid::generate()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn export(server: &Server, platform: &str, out: &Path, manifests: Option<&Path>) {
    let out = out.display().to_string();
    let mut args = vec!["export", platform, "--out", &out];
    let dir;
    if let Some(m) = manifests {
        dir = m.display().to_string();
        args.extend(["--manifests", &dir]);
    }
    server.db.cli(&args);
}

/// Whether a tool the test needs is here; in CI it must be.
fn tool_ready(what: &str, ready: bool) -> bool {
    if !ready {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run this test: {what} is missing"
        );
        eprintln!("\n!!! SKIPPED: {what} is missing !!!\n");
    }
    ready
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// The `SPEC` object of an exported Zapier `index.js`.
fn zapier_spec(dir: &Path) -> Value {
    let index = std::fs::read_to_string(dir.join("index.js")).unwrap();
    let start = index.find("const SPEC = ").unwrap() + "const SPEC = ".len();
    let end = index[start..].find("};\n").unwrap() + start + 1;
    serde_json::from_str(&index[start..end]).unwrap()
}

#[tokio::test]
async fn a_new_manifest_appears_in_all_three_apps() {
    let server = Server::start().await;
    let manifests = temp_dir("manifests");
    copy_dir(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("manifests/connectors/timix"),
        &manifests,
    );
    std::fs::write(
        manifests.join("actions/archive_project.yaml"),
        r#"key: archive_project
kind: update
noun: Project
label: Archive Project
description: Archives a project.
input:
  type: object
  additionalProperties: false
  required: [id]
  properties:
    id: {type: string, title: Project, x-lookup: projects}
request:
  method: PATCH
  path: "/projects/{{input.id}}"
  body: {isArchived: "true"}
output: {select: item}
sample: {id: prj_1, isArchived: true}
"#,
    )
    .unwrap();
    std::fs::write(
        manifests.join("triggers/new_org_user.yaml"),
        "key: new_org_user\nnoun: User\nlabel: New User\ndescription: Triggers when a person joins.\n\
         event: org_user.created\nlist: /org-users\nupdated: false\nsample: {id: usr_1, name: Ada}\n",
    )
    .unwrap();
    let out = temp_dir("apps");
    for platform in ["zapier", "make", "workato"] {
        export(&server, platform, &out.join(platform), Some(&manifests));
    }
    let spec = zapier_spec(&out.join("zapier"));
    let keys = |list: &str| -> Vec<String> {
        spec[list]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["key"].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(keys("actions").contains(&"archive_project".to_owned()));
    assert!(keys("triggers").contains(&"new_org_user".to_owned()));
    let make = out.join("make/modules");
    assert!(make.join("archiveProject/communication.iml.json").exists());
    assert!(make.join("watchNewOrgUser/communication.iml.json").exists());
    assert!(make.join("newOrgUserInstant/module.json").exists());
    let workato = std::fs::read_to_string(out.join("workato/connector.rb")).unwrap();
    assert!(workato.contains("    archive_project: {"));
    assert!(workato.contains("    new_org_user: {"));

    // A manifest whose request the apps cannot render is refused, naming it.
    std::fs::write(
        manifests.join("actions/shout.yaml"),
        "key: shout\nkind: create\nnoun: Customer\nlabel: Shout\ndescription: Loud.\n\
         input: {type: object, properties: {name: {type: string}}}\n\
         request: {method: POST, path: /customers, body: {name: \"{{upper input.name}}\"}}\n\
         output: {select: item}\nsample: {id: cus_1}\n",
    )
    .unwrap();
    let refused = server.db.cli_raw(&[
        "export",
        "zapier",
        "--out",
        &out.join("refused").display().to_string(),
        "--manifests",
        &manifests.display().to_string(),
    ]);
    assert!(!refused.status.success());
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(stderr.contains("shout"), "{stderr}");
}

#[tokio::test]
async fn the_invoice_timer_and_search_actions_are_in_all_three_apps() {
    let server = Server::start().await;
    let out = temp_dir("built-in-apps");
    for platform in ["zapier", "make", "workato"] {
        export(&server, platform, &out.join(platform), None);
    }
    let new = [
        ("create_invoice", "create", "POST", "'invoices'"),
        (
            "update_invoice",
            "create",
            "PATCH",
            "'invoices/' + CGI.escape",
        ),
        ("issue_invoice", "create", "POST", "+ '/issue'"),
        (
            "start_timer",
            "create",
            "POST",
            "'time-entries/timer/start'",
        ),
        ("stop_timer", "create", "POST", "+ '/stop'"),
        ("find_subtask", "search", "GET", "'subtasks'"),
        ("find_org_user", "search", "GET", "'org-users'"),
    ];
    let spec = zapier_spec(&out.join("zapier"));
    let app = read_json(&out.join("make/app.json"));
    let workato = std::fs::read_to_string(out.join("workato/connector.rb")).unwrap();
    for (key, kind, method, path) in new {
        let action = spec["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .unwrap_or_else(|| panic!("{key} is not in the Zapier app"));
        assert_eq!(action["kind"], kind, "{key}");
        assert_eq!(action["request"]["method"], method, "{key}");
        let name = timix_connectors::apps::camel(key);
        let module = &app["components"]["modules"][&name];
        let make_kind = if kind == "search" { "search" } else { "action" };
        assert_eq!(module["type"], make_kind, "{key} in the Make app");
        let communication =
            read_json(&out.join(format!("make/modules/{name}/communication.iml.json")));
        assert_eq!(communication["method"], method, "{key}");
        let start = workato
            .find(&format!("\n    {key}: {{\n      title:"))
            .unwrap_or_else(|| panic!("{key} is not a Workato action"));
        let block = &workato[start..];
        let block = &block[..block.find("\n    },").unwrap()];
        assert!(block.contains(path), "{key}: {block}");
    }
    // The ids that name records offer their dropdowns; a subtask search pairs with its create.
    let fields = |key: &str| -> Vec<Value> {
        spec["actions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .unwrap()["fields"]
            .as_array()
            .unwrap()
            .clone()
    };
    let dynamic = |key: &str, field: &str| -> Value {
        fields(key)
            .into_iter()
            .find(|f| f["key"] == field)
            .unwrap_or_else(|| panic!("{key}.{field}"))["dynamic"]
            .clone()
    };
    assert_eq!(
        dynamic("create_invoice", "customerId"),
        "customer_list.id.name"
    );
    assert_eq!(dynamic("start_timer", "subtaskId"), "subtask_list.id.name");
    assert_eq!(dynamic("start_timer", "userId"), "org_user_list.id.name");
    assert_eq!(dynamic("find_subtask", "taskId"), "task_list.id.name");
    let pairs: Vec<&str> = spec["searchOrCreates"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["key"].as_str().unwrap())
        .collect();
    assert!(pairs.contains(&"find_subtask"), "{pairs:?}");
    assert!(
        !pairs.contains(&"find_org_user"),
        "users are not created by an app"
    );
}

/// Records to act on, and the input each action of the built-in manifests is tried with.
struct Fixture {
    customer: String,
    project: String,
    task: String,
    subtask: String,
    entry: String,
    /// Drafts to issue and to update (two: the platforms run their actions in different orders).
    draft_to_issue: String,
    draft_to_update: String,
    /// The key's user's running timer, to stop.
    timer: String,
    /// Another user: whom a timer is started for, and whose e-mail is searched.
    member: String,
    member_email: String,
}

async fn fixture(c: &Client) -> Fixture {
    let customer = c.customer("Zap Customer").await;
    let project = c.project(&customer, "Zap Project").await;
    let task = c.task(&project, "Zap Task").await;
    let subtask = c.subtask(&task, "Zap Subtask").await;
    let entry = c
        .post(
            "/time-entries",
            json!({"subtaskId": subtask, "durationSeconds": 1800, "date": "2026-11-20"}),
        )
        .await
        .expect(201)
        .id();
    let me = c.get("/me").await.expect(200).body;
    let owner = me["user"]["id"].as_str().unwrap();
    // Approved time in November's first week, for `create_invoice`.
    approved_time(c, owner, &subtask, 3600).await;
    let draft = || async {
        c.post(
            "/invoices",
            json!({"customerId": customer, "lines": [{"description": "Setup", "unitPrice": "50.00"}]}),
        )
        .await
        .expect(201)
        .id()
    };
    let (draft_to_issue, draft_to_update) = (draft().await, draft().await);
    let timer = c
        .post("/time-entries/timer/start", json!({"subtaskId": subtask}))
        .await
        .expect(201)
        .id();
    let member_email = format!("zap-{}@example.com", ulid::Ulid::generate()).to_lowercase();
    let member = c
        .post(
            "/org-users",
            json!({"email": member_email, "name": "Zap Member", "role": "member"}),
        )
        .await
        .expect(201)
        .id();
    Fixture {
        customer,
        project,
        task,
        subtask,
        entry,
        draft_to_issue,
        draft_to_update,
        timer,
        member,
        member_email,
    }
}

/// `(manifest key, input)` for every built-in action, in an order that works.
fn inputs(f: &Fixture, receiver: &str, json_as_text: bool) -> Vec<(&'static str, Value)> {
    let body = if json_as_text {
        json!("{\"hello\": \"world\"}")
    } else {
        json!({"hello": "world"})
    };
    vec![
        ("create_customer", json!({"name": "Made by an app"})),
        (
            "create_project",
            json!({"customerId": f.customer, "name": "App project"}),
        ),
        (
            "create_task",
            json!({"projectId": f.project, "name": "App task"}),
        ),
        (
            "create_subtask",
            json!({"taskId": f.task, "name": "App subtask"}),
        ),
        (
            "create_time_entry",
            json!({"subtaskId": f.subtask, "durationSeconds": 3600, "date": "2026-11-20", "notes": "From an app"}),
        ),
        (
            "update_customer",
            json!({"id": f.customer, "notes": "Updated by an app"}),
        ),
        ("update_project", json!({"id": f.project, "code": "APP"})),
        (
            "update_task",
            json!({"id": f.task, "status": "in_progress"}),
        ),
        (
            "update_subtask",
            json!({"id": f.subtask, "name": "Zap Subtask (renamed)"}),
        ),
        (
            "update_time_entry",
            json!({"id": f.entry, "notes": "Changed by an app"}),
        ),
        ("find_customer", json!({"q": "zap cust"})),
        ("find_project", json!({"q": "zap"})),
        ("find_task", json!({"q": "zap", "projectId": f.project})),
        (
            "create_invoice",
            json!({"customerId": f.customer, "from": "2026-11-01", "to": "2026-11-30"}),
        ),
        (
            "update_invoice",
            json!({"id": f.draft_to_update, "notes": "Changed by an app"}),
        ),
        (
            "issue_invoice",
            json!({"id": f.draft_to_issue, "issueDate": "2026-12-01"}),
        ),
        (
            "start_timer",
            json!({"subtaskId": f.subtask, "userId": f.member}),
        ),
        ("stop_timer", json!({"id": f.timer})),
        ("find_subtask", json!({"q": "zap", "taskId": f.task})),
        ("find_org_user", json!({"email": f.member_email})),
        (
            "http_request",
            json!({"method": "POST", "url": receiver, "body": body}),
        ),
    ]
}

#[tokio::test]
async fn the_zapier_app_passes_its_schema_and_runs_against_a_live_server() {
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/zapier");
    let ready = tests.join("node_modules/zapier-platform-core").exists()
        && Command::new("node").arg("--version").output().is_ok();
    if !tool_ready("node with `npm ci --prefix tests/zapier`", ready) {
        return;
    }
    let server =
        Server::start_with(TestDb::new().await, &[("TIMIX_ALLOW_PRIVATE_TARGETS", "1")]).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let f = fixture(&c).await;
    let receiver = Receiver::start().await;
    let out = temp_dir("zapier");
    export(&server, "zapier", &out, None);
    let steps: Vec<Value> = inputs(&f, &receiver.url, true)
        .into_iter()
        .map(|(key, input)| {
            let kind = if key.starts_with("find_") {
                "search"
            } else {
                "create"
            };
            json!({"kind": kind, "key": key, "input": input})
        })
        .collect();
    let plan = json!({
        "authData": {"baseUrl": server.url(""), "apiKey": org.key},
        "hookTarget": receiver.url,
        "steps": steps,
    });
    let plan_file = out.join("plan.json");
    std::fs::write(&plan_file, plan.to_string()).unwrap();
    // Async: the receiver answers on this test's runtime while node runs.
    let run = tokio::process::Command::new("node")
        .arg(tests.join("run.js"))
        .arg(&out)
        .arg(&plan_file)
        .arg(out.join("report.json"))
        .env("NODE_PATH", tests.join("node_modules"))
        .output()
        .await
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let report: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("report.json")).unwrap()).unwrap();
    assert_eq!(report["schemaErrors"], json!([]), "{report}");
    let label = report["label"].as_str().unwrap();
    assert!(label.starts_with("Test Org (owner-"), "{label}");
    // Every polling trigger ran; the new customer trigger sees the fixture's customer first.
    let triggers = report["triggers"].as_object().unwrap();
    assert_eq!(triggers["new_customer"]["first"]["name"], "Zap Customer");
    assert!(triggers["customer_list"]["count"].as_u64().unwrap() >= 1);
    assert!(triggers["org_user_list"]["count"].as_u64().unwrap() >= 1);
    let updated = &triggers["updated_task"]["first"];
    assert!(updated.is_null() || updated["id"].as_str().unwrap().contains('@'));
    // Every REST-hook trigger subscribed and unsubscribed.
    let hooks = report["hooks"].as_object().unwrap();
    assert_eq!(hooks.len(), 12);
    assert!(hooks.values().all(|h| h["hookId"].as_str().is_some()));
    // Every create and search did what it says.
    let steps = &report["steps"];
    assert_eq!(steps["create_customer"]["name"], "Made by an app");
    assert_eq!(steps["create_time_entry"]["durationSeconds"], 3600);
    assert_eq!(steps["update_task"]["status"], "in_progress");
    assert_eq!(steps["find_customer"][0]["id"], f.customer.as_str());
    assert_eq!(steps["find_task"][0]["id"], f.task.as_str());
    assert_eq!(steps["http_request"]["status"], 200);
    assert_eq!(steps["create_invoice"]["status"], "draft");
    assert_eq!(steps["create_invoice"]["lines"][0]["kind"], "time");
    assert_eq!(steps["update_invoice"]["notes"], "Changed by an app");
    assert_eq!(steps["issue_invoice"]["status"], "issued");
    assert_eq!(steps["issue_invoice"]["number"], "INV-0001");
    assert_eq!(steps["start_timer"]["isRunning"], true);
    assert_eq!(steps["start_timer"]["userId"], f.member.as_str());
    assert_eq!(steps["stop_timer"]["id"], f.timer.as_str());
    assert_eq!(steps["stop_timer"]["isRunning"], false);
    assert_eq!(steps["find_subtask"][0]["id"], f.subtask.as_str());
    assert_eq!(steps["find_org_user"][0]["id"], f.member.as_str());
    let received = receiver.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].json(), json!({"hello": "world"}));
    assert!(
        received[0].headers.get("x-api-key").is_none(),
        "the API key stays with timix"
    );
}

/// A small interpreter of the IML the Make app uses: `{{path}}`, `{{encodeURL(path)}}`,
/// `{{omit(path, 'key', …)}}`; a value that is one expression keeps its type.
fn iml_value(expression: &str, context: &Value) -> Value {
    let expression = expression.trim();
    let args =
        |inner: &str| -> Vec<String> { inner.split(',').map(|a| a.trim().to_owned()).collect() };
    if let Some(inner) = expression
        .strip_prefix("encodeURL(")
        .and_then(|e| e.strip_suffix(')'))
    {
        let value = iml_value(inner, context);
        let text = match value {
            Value::String(s) => s,
            other => other.to_string(),
        };
        return json!(url_encode(&text));
    }
    if let Some(inner) = expression
        .strip_prefix("omit(")
        .and_then(|e| e.strip_suffix(')'))
    {
        let args = args(inner);
        let mut value = iml_value(&args[0], context);
        if let Some(object) = value.as_object_mut() {
            for key in &args[1..] {
                object.remove(key.trim_matches('\''));
            }
        }
        return value;
    }
    expression
        .split('.')
        .fold(context, |v, key| v.get(key).unwrap_or(&Value::Null))
        .clone()
}

fn url_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn iml(template: &Value, context: &Value) -> Value {
    match template {
        Value::String(text) => {
            let trimmed = text.trim();
            if trimmed.starts_with("{{")
                && trimmed.ends_with("}}")
                && trimmed.matches("{{").count() == 1
            {
                return iml_value(&trimmed[2..trimmed.len() - 2], context);
            }
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(start) = rest.find("{{") {
                out.push_str(&rest[..start]);
                let end = start + rest[start..].find("}}").unwrap();
                match iml_value(&rest[start + 2..end], context) {
                    Value::String(s) => out.push_str(&s),
                    Value::Null => {}
                    other => out.push_str(&other.to_string()),
                }
                rest = &rest[end + 2..];
            }
            out.push_str(rest);
            Value::String(out)
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), iml(v, context)))
                .collect::<Map<_, _>>(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| iml(v, context)).collect()),
        other => other.clone(),
    }
}

/// Performs one communication block; returns the outputs (one per iterated item, or one).
async fn communicate(
    http: &reqwest::Client,
    base: &Value,
    communication: &Value,
    context: &Value,
) -> Vec<Value> {
    let url = iml(&communication["url"], context);
    let url = url.as_str().unwrap();
    let url = if url.starts_with("http") {
        url.to_owned()
    } else {
        format!("{}{url}", iml(&base["baseUrl"], context).as_str().unwrap())
    };
    let method = iml(&communication["method"], context);
    let method = method.as_str().unwrap_or("GET");
    let mut target = reqwest::Url::parse(&url).unwrap();
    for (k, v) in iml(&communication["qs"], context)
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null() && *v != "")
    {
        let v = v.as_str().map_or(v.to_string(), str::to_owned);
        target.query_pairs_mut().append_pair(k, &v);
    }
    let mut request = http.request(method.parse().unwrap(), target);
    for (name, value) in iml(&communication["headers"], context)
        .as_object()
        .into_iter()
        .flatten()
    {
        request = request.header(name, value.as_str().unwrap());
    }
    if !communication["body"].is_null() {
        request = request.json(&iml(&communication["body"], context));
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let mut context = context.clone();
    context["body"] = body;
    context["statusCode"] = json!(status);
    assert!(
        status < 400,
        "{method} {url}: {}",
        iml(&base["response"]["error"]["message"], &context)
    );
    let response = &communication["response"];
    if response["iterate"].is_string() {
        let items = iml(&response["iterate"], &context);
        let limit = response["limit"].as_u64().unwrap_or(u64::MAX) as usize;
        return items
            .as_array()
            .unwrap()
            .iter()
            .take(limit)
            .map(|item| {
                let mut scope = context.clone();
                scope["item"] = item.clone();
                if response["trigger"].is_object() {
                    let id = iml(&response["trigger"]["id"], &scope);
                    assert!(id.as_str().is_some_and(|s| !s.is_empty()), "trigger id");
                }
                iml(&response["output"], &scope)
            })
            .collect();
    }
    if response["data"].is_object() {
        return vec![iml(&response["data"], &context)];
    }
    if response["output"].is_null() {
        return vec![context["body"].clone()];
    }
    vec![iml(&response["output"], &context)]
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn every_request_of_the_make_app_runs_against_a_live_server() {
    let server =
        Server::start_with(TestDb::new().await, &[("TIMIX_ALLOW_PRIVATE_TARGETS", "1")]).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let f = fixture(&c).await;
    let receiver = Receiver::start().await;
    let out = temp_dir("make");
    export(&server, "make", &out, None);
    let http = reqwest::Client::new();
    let base = read_json(&out.join("base.iml.json"));
    let connection = json!({"baseUrl": server.url(""), "apiKey": org.key});
    // The connection test.
    let test = read_json(&out.join("connections/timix/communication.iml.json"));
    let me = communicate(
        &http,
        &base,
        &test,
        &json!({"parameters": connection.clone()}),
    )
    .await;
    assert!(me[0]["organization"]["name"].is_string());
    let app = read_json(&out.join("app.json"));
    let modules = app["components"]["modules"].as_object().unwrap();
    let inputs: std::collections::HashMap<String, Value> = inputs(&f, &receiver.url, false)
        .into_iter()
        .map(|(key, input)| (timix_connectors::apps::camel(key), input))
        .collect();
    let mut ran = 0;
    for (name, module) in modules {
        let dir = out.join("modules").join(name);
        match module["type"].as_str().unwrap() {
            "action" | "search" => {
                let communication = read_json(&dir.join("communication.iml.json"));
                let parameters = inputs
                    .get(name)
                    .unwrap_or_else(|| panic!("no input for {name}"));
                let context = json!({"connection": connection.clone(), "parameters": parameters});
                let output = communicate(&http, &base, &communication, &context).await;
                assert!(!output.is_empty(), "{name} gave nothing");
                assert!(!output[0].is_null(), "{name}: {output:?}");
                ran += 1;
            }
            "trigger" => {
                let communication = read_json(&dir.join("communication.iml.json"));
                let context = json!({"connection": connection.clone(), "parameters": {}});
                communicate(&http, &base, &communication, &context).await;
                ran += 1;
            }
            "instant_trigger" => {
                let hook = module["webhook"].as_str().unwrap();
                let hook_dir = out.join("webhooks").join(hook);
                let attach = read_json(&hook_dir.join("attach.iml.json"));
                let context =
                    json!({"connection": connection.clone(), "webhook": {"url": receiver.url}});
                let data = communicate(&http, &base, &attach, &context).await;
                let id = data[0]["externalHookId"].as_str().unwrap().to_owned();
                let detach = read_json(&hook_dir.join("detach.iml.json"));
                let context =
                    json!({"connection": connection.clone(), "webhook": {"externalHookId": id}});
                communicate(&http, &base, &detach, &context).await;
                ran += 1;
            }
            other => panic!("unknown module type {other}"),
        }
    }
    assert_eq!(ran, 21 + 12 * 2, "every module ran");
    for rpc in app["components"]["rpcs"].as_object().unwrap().keys() {
        let communication = read_json(&out.join("rpcs").join(rpc).join("communication.iml.json"));
        let options = communicate(
            &http,
            &base,
            &communication,
            &json!({"connection": connection.clone()}),
        )
        .await;
        assert!(!options.is_empty(), "{rpc}");
        assert!(options[0]["label"].is_string() && options[0]["value"].is_string());
    }
    // What the modules did is there.
    let names: Vec<String> = c
        .get("/customers?q=made%20by")
        .await
        .expect(200)
        .items()
        .iter()
        .map(|i| i["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, vec!["Made by an app"]);
    let invoice = |id: String| {
        let c = c.clone();
        async move { c.get(&format!("/invoices/{id}")).await.expect(200).body }
    };
    assert_eq!(invoice(f.draft_to_issue.clone()).await["status"], "issued");
    assert_eq!(
        invoice(f.draft_to_update.clone()).await["notes"],
        "Changed by an app"
    );
    let from_time = c
        .get(&format!("/invoices?customerId={}&status=draft", f.customer))
        .await
        .expect(200)
        .items();
    assert!(
        from_time.iter().any(|i| i["periodFrom"] == "2026-11-01"),
        "{from_time:?}"
    );
    let stopped = c
        .get(&format!("/time-entries/{}", f.timer))
        .await
        .expect(200)
        .body;
    assert_eq!(stopped["isRunning"], false);
    let running = c
        .get(&format!("/time-entries?userId={}&isRunning=true", f.member))
        .await
        .expect(200)
        .items();
    assert_eq!(running.len(), 1, "the member's timer was started");
    assert_eq!(receiver.received().len(), 1);
    assert!(receiver.received()[0].headers.get("x-api-key").is_none());
}

#[tokio::test]
async fn the_workato_connector_parses_and_calls_the_apis_paths() {
    let server = Server::start().await;
    let out = temp_dir("workato");
    export(&server, "workato", &out, None);
    let file = out.join("connector.rb");
    let ruby = Command::new("ruby").arg("--version").output().is_ok();
    if tool_ready("ruby (Debian's ruby)", ruby) {
        let check = Command::new("ruby").arg("-c").arg(&file).output().unwrap();
        assert!(
            check.status.success(),
            "{}",
            String::from_utf8_lossy(&check.stderr)
        );
    }
    let source = std::fs::read_to_string(&file).unwrap();
    // Every path it calls is one of the API's (ids in paths are `{…}` parameters there).
    let openapi = server
        .anonymous()
        .get("/api/integration/v1/openapi.json")
        .await
        .expect(200)
        .body;
    let documented: Vec<String> = openapi["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(|p| {
            p.trim_start_matches("/api/integration/v1")
                .split('/')
                .map(|s| if s.starts_with('{') { "*" } else { s })
                .collect::<Vec<_>>()
                .join("/")
        })
        .collect();
    let mut called = Vec::new();
    for (i, _) in source
        .match_indices("get(")
        .chain(source.match_indices("post("))
        .chain(source.match_indices("delete("))
        .chain(source.match_indices("patch("))
    {
        let rest = &source[i..];
        let open = rest.find('(').unwrap() + 1;
        let quote = rest[open..].chars().next().unwrap();
        if quote != '\'' && quote != '"' {
            continue;
        }
        let text: String = rest[open + 1..]
            .chars()
            .take_while(|c| *c != quote)
            .collect();
        let path = format!(
            "/{}",
            text.split("#{").next().unwrap().trim_end_matches('/')
        );
        let path = if text.contains("#{") {
            format!("{path}/*")
        } else {
            path
        };
        called.push(path);
    }
    for line in source
        .lines()
        .filter(|l| l.trim_start().starts_with("url = '"))
    {
        let text = line.trim_start().trim_start_matches("url = '");
        let literal = text.split('\'').next().unwrap();
        let path = if text.contains("CGI.escape") {
            format!("/{}*", literal)
        } else {
            format!("/{literal}")
        };
        called.push(path);
    }
    called.sort();
    called.dedup();
    assert!(called.len() >= 10, "{called:?}");
    for path in &called {
        assert!(
            documented.contains(path),
            "{path} is not a path of the API ({documented:?})"
        );
    }
}
