//! Time entries, timers, timesheets and their approval, holiday profiles and capacity, roles on
//! time, and budget threshold events.

use serde_json::{Value, json};

use crate::harness::{Client, Server};

/// A subtask under a fresh customer, project and task.
async fn leaf(c: &Client, project: Value) -> (String, String) {
    let customer = c
        .post(
            "/customers",
            json!({"name": "Acme", "hourlyRate": "100.00"}),
        )
        .await
        .expect(201)
        .id();
    let mut body = project;
    body["customerId"] = json!(customer);
    body["name"] = json!("Site");
    let project = c.post("/projects", body).await.expect(201).id();
    let task = c.task(&project, "Build").await;
    (project, c.subtask(&task, "Wireframes").await)
}

#[tokio::test]
async fn entries_derive_their_parents_and_keep_times_consistent() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (project, subtask) = leaf(&c, json!({"hourlyRate": "120.00"})).await;

    let e = c
        .post("/time-entries", json!({"subtaskId": subtask, "startedAt": "2026-11-02T09:00:00Z", "endedAt": "2026-11-02T10:30:00Z", "notes": "kick-off", "externalId": "tt-1"}))
        .await
        .expect(201);
    assert!(e.id().starts_with("te_"));
    assert!(e.header("location").unwrap().ends_with(&e.id()));
    assert_eq!(e.body["projectId"], project);
    assert!(e.body["taskId"].as_str().unwrap().starts_with("tsk_"));
    assert!(e.body["customerId"].as_str().unwrap().starts_with("cus_"));
    assert_eq!(e.body["userId"], org.owner_id, "the key's user by default");
    assert_eq!(e.body["date"], "2026-11-02", "the day it started on");
    assert_eq!(e.body["durationSeconds"], 5400);
    assert_eq!(e.body["hours"], 1.5);
    assert_eq!(e.body["billableRate"], "120.00", "the project's rate");
    assert_eq!(e.body["billableAmount"], "180.00");
    assert_eq!(e.body["approvalStatus"], "open");
    assert_eq!(e.body["isLocked"], false);
    assert!(e.body["timesheetId"].as_str().unwrap().starts_with("ts_"));
    let id = e.id();

    // A new duration moves the end; a new end with a contradicting duration is refused.
    let moved = c
        .patch(
            &format!("/time-entries/{id}"),
            json!({"durationSeconds": 3600}),
        )
        .await
        .expect(200);
    assert_eq!(moved.body["endedAt"], "2026-11-02T10:00:00.000Z");
    assert_eq!(moved.body["billableAmount"], "120.00");
    let r = c
        .patch(
            &format!("/time-entries/{id}"),
            json!({"endedAt": "2026-11-02T12:00:00Z", "durationSeconds": 60}),
        )
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["durationSeconds"]);
    let r = c
        .post("/time-entries", json!({"subtaskId": subtask, "startedAt": "2026-11-02T10:00:00Z", "endedAt": "2026-11-02T09:00:00Z"}))
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(r.error_fields(), vec!["endedAt"]);
    // Every bad field at once, parent included.
    let r = c
        .post(
            "/time-entries",
            json!({"durationSeconds": 90000, "date": "02/11/2026"}),
        )
        .await
        .expect_error(422, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(fields, vec!["date", "durationSeconds", "subtaskId"]);
    let r = c
        .post(
            "/time-entries",
            json!({"subtaskId": "sub_nope", "date": "2026-11-02", "durationSeconds": 60}),
        )
        .await
        .expect_error(422, "validation_failed");
    assert_eq!(r.body["error"]["details"][0]["code"], "not_found");
    c.post("/time-entries", json!({"subtaskId": subtask, "date": "2026-11-02", "durationSeconds": 60, "projectId": "x"}))
        .await
        .expect_error(422, "validation_failed");

    // Lists filter by derived parents and by a date range.
    c.post(
        "/time-entries",
        json!({"subtaskId": subtask, "date": "2026-11-20", "durationSeconds": 600}),
    )
    .await
    .expect(201);
    let page = c
        .get(&format!(
            "/time-entries?projectId={project}&from=2026-11-01&to=2026-11-10"
        ))
        .await
        .expect(200);
    assert_eq!(page.item_ids(), vec![id.clone()]);
    c.get("/time-entries?from=yesterday")
        .await
        .expect_error(400, "invalid_parameter");
    // By external id: find-or-create.
    let same = c
        .put(
            "/time-entries/by-external-id/tt-1",
            json!({"notes": "kick-off call"}),
        )
        .await
        .expect(200);
    assert_eq!(same.id(), id);

    // A subtask with time cannot be deleted or moved; an entry can be deleted.
    c.delete(&format!("/subtasks/{subtask}"))
        .await
        .expect_error(409, "conflict");
    c.delete(&format!("/time-entries/{id}")).await.expect(204);
    c.get(&format!("/time-entries/{id}"))
        .await
        .expect_error(404, "not_found");
}

