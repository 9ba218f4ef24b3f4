//! Starts the real `timix` binary on a random port, on SQLite (default) or on a fresh Postgres
//! database (`TIMIX_TEST_DATABASE=postgres` with `TIMIX_TEST_POSTGRES_URL`), and talks to it.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

pub const BASE: &str = "/api/integration/v1";
const BIN: &str = env!("CARGO_BIN_EXE_timix");

/// Which database the suite runs on.
pub fn backend() -> &'static str {
    match std::env::var("TIMIX_TEST_DATABASE").as_deref() {
        Ok("postgres") => "postgres",
        Ok("sqlite") | Err(_) => "sqlite",
        Ok(other) => panic!("TIMIX_TEST_DATABASE must be sqlite or postgres, not {other}"),
    }
}

/// A database for one server: a SQLite file in a fresh folder, or a fresh Postgres database.
pub struct TestDb {
    pub dir: PathBuf,
    pub url: String,
}

impl TestDb {
    pub async fn new() -> TestDb {
        let dir = std::env::temp_dir().join(format!("timix-test-{}", ulid::Ulid::generate()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = if backend() == "postgres" {
            let admin = std::env::var("TIMIX_TEST_POSTGRES_URL").expect(
                "TIMIX_TEST_DATABASE=postgres needs TIMIX_TEST_POSTGRES_URL (an admin URL)",
            );
            let name = format!(
                "timix_t_{}",
                ulid::Ulid::generate().to_string().to_lowercase()
            );
            use sqlx::Connection;
            let mut conn = sqlx::PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| {
                    panic!("cannot reach Postgres at TIMIX_TEST_POSTGRES_URL: {e}")
                });
            sqlx::Executor::execute(
                &mut conn,
                sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
            )
            .await
            .unwrap();
            let (prefix, _) = admin.rsplit_once('/').expect("URL has a database part");
            format!("{prefix}/{name}")
        } else {
            format!("sqlite://{}", dir.join("data").join("timix.db").display())
        };
        TestDb { dir, url }
    }

    /// Runs a `timix` command against this database and returns its stdout, or panics.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.cli_raw(args);
        assert!(
            out.status.success(),
            "timix {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    pub fn cli_raw(&self, args: &[&str]) -> std::process::Output {
        self.cli_env(args, &[])
    }

    /// [`TestDb::cli_raw`] with more environment.
    pub fn cli_env(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        Command::new(BIN)
            .args(args)
            .envs(env.iter().copied())
            .env("DATABASE_URL", &self.url)
            .env("TIMIX_DATA_DIR", self.dir.join("data"))
            .env("TIMIX_LOG", "warn")
            .env_remove("TIMIX_CONFIG")
            .current_dir(&self.dir)
            .output()
            .unwrap()
    }

    /// `timix bootstrap`: an organization with an owner and a key.
    pub fn bootstrap(&self, plan: &str) -> Org {
        let email = format!(
            "owner-{}@example.com",
            ulid::Ulid::generate().to_string().to_lowercase()
        );
        let out = self.cli(&[
            "bootstrap",
            "--org",
            "Test Org",
            "--email",
            &email,
            "--plan",
            plan,
        ]);
        let v: Value = serde_json::from_str(out.trim()).unwrap();
        Org {
            id: v["organizationId"].as_str().unwrap().to_owned(),
            owner_id: v["userId"].as_str().unwrap().to_owned(),
            key: v["apiKey"].as_str().unwrap().to_owned(),
        }
    }

    /// `timix keys create --user`.
    pub fn key_for(&self, user_id: &str, extra: &[&str]) -> String {
        let mut args = vec!["keys", "create", "--user", user_id];
        args.extend_from_slice(extra);
        let v: Value = serde_json::from_str(self.cli(&args).trim()).unwrap();
        v["apiKey"].as_str().unwrap().to_owned()
    }
}

pub struct Org {
    pub id: String,
    pub owner_id: String,
    pub key: String,
}

/// A running `timix serve`.
pub struct Server {
    pub db: TestDb,
    pub address: String,
    child: Child,
    pub log: Arc<Mutex<String>>,
    http: reqwest::Client,
}

impl Server {
    pub async fn start() -> Server {
        Self::start_with(TestDb::new().await, &[]).await
    }

    pub async fn start_with(db: TestDb, env: &[(&str, &str)]) -> Server {
        Self::start_as(db, env, "all").await
    }

