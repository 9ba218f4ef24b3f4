//! The flow builder in headless Chromium (`tests/ui/ui_builder.mjs`): the onboarding flow built
//! with pickers and the data panel only, counted in clicks and keystrokes; a typo flagged as a
//! draft before it is live; a picker searched; Enter and leaving guarded; the builder without
//! JavaScript. Screenshots go to `target/tmp/ui-screenshots/builder/<backend>/`.

use serde_json::json;

use crate::harness::{Script, Server, TestDb, backend, kept_dir};
use crate::ui::{Browser, PASSWORD, bootstrap_with_password};

/// Today's builder took 23 clicks and 65 keystrokes for the onboarding flow.
const CLICKS_BEFORE: u64 = 23;
const KEYSTROKES_BEFORE: u64 = 65;

#[tokio::test]
async fn in_chromium_the_onboarding_flow_is_picked_not_typed_and_a_typo_is_flagged() {
    let out = kept_dir(&format!("ui-screenshots/builder/{}", backend()));
    let Some(script) = Script::browser("ui_builder.mjs", &out).ready() else {
        return;
    };
    let server = Server::start_with(TestDb::new().await, &[]).await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme Ltd");
    let report = script
        .env("BASE", server.url(""))
        .env("EMAIL", &email)
        .env("PASSWORD", PASSWORD)
        .env("API_KEY", &key)
        .run()
        .await;
    assert!(report["failure"].is_null(), "{report:#}");
    assert_eq!(report["consoleErrors"], json!([]), "{report:#}");

    // Built with pickers and the data panel, without a page load, in under half the effort.
    let clicks = report["count"]["clicks"].as_u64().unwrap();
    let keystrokes = report["count"]["keystrokes"].as_u64().unwrap();
    eprintln!(
        "onboarding flow: {clicks} clicks and {keystrokes} keystrokes (before: {CLICKS_BEFORE} and {KEYSTROKES_BEFORE})"
    );
    assert!(clicks * 2 < CLICKS_BEFORE, "{clicks} clicks");
    assert!(
        keystrokes * 2 < KEYSTROKES_BEFORE,
        "{keystrokes} keystrokes"
    );
    assert_eq!(report["navigationsWhileBuilding"], 0, "{report:#}");
    assert_eq!(report["trigger"], "event:customer.created");
    assert!(
        report["customerPicked"]
            .as_str()
            .unwrap()
            .starts_with("Customer from the trigger"),
        "{report:#}"
    );
    assert_eq!(report["customerMapHidden"], true);
    let options = report["customerOptions"].as_array().unwrap();
    assert!(options.iter().any(|o| o == "Initech"), "{options:?}");
    assert!(
        options
            .iter()
            .any(|o| o.as_str().unwrap().starts_with("Map a value"))
    );
    assert_eq!(
        report["billingOptions"],
        json!([
            "— choose —",
            "hourly",
            "fixed_fee",
            "non_billable",
            "Map a value (a variable or text)…"
        ])
    );
    assert_eq!(report["startsOnType"], "date");
    assert!(
        report["dataRow"].as_str().unwrap().starts_with("Name: "),
        "{report:#}"
    );
    assert_eq!(report["projectName"], "{{trigger.name}}");
    assert_eq!(report["addStepFocus"], "steps[1].action");
    assert_eq!(report["scrolledDown"], true);
    assert!(
        report["projectPicked"]
            .as_str()
            .unwrap()
            .starts_with("Project from step 1 (project)"),
        "{report:#}"
    );
    assert!(
        report["createdNotice"]
            .as_str()
            .unwrap()
            .starts_with("Flow created. It is enabled"),
        "{report:#}"
    );

    // The flow as stored, and its run on a new customer.
    let api = server.as_key(&key);
    let flow_id = report["flowId"].as_str().unwrap();
    let steps = json!([
        {"key": "project", "action": "create_project", "connectionId": null,
         "input": {"customerId": "{{trigger.id}}", "name": "{{trigger.name}}"}},
        {"key": "task", "action": "create_task", "connectionId": null,
         "input": {"projectId": "{{steps.project.id}}", "name": "Kick-off"}}
    ]);
    assert_eq!(report["typo"]["liveSteps"], steps, "the typo is not live");
    assert_eq!(report["run"]["status"], "succeeded", "{report:#}");
    let tasks = api
        .get("/api/integration/v1/tasks?name=Kick-off")
        .await
        .items();
    assert_eq!(tasks.len(), 1, "{tasks:?}");
    let project = api
        .get(&format!(
            "/api/integration/v1/projects/{}",
            tasks[0]["projectId"].as_str().unwrap()
        ))
        .await
        .body;
    assert_eq!(project["name"], "Globex");
    // Once run, the panel shows the run's outputs.
    let origins = report["panelOrigins"].as_array().unwrap();
    assert!(
        origins
            .iter()
            .any(|o| o == "Step 1: Create Project (the latest run)"),
        "{origins:?}"
    );

    // The typo: flagged at its field, kept as a draft; fixed from the panel, it went live.
    let warning = report["typo"]["warning"].as_str().unwrap();
    assert!(warning.contains("{{trigger.nme}}"), "{warning}");
    assert!(warning.contains("not in the data"), "{warning}");
    assert!(
        report["typo"]["alert"]
            .as_str()
            .unwrap()
            .contains("Saved as a draft, not live"),
        "{report:#}"
    );
    assert_eq!(report["typo"]["banner"], "Unpublished draft");
    assert_eq!(
        report["typo"]["shownValue"],
        "Kick-off with {{trigger.nme}}"
    );
    // Reopened, the page edits the draft and says so, with one Publish; discarded, the live
    // version is back.
    let reopened = &report["draftReopened"];
    let note = reopened["note"].as_str().unwrap();
    let live = reopened["liveVersion"].as_i64().unwrap();
    assert!(
        note.starts_with("Editing the draft saved at 20")
            && note.contains(&format!("; the live version is {live}.")),
        "{report:#}"
    );
    assert_eq!(reopened["shownValue"], "Kick-off with {{trigger.nme}}");
    assert_eq!(reopened["publishButtons"], json!(["Publish anyway"]));
    assert_eq!(
        report["discarded"],
        json!({"banners": 0, "shownValue": "Kick-off", "hasDraft": false}),
        "{report:#}"
    );
    assert!(
        report["publishedNotice"]
            .as_str()
            .unwrap()
            .ends_with("is live."),
        "{report:#}"
    );
    assert_eq!(report["liveAfterPublish"], "Kick-off with {{trigger.nme}}");
    assert_eq!(report["fixedNotice"], "Flow saved.");
    assert_eq!(report["draftBannerAfterFix"], 0);
    assert_eq!(
        report["liveAfterFix"][1]["input"]["name"],
        "Kick-off with {{trigger.name}}"
    );
    let flow = api
        .get(&format!("/api/integration/v1/flows/{flow_id}"))
        .await
        .body;
    assert_eq!(flow["isEnabled"], true);

    // The yes/no field: a switch, off while unset, on by Space, saved as `true`; its text
    // field only when "Map a value…" is ticked.
    let switch = &report["billableSwitch"];
    assert_eq!(switch["checked"], false, "{report:#}");
    assert_eq!(switch["mapHidden"], true, "{report:#}");
    assert_eq!(switch["mapShownWhenAsked"], true, "{report:#}");
    assert_eq!(switch["checkedBySpace"], true, "{report:#}");
    assert_eq!(switch["saved"]["billable"], true, "{report:#}");
    assert_eq!(switch["reopened"], true, "{report:#}");

    // An `if` inside a `forEach`, built in the form, stored as the flow language has them,
    // shown again as the same form, and run: two plan tasks for the Corp, none for Hooli.
    assert!(
        report["controlText"]
            .as_str()
            .unwrap()
            .contains("only if {{trigger.name}} contains Corp"),
        "{report:#}"
    );
    assert!(
        report["branchNotice"]
            .as_str()
            .unwrap()
            .starts_with("Flow created. It is enabled"),
        "{report:#}"
    );
    let branch = api
        .get(&format!(
            "/api/integration/v1/flows/{}",
            report["branchFlowId"].as_str().unwrap()
        ))
        .await
        .body;
    let each = &branch["steps"][1];
    assert_eq!(each["type"], "forEach", "{branch:#}");
    assert_eq!(each["items"], json!(["Plan A", "Plan B"]));
    let check = &each["steps"][0];
    assert_eq!(check["type"], "if");
    assert_eq!(
        check["condition"],
        json!({"left": "{{trigger.name}}", "op": "contains", "right": "Corp"})
    );
    assert_eq!(check["then"][0]["action"], "create_task");
    assert_eq!(
        check["then"][0]["input"],
        json!({"projectId": "{{steps.project.id}}", "name": "{{item}}"})
    );
    assert_eq!(report["branchReopened"]["left"], "{{trigger.name}}");
    assert_eq!(report["branchReopened"]["items"], "[\"Plan A\",\"Plan B\"]");
    assert_eq!(report["branchReopened"]["name"], "{{item}}");
    assert_eq!(
        report["branchRuns"],
        json!(["succeeded", "succeeded"]),
        "{report:#}"
    );
    for plan in ["Plan A", "Plan B"] {
        let tasks = api
            .get(&format!(
                "/api/integration/v1/tasks?name={}",
                plan.replace(' ', "%20")
            ))
            .await
            .items();
        assert_eq!(tasks.len(), 1, "{plan}: {tasks:?}");
        let project = api
            .get(&format!(
                "/api/integration/v1/projects/{}",
                tasks[0]["projectId"].as_str().unwrap()
            ))
            .await
            .body;
        assert_eq!(project["name"], "Umbrella Corp");
    }

    // A searched picker, Enter, leaving with changes.
    assert!(
        report["searchedValue"]
            .as_str()
            .unwrap()
            .starts_with("cus_"),
        "{report:#}"
    );
    assert_eq!(
        report["plainError"]["message"], "Fill this in: the action needs it.",
        "{report:#}"
    );
    assert!(
        report["plainError"]["detail"]
            .as_str()
            .unwrap()
            .starts_with("steps[0].input.id: "),
        "{report:#}"
    );
    assert!(
        report["plainError"]["summary"]
            .as_str()
            .unwrap()
            .starts_with("The flow was not saved"),
        "{report:#}"
    );
    assert_eq!(report["plainError"]["url"], "/flows/new");
    assert_eq!(report["enterNavigations"], 0);
    assert_eq!(report["enterUrl"], "/flows/new");
    assert!(
        !report["flowsAfterEnter"]
            .as_array()
            .unwrap()
            .iter()
            .any(|n| n == "Half built"),
        "{report:#}"
    );
    assert!(
        report["dialogs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d == "beforeunload"),
        "{report:#}"
    );

    // Without JavaScript: the picker with its text field, the variables to copy, a step added.
    assert_eq!(report["noJs"]["mapVisible"], true);
    assert!(
        report["noJs"]["picked"]
            .as_str()
            .unwrap()
            .starts_with("Customer from the trigger")
    );
    assert_eq!(report["noJs"]["variableShown"], true);
    assert_eq!(report["noJs"]["keptTask"], "Kick-off with {{trigger.name}}");
    assert_eq!(report["noJs"]["movedUp"], "create_task");
}

/// Schedules are said in words on the flows list and the flow page, by the schedule editor's
/// kinds (a cron expression of no kind is shown as itself), and the trigger is "Schedule".
#[tokio::test]
async fn schedules_are_described_in_words() {
    let server = Server::start_with(TestDb::new().await, &[]).await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme Ltd");
    let api = server.as_key(&key);
    let mut ids = Vec::new();
    for (name, cron) in [
        ("Standup", "15 8 * * 1-5"),
        ("Sync", "*/15 * * * *"),
        ("Sundays", "0 0 * * 0"),
    ] {
        let flow = api
            .post(
                "/flows",
                json!({"name": name, "trigger": {"type": "schedule", "schedule": cron},
                       "steps": [{"key": "s", "type": "set", "values": {"a": "1"}}]}),
            )
            .await
            .expect(201)
            .body;
        ids.push(flow["id"].as_str().unwrap().to_owned());
    }
    let mut browser = Browser::new(&server);
    browser.log_in(&email, PASSWORD).await;
    let list = browser.get("/flows").await;
    for words in [
        ">Weekdays at 08:15</td>",
        ">Every 15 minutes</td>",
        ">Cron 0 0 * * 0</td>",
    ] {
        assert!(list.body.contains(words), "{words}: {}", list.body);
    }
    let page = browser.get(&format!("/flows/{}", ids[0])).await;
    assert!(
        page.body
            .contains("<span id=\"trigger-words\">Weekdays at 08:15</span>"),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<option value=\"schedule\" selected>Schedule</option>"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("Schedule (cron)"), "{}", page.body);
}
