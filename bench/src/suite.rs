//! The benchmark suite: timix on SQLite and on Postgres, and its peers (n8n, Node-RED and a bare
//! axum forwarder), measured by the same load generator and receiver in one run, each figure the
//! median of several runs.
//!
//! - start-up: from spawning the process (on a fresh database) to its health check answering;
//! - memory: resident set of the process tree, idle after start and at the end of the burst;
//! - authenticated `GET /customers/{id}` and `POST /customers` (timix): requests per second and
//!   p99 with 16 keep-alive connections;
//! - event → webhook (timix): from a customer's `201` to its signed delivery at a local receiver;
//! - inbound webhook → HTTP request to a local receiver, the workflow timix and n8n run: latency
//!   at 10 calls a second, and runs per second for a burst of 500 calls from 32 connections
//!   (from the first call to the last arrival at the receiver);
//! - the peers' workload, the same workflow on every system: closed loops of `TIMIX_BENCH_CALLS`
//!   calls (20,000 unless set) from 1, 8 and 32 connections, runs per second and p50 end to end
//!   at the receiver, and the CPU time each run cost (the system's process tree, plus the
//!   Postgres server's processes for timix on Postgres).
//!
//! ```sh
//! cargo build --release --bins -p timix -p timix-bench
//! # Node-RED 5 from npm with the Node.js 24 its package brings, optional.
//! npm ci --prefix bench/node-red
//! # n8n 1.123 from npm (Node.js 20.19+), optional. Its isolated-vm does not build against
//! # Debian's Node.js and is not used with the legacy expression engine: skip the scripts and
//! # build only SQLite's driver.
//! npm ci --prefix bench/n8n --ignore-scripts && npm rebuild --prefix bench/n8n sqlite3
//! TIMIX_BENCH_POSTGRES_URL=postgres://user:pw@127.0.0.1/postgres target/release/suite [RUNS]
//! ```

mod closed_loop;
mod cpu;
mod peers;
mod report;
mod scale_out;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use closed_loop::closed_loop;
use cpu::CpuMeter;
use peers::NodeRed;
use serde_json::{Value, json};
use timix_bench::{
    Arrivals, bootstrap, fresh_database_on, percentile, process_tree_mib, receiver, start, wait_for,
};

