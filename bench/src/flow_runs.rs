//! Flow runs against the real `timix` binary: "inbound webhook → http_request to a local
//! receiver" (latency from the 202 to the receiver, and runs per second for a burst),
//! "customer.created → create project → create task" and "inbound webhook → create customer"
//! (runs per second), with the server's memory idle and loaded. Every run and step is durably
//! recorded, as always.
//!
//! ```sh
//! cargo build --release --bins -p timix -p timix-bench
//! target/release/flow-runs                      # SQLite
//! TIMIX_BENCH_POSTGRES_URL=postgres://user:pw@127.0.0.1/postgres target/release/flow-runs
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use timix_bench::{bootstrap, cli, fresh_database, percentile, receiver, start, wait_for};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    timix_connectors::outbound::install_crypto_provider();
    let (backend, env, dir) = fresh_database().await?;
    cli(&env, &["migrate"]).ok();
    let org = bootstrap(&env)?;
    let key = org.key.clone();
    // One key per writer, so that no writer meets its key's rate limit.
    let owner = org.owner.clone();
    let mut writer_keys = Vec::new();
    for _ in 0..8 {
        writer_keys.push(
            cli(&env, &["keys", "create", "--user", &owner])?["apiKey"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
        );
    }
    let server = start(&env)?;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let idle_memory = server.memory_mib();
    let http = reqwest::Client::new();
    let (hook, state) = receiver().await?;
    let api = |path: &str| format!("{}{path}", server.base);

    let flow: Value = http
        .post(api("/flows"))
        .header("X-Api-Key", &key)
        .json(&json!({
            "name": "Inbound → HTTP",
            "trigger": {"type": "webhook"},
            "steps": [{"key": "send", "action": "http_request",
                       "input": {"method": "POST", "url": hook, "body": {"n": "{{trigger.n}}"}}}]
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

    // Latency: 50 calls a second for 6 seconds.
    let mut accepted: HashMap<u64, Instant> = HashMap::new();
    let started = Instant::now();
    for n in 0..300u64 {
        tokio::time::sleep_until((started + Duration::from_millis(20 * n)).into()).await;
        http.post(&inbound)
            .json(&json!({"n": n}))
            .send()
            .await?
            .error_for_status()?;
        accepted.insert(n, Instant::now());
    }
    wait_for(&state, 0, 300, Duration::from_secs(60)).await;
    let mut latencies: Vec<Duration> = {
        let s = state.lock().unwrap();
        accepted
            .iter()
            .filter_map(|(n, at)| s.get(n).map(|r| r.saturating_duration_since(*at)))
            .collect()
    };
    latencies.sort();

    // Throughput: a burst of 3,000 calls from 32 connections.
    let burst = 3000u64;
    let first = 1_000_000u64;
    let burst_started = Instant::now();
    let mut senders = Vec::new();
    for k in 0..32u64 {
        let (http, inbound) = (http.clone(), inbound.clone());
        // Inbound webhooks need no key: no rate limit applies.
        senders.push(tokio::spawn(async move {
            let mut n = first + k;
            while n < first + burst {
                let _ = http.post(&inbound).json(&json!({"n": n})).send().await;
                n += 32;
            }
        }));
    }
    for s in senders {
        s.await?;
    }
    let accepted_in = burst_started.elapsed();
    wait_for(&state, 0, 300 + burst as usize, Duration::from_secs(300)).await;
    let (done, last) = {
        let s = state.lock().unwrap();
        let times: Vec<Instant> = s
            .iter()
            .filter(|(n, _)| **n >= first)
            .map(|(_, t)| *t)
            .collect();
        (times.len(), times.into_iter().max())
    };
    let span = last
        .map(|l| l.duration_since(burst_started))
        .unwrap_or_default();
    let loaded_memory = server.memory_mib();

    // The chain: customer.created → create project → create task.
    let chain: Value = http
        .post(api("/flows"))
        .header("X-Api-Key", &key)
        .json(&json!({
            "name": "Onboarding",
            "trigger": {"type": "event", "event": "customer.created"},
            "steps": [
                {"key": "project", "action": "create_project", "input": {"customerId": "{{trigger.id}}", "name": "Onboarding {{trigger.name}}"}},
                {"key": "task", "action": "create_task", "input": {"projectId": "{{steps.project.id}}", "name": "Kick-off"}}
            ]
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let chain_id = chain["id"].as_str().unwrap_or_default().to_owned();
    let customers = 500usize;
    let chain_started = Instant::now();
    let mut creators = Vec::new();
    for (k, key) in writer_keys.iter().enumerate() {
        let (http, url, key) = (http.clone(), api("/customers"), key.clone());
        creators.push(tokio::spawn(async move {
            for i in 0..customers / 8 {
                let r = http
                    .post(&url)
                    .header("X-Api-Key", &key)
                    .json(&json!({"name": format!("C{k}-{i}")}))
                    .send()
                    .await?;
                anyhow::ensure!(
                    r.status().is_success(),
                    "creating a customer: {}",
                    r.status()
                );
            }
            anyhow::Ok(())
        }));
    }
    for c in creators {
        c.await??;
    }
    let customers = customers / 8 * 8;
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut chained = 0;
    while Instant::now() < deadline {
        let r = http
            .get(api(&format!(
                "/runs?flowId={chain_id}&status=succeeded&pageSize=1"
            )))
            .header("X-Api-Key", &key)
            .send()
            .await?;
        chained = r
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        if chained >= customers {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let chain_span = chain_started.elapsed();

    // Inbound webhook → create customer (in-process), the chain above disabled.
    http.post(api(&format!("/flows/{chain_id}/disable")))
        .header("X-Api-Key", &key)
        .send()
        .await?
        .error_for_status()?;
    let creating: Value = http
        .post(api("/flows"))
        .header("X-Api-Key", &key)
        .json(&json!({
            "name": "Inbound → customer",
            "trigger": {"type": "webhook"},
            "steps": [{"key": "customer", "action": "create_customer", "input": {"name": "{{trigger.name}}"}}]
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let creating_id = creating["id"].as_str().unwrap_or_default().to_owned();
    let creating_url = format!(
        "{}{}",
        server.base.trim_end_matches("/api/integration/v1"),
        creating["trigger"]["webhookUrl"]
            .as_str()
            .unwrap_or_default()
    );
    let calls = 1000u64;
    let create_started = Instant::now();
    let mut senders = Vec::new();
    for k in 0..16u64 {
        let (http, url) = (http.clone(), creating_url.clone());
        senders.push(tokio::spawn(async move {
            let mut n = k;
            while n < calls {
                let _ = http
                    .post(&url)
                    .json(&json!({"name": format!("Inbound {n}")}))
                    .send()
                    .await;
                n += 16;
            }
        }));
    }
    for s in senders {
        s.await?;
    }
    let mut created = 0;
    let deadline = Instant::now() + Duration::from_secs(300);
    while Instant::now() < deadline {
        created = http
            .get(api(&format!(
                "/runs?flowId={creating_id}&status=succeeded&pageSize=1"
            )))
            .header("X-Api-Key", &key)
            .send()
            .await?
            .headers()
            .get("x-total-count")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok())
            .unwrap_or(0);
        if created >= calls as usize {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let create_span = create_started.elapsed();

    // A program: inbound webhook → if → forEach over 10 items → http_request (12 nodes a run).
    let program: Value = http
        .post(api("/flows"))
        .header("X-Api-Key", &key)
        .json(&json!({
            "name": "Inbound → if → each → HTTP",
            "trigger": {"type": "webhook"},
            "steps": [{"key": "check", "type": "if",
                       "condition": {"left": "{{trigger.ok}}", "op": "equals", "right": true},
                       "then": [{"key": "each", "type": "forEach", "items": "{{trigger.items}}", "steps": [
                           {"key": "send", "action": "http_request",
                            "input": {"method": "POST", "url": hook, "body": {"n": "{{item}}"}}}]}]}]
        }))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let program_url = format!(
        "{}{}",
        server.base.trim_end_matches("/api/integration/v1"),
        program["trigger"]["webhookUrl"]
            .as_str()
            .unwrap_or_default()
    );
    let (programs, items) = (300u64, 10u64);
    let program_first = 2_000_000u64;
    let program_started = Instant::now();
    let mut senders = Vec::new();
    for k in 0..16u64 {
        let (http, url) = (http.clone(), program_url.clone());
        senders.push(tokio::spawn(async move {
            let mut n = k;
            while n < programs {
                let base = program_first + n * items;
                let list: Vec<u64> = (base..base + items).collect();
                let _ = http
                    .post(&url)
                    .json(&json!({"ok": true, "items": list}))
                    .send()
                    .await;
                n += 16;
            }
        }));
    }
    for s in senders {
        s.await?;
    }
    wait_for(
        &state,
        program_first,
        (programs * items) as usize,
        Duration::from_secs(300),
    )
    .await;
    let program_span = program_started.elapsed();
    let program_calls = state
        .lock()
        .unwrap()
        .keys()
        .filter(|n| **n >= program_first)
        .count();

    println!("| backend | workload | result |");
    println!("|---|---|---|");
    println!(
        "| {backend} | inbound webhook → http_request, 50/s | p50 {:.1} ms, p99 {:.1} ms ({} of 300) |",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        latencies.len()
    );
    println!(
        "| {backend} | inbound webhook → http_request, burst of {burst} | {:.0} runs/s ({done} done in {:.2} s; calls accepted in {:.2} s) |",
        done as f64 / span.as_secs_f64().max(0.001),
        span.as_secs_f64(),
        accepted_in.as_secs_f64()
    );
    println!(
        "| {backend} | customer.created → project → task, {customers} customers | {:.0} runs/s ({chained} done in {:.2} s) |",
        chained as f64 / chain_span.as_secs_f64().max(0.001),
        chain_span.as_secs_f64()
    );
    println!(
        "| {backend} | inbound webhook → create customer, burst of {calls} | {:.0} runs/s ({created} done in {:.2} s) |",
        created as f64 / create_span.as_secs_f64().max(0.001),
        create_span.as_secs_f64()
    );
    let nodes = programs * (2 + items);
    println!(
        "| {backend} | inbound webhook → if → forEach over {items} → http_request, burst of {programs} | {:.0} runs/s, {:.0} nodes/s, {:.2} ms a node ({program_calls} calls in {:.2} s) |",
        programs as f64 / program_span.as_secs_f64().max(0.001),
        nodes as f64 / program_span.as_secs_f64().max(0.001),
        program_span.as_secs_f64() * 1000.0 / nodes as f64,
        program_span.as_secs_f64()
    );
    println!(
        "| {backend} | memory (RSS) | {idle_memory:.0} MiB idle, {loaded_memory:.0} MiB after the burst |"
    );
    drop(server);
    let _ = std::fs::remove_dir_all(dir);
    Ok(())
}
