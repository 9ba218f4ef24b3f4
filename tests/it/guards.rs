//! Bad input at the door: oversized bodies and headers, clients that send too slowly, and the
//! per-organization caps on flows, webhooks and REST hooks. Each gets a clear error envelope
//! and leaves nothing half-written.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::harness::{BASE, Resp, Server, TestDb};

/// An inbound webhook flow's path (`/api/integration/v1/hooks/in/{token}`).
async fn inbound_path(server: &Server, key: &str) -> String {
    let flow = server
        .as_key(key)
        .post(
            "/flows",
            json!({"name": "in", "trigger": {"type": "webhook"},
                   "steps": [{"key": "a", "action": "create_customer", "input": {"name": "{{trigger.name}}"}}]}),
        )
        .await
        .expect(201);
    flow.body["trigger"]["webhookUrl"]
        .as_str()
        .expect("a webhook flow has its URL")
        .to_owned()
}

#[tokio::test]
async fn an_oversized_body_is_refused_with_413_on_every_route_inbound_webhooks_included() {
    let server = Server::start().await;
    let org = server.db.bootstrap("professional");
    let c = server.as_key(&org.key);
    let path = inbound_path(&server, &org.key).await;
    let big = json!({"name": "x".repeat(1024 * 1024 + 10)});
    for target in [path.as_str(), "/customers", "/hooks"] {
        let r = c.post(target, big.clone()).await;
        r.expect_error(413, "payload_too_large");
    }
    // Streamed without a Content-Length (chunked): cut at the limit all the same.
    let chunk = format!("8000\r\n{}\r\n", " ".repeat(0x8000));
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
         transfer-encoding: chunked\r\n\r\n{}",
        chunk.repeat(40)
    );
    let answer = raw_exchange(&server.address, &head, b"", Duration::ZERO).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(
        answer.contains("\"code\":\"payload_too_large\""),
        "{answer}"
    );
    // Nothing was started or created by the refused requests.
    let runs = c.get("/runs").await.expect(200);
    assert_eq!(runs.body["totalCount"], 0, "{}", runs.body);
    let customers = c.get("/customers").await.expect(200);
    assert_eq!(customers.body["totalCount"], 0);
}

#[tokio::test]
async fn headers_larger_than_32_kib_are_refused_with_431() {
    let server = Server::start().await;
    let org = server.db.bootstrap("professional");
    let c = server.as_key(&org.key);
    let r = c
        .send(
            c.request(reqwest::Method::GET, "/me")
                .header("x-padding-a", "a".repeat(20 * 1024))
                .header("x-padding-b", "b".repeat(20 * 1024)),
        )
        .await;
    r.expect_error(431, "headers_too_large");
    // Headers just under the limit are fine.
    c.send(
        c.request(reqwest::Method::GET, "/me")
            .header("x-padding", "a".repeat(30 * 1024)),
    )
    .await
    .expect(200);
}

/// Sends `head`, then `trickle` a byte every `every`, and reads until the server closes.
async fn raw_exchange(address: &str, head: &str, trickle: &[u8], every: Duration) -> String {
    let stream = TcpStream::connect(address).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let (head, trickle) = (head.as_bytes().to_vec(), trickle.to_vec());
    let writing = tokio::spawn(async move {
        // The server may stop reading (and close) before all is sent: that is its answer.
        if writer.write_all(&head).await.is_err() {
            return;
        }
        for byte in trickle {
            tokio::time::sleep(every).await;
            if writer.write_all(&[byte]).await.is_err() {
                break;
            }
        }
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(20), reader.read_to_end(&mut answer)).await;
    writing.abort();
    assert!(read.is_ok(), "the server never answered or closed");
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn a_body_that_trickles_in_slower_than_the_client_timeout_is_cut_with_408() {
    let server = Server::start_with(TestDb::new().await, &[("TIMIX_CLIENT_TIMEOUT", "1s")]).await;
    let org = server.db.bootstrap("professional");
    let body = br#"{"name": "Slow Ltd"}"#;
    let head = format!(
        "POST {BASE}/customers HTTP/1.1\r\nhost: x\r\nx-api-key: {}\r\nx-request-id: slow-1\r\n\
         content-type: application/json\r\ncontent-length: {}\r\n\r\n",
        org.key,
        body.len()
    );
    let started = Instant::now();
    // One byte every 200 ms: each arrives well within any idle timeout, the whole takes 4 s.
    let answer = raw_exchange(&server.address, &head, body, Duration::from_millis(200)).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("\"code\":\"request_timeout\""), "{answer}");
    assert!(answer.contains("\"requestId\":\"slow-1\""), "{answer}");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "cut at the timeout"
    );
    let customers = server.as_key(&org.key).get("/customers").await.expect(200);
    assert_eq!(customers.body["totalCount"], 0, "nothing half-written");
}

