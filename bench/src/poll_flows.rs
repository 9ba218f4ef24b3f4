//! The cost of many enabled poll flows on one `timix serve`: 10,000 flows (a `self` connection,
//! source `new_customer`, polled once a minute at second 0), then one minute of the server's
//! life: how long a round of 10,000 polls takes from the fire time to the last saved cursor,
//! the CPU time it uses, and the resident memory before and after the flows.
//!
//! ```sh
//! cargo build --release --bins -p timix -p timix-bench
//! target/release/poll-flows [FLOWS]             # SQLite; FLOWS defaults to 10000
//! TIMIX_BENCH_POSTGRES_URL=postgres://user:pw@127.0.0.1/postgres target/release/poll-flows
//! ```

use std::time::{Duration, Instant};

use serde_json::json;
use timix_bench::{bootstrap, cli, fresh_database, start};

/// User and system CPU seconds the process has used (Linux).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of stat: 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}

async fn polled_since(url: &str, since_ms: i64) -> anyhow::Result<i64> {
    use sqlx::{Connection, Row};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(url).await?;
    let sql = if url.starts_with("postgres") {
        "SELECT COUNT(*) FROM poll_state WHERE last_polled_at >= $1"
    } else {
        "SELECT COUNT(*) FROM poll_state WHERE last_polled_at >= ?"
    };
    let row = sqlx::query(sql).bind(since_ms).fetch_one(&mut conn).await?;
    Ok(row.try_get::<i64, _>(0)?)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    timix_connectors::outbound::install_crypto_provider();
    let flows: usize = std::env::args()
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(10_000);
    let (backend, env, dir) = fresh_database().await?;
    let url = env[0].1.clone();
    cli(&env, &["migrate"]).ok();
    let org = bootstrap(&env)?;
    let owner = org.owner.clone();
    // Keys enough that creating the flows meets no rate limit (300 requests a minute each).
    let writers = flows.div_ceil(250).max(1);
    let mut keys = Vec::new();
    for _ in 0..writers {
        keys.push(
            cli(&env, &["keys", "create", "--user", &owner])?["apiKey"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let server = start(&env)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = server.child.id();
    let memory_before = server.memory_mib();
    let http = reqwest::Client::new();
    let connection: serde_json::Value = http
        .post(format!("{}/connections", server.base))
        .header("X-Api-Key", &keys[0])
        .json(&json!({"name": "Here", "type": "self"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let connection = connection["id"].as_str().unwrap_or_default().to_owned();

    let created = Instant::now();
    let mut tasks = Vec::new();
    for (w, key) in keys.iter().enumerate() {
        let (http, base, key, connection) = (
            http.clone(),
            server.base.clone(),
            key.clone(),
            connection.clone(),
        );
        let count = flows / writers + usize::from(w < flows % writers);
        tasks.push(tokio::spawn(async move {
            for i in 0..count {
                http.post(format!("{base}/flows"))
                    .header("X-Api-Key", &key)
                    .json(&json!({
                        "name": format!("Poll {w}-{i}"),
                        "trigger": {"type": "poll", "connectionId": connection, "source": "new_customer",
                                    "schedule": "0 * * * * *"},
                        "steps": [{"key": "p", "action": "create_project",
                                   "input": {"customerId": "{{trigger.id}}", "name": "Onboarding"}}]
                    }))
                    .send()
                    .await?
                    .error_for_status()?;
            }
            anyhow::Ok(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let creating = created.elapsed();
    // The first polls (due at creation) are over; wait for the next minute's round.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let wait = 60_000 - now_ms() % 60_000;
    tokio::time::sleep(Duration::from_millis(wait as u64)).await;
    let fired = now_ms();
    let cpu_start = cpu_seconds(pid);
    let round_started = Instant::now();
    let round = loop {
        if polled_since(&url, fired).await? >= flows as i64 {
            break round_started.elapsed();
        }
        if round_started.elapsed() > Duration::from_secs(59) {
            break Duration::MAX;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let cpu_round = cpu_seconds(pid) - cpu_start;
    // The rest of the minute: only the scheduler looking for due polls.
    let idle_from = cpu_seconds(pid);
    let idle_window = Duration::from_secs(20);
    tokio::time::sleep(idle_window).await;
    let cpu_idle = (cpu_seconds(pid) - idle_from) / idle_window.as_secs_f64();
    let memory_after = server.memory_mib();

    println!(
        "backend: {backend}, {flows} poll flows (self connection, new_customer, once a minute)"
    );
    println!(
        "creating them: {:.1} s ({:.0} flows/s)",
        creating.as_secs_f64(),
        flows as f64 / creating.as_secs_f64()
    );
    if round == Duration::MAX {
        println!("one round of polls: not finished within the minute");
    } else {
        println!(
            "one round of polls: {:.1} s ({:.0} polls/s), {:.1} CPU seconds",
            round.as_secs_f64(),
            flows as f64 / round.as_secs_f64(),
            cpu_round
        );
    }
    println!("between rounds: {:.1} % of one core", cpu_idle * 100.0);
    println!("memory: {memory_before:.0} MiB before the flows, {memory_after:.0} MiB with them");
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
