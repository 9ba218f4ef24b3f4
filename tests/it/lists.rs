//! Lists: envelope, pages, cursors, sort, sync by updatedSince with tombstones, search filters.

use serde_json::json;

use crate::harness::Server;

#[tokio::test]
async fn pages_carry_the_envelope_and_total_count_newest_first() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let mut ids = Vec::new();
    for i in 0..7 {
        ids.push(c.customer(&format!("Customer {i}")).await);
    }
    let first = c.get("/customers?pageSize=3").await.expect(200);
    assert_eq!(first.header("x-total-count"), Some("7"));
    assert_eq!(first.body["totalCount"], 7);
    assert_eq!(first.body["page"], 1);
    assert_eq!(first.body["pageSize"], 3);
    assert_eq!(first.body["hasMore"], true);
    let newest_first: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(first.item_ids(), newest_first[..3]);
    let third = c.get("/customers?pageSize=3&page=3").await.expect(200);
    assert_eq!(third.item_ids(), newest_first[6..]);
    assert_eq!(third.body["hasMore"], false);
    let beyond = c.get("/customers?pageSize=3&page=9").await.expect(200);
    assert!(beyond.items().is_empty());
    assert_eq!(c.get("/customers").await.body["pageSize"], 50);
    // A search that finds nothing is an empty list, not a 404.
    let none = c.get("/customers?name=Nobody").await.expect(200);
    assert_eq!(none.body["totalCount"], 0);
    assert!(none.items().is_empty());
}

#[tokio::test]
async fn cursors_walk_the_list_without_skips_or_repeats_under_concurrent_inserts() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let mut ids = Vec::new();
    for i in 0..9 {
        ids.push(c.customer(&format!("N{i}")).await);
    }
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = c
            .get(&format!("/customers?pageSize=4&cursor={cursor}"))
            .await
            .expect(200);
        assert_eq!(page.body["page"], serde_json::Value::Null);
        seen.extend(page.item_ids());
        // Someone inserts while we page: newest-first pages must not shift.
        c.customer("Inserted meanwhile").await;
        match page.body["nextCursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    let expected: Vec<String> = ids.iter().rev().cloned().collect();
    assert_eq!(seen, expected);
    // A cursor is bound to its sort.
    let page = c.get("/customers?pageSize=2&sort=name").await.expect(200);
    let next = page.body["nextCursor"].as_str().unwrap();
    c.get(&format!("/customers?pageSize=2&cursor={next}"))
        .await
        .expect_error(400, "invalid_parameter");
    c.get(&format!("/customers?pageSize=2&sort=name&cursor={next}"))
        .await
        .expect(200);
}

