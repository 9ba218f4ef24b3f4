//! The OpenAPI document as outside developers meet it: valid OpenAPI 3.1 by
//! `openapi-spec-validator`, a typed client generated from it by `openapi-typescript` that
//! type-checks, and the details code generators and testers rely on (operation ids, every status
//! documented, tight inputs, links). The served document is the one checked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::harness::{BASE, Server, tool_ready};

async fn served_document(server: &Server) -> Value {
    server
        .anonymous()
        .get(&format!("{BASE}/openapi.json"))
        .await
        .expect(200)
        .body
}

fn write_document(server: &Server, document: &Value) -> PathBuf {
    let path = server.db.dir.join("openapi.json");
    std::fs::write(&path, serde_json::to_vec_pretty(document).unwrap()).unwrap();
    path
}

/// Every operation as (method, path, operation).
fn operations(document: &Value) -> Vec<(String, String, &Value)> {
    let mut all = Vec::new();
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            all.push((method.clone(), path.clone(), operation));
        }
    }
    all
}

fn operation<'a>(document: &'a Value, id: &str) -> &'a Value {
    operations(document)
        .into_iter()
        .find(|(_, _, o)| o["operationId"] == id)
        .unwrap_or_else(|| panic!("no operation {id}"))
        .2
}

fn parameter<'a>(operation: &'a Value, name: &str) -> &'a Value {
    operation["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name}"))
}

/// The schema a `$ref` names.
fn schema<'a>(document: &'a Value, reference: &Value) -> &'a Value {
    let name = reference["$ref"]
        .as_str()
        .and_then(|r| r.strip_prefix("#/components/schemas/"))
        .unwrap_or_else(|| panic!("not a reference: {reference}"));
    &document["components"]["schemas"][name]
}

fn body_schema<'a>(document: &'a Value, id: &str) -> &'a Value {
    schema(
        document,
        &operation(document, id)["requestBody"]["content"]["application/json"]["schema"],
    )
}

#[tokio::test]
async fn the_document_is_valid_openapi_3_1_by_openapi_spec_validator() {
    let ready = Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !tool_ready(
        "openapi-spec-validator (pip install -r tests/schemathesis/requirements.txt)",
        ready,
    ) {
        return;
    }
    let server = Server::start().await;
    let document = served_document(&server).await;
    let path = write_document(&server, &document);
    let check = Command::new("python3")
        .args([
            "-c",
            "import json, sys\n\
             from openapi_spec_validator.validation.validators import OpenAPIV31SpecValidator\n\
             errors = list(OpenAPIV31SpecValidator(json.load(open(sys.argv[1]))).iter_errors())\n\
             for e in errors[:20]: print(e.message[:300])\n\
             print(f'{len(errors)} errors')\n\
             sys.exit(1 if errors else 0)",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.status.success() && out.contains("0 errors"),
        "openapi-spec-validator:\n{out}\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
}

#[tokio::test]
async fn operations_have_unique_meaningful_ids_and_document_every_status() {
    let server = Server::start().await;
    let document = served_document(&server).await;
    let all = operations(&document);
    let ids: BTreeSet<&str> = all
        .iter()
        .map(|(method, path, o)| {
            o["operationId"]
                .as_str()
                .unwrap_or_else(|| panic!("{method} {path} has no operationId"))
        })
        .collect();
    assert_eq!(ids.len(), all.len(), "operation ids repeat: {ids:?}");
    for id in [
        "listCustomers",
        "createCustomer",
        "getCustomer",
        "updateCustomer",
        "deleteCustomer",
        "upsertCustomerByExternalId",
        "listTimeEntries",
        "startTimer",
        "issueInvoice",
        "listFlowVersions",
        "replayRun",
    ] {
        assert!(ids.contains(id), "{id} is missing: {ids:?}");
    }

    for (method, path, operation) in &all {
        let responses = operation["responses"].as_object().unwrap();
        for (status, response) in responses {
            assert!(
                !status.ends_with("XX"),
                "{method} {path}: a range {status} instead of statuses"
            );
            assert!(
                response["description"].is_string(),
                "{method} {path} {status} has no description"
            );
            if status.starts_with('4') || status.starts_with('5') {
                assert!(
                    response["content"]["application/json"]["schema"]["$ref"]
                        .as_str()
                        .is_some_and(|r| r.ends_with("/ErrorEnvelope")),
                    "{method} {path} {status} is not the error envelope"
                );
            }
        }
        let public = operation["security"].as_array().is_some_and(|s| {
            s.iter()
                .any(|r| r.as_object().is_some_and(|r| r.is_empty()))
        });
        if !public {
            for status in ["401", "403", "429", "500"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} does not document {status}"
                );
            }
        }
        if operation.get("requestBody").is_some() {
            for status in ["400", "413", "415", "422"] {
                assert!(
                    responses.contains_key(status),
                    "{method} {path} takes a body but does not document {status}"
                );
            }
        }
        if path.contains('{') && !public {
            assert!(responses.contains_key("404"), "{method} {path} lacks 404");
        }
    }
    // 429 says when to come back.
    assert!(
        operation(&document, "listCustomers")["responses"]["429"]["headers"]["Retry-After"]
            .is_object()
    );
}

