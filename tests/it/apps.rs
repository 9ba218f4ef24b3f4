//! The Zapier, Make and Workato apps `timix export` writes: generated from the manifests (a new
//! manifest appears in all three), the Zapier app validated by `zapier-platform-schema` and run
//! with `zapier-platform-core` against a live server, the Make project checked against the layout
//! the Make Apps Editor for VS Code reads and its every request executed against a live server by
//! a small interpreter of the IML it uses, the Workato connector parsed by Ruby, its requests
//! matched against the API's paths, and run against a live server by an interpreter of the
//! connector SDK (`tests/workato/`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Map, Value, json};

use crate::actions::approved_time;
use crate::harness::{Client, Script, Server, TestDb, temp_dir, tool_ready};
use crate::receiver::Receiver;

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
    let make = MakeProject::open(&out.join("make"));
    assert_eq!(
        make.component("module", "archiveProject")["moduleType"],
        "action"
    );
    assert_eq!(
        make.code("module", "archiveProject", "communication")["method"],
        "PATCH"
    );
    assert_eq!(
        make.component("module", "watchNewOrgUser")["moduleType"],
        "trigger"
    );
    assert_eq!(
        make.code("module", "watchNewOrgUser", "communication")["url"],
        "/org-users"
    );
    assert_eq!(
        make.component("module", "newOrgUserInstant")["webhook"],
        "newOrgUserHook"
    );
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
    let make = MakeProject::open(&out.join("make"));
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
        let make_kind = if kind == "search" { "search" } else { "action" };
        assert_eq!(
            make.component("module", &name)["moduleType"],
            make_kind,
            "{key} in the Make app"
        );
        assert_eq!(
            make.code("module", &name, "communication")["method"],
            method,
            "{key}"
        );
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
            json!({"subtaskId": f.subtask, "durationSeconds": 3600, "billable": true, "date": "2026-11-20", "notes": "From an app"}),
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

/// An input as a step of another app maps it: numbers and yes/no as text (`"3600"`, `"true"`).
fn as_text(input: Value) -> Value {
    let Value::Object(map) = input else {
        return input;
    };
    map.into_iter()
        .map(|(key, value)| {
            let value = match value {
                Value::Number(n) => json!(n.to_string()),
                Value::Bool(b) => json!(b.to_string()),
                other => other,
            };
            (key, value)
        })
        .collect()
}

#[tokio::test]
async fn the_zapier_app_passes_its_schema_and_runs_against_a_live_server() {
    let Some(zapier) = Script::new("node", "zapier/run.js")
        .packages(&["zapier-platform-core"])
        .ready()
    else {
        return;
    };
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
            json!({"kind": kind, "key": key, "input": as_text(input)})
        })
        .collect();
    let plan = json!({
        "authData": {"baseUrl": server.url(""), "apiKey": org.key},
        "hookTarget": receiver.url,
        "steps": steps,
    });
    // Async: the receiver answers on this test's runtime while node runs.
    let report = zapier.arg(&out).plan(&out, &plan).run().await;
    assert_eq!(report["schemaErrors"], json!([]), "{report}");
    let label = report["label"].as_str().unwrap();
    assert!(label.starts_with("Test Org (owner-"), "{label}");
    // The app authenticates with an API key: a refused key asks the user to reconnect; only
    // an OAuth2 app would ask Zapier to refresh its token.
    assert_eq!(report["auth"]["type"], "custom");
    assert_eq!(report["refusedKey"]["asIs"], "ExpiredAuthError", "{report}");
    assert_eq!(
        report["refusedKey"]["asOAuth2"], "RefreshAuthError",
        "{report}"
    );
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
    // Mapped as text ("3600", "true"), taken as the number and the yes/no the API wants.
    assert_eq!(steps["create_time_entry"]["durationSeconds"], 3600);
    assert_eq!(steps["create_time_entry"]["billable"], true);
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

/// An IML expression (what is between `{{` and `}}`), as far as the Make app uses IML: paths
/// (`parameters.id`), strings, numbers, `undefined`, `( )`, `!`, `+`, `==` (`=`), `!=`, `<`,
/// `<=`, `>`, `>=`, `&&`, `||`, and the functions `encodeURL`, `omit`, `if`, `ifempty`,
/// `indexOf` and `lower`.
fn iml_value(expression: &str, context: &Value) -> Value {
    let tokens = iml_tokens(expression);
    let mut parser = ImlParser {
        tokens: &tokens,
        at: 0,
        context,
    };
    let value = parser.or();
    assert_eq!(parser.at, tokens.len(), "IML left unread in {expression:?}");
    value
}

#[derive(Debug, Clone, PartialEq)]
enum ImlToken {
    Number(f64),
    Text(String),
    Name(String),
    Punct(&'static str),
}

fn iml_tokens(expression: &str) -> Vec<ImlToken> {
    const PUNCTS: [&str; 17] = [
        "==", "!=", "<=", ">=", "&&", "||", "=", "<", ">", "!", "+", "-", "(", ")", ",", ".", "*",
    ];
    let chars: Vec<char> = expression.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '\'' || c == '"' {
            let end = i + 1 + chars[i + 1..].iter().position(|d| *d == c).unwrap();
            tokens.push(ImlToken::Text(chars[i + 1..end].iter().collect()));
            i = end + 1;
        } else if c.is_ascii_digit() {
            let len = chars[i..]
                .iter()
                .take_while(|d| d.is_ascii_digit() || **d == '.')
                .count();
            let text: String = chars[i..i + len].iter().collect();
            tokens.push(ImlToken::Number(text.parse().unwrap()));
            i += len;
        } else if c.is_alphabetic() || c == '_' {
            let len = chars[i..]
                .iter()
                .take_while(|d| d.is_alphanumeric() || **d == '_')
                .count();
            tokens.push(ImlToken::Name(chars[i..i + len].iter().collect()));
            i += len;
        } else {
            let rest: String = chars[i..].iter().take(2).collect();
            let punct = PUNCTS
                .into_iter()
                .find(|p| rest.starts_with(p))
                .unwrap_or_else(|| panic!("IML: unexpected {c:?} in {expression:?}"));
            tokens.push(ImlToken::Punct(punct));
            i += punct.len();
        }
    }
    tokens
}

