//! The manifests: served at `/manifests`, checked by `timix manifests check`.

use serde_json::json;

use crate::harness::Server;

#[tokio::test]
async fn the_catalogue_lists_every_action_and_trigger() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let list = c.get("/manifests").await.expect(200);
    let keys: Vec<&str> = list.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["key"].as_str().unwrap())
        .collect();
    for key in [
        "create_customer",
        "create_project",
        "create_task",
        "create_subtask",
        "create_time_entry",
        "update_customer",
        "find_customer",
        "http_request",
        "new_customer",
        "invoice_issued",
        "timesheet_approved",
    ] {
        assert!(keys.contains(&key), "{key} in {keys:?}");
    }
    assert_eq!(
        list.header("x-total-count"),
        Some(keys.len().to_string().as_str())
    );
    let one = c.get("/manifests/create_project").await.expect(200);
    assert_eq!(one.body["kind"], "action");
    assert_eq!(one.body["actionKind"], "create");
    assert_eq!(
        one.body["inputSchema"]["required"],
        json!(["customerId", "name"])
    );
    assert_eq!(one.body["sample"]["name"], "Website relaunch");
    let trigger = c.get("/manifests/new_customer").await.expect(200);
    assert_eq!(trigger.body["kind"], "trigger");
    assert_eq!(trigger.body["event"], "customer.created");
    c.get("/manifests/nope")
        .await
        .expect_error(404, "not_found");
    server
        .anonymous()
        .get("/manifests")
        .await
        .expect_error(401, "unauthenticated");
}

#[tokio::test]
async fn manifests_check_reports_every_problem_with_file_and_path() {
    let server = Server::start().await;
    let ok = server.db.cli_raw(&["manifests", "check"]);
    assert!(ok.status.success(), "{ok:?}");
    assert!(String::from_utf8_lossy(&ok.stdout).contains("all valid"));

    let dir = std::env::temp_dir().join(format!("timix-manifests-{}", ulid::Ulid::generate()));
    std::fs::create_dir_all(dir.join("actions")).unwrap();
    std::fs::create_dir_all(dir.join("triggers")).unwrap();
    let good = include_str!("../../manifests/connectors/timix/actions/create_customer.yaml");
    std::fs::write(dir.join("actions/create_customer.yaml"), good).unwrap();
    std::fs::write(
        dir.join("actions/broken.yaml"),
        good.replace("key: create_customer", "key: broken")
            .replace("method: POST", "method: \"{{input.m\"")
            .replace("select: item", "select: everything"),
    )
    .unwrap();
    std::fs::write(
        dir.join("triggers/new_thing.yaml"),
        "key: new_thing\nnoun: Thing\nlabel: New Thing\ndescription: x\nevent: thing.created\nlist: /things\nupdated: false\nsample: {}\n",
    )
    .unwrap();
    let bad = server
        .db
        .cli_raw(&["manifests", "check", "--dir", dir.to_str().unwrap()]);
    assert!(!bad.status.success());
    let out = String::from_utf8_lossy(&bad.stdout);
    // The problems, each with its file; the catalogue's summary line besides.
    let lines: Vec<&str> = out.lines().filter(|l| l.contains(".yaml: ")).collect();
    assert_eq!(lines.len(), 3, "{out}");
    assert!(out.contains("6 connectors"), "{out}");
    assert!(
        lines[0].starts_with("actions/broken.yaml: /output/select:"),
        "{out}"
    );
    assert!(
        lines[1].starts_with("actions/broken.yaml: /request/method:"),
        "{out}"
    );
    assert!(
        lines[2].starts_with("triggers/new_thing.yaml: /sample:"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
