//! A tiny HTTP receiver for outbound calls: records every request and answers from a script.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

#[derive(Clone, Debug)]
pub struct Received {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub at: Instant,
}

impl Received {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    pub fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

/// What to answer: a status and optional headers.
pub type Reply = (u16, Vec<(&'static str, String)>);

#[derive(Clone)]
pub struct Receiver {
    pub url: String,
    received: Arc<Mutex<Vec<Received>>>,
    script: Arc<Mutex<VecDeque<Reply>>>,
    default: Arc<Mutex<u16>>,
    delay: Arc<Mutex<Duration>>,
    /// Requests being answered now, and the most there ever were at once.
    in_flight: Arc<Mutex<(usize, usize)>>,
}

impl Receiver {
    pub async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let receiver = Receiver {
            url: format!("http://127.0.0.1:{port}/hook"),
            received: Arc::default(),
            script: Arc::default(),
            default: Arc::new(Mutex::new(200)),
            delay: Arc::default(),
            in_flight: Arc::default(),
        };
        let state = receiver.clone();
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move { state.answer(headers, body).await }
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver
    }

    async fn answer(&self, headers: HeaderMap, body: Bytes) -> Response {
        {
            let mut in_flight = self.in_flight.lock().unwrap();
            in_flight.0 += 1;
            in_flight.1 = in_flight.1.max(in_flight.0);
        }
        let delay = *self.delay.lock().unwrap();
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        self.in_flight.lock().unwrap().0 -= 1;
        self.received.lock().unwrap().push(Received {
            headers,
            body,
            at: Instant::now(),
        });
        let (status, extra) = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| (*self.default.lock().unwrap(), Vec::new()));
        let mut response = (StatusCode::from_u16(status).unwrap(), "ok").into_response();
        for (name, value) in extra {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        response
    }

    /// The next answers, in order; then the default.
    pub fn script(&self, replies: Vec<Reply>) {
        self.script.lock().unwrap().extend(replies);
    }

    pub fn answer_always(&self, status: u16) {
        *self.default.lock().unwrap() = status;
    }

    pub fn slow(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    /// The most requests it was answering at the same time.
    pub fn max_in_flight(&self) -> usize {
        self.in_flight.lock().unwrap().1
    }

    pub fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests came in (at most `seconds`).
    pub async fn wait_for(&self, n: usize, seconds: u64) -> Vec<Received> {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        loop {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            assert!(
                Instant::now() < deadline,
                "only {} of {n} requests arrived in {seconds}s",
                got.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