#[tokio::test]
async fn headers_that_trickle_in_slower_than_the_client_timeout_are_cut() {
    let server = Server::start_with(TestDb::new().await, &[("TIMIX_CLIENT_TIMEOUT", "1s")]).await;
    let started = Instant::now();
    let rest = b"x-one: 1\r\nx-two: 2\r\nx-three: 3\r\n\r\n";
    let answer = raw_exchange(
        &server.address,
        &format!("GET {BASE}/health HTTP/1.1\r\nhost: x\r\n"),
        rest,
        Duration::from_millis(300),
    )
    .await;
    // The connection is closed (hyper answers 408 or nothing) long before the headers end.
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    assert!(started.elapsed() < Duration::from_secs(8));
    // The server still serves others.
    server.anonymous().get("/health").await.expect(200);
}

fn flow_body(n: usize) -> Value {
    json!({"name": format!("flow {n}"), "trigger": {"type": "event", "event": "customer.created"},
           "steps": [{"key": "a", "action": "create_project",
                      "input": {"customerId": "{{trigger.id}}", "name": "P"}}]})
}

async fn count_of(server: &Server, key: &str, path: &str) -> usize {
    let r = server.as_key(key).get(path).await.expect(200);
    r.items().len()
}

#[track_caller]
fn expect_limit(r: Resp, setting: &str, cap: u32) {
    let r = r.expect_error(409, "limit_reached");
    let message = r.body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(setting), "{message}");
    assert!(message.contains(&format!("({cap},")), "{message}");
}

#[tokio::test]
async fn each_organization_cap_refuses_the_one_too_many_and_writes_nothing() {
    let server = Server::start_with(
        TestDb::new().await,
        &[
            ("TIMIX_MAX_FLOWS", "2"),
            ("TIMIX_MAX_WEBHOOKS", "1"),
            ("TIMIX_MAX_HOOKS", "2"),
            ("TIMIX_ALLOW_PRIVATE_TARGETS", "1"),
        ],
    )
    .await;
    let org = server.db.bootstrap("professional");
    let c = server.as_key(&org.key);

    for n in 0..2 {
        c.post("/flows", flow_body(n)).await.expect(201);
    }
    expect_limit(c.post("/flows", flow_body(2)).await, "TIMIX_MAX_FLOWS", 2);
    assert_eq!(count_of(&server, &org.key, "/flows").await, 2);
    // A deleted flow frees its place.
    let first = c.get("/flows").await.item_ids()[0].clone();
    c.delete(&format!("/flows/{first}")).await.expect(204);
    c.post("/flows", flow_body(3)).await.expect(201);

    let url = "http://127.0.0.1:9/hook";
    c.post("/webhooks", json!({"url": url})).await.expect(201);
    expect_limit(
        c.post("/webhooks", json!({"url": url})).await,
        "TIMIX_MAX_WEBHOOKS",
        1,
    );
    assert_eq!(count_of(&server, &org.key, "/webhooks").await, 1);

    for event in ["customer.created", "customer.updated"] {
        c.post("/hooks", json!({"targetUrl": url, "event": event}))
            .await
            .expect(201);
    }
    expect_limit(
        c.post(
            "/hooks",
            json!({"targetUrl": url, "event": "project.created"}),
        )
        .await,
        "TIMIX_MAX_HOOKS",
        2,
    );
    // Subscribing an existing hook again still answers it: nothing new is made.
    c.post(
        "/hooks",
        json!({"targetUrl": url, "event": "customer.created"}),
    )
    .await
    .expect(200);
    assert_eq!(count_of(&server, &org.key, "/hooks").await, 2);

    // Quotas are per organization: another one starts from zero.
    let other = server.db.bootstrap("professional");
    server
        .as_key(&other.key)
        .post("/flows", flow_body(9))
        .await
        .expect(201);
}
