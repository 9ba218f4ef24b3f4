//! The schedule editor of the flow builder and times in the organization's time zone: without
//! JavaScript over HTTP (the form and the preview endpoint), and in headless Chromium
//! (`tests/ui/ui_schedules.mjs`) for every kind of schedule and the runs list.
//!
//! The organization is in Asia/Kolkata (UTC+05:30 all year, "IST"), so every expected local time
//! is the UTC instant plus 5:30; daylight saving is covered by the unit tests of
//! `web/src/ui/schedule.rs` (New York).

use std::time::{Duration, Instant};

use chrono::{DateTime, Datelike, FixedOffset, Timelike, Utc};
use serde_json::{Value, json};

use crate::harness::{Client, Script, Server, TestDb, backend, kept_dir};
use crate::ui::{Browser, PASSWORD, bootstrap_with_password};

const ZONE: &str = "Asia/Kolkata";

fn kolkata() -> FixedOffset {
    FixedOffset::east_opt(5 * 3600 + 30 * 60).unwrap()
}

/// A server with an organization in Kolkata: `(server, owner e-mail, owner's API client)`.
async fn kolkata_org() -> (Server, String, Client) {
    let server = Server::start_with(TestDb::new().await, &[]).await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Chai Ltd");
    let api = server.as_key(&key);
    let org = api
        .patch("/organization", json!({"timezone": ZONE}))
        .await
        .expect(200);
    assert_eq!(org.body["timezone"], ZONE);
    (server, email, api)
}

/// A fire time as the preview shows it: its instant (`datetime`) and its label.
#[derive(Debug)]
struct Fire {
    local: DateTime<FixedOffset>,
    label: String,
}

/// Checks that each label is its instant in Kolkata (`Mon 2026-12-07 09:00 IST`), that they
/// are five, in order and to come; returns them in local time.
fn fires_in_kolkata(fires: &[(String, String)]) -> Vec<Fire> {
    assert_eq!(fires.len(), 5, "{fires:?}");
    let fires: Vec<Fire> = fires
        .iter()
        .map(|(at, label)| {
            let local = DateTime::parse_from_rfc3339(at)
                .unwrap_or_else(|_| panic!("{at:?} is an instant"))
                .with_timezone(&kolkata());
            let expected = format!("{} IST", local.format("%a %Y-%m-%d %H:%M"));
            assert_eq!(label, &expected, "{at} in {ZONE}");
            Fire {
                local,
                label: label.clone(),
            }
        })
        .collect();
    assert!(fires[0].local > Utc::now() - chrono::Duration::minutes(1));
    assert!(
        fires.windows(2).all(|w| w[0].local < w[1].local),
        "{fires:?}"
    );
    fires
}

/// `(datetime, label)` of each `<time>` in the page's preview list.
fn preview_in_page(body: &str) -> Vec<(String, String)> {
    let list = body
        .split("data-schedule-fires>")
        .nth(1)
        .and_then(|rest| rest.split("</ol>").next())
        .expect("the preview list");
    list.split("<time datetime=\"")
        .skip(1)
        .map(|item| {
            let (at, rest) = item.split_once("\">").unwrap();
            let label = rest.split("</time>").next().unwrap();
            (at.to_owned(), label.to_owned())
        })
        .collect()
}

fn stored_cron(body: &str) -> String {
    body.split("data-schedule-cron>")
        .nth(1)
        .and_then(|rest| rest.split("</code>").next())
        .expect("the stored cron")
        .to_owned()
}

