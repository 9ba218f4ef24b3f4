//! Rate limits, conditional requests, idempotency keys and usage.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::harness::{Resp, Server, TestDb, backend};

fn header_u64(r: &Resp, name: &str) -> u64 {
    r.header(name)
        .unwrap_or_else(|| panic!("missing {name}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn the_301st_request_of_a_minute_is_refused_and_the_headers_count_down() {
    let server = Server::start().await;
    let org = server.db.bootstrap("professional");
    let c = server.as_key(&org.key);
    let started = Instant::now();
    let mut remaining = Vec::new();
    let refused = loop {
        let r = c.get("/me").await;
        if r.status == 429 {
            break r;
        }
        let r = r.expect(200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("300"));
        assert_eq!(r.header("ratelimit-policy"), Some("\"key\";q=300;w=60"));
        let left = header_u64(&r, "x-ratelimit-remaining");
        let rl = r.header("ratelimit").unwrap();
        assert!(rl.starts_with(&format!("\"key\";r={left};t=")), "{rl}");
        let reset = header_u64(&r, "x-ratelimit-reset");
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            reset >= now && reset <= now + 61,
            "reset {reset} is within the minute"
        );
        remaining.push(left);
        assert!(remaining.len() < 400, "never refused");
    };
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(remaining[0], 299, "the first answer leaves 299");
    // Tokens come back at one per 200 ms, so the count may exceed 300 by what the run took.
    let allowed = remaining.len() as f64;
    assert!(allowed >= 300.0, "{allowed} allowed");
    assert!(
        allowed <= 300.0 + (elapsed / 0.2).ceil() + 1.0,
        "{allowed} allowed in {elapsed:.2}s"
    );
    for pair in remaining.windows(2) {
        assert!(pair[1] <= pair[0] + 1, "remaining counts down: {pair:?}");
    }
    let refused = refused.expect_error(429, "rate_limited");
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    assert!(header_u64(&refused, "retry-after") >= 1);
    // The budget is per key: another key of the organization is untouched.
    let other = server.db.key_for(&org.owner_id, &[]);
    let r = server.as_key(&other).get("/me").await.expect(200);
    assert_eq!(r.header("x-ratelimit-remaining"), Some("299"));
    // Unauthenticated answers carry no rate-limit headers.
    assert!(
        server
            .anonymous()
            .get("/me")
            .await
            .header("x-ratelimit-limit")
            .is_none()
    );
}

#[tokio::test]
async fn limits_follow_the_plan_and_a_change_applies_at_once() {
    let server = Server::start().await;
    let org = server.db.bootstrap("free");
    let c = server.as_key(&org.key);
    let r = c.get("/customers").await.expect(200);
    assert_eq!(r.header("x-ratelimit-limit"), Some("120"));
    // Errors carry the headers too.
    let r = c
        .get("/customers/cus_nope")
        .await
        .expect_error(404, "not_found");
    assert_eq!(r.header("x-ratelimit-limit"), Some("120"));
    server
        .db
        .cli(&["org", "update", &org.id, "--plan", "business"]);
    let r = c.get("/customers").await.expect(200);
    assert_eq!(r.header("x-ratelimit-limit"), Some("1000"));
    assert_eq!(c.get("/me").await.body["rateLimit"]["limit"], 1000);
}

#[tokio::test]
async fn conditional_gets_answer_304_without_spending_the_budget() {
    let server = Server::start().await;
    let org = server.db.bootstrap("free");
    let c = server.as_key(&org.key);
    let id = c.customer("Tagged").await;
    let path = format!("/customers/{id}");
    let first = c.get(&path).await.expect(200);
    let tag = first.header("etag").unwrap().to_owned();
    let conditional = |tag: String| {
        let c = c.clone();
        let path = path.clone();
        async move {
            c.send(
                c.request(reqwest::Method::GET, &path)
                    .header("If-None-Match", tag),
            )
            .await
        }
    };
    let before = header_u64(&c.get(&path).await, "x-ratelimit-remaining");
    let not_modified = conditional(tag.clone()).await;
    assert_eq!(not_modified.status, 304);
    assert_eq!(not_modified.body, serde_json::Value::Null);
    assert_eq!(not_modified.header("etag"), Some(tag.as_str()));
    let after = header_u64(&not_modified, "x-ratelimit-remaining");
    assert!(after >= before, "a 304 is free: {before} then {after}");
    // List pages have tags too.
    let list = c.get("/customers").await.expect(200);
    let list_tag = list.header("etag").unwrap().to_owned();
    let r = c
        .send(
            c.request(reqwest::Method::GET, "/customers")
                .header("If-None-Match", &list_tag),
        )
        .await;
    assert_eq!(r.status, 304);
    // A change gives a new tag.
    c.patch(&path, json!({"notes": "changed"}))
        .await
        .expect(200);
    let changed = conditional(tag.clone()).await.expect(200);
    assert_ne!(changed.header("etag"), Some(tag.as_str()));
    // With the budget spent, an unconditional GET is refused but a conditional one still answers.
    let fresh_tag = changed.header("etag").unwrap().to_owned();
    while c.get(&path).await.status != 429 {}
    c.get(&path).await.expect_error(429, "rate_limited");
    assert_eq!(conditional(fresh_tag).await.status, 304);
}

#[tokio::test]
async fn if_match_refuses_a_patch_of_a_changed_resource() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let created = c
        .post("/customers", json!({"name": "Versioned"}))
        .await
        .expect(201);
    let tag = created.header("etag").unwrap().to_owned();
    let path = format!("/customers/{}", created.id());
    assert_eq!(
        c.get(&path).await.header("etag"),
        Some(tag.as_str()),
        "the POST's tag is the GET's"
    );
    let patch = |tag: String, name: &'static str| {
        let c = c.clone();
        let path = path.clone();
        async move {
            c.send(
                c.request(reqwest::Method::PATCH, &path)
                    .header("If-Match", tag)
                    .json(&json!({"name": name})),
            )
            .await
        }
    };
    let ok = patch(tag.clone(), "First").await.expect(200);
    patch(tag.clone(), "Second")
        .await
        .expect_error(412, "precondition_failed");
    assert_eq!(c.get(&path).await.body["name"], "First");
    patch(ok.header("etag").unwrap().to_owned(), "Second")
        .await
        .expect(200);
    let org_tag = c
        .get("/organization")
        .await
        .header("etag")
        .unwrap()
        .to_owned();
    c.patch("/organization", json!({"name": "Renamed"}))
        .await
        .expect(200);
    let r = c
        .send(
            c.request(reqwest::Method::PATCH, "/organization")
                .header("If-Match", org_tag)
                .json(&json!({"name": "Again"})),
        )
        .await;
    r.expect_error(412, "precondition_failed");
}

