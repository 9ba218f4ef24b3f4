//! The builder's tree of nodes in headless Chromium (`tests/ui/ui_tree.mjs`): an if/else with a
//! stop, values, paths and a loop inside a path, added (partly with the keyboard), moved and
//! removed without a page load, the focus where the work goes on; a typo in a branch flagged
//! at its field; the flow stored as the flow language's nodes and run; the tree without
//! JavaScript; axe-core and a phone's width. Screenshots go to
//! `target/tmp/ui-screenshots/tree/<backend>/`.

use serde_json::json;

use crate::harness::{Script, Server, TestDb, backend, kept_dir};
use crate::ui::{PASSWORD, bootstrap_with_password};

#[tokio::test]
async fn in_chromium_a_flow_of_branches_paths_and_loops_is_built_as_a_tree_and_runs() {
    let out = kept_dir(&format!("ui-screenshots/tree/{}", backend()));
    let Some(script) = Script::browser("ui_tree.mjs", &out)
        .packages(&["axe-core"])
        .ready()
    else {
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

    // Built without a page load; the focus follows the work.
    assert_eq!(report["loadsWhileBuilding"], 0, "{report:#}");
    assert_eq!(report["focusAfterIf"], "s1-cond-left");
    assert_eq!(report["focusAfterThenStep"], "s1-then-0-action");
    assert_eq!(report["focusAfterMove"], "s2-up", "the moved step's button");
    assert_eq!(report["focusAfterRemove"], "steps-add");
    assert_eq!(report["delayHeading"], "5 Wait 15 minutes");
    // The tree reads as what it does, numbered by branch.
    let built = json!([
        "1 Create Project",
        "2 If {{trigger.name}} contains Corp",
        "2.1 Create Task",
        "2.e1 Stop: the run succeeds",
        "3 Set greeting",
        "4 Paths: the first that matches",
        "4.a1 For each item of [\"Plan A\", \"Plan B\"]",
        "4.a1.1 Create Task",
    ]);
    assert_eq!(report["headingsBuilt"], built, "{report:#}");

    // The typo in the else branch was flagged at its field: created, not enabled.
    assert!(
        report["typo"].as_str().unwrap().contains("trigger.nme"),
        "{report:#}"
    );
    assert_eq!(report["afterCreate"]["isEnabled"], false);
    assert_eq!(report["afterCreate"]["hasDraft"], true);

    // Stored as the flow language's nodes.
    let steps = &report["saved"]["steps"];
    assert_eq!(report["saved"]["isEnabled"], true, "{report:#}");
    assert_eq!(steps[0]["action"], "create_project");
    assert_eq!(steps[1]["type"], "if");
    assert_eq!(
        steps[1]["condition"],
        json!({"left": "{{trigger.name}}", "op": "contains", "right": "Corp"})
    );
    assert_eq!(steps[1]["then"][0]["action"], "create_task");
    assert_eq!(
        steps[1]["else"][0],
        json!({"key": "stop", "type": "stop", "status": "succeeded", "message": "Not a Corp"})
    );
    assert_eq!(steps[2]["type"], "set");
    assert_eq!(
        steps[2]["values"],
        json!({"greeting": "Hello {{trigger.name}}"})
    );
    assert_eq!(steps[3]["type"], "switch");
    assert_eq!(steps[3]["cases"][0]["name"], "Umbrella");
    let each = &steps[3]["cases"][0]["steps"][0];
    assert_eq!(each["type"], "forEach");
    assert_eq!(each["items"], json!(["Plan A", "Plan B"]));
    assert_eq!(each["steps"][0]["input"]["name"], "{{item}}");
    assert_eq!(steps.as_array().unwrap().len(), 4, "the delay was removed");
    // Reopened, the same tree (the list as the API stores it).
    let mut reopened = built.clone();
    reopened[6] = json!("4.a1 For each item of [\"Plan A\",\"Plan B\"]");
    assert_eq!(report["headingsReopened"], reopened);

    // Run: Umbrella Corp gets a kick-off and a task per plan; Hooli stops in the else branch.
    assert_eq!(
        report["runs"],
        json!(["succeeded", "succeeded"]),
        "{report:#}"
    );
    assert_eq!(
        report["projects"]["Umbrella Corp"],
        json!(["Kick-off", "Plan A", "Plan B"])
    );
    assert_eq!(report["projects"]["Hooli"], json!([]));

    assert_eq!(report["axe"], json!([]), "{report:#}");
    assert!(report["phoneOverflow"].as_i64().unwrap() <= 0, "{report:#}");
    assert_eq!(report["noJsDelay"], "2.2 Wait 15 minutes");
}
