//! The peers' workload as a closed loop: `c` connections, each sending a numbered call, waiting
//! for its answer and then sending the next, until all calls are made. End to end is measured at
//! the receiver, for every system alike: timix answers once the run is committed (before its
//! HTTP step), Node-RED and the bare forwarder after the receiver answered them.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use timix_bench::{percentile, wait_for};

use crate::Workflow;

/// How long the receiver may take to get the last call after the last answer (a backlog).
const DRAIN: Duration = Duration::from_secs(900);

/// A refused call is sent again this many times at most.
const TRIES: u32 = 50;

/// What one closed loop measured.
#[derive(Debug)]
pub struct Outcome {
    /// Calls over the time from the first call to the last arrival at the receiver.
    pub runs_per_second: f64,
    /// From sending a call (its first try) to its arrival at the receiver.
    pub p50: Duration,
    /// The same, the 99th percentile.
    pub p99: Duration,
    /// Answers that were not 2xx (each such call was sent again).
    pub refused: u64,
}

/// Calls `first..first + calls` from `connections` connections, one call in flight on each.
pub async fn closed_loop(
    workflow: &Workflow<'_>,
    first: u64,
    calls: u64,
    connections: u64,
) -> anyhow::Result<Outcome> {
    let next = Arc::new(AtomicU64::new(first));
    let started = Instant::now();
    let mut senders = Vec::new();
    for _ in 0..connections {
        let (http, url, next) = (workflow.http.clone(), workflow.url.to_owned(), next.clone());
        senders.push(tokio::spawn(async move {
            let mut sent = Vec::new();
            let mut refused = 0;
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= first + calls {
                    return anyhow::Ok((sent, refused));
                }
                sent.push((n, Instant::now()));
                refused += call(&http, &url, n).await?;
            }
        }));
    }
    let mut sent = Vec::with_capacity(calls as usize);
    let mut refused = 0;
    for sender in senders {
        let (times, refusals) = sender.await??;
        sent.extend(times);
        refused += refusals;
    }
    wait_for(workflow.arrivals, first, calls as usize, DRAIN).await;
    let arrivals = workflow.arrivals.lock().unwrap();
    let mut latencies: Vec<Duration> = sent
        .iter()
        .filter_map(|(n, at)| arrivals.get(n).map(|a| a.saturating_duration_since(*at)))
        .collect();
    anyhow::ensure!(
        latencies.len() == calls as usize,
        "{} of {calls} calls reached the receiver",
        latencies.len()
    );
    latencies.sort();
    let last = (first..first + calls)
        .filter_map(|n| arrivals.get(&n))
        .max()
        .copied()
        .unwrap_or(started);
    Ok(Outcome {
        runs_per_second: calls as f64 / last.duration_since(started).as_secs_f64().max(1e-6),
        p50: percentile(&latencies, 0.5),
        p99: percentile(&latencies, 0.99),
        refused,
    })
}

/// Sends call `n` until it is answered 2xx, waiting as long as a refusal's `Retry-After` asks
/// (a second when it does not say); the number of refusals.
async fn call(http: &reqwest::Client, url: &str, n: u64) -> anyhow::Result<u64> {
    let mut refusals = 0;
    loop {
        let wait = match http.post(url).json(&json!({"n": n})).send().await {
            Ok(answer) if answer.status().is_success() => {
                answer.bytes().await?;
                return Ok(refusals);
            }
            Ok(answer) => retry_after(&answer).unwrap_or(Duration::from_secs(1)),
            Err(_) => Duration::from_millis(100),
        };
        refusals += 1;
        anyhow::ensure!(refusals < u64::from(TRIES), "call {n} to {url} refused");
        tokio::time::sleep(wait).await;
    }
}

fn retry_after(answer: &reqwest::Response) -> Option<Duration> {
    let seconds: u64 = answer
        .headers()
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()?;
    Some(Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use serde_json::Value;
    use timix_bench::{Arrivals, receiver};

    use super::*;

    /// A stand-in system: forwards each call to the receiver, noting the most calls it ever
    /// held at once; refuses the first try of each call when `refuse_first` (503, `Retry-After:
    /// 0`).
    #[derive(Clone, Default)]
    struct StandIn {
        in_flight: Arc<AtomicUsize>,
        most_in_flight: Arc<AtomicUsize>,
        refused: Arc<Mutex<HashSet<u64>>>,
        refuse_first: bool,
    }

    async fn serve(stand_in: StandIn, target: String) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let http = reqwest::Client::new();
        let app = axum::Router::new().fallback(move |body: axum::body::Bytes| {
            let (s, http, target) = (stand_in.clone(), http.clone(), target.clone());
            async move {
                let n = serde_json::from_slice::<Value>(&body).unwrap()["n"]
                    .as_u64()
                    .unwrap();
                if s.refuse_first && s.refused.lock().unwrap().insert(n) {
                    return (StatusCode::SERVICE_UNAVAILABLE, [("retry-after", "0")])
                        .into_response();
                }
                let now = s.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                s.most_in_flight.fetch_max(now, Ordering::SeqCst);
                tokio::task::yield_now().await;
                http.post(&target).body(body).send().await.unwrap();
                s.in_flight.fetch_sub(1, Ordering::SeqCst);
                "done".into_response()
            }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{address}/hook")
    }

    async fn run(stand_in: &StandIn, connections: u64) -> (Outcome, Arrivals) {
        timix_connectors::outbound::install_crypto_provider();
        let (target, arrivals) = receiver().await.unwrap();
        let url = serve(stand_in.clone(), target).await;
        let http = reqwest::Client::new();
        let workflow = Workflow {
            http: &http,
            url: &url,
            arrivals: &arrivals,
        };
        let outcome = closed_loop(&workflow, 500, 200, connections).await.unwrap();
        (outcome, arrivals)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_call_arrives_with_at_most_one_in_flight_per_connection() {
        let stand_in = StandIn::default();
        let (outcome, arrivals) = run(&stand_in, 4).await;
        let got: HashSet<u64> = arrivals.lock().unwrap().keys().copied().collect();
        assert_eq!(got, (500..700).collect());
        assert!(stand_in.most_in_flight.load(Ordering::SeqCst) <= 4);
        assert_eq!(outcome.refused, 0);
        assert!(outcome.runs_per_second > 0.0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_connection_sends_one_call_at_a_time() {
        let stand_in = StandIn::default();
        run(&stand_in, 1).await;
        assert_eq!(stand_in.most_in_flight.load(Ordering::SeqCst), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_refused_call_is_sent_again_after_retry_after() {
        let stand_in = StandIn {
            refuse_first: true,
            ..StandIn::default()
        };
        let (outcome, arrivals) = run(&stand_in, 8).await;
        assert_eq!(outcome.refused, 200);
        assert_eq!(arrivals.lock().unwrap().len(), 200);
    }
}
