//! What rate limits, idempotency keys, ETags and usage counting cost an authenticated GET.
//!
//! Serves the real application twice in this process, on one SQLite database, with and without
//! those layers, and loads each in turn (A, B, A, B…) with the same concurrent client for the
//! same time. Prints a Markdown table. Run it in release mode:
//!
//! ```sh
//! cargo run --release -p timix-bench --bin api-overhead -- [seconds-per-round] [connections] [rounds]
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use timix_engine::Db;
use timix_engine::access::bootstrap::{BootstrapInput, bootstrap};
use timix_engine::access::organizations::Plan;
use timix_web::{AppParts, AppState, GateOptions};

struct Round {
    requests: usize,
    seconds: f64,
    latencies_us: Vec<u32>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let seconds = args.first().copied().unwrap_or(10);
    let connections = args.get(1).copied().unwrap_or(16) as usize;
    let rounds = args.get(2).copied().unwrap_or(3);

    let dir = std::env::temp_dir().join(format!("timix-bench-{}", ulid::Ulid::generate()));
    let db = Db::connect(&format!("sqlite://{}", dir.join("timix.db").display())).await?;
    db.migrate().await?;
    let org = bootstrap(
        &db,
        BootstrapInput {
            org_name: "Bench",
            email: "bench@example.com",
            plan: Plan::Business,
            password: None,
            currency: "EUR",
            timezone: "UTC",
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{e}"))?;

    let with = serve(db.clone(), true).await?;
    let without = serve(db.clone(), false).await?;
    timix_connectors::outbound::install_crypto_provider();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(connections)
        .build()?;
    let customer: serde_json::Value = client
        .post(format!("{with}/api/integration/v1/customers"))
        .header("X-Api-Key", &org.api_key)
        .json(&serde_json::json!({"name": "Bench customer", "hourlyRate": "100"}))
        .send()
        .await?
        .json()
        .await?;
    let path = format!(
        "/api/integration/v1/customers/{}",
        customer["id"].as_str().unwrap_or_default()
    );

    let mut results: [Vec<Round>; 2] = [Vec::new(), Vec::new()];
    for _ in 0..rounds {
        for (i, base) in [&with, &without].into_iter().enumerate() {
            let url = format!("{base}{path}");
            results[i].push(
                load(
                    &client,
                    &url,
                    &org.api_key,
                    connections,
                    Duration::from_secs(seconds),
                )
                .await,
            );
        }
    }

    println!("| layers | requests/s | p50 latency | p99 latency |");
    println!("|---|---:|---:|---:|");
    let mut throughput = [0.0; 2];
    for (i, name) in [
        "with limits, idempotency, ETags, usage",
        "authentication only",
    ]
    .iter()
    .enumerate()
    {
        let requests: usize = results[i].iter().map(|r| r.requests).sum();
        let secs: f64 = results[i].iter().map(|r| r.seconds).sum();
        let mut lat: Vec<u32> = results[i]
            .iter()
            .flat_map(|r| r.latencies_us.iter().copied())
            .collect();
        lat.sort_unstable();
        let pct = |p: f64| {
            lat.get(((lat.len() as f64 * p) as usize).min(lat.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0)
        };
        throughput[i] = requests as f64 / secs;
        println!(
            "| {name} | {:.0} | {:.2} ms | {:.2} ms |",
            throughput[i],
            pct(0.50) as f64 / 1000.0,
            pct(0.99) as f64 / 1000.0
        );
    }
    println!(
        "\nOverhead: {:.1}% of throughput ({rounds} rounds of {seconds} s each, {connections} connections).",
        (1.0 - throughput[0] / throughput[1]) * 100.0
    );
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}

/// Serves the application on a free port; returns its base URL.
async fn serve(db: Db, limits: bool) -> anyhow::Result<String> {
    let manifests = timix_engine::automation::manifest::Manifests::built_in()
        .expect("valid built-in manifests");
    let vault = timix_engine::automation::connections::Vault::from_base64(
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    )?;
    let state = AppState::build(AppParts {
        // A budget the load cannot exhaust, so that every request takes the full allowed path.
        gate: GateOptions {
            limits,
            quota_override: Some(100_000_000),
        },
        ..AppParts::new(db, std::sync::Arc::new(manifests), vault)
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move { axum::serve(listener, timix_web::app(state)).await });
    Ok(format!("http://{address}"))
}

async fn load(
    client: &reqwest::Client,
    url: &str,
    key: &str,
    connections: usize,
    time: Duration,
) -> Round {
    let stop = Arc::new(AtomicBool::new(false));
    let started = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..connections {
        let (client, url, key, stop) =
            (client.clone(), url.to_owned(), key.to_owned(), stop.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = match client.get(&url).header("X-Api-Key", &key).send().await {
                    Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
                    Err(_) => false,
                };
                if ok {
                    latencies.push(t.elapsed().as_micros() as u32);
                }
            }
            latencies
        }));
    }
    tokio::time::sleep(time).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies_us = Vec::new();
    for w in workers {
        latencies_us.extend(w.await.unwrap_or_default());
    }
    Round {
        requests: latencies_us.len(),
        seconds: started.elapsed().as_secs_f64(),
        latencies_us,
    }
}
