//! `/metrics` in the Prometheus text format, behind its own bearer token
//! (`TIMIX_METRICS_TOKEN`; without one the endpoint does not exist). Requests are counted here,
//! by matched route template (never the raw path, so label values stay few); the background
//! work (queues, outcomes, poll lag) is read from the database at scrape time.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use timix_engine::automation::flows;
use timix_engine::automation::runs::{self, RunStatus};
use timix_engine::automation::webhooks::DeliveryStatus;
use timix_engine::store::health::{self, WorkStats};

use crate::AppState;
use crate::error::ApiError;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The route label of a request that matched no route (404s, requests refused before routing).
const UNMATCHED: &str = "unmatched";

#[derive(Debug, Default, Clone)]
struct Histogram {
    /// Observations at or under each of [`BUCKETS`] (not cumulative; summed when rendered).
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        if let Some(i) = BUCKETS.iter().position(|b| seconds <= *b) {
            self.buckets[i] += 1;
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Debug, Default)]
struct Requests {
    /// (route, method, status) → count.
    counts: BTreeMap<(String, &'static str, u16), u64>,
    /// (route, method) → latency.
    latency: BTreeMap<(String, &'static str), Histogram>,
}

/// This process's request metrics and the token that guards them.
#[derive(Debug, Default)]
pub struct Metrics {
    /// SHA-256 of the token; `None`: `/metrics` is not served.
    token_hash: Option<[u8; 32]>,
    requests: Mutex<Requests>,
}

impl Metrics {
    pub fn new(token: Option<&str>) -> Self {
        Self {
            token_hash: token.filter(|t| !t.is_empty()).map(hash),
            requests: Mutex::default(),
        }
    }

    fn record(&self, route: String, method: &'static str, status: u16, seconds: f64) {
        let Ok(mut requests) = self.requests.lock() else {
            return;
        };
        *requests
            .counts
            .entry((route.clone(), method, status))
            .or_default() += 1;
        requests
            .latency
            .entry((route, method))
            .or_default()
            .observe(seconds);
    }

    /// Whether `headers` carry `Authorization: Bearer <the token>`, compared by hash so the
    /// time taken says nothing about the token.
    fn admits(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .map(str::trim);
        match (self.token_hash, presented) {
            (Some(expected), Some(given)) => hash(given) == expected,
            _ => false,
        }
    }
}

fn hash(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

/// A label value for a method: the usual ones by name, anything else as `other`.
fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// Inside routing: hands the matched route template out to [`count`] on the response.
pub async fn mark_route(request: Request, next: Next) -> Response {
    let matched = request.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(request).await;
    if let Some(matched) = matched {
        response.extensions_mut().insert(matched);
    }
    response
}

/// Outside routing: counts each request by route template, method and status, and its latency.
pub async fn count(State(metrics): State<Arc<Metrics>>, request: Request, next: Next) -> Response {
    let method = method_label(request.method());
    let started = Instant::now();
    let response = next.run(request).await;
    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| UNMATCHED.to_owned(), |m| m.as_str().to_owned());
    metrics.record(
        route,
        method,
        response.status().as_u16(),
        started.elapsed().as_secs_f64(),
    );
    response
}

/// `GET /metrics`: 404 when no token is configured, 401 without the right one.
pub async fn scrape(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let metrics = &state.metrics;
    if metrics.token_hash.is_none() {
        return ApiError::not_found_route().into_response();
    }
    if !metrics.admits(&headers) {
        let mut error = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "send the metrics token (TIMIX_METRICS_TOKEN) as Authorization: Bearer",
        );
        error
            .headers
            .push((header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer")));
        return error.into_response();
    }
    let work = match health::work_stats(&state.db).await {
        Ok(work) => Some(work),
        Err(error) => {
            tracing::warn!(%error, "Could not read the background work for /metrics.");
            None
        }
    };
    let stalled = match flows::watch::stalled_flows(&state.db).await {
        Ok(stalled) => Some(stalled),
        Err(error) => {
            tracing::warn!(%error, "Could not read the stalled flows for /metrics.");
            None
        }
    };
    let backlog = match (&state.run_lane, &state.shared_backlog) {
        (Some(lane), _) => Some(Backlog {
            waiting: lane.backlog.len() as i64,
            oldest: lane.backlog.oldest_wait(),
            held: lane.backlog.held(),
            refused: lane.backlog.refused(),
        }),
        (None, Some(shared)) => match runs::waiting(&state.db).await {
            Ok((waiting, oldest)) => Some(Backlog {
                waiting,
                oldest,
                held: 0,
                refused: shared.refused(),
            }),
            Err(error) => {
                tracing::warn!(%error, "Could not read the waiting runs for /metrics.");
                None
            }
        },
        (None, None) => None,
    };
    let mut text = String::new();
    render_requests(&mut text, metrics);
    render_work(&mut text, work.as_ref());
    if let Some(backlog) = &backlog {
        render_backlog(&mut text, backlog);
    }
    if let Some((named, count)) = &stalled {
        render_stalled(&mut text, named, *count);
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

/// The runs waiting for a worker (this process's; in a process without workers, the worker
/// processes'), and what inbound webhook calls met because of them.
struct Backlog {
    waiting: i64,
    /// How long the oldest of them has waited.
    oldest: Duration,
    /// Calls whose answer waited for room (only a process with workers holds calls).
    held: u64,
    /// Calls refused past `TIMIX_INBOUND_BACKLOG`.
    refused: u64,
}

fn render_backlog(out: &mut String, backlog: &Backlog) {
    family(
        out,
        "timix_run_backlog",
        "gauge",
        "Runs waiting for a worker (this process's, or the worker processes' in one without).",
    );
    let _ = writeln!(out, "timix_run_backlog {}", backlog.waiting);
    family(
        out,
        "timix_run_backlog_oldest_seconds",
        "gauge",
        "How long the oldest run waiting for a worker has waited.",
    );
    let _ = writeln!(
        out,
        "timix_run_backlog_oldest_seconds {}",
        backlog.oldest.as_secs_f64()
    );
    family(
        out,
        "timix_inbound_calls_total",
        "counter",
        "Inbound webhook calls that met a backlog: held until a run started, or refused with 503.",
    );
    let _ = writeln!(
        out,
        "timix_inbound_calls_total{{outcome=\"held\"}} {}",
        backlog.held
    );
    let _ = writeln!(
        out,
        "timix_inbound_calls_total{{outcome=\"refused\"}} {}",
        backlog.refused
    );
}

/// Enabled schedule and poll flows that stopped firing when they should have.
fn render_stalled(out: &mut String, named: &[(String, flows::watch::Stalled)], count: usize) {
    family(
        out,
        "timix_flows_stalled",
        "gauge",
        "Enabled schedule and poll flows that stopped firing: a missed fire time, an overdue poll, or a source failing poll after poll.",
    );
    let _ = writeln!(out, "timix_flows_stalled {count}");
    family(
        out,
        "timix_flow_stalled",
        "gauge",
        "1 for each stalled flow (at most 500), with why.",
    );
    for (flow_id, stalled) in named {
        let _ = writeln!(
            out,
            "timix_flow_stalled{{flow_id=\"{}\",reason=\"{}\"}} 1",
            escape(flow_id),
            stalled.reason.as_str()
        );
    }
}

/// A label value, escaped as the text format wants.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn render_requests(out: &mut String, metrics: &Metrics) {
    let Ok(requests) = metrics.requests.lock() else {
        return;
    };
    family(
        out,
        "timix_http_requests_total",
        "counter",
        "HTTP requests answered by this process, by route template, method and status.",
    );
    for ((route, method, status), n) in &requests.counts {
        let _ = writeln!(
            out,
            "timix_http_requests_total{{route=\"{}\",method=\"{method}\",status=\"{status}\"}} {n}",
            escape(route)
        );
    }
    family(
        out,
        "timix_http_request_duration_seconds",
        "histogram",
        "Time to answer HTTP requests, by route template and method.",
    );
    for ((route, method), h) in &requests.latency {
        let labels = format!("route=\"{}\",method=\"{method}\"", escape(route));
        let mut cumulative = 0;
        for (bound, n) in BUCKETS.iter().zip(h.buckets) {
            cumulative += n;
            let _ = writeln!(
                out,
                "timix_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
            );
        }
        let _ = writeln!(
            out,
            "timix_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
            h.count
        );
        let _ = writeln!(
            out,
            "timix_http_request_duration_seconds_sum{{{labels}}} {}",
            h.sum
        );
        let _ = writeln!(
            out,
            "timix_http_request_duration_seconds_count{{{labels}}} {}",
            h.count
        );
    }
}

/// Statuses always reported, so a dashboard sees 0 rather than no series.
const RUN_STATUSES: [&str; 4] = [
    RunStatus::Queued.as_str(),
    RunStatus::Running.as_str(),
    RunStatus::Succeeded.as_str(),
    RunStatus::Failed.as_str(),
];
const DELIVERY_STATUSES: [&str; 5] = [
    DeliveryStatus::Pending.as_str(),
    DeliveryStatus::Sending.as_str(),
    DeliveryStatus::Failed.as_str(),
    DeliveryStatus::Succeeded.as_str(),
    DeliveryStatus::Dead.as_str(),
];

fn render_work(out: &mut String, work: Option<&WorkStats>) {
    family(
        out,
        "timix_database_up",
        "gauge",
        "1 when the background work could be read from the database at this scrape.",
    );
    let _ = writeln!(out, "timix_database_up {}", u8::from(work.is_some()));
    let Some(work) = work else {
        return;
    };
    family(
        out,
        "timix_queue_depth",
        "gauge",
        "Work waiting: runs queued, deliveries pending, sending or awaiting a retry.",
    );
    let runs_waiting = work.runs.get(RunStatus::Queued.as_str());
    let deliveries_waiting = DeliveryStatus::WAITING
        .iter()
        .map(|s| work.deliveries.get(s.as_str()))
        .sum::<i64>();
    let _ = writeln!(out, "timix_queue_depth{{queue=\"runs\"}} {runs_waiting}");
    let _ = writeln!(
        out,
        "timix_queue_depth{{queue=\"deliveries\"}} {deliveries_waiting}"
    );
    family(
        out,
        "timix_queue_oldest_age_seconds",
        "gauge",
        "Age of the oldest waiting item of each queue (0 when none waits).",
    );
    let _ = writeln!(
        out,
        "timix_queue_oldest_age_seconds{{queue=\"runs\"}} {}",
        work.oldest_queued_run_seconds
    );
    let _ = writeln!(
        out,
        "timix_queue_oldest_age_seconds{{queue=\"deliveries\"}} {}",
        work.oldest_pending_delivery_seconds
    );
    by_status(
        out,
        "timix_runs",
        "Flow runs by status.",
        &RUN_STATUSES,
        &work.runs,
    );
    by_status(
        out,
        "timix_deliveries",
        "Webhook and REST hook deliveries by status (failed: awaiting a retry; dead: retries exhausted).",
        &DELIVERY_STATUSES,
        &work.deliveries,
    );
    family(
        out,
        "timix_poll_lag_seconds",
        "gauge",
        "Enabled poll flows: seconds since the last successful poll (the most lagging 500).",
    );
    for lag in &work.poll_lag {
        let _ = writeln!(
            out,
            "timix_poll_lag_seconds{{flow_id=\"{}\"}} {}",
            escape(&lag.flow_id),
            lag.seconds
        );
    }
}

fn by_status(out: &mut String, name: &str, help: &str, known: &[&str], counts: &health::ByStatus) {
    family(out, name, "gauge", help);
    let others = counts
        .0
        .iter()
        .map(|(s, _)| s.as_str())
        .filter(|s| !known.contains(s));
    for status in known.iter().copied().chain(others) {
        let _ = writeln!(
            out,
            "{name}{{status=\"{}\"}} {}",
            escape(status),
            counts.get(status)
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let metrics = Metrics::new(Some("t"));
        metrics.record("/a/{id}".into(), "GET", 200, 0.003);
        metrics.record("/a/{id}".into(), "GET", 200, 0.2);
        metrics.record("/a/{id}".into(), "GET", 404, 20.0);
        let mut out = String::new();
        render_requests(&mut out, &metrics);
        assert!(out.contains(
            "timix_http_requests_total{route=\"/a/{id}\",method=\"GET\",status=\"200\"} 2"
        ));
        assert!(out.contains("le=\"0.005\"} 1"));
        assert!(out.contains("le=\"0.25\"} 2"));
        assert!(out.contains("le=\"10\"} 2"));
        assert!(out.contains("le=\"+Inf\"} 3"));
    }

    #[test]
    fn only_the_configured_token_is_admitted() {
        let bearer = |t: &str| {
            let mut h = HeaderMap::new();
            h.insert(
                header::AUTHORIZATION,
                HeaderValue::from_str(&format!("Bearer {t}")).unwrap(),
            );
            h
        };
        let metrics = Metrics::new(Some("s3cret"));
        assert!(metrics.admits(&bearer("s3cret")));
        assert!(!metrics.admits(&bearer("other")));
        assert!(!metrics.admits(&HeaderMap::new()));
        assert!(!Metrics::new(None).admits(&bearer("")));
    }
}
