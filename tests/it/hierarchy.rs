//! Customers → projects → tasks → subtasks: CRUD, parents, external ids, money.

use serde_json::{Value, json};

use crate::harness::Server;

#[tokio::test]
async fn the_hierarchy_is_created_read_updated_and_deleted() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let customer = c
        .post("/customers", json!({"name": "  Acme  ", "email": "Billing@Acme.Example", "hourlyRate": 120.5, "externalId": "crm-1"}))
        .await
        .expect(201);
    assert_eq!(customer.body["name"], "Acme", "names are trimmed");
    assert_eq!(customer.body["email"], "billing@acme.example");
    assert_eq!(customer.body["hourlyRate"], "120.50");
    assert_eq!(
        customer.body["currency"], "EUR",
        "the organization's currency by default"
    );
    assert!(customer.id().starts_with("cus_"));
    let ts = customer.body["createdAt"].as_str().unwrap();
    assert!(
        ts.ends_with('Z') && ts.len() == 24,
        "RFC 3339 with milliseconds: {ts}"
    );
    let customer_id = customer.id();

    let project = c
        .post("/projects", json!({"customerId": customer_id, "name": "Site", "billingMethod": "fixed_fee", "fixedFee": "5000", "budgetHours": 40, "startsOn": "2026-01-01", "endsOn": "2026-03-31"}))
        .await
        .expect(201);
    assert_eq!(project.body["fixedFee"], "5000.00");
    assert_eq!(project.body["budgetHours"], 40.0);
    assert_eq!(project.body["currency"], "EUR");
    let project_id = project.id();
    let task = c.post("/tasks", json!({"projectId": project_id, "name": "Design", "hourlyRate": "99", "estimateHours": 1.5})).await.expect(201);
    assert_eq!(task.body["status"], "open");
    assert_eq!(task.body["billable"], true);
    assert_eq!(task.body["estimateHours"], 1.5);
    let task_id = task.id();
    let subtask = c
        .post(
            "/subtasks",
            json!({"taskId": task_id, "name": "Wireframes"}),
        )
        .await
        .expect(201);
    assert_eq!(
        subtask.body["projectId"], project_id,
        "derived from the task"
    );
    let subtask_id = subtask.id();

    let got = c.get(&format!("/subtasks/{subtask_id}")).await.expect(200);
    assert_eq!(got.body, subtask.body);

    // PATCH is partial; null clears an optional field; a required field cannot be nulled.
    let patched = c
        .patch(
            &format!("/customers/{customer_id}"),
            json!({"phone": "+49 30 1234", "email": null}),
        )
        .await
        .expect(200);
    assert_eq!(patched.body["phone"], "+49 30 1234");
    assert_eq!(patched.body["email"], Value::Null);
    assert_eq!(patched.body["name"], "Acme");
    assert_ne!(patched.body["updatedAt"], customer.body["updatedAt"]);
    let r = c
        .patch(&format!("/customers/{customer_id}"), json!({"name": null}))
        .await;
    assert_eq!(
        r.expect_error(422, "validation_failed").error_fields(),
        vec!["name"]
    );
    // A customer with projects keeps its currency (their amounts and time are in it); one
    // without changes it, amounts given in the new one.
    let r = c
        .patch(
            &format!("/customers/{customer_id}"),
            json!({"currency": "JPY", "hourlyRate": "15000"}),
        )
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(r.body["error"]["details"][0]["code"], "in_use");
    let fresh = c.customer("Initech").await;
    let yen = c
        .patch(
            &format!("/customers/{fresh}"),
            json!({"currency": "JPY", "hourlyRate": "15000"}),
        )
        .await
        .expect(200);
    assert_eq!(yen.body["hourlyRate"], "15000");

    // Deleting a parent with children is a conflict; children first works.
    c.delete(&format!("/customers/{customer_id}"))
        .await
        .expect_error(409, "conflict");
    c.delete(&format!("/tasks/{task_id}"))
        .await
        .expect_error(409, "conflict");
    c.delete(&format!("/subtasks/{subtask_id}"))
        .await
        .expect(204);
    c.get(&format!("/subtasks/{subtask_id}"))
        .await
        .expect_error(404, "not_found");
    c.delete(&format!("/subtasks/{subtask_id}"))
        .await
        .expect_error(404, "not_found");
    c.delete(&format!("/tasks/{task_id}")).await.expect(204);
    c.delete(&format!("/projects/{project_id}"))
        .await
        .expect(204);
    c.delete(&format!("/customers/{customer_id}"))
        .await
        .expect(204);
    c.delete(&format!("/customers/{fresh}")).await.expect(204);
    assert_eq!(c.get("/customers").await.body["totalCount"], 0);
}

