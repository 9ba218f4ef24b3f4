//! The bare baseline of the peers' workload: `POST /hook` forwards its body to a receiver and
//! answers once the receiver has answered. Nothing is stored; this is what the workload costs
//! in axum and reqwest alone.
//!
//! ```sh
//! target/release/forwarder http://127.0.0.1:PORT/hook   # prints "listening on ADDRESS"
//! ```

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;

#[derive(Clone)]
struct Target {
    http: reqwest::Client,
    url: String,
}

async fn forward(State(target): State<Target>, body: Bytes) -> StatusCode {
    let sent = target
        .http
        .post(&target.url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body)
        .send()
        .await;
    match sent {
        Ok(answer) if answer.status().is_success() => match answer.bytes().await {
            Ok(_) => StatusCode::OK,
            Err(_) => StatusCode::BAD_GATEWAY,
        },
        _ => StatusCode::BAD_GATEWAY,
    }
}

fn app(url: String) -> axum::Router {
    axum::Router::new()
        .route("/hook", post(forward))
        .with_state(Target {
            http: reqwest::Client::new(),
            url,
        })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    timix_connectors::outbound::install_crypto_provider();
    let url = std::env::args()
        .nth(1)
        .ok_or_else(|| anyhow::anyhow!("usage: forwarder RECEIVER_URL"))?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    println!("listening on {}", listener.local_addr()?);
    axum::serve(listener, app(url)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use timix_bench::receiver;

    use super::*;

    #[tokio::test]
    async fn answers_after_the_receiver_got_the_body() {
        timix_connectors::outbound::install_crypto_provider();
        let (target, arrivals) = receiver().await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app(target)).await });
        let answer = reqwest::Client::new()
            .post(format!("http://{address}/hook"))
            .json(&json!({"n": 7}))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::OK);
        assert!(arrivals.lock().unwrap().contains_key(&7));
    }

    #[tokio::test]
    async fn a_receiver_that_is_down_is_a_bad_gateway() {
        timix_connectors::outbound::install_crypto_provider();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let down = format!("http://{}/hook", closed.local_addr().unwrap());
        drop(closed);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app(down)).await });
        let answer = reqwest::Client::new()
            .post(format!("http://{address}/hook"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), reqwest::StatusCode::BAD_GATEWAY);
    }
}
