//! The action manifests for invoices, timers, subtasks and users, performed by a flow against
//! the real instance: each step's record is read back through the API afterwards.

use serde_json::{Value, json};

use crate::harness::{Client, Server};

/// Logs `seconds` on `subtask` on `date` (in the week of 2 November 2026) for the key's user,
/// then submits and approves that week, so the time can be invoiced. Returns the entry's id.
pub(crate) async fn approved_time(
    c: &Client,
    user_id: &str,
    subtask: &str,
    seconds: u32,
) -> String {
    let entry = c
        .post(
            "/time-entries",
            json!({"subtaskId": subtask, "durationSeconds": seconds, "date": "2026-11-03"}),
        )
        .await
        .expect(201)
        .id();
    let sheets = c
        .get(&format!(
            "/timesheets?userId={user_id}&periodStart=2026-11-02"
        ))
        .await
        .expect(200);
    let sheet = sheets.items()[0]["id"].as_str().unwrap().to_owned();
    c.post(&format!("/timesheets/{sheet}/submit"), json!({}))
        .await
        .expect(200);
    c.post(&format!("/timesheets/{sheet}/approve"), json!({}))
        .await
        .expect(200);
    entry
}

/// Starts a webhook flow with `steps` on `payload` and returns the finished run.
async fn run_flow(server: &Server, c: &Client, steps: Value, payload: Value) -> Value {
    let flow = c
        .post(
            "/flows",
            json!({"name": "Billing", "trigger": {"type": "webhook"}, "steps": steps}),
        )
        .await
        .expect(201);
    let url = flow.body["trigger"]["webhookUrl"].as_str().unwrap();
    let anonymous = server.anonymous();
    let accepted = anonymous
        .send(anonymous.request(reqwest::Method::POST, url).json(&payload))
        .await
        .expect(202);
    c.finished_run(accepted.body["runId"].as_str().unwrap())
        .await
}

fn output<'a>(run: &'a Value, key: &str) -> &'a Value {
    let step = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["key"] == key)
        .unwrap_or_else(|| panic!("no step {key} in {run}"));
    assert_eq!(step["status"], "succeeded", "{step}");
    &step["output"]
}