#[tokio::test]
async fn inputs_say_what_the_api_accepts() {
    let server = Server::start().await;
    let document = served_document(&server).await;

    let list = operation(&document, "listCustomers");
    assert_eq!(parameter(list, "page")["schema"]["minimum"], 1);
    assert_eq!(parameter(list, "pageSize")["schema"]["maximum"], 200);
    assert_eq!(
        parameter(list, "updatedSince")["schema"]["format"],
        "date-time"
    );
    let revenue = operation(&document, "getRevenueReport");
    assert_eq!(parameter(revenue, "from")["schema"]["format"], "date");

    // A create says what it needs; an update takes any part of it; null only where it clears.
    let create = body_schema(&document, "createCustomer");
    let required: Vec<&str> = create["required"]
        .as_array()
        .expect("createCustomer's body has required fields")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(required.contains(&"name"), "{create}");
    let archived = &create["properties"]["isArchived"];
    assert!(
        archived["type"] == "boolean",
        "isArchived is a boolean, never null: {archived}"
    );
    let update = body_schema(&document, "updateCustomer");
    assert!(update.get("required").is_none(), "{update}");
    assert_eq!(update["properties"]["isArchived"]["type"], "boolean");
    let upsert = body_schema(&document, "upsertCustomerByExternalId");
    assert!(upsert["properties"].get("externalId").is_none(), "{upsert}");

    let key = body_schema(&document, "createApiKey");
    let roles = enum_of(&document, &key["properties"]["role"]);
    assert_eq!(
        roles,
        BTreeSet::from(["owner", "admin", "manager", "member", "viewer"]),
        "{key}"
    );
}

/// The `enum` of a property, inline or behind a `$ref`, null aside.
fn enum_of<'a>(document: &'a Value, property: &'a Value) -> BTreeSet<&'a str> {
    let mut found = BTreeSet::new();
    let mut look = |schema: &'a Value| {
        for value in schema["enum"].as_array().into_iter().flatten() {
            if let Some(value) = value.as_str() {
                found.insert(value);
            }
        }
    };
    look(property);
    if property.get("$ref").is_some() {
        look(schema(document, property));
    }
    for branch in property["oneOf"].as_array().into_iter().flatten() {
        look(branch);
        if branch.get("$ref").is_some() {
            look(schema(document, branch));
        }
    }
    found
}

#[tokio::test]
async fn each_create_links_to_the_operations_on_what_it_made() {
    let server = Server::start().await;
    let document = served_document(&server).await;
    let links = &operation(&document, "createCustomer")["responses"]["201"]["links"];
    for target in ["getCustomer", "updateCustomer", "deleteCustomer"] {
        let link = links
            .as_object()
            .unwrap()
            .values()
            .find(|l| l["operationId"] == target)
            .unwrap_or_else(|| panic!("no link to {target}: {links}"));
        assert_eq!(link["parameters"]["id"], "$response.body#/id");
    }
    // Every link names an operation that exists.
    let ids: BTreeSet<&str> = operations(&document)
        .iter()
        .filter_map(|(_, _, o)| o["operationId"].as_str())
        .collect();
    let mut count = 0;
    for (_, _, operation) in operations(&document) {
        for response in operation["responses"].as_object().unwrap().values() {
            for link in response["links"].as_object().into_iter().flatten() {
                let (_, link) = link;
                assert!(
                    ids.contains(link["operationId"].as_str().unwrap()),
                    "{link}"
                );
                count += 1;
            }
        }
    }
    assert!(count > 50, "only {count} links");
}

#[tokio::test]
async fn openapi_typescript_generates_a_client_that_type_checks() {
    let tests = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/openapi");
    let ready = tests.join("node_modules/openapi-typescript").exists()
        && tests.join("node_modules/typescript").exists()
        && Command::new("node").arg("--version").output().is_ok();
    if !tool_ready(
        "node or tests/openapi/node_modules (npm ci --prefix tests/openapi)",
        ready,
    ) {
        return;
    }
    let server = Server::start().await;
    let document = served_document(&server).await;
    let spec = write_document(&server, &document);
    let work = server.db.dir.join("client");
    std::fs::create_dir_all(&work).unwrap();
    let generated = work.join("api.d.ts");
    run_node(
        &tests,
        "node_modules/openapi-typescript/bin/cli.js",
        &[spec.as_os_str(), "-o".as_ref(), generated.as_os_str()],
    );
    std::fs::copy(tests.join("use.ts"), work.join("use.ts")).unwrap();
    run_node(
        &tests,
        "node_modules/typescript/bin/tsc",
        &[
            "--noEmit".as_ref(),
            "--strict".as_ref(),
            "--target".as_ref(),
            "es2022".as_ref(),
            work.join("use.ts").as_os_str(),
        ],
    );
}

fn run_node(dir: &Path, script: &str, args: &[&std::ffi::OsStr]) {
    let out = Command::new("node")
        .arg(dir.join(script))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{script} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
