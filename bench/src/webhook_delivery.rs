//! Webhook delivery: latency from the API's 201 to the receiver getting the signed POST, and
//! sustained deliveries per second, against the real `timix` binary and a local receiver.
//!
//! ```sh
//! cargo build --release --bins
//! target/release/webhook-delivery                      # SQLite
//! TIMIX_BENCH_POSTGRES_URL=postgres://user:pw@127.0.0.1/postgres target/release/webhook-delivery
//! ```

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use serde_json::{Value, json};
use timix_bench::{bootstrap, cli, fresh_database, percentile, start};

#[derive(Default)]
struct Received {
    /// Customer id → when its first delivery arrived.
    first: HashMap<String, Instant>,
    times: Vec<Instant>,
}

async fn receiver(state: Arc<Mutex<Received>>) -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let app = axum::Router::new().fallback(move |body: Bytes| {
        let state = state.clone();
        async move {
            let now = Instant::now();
            let id = serde_json::from_slice::<Value>(&body)
                .ok()
                .and_then(|v| v["data"]["id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            let mut s = state.lock().unwrap();
            s.first.entry(id).or_insert(now);
            s.times.push(now);
            "ok"
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{address}/hook"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    timix_connectors::outbound::install_crypto_provider();
    let (backend, env, dir) = fresh_database().await?;
    cli(&env, &["migrate"]).ok();
    let org = bootstrap(&env)?;
    let owner = org.owner.clone();
    let mut keys = vec![org.key.clone()];
    for _ in 0..7 {
        keys.push(
            cli(&env, &["keys", "create", "--user", &owner])?["apiKey"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let server = start(&env)?;
    let http = reqwest::Client::new();
    let state = Arc::new(Mutex::new(Received::default()));
    let hook_url = receiver(state.clone()).await?;
    let post = |key: &str, path: &str, body: Value| {
        http.post(format!("{}{path}", server.base))
            .header("X-Api-Key", key)
            .json(&body)
            .send()
    };
    post(
        &keys[0],
        "/webhooks",
        json!({"url": hook_url, "events": ["customer.created"]}),
    )
    .await?
    .error_for_status()?;

    // Latency: 100 events a second for 10 seconds.
    let mut acked: HashMap<String, Instant> = HashMap::new();
    let started = Instant::now();
    for i in 0..1000u32 {
        let due = started + Duration::from_millis(10 * i as u64);
        tokio::time::sleep_until(due.into()).await;
        let r = post(
            &keys[i as usize % keys.len()],
            "/customers",
            json!({"name": format!("L{i}")}),
        )
        .await?;
        let at = Instant::now();
        let body: Value = r.error_for_status()?.json().await?;
        acked.insert(body["id"].as_str().unwrap_or_default().to_owned(), at);
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while state.lock().unwrap().first.len() < acked.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let mut latencies: Vec<Duration> = {
        let s = state.lock().unwrap();
        acked
            .iter()
            .filter_map(|(id, at)| s.first.get(id).map(|r| r.saturating_duration_since(*at)))
            .collect()
    };
    latencies.sort();
    let delivered = latencies.len();

    // Throughput: 20 more webhooks for every event, then a burst of events.
    for _ in 0..19 {
        post(
            &keys[0],
            "/webhooks",
            json!({"url": hook_url, "events": ["*"]}),
        )
        .await?
        .error_for_status()?;
    }
    let before = state.lock().unwrap().times.len();
    let burst = 1000usize;
    let mut tasks = Vec::new();
    for (k, key) in keys.iter().enumerate() {
        let (http, base, key) = (http.clone(), server.base.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..burst / 8 {
                let _ = http
                    .post(format!("{base}/customers"))
                    .header("X-Api-Key", &key)
                    .json(&json!({"name": format!("T{k}-{i}")}))
                    .send()
                    .await;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }
    let expected = before + burst * 20;
    let deadline = Instant::now() + Duration::from_secs(120);
    while state.lock().unwrap().times.len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let s = state.lock().unwrap();
    let window = &s.times[before..];
    let span = window
        .last()
        .zip(window.first())
        .map(|(l, f)| l.duration_since(*f))
        .unwrap_or_default();
    println!(
        "| backend | p50 latency | p99 latency | delivered | deliveries/s (burst of {} to 20 webhooks) |",
        burst
    );
    println!("|---|---:|---:|---:|---:|");
    println!(
        "| {backend} | {:.1} ms | {:.1} ms | {delivered}/1000 | {:.0} ({} in {:.2} s) |",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        window.len() as f64 / span.as_secs_f64().max(0.001),
        window.len(),
        span.as_secs_f64()
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