struct ImlParser<'a> {
    tokens: &'a [ImlToken],
    at: usize,
    context: &'a Value,
}

impl ImlParser<'_> {
    fn eat(&mut self, punct: &str) -> bool {
        let found = matches!(self.tokens.get(self.at), Some(ImlToken::Punct(p)) if *p == punct);
        if found {
            self.at += 1;
        }
        found
    }

    fn or(&mut self) -> Value {
        let mut left = self.and();
        while self.eat("||") {
            let right = self.and();
            left = json!(truthy(&left) || truthy(&right));
        }
        left
    }

    fn and(&mut self) -> Value {
        let mut left = self.equality();
        while self.eat("&&") {
            let right = self.equality();
            left = json!(truthy(&left) && truthy(&right));
        }
        left
    }

    fn equality(&mut self) -> Value {
        let mut left = self.relation();
        loop {
            if self.eat("==") || self.eat("=") {
                let right = self.relation();
                left = json!(same(&left, &right));
            } else if self.eat("!=") {
                let right = self.relation();
                left = json!(!same(&left, &right));
            } else {
                return left;
            }
        }
    }

    fn relation(&mut self) -> Value {
        let left = self.sum();
        for op in ["<=", ">=", "<", ">"] {
            if self.eat(op) {
                let (a, b) = (number(&left), number(&self.sum()));
                return json!(match op {
                    "<=" => a <= b,
                    ">=" => a >= b,
                    "<" => a < b,
                    _ => a > b,
                });
            }
        }
        left
    }

    fn sum(&mut self) -> Value {
        let mut left = self.unary();
        loop {
            if self.eat("+") {
                let right = self.unary();
                left = if left.is_string() || right.is_string() {
                    json!(format!("{}{}", text(&left), text(&right)))
                } else {
                    json!(number(&left) + number(&right))
                };
            } else if self.eat("-") {
                let right = self.unary();
                left = json!(number(&left) - number(&right));
            } else if self.eat("*") {
                let right = self.unary();
                left = json!(number(&left) * number(&right));
            } else {
                return left;
            }
        }
    }

    fn unary(&mut self) -> Value {
        if self.eat("!") {
            let value = self.unary();
            return json!(!truthy(&value));
        }
        self.primary()
    }

    fn primary(&mut self) -> Value {
        let token = self.tokens[self.at].clone();
        self.at += 1;
        match token {
            ImlToken::Number(n) => json!(n),
            ImlToken::Text(t) => json!(t),
            ImlToken::Punct("(") => {
                let value = self.or();
                assert!(self.eat(")"), "IML: ( without )");
                value
            }
            ImlToken::Name(name) if self.eat("(") => {
                let mut args = Vec::new();
                if !self.eat(")") {
                    loop {
                        args.push(self.or());
                        if self.eat(")") {
                            break;
                        }
                        assert!(self.eat(","), "IML: arguments of {name}");
                    }
                }
                call(&name, args)
            }
            ImlToken::Name(name) if name == "undefined" => Value::Null,
            ImlToken::Name(name) => {
                let mut value = self.context.get(&name).cloned().unwrap_or(Value::Null);
                while self.eat(".") {
                    let Some(ImlToken::Name(key)) = self.tokens.get(self.at).cloned() else {
                        panic!("IML: a name after .");
                    };
                    self.at += 1;
                    value = value.get(&key).cloned().unwrap_or(Value::Null);
                }
                value
            }
            other => panic!("IML: unexpected {other:?}"),
        }
    }
}

fn call(name: &str, args: Vec<Value>) -> Value {
    match name {
        "encodeURL" => json!(url_encode(&text(&args[0]))),
        "omit" => {
            let mut object = args[0].clone();
            if let Some(map) = object.as_object_mut() {
                for key in &args[1..] {
                    map.remove(&text(key));
                }
            }
            object
        }
        "if" => {
            if truthy(&args[0]) {
                args[1].clone()
            } else {
                args.get(2).cloned().unwrap_or(Value::Null)
            }
        }
        "ifempty" => {
            if args[0].is_null() || args[0] == "" {
                args[1].clone()
            } else {
                args[0].clone()
            }
        }
        "indexOf" => {
            let (haystack, needle) = (text(&args[0]), text(&args[1]));
            json!(haystack.find(&needle).map_or(-1, |i| i as i64))
        }
        "lower" => json!(text(&args[0]).to_lowercase()),
        other => panic!("IML: the function {other} is not one the app may use"),
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        _ => true,
    }
}

fn number(value: &Value) -> f64 {
    match value {
        Value::Number(n) => n.as_f64().unwrap(),
        Value::String(s) => s.parse().unwrap_or(f64::NAN),
        _ => f64::NAN,
    }
}

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(_), Value::Number(_)) => number(a) == number(b),
        _ => a == b,
    }
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Number(n) if n.as_f64().is_some_and(|f| f.fract() == 0.0) => {
            (n.as_f64().unwrap() as i64).to_string()
        }
        other => other.to_string(),
    }
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

