//! The event log: written with every change, in order, read with `after`.

use serde_json::json;

use crate::harness::Server;

#[tokio::test]
async fn every_change_appends_one_event_in_order() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let start = c.get("/events").await.expect(200).body["nextAfter"]
        .as_i64()
        .unwrap();
    let customer = c.customer("Acme").await;
    c.patch(
        &format!("/customers/{customer}"),
        json!({"name": "Acme Corp", "notes": "vip"}),
    )
    .await
    .expect(200);
    // A PATCH that changes nothing logs nothing.
    c.patch(
        &format!("/customers/{customer}"),
        json!({"name": "Acme Corp"}),
    )
    .await
    .expect(200);
    let project = c.project(&customer, "Site").await;
    let task = c.task(&project, "Build").await;
    let subtask = c.subtask(&task, "Part").await;
    c.delete(&format!("/subtasks/{subtask}")).await.expect(204);
    // Refused writes log nothing.
    c.post("/projects", json!({"customerId": "cus_nope", "name": "x"}))
        .await
        .expect(422);
    c.delete(&format!("/customers/{customer}"))
        .await
        .expect(409);

    let page = c.get(&format!("/events?after={start}")).await.expect(200);
    let items = page.items();
    let types: Vec<&str> = items.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(
        types,
        vec![
            "customer.created",
            "customer.updated",
            "project.created",
            "task.created",
            "subtask.created",
            "subtask.deleted"
        ]
    );
    let seqs: Vec<i64> = items.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(page.body["nextAfter"], *seqs.last().unwrap());
    assert_eq!(page.body["hasMore"], false);

    let update = &items[1];
    assert!(update["id"].as_str().unwrap().starts_with("evt_"));
    assert_eq!(update["resourceId"], customer);
    assert_eq!(update["organizationId"], org.id);
    assert_eq!(update["changedFields"], json!(["name", "notes"]));
    assert_eq!(update["previous"], json!({"name": "Acme", "notes": null}));
    assert_eq!(
        update["data"]["name"], "Acme Corp",
        "data is the full resource after the change"
    );
    assert_eq!(update["data"]["id"], customer);
    assert_eq!(items[5]["data"]["id"], subtask);
    assert!(items[0].get("changedFields").is_none());

    // Reading on, filtering by type, and limiting.
    let last = page.body["nextAfter"].as_i64().unwrap();
    let empty = c.get(&format!("/events?after={last}")).await.expect(200);
    assert!(empty.items().is_empty());
    assert_eq!(empty.body["nextAfter"], last);
    let only = c
        .get(&format!(
            "/events?after={start}&types=project.created,task.created"
        ))
        .await
        .expect(200);
    assert_eq!(only.items().len(), 2);
    let limited = c
        .get(&format!("/events?after={start}&limit=2"))
        .await
        .expect(200);
    assert_eq!(limited.items().len(), 2);
    assert_eq!(limited.body["hasMore"], true);
    let rest = c
        .get(&format!(
            "/events?after={}&limit=1000",
            limited.body["nextAfter"]
        ))
        .await
        .expect(200);
    assert_eq!(rest.items().len(), 4);
}

#[tokio::test]
async fn concurrent_writes_get_distinct_increasing_seqs() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let start = c.get("/events").await.body["nextAfter"].as_i64().unwrap();
    let mut handles = Vec::new();
    for i in 0..40 {
        let c = c.clone();
        handles.push(tokio::spawn(async move {
            c.post("/customers", json!({"name": format!("C{i}")}))
                .await
                .status
        }));
    }
    for h in handles {
        assert_eq!(h.await.unwrap(), 201);
    }
    let page = c
        .get(&format!("/events?after={start}&limit=1000"))
        .await
        .expect(200);
    let items = page.items();
    assert_eq!(items.len(), 40, "one event per acknowledged write");
    let mut resources: Vec<&str> = items
        .iter()
        .map(|e| e["resourceId"].as_str().unwrap())
        .collect();
    resources.sort();
    resources.dedup();
    assert_eq!(resources.len(), 40);
    let seqs: Vec<i64> = items.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]));
}