#[tokio::test]
async fn one_timer_runs_per_user_and_stopping_prices_it() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (_, subtask) = leaf(&c, json!({})).await;

    let timer = c
        .post(
            "/time-entries/timer/start",
            json!({"subtaskId": subtask, "notes": "focus"}),
        )
        .await
        .expect(201);
    assert_eq!(timer.body["isRunning"], true);
    assert_eq!(timer.body["durationSeconds"], 0);
    assert!(timer.body["startedAt"].is_string());
    assert!(timer.body["endedAt"].is_null());
    let id = timer.id();
    c.post("/time-entries/timer/start", json!({"subtaskId": subtask}))
        .await
        .expect_error(409, "timer_already_running");
    // While it runs its end and duration are the timer's business.
    c.patch(
        &format!("/time-entries/{id}"),
        json!({"durationSeconds": 60}),
    )
    .await
    .expect_error(422, "validation_failed");

    let stopped = c
        .post(&format!("/time-entries/{id}/stop"), json!({}))
        .await
        .expect(200);
    assert_eq!(stopped.body["isRunning"], false);
    assert!(stopped.body["endedAt"].is_string());
    assert_eq!(
        stopped.body["billableRate"], "100.00",
        "the customer's rate"
    );
    c.post(&format!("/time-entries/{id}/stop"), json!({}))
        .await
        .expect_error(409, "timer_not_running");
    // Another one may start now.
    c.post("/time-entries/timer/start", json!({"subtaskId": subtask}))
        .await
        .expect(201);

    let types: Vec<String> = c
        .get("/events?types=timer.started,timer.stopped")
        .await
        .expect(200)
        .items()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        vec!["timer.started", "timer.stopped", "timer.started"]
    );
}

#[tokio::test]
async fn members_log_their_own_time_and_managers_anyones() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let owner = server.as_key(&org.key);
    let (_, subtask) = leaf(&owner, json!({})).await;
    let (member_id, member) = owner.user_with_key(&server.db, "member").await;
    let (_, other_member) = owner.user_with_key(&server.db, "member").await;
    let (_, manager) = owner.user_with_key(&server.db, "manager").await;
    let (_, viewer) = owner.user_with_key(&server.db, "viewer").await;
    let entry = json!({"subtaskId": subtask, "date": "2026-11-03", "durationSeconds": 1800});

    let own = member
        .post("/time-entries", entry.clone())
        .await
        .expect(201);
    assert_eq!(own.body["userId"], member_id);
    let mut for_owner = entry.clone();
    for_owner["userId"] = json!(org.owner_id);
    member
        .post("/time-entries", for_owner.clone())
        .await
        .expect_error(403, "forbidden");
    viewer
        .post("/time-entries", entry.clone())
        .await
        .expect_error(403, "forbidden");
    viewer.get("/time-entries").await.expect(200);
    let path = format!("/time-entries/{}", own.id());
    other_member
        .patch(&path, json!({"notes": "not mine"}))
        .await
        .expect_error(403, "forbidden");
    other_member
        .delete(&path)
        .await
        .expect_error(403, "forbidden");
    member
        .patch(&path, json!({"notes": "mine"}))
        .await
        .expect(200);
    // Moving one's entry to someone else is the same as logging for them.
    member
        .patch(&path, json!({"userId": org.owner_id}))
        .await
        .expect_error(403, "forbidden");
    manager
        .patch(&path, json!({"notes": "checked"}))
        .await
        .expect(200);
    let logged = manager.post("/time-entries", for_owner).await.expect(201);
    assert_eq!(logged.body["userId"], org.owner_id);
    // Timers follow the same rule.
    member
        .post(
            "/time-entries/timer/start",
            json!({"subtaskId": subtask, "userId": org.owner_id}),
        )
        .await
        .expect_error(403, "forbidden");
    // Members see their permissions in /me.
    let me = member.get("/me").await.expect(200);
    let permissions = me.body["permissions"].as_array().unwrap();
    assert!(permissions.contains(&json!("time_entries:write_own")));
    assert!(!permissions.contains(&json!("time_entries:write")));
    // Reports and invoices are for managers.
    member
        .get("/financial-reports/revenue")
        .await
        .expect_error(403, "forbidden");
    member.get("/invoices").await.expect_error(403, "forbidden");
    manager.get("/financial-reports/revenue").await.expect(200);
    member.delete(&path).await.expect(204);
}