#[tokio::test]
async fn without_javascript_the_editor_previews_in_the_org_zone_and_saves_the_cron() {
    let (server, email, api) = kolkata_org().await;
    let mut browser = Browser::new(&server);
    browser.log_in(&email, PASSWORD).await;
    let csrf = browser.get("/flows/new").await.csrf();

    // Picking the schedule trigger shows the editor: every day at 09:00, Kolkata time.
    let page = browser
        .post(
            "/flows/new",
            &[
                ("_csrf", &csrf),
                ("name", "Morning report"),
                ("trigger", "schedule"),
                ("op", "refresh"),
            ],
        )
        .await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("data-schedule-editor"), "{}", page.body);
    assert_eq!(stored_cron(&page.body), "0 9 * * *");
    assert!(page.body.contains("Next five fire times, in Asia/Kolkata"));
    for fire in fires_in_kolkata(&preview_in_page(&page.body)) {
        assert_eq!((fire.local.hour(), fire.local.minute()), (9, 0), "{fire:?}");
    }

    // Monday to Friday at 08:15, previewed by "Show the next fire times" (op=refresh).
    let weekdays = [
        ("_csrf", csrf.as_str()),
        ("name", "Morning report"),
        ("trigger", "schedule"),
        ("schedule.kind", "weekdays"),
        ("schedule.every", "15"),
        ("schedule.time", "08:15"),
        ("schedule.day", "1"),
        ("schedule.cron", "0 9 * * *"),
        ("steps[0].key", "customer"),
        ("steps[0].action", "create_customer"),
        ("steps[0].input.name", "Tick"),
    ];
    let page = browser
        .post(
            "/flows/new",
            &[&weekdays[..], &[("op", "refresh")]].concat(),
        )
        .await;
    assert_eq!(stored_cron(&page.body), "15 8 * * 1-5");
    assert!(page.body.contains("<option value=\"weekdays\" selected>"));
    for fire in fires_in_kolkata(&preview_in_page(&page.body)) {
        assert_eq!((fire.local.hour(), fire.local.minute()), (8, 15));
        assert!(fire.local.weekday().number_from_monday() <= 5, "{fire:?}");
    }

    // A poll's cron is read in UTC: the editor says so, and shows its times in Kolkata.
    let page = browser
        .post(
            "/flows/new",
            &[
                ("_csrf", csrf.as_str()),
                ("name", "Mirror"),
                ("trigger", "poll"),
                ("schedule.kind", "daily"),
                ("schedule.time", "09:00"),
                ("op", "refresh"),
            ],
        )
        .await;
    assert!(page.body.contains("read in UTC"), "{}", page.body);
    assert!(page.body.contains("At <span class=\"help\">(UTC)</span>"));
    for fire in fires_in_kolkata(&preview_in_page(&page.body)) {
        assert_eq!(
            (fire.local.hour(), fire.local.minute()),
            (14, 30),
            "{fire:?}"
        );
    }

    // Saved: the API stores the cron, read in the organization's zone.
    let saved = browser
        .post("/flows/new", &[&weekdays[..], &[("op", "save")]].concat())
        .await;
    let location = saved
        .location
        .unwrap_or_else(|| panic!("a redirect to the flow: {}", saved.body));
    let id = location.trim_start_matches("/flows/");
    let flow = api.get(&format!("/flows/{id}")).await.expect(200).body;
    assert_eq!(
        flow["trigger"],
        json!({"type": "schedule", "schedule": "15 8 * * 1-5"})
    );

    // A time the editor cannot read is refused at the schedule, with the reason.
    let page = browser
        .post(
            "/flows/new",
            &[
                ("_csrf", csrf.as_str()),
                ("name", "Broken"),
                ("trigger", "schedule"),
                ("schedule.kind", "daily"),
                ("schedule.time", "9am"),
                ("op", "save"),
            ],
        )
        .await;
    assert_eq!(page.status, 422);
    assert!(page.body.contains("id=\"f-schedule-err\""), "{}", page.body);
    assert!(page.body.contains("is not a time"), "{}", page.body);

    // The preview the page's script asks for.
    let preview = browser
        .get("/ui/schedule-preview?schedule.kind=monthly&schedule.day=31&schedule.time=23:59&readIn=Asia/Kolkata")
        .await;
    assert_eq!(preview.status, 200);
    let preview: Value = serde_json::from_str(&preview.body).unwrap();
    assert_eq!(preview["cron"], "59 23 31 * *");
    let fires: Vec<(String, String)> = preview["fires"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["at"].as_str().unwrap().into(),
                f["label"].as_str().unwrap().into(),
            )
        })
        .collect();
    for fire in fires_in_kolkata(&fires) {
        assert_eq!(fire.local.day(), 31, "{fire:?}");
    }
    let refused = browser
        .get("/ui/schedule-preview?schedule.kind=cron&schedule.cron=every%20day")
        .await;
    let refused: Value = serde_json::from_str(&refused.body).unwrap();
    assert!(
        refused["error"]
            .as_str()
            .unwrap()
            .contains("not a cron expression")
    );
    // Only for a logged-in user.
    let outsider = Browser::new(&server).get("/ui/schedule-preview").await;
    assert_eq!(outsider.status, 303, "to the login page");
}