#[tokio::test]
async fn a_missing_or_archived_parent_is_a_422_naming_the_parent_field() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let r = c
        .post("/projects", json!({"customerId": "cus_nope", "name": "x"}))
        .await;
    let r = r.expect_error(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["customerId"]);
    assert_eq!(r.body["error"]["details"][0]["code"], "not_found");
    assert_eq!(
        c.post("/tasks", json!({"projectId": "prj_nope", "name": "x"}))
            .await
            .expect(422)
            .error_fields(),
        vec!["projectId"]
    );
    assert_eq!(
        c.post("/subtasks", json!({"taskId": "tsk_nope", "name": "x"}))
            .await
            .expect(422)
            .error_fields(),
        vec!["taskId"]
    );
    assert_eq!(
        c.post("/subtasks", json!({"name": "x"}))
            .await
            .expect(422)
            .error_fields(),
        vec!["taskId"]
    );

    let customer = c.customer("Old").await;
    let project = c.project(&customer, "Old project").await;
    let task = c.task(&project, "Old task").await;
    c.patch(
        &format!("/customers/{customer}"),
        json!({"isArchived": true}),
    )
    .await
    .expect(200);
    let r = c
        .post("/projects", json!({"customerId": customer, "name": "x"}))
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(
        r.body["error"]["details"][0],
        json!({"field": "customerId", "code": "archived", "message": "customerId names an archived customer"})
    );
    c.patch(&format!("/projects/{project}"), json!({"isArchived": true}))
        .await
        .expect(200);
    let r = c
        .post("/tasks", json!({"projectId": project, "name": "x"}))
        .await
        .expect(422);
    assert_eq!(r.body["error"]["details"][0]["code"], "archived");
    let r = c
        .post("/subtasks", json!({"taskId": task, "name": "x"}))
        .await
        .expect(422);
    assert_eq!(r.body["error"]["details"][0]["field"], "taskId");
    assert_eq!(r.body["error"]["details"][0]["code"], "archived");
    // The assignee must be a user of the organization.
    let open = c.project(&c.customer("Live").await, "Live").await;
    let r = c
        .post(
            "/tasks",
            json!({"projectId": open, "name": "x", "assigneeId": "usr_nope"}),
        )
        .await
        .expect(422);
    assert_eq!(r.error_fields(), vec!["assigneeId"]);
    c.post(
        "/tasks",
        json!({"projectId": open, "name": "x", "assigneeId": org.owner_id}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn external_ids_are_unique_and_upsert_finds_or_creates() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let created = c
        .put(
            "/customers/by-external-id/crm-42",
            json!({"name": "Globex"}),
        )
        .await
        .expect(201);
    assert_eq!(created.body["externalId"], "crm-42");
    assert!(created.header("location").unwrap().ends_with(&created.id()));
    let updated = c
        .put(
            "/customers/by-external-id/crm-42",
            json!({"email": "a@globex.example"}),
        )
        .await
        .expect(200);
    assert_eq!(updated.id(), created.id());
    assert_eq!(updated.body["name"], "Globex");
    assert_eq!(updated.body["email"], "a@globex.example");
    c.post("/customers", json!({"name": "Dup", "externalId": "crm-42"}))
        .await
        .expect_error(409, "conflict");
    let r = c
        .put(
            "/customers/by-external-id/crm-42",
            json!({"externalId": "other"}),
        )
        .await;
    assert_eq!(
        r.expect_error(422, "validation_failed").error_fields(),
        vec!["externalId"]
    );
    let r = c.put("/customers/by-external-id/crm-43", json!({})).await;
    assert_eq!(
        r.expect_error(422, "validation_failed").error_fields(),
        vec!["name"]
    );
    let found = c.get("/customers?externalId=crm-42").await.expect(200);
    assert_eq!(found.item_ids(), vec![created.id()]);

    let customer = created.id();
    let p = c
        .put(
            "/projects/by-external-id/p-1",
            json!({"customerId": customer, "name": "P"}),
        )
        .await
        .expect(201);
    c.put("/projects/by-external-id/p-1", json!({"name": "P2"}))
        .await
        .expect(200);
    let t = c
        .put(
            "/tasks/by-external-id/t-1",
            json!({"projectId": p.id(), "name": "T"}),
        )
        .await
        .expect(201);
    c.put("/tasks/by-external-id/t-1", json!({"status": "done"}))
        .await
        .expect(200);
    c.put(
        "/subtasks/by-external-id/s-1",
        json!({"taskId": t.id(), "name": "S"}),
    )
    .await
    .expect(201);
    let s = c
        .put(
            "/subtasks/by-external-id/s-1",
            json!({"status": "in_progress"}),
        )
        .await
        .expect(200);
    assert_eq!(s.body["status"], "in_progress");
    // A deleted record frees its external id.
    c.delete(&format!("/subtasks/{}", s.id())).await.expect(204);
    c.put(
        "/subtasks/by-external-id/s-1",
        json!({"taskId": t.id(), "name": "S again"}),
    )
    .await
    .expect(201);
}

#[tokio::test]
async fn moving_a_task_carries_its_subtasks_to_the_new_project() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let customer = c.customer("Acme").await;
    let from = c.project(&customer, "From").await;
    let to = c.project(&customer, "To").await;
    let task = c.task(&from, "Movable").await;
    let sub = c.subtask(&task, "Along").await;
    c.patch(&format!("/tasks/{task}"), json!({"projectId": to}))
        .await
        .expect(200);
    assert_eq!(
        c.get(&format!("/subtasks/{sub}")).await.body["projectId"],
        to
    );
    let moved = c
        .get(&format!("/subtasks?projectId={to}"))
        .await
        .expect(200);
    assert_eq!(moved.item_ids(), vec![sub]);
    let other = c
        .post("/customers", json!({"name": "Yen Co", "currency": "JPY"}))
        .await
        .expect(201)
        .id();
    let yen_project = c.project(&other, "Yen").await;
    let r = c
        .patch(&format!("/tasks/{task}"), json!({"projectId": yen_project}))
        .await;
    assert_eq!(
        r.expect_error(422, "validation_failed").body["error"]["details"][0]["code"],
        "currency_mismatch"
    );
}

