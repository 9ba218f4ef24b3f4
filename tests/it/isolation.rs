//! Another organization's records are invisible: 404 through every endpoint, absent from lists.

use serde_json::json;

use crate::harness::Server;

#[tokio::test]
async fn another_organizations_records_are_invisible_everywhere() {
    let server = Server::start().await;
    let mine = server.db.bootstrap("business");
    let theirs = server.db.bootstrap("business");
    let me = server.as_key(&mine.key);
    let them = server.as_key(&theirs.key);

    let customer = them
        .post(
            "/customers",
            json!({"name": "Secret", "externalId": "shared-ext"}),
        )
        .await
        .expect(201)
        .id();
    let project = them.project(&customer, "Secret project").await;
    let task = them.task(&project, "Secret task").await;
    let subtask = them.subtask(&task, "Secret subtask").await;
    let (user, _) = them.user_with_key(&server.db, "member").await;
    let key = them
        .post("/api-keys", json!({"name": "theirs"}))
        .await
        .expect(201)
        .id();
    let entry = them
        .post(
            "/time-entries",
            json!({"subtaskId": subtask, "date": "2026-11-02", "durationSeconds": 3600}),
        )
        .await
        .expect(201);
    let timesheet = entry.body["timesheetId"].as_str().unwrap().to_owned();
    let entry = entry.id();
    let invoice = them
        .post(
            "/invoices",
            json!({"customerId": customer, "lines": [{"description": "x", "unitPrice": "1.00"}]}),
        )
        .await
        .expect(201)
        .id();
    let profile = them
        .post("/holiday-profiles", json!({"name": "Theirs"}))
        .await
        .expect(201)
        .id();

    for (collection, id) in [
        ("customers", &customer),
        ("projects", &project),
        ("tasks", &task),
        ("subtasks", &subtask),
        ("org-users", &user),
        ("api-keys", &key),
        ("time-entries", &entry),
        ("invoices", &invoice),
        ("holiday-profiles", &profile),
    ] {
        let path = format!("/{collection}/{id}");
        me.get(&path).await.expect_error(404, "not_found");
        if collection != "api-keys" {
            let body = if matches!(collection, "time-entries" | "invoices") {
                json!({"notes": "Mine now"})
            } else {
                json!({"name": "Mine now"})
            };
            me.patch(&path, body).await.expect_error(404, "not_found");
        }
        me.delete(&path).await.expect_error(404, "not_found");
        let list = me.get(&format!("/{collection}")).await.expect(200);
        assert!(!list.item_ids().contains(id), "{collection} list leaks");
    }
    me.get(&format!("/timesheets/{timesheet}"))
        .await
        .expect_error(404, "not_found");
    assert!(me.get("/timesheets").await.expect(200).items().is_empty());
    for action in [
        format!("/time-entries/{entry}/stop"),
        format!("/timesheets/{timesheet}/submit"),
        format!("/timesheets/{timesheet}/approve"),
        format!("/timesheets/{timesheet}/reject"),
        format!("/invoices/{invoice}/issue"),
        format!("/invoices/{invoice}/void"),
    ] {
        me.post(&action, json!({}))
            .await
            .expect_error(404, "not_found");
    }
    me.post(
        &format!("/invoices/{invoice}/payments"),
        json!({"amount": "1.00"}),
    )
    .await
    .expect_error(404, "not_found");
    me.get(&format!("/invoices/{invoice}/pdf"))
        .await
        .expect_error(404, "not_found");
    me.post(
        "/time-entries",
        json!({"subtaskId": subtask, "date": "2026-11-02", "durationSeconds": 60}),
    )
    .await
    .expect_error(422, "validation_failed");
    me.post(
        "/invoices",
        json!({"customerId": customer, "lines": [{"description": "x", "unitPrice": "1.00"}]}),
    )
    .await
    .expect_error(422, "validation_failed");
    let revenue = me.get("/financial-reports/revenue").await.expect(200);
    assert_eq!(revenue.body["items"], json!([]));
    let budgets = me
        .get("/financial-reports/customer-billing")
        .await
        .expect(200);
    assert_eq!(budgets.body["totals"], json!([]));
    // Filters by their ids find nothing; parents of theirs cannot be used.
    assert!(
        me.get(&format!("/projects?customerId={customer}"))
            .await
            .items()
            .is_empty()
    );
    let r = me
        .post("/projects", json!({"customerId": customer, "name": "x"}))
        .await
        .expect(422);
    assert_eq!(r.body["error"]["details"][0]["code"], "not_found");
    me.post("/tasks", json!({"projectId": project, "name": "x"}))
        .await
        .expect(422);
    me.post("/subtasks", json!({"taskId": task, "name": "x"}))
        .await
        .expect(422);
    let mine_customer = me.customer("Mine").await;
    let mine_project = me.project(&mine_customer, "Mine").await;
    me.post(
        "/tasks",
        json!({"projectId": mine_project, "name": "x", "assigneeId": user}),
    )
    .await
    .expect(422);
    // External ids are per organization: the same one makes a new record here.
    let own = me
        .put(
            "/customers/by-external-id/shared-ext",
            json!({"name": "Mine too"}),
        )
        .await
        .expect(201);
    assert_ne!(own.id(), customer);
    assert_eq!(
        them.get(&format!("/customers/{customer}")).await.body["name"],
        "Secret"
    );
    // Their events are not in my log.
    let events = me.get("/events?limit=1000").await.expect(200);
    assert!(
        events
            .items()
            .iter()
            .all(|e| e["organizationId"] == mine.id.as_str())
    );
    assert!(
        !events
            .items()
            .iter()
            .any(|e| e["resourceId"] == customer.as_str())
    );
}