/// A value with every `{{…}}` evaluated; a string that is one expression keeps its type.
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
                out.push_str(&self::text(&iml_value(&rest[start + 2..end], context)));
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

/// `over` laid over `base`, as Make lays a trigger's epoch over its communication.
fn merged(base: &Value, over: &Value) -> Value {
    match (base, over) {
        (Value::Object(a), Value::Object(b)) => {
            let mut out = a.clone();
            for (key, value) in b {
                let value = out.get(key).map_or(value.clone(), |old| merged(old, value));
                out.insert(key.clone(), value);
            }
            Value::Object(out)
        }
        (base, Value::Null) => base.clone(),
        (_, over) => over.clone(),
    }
}

/// What a module's communication gave: its outputs and the URLs it called.
#[derive(Debug)]
struct Outcome {
    outputs: Vec<Value>,
    sent: Vec<reqwest::Url>,
}

/// A failed request as Make reports it, with the type and message of the `error` directive.
#[derive(Debug)]
struct MakeError {
    status: u16,
    kind: String,
    message: String,
}

/// Performs a communication: one request, or several of which those whose `condition` holds
/// run, the last one's output being the module's. `base` is the app's base.
async fn communicate(
    http: &reqwest::Client,
    base: &Value,
    communication: &Value,
    context: &Value,
) -> Result<Outcome, MakeError> {
    let requests = match communication {
        Value::Array(requests) => requests.clone(),
        one => vec![one.clone()],
    };
    let mut outcome = Outcome {
        outputs: Vec::new(),
        sent: Vec::new(),
    };
    for request in &requests {
        if request.get("condition").is_some() && !truthy(&iml(&request["condition"], context)) {
            continue;
        }
        let (outputs, sent) = send(http, base, request, context).await?;
        outcome.outputs = outputs;
        outcome.sent.push(sent);
    }
    Ok(outcome)
}

async fn send(
    http: &reqwest::Client,
    base: &Value,
    request: &Value,
    context: &Value,
) -> Result<(Vec<Value>, reqwest::Url), MakeError> {
    let url = iml(&request["url"], context);
    let url = url.as_str().unwrap();
    let url = if url.starts_with("http") {
        url.to_owned()
    } else {
        format!("{}{url}", iml(&base["baseUrl"], context).as_str().unwrap())
    };
    let method = iml(&request["method"], context);
    let method = method.as_str().unwrap_or("GET");
    let mut target = reqwest::Url::parse(&url).unwrap();
    for (k, v) in iml(&request["qs"], context)
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(_, v)| !v.is_null() && *v != "")
    {
        target.query_pairs_mut().append_pair(k, &text(v));
    }
    let mut outgoing = http.request(method.parse().unwrap(), target.clone());
    for (name, value) in iml(&request["headers"], context)
        .as_object()
        .into_iter()
        .flatten()
    {
        outgoing = outgoing.header(name, text(value));
    }
    // Make sends no body with a GET.
    let body = iml(&request["body"], context);
    if !body.is_null() && method != "GET" {
        outgoing = outgoing.json(&body);
    }
    let response = outgoing.send().await.unwrap();
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let mut context = context.clone();
    context["body"] = body;
    context["statusCode"] = json!(status);
    if status >= 400 {
        // The request's own error directive, else the base's.
        let error = [&request["response"]["error"], &base["response"]["error"]]
            .into_iter()
            .find(|e| e.is_object())
            .cloned()
            .unwrap_or(Value::Null);
        let error = merged(&error, &error[status.to_string()]);
        return Err(MakeError {
            status,
            kind: text(&iml(&error["type"], &context)),
            message: text(&iml(&error["message"], &context)),
        });
    }
    let response = &request["response"];
    let outputs = if response["iterate"].is_string() {
        let items = iml(&response["iterate"], &context);
        let limit = match iml(&response["limit"], &context) {
            Value::Null => usize::MAX,
            limit => number(&limit) as usize,
        };
        items
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
                    let date = iml(&response["trigger"]["date"], &scope);
                    assert!(
                        date.as_str().is_some_and(|d| d.ends_with('Z')),
                        "trigger date {date}"
                    );
                }
                iml(&response["output"], &scope)
            })
            .collect()
    } else if response["data"].is_object() {
        vec![iml(&response["data"], &context)]
    } else if response["output"].is_null() {
        vec![context["body"].clone()]
    } else {
        vec![iml(&response["output"], &context)]
    };
    Ok((outputs, target))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The Make project `timix export make` writes, read as the Make Apps Editor reads it: from
/// `makecomapp.json`, which names every component and the files of its codes.
struct MakeProject {
    dir: PathBuf,
    manifest: Value,
}

impl MakeProject {
    fn open(dir: &Path) -> MakeProject {
        MakeProject {
            dir: dir.to_owned(),
            manifest: read_json(&dir.join("makecomapp.json")),
        }
    }

    fn component(&self, kind: &str, id: &str) -> &Value {
        let component = &self.manifest["components"][kind][id];
        assert!(component.is_object(), "no {kind} {id} in makecomapp.json");
        component
    }

    fn ids(&self, kind: &str) -> Vec<String> {
        self.manifest["components"][kind]
            .as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect()
    }

    fn code(&self, kind: &str, id: &str, code: &str) -> Value {
        let path = self.component(kind, id)["codeFiles"][code]
            .as_str()
            .unwrap_or_else(|| panic!("{kind} {id} has no {code}"));
        read_json(&self.dir.join(path))
    }

    fn base(&self) -> Value {
        let path = self.manifest["generalCodeFiles"]["base"].as_str().unwrap();
        read_json(&self.dir.join(path))
    }
}

