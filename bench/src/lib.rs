//! What the benchmarks share: the real `timix` binary started on a fresh database (SQLite, or
//! Postgres with `TIMIX_BENCH_POSTGRES_URL`), its command line, and percentiles.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::body::Bytes;
use serde_json::Value;

/// A running `timix serve`, stopped when dropped.
pub struct Server {
    pub child: Child,
    /// `http://127.0.0.1:PORT/api/integration/v1`
    pub base: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    /// Resident memory of the server process, in MiB (Linux).
    pub fn memory_mib(&self) -> f64 {
        std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .map_or(0.0, |kb| kb / 1024.0)
    }
}

/// Resident memory of a process and all its descendants, in MiB (Linux): a service that runs
/// helpers in child processes is measured whole.
pub fn process_tree_mib(root: u32) -> f64 {
    let parent_of = |pid: u32| -> Option<u32> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // `pid (comm) state ppid …`: the name may hold spaces and parentheses.
        stat.rsplit_once(')')?
            .1
            .split_whitespace()
            .nth(1)?
            .parse()
            .ok()
    };
    let rss = |pid: u32| -> f64 {
        std::fs::read_to_string(format!("/proc/{pid}/status"))
            .ok()
            .and_then(|s| {
                s.lines()
                    .find(|l| l.starts_with("VmRSS:"))
                    .and_then(|l| l.split_whitespace().nth(1))
                    .and_then(|kb| kb.parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    };
    let pids: Vec<u32> = std::fs::read_dir("/proc")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    let mut tree = vec![root];
    let mut grew = true;
    while grew {
        grew = false;
        for &pid in &pids {
            if !tree.contains(&pid) && parent_of(pid).is_some_and(|p| tree.contains(&p)) {
                tree.push(pid);
                grew = true;
            }
        }
    }
    tree.iter().map(|&pid| rss(pid)).sum::<f64>() / 1024.0
}

/// The `timix` binary beside this one (`cargo build --release --bins`).
pub fn timix() -> std::path::PathBuf {
    std::env::current_exe()
        .expect("own path")
        .with_file_name("timix")
}

/// Runs a `timix` command and reads its one line of JSON.
pub fn cli(env: &[(String, String)], args: &[&str]) -> anyhow::Result<Value> {
    let out = Command::new(timix())
        .args(args)
        .envs(env.iter().cloned())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "timix {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The organization every benchmark works in: its owner and the owner's key.
pub struct Org {
    pub owner: String,
    pub key: String,
}

/// `timix bootstrap` of the benchmarks' organization (business plan).
pub fn bootstrap(env: &[(String, String)]) -> anyhow::Result<Org> {
    let org = cli(
        env,
        &[
            "bootstrap",
            "--org",
            "Bench",
            "--email",
            "bench@example.com",
            "--plan",
            "business",
        ],
    )?;
    let text = |field: &str| org[field].as_str().unwrap_or_default().to_owned();
    Ok(Org {
        owner: text("userId"),
        key: text("apiKey"),
    })
}

/// Starts `timix serve` on a free port and waits until it listens.
pub fn start(env: &[(String, String)]) -> anyhow::Result<Server> {
    start_as(env, "all")
}

/// [`start`] in a `role`: `all` or `api` (it listens); `worker` (no address: `base` is empty).
pub fn start_as(env: &[(String, String)], role: &str) -> anyhow::Result<Server> {
    let mut child = Command::new(timix())
        .args(["serve", "--bind", "127.0.0.1:0", "--role", role])
        // One organization's load is the measure: lift its run budget (as for its key's rate
        // limit) unless a benchmark sets one.
        .env("TIMIX_RUNS_PER_MINUTE", "0")
        .envs(env.iter().cloned())
        .env("TIMIX_LOG", "warn,timix=info")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    let stderr = child.stderr.take().expect("piped");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("WARN") || line.contains("ERROR") {
                eprintln!("server: {line}");
            }
            if line.contains("worker started") {
                let _ = tx.send(String::new());
            }
            if let Some(rest) = line.split("listening on ").nth(1) {
                let address: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || ".:".contains(*c))
                    .collect();
                let _ = tx.send(address);
            }
        }
    });
    let address = rx.recv_timeout(Duration::from_secs(60))?;
    Ok(Server {
        child,
        base: match address.as_str() {
            "" => String::new(),
            _ => format!("http://{address}/api/integration/v1"),
        },
    })
}