#[tokio::test]
async fn org_users_are_managed_with_their_rates_and_capacity() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let user = c
        .post("/org-users", json!({"email": "Grace@Example.com", "name": "Grace", "role": "manager", "weeklyCapacityHours": 32, "costRate": "40", "billableRate": "95.5"}))
        .await
        .expect(201);
    assert_eq!(user.body["email"], "grace@example.com");
    assert_eq!(user.body["billableRate"], "95.50");
    assert_eq!(user.body["weeklyCapacityHours"], 32.0);
    assert_eq!(user.body["isActive"], true);
    c.post(
        "/org-users",
        json!({"email": "grace@example.com", "name": "Again"}),
    )
    .await
    .expect_error(409, "conflict");
    let r = c
        .post(
            "/org-users",
            json!({"email": "x@example.com", "name": "X", "role": "emperor"}),
        )
        .await;
    assert_eq!(r.expect(422).error_fields(), vec!["role"]);
    let r = c
        .post(
            "/org-users",
            json!({"email": "y@example.com", "name": "Y", "holidayProfileId": "hol_nope"}),
        )
        .await;
    assert_eq!(r.expect(422).error_fields(), vec!["holidayProfileId"]);
    let id = user.id();
    let listed = c.get("/org-users?role=manager").await.expect(200);
    assert_eq!(listed.item_ids(), vec![id.clone()]);
    c.delete(&format!("/org-users/{id}")).await.expect(204);
    c.get(&format!("/org-users/{id}"))
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn concurrent_patches_of_one_record_lose_no_field() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let id = c.customer("Contended").await;
    let path = format!("/customers/{id}");
    let writer = |field: &'static str| {
        let c = c.clone();
        let path = path.clone();
        tokio::spawn(async move {
            for i in 0..25 {
                c.patch(&path, json!({ field: format!("{field}-{i}") }))
                    .await
                    .expect(200);
            }
        })
    };
    let (a, b, d) = (writer("notes"), writer("phone"), writer("address"));
    a.await.unwrap();
    b.await.unwrap();
    d.await.unwrap();
    let last = c.get(&path).await.expect(200);
    assert_eq!(last.body["notes"], "notes-24");
    assert_eq!(last.body["phone"], "phone-24");
    assert_eq!(last.body["address"], "address-24");
    // Every change was logged with the value it replaced.
    let events = c
        .get("/events?types=customer.updated&limit=1000")
        .await
        .expect(200);
    assert_eq!(events.items().len(), 75);
}

#[tokio::test]
async fn a_patch_that_changes_nothing_keeps_updated_at() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let created = c
        .post("/customers", json!({"name": "Still", "hourlyRate": "10"}))
        .await
        .expect(201);
    let same = c
        .patch(
            &format!("/customers/{}", created.id()),
            json!({"name": "Still", "hourlyRate": "10.00"}),
        )
        .await
        .expect(200);
    assert_eq!(same.body, created.body);
}