    /// `timix serve --role <role>`: `api` and `all` are ready when they listen, `worker` when it
    /// says it started (it has no address).
    pub async fn start_as(db: TestDb, env: &[(&str, &str)], role: &str) -> Server {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--bind", "127.0.0.1:0", "--role", role])
            .env("DATABASE_URL", &db.url)
            .env("TIMIX_DATA_DIR", db.dir.join("data"))
            .env("TIMIX_LOG", "info")
            // Tests start runs in bursts; the run budget has tests of its own that set it.
            .env("TIMIX_RUNS_PER_MINUTE", "0")
            // Receivers and targets of the tests listen on loopback. A test of the guard
            // itself passes `("TIMIX_ALLOW_PRIVATE_TARGETS", "0")`.
            .env("TIMIX_ALLOW_PRIVATE_TARGETS", "1")
            .env_remove("TIMIX_CONFIG")
            .current_dir(&db.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command.spawn().unwrap();
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("worker started")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(String::new());
                }
                if let Some(rest) = line.split("listening on ").nth(1)
                    && let Some(tx) = tx.take()
                {
                    let address: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || ".:[]".contains(*c))
                        .collect();
                    let _ = tx.send(address);
                }
                sink.lock().unwrap().push_str(&line);
                sink.lock().unwrap().push('\n');
            }
        });
        let address = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(a) => a,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start; log:\n{}", log.lock().unwrap());
            }
        };
        Server {
            db,
            address,
            child,
            log,
            http: {
                timix_connectors::outbound::install_crypto_provider();
                reqwest::Client::builder()
                    .redirect(reqwest::redirect::Policy::none())
                    // The server closes connections idle for its client timeout (30 s); a pooled
                    // one reused just as it closes fails with a broken pipe. Drop them sooner.
                    .pool_idle_timeout(std::time::Duration::from_secs(10))
                    .build()
                    .unwrap()
            },
        }
    }

    /// `http://host:port` followed by `path` as given.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.address)
    }

    /// `/metrics` scraped with `token`, as text.
    pub async fn metrics(&self, token: &str) -> String {
        let response = reqwest::Client::new()
            .get(self.url("/metrics"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200, "/metrics");
        response.text().await.unwrap()
    }

    /// A client acting with `key`.
    pub fn as_key(&self, key: &str) -> Client {
        Client {
            http: self.http.clone(),
            server: self.url(""),
            key: Some(key.to_owned()),
        }
    }

    pub fn anonymous(&self) -> Client {
        Client {
            http: self.http.clone(),
            server: self.url(""),
            key: None,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "server did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // The server's side of a failed test.
            eprintln!(
                "--- server log ---\n{}",
                self.log.lock().map(|l| l.clone()).unwrap_or_default()
            );
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// An HTTP answer, decoded.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// Asserts the status, printing the body when it differs.
    #[track_caller]
    pub fn expect(self, status: u16) -> Resp {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        self
    }

    /// Asserts an error envelope with this status and code.
    #[track_caller]
    pub fn expect_error(self, status: u16, code: &str) -> Resp {
        assert_eq!(
            self.status, status,
            "unexpected status; body: {}",
            self.body
        );
        assert_eq!(
            self.body["error"]["code"], code,
            "unexpected error: {}",
            self.body
        );
        assert!(
            self.body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
        assert_eq!(
            self.body["error"]["requestId"].as_str(),
            self.header("x-request-id"),
            "the envelope names the request id"
        );
        self
    }

    /// The `field`s of a 422's details.
    pub fn error_fields(&self) -> Vec<String> {
        self.body["error"]["details"]
            .as_array()
            .map(|d| {
                d.iter()
                    .map(|x| x["field"].as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn id(&self) -> String {
        self.body["id"].as_str().expect("body has an id").to_owned()
    }

    pub fn items(&self) -> Vec<Value> {
        self.body["items"].as_array().cloned().unwrap_or_default()
    }

    pub fn item_ids(&self) -> Vec<String> {
        self.items()
            .iter()
            .map(|i| i["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    server: String,
    pub key: Option<String>,
}

impl Client {
    pub fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let url = if path.starts_with(BASE) || path.starts_with("/docs") {
            format!("{}{path}", self.server)
        } else {
            format!("{}{BASE}{path}", self.server)
        };
        let builder = self.http.request(method, url);
        match &self.key {
            Some(k) => builder.header("X-Api-Key", k),
            None => builder,
        }
    }

    pub async fn send(&self, builder: reqwest::RequestBuilder) -> Resp {
        let response = builder.send().await.expect("request reaches the server");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into()))
        };
        Resp {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Resp {
        self.send(self.request(Method::GET, path)).await
    }

    pub async fn post(&self, path: &str, body: Value) -> Resp {
        self.send(self.request(Method::POST, path).json(&body))
            .await
    }

    pub async fn patch(&self, path: &str, body: Value) -> Resp {
        self.send(self.request(Method::PATCH, path).json(&body))
            .await
    }

    pub async fn put(&self, path: &str, body: Value) -> Resp {
        self.send(self.request(Method::PUT, path).json(&body)).await
    }

    pub async fn delete(&self, path: &str) -> Resp {
        self.send(self.request(Method::DELETE, path)).await
    }

    /// A flow started by `trigger` (a webhook trigger) with one `create_customer` step whose
    /// name is the template `name`; returns its id and the URL senders call.
    pub async fn webhook_flow(&self, trigger: Value, name: &str) -> (String, String) {
        let flow = self
            .post(
                "/flows",
                json!({"name": "Inbound", "trigger": trigger,
                       "steps": [{"key": "customer", "action": "create_customer",
                                  "input": {"name": name}}]}),
            )
            .await
            .expect(201);
        let url = flow.body["trigger"]["webhookUrl"]
            .as_str()
            .unwrap()
            .to_owned();
        (flow.id(), url)
    }

    /// Waits until a run is finished (succeeded, failed, filtered or cancelled; at most 30 s)
    /// and returns it.
    pub async fn finished_run(&self, id: &str) -> Value {
        let started = Instant::now();
        loop {
            let run = self.get(&format!("/runs/{id}")).await.expect(200).body;
            if ["succeeded", "failed", "filtered", "cancelled"]
                .contains(&run["status"].as_str().unwrap_or_default())
            {
                return run;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the run did not finish: {run}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // Shortcuts that build the hierarchy; each asserts success.

    pub async fn customer(&self, name: &str) -> String {
        self.post("/customers", json!({"name": name}))
            .await
            .expect(201)
            .id()
    }

    pub async fn project(&self, customer_id: &str, name: &str) -> String {
        self.post(
            "/projects",
            json!({"customerId": customer_id, "name": name}),
        )
        .await
        .expect(201)
        .id()
    }

    pub async fn task(&self, project_id: &str, name: &str) -> String {
        self.post("/tasks", json!({"projectId": project_id, "name": name}))
            .await
            .expect(201)
            .id()
    }

    pub async fn subtask(&self, task_id: &str, name: &str) -> String {
        self.post("/subtasks", json!({"taskId": task_id, "name": name}))
            .await
            .expect(201)
            .id()
    }

    /// An org user with `role` (created by this client) and a key of theirs from the CLI.
    pub async fn user_with_key(&self, db: &TestDb, role: &str) -> (String, Client) {
        let email = format!(
            "{role}-{}@example.com",
            ulid::Ulid::generate().to_string().to_lowercase()
        );
        let user = self
            .post(
                "/org-users",
                json!({"email": email, "name": format!("A {role}"), "role": role}),
            )
            .await
            .expect(201)
            .id();
        let key = db.key_for(&user, &[]);
        let mut client = self.clone();
        client.key = Some(key);
        (user, client)
    }
}

/// A well-formed secret that signs nothing of ours.
pub fn other_secret() -> String {
    "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".to_owned()
}

/// Runs one SQL statement on a server's database (to set up what the API cannot, such as a
/// failure streak that began days ago).
pub async fn execute(db: &TestDb, sql: &str) {
    use sqlx::Connection;
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::Executor::execute(&mut conn, sqlx::AssertSqlSafe(sql.to_owned()))
        .await
        .unwrap();
}

/// The first column of every row a query returns, as text (to look at what is stored).
pub async fn query_texts(db: &TestDb, sql: &str) -> Vec<String> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .fetch_all(&mut conn)
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>(0).unwrap_or_default())
        .collect()
}

/// The hex HMAC-SHA256 of `body` under `key` (how inbound senders and webhooks sign).
pub fn hmac_hex(key: &str, body: &[u8]) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(body);
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Whether a tool a test drives (`what`, found by the caller) is here: a test skips without it,
/// loudly, except in CI, which must run it.
pub fn tool_ready(what: &str, ready: bool) -> bool {
    if !ready {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run this test: {what} is missing"
        );
        eprintln!("\n!!! SKIPPED: {what} is missing !!!\n");
    }
    ready
}

/// A new folder in the system's temporary one.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("timix-{name}-{}", ulid::Ulid::generate()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The folder `target/tmp/<path>`, emptied, for what a test leaves to look at (screenshots).
pub fn kept_dir(path: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(path);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A script under `tests/` that a test drives with node, python3 or ruby, run in its folder. It
/// writes what it saw to a JSON report, which [`Script::run`] returns.
pub struct Script {
    what: String,
    folder: PathBuf,
    command: tokio::process::Command,
    missing: Vec<String>,
    report: PathBuf,
    timeout: Option<Duration>,
    check_status: bool,
}

impl Script {
    /// `program tests/<script>`, which must exit with success.
    pub fn new(program: &str, script: &str) -> Script {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let script = Path::new("tests").join(script);
        let folder = script.parent().unwrap().to_owned();
        let mut command = tokio::process::Command::new(program);
        command
            .arg(root.join(&script))
            .current_dir(root.join(&folder))
            .kill_on_drop(true);
        let runs = Command::new(program).arg("--version").output().is_ok();
        Script {
            what: format!("{program} {}", script.display()),
            folder,
            command,
            missing: Vec::new(),
            report: PathBuf::new(),
            timeout: None,
            check_status: true,
        }
        .needs(program, runs)
    }

    /// `node tests/ui/<script>` driving headless Chromium (`CHROMIUM`, by default Debian's
    /// `/usr/bin/chromium`) with playwright-core, given `OUT` (`out`) for its screenshots and
    /// report. A failure is in its report (`failure`), so its exit status is not checked.
    pub fn browser(script: &str, out: &Path) -> Script {
        let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
        let mut browser = Script::new("node", &format!("ui/{script}"))
            .packages(&["playwright-core"])
            .needs(
                &format!("chromium ({chromium})"),
                Path::new(&chromium).exists(),
            )
            .env("CHROMIUM", &chromium)
            .env("OUT", out);
        browser.report = out.join("report.json");
        browser.check_status = false;
        browser
    }

    /// Needs `what` too, which is here or not.
    pub fn needs(mut self, what: &str, here: bool) -> Script {
        if !here {
            self.missing.push(what.to_owned());
        }
        self
    }

    /// Needs these packages in the script's `node_modules` too, which go on `NODE_PATH` for code
    /// outside the folder.
    pub fn packages(mut self, names: &[&str]) -> Script {
        let modules = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(&self.folder)
            .join("node_modules");
        for name in names {
            let what = format!("{name} (npm ci --prefix {})", self.folder.display());
            self = self.needs(&what, modules.join(name).exists());
        }
        self.env("NODE_PATH", modules)
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Script {
        self.command.arg(arg);
        self
    }

    pub fn env(mut self, name: &str, value: impl AsRef<OsStr>) -> Script {
        self.command.env(name, value);
        self
    }

    pub fn envs<K: AsRef<OsStr>, V: AsRef<OsStr>>(
        mut self,
        vars: impl IntoIterator<Item = (K, V)>,
    ) -> Script {
        self.command.envs(vars);
        self
    }

    /// Fails the test when the script takes longer.
    pub fn timeout(mut self, limit: Duration) -> Script {
        self.timeout = Some(limit);
        self
    }

    /// Writes `plan` to `dir/plan.json` and passes it and `dir/report.json` as the last two
    /// arguments.
    pub fn plan(mut self, dir: &Path, plan: &Value) -> Script {
        std::fs::write(dir.join("plan.json"), plan.to_string()).unwrap();
        self.report = dir.join("report.json");
        self.command.arg(dir.join("plan.json")).arg(&self.report);
        self
    }

    /// The script, or `None` when something it needs is missing: the test then skips, loudly,
    /// except in CI, which must run it.
    pub fn ready(self) -> Option<Script> {
        tool_ready(&self.missing.join(" and "), self.missing.is_empty()).then_some(self)
    }

    /// Runs the script and returns its report.
    pub async fn run(mut self) -> Value {
        let output = self.command.output();
        let run = match self.timeout {
            Some(limit) => tokio::time::timeout(limit, output)
                .await
                .unwrap_or_else(|_| panic!("{} did not finish within {limit:?}", self.what)),
            None => output.await,
        }
        .unwrap();
        let said = || {
            format!(
                "{}{}",
                String::from_utf8_lossy(&run.stdout),
                String::from_utf8_lossy(&run.stderr)
            )
        };
        assert!(
            run.status.success() || !self.check_status,
            "{} failed: {}",
            self.what,
            said()
        );
        let report = std::fs::read_to_string(&self.report)
            .unwrap_or_else(|_| panic!("no report from {}; it said: {}", self.what, said()));
        serde_json::from_str(&report).unwrap()
    }
}

/// The value of the sample `series` (name and labels, exactly as rendered) in a `/metrics`
/// text, if present.
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