#[tokio::test]
async fn idempotency_keys_replay_refuse_reuse_and_free_failed_attempts() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let post = |key: &'static str, body: serde_json::Value| {
        let c = c.clone();
        async move {
            c.send(
                c.request(reqwest::Method::POST, "/customers")
                    .header("Idempotency-Key", key)
                    .json(&body),
            )
            .await
        }
    };
    let first = post("k-1", json!({"name": "Once"})).await.expect(201);
    assert!(first.header("idempotent-replayed").is_none());
    let again = post("k-1", json!({"name": "Once"})).await.expect(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.body, first.body);
    assert_eq!(again.header("location"), first.header("location"));
    assert_eq!(c.get("/customers?name=Once").await.body["totalCount"], 1);
    post("k-1", json!({"name": "Other"}))
        .await
        .expect_error(422, "idempotency_key_reused");
    // A refused request does not hold its key.
    post("k-2", json!({"email": "no-name@example.com"}))
        .await
        .expect(422);
    post("k-2", json!({"name": "Fixed"})).await.expect(201);
    // PATCH too.
    let path = format!("/customers/{}", first.id());
    let patch = || {
        let c = c.clone();
        let path = path.clone();
        async move {
            c.send(
                c.request(reqwest::Method::PATCH, &path)
                    .header("Idempotency-Key", "p-1")
                    .json(&json!({"notes": "n"})),
            )
            .await
        }
    };
    let p1 = patch().await.expect(200);
    let p2 = patch().await.expect(200);
    assert_eq!(p2.header("idempotent-replayed"), Some("true"));
    assert_eq!(p1.body, p2.body);
    let updates = c.get("/events?types=customer.updated").await.expect(200);
    assert_eq!(updates.items().len(), 1, "the replay changed nothing");
    // A key creation replayed does not show the key again.
    let k1 = c
        .send(
            c.request(reqwest::Method::POST, "/api-keys")
                .header("Idempotency-Key", "key-1")
                .json(&json!({"name": "z"})),
        )
        .await
        .expect(201);
    assert!(k1.body["key"].is_string());
    let k2 = c
        .send(
            c.request(reqwest::Method::POST, "/api-keys")
                .header("Idempotency-Key", "key-1")
                .json(&json!({"name": "z"})),
        )
        .await
        .expect(201);
    assert_eq!(k2.body["id"], k1.body["id"]);
    assert!(k2.body.get("key").is_none());
}

#[tokio::test]
async fn concurrent_requests_with_one_key_create_one_record() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            c.send(
                c.request(reqwest::Method::POST, "/customers")
                    .header("Idempotency-Key", "race")
                    .json(&json!({"name": "Raced"})),
            )
            .await
        }));
    }
    let mut fresh = 0;
    for t in tasks {
        let r = t.await.unwrap();
        match (r.status, r.header("idempotent-replayed")) {
            (201, None) => fresh += 1,
            (201, Some("true")) => {}
            (409, _) => assert_eq!(r.body["error"]["code"], "idempotency_key_in_use"),
            other => panic!("unexpected {other:?}: {}", r.body),
        }
    }
    assert_eq!(fresh, 1, "exactly one request ran");
    assert_eq!(c.get("/customers?name=Raced").await.body["totalCount"], 1);
}