#[tokio::test]
async fn approving_a_week_locks_its_entries_and_rejecting_reopens_it() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let owner = server.as_key(&org.key);
    owner
        .patch("/organization", json!({"weekStartsOn": "sunday"}))
        .await
        .expect(200);
    let (_, subtask) = leaf(&owner, json!({})).await;
    let (member_id, member) = owner.user_with_key(&server.db, "member").await;
    let log = |date: &str, seconds: i64| json!({"subtaskId": subtask, "date": date, "durationSeconds": seconds});
    // Sunday 2026-11-01 starts the week that ends on Saturday 2026-11-07.
    let a = member
        .post("/time-entries", log("2026-11-01", 3600))
        .await
        .expect(201);
    let b = member
        .post("/time-entries", log("2026-11-07", 1800))
        .await
        .expect(201);
    let next_week = member
        .post("/time-entries", log("2026-11-08", 600))
        .await
        .expect(201);
    assert_eq!(a.body["timesheetId"], b.body["timesheetId"]);
    assert_ne!(a.body["timesheetId"], next_week.body["timesheetId"]);
    let sheet_id = a.body["timesheetId"].as_str().unwrap().to_owned();
    let sheet = owner
        .get(&format!("/timesheets/{sheet_id}"))
        .await
        .expect(200);
    assert_eq!(sheet.body["userId"], member_id);
    assert_eq!(sheet.body["periodStart"], "2026-11-01");
    assert_eq!(sheet.body["periodEnd"], "2026-11-07");
    assert_eq!(sheet.body["status"], "open");
    assert_eq!(sheet.body["totalSeconds"], 5400);
    assert_eq!(sheet.body["expectedSeconds"], 5 * 8 * 3600);
    let listed = owner
        .get(&format!(
            "/timesheets?userId={member_id}&periodStart=2026-11-01"
        ))
        .await
        .expect(200);
    assert_eq!(listed.item_ids(), vec![sheet_id.clone()]);

    // Only a submitted sheet is approved; members cannot approve.
    let sheet_path = format!("/timesheets/{sheet_id}");
    owner
        .post(&format!("{sheet_path}/approve"), json!({}))
        .await
        .expect_error(409, "invalid_state");
    member
        .post(&format!("{sheet_path}/submit"), json!({}))
        .await
        .expect(200);
    member
        .post(&format!("{sheet_path}/approve"), json!({}))
        .await
        .expect_error(403, "forbidden");
    let approved = owner
        .post(&format!("{sheet_path}/approve"), json!({}))
        .await
        .expect(200);
    assert_eq!(approved.body["status"], "approved");
    assert_eq!(approved.body["decidedBy"], org.owner_id);

    let entry = owner
        .get(&format!("/time-entries/{}", a.id()))
        .await
        .expect(200);
    assert_eq!(entry.body["approvalStatus"], "approved");
    assert_eq!(entry.body["isLocked"], true);
    member
        .patch(
            &format!("/time-entries/{}", a.id()),
            json!({"notes": "late edit"}),
        )
        .await
        .expect_error(409, "entry_locked");
    owner
        .delete(&format!("/time-entries/{}", a.id()))
        .await
        .expect_error(409, "entry_locked");
    // Nor can time join an approved week, or an entry move into one.
    member
        .post("/time-entries", log("2026-11-03", 60))
        .await
        .expect_error(409, "entry_locked");
    member
        .patch(
            &format!("/time-entries/{}", next_week.id()),
            json!({"date": "2026-11-02"}),
        )
        .await
        .expect_error(409, "entry_locked");

    let rejected = owner
        .post(
            &format!("{sheet_path}/reject"),
            json!({"reason": "split Friday by task"}),
        )
        .await
        .expect(200);
    assert_eq!(rejected.body["status"], "rejected");
    assert_eq!(rejected.body["rejectionReason"], "split Friday by task");
    member
        .patch(
            &format!("/time-entries/{}", a.id()),
            json!({"notes": "split"}),
        )
        .await
        .expect(200);

    let types: Vec<String> = owner
        .get("/events?types=timesheet.submitted,timesheet.approved,timesheet.rejected")
        .await
        .expect(200)
        .items()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        types,
        vec![
            "timesheet.submitted",
            "timesheet.approved",
            "timesheet.rejected"
        ]
    );

    // A running timer holds back a submission.
    member
        .post("/time-entries/timer/start", json!({"subtaskId": subtask}))
        .await
        .expect(201);
    let running_sheet = member
        .get(&format!("/time-entries?userId={member_id}&isRunning=true"))
        .await
        .expect(200)
        .items()[0]["timesheetId"]
        .as_str()
        .unwrap()
        .to_owned();
    member
        .post(&format!("/timesheets/{running_sheet}/submit"), json!({}))
        .await
        .expect_error(409, "timer_running");
}