/// A fresh database and data dir: (backend name, environment for `timix`, data dir). Postgres
/// when `TIMIX_BENCH_POSTGRES_URL` gives an admin URL, SQLite otherwise.
pub async fn fresh_database()
-> anyhow::Result<(&'static str, Vec<(String, String)>, std::path::PathBuf)> {
    fresh_database_on(std::env::var("TIMIX_BENCH_POSTGRES_URL").ok().as_deref()).await
}

/// A fresh database on the Postgres server of `postgres` (an admin URL), or SQLite for `None`.
pub async fn fresh_database_on(
    postgres: Option<&str>,
) -> anyhow::Result<(&'static str, Vec<(String, String)>, std::path::PathBuf)> {
    let dir = std::env::temp_dir().join(format!("timix-bench-{}", ulid::Ulid::generate()));
    let (backend, url) = match postgres {
        Some(admin) => {
            use sqlx::Connection;
            let name = format!(
                "timix_bench_{}",
                ulid::Ulid::generate().to_string().to_lowercase()
            );
            let mut conn = sqlx::PgConnection::connect(admin).await?;
            sqlx::Executor::execute(
                &mut conn,
                sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")),
            )
            .await?;
            let (prefix, _) = admin.rsplit_once('/').expect("a database in the URL");
            ("postgres", format!("{prefix}/{name}"))
        }
        None => (
            "sqlite",
            format!("sqlite://{}", dir.join("timix.db").display()),
        ),
    };
    let env = vec![
        ("DATABASE_URL".to_owned(), url),
        ("TIMIX_DATA_DIR".to_owned(), dir.display().to_string()),
        ("TIMIX_ALLOW_PRIVATE_TARGETS".to_owned(), "1".to_owned()),
    ];
    Ok((backend, env, dir))
}

/// The `p` quantile (0–1) of sorted durations.
pub fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

/// When each numbered call reached a [`receiver`].
pub type Arrivals = Arc<Mutex<HashMap<u64, Instant>>>;

/// A local receiver: when each numbered call arrived (`{"n": 7}`, or a webhook delivery of the
/// customer named `C7`).
pub async fn receiver() -> anyhow::Result<(String, Arrivals)> {
    let (url, arrivals, _) = counting_receiver().await?;
    Ok((url, arrivals))
}

/// A [`receiver`] that also counts the calls that arrived for a number already received (a
/// run executed twice).
pub async fn counting_receiver() -> anyhow::Result<(String, Arrivals, Arc<AtomicU64>)> {
    let arrivals: Arrivals = Arc::default();
    let repeats = Arc::new(AtomicU64::new(0));
    let repeated = repeats.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let sink = arrivals.clone();
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let sink = sink.clone();
        async move {
            let now = Instant::now();
            let body: Value = serde_json::from_slice(&body).unwrap_or_default();
            let n = body["n"]
                .as_u64()
                .or_else(|| body["n"].as_str().and_then(|s| s.parse().ok()))
                .or_else(|| {
                    body["data"]["name"]
                        .as_str()
                        .and_then(|s| s.strip_prefix('C'))
                        .and_then(|s| s.parse().ok())
                });
            if let Some(n) = n {
                match sink.lock().unwrap().entry(n) {
                    Entry::Occupied(_) => {
                        repeated.fetch_add(1, Ordering::Relaxed);
                    }
                    Entry::Vacant(first) => {
                        first.insert(now);
                    }
                }
            }
            "ok"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((format!("http://{address}/hook"), arrivals, repeats))
}

pub async fn wait_for(arrivals: &Arrivals, from: u64, count: usize, limit: Duration) {
    let deadline = Instant::now() + limit;
    while arrivals
        .lock()
        .unwrap()
        .keys()
        .filter(|n| **n >= from)
        .count()
        < count
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