#[tokio::test]
async fn idempotency_keys_are_purged_after_their_retention() {
    let server = Server::start_with(
        TestDb::new().await,
        &[("TIMIX_IDEMPOTENCY_RETENTION", "1s")],
    )
    .await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let post = |name: &'static str| {
        let c = c.clone();
        async move {
            c.send(
                c.request(reqwest::Method::POST, "/customers")
                    .header("Idempotency-Key", "short")
                    .json(&json!({"name": name})),
            )
            .await
        }
    };
    post("First").await.expect(201);
    post("Second")
        .await
        .expect_error(422, "idempotency_key_reused");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let r = post("Second").await;
        if r.status == 201 {
            break;
        }
        assert_eq!(r.status, 422);
        assert!(Instant::now() < deadline, "the key was never purged");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn usage_reports_this_keys_and_the_organizations_requests() {
    let server = Server::start().await;
    let org = server.db.bootstrap("professional");
    let c = server.as_key(&org.key);
    let other = server.as_key(&server.db.key_for(&org.owner_id, &[]));
    for _ in 0..5 {
        c.get("/customers").await.expect(200);
    }
    for _ in 0..3 {
        other.get("/customers").await.expect(200);
    }
    let usage = c.get("/usage").await.expect(200);
    let body = &usage.body;
    assert!(body["key"]["today"].as_i64().unwrap() >= 5, "{body}");
    assert!(
        body["organization"]["today"].as_i64().unwrap() >= 8,
        "{body}"
    );
    assert!(body["organization"]["last7Days"].as_i64() >= body["key"]["last7Days"].as_i64());
    assert_eq!(body["daily"].as_array().unwrap().len(), 90);
    assert_eq!(body["rateLimit"]["limit"], 300);
    // Six requests taken; tokens return at one per 200 ms.
    assert!(
        body["rateLimit"]["remaining"].as_i64().unwrap() < 300,
        "{body}"
    );
    assert!(
        body["forecast"]["organizationProjected"].as_i64()
            >= body["forecast"]["organizationSoFar"].as_i64()
    );
}

#[tokio::test]
async fn two_processes_on_one_postgres_share_a_keys_budget() {
    if backend() != "postgres" {
        eprintln!(
            "SKIPPED on SQLite: one process per database file; this runs in the Postgres pass"
        );
        return;
    }
    let db = TestDb::new().await;
    let shared = TestDb {
        dir: db.dir.clone(),
        url: db.url.clone(),
    };
    let a = Server::start_with(db, &[]).await;
    let b = Server::start_with(shared, &[]).await;
    let org = a.db.bootstrap("free");
    let (ca, cb) = (a.as_key(&org.key), b.as_key(&org.key));
    let started = Instant::now();
    let mut allowed = 0;
    let mut refused_in_a_row = 0;
    for i in 0..400 {
        let r = if i % 2 == 0 {
            ca.get("/me").await
        } else {
            cb.get("/me").await
        };
        if r.status == 200 {
            allowed += 1;
            refused_in_a_row = 0;
        } else {
            assert_eq!(r.status, 429);
            refused_in_a_row += 1;
            if refused_in_a_row == 10 {
                break;
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // 120 a minute: one back every 500 ms. Leased but unspent slices (6 per process) may end
    // the run a little early; the budget is never doubled.
    assert!(
        allowed as f64 <= 120.0 + (elapsed / 0.5).ceil() + 1.0,
        "{allowed} allowed in {elapsed:.2}s"
    );
    assert!(allowed >= 120 - 12, "{allowed} allowed");
}

#[tokio::test]
async fn an_operator_limit_replaces_the_plans_for_every_key() {
    let server = Server::start_with(TestDb::new().await, &[("TIMIX_KEY_RATE_LIMIT", "5")]).await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let me = c.get("/me").await.expect(200);
    assert_eq!(me.body["rateLimit"]["limit"], 5);
    assert_eq!(me.header("x-ratelimit-limit"), Some("5"));
    for _ in 0..4 {
        c.get("/me").await.expect(200);
    }
    c.get("/me").await.expect_error(429, "rate_limited");
}

#[tokio::test]
async fn usage_is_reported_from_saved_counts_too() {
    let server = Server::start().await;
    let org = server.db.bootstrap("professional");
    let c = server.as_key(&org.key);
    for _ in 0..3 {
        c.get("/customers").await.expect(200);
    }
    // Counts are saved every few seconds; then they are summed by the database (on Postgres a
    // SUM of integers is NUMERIC, which must be read as an integer all the same).
    let deadline = Instant::now() + Duration::from_secs(20);
    while crate::harness::query_texts(&server.db, "SELECT api_key_id FROM api_usage_daily")
        .await
        .is_empty()
    {
        assert!(Instant::now() < deadline, "request counts were never saved");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let usage = c.get("/usage").await.expect(200);
    assert!(
        usage.body["key"]["today"].as_i64().unwrap() >= 3,
        "{}",
        usage.body
    );
}