#[tokio::test]
async fn holiday_profiles_reduce_expected_capacity() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let owner = server.as_key(&org.key);
    let r = owner
        .post("/holiday-profiles", json!({"name": "Berlin", "countryCode": "de", "holidays": [{"date": "2026-12-25", "name": "Christmas Day"}, {"date": "2026-13-01", "name": "Nope"}, {"date": "2026-12-26", "name": ""}], "workingDays": ["monday", "someday"]}))
        .await
        .expect_error(422, "validation_failed");
    let mut fields = r.error_fields();
    fields.sort();
    assert_eq!(
        fields,
        vec!["holidays[1].date", "holidays[2].name", "workingDays[1]"]
    );
    let profile = owner
        .post("/holiday-profiles", json!({"name": "Berlin", "countryCode": "de", "holidays": [{"date": "2026-12-26", "name": "Second Day of Christmas"}, {"date": "2026-12-25", "name": "Christmas Day"}], "hoursPerDay": 7.5}))
        .await
        .expect(201);
    assert_eq!(profile.body["countryCode"], "DE");
    assert_eq!(
        profile.body["holidays"][0]["date"], "2026-12-25",
        "sorted by date"
    );
    assert_eq!(
        profile.body["workingDays"],
        json!(["monday", "tuesday", "wednesday", "thursday", "friday"])
    );
    assert_eq!(profile.body["hoursPerDay"], 7.5);
    let profile_id = profile.id();

    let (_, subtask) = leaf(&owner, json!({})).await;
    let (part_timer, _) = owner.user_with_key(&server.db, "member").await;
    owner
        .patch(
            &format!("/org-users/{part_timer}"),
            json!({"holidayProfileId": profile_id, "weeklyCapacityHours": 30}),
        )
        .await
        .expect(200);
    let (full_timer, _) = owner.user_with_key(&server.db, "member").await;
    owner
        .patch(
            &format!("/org-users/{full_timer}"),
            json!({"holidayProfileId": profile_id}),
        )
        .await
        .expect(200);
    let mut expected = Vec::new();
    for user in [&part_timer, &full_timer] {
        let e = owner
            .post("/time-entries", json!({"subtaskId": subtask, "userId": user, "date": "2026-12-22", "durationSeconds": 3600}))
            .await
            .expect(201);
        let sheet = owner
            .get(&format!(
                "/timesheets/{}",
                e.body["timesheetId"].as_str().unwrap()
            ))
            .await
            .expect(200);
        expected.push(sheet.body["expectedSeconds"].as_i64().unwrap());
    }
    // Christmas falls on Friday: four working days of five. 30 h a week → 24 h; 7.5 h a day → 30 h.
    assert_eq!(expected, vec![24 * 3600, 30 * 3600]);

    // A profile in use cannot be deleted.
    owner
        .delete(&format!("/holiday-profiles/{profile_id}"))
        .await
        .expect_error(409, "conflict");
    let (_, manager) = owner.user_with_key(&server.db, "manager").await;
    manager
        .post("/holiday-profiles", json!({"name": "X"}))
        .await
        .expect_error(403, "forbidden");
}

