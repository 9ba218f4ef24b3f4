//! Every page of the web UI in headless Chromium (`tests/ui/ui_a11y.mjs`) at a desktop and a
//! phone size: axe-core finds no violations, nothing scrolls sideways on a phone, the header
//! stays small and a table's status stays in view, a table's cells are named by their column on
//! a phone, a box that scrolls is reached by Tab and named, and the current section's link is
//! brought into view without the CSS that does it in Chromium. Screenshots of every page at both
//! sizes are kept under `target/tmp/ui-a11y/<backend>/`.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use crate::harness::{Script, Server, TestDb, backend, kept_dir};
use crate::ui::{PASSWORD, bootstrap_with_password};

/// Every page the script must have visited, by its name in the report.
const PAGES: &[&str] = &[
    "login",
    "dashboard",
    "flows",
    "flow-new",
    "flow-event",
    "flow-webhook",
    "flow-schedule",
    "flow-poll",
    "runs",
    "run-succeeded",
    "run-failed",
    "run-long",
    "flow-draft",
    "flow-versions",
    "flow-version",
    "flow-explain",
    "flow-samples",
    "run-test",
    "connections",
    "connections-connector",
    "connection",
    "connection-edit",
    "connectors",
    "connector",
    "webhooks",
    "webhook",
    "webhook-edit",
    "keys",
    "users",
    "user",
    "apps",
    "authorize",
    "connected-apps",
    "not-found",
    "invite",
];

/// The header on a phone: at most this many pixels of its 844 (it was a quarter).
const PHONE_HEADER_MAX: u64 = 100;

/// Runs the script, or `None` (loudly, and never on CI) when chromium or node is missing.
async fn visit_every_page() -> Option<(Value, PathBuf)> {
    let out = kept_dir(&format!("ui-a11y/{}", backend()));
    let script = Script::browser("ui_a11y.mjs", &out)
        .packages(&["axe-core"])
        .ready()?;
    let server = Server::start_with(TestDb::new().await, &[]).await;
    let (email, key, _) = bootstrap_with_password(&server.db, "Acme Ltd");
    let report = script
        .env("BASE", server.url(""))
        .env("EMAIL", &email)
        .env("PASSWORD", PASSWORD)
        .env("API_KEY", &key)
        .timeout(Duration::from_secs(600))
        .run()
        .await;
    Some((report, out))
}

/// What is wrong with one visit of one page, as lines for the failure message.
fn problems_of(visit: &Value, out: &std::path::Path) -> Vec<String> {
    let at = format!(
        "{} ({}) at {}px",
        visit["name"].as_str().unwrap_or("?"),
        visit["path"].as_str().unwrap_or("?"),
        visit["width"]
    );
    let mut problems = Vec::new();
    for mislabelled in visit["labelProblems"].as_array().into_iter().flatten() {
        problems.push(format!("{at}: table cell {mislabelled}"));
    }
    for scroller in visit["scrollBoxes"].as_array().into_iter().flatten() {
        let reachable = scroller["tabindex"] == "0";
        let named = scroller["label"].as_str().is_some_and(|l| !l.is_empty());
        if !reachable || !named {
            problems.push(format!(
                "{at}: a {} that scrolls is not reachable by Tab or has no name: {scroller}",
                scroller["tag"]
            ));
        }
    }
    if visit["width"] == 1280 && visit["labelsShown"] != 0 {
        problems.push(format!(
            "{at}: {} column names shown before cells",
            visit["labelsShown"]
        ));
    }
    if visit["status"] != visit["expectStatus"] {
        problems.push(format!("{at}: HTTP {}", visit["status"]));
    }
    for violation in visit["violations"].as_array().into_iter().flatten() {
        problems.push(format!(
            "{at}: axe {} ({}): {} at {}",
            violation["id"], violation["impact"], violation["help"], violation["targets"]
        ));
    }
    if visit["width"] == 390 {
        if visit["scrollWidth"].as_u64() > visit["innerWidth"].as_u64() {
            problems.push(format!(
                "{at}: scrolls sideways ({}px wide); sticking out: {}",
                visit["scrollWidth"], visit["overflowing"]
            ));
        }
        if visit["headerHeight"].as_u64().unwrap_or(u64::MAX) > PHONE_HEADER_MAX {
            problems.push(format!("{at}: header {}px high", visit["headerHeight"]));
        }
        if visit["currentNavInView"] == false {
            problems.push(format!("{at}: the current section's link is out of view"));
        }
        if visit["badgesOutOfView"].as_u64() != Some(0) {
            problems.push(format!(
                "{at}: {} status badges out of view",
                visit["badgesOutOfView"]
            ));
        }
    }
    let shot = out.join(visit["screenshot"].as_str().unwrap_or("missing"));
    if !shot.is_file() {
        problems.push(format!("{at}: no screenshot {}", shot.display()));
    }
    problems
}