#[tokio::test]
async fn sort_accepts_several_fields_with_id_as_the_tie_breaker() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    for name in ["b", "a", "c", "a"] {
        c.customer(name).await;
    }
    let names = |r: &crate::harness::Resp| -> Vec<String> {
        r.items()
            .iter()
            .map(|i| i["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let asc = c.get("/customers?sort=name").await.expect(200);
    assert_eq!(names(&asc), vec!["a", "a", "b", "c"]);
    let desc = c.get("/customers?sort=-name,createdAt").await.expect(200);
    assert_eq!(names(&desc), vec!["c", "b", "a", "a"]);
    let ids = desc.item_ids();
    assert!(ids[2] < ids[3], "equal names: oldest first by createdAt");
    // Walking name order by cursor, one at a time, gives the same order.
    let mut walked = Vec::new();
    let mut cursor = String::new();
    loop {
        let page = c
            .get(&format!(
                "/customers?sort=-name,createdAt&pageSize=1&cursor={cursor}"
            ))
            .await
            .expect(200);
        walked.extend(page.item_ids());
        match page.body["nextCursor"].as_str() {
            Some(n) => cursor = n.to_owned(),
            None => break,
        }
    }
    assert_eq!(walked, ids);
}

#[tokio::test]
async fn sync_by_updated_since_returns_changes_oldest_first_with_tombstones() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let a = c.customer("A").await;
    let b = c.customer("B").await;
    let all = c
        .get("/customers?updatedSince=2000-01-01")
        .await
        .expect(200);
    assert_eq!(
        all.item_ids(),
        vec![a.clone(), b.clone()],
        "oldest change first"
    );
    let watermark = all.header("x-sync-watermark").unwrap().to_owned();
    assert!(chrono_like(&watermark), "{watermark}");

    c.patch(&format!("/customers/{a}"), json!({"notes": "changed"}))
        .await
        .expect(200);
    c.delete(&format!("/customers/{b}")).await.expect(204);
    let changes = c
        .get(&format!(
            "/customers?updatedSince={}&includeDeleted=true",
            urlencode(&watermark)
        ))
        .await
        .expect(200);
    let items = changes.items();
    let tomb = items
        .iter()
        .find(|i| i["id"] == b.as_str())
        .expect("the deleted one is reported");
    assert_eq!(tomb["isDeleted"], true);
    assert!(tomb["deletedAt"].is_string() && tomb["updatedAt"].is_string());
    assert!(
        tomb.get("name").is_none(),
        "a tombstone carries only its id and times"
    );
    let changed = items
        .iter()
        .find(|i| i["id"] == a.as_str())
        .expect("the changed one is reported");
    assert_eq!(changed["notes"], "changed");
    // Without includeDeleted the tombstone is not there.
    let live = c
        .get(&format!(
            "/customers?updatedSince={}",
            urlencode(&watermark)
        ))
        .await
        .expect(200);
    assert!(!live.item_ids().contains(&b));
    // Too old for the tombstone window: a full sync is needed.
    c.get("/customers?updatedSince=2000-01-01&includeDeleted=true")
        .await
        .expect_error(410, "sync_window_expired");
    c.get("/customers?updatedSince=2026-01-01&sort=name")
        .await
        .expect_error(400, "invalid_parameter");
    // createdSince is inclusive.
    let created_at = c.get(&format!("/customers/{a}")).await.body["createdAt"]
        .as_str()
        .unwrap()
        .to_owned();
    let since = c
        .get(&format!(
            "/customers?createdSince={}",
            urlencode(&created_at)
        ))
        .await
        .expect(200);
    assert!(since.item_ids().contains(&a));
}

#[tokio::test]
async fn search_filters_match_names_fields_and_parents() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let acme = c
        .post(
            "/customers",
            json!({"name": "Acme Rockets", "email": "hi@acme.example"}),
        )
        .await
        .expect(201)
        .id();
    let globex = c.customer("Globex 100%_off").await;
    c.patch(&format!("/customers/{globex}"), json!({"isArchived": true}))
        .await
        .expect(200);
    let ids = |path: &str| {
        let c = c.clone();
        let path = path.to_owned();
        async move { c.get(&path).await.expect(200).item_ids() }
    };
    assert_eq!(ids("/customers?q=rOCK").await, vec![acme.clone()]);
    assert_eq!(
        ids("/customers?q=100%25_").await,
        vec![globex.clone()],
        "% and _ are literal"
    );
    assert_eq!(ids("/customers?q=%25").await, vec![globex.clone()]);
    assert_eq!(
        ids("/customers?name=Acme%20Rockets").await,
        vec![acme.clone()]
    );
    assert_eq!(
        ids("/customers?email=HI@acme.example").await,
        vec![acme.clone()]
    );
    assert_eq!(
        ids("/customers?isArchived=true").await,
        vec![globex.clone()]
    );
    assert_eq!(ids("/customers?isArchived=false").await, vec![acme.clone()]);

    let p1 = c.project(&acme, "Rocket").await;
    let p2 = c.project(&acme, "Fuel").await;
    let t1 = c.task(&p1, "Design").await;
    let t2 = c.task(&p2, "Design").await;
    let s1 = c.subtask(&t1, "Nose").await;
    assert_eq!(
        ids(&format!("/projects?customerId={acme}&sort=name")).await,
        vec![p2.clone(), p1.clone()]
    );
    assert_eq!(
        ids(&format!("/tasks?projectId={p1}")).await,
        vec![t1.clone()]
    );
    assert_eq!(ids("/tasks?name=Design").await.len(), 2);
    assert_eq!(
        ids(&format!("/subtasks?taskId={t1}")).await,
        vec![s1.clone()]
    );
    assert_eq!(ids(&format!("/subtasks?projectId={p1}")).await, vec![s1]);
    assert!(ids(&format!("/subtasks?taskId={t2}")).await.is_empty());
    c.patch(
        &format!("/tasks/{t2}"),
        json!({"assigneeId": org.owner_id, "status": "done"}),
    )
    .await
    .expect(200);
    assert_eq!(
        ids(&format!("/tasks?userId={}", org.owner_id)).await,
        vec![t2.clone()]
    );
    assert_eq!(ids("/tasks?status=done").await, vec![t2]);
}

fn chrono_like(s: &str) -> bool {
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}