#[tokio::test]
async fn budget_thresholds_are_announced_once_each() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (project, subtask) = leaf(&c, json!({"budgetHours": 10, "hourlyRate": "100.00"})).await;
    let log = |seconds: i64| json!({"subtaskId": subtask, "date": "2026-11-02", "durationSeconds": seconds});
    c.post("/time-entries", log(7 * 3600)).await.expect(201);
    let crossing = c.post("/time-entries", log(3600 + 1800)).await.expect(201); // 8.5 h
    c.post("/time-entries", log(1800)).await.expect(201); // 9 h: still only 80 %
    c.delete(&format!("/time-entries/{}", crossing.id()))
        .await
        .expect(204); // 7.5 h
    c.post("/time-entries", log(1800)).await.expect(201); // 8 h again: no second 80 %
    c.post("/time-entries", log(3 * 3600)).await.expect(201); // 11 h

    let events = c
        .get("/events?types=project.budget_threshold_reached")
        .await
        .expect(200)
        .items();
    let seen: Vec<(String, i64)> = events
        .iter()
        .map(|e| {
            (
                e["resourceId"].as_str().unwrap().to_owned(),
                e["data"]["budgetThreshold"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(seen, vec![(project.clone(), 80), (project.clone(), 100)]);
    assert_eq!(events[0]["data"]["percentUsed"], 85.0);
    assert_eq!(events[0]["data"]["spentHours"], 8.5);
    assert_eq!(events[1]["data"]["percentUsed"], 110.0);
    assert_eq!(events[1]["data"]["spentAmount"], "1100.00");
}

#[tokio::test]
async fn concurrent_writes_keep_totals_thresholds_and_timers_right() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (project, subtask) = leaf(&c, json!({"budgetHours": 10})).await;
    // Sixteen hours in sixteen different weeks: only the project orders these writes.
    let log = |date: String| {
        let c = c.clone();
        let subtask = subtask.clone();
        tokio::spawn(async move {
            c.post(
                "/time-entries",
                json!({"subtaskId": subtask, "date": date, "durationSeconds": 3600}),
            )
            .await
            .expect(201)
            .body["timesheetId"]
                .as_str()
                .unwrap()
                .to_owned()
        })
    };
    let weeks: Vec<_> = (0..16)
        .map(|i| log(format!("2026-{:02}-{:02}", 1 + i / 4, 1 + 7 * (i % 4))))
        .collect();
    for t in weeks {
        t.await.unwrap();
    }
    let thresholds: Vec<i64> = c
        .get("/events?types=project.budget_threshold_reached")
        .await
        .expect(200)
        .items()
        .iter()
        .map(|e| {
            assert_eq!(e["resourceId"], project.as_str());
            e["data"]["budgetThreshold"].as_i64().unwrap()
        })
        .collect();
    assert_eq!(thresholds, vec![80, 100], "each threshold once");
    // Eight hours in one week: its timesheet loses none of them.
    let same_week: Vec<_> = (0..8).map(|_| log("2026-11-04".into())).collect();
    let mut sheet = String::new();
    for t in same_week {
        sheet = t.await.unwrap();
    }
    let totals = c.get(&format!("/timesheets/{sheet}")).await.expect(200);
    assert_eq!(
        totals.body["totalSeconds"],
        8 * 3600,
        "no entry lost from the total"
    );

    let starts: Vec<_> = (0..8)
        .map(|_| {
            let c = c.clone();
            let subtask = subtask.clone();
            tokio::spawn(async move {
                let r = c
                    .post("/time-entries/timer/start", json!({"subtaskId": subtask}))
                    .await;
                if r.status != 201 {
                    r.expect_error(409, "timer_already_running");
                    false
                } else {
                    true
                }
            })
        })
        .collect();
    let mut started = 0;
    for t in starts {
        started += usize::from(t.await.unwrap());
    }
    assert_eq!(started, 1, "one running timer per user");
}

#[tokio::test]
async fn rate_changes_reprice_unbilled_time_only() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (project, subtask) = leaf(&c, json!({"hourlyRate": "100.00"})).await;
    let log = |date: &str| json!({"subtaskId": subtask, "date": date, "durationSeconds": 5400});
    let billed = c.post("/time-entries", log("2026-11-02")).await.expect(201);
    let open = c.post("/time-entries", log("2026-11-10")).await.expect(201);
    // Bill the first week.
    let sheet = billed.body["timesheetId"].as_str().unwrap();
    c.post(&format!("/timesheets/{sheet}/submit"), json!({}))
        .await
        .expect(200);
    c.post(&format!("/timesheets/{sheet}/approve"), json!({}))
        .await
        .expect(200);
    let customer = billed.body["customerId"].as_str().unwrap();
    c.post(
        "/invoices",
        json!({"customerId": customer, "from": "2026-11-02", "to": "2026-11-08"}),
    )
    .await
    .expect(201);

    c.patch(
        &format!("/projects/{project}"),
        json!({"hourlyRate": "140.00"}),
    )
    .await
    .expect(200);
    let amount = |id: String| {
        let c = c.clone();
        async move {
            c.get(&format!("/time-entries/{id}")).await.expect(200).body["billableAmount"].clone()
        }
    };
    assert_eq!(amount(open.id()).await, "210.00", "1.5 h at the new 140.00");
    assert_eq!(
        amount(billed.id()).await,
        "150.00",
        "invoiced at 100.00, kept"
    );
    // The task's own rate wins; making the task non-billable takes the amount away.
    let task = open.body["taskId"].as_str().unwrap();
    c.patch(&format!("/tasks/{task}"), json!({"hourlyRate": "200.00"}))
        .await
        .expect(200);
    assert_eq!(amount(open.id()).await, "300.00");
    c.patch(&format!("/tasks/{task}"), json!({"billable": false}))
        .await
        .expect(200);
    let entry = c
        .get(&format!("/time-entries/{}", open.id()))
        .await
        .expect(200);
    assert_eq!(entry.body["billable"], false);
    assert_eq!(entry.body["billableAmount"], "0.00");
    // ...and billable again brings back what the entry asked for.
    c.patch(&format!("/tasks/{task}"), json!({"billable": true}))
        .await
        .expect(200);
    assert_eq!(amount(open.id()).await, "300.00");
    let repriced = c
        .get("/events?types=time_entry.updated&limit=1000")
        .await
        .expect(200)
        .items()
        .iter()
        .filter(|e| e["resourceId"] == open.id().as_str())
        .count();
    assert_eq!(repriced, 4, "each repricing is an event");
}

#[tokio::test]
async fn rate_changes_edits_and_deletes_racing_each_other_all_succeed() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (project, subtask) = leaf(&c, json!({"hourlyRate": "100.00", "budgetHours": 1})).await;
    let task = c
        .get(&format!("/subtasks/{subtask}"))
        .await
        .expect(200)
        .body["taskId"]
        .as_str()
        .unwrap()
        .to_owned();
    let log = json!({"subtaskId": subtask, "date": "2026-11-04", "durationSeconds": 600});
    let mut seeded = Vec::new();
    for _ in 0..6 {
        seeded.push(c.post("/time-entries", log.clone()).await.expect(201).id());
    }
    let mut jobs = Vec::new();
    for (i, entry) in seeded.iter().enumerate() {
        let c = c.clone();
        let (log, project, task, entry) =
            (log.clone(), project.clone(), task.clone(), entry.clone());
        jobs.push(tokio::spawn(async move {
            let rate = json!({"hourlyRate": format!("{}.00", 100 + i)});
            let answers = [
                c.post("/time-entries", log).await,
                c.patch(&format!("/tasks/{task}"), rate.clone()).await,
                c.patch(&format!("/projects/{project}"), rate).await,
                c.patch(
                    &format!("/time-entries/{entry}"),
                    json!({"notes": format!("edit {i}")}),
                )
                .await,
                c.delete(&format!("/time-entries/{entry}")).await,
            ];
            for r in answers {
                assert!(
                    (200..300).contains(&r.status),
                    "every write succeeds: {} {}",
                    r.status,
                    r.body
                );
            }
        }));
    }
    for job in jobs {
        job.await.unwrap();
    }
    // What is left is priced at the task's final rate.
    let rate = c.get(&format!("/tasks/{task}")).await.expect(200).body["hourlyRate"].clone();
    for entry in c
        .get(&format!("/time-entries?projectId={project}"))
        .await
        .expect(200)
        .items()
    {
        assert_eq!(entry["billableRate"], rate);
    }
}