/// Figures of one run of one system, by name.
type Figures = BTreeMap<&'static str, f64>;

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Polls `url` until it answers 2xx; the time since `since`.
async fn ready(http: &reqwest::Client, url: &str, since: Instant) -> anyhow::Result<Duration> {
    let deadline = since + Duration::from_secs(120);
    loop {
        if let Ok(r) = http.get(url).send().await
            && r.status().is_success()
        {
            return Ok(since.elapsed());
        }
        anyhow::ensure!(Instant::now() < deadline, "{url} never answered");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The workflow under load: the inbound webhook calls go to, and the receiver's log of the
/// requests the runs made.
struct Workflow<'a> {
    http: &'a reqwest::Client,
    url: &'a str,
    arrivals: &'a Arrivals,
}

/// Latency from each call's answer to its arrival, at `rate` calls a second for `calls`.
async fn paced(
    workflow: &Workflow<'_>,
    first: u64,
    calls: u64,
    rate: u64,
) -> anyhow::Result<(Duration, Duration)> {
    let Workflow {
        http,
        url,
        arrivals,
    } = *workflow;
    let mut answered = HashMap::new();
    let started = Instant::now();
    for i in 0..calls {
        tokio::time::sleep_until((started + Duration::from_millis(1000 / rate * i)).into()).await;
        answered.insert(first + i, accepted(http, url, first + i).await?);
    }
    wait_for(arrivals, first, calls as usize, Duration::from_secs(60)).await;
    let got = arrivals.lock().unwrap();
    let mut latencies: Vec<Duration> = answered
        .iter()
        .filter_map(|(n, at)| got.get(n).map(|r| r.saturating_duration_since(*at)))
        .collect();
    latencies.sort();
    anyhow::ensure!(
        latencies.len() == calls as usize,
        "{} of {calls} arrived",
        latencies.len()
    );
    Ok((percentile(&latencies, 0.5), percentile(&latencies, 0.99)))
}

/// Sends call `n` until it is accepted (a moment's refusal while a service re-registers its
/// webhooks is not a lost call); the instant of the answer.
async fn accepted(http: &reqwest::Client, url: &str, n: u64) -> anyhow::Result<Instant> {
    let mut tries = 0;
    loop {
        let answer = http.post(url).json(&json!({"n": n})).send().await;
        if let Ok(answer) = &answer
            && answer.status().is_success()
        {
            return Ok(Instant::now());
        }
        tries += 1;
        anyhow::ensure!(tries < 50, "call {n} to {url} refused: {answer:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs per second for a burst of `calls` from 32 connections, and the peak memory meanwhile.
async fn burst(
    workflow: &Workflow<'_>,
    first: u64,
    calls: u64,
    pid: u32,
) -> anyhow::Result<(f64, f64)> {
    let Workflow {
        http,
        url,
        arrivals,
    } = *workflow;
    let started = Instant::now();
    let mut senders = Vec::new();
    for k in 0..32u64 {
        let (http, url) = (http.clone(), url.to_owned());
        senders.push(tokio::spawn(async move {
            let mut n = first + k;
            while n < first + calls {
                let _ = http.post(&url).json(&json!({"n": n})).send().await;
                n += 32;
            }
        }));
    }
    let mut peak: f64 = 0.0;
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        peak = peak.max(process_tree_mib(pid));
        let (done, last) = {
            let got = arrivals.lock().unwrap();
            let times: Vec<Instant> = got
                .iter()
                .filter(|(n, _)| **n >= first)
                .map(|(_, t)| *t)
                .collect();
            (times.len(), times.into_iter().max())
        };
        if done as u64 >= calls || Instant::now() > deadline {
            for s in senders {
                s.await?;
            }
            let span = last.map_or(Duration::ZERO, |l| l.duration_since(started));
            return Ok((done as f64 / span.as_secs_f64().max(0.001), peak));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Requests per second and p99 of `request` from 16 connections for `seconds`.
async fn load<F>(seconds: u64, request: F) -> anyhow::Result<(f64, Duration)>
where
    F: Fn(u64) -> reqwest::RequestBuilder + Send + Sync + 'static,
{
    let request = Arc::new(request);
    let deadline = Instant::now() + Duration::from_secs(seconds);
    let started = Instant::now();
    let mut workers = Vec::new();
    for k in 0..16u64 {
        let request = request.clone();
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            let mut i = k * 1_000_000;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let r = request(i).send().await?;
                anyhow::ensure!(r.status().is_success(), "answered {}", r.status());
                r.bytes().await?;
                latencies.push(sent.elapsed());
                i += 1;
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut all = Vec::new();
    for w in workers {
        all.extend(w.await??);
    }
    all.sort();
    Ok((
        all.len() as f64 / started.elapsed().as_secs_f64(),
        percentile(&all, 0.99),
    ))
}

async fn timix_run(postgres: Option<&str>, calls: u64) -> anyhow::Result<Figures> {
    let mut figures = Figures::new();
    let (_, mut env, dir) = fresh_database_on(postgres).await?;
    // The load below is one key's: lift the plan's limit, as an operator of their own may.
    env.push(("TIMIX_KEY_RATE_LIMIT".into(), "100000000".into()));
    let http = reqwest::Client::new();
    let spawned = Instant::now();
    let server = start(&env)?;
    let meter = match postgres {
        Some(_) => {
            CpuMeter::process_tree(server.child.id()).with_postgres_database(&database_name(&env))
        }
        None => CpuMeter::process_tree(server.child.id()),
    };
    figures.insert(
        "start-up (ms)",
        ms(ready(&http, &format!("{}/health", server.base), spawned).await?),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    figures.insert("memory idle (MiB)", process_tree_mib(server.child.id()));
    let org = bootstrap(&env)?;
    let key = org.key.clone();
    let api = |path: &str| format!("{}{path}", server.base);

    let customer: Value = http
        .post(api("/customers"))
        .header("X-Api-Key", &key)
        .json(&json!({"name": "Acme"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let one = api(&format!(
        "/customers/{}",
        customer["id"].as_str().unwrap_or_default()
    ));
    let (client, k) = (http.clone(), key.clone());
    let (rate, p99) = load(5, move |_| client.get(&one).header("X-Api-Key", &k)).await?;
    figures.insert("GET requests/s", rate);
    figures.insert("GET p99 (ms)", ms(p99));
    let (client, k, url) = (http.clone(), key.clone(), api("/customers"));
    let (rate, p99) = load(5, move |i| {
        client
            .post(&url)
            .header("X-Api-Key", &k)
            .json(&json!({"name": format!("Load {i}")}))
    })
    .await?;
    figures.insert("POST requests/s", rate);
    figures.insert("POST p99 (ms)", ms(p99));

    // Event → webhook: customers named C<n>, 20 a second.
    let (hook, arrivals) = receiver().await?;
    let webhook: Value = http
        .post(api("/webhooks"))
        .header("X-Api-Key", &key)
        .json(&json!({"url": hook, "events": ["customer.created"]}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let mut created = HashMap::new();
    let started = Instant::now();
    for n in 0..200u64 {
        tokio::time::sleep_until((started + Duration::from_millis(50 * n)).into()).await;
        http.post(api("/customers"))
            .header("X-Api-Key", &key)
            .json(&json!({"name": format!("C{n}")}))
            .send()
            .await?
            .error_for_status()?;
        created.insert(n, Instant::now());
    }
    wait_for(&arrivals, 0, 200, Duration::from_secs(60)).await;
    let mut latencies: Vec<Duration> = {
        let got = arrivals.lock().unwrap();
        created
            .iter()
            .filter_map(|(n, at)| got.get(n).map(|r| r.saturating_duration_since(*at)))
            .collect()
    };
    latencies.sort();
    figures.insert("event → webhook p50 (ms)", ms(percentile(&latencies, 0.5)));
    figures.insert("event → webhook p99 (ms)", ms(percentile(&latencies, 0.99)));
    // Its deliveries stop competing with the next workload.
    http.delete(api(&format!(
        "/webhooks/{}",
        webhook["id"].as_str().unwrap_or_default()
    )))
    .header("X-Api-Key", &key)
    .send()
    .await?
    .error_for_status()?;

    // Inbound webhook → HTTP request.
    let (target, arrivals) = receiver().await?;
    let flow: Value = http
        .post(api("/flows"))
        .header("X-Api-Key", &key)
        .json(&json!({
            "name": "Inbound → HTTP",
            "trigger": {"type": "webhook"},
            "steps": [{"key": "send", "action": "http_request",
                       "input": {"method": "POST", "url": target, "body": {"n": "{{trigger.n}}"}}}]
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let inbound = format!(
        "{}{}",
        server.base.trim_end_matches("/api/integration/v1"),
        flow["trigger"]["webhookUrl"].as_str().unwrap_or_default()
    );
    workflow_figures(&mut figures, &http, &inbound, &arrivals, server.child.id()).await?;
    let workflow = Workflow {
        http: &http,
        url: &inbound,
        arrivals: &arrivals,
    };
    closed_loop_figures(&mut figures, &workflow, &meter, calls).await?;
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
    Ok(figures)
}

/// The shared workload: "inbound webhook → HTTP request to a local receiver".
async fn workflow_figures(
    figures: &mut Figures,
    http: &reqwest::Client,
    inbound: &str,
    arrivals: &Arrivals,
    pid: u32,
) -> anyhow::Result<()> {
    let workflow = Workflow {
        http,
        url: inbound,
        arrivals,
    };
    let (p50, p99) = paced(&workflow, 0, 100, 10).await?;
    figures.insert("webhook → HTTP p50 (ms)", ms(p50));
    figures.insert("webhook → HTTP p99 (ms)", ms(p99));
    let (rate, peak) = burst(&workflow, 1_000_000, 500, pid).await?;
    figures.insert("webhook → HTTP runs/s", rate);
    figures.insert("memory loaded (MiB)", peak);
    Ok(())
}

/// The closed loops of the peers' workload: (connections, runs/s figure, p50 figure, p99
/// figure).
const CLOSED_LOOPS: [(u64, &str, &str, &str); 3] = [
    (1, "c=1 runs/s", "c=1 p50 (ms)", "c=1 p99 (ms)"),
    (8, "c=8 runs/s", "c=8 p50 (ms)", "c=8 p99 (ms)"),
    (32, "c=32 runs/s", "c=32 p50 (ms)", "c=32 p99 (ms)"),
];

/// The peers' workload: `calls` calls from 1, 8 and 32 connections in closed loops, and the
/// CPU time the three loops cost per call (until the last call reached the receiver).
async fn closed_loop_figures(
    figures: &mut Figures,
    workflow: &Workflow<'_>,
    meter: &CpuMeter,
    calls: u64,
) -> anyhow::Result<()> {
    let before = meter.used();
    let mut refused = 0;
    for (k, (connections, rate, p50, p99)) in (1u64..).zip(CLOSED_LOOPS) {
        let outcome = closed_loop(workflow, 10_000_000 * k, calls, connections).await?;
        eprintln!("  closed loop, c={connections}: {outcome:?}");
        figures.insert(rate, outcome.runs_per_second);
        figures.insert(p50, ms(outcome.p50));
        figures.insert(p99, ms(outcome.p99));
        refused += outcome.refused;
    }
    figures.insert("refused, sent again", refused as f64);
    let used = meter.used().since(before);
    let per_run = |cpu: Duration| ms(cpu) / (CLOSED_LOOPS.len() as u64 * calls) as f64;
    figures.insert("CPU per run (ms)", per_run(used.system));
    if meter.counts_a_database_server() {
        figures.insert("server CPU per run (ms)", per_run(used.database_server));
    }
    Ok(())
}

/// The database `DATABASE_URL` of `env` names.
fn database_name(env: &[(String, String)]) -> String {
    env.iter()
        .find(|(k, _)| k == "DATABASE_URL")
        .and_then(|(_, url)| url.rsplit('/').next())
        .map(|name| name.split('?').next().unwrap_or(name).to_owned())
        .unwrap_or_default()
}

/// Start-up, idle memory and the peers' workload of a peer that `start` starts forwarding to
/// `target`.
async fn peer_run(
    start: impl FnOnce(&str) -> anyhow::Result<peers::Started>,
    calls: u64,
) -> anyhow::Result<Figures> {
    let mut figures = Figures::new();
    let (target, arrivals) = receiver().await?;
    let http = reqwest::Client::new();
    let spawned = Instant::now();
    let started = start(&target)?;
    let inbound = started.inbound.clone();
    figures.insert(
        "start-up (ms)",
        ms(peers::serving(&http, &inbound, spawned).await?),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let pid = started.peer.0.id();
    figures.insert("memory idle (MiB)", process_tree_mib(pid));
    let workflow = Workflow {
        http: &http,
        url: &inbound,
        arrivals: &arrivals,
    };
    closed_loop_figures(&mut figures, &workflow, &CpuMeter::process_tree(pid), calls).await?;
    drop(started);
    Ok(figures)
}

/// Node-RED from `bench/node-red` with the flow "http in → http request → http response", its
/// user dir in a fresh temp dir.
async fn node_red_run(node_red: &NodeRed, calls: u64) -> anyhow::Result<Figures> {
    let user_dir =
        std::env::temp_dir().join(format!("timix-bench-node-red-{}", ulid::Ulid::generate()));
    std::fs::create_dir_all(&user_dir)?;
    let port = free_port()?;
    let figures = peer_run(|target| node_red.start(&user_dir, port, target), calls).await;
    let _ = std::fs::remove_dir_all(user_dir);
    figures
}

/// n8n from `bench/n8n`, with the workflow "Webhook (respond at once) → HTTP Request".
async fn n8n_run(n8n: &Path, calls: u64) -> anyhow::Result<Figures> {
    let mut figures = Figures::new();
    let folder = std::env::temp_dir().join(format!("timix-bench-n8n-{}", ulid::Ulid::generate()));
    std::fs::create_dir_all(&folder)?;
    let port = free_port()?;
    let (target, arrivals) = receiver().await?;
    let workflow = json!({
        "id": "timixBench0000001",
        "name": "Inbound → HTTP",
        "active": false,
        "settings": {"executionOrder": "v1"},
        "nodes": [
            {"id": "8b0c6f5e-0000-4000-8000-000000000001", "name": "Webhook",
             "type": "n8n-nodes-base.webhook", "typeVersion": 2, "position": [0, 0],
             "webhookId": "8b0c6f5e-0000-4000-8000-0000000000aa",
             "parameters": {"httpMethod": "POST", "path": "bench", "responseMode": "onReceived", "options": {}}},
            {"id": "8b0c6f5e-0000-4000-8000-000000000002", "name": "HTTP Request",
             "type": "n8n-nodes-base.httpRequest", "typeVersion": 4.2, "position": [220, 0],
             "parameters": {"method": "POST", "url": target, "sendBody": true,
                            "specifyBody": "json", "jsonBody": "={{ JSON.stringify({n: $json.body.n}) }}",
                            "options": {}}}
        ],
        "connections": {"Webhook": {"main": [[{"node": "HTTP Request", "type": "main", "index": 0}]]}}
    });
    let file = folder.join("workflow.json");
    std::fs::write(&file, serde_json::to_vec(&workflow)?)?;
    let file = file.display().to_string();
    n8n_command(n8n, &folder, port, &["import:workflow", "--input", &file])?;
    n8n_command(
        n8n,
        &folder,
        port,
        &["update:workflow", "--id=timixBench0000001", "--active=true"],
    )?;
    let http = reqwest::Client::new();
    let spawned = Instant::now();
    let child = N8n(n8n_base(n8n, &folder, port)
        .arg("start")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?);
    let inbound = format!("http://127.0.0.1:{port}/webhook/bench");
    figures.insert(
        "start-up (ms)",
        ms(ready(&http, &format!("http://127.0.0.1:{port}/healthz"), spawned).await?),
    );
    // Webhooks of active workflows are registered after the health check answers: wait until
    // the webhook has answered ten times in a row.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut in_a_row = 0;
    while in_a_row < 10 {
        let ok = http
            .post(&inbound)
            .json(&json!({"warm": true}))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success());
        in_a_row = if ok { in_a_row + 1 } else { 0 };
        anyhow::ensure!(Instant::now() < deadline, "n8n never served the webhook");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    figures.insert("memory idle (MiB)", process_tree_mib(child.0.id()));
    workflow_figures(&mut figures, &http, &inbound, &arrivals, child.0.id()).await?;
    let workflow = Workflow {
        http: &http,
        url: &inbound,
        arrivals: &arrivals,
    };
    let meter = CpuMeter::process_tree(child.0.id());
    closed_loop_figures(&mut figures, &workflow, &meter, calls).await?;
    drop(child);
    let _ = std::fs::remove_dir_all(folder);
    Ok(figures)
}

/// n8n stopped (and its task runner with it) when dropped.
struct N8n(Child);

impl Drop for N8n {
    fn drop(&mut self) {
        let _ = Command::new("pkill")
            .args(["-KILL", "-P", &self.0.id().to_string()])
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn n8n_base(n8n: &Path, folder: &Path, port: u16) -> Command {
    let mut command = Command::new(n8n);
    command
        .env("N8N_USER_FOLDER", folder)
        .env("N8N_PORT", port.to_string())
        .env("N8N_LISTEN_ADDRESS", "127.0.0.1")
        .env("N8N_DIAGNOSTICS_ENABLED", "false")
        .env("N8N_VERSION_NOTIFICATIONS_ENABLED", "false")
        .env("N8N_TEMPLATES_ENABLED", "false")
        .env("N8N_PERSONALIZATION_ENABLED", "false")
        .env("N8N_ENFORCE_SETTINGS_FILE_PERMISSIONS", "false")
        .env("N8N_LOG_LEVEL", "warn")
        // The default engine runs expressions in isolated-vm, whose native module does not build
        // against Debian's Node.js 20; the legacy engine is n8n's previous default.
        .env("N8N_EXPRESSION_ENGINE", "legacy");
    command
}

fn n8n_command(n8n: &Path, folder: &Path, port: u16, args: &[&str]) -> anyhow::Result<()> {
    let out = n8n_base(n8n, folder, port).args(args).output()?;
    anyhow::ensure!(
        out.status.success(),
        "n8n {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The systems the suite measures, in the order of its tables.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum System {
    Forwarder,
    NodeRed,
    TimixSqlite,
    TimixPostgres,
    N8n,
    /// On Postgres: an API process and this many worker processes.
    ScaleOut(u8),
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Forwarder => "bare axum forwarding (no storage)",
            System::NodeRed => "Node-RED (keeps nothing)",
            System::TimixSqlite => "timix (SQLite)",
            System::TimixPostgres => "timix (Postgres)",
            System::N8n => "n8n (SQLite)",
            System::ScaleOut(1) => "timix (Postgres), API + 1 worker process",
            System::ScaleOut(_) => "timix (Postgres), API + 2 worker processes",
        }
    }

    /// Measured for the scale-out table only.
    fn scales_out(self) -> bool {
        matches!(self, System::ScaleOut(_))
    }

    /// Its name in `TIMIX_BENCH_SYSTEMS`.
    fn key(self) -> &'static str {
        match self {
            System::Forwarder => "forwarder",
            System::NodeRed => "node-red",
            System::TimixSqlite => "sqlite",
            System::TimixPostgres => "postgres",
            System::N8n => "n8n",
            System::ScaleOut(_) => "scale-out",
        }
    }
}

/// A count from the environment, or `default`.
fn count_from_env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Which systems are present, with what each needs to run.
struct Setup {
    postgres: Option<String>,
    node_red: Option<NodeRed>,
    n8n: PathBuf,
    calls: report::Calls,
}

impl Setup {
    fn systems(&self) -> Vec<System> {
        let mut systems = vec![System::Forwarder];
        if self.node_red.is_some() {
            systems.push(System::NodeRed);
        } else {
            eprintln!(
                "Node-RED is not installed in {} (npm ci --prefix bench/node-red): it is left out",
                NodeRed::folder().display()
            );
        }
        systems.push(System::TimixSqlite);
        if self.postgres.is_some() {
            systems.push(System::TimixPostgres);
            systems.extend([System::ScaleOut(1), System::ScaleOut(2)]);
        } else {
            eprintln!("TIMIX_BENCH_POSTGRES_URL is not set: timix on Postgres is left out");
        }
        if self.n8n.exists() {
            systems.push(System::N8n);
        } else {
            eprintln!(
                "{} is missing (npm ci --prefix bench/n8n): n8n is left out",
                self.n8n.display()
            );
        }
        // A comparison of two builds needs only timix: `TIMIX_BENCH_SYSTEMS=sqlite,postgres`.
        if let Ok(only) = std::env::var("TIMIX_BENCH_SYSTEMS") {
            systems.retain(|s| only.split(',').any(|k| k.trim() == s.key()));
        }
        systems
    }

    async fn run(&self, system: System) -> anyhow::Result<Figures> {
        let calls = self.calls.each;
        match system {
            System::Forwarder => peer_run(peers::start_forwarder, calls).await,
            System::NodeRed => {
                let node_red = self.node_red.as_ref().expect("only listed when installed");
                node_red_run(node_red, calls).await
            }
            System::TimixSqlite => timix_run(None, calls).await,
            System::TimixPostgres => timix_run(self.postgres.as_deref(), calls).await,
            System::N8n => n8n_run(&self.n8n, self.calls.n8n).await,
            System::ScaleOut(workers) => {
                let postgres = self.postgres.as_deref().expect("only listed with Postgres");
                scale_out::run(postgres, workers.into(), calls).await
            }
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    timix_connectors::outbound::install_crypto_provider();
    let runs: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(3);
    let each = count_from_env("TIMIX_BENCH_CALLS", 20_000);
    let setup = Setup {
        postgres: std::env::var("TIMIX_BENCH_POSTGRES_URL").ok(),
        node_red: NodeRed::installed(),
        n8n: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("n8n/node_modules/.bin/n8n"),
        calls: report::Calls {
            each,
            // n8n runs about 15 calls a second here: 20,000 would take over an hour a loop.
            n8n: count_from_env("TIMIX_BENCH_N8N_CALLS", 1_000).min(each),
        },
    };
    let systems = setup.systems();
    let mut results = report::Results::new();
    // Runs interleave the systems, so that a slower moment of the machine hits all alike.
    for run in 1..=runs {
        for &system in &systems {
            eprintln!("run {run}/{runs}: {}", system.name());
            let figures = setup.run(system).await?;
            eprintln!("  {figures:?}");
            results.entry(system).or_default().push(figures);
        }
    }
    print!("{}", report::figures_table(&results, runs));
    println!();
    print!("{}", report::peers_table(&results, runs, setup.calls));
    if results.keys().any(|s| s.scales_out()) {
        println!();
        print!("{}", report::scale_out_table(&results, runs, setup.calls));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_database_is_the_last_segment_of_its_url() {
        let env = |url: &str| vec![("DATABASE_URL".to_owned(), url.to_owned())];
        assert_eq!(
            database_name(&env("postgres://u:p@127.0.0.1:5432/timix_bench_01ab")),
            "timix_bench_01ab"
        );
        assert_eq!(
            database_name(&env(
                "postgres://u:p@127.0.0.1/timix_bench_01ab?sslmode=disable"
            )),
            "timix_bench_01ab"
        );
    }
}