/// `watchNewCustomer` → `watch-new-customer`, as the extension names component folders and files.
fn kebab(id: &str) -> String {
    let mut out = String::new();
    let mut previous: Option<char> = None;
    for c in id.chars() {
        if c.is_ascii_uppercase()
            && previous.is_some_and(|p| p.is_ascii_lowercase() || p.is_ascii_digit())
        {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
        previous = Some(c);
    }
    out
}

/// The codes of a component, with the name its file gets, as the VS Code extension defines them
/// (`component-code-def.ts`); `None` for a code that may be left out (`null`: common data).
fn expected_codes(kind: &str, metadata: &Value) -> Vec<(&'static str, Option<&'static str>)> {
    let module_type = metadata["moduleType"].as_str().unwrap_or_default();
    match kind {
        "connection" => vec![
            ("communication", Some("communication")),
            ("params", Some("params")),
            ("common", None),
        ],
        "webhook" => vec![
            ("communication", Some("communication")),
            ("params", Some("params")),
            ("attach", Some("attach")),
            ("detach", Some("detach")),
            ("update", Some("update")),
            ("requiredScope", Some("required-scope")),
        ],
        "rpc" => vec![
            ("communication", Some("communication")),
            ("params", Some("params")),
        ],
        "module" => {
            let mut codes = vec![("communication", Some("communication"))];
            if module_type == "trigger" {
                codes.push(("epoch", Some("epoch")));
            }
            codes.extend([
                ("staticParams", Some("static-params")),
                ("mappableParams", Some("mappable-params")),
                ("interface", Some("interface")),
                ("samples", Some("samples")),
            ]);
            if ["trigger", "action", "search", "universal"].contains(&module_type) {
                codes.push(("scope", Some("scope")));
            }
            codes
        }
        other => panic!("the app has no {other} components"),
    }
}

/// Whether a local id meets the extension's rule for its kind (`validate-id.ts`): modules and
/// RPCs become the names in Make; connections and webhooks may also have dashes.
fn valid_id(kind: &str, id: &str) -> bool {
    let chars: Vec<char> = id.chars().collect();
    let first_letter = chars.first().is_some_and(char::is_ascii_alphabetic);
    match kind {
        "module" | "rpc" => {
            first_letter
                && (3..=64).contains(&chars.len())
                && chars.iter().all(char::is_ascii_alphanumeric)
        }
        _ => {
            first_letter
                && (3..=35).contains(&chars.len())
                && chars.iter().all(|c| c.is_ascii_alphanumeric() || *c == '-')
                && !id.ends_with('-')
        }
    }
}

#[tokio::test]
async fn the_make_export_is_a_project_the_vs_code_extension_opens() {
    let server = Server::start().await;
    let out = temp_dir("make-project");
    export(&server, "make", &out, None);
    let project = MakeProject::open(&out);
    let manifest = &project.manifest;

    // The project file: its four parts, the general codes where the extension puts them.
    let keys = |v: &Value| -> Vec<String> { v.as_object().unwrap().keys().cloned().collect() };
    assert_eq!(
        keys(manifest),
        ["components", "fileVersion", "generalCodeFiles", "origins"]
    );
    assert!(manifest["fileVersion"].is_number());
    assert_eq!(
        manifest["generalCodeFiles"],
        json!({"base": "general/base.iml.json", "common": null, "readme": "README.md",
               "groups": "modules/groups.json"})
    );
    assert_eq!(
        keys(&manifest["components"]),
        // The extension's schema (makecomapp.schema.json) allows exactly these kinds.
        ["connection", "function", "module", "rpc", "webhook"]
    );
    // The origin the user points at their app in Make (the extension asks for the API token and
    // keeps it in `apikeyFile`).
    let origins = manifest["origins"].as_array().unwrap();
    assert_eq!(origins.len(), 1);
    let origin = &origins[0];
    assert!(origin["label"].is_string());
    let make_api = origin["baseUrl"].as_str().unwrap();
    assert!(make_api.starts_with("https://") && make_api.ends_with(".make.com/api"));
    assert_eq!(origin["appId"], "-FILL-ME-");
    assert_eq!(origin["appVersion"], 1);
    assert_eq!(origin["apikeyFile"], ".secrets/apikey");
    let gitignore = std::fs::read_to_string(out.join(".gitignore")).unwrap();
    assert!(
        gitignore
            .lines()
            .any(|l| l.trim_end_matches('/') == ".secrets")
    );

    // Every component: a valid id, its folder and files named as the extension names them, each
    // file there and JSON, and its references to other components resolved.
    let connections = project.ids("connection");
    let webhooks = project.ids("webhook");
    let rpcs = project.ids("rpc");
    let mut named = vec!["makecomapp.json".to_owned()];
    for path in manifest["generalCodeFiles"].as_object().unwrap().values() {
        if let Some(path) = path.as_str() {
            assert!(out.join(path).exists(), "{path}");
            if path.ends_with(".json") {
                read_json(&out.join(path));
            }
            named.push(path.to_owned());
        }
    }
    for kind in ["connection", "webhook", "module", "rpc"] {
        assert!(!project.ids(kind).is_empty(), "no {kind}");
        for id in project.ids(kind) {
            let metadata = project.component(kind, &id);
            assert!(valid_id(kind, &id), "{kind} id {id}");
            assert!(metadata["label"].is_string(), "{kind} {id} label");
            let folder = format!("{kind}s/{}", kebab(&id));
            let expected = expected_codes(kind, metadata);
            let code_files = metadata["codeFiles"].as_object().unwrap();
            let mut listed: Vec<&str> = code_files.keys().map(String::as_str).collect();
            let mut wanted: Vec<&str> = expected.iter().map(|(code, _)| *code).collect();
            listed.sort_unstable();
            wanted.sort_unstable();
            assert_eq!(listed, wanted, "the codes of {kind} {id}");
            for (code, file) in expected {
                let path = &code_files[code];
                let Some(file) = file else {
                    assert!(path.is_null(), "{kind} {id} {code} is left out");
                    continue;
                };
                let path = path.as_str().unwrap();
                assert_eq!(
                    path,
                    format!("{folder}/{}.{file}.iml.json", kebab(&id)),
                    "{kind} {id} {code}"
                );
                read_json(&out.join(path));
                named.push(path.to_owned());
            }
            match kind {
                "connection" => {
                    assert!(
                        ["basic", "oauth"].contains(&metadata["connectionType"].as_str().unwrap())
                    );
                }
                "webhook" => {
                    assert!(
                        ["web", "web-shared"].contains(&metadata["webhookType"].as_str().unwrap())
                    );
                    assert!(connections.contains(&text(&metadata["connection"])));
                }
                "rpc" => assert!(connections.contains(&text(&metadata["connection"]))),
                _ => {
                    let module_type = metadata["moduleType"].as_str().unwrap();
                    assert!(
                        ["trigger", "action", "search", "instant_trigger"].contains(&module_type),
                        "{id}: {module_type}"
                    );
                    assert!(metadata["description"].is_string(), "{id}");
                    assert!(connections.contains(&text(&metadata["connection"])), "{id}");
                    if module_type == "instant_trigger" {
                        assert!(webhooks.contains(&text(&metadata["webhook"])), "{id}");
                    }
                    for code in ["staticParams", "mappableParams"] {
                        for parameter in project.code(kind, &id, code).as_array().unwrap() {
                            if let Some(rpc) = parameter["options"]
                                .as_str()
                                .and_then(|o| o.strip_prefix("rpc://"))
                            {
                                assert!(rpcs.contains(&rpc.to_owned()), "{id}: {rpc}");
                            }
                        }
                    }
                }
            }
        }
    }
    // Nothing else in the folder but what makecomapp.json names.
    let mut files = Vec::new();
    let mut folders = vec![out.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                folders.push(path);
            } else {
                let relative = path.strip_prefix(&out).unwrap().display().to_string();
                files.push(relative);
            }
        }
    }
    files.retain(|f| f != ".gitignore");
    files.sort();
    named.sort();
    assert_eq!(files, named);

    // Each module is in one group of the app's module list.
    let groups = read_json(&out.join("modules/groups.json"));
    let mut grouped: Vec<String> = groups
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["modules"].as_array().unwrap().iter().map(text))
        .collect();
    grouped.sort();
    let mut modules = project.ids("module");
    modules.sort();
    assert_eq!(grouped, modules);

    // Every polling trigger offers "choose where to start" and takes Make's limit.
    let triggers: Vec<String> = modules
        .iter()
        .filter(|id| project.component("module", id)["moduleType"] == "trigger")
        .cloned()
        .collect();
    assert_eq!(triggers.len(), 12);
    for id in &triggers {
        let epoch = project.code("module", id, "epoch");
        assert!(epoch["response"]["output"]["label"].is_string(), "{id}");
        assert!(epoch["response"]["output"]["date"].is_string(), "{id}");
        let limit = epoch["response"]["limit"].as_u64().unwrap();
        assert!((1..=300).contains(&limit), "{id}: Make advises 300 at most");
        let parameters = project.code("module", id, "staticParams");
        let limit = parameters
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "limit")
            .unwrap_or_else(|| panic!("{id} has no limit"));
        assert_eq!(limit["type"], "uinteger");
        assert!(limit["default"].as_u64().is_some_and(|d| d >= 1));
        assert_eq!(limit["validate"]["max"], 200, "the API's largest page");
        let communication = project.code("module", id, "communication");
        assert_eq!(communication["response"]["limit"], "{{parameters.limit}}");
        assert_eq!(communication["response"]["trigger"]["order"], "desc");
    }

    // Exported again into the same folder, the project keeps the origin the user filled in.
    let mut filled = manifest.clone();
    filled["origins"][0]["appId"] = json!("timix-a1b2c3");
    filled["origins"][0]["idMapping"] =
        json!({"module": [{"local": "createCustomer", "remote": "createCustomer"}]});
    std::fs::write(out.join("makecomapp.json"), filled.to_string()).unwrap();
    export(&server, "make", &out, None);
    assert_eq!(
        MakeProject::open(&out).manifest["origins"],
        filled["origins"]
    );

    // Make retries rate limits and connection errors: the type follows the status.
    let base = project.base();
    let error_type = |status: u16| -> String {
        let error = merged(
            &base["response"]["error"],
            &base["response"]["error"][status.to_string()],
        );
        text(&iml(
            &error["type"],
            &json!({"statusCode": status, "body": {}}),
        ))
    };
    for (status, kind) in [
        (400, "DataError"),
        // A refused key: Make asks for the connection to be authorized again.
        (401, "AccountValidationError"),
        (403, "DataError"),
        (404, "DataError"),
        (409, "DataError"),
        (422, "DataError"),
        (429, "RateLimitError"),
        (500, "ConnectionError"),
        (502, "ConnectionError"),
        (503, "ConnectionError"),
        (504, "ConnectionError"),
    ] {
        assert_eq!(error_type(status), kind, "{status}");
    }
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
    let project = MakeProject::open(&out);
    let http = reqwest::Client::new();
    let base = project.base();
    let connection = json!({"baseUrl": server.url(""), "apiKey": org.key});
    // The connection test; a refused key is a data error with the API's message.
    let test = project.code("connection", "timix", "communication");
    let me = communicate(
        &http,
        &base,
        &test,
        &json!({"parameters": connection.clone()}),
    )
    .await
    .unwrap();
    assert!(me.outputs[0]["organization"]["name"].is_string());
    let refused = communicate(
        &http,
        &base,
        &test,
        &json!({"parameters": {"baseUrl": server.url(""), "apiKey": "bbl_refused"}}),
    )
    .await
    .unwrap_err();
    assert_eq!(
        (refused.status, refused.kind.as_str()),
        (401, "AccountValidationError")
    );
    assert!(refused.message.starts_with("[401] "), "{}", refused.message);

    let inputs: std::collections::HashMap<String, Value> = inputs(&f, &receiver.url, false)
        .into_iter()
        .map(|(key, input)| (timix_connectors::apps::camel(key), input))
        .collect();
    let mut ran = 0;
    for name in project.ids("module") {
        let module = project.component("module", &name);
        let communication = project.code("module", &name, "communication");
        match module["moduleType"].as_str().unwrap() {
            "action" | "search" => {
                let parameters = inputs
                    .get(&name)
                    .unwrap_or_else(|| panic!("no input for {name}"));
                let context = json!({"connection": connection.clone(), "parameters": parameters});
                let outcome = communicate(&http, &base, &communication, &context)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e:?}"));
                assert!(!outcome.outputs.is_empty(), "{name} gave nothing");
                assert!(!outcome.outputs[0].is_null(), "{name}: {outcome:?}");
                ran += 1;
            }
            "trigger" => {
                // Make passes the limit the user set; the trigger asks for that many and no more.
                let context = json!({"connection": connection.clone(), "parameters": {"limit": 1}});
                let outcome = communicate(&http, &base, &communication, &context)
                    .await
                    .unwrap_or_else(|e| panic!("{name}: {e:?}"));
                assert!(outcome.outputs.len() <= 1, "{name}: {outcome:?}");
                let page_size = outcome.sent[0]
                    .query_pairs()
                    .find(|(k, _)| k == "pageSize")
                    .map(|(_, v)| v.into_owned());
                assert_eq!(page_size.as_deref(), Some("1"), "{name}");
                // "Choose where to start": the latest records, each with a label and a date.
                let epoch = merged(&communication, &project.code("module", &name, "epoch"));
                let choices = communicate(&http, &base, &epoch, &context)
                    .await
                    .unwrap_or_else(|e| panic!("{name} epoch: {e:?}"));
                for choice in &choices.outputs {
                    assert!(
                        choice["label"].as_str().is_some_and(|l| !l.is_empty()),
                        "{name}: {choice}"
                    );
                    assert!(
                        choice["date"].as_str().is_some_and(|d| !d.is_empty()),
                        "{name}: {choice}"
                    );
                }
                if name == "watchNewCustomer" {
                    assert!(choices.outputs.iter().any(|c| c["label"] == "Zap Customer"));
                }
                ran += 1;
            }
            "instant_trigger" => {
                let hook = module["webhook"].as_str().unwrap();
                let attach = project.code("webhook", hook, "attach");
                let context =
                    json!({"connection": connection.clone(), "webhook": {"url": receiver.url}});
                let data = communicate(&http, &base, &attach, &context).await.unwrap();
                let id = data.outputs[0]["externalHookId"]
                    .as_str()
                    .unwrap()
                    .to_owned();
                let detach = project.code("webhook", hook, "detach");
                let context =
                    json!({"connection": connection.clone(), "webhook": {"externalHookId": id}});
                communicate(&http, &base, &detach, &context).await.unwrap();
                ran += 1;
            }
            other => panic!("unknown module type {other}"),
        }
    }
    assert_eq!(ran, 21 + 12 * 2, "every module ran");
    for rpc in project.ids("rpc") {
        let communication = project.code("rpc", &rpc, "communication");
        let options = communicate(
            &http,
            &base,
            &communication,
            &json!({"connection": connection.clone()}),
        )
        .await
        .unwrap()
        .outputs;
        assert!(!options.is_empty(), "{rpc}");
        assert!(options[0]["label"].is_string() && options[0]["value"].is_string());
    }
    // A limit of 2 takes the two newest customers (the fixture's and the one made above).
    let watch = project.code("module", "watchNewCustomer", "communication");
    let context = json!({"connection": connection.clone(), "parameters": {"limit": 2}});
    let newest = communicate(&http, &base, &watch, &context)
        .await
        .unwrap()
        .outputs;
    let names: Vec<&str> = newest.iter().map(|c| c["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["Made by an app", "Zap Customer"]);

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

    // The HTTP module sends the connection's key to the connection's server only: a path, or a
    // URL under the server URL; never another host, nor one that merely starts the same way.
    let http_module = project.code("module", "httpRequest", "communication");
    let call = |url: String| {
        let (http, base, http_module, connection) = (
            http.clone(),
            base.clone(),
            http_module.clone(),
            connection.clone(),
        );
        async move {
            let parameters = json!({"method": "GET", "url": url});
            let context = json!({"connection": connection, "parameters": parameters});
            communicate(&http, &base, &http_module, &context).await
        }
    };
    // A path without its leading `/` is on the server too, and gets the key.
    for url in [
        "/me".to_owned(),
        "me".to_owned(),
        server.url("/api/integration/v1/me"),
    ] {
        let outcome = call(url.clone())
            .await
            .unwrap_or_else(|e| panic!("{url}: {e:?}"));
        assert_eq!(outcome.sent.len(), 1, "one request");
        assert_eq!(outcome.outputs[0]["status"], 200, "{url}");
        assert!(outcome.outputs[0]["body"]["organization"]["name"].is_string());
    }
    let customers = call("customers?pageSize=1".to_owned()).await.unwrap();
    assert_eq!(customers.outputs[0]["status"], 200);
    assert!(customers.outputs[0]["body"]["items"].is_array());
    let own = http_module[0]["condition"].clone();
    for url in [
        receiver.url.clone(),
        format!("{}.evil.example/me", server.url("")),
        format!("https://evil.example/?{}", server.url("")),
        "HTTPS://evil.example/customers".to_owned(),
    ] {
        let context = json!({"connection": connection.clone(), "parameters": {"url": url}});
        assert!(!truthy(&iml(&own, &context)), "{url} is not the server");
    }

    // Errors take Make's types by status: rate limits and server errors are retried.
    receiver.script(vec![
        (429, vec![("retry-after", "1".to_owned())]),
        (503, Vec::new()),
        (500, Vec::new()),
        (400, Vec::new()),
        (404, Vec::new()),
        (401, Vec::new()),
    ]);
    for (status, kind) in [
        (429, "RateLimitError"),
        (503, "ConnectionError"),
        (500, "ConnectionError"),
        (400, "DataError"),
        (404, "DataError"),
        // Another server's 401 says nothing about the connection.
        (401, "DataError"),
    ] {
        let error = call(receiver.url.clone()).await.unwrap_err();
        assert_eq!((error.status, error.kind.as_str()), (status, kind));
    }
    let update = project.code("module", "updateCustomer", "communication");
    let context = json!({"connection": connection.clone(), "parameters": {"id": "cus_missing", "notes": "x"}});
    let missing = communicate(&http, &base, &update, &context)
        .await
        .unwrap_err();
    assert_eq!((missing.status, missing.kind.as_str()), (404, "DataError"));
    assert!(missing.message.starts_with("[404] "), "{}", missing.message);
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

/// An ISO 8601 date and time with its offset, as `updatedSince` takes it.
fn is_iso8601(text: &str) -> bool {
    chrono::DateTime::parse_from_rfc3339(text).is_ok()
}

#[tokio::test]
async fn the_workato_connector_polls_twice_and_acts_against_a_live_server() {
    let Some(workato) = Script::new("ruby", "workato/run.rb").ready() else {
        return;
    };
    let server =
        Server::start_with(TestDb::new().await, &[("TIMIX_ALLOW_PRIVATE_TARGETS", "1")]).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let f = fixture(&c).await;
    let receiver = Receiver::start().await;
    // The connector has no `http_request` (see its module); inputs come mapped as text.
    let actions: Vec<Value> = inputs(&f, &receiver.url, false)
        .into_iter()
        .filter(|(key, _)| *key != "http_request")
        .map(|(key, input)| json!({"key": key, "input": as_text(input)}))
        .collect();
    let plan = json!({
        "connection": {"base_url": server.url(""), "api_key": org.key},
        "hookTarget": receiver.url,
        "actions": actions,
    });
    let report = run_workato(workato, &server, plan).await;

    // The connection test and the dropdowns.
    assert!(report["test"]["organization"]["name"].is_string());
    let customers = report["pickLists"]["customer_list"].as_array().unwrap();
    assert!(
        customers.contains(&json!(["Zap Customer", f.customer])),
        "{customers:?}"
    );

    // Every trigger polled twice, the platform keeping its position in between and giving it back
    // as a time: each poll sent an ISO 8601 position the API took, and stored one as text.
    let triggers = report["triggers"].as_object().unwrap();
    assert_eq!(triggers.len(), 12);
    for (key, trigger) in triggers {
        let rounds = trigger["rounds"].as_array().unwrap();
        assert_eq!(rounds.len(), 2, "{key}");
        assert_eq!(rounds[1]["polls"][0]["closureClass"], "Time", "{key}");
        for poll in rounds.iter().flat_map(|r| r["polls"].as_array().unwrap()) {
            assert_eq!(poll["nextPollClass"], "String", "{key}: {poll}");
            let stored = poll["nextPoll"].as_str().unwrap();
            assert!(is_iso8601(stored), "{key} stores {stored:?}");
            let requests = poll["requests"].as_array().unwrap();
            assert_eq!(requests.len(), 1, "{key}: {poll}");
            // New records in creation order; changes on the sync filter.
            let query = &requests[0]["query"];
            let since = if key.starts_with("new_") {
                assert_eq!(query["sort"], "createdAt", "{key}: {poll}");
                &query["createdSince"]
            } else {
                &query["updatedSince"]
            };
            let since = since.as_str().unwrap_or_else(|| panic!("{key}: {poll}"));
            assert!(is_iso8601(since), "{key} sent {since:?}");
            assert_eq!(requests[0]["status"], 200, "{key}: {poll}");
        }
        // Its events have the fields its output declares.
        let declared: Vec<&str> = trigger["declared"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap())
            .collect();
        for event in rounds.iter().flat_map(|r| r["events"].as_array().unwrap()) {
            for name in &declared {
                assert!(
                    event.get(*name).is_some(),
                    "{key}: {name} is not in {event}"
                );
            }
        }
    }
    let names = |trigger: &str, round: usize| -> Vec<String> {
        report["triggers"][trigger]["rounds"][round]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    // The second poll picks up what was made and changed after the first, once.
    assert!(names("new_customer", 0).contains(&"Zap Customer".to_owned()));
    assert_eq!(names("new_customer", 1), ["Made by an app"]);
    assert!(names("updated_customer", 1).contains(&"Zap Customer".to_owned()));
    assert!(names("updated_task", 1).contains(&"Zap Task".to_owned()));

    // Every trigger subscribes to and unsubscribes from webhooks; a delivery gives its record.
    let hooks = report["hooks"].as_object().unwrap();
    assert_eq!(hooks.len(), 12);
    for (key, hook) in hooks {
        assert!(
            hook["id"].as_str().is_some_and(|id| !id.is_empty()),
            "{key}"
        );
        assert_eq!(hook["delivered"]["id"], "x_1", "{key}");
    }

    // Each action returns a record; a search returns the record its output declares.
    let actions = report["actions"].as_object().unwrap();
    assert_eq!(actions.len(), 20);
    for (key, action) in actions {
        let output = &action["output"];
        assert!(output["id"].is_string(), "{key}: {output}");
        if key.starts_with("find_") {
            for name in action["declared"].as_array().unwrap() {
                let name = name.as_str().unwrap();
                assert!(
                    output.get(name).is_some(),
                    "{key} declares {name}: {output}"
                );
            }
        }
    }
    let found = |key: &str| actions[key]["output"]["id"].clone();
    assert_eq!(found("find_customer"), f.customer.as_str());
    assert_eq!(found("find_project"), f.project.as_str());
    assert_eq!(found("find_task"), f.task.as_str());
    assert_eq!(found("find_subtask"), f.subtask.as_str());
    assert_eq!(found("find_org_user"), f.member.as_str());
    // Mapped as text ("3600", "true"), converted by the fields' `convert_input`.
    let entry = &actions["create_time_entry"]["output"];
    assert_eq!(entry["durationSeconds"], 3600);
    assert_eq!(entry["billable"], true);
    assert_eq!(actions["issue_invoice"]["output"]["status"], "issued");
    assert_eq!(actions["stop_timer"]["output"]["isRunning"], false);
}

/// Runs `tests/workato/run.rb` on the exported connector with `plan`; its report.
async fn run_workato(workato: Script, server: &Server, plan: Value) -> Value {
    let out = temp_dir("workato-run");
    export(server, "workato", &out, None);
    workato
        .arg(out.join("connector.rb"))
        .timeout(std::time::Duration::from_secs(120))
        .plan(&out, &plan)
        .run()
        .await
}

/// A backlog longer than a page: a record made in the window and changed after the first
/// page's last record is neither lost by the new-record trigger nor by the change trigger, and
/// a change landing between two pages is picked up.
#[tokio::test]
async fn the_workato_triggers_lose_no_record_across_pages() {
    let Some(workato) = Script::new("ruby", "workato/run.rb").ready() else {
        return;
    };
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let early = c
        .post("/customers", json!({"name": "Early bird"}))
        .await
        .expect(201);
    let since = early.body["createdAt"].as_str().unwrap().to_owned();
    let early = early.id();
    let mut bulk = Vec::new();
    for i in 0..105 {
        bulk.push(c.customer(&format!("Bulk {i}")).await);
    }
    // Changed last: by `updatedAt` it now comes after the first page's last record.
    c.patch(
        &format!("/customers/{early}"),
        json!({"name": "Early bird, renamed"}),
    )
    .await
    .expect(200);

    let report = run_workato(
        workato,
        &server,
        json!({
            "connection": {"base_url": server.url(""), "api_key": org.key},
            "paged": [
                {"trigger": "new_customer", "since": since, "between": [
                    {"method": "post", "path": "customers", "payload": {"name": "Late arrival"}}]},
                {"trigger": "updated_customer", "since": since, "between": [
                    {"method": "patch", "path": format!("customers/{}", bulk[0]),
                     "payload": {"notes": "changed between pages"}}]},
            ],
        }),
    )
    .await;

    let paged = |trigger: &str| -> (Vec<Value>, Vec<String>) {
        let polls = report["paged"][trigger]["polls"]
            .as_array()
            .unwrap()
            .clone();
        let ids = report["paged"][trigger]["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["id"].as_str().unwrap().to_owned())
            .collect();
        (polls, ids)
    };
    let distinct = |ids: &[String]| ids.iter().collect::<BTreeSet<_>>().len();

    // New records: every one once, the early one too, and the one made between two pages.
    let (polls, ids) = paged("new_customer");
    assert!(polls.len() > 1, "more than one page: {polls:?}");
    for poll in &polls {
        let query = &poll["requests"][0]["query"];
        assert_eq!(query["sort"], "createdAt", "{poll}");
        assert!(query["createdSince"].is_string(), "{poll}");
    }
    assert_eq!(ids.len(), 107, "{ids:?}");
    assert_eq!(distinct(&ids), 107);
    assert!(ids.contains(&early), "the early record is not lost");

    // Changes: every record, the early one after its change, and the first bulk record twice:
    // as made, and as changed between two pages. Each next poll starts at the watermark given.
    let (polls, ids) = paged("updated_customer");
    assert!(polls.len() > 1, "more than one page: {polls:?}");
    for pair in polls.windows(2) {
        assert_eq!(
            pair[1]["requests"][0]["query"]["updatedSince"], pair[0]["nextPoll"],
            "{pair:?}"
        );
    }
    assert_eq!(distinct(&ids), 107, "{ids:?}");
    assert!(ids.contains(&early), "the changed early record is not lost");
    assert_eq!(
        ids.iter().filter(|id| **id == bulk[0]).count(),
        2,
        "{ids:?}"
    );
}