#[tokio::test]
async fn timers_cannot_slip_into_approved_weeks_and_always_stop() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let (project, subtask) = leaf(&c, json!({})).await;
    // Started after the week was submitted: the approval waits for it.
    let timer = c
        .post("/time-entries/timer/start", json!({"subtaskId": subtask}))
        .await
        .expect(201);
    let sheet = timer.body["timesheetId"].as_str().unwrap().to_owned();
    c.post(&format!("/time-entries/{}/stop", timer.id()), json!({}))
        .await
        .expect(200);
    c.post(&format!("/timesheets/{sheet}/submit"), json!({}))
        .await
        .expect(200);
    let late = c
        .post("/time-entries/timer/start", json!({"subtaskId": subtask}))
        .await
        .expect(201);
    c.post(&format!("/timesheets/{sheet}/approve"), json!({}))
        .await
        .expect_error(409, "timer_running");
    // Archiving the project does not trap the running timer.
    c.patch(&format!("/projects/{project}"), json!({"isArchived": true}))
        .await
        .expect(200);
    c.patch(
        &format!("/time-entries/{}", timer.id()),
        json!({"notes": "archived, still editable"}),
    )
    .await
    .expect(200);
    c.post(&format!("/time-entries/{}/stop", late.id()), json!({}))
        .await
        .expect(200);
    c.post(&format!("/timesheets/{sheet}/approve"), json!({}))
        .await
        .expect(200);
    // New time on an archived project is refused.
    c.post("/time-entries/timer/start", json!({"subtaskId": subtask}))
        .await
        .expect_error(422, "validation_failed");
    // Absurd durations are refused, not overflowed.
    let r = c
        .post("/time-entries", json!({"subtaskId": subtask, "startedAt": "2026-11-02T09:00:00Z", "durationSeconds": i64::MAX}))
        .await
        .expect_error(422, "validation_failed");
    assert!(r.error_fields().contains(&"durationSeconds".to_owned()));
    // Sorting by duration pages with a cursor.
    let first = c
        .get("/time-entries?sort=durationSeconds&pageSize=1&cursor=")
        .await
        .expect(200);
    let next = first.body["nextCursor"].as_str().unwrap().to_owned();
    let second = c
        .get(&format!(
            "/time-entries?sort=durationSeconds&pageSize=1&cursor={next}"
        ))
        .await
        .expect(200);
    assert_ne!(first.item_ids(), second.item_ids());
}