/// An event flow and one finished run of it: the run's id and when it was created (UTC).
async fn a_run(api: &Client) -> (String, String) {
    let flow = api
        .post(
            "/flows",
            json!({"name": "New customer → project",
                   "trigger": {"type": "event", "event": "customer.created"},
                   "steps": [{"key": "project", "action": "create_project",
                              "input": {"customerId": "{{trigger.id}}", "name": "Project for {{trigger.name}}"}}]}),
        )
        .await
        .expect(201)
        .id();
    api.customer("Tata Tea").await;
    let started = Instant::now();
    loop {
        let runs = api.get(&format!("/runs?flowId={flow}")).await.items();
        if let Some(run) = runs.first() {
            let run = api.finished_run(run["id"].as_str().unwrap()).await;
            return (
                run["id"].as_str().unwrap().to_owned(),
                run["createdAt"].as_str().unwrap().to_owned(),
            );
        }
        assert!(started.elapsed() < Duration::from_secs(30), "no run");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn in_chromium_each_schedule_kind_previews_in_the_org_zone_and_times_are_local() {
    let out = kept_dir(&format!("ui-screenshots/schedules-{}", backend()));
    let Some(script) = Script::browser("ui_schedules.mjs", &out).ready() else {
        return;
    };
    let (server, email, api) = kolkata_org().await;
    let (run_id, run_created) = a_run(&api).await;
    let report = script
        .env("BASE", server.url(""))
        .env("EMAIL", &email)
        .env("PASSWORD", PASSWORD)
        .env("RUN_ID", &run_id)
        .run()
        .await;
    assert!(report["failure"].is_null(), "{report:#}");
    assert_eq!(report["consoleErrors"], json!([]), "{report:#}");

    let at = "At (Asia/Kolkata)";
    let expected = [
        ("minutes", "*/15 * * * *", vec!["Every"]),
        ("daily", "0 9 * * *", vec![at]),
        ("weekdays", "30 17 * * 1-5", vec![at]),
        ("monthly", "45 6 15 * *", vec!["Day of the month", at]),
        ("cron", "0 12 * * 0", vec!["Cron expression"]),
    ];
    for (kind, cron, fields) in expected {
        let seen = &report["kinds"][kind];
        // Only the chosen kind's fields are shown.
        assert_eq!(
            seen["visibleLabels"],
            json!([vec!["How often"], fields].concat()),
            "{kind}"
        );
        assert_eq!(seen["initialCron"], "0 9 * * *", "{kind}: {seen:#}");
        assert_eq!(seen["cron"], cron, "{kind}: {seen:#}");
        assert_eq!(
            seen["heading"], "Next five fire times, in Asia/Kolkata:",
            "{kind}"
        );
        let pairs = |list: &Value| -> Vec<(String, String)> {
            list.as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        f["at"].as_str().unwrap().into(),
                        f["label"].as_str().unwrap().into(),
                    )
                })
                .collect()
        };
        let fires = fires_in_kolkata(&pairs(&seen["fires"]));
        let local = |f: &Fire| (f.local.hour(), f.local.minute());
        match kind {
            "minutes" => {
                assert!(
                    fires.iter().all(|f| f.local.minute() % 15 == 0),
                    "{fires:?}"
                );
                assert!(
                    fires
                        .windows(2)
                        .all(|w| (w[1].local - w[0].local).num_minutes() == 15)
                );
            }
            "daily" => {
                assert!(fires.iter().all(|f| local(f) == (9, 0)), "{fires:?}");
                assert!(
                    fires
                        .windows(2)
                        .all(|w| (w[1].local - w[0].local).num_hours() == 24)
                );
            }
            "weekdays" => assert!(
                fires
                    .iter()
                    .all(|f| local(f) == (17, 30) && f.local.weekday().number_from_monday() <= 5),
                "{fires:?}"
            ),
            "monthly" => assert!(
                fires
                    .iter()
                    .all(|f| local(f) == (6, 45) && f.local.day() == 15),
                "{fires:?}"
            ),
            _ => assert!(
                fires
                    .iter()
                    .all(|f| local(f) == (12, 0) && f.label.starts_with("Sun ")),
                "{fires:?}"
            ),
        }
        // Stored as the editor showed it, and shown again as that kind.
        let flow = api
            .get(&format!("/flows/{}", seen["flowId"].as_str().unwrap()))
            .await
            .expect(200)
            .body;
        assert_eq!(
            flow["trigger"],
            json!({"type": "schedule", "schedule": cron}),
            "{kind}"
        );
        assert_eq!(seen["kindAfterSave"], kind);
        assert_eq!(seen["cronAfterSave"], cron);
        assert_eq!(seen["firesAfterSave"].as_array().unwrap().len(), 5);
    }
    assert_eq!(report["cronFromWeekdays"], "30 17 * * 1-5");
    assert_eq!(
        report["cronVisibleLabels"],
        json!(["How often", "Cron expression"]),
        "{report:#}"
    );
    assert!(
        report["previewError"]
            .as_str()
            .unwrap()
            .contains("not a cron expression"),
        "{report:#}"
    );
    assert_eq!(report["previewErrorFires"], 0);

    // The run's time on the runs list and on its page, in Kolkata.
    let local = DateTime::parse_from_rfc3339(&run_created)
        .unwrap()
        .with_timezone(&kolkata())
        .format("%Y-%m-%d %H:%M:%S IST")
        .to_string();
    let row = report["runsRow"].as_array().unwrap();
    assert!(
        row.iter().any(|cell| cell == &json!(local)),
        "{local} in {row:?}"
    );
    assert_eq!(report["runCreated"], local);
}
