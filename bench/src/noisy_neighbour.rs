//! One organization's load against another's latency: a quiet organization makes 50
//! authenticated requests a second (reads and writes) while a noisy one runs 200 flows on a
//! per-second schedule, each creating a customer. Three settings, each on a fresh server: quiet
//! alone; noisy with the run budget of the professional plan (2,000 runs a minute); noisy with
//! the budget lifted (`TIMIX_RUNS_PER_MINUTE=0`). Prints the quiet organization's p50 and p99
//! and the noisy one's runs per second.
//!
//! ```sh
//! cargo build --release --bins -p timix -p timix-bench
//! target/release/noisy-neighbour                      # SQLite
//! TIMIX_BENCH_POSTGRES_URL=postgres://user:pw@127.0.0.1/postgres target/release/noisy-neighbour
//! ```

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use timix_bench::{Server, bootstrap, cli, fresh_database, percentile, start};

/// How long the quiet organization's latency is measured.
const MEASURE: Duration = Duration::from_secs(20);
/// How long the noisy organization runs first: past its first minute's burst.
const WARM_UP: Duration = Duration::from_secs(15);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    timix_connectors::outbound::install_crypto_provider();
    let mut rows = Vec::new();
    for (label, noisy, budget) in [
        ("quiet alone", false, "2000"),
        ("noisy, professional budget (2,000 runs/min)", true, "2000"),
        ("noisy, budget lifted", true, "0"),
    ] {
        let (backend, mut env, _dir) = fresh_database().await?;
        env.push(("TIMIX_KEY_RATE_LIMIT".into(), "100000000".into()));
        env.push(("TIMIX_RUNS_PER_MINUTE".into(), budget.into()));
        cli(&env, &["migrate"]).ok();
        let quiet_org = bootstrap(&env)?;
        let noisy_key = cli(
            &env,
            &[
                "bootstrap",
                "--org",
                "Noisy",
                "--email",
                "noisy@example.com",
                "--plan",
                "professional",
            ],
        )?["apiKey"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let server = start(&env)?;
        let http = reqwest::Client::new();
        if noisy {
            schedule_noise(&http, &server, &noisy_key).await?;
            tokio::time::sleep(WARM_UP).await;
        }
        let runs_before = succeeded_runs(&http, &server, &noisy_key).await?;
        let latencies = measure(&http, &server, &quiet_org.key).await?;
        let runs_after = succeeded_runs(&http, &server, &noisy_key).await?;
        let noisy_rate = (runs_after - runs_before) as f64 / MEASURE.as_secs_f64();
        println!(
            "{backend}: {label}: quiet p50 {:.1} ms, p99 {:.1} ms; noisy runs/s {noisy_rate:.0}",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99)),
        );
        rows.push((
            label,
            percentile(&latencies, 0.5),
            percentile(&latencies, 0.99),
            noisy_rate,
        ));
    }
    println!("\n| setting | quiet p50 (ms) | quiet p99 (ms) | noisy runs/s |");
    println!("|---|---:|---:|---:|");
    for (label, p50, p99, rate) in rows {
        println!("| {label} | {:.1} | {:.1} | {rate:.0} |", ms(p50), ms(p99));
    }
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// 200 flows (the most an organization may have), each firing every second.
async fn schedule_noise(http: &reqwest::Client, server: &Server, key: &str) -> anyhow::Result<()> {
    for i in 0..200 {
        http.post(format!("{}/flows", server.base))
            .header("X-Api-Key", key)
            .json(&json!({
                "name": format!("Every second {i}"),
                "trigger": {"type": "schedule", "schedule": "* * * * * *"},
                "steps": [{"key": "c", "action": "create_customer",
                           "input": {"name": "Tick {{trigger.firedAt}} {{flow.name}}"}}]
            }))
            .send()
            .await?
            .error_for_status()?;
    }
    Ok(())
}

/// The quiet organization's requests at 50 a second for [`MEASURE`]: a list, a write and a
/// read in turn. Returns each one's latency, sorted.
async fn measure(
    http: &reqwest::Client,
    server: &Server,
    key: &str,
) -> anyhow::Result<Vec<Duration>> {
    let started = Instant::now();
    let total = (MEASURE.as_millis() / 20) as u64;
    let mut pending = Vec::new();
    for n in 0..total {
        tokio::time::sleep_until((started + Duration::from_millis(20 * n)).into()).await;
        let (http, base, key) = (http.clone(), server.base.clone(), key.to_owned());
        pending.push(tokio::spawn(async move {
            let sent = Instant::now();
            let request = match n % 3 {
                0 => http.get(format!("{base}/customers?pageSize=20")),
                1 => http
                    .post(format!("{base}/customers"))
                    .json(&json!({"name": format!("Quiet {n}")})),
                _ => http.get(format!("{base}/me")),
            };
            let ok = request
                .header("X-Api-Key", key)
                .send()
                .await
                .is_ok_and(|r| r.status().is_success());
            ok.then(|| sent.elapsed())
        }));
    }
    let mut latencies = Vec::new();
    for p in pending {
        latencies.extend(p.await?);
    }
    anyhow::ensure!(
        latencies.len() as u64 == total,
        "{} of {total} quiet requests failed",
        total - latencies.len() as u64
    );
    latencies.sort();
    Ok(latencies)
}

/// How many runs of the organization have succeeded so far.
async fn succeeded_runs(http: &reqwest::Client, server: &Server, key: &str) -> anyhow::Result<u64> {
    let mut count = 0;
    let mut cursor = String::new();
    loop {
        let page: Value = http
            .get(format!(
                "{}/runs?status=succeeded&pageSize=200&cursor={cursor}",
                server.base
            ))
            .header("X-Api-Key", key)
            .send()
            .await?
            .error_for_status()?
            .json()
            .await?;
        count += page["items"].as_array().map_or(0, Vec::len) as u64;
        match page["nextCursor"].as_str() {
            Some(next) if page["hasMore"] == true => cursor = next.to_owned(),
            _ => return Ok(count),
        }
    }
}