#[tokio::test]
async fn a_flow_finds_times_and_invoices_with_the_new_actions() {
    let server = Server::start().await;
    let org = server.db.bootstrap("business");
    let c = server.as_key(&org.key);
    let customer = c.customer("Globex").await;
    let project = c
        .post(
            "/projects",
            json!({"customerId": customer, "name": "Relaunch", "billingMethod": "hourly", "hourlyRate": "100.00"}),
        )
        .await
        .expect(201)
        .id();
    let design = c.task(&project, "Design").await;
    let build = c.task(&project, "Build").await;
    // Two subtasks of the same name: the task tells them apart.
    let _other = c.subtask(&design, "Wireframes").await;
    let wireframes = c.subtask(&build, "Wireframes").await;
    let entry = approved_time(&c, &org.owner_id, &wireframes, 5400).await;
    let (member, _) = c.user_with_key(&server.db, "member").await;
    let email = c
        .get(&format!("/org-users/{member}"))
        .await
        .expect(200)
        .body["email"]
        .as_str()
        .unwrap()
        .to_owned();

    let run = run_flow(
        &server,
        &c,
        json!([
            {"key": "subtask", "action": "find_subtask",
             "input": {"q": "{{trigger.subtask}}", "taskId": "{{trigger.taskId}}"}},
            {"key": "user", "action": "find_org_user", "input": {"email": "{{trigger.email}}"}},
            {"key": "timer", "action": "start_timer",
             "input": {"subtaskId": "{{steps.subtask.id}}", "userId": "{{steps.user.id}}",
                       "notes": "Started by a flow"}},
            {"key": "stopped", "action": "stop_timer", "input": {"id": "{{steps.timer.id}}"}},
            {"key": "invoice", "action": "create_invoice",
             "input": {"customerId": "{{trigger.customerId}}", "from": "2026-11-01",
                       "to": "2026-11-30", "taxRate": "19"}},
            {"key": "changed", "action": "update_invoice",
             "input": {"id": "{{steps.invoice.id}}", "notes": "PO 4711", "taxRate": "7.5",
                       "dueDate": "2026-12-20"}},
            {"key": "issued", "action": "issue_invoice",
             "input": {"id": "{{steps.invoice.id}}", "issueDate": "2026-12-01"}}
        ]),
        json!({"subtask": "wirefr", "taskId": build, "email": email.to_uppercase(),
               "customerId": customer}),
    )
    .await;
    assert_eq!(run["status"], "succeeded", "{run}");

    // find_subtask: the one of the named task; find_org_user: by e-mail, whatever its case.
    assert_eq!(output(&run, "subtask")["id"], wireframes.as_str());
    assert_eq!(output(&run, "user")["id"], member.as_str());

    // start_timer and stop_timer: the member's entry ran, and is stopped now.
    let timer = output(&run, "timer");
    assert_eq!(timer["isRunning"], true, "{timer}");
    let timed = c
        .get(&format!("/time-entries/{}", timer["id"].as_str().unwrap()))
        .await
        .expect(200)
        .body;
    assert_eq!(timed["isRunning"], false, "{timed}");
    assert_eq!(timed["userId"], member.as_str());
    assert_eq!(timed["subtaskId"], wireframes.as_str());
    assert_eq!(timed["notes"], "Started by a flow");
    assert!(timed["endedAt"].is_string(), "{timed}");
    assert_eq!(output(&run, "stopped")["id"], timed["id"]);
    let running = c
        .get(&format!("/time-entries?userId={member}&isRunning=true"))
        .await
        .expect(200);
    assert!(running.items().is_empty(), "{:?}", running.items());

    // create_invoice drafted the approved time; update_invoice changed the draft;
    // issue_invoice gave it its number.
    let drafted = output(&run, "invoice");
    assert_eq!(drafted["status"], "draft");
    assert_eq!(drafted["subtotal"], "150.00", "1.5 h at 100.00: {drafted}");
    assert_eq!(drafted["lines"][0]["timeEntryIds"], json!([entry]));
    assert_eq!(output(&run, "changed")["notes"], "PO 4711");
    let id = drafted["id"].as_str().unwrap();
    let invoice = c.get(&format!("/invoices/{id}")).await.expect(200).body;
    assert_eq!(invoice["status"], "issued", "{invoice}");
    assert_eq!(invoice["number"], "INV-0001");
    assert_eq!(invoice["issueDate"], "2026-12-01");
    assert_eq!(invoice["dueDate"], "2026-12-20");
    assert_eq!(invoice["notes"], "PO 4711");
    assert_eq!(invoice["taxRate"], "7.50");
    assert_eq!(invoice["total"], "161.25");
    assert_eq!(invoice["customerId"], customer.as_str());
    let billed = c
        .get(&format!("/time-entries/{entry}"))
        .await
        .expect(200)
        .body;
    assert_eq!(billed["invoiceId"], id);
    let events = c
        .get("/events?types=invoice.created,invoice.issued")
        .await
        .expect(200);
    let kinds: Vec<&str> = events.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, vec!["invoice.created", "invoice.issued"]);

    // The API's refusals are the steps' errors, not retried: an issued invoice is not
    // issued again, and a search that finds nothing gives nothing.
    let again = run_flow(
        &server,
        &c,
        json!([
            {"key": "nobody", "action": "find_org_user", "input": {"email": "nobody@example.com"}},
            {"key": "issued", "action": "issue_invoice", "input": {"id": "{{trigger.invoiceId}}"}}
        ]),
        json!({"invoiceId": id}),
    )
    .await;
    assert_eq!(again["status"], "failed", "{again}");
    assert_eq!(again["steps"][0]["output"], Value::Null, "{again}");
    let refused = &again["steps"][1];
    assert_eq!(refused["error"]["code"], "invoice_not_draft", "{refused}");
    assert_eq!(refused["error"]["status"], 409);
    assert_eq!(refused["attempts"], 1);
    let still = c.get(&format!("/invoices/{id}")).await.expect(200).body;
    assert_eq!(still["number"], "INV-0001");
}