#[tokio::test]
async fn every_page_passes_axe_and_fits_a_phone() {
    let Some((report, out)) = visit_every_page().await else {
        return;
    };
    assert!(report["failure"].is_null(), "{report:#}");
    let visits = report["pages"].as_array().expect("pages visited");
    for name in PAGES {
        for width in [1280, 390] {
            assert!(
                visits
                    .iter()
                    .any(|v| v["name"] == *name && v["width"] == width),
                "{name} was not visited at {width}px: {report:#}"
            );
        }
    }
    let problems: Vec<String> = visits.iter().flat_map(|v| problems_of(v, &out)).collect();
    assert!(problems.is_empty(), "\n{}\n", problems.join("\n"));
    assert_eq!(report["consoleErrors"], serde_json::json!([]), "{report:#}");
    phone_cells_name_their_column(visits);
    long_output_scrolls_by_keyboard(&report, visits);
    section_row_shows_the_current_link(&report);
}

/// What the cells of a page's tables read at a width, `::before` included.
fn cells_of(visits: &[Value], name: &str, width: u64) -> Vec<String> {
    let visit = visits
        .iter()
        .find(|v| v["name"] == name && v["width"] == width)
        .unwrap_or_else(|| panic!("{name} at {width}px"));
    visit["cells"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c.as_str().map(str::to_owned))
        .collect()
}

/// On a phone a cell reads "Status: succeeded"; on a desktop, under its column, "succeeded".
fn phone_cells_name_their_column(visits: &[Value]) {
    for (page, cell) in [
        ("runs", "Status: succeeded"),
        ("runs", "Steps: 1"),
        ("keys", "Last used: never"),
        ("flows", "State: enabled"),
        ("connections", "Base URL: "),
        ("webhook", "Answer: "),
    ] {
        let cells = cells_of(visits, page, 390);
        assert!(
            cells.iter().any(|c| c.starts_with(cell)),
            "{page} at 390px has no cell reading {cell:?}: {cells:?}"
        );
    }
    let desktop = cells_of(visits, "runs", 1280);
    assert!(
        desktop.iter().any(|c| c == "succeeded") && !desktop.iter().any(|c| c.contains("Status:")),
        "runs at 1280px: {desktop:?}"
    );
}

/// The long output scrolls in its box on a desktop; Tab reaches the box and the arrow keys
/// scroll it.
fn long_output_scrolls_by_keyboard(report: &Value, visits: &[Value]) {
    let desktop = visits
        .iter()
        .find(|v| v["name"] == "run-long" && v["width"] == 1280)
        .expect("run-long at 1280px");
    let boxes = desktop["scrollBoxes"].as_array().expect("scroll boxes");
    assert!(
        boxes.iter().any(|b| b["label"]
            .as_str()
            .is_some_and(|l| l.starts_with("Output of"))),
        "the long output does not scroll in its box: {desktop:#}"
    );
    let keyboard = &report["longOutput"];
    assert!(
        keyboard["tabs"].as_u64().is_some() && keyboard["scrollTop"].as_f64() >= Some(20.0),
        "the long output is not reached by Tab or not scrolled by the arrow keys: {keyboard:#}"
    );
}

/// Without the CSS property only Chromium knows, app.js scrolls the row of sections so the
/// current one is in view, moving neither the page nor its layout; without JavaScript the
/// link on /connected-apps (the last) is out of view, so the check above means something.
fn section_row_shows_the_current_link(report: &Value) {
    let visits = report["sectionRow"].as_array().expect("section row visits");
    assert_eq!(visits.len(), 3, "{report:#}");
    for visit in visits {
        assert_eq!(visit["cssLeft"], false, "{visit:#}");
        assert_eq!(visit["pageScrollY"], 0, "{visit:#}");
        if visit["javaScript"] == true {
            assert_eq!(visit["inView"], true, "{visit:#}");
            assert!(visit["rowScrollLeft"].as_u64() > Some(0), "{visit:#}");
            assert_eq!(visit["layoutShift"], 0, "{visit:#}");
        } else {
            assert_eq!(visit["inView"], false, "{visit:#}");
        }
    }
}
