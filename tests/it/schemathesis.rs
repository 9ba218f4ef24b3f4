//! The OpenAPI document tested by a tool nobody here wrote: schemathesis (pinned in
//! `tests/schemathesis/requirements.txt`) generates requests for every operation from the
//! document, valid and invalid, and checks that none is answered with a 5xx, that every status
//! and answer is the documented one, and that what the document calls valid is accepted; its
//! stateful phase follows the document's links from each create to what uses the record. Bounded: a fixed number of examples per operation and a
//! fixed seed, so a run takes about a minute and a failure can be replayed.

use std::path::PathBuf;
use std::time::Duration;

use crate::harness::{BASE, Server, TestDb};

/// Examples generated per operation and phase.
const MAX_EXAMPLES: &str = "25";
/// No 5xx; every status and body as documented; every request the document calls valid accepted
/// (the exceptions, each with its reason, are in `schemathesis.toml`).
const CHECKS: &str = "not_a_server_error,status_code_conformance,response_schema_conformance,positive_data_acceptance";
/// Fixed, so that a failure found in CI is found again on a laptop.
const SEED: &str = "20261124";

/// The pinned CLI, run through python3 so that its scripts folder need not be on PATH.
const RUN_CLI: &str =
    "import sys; from schemathesis.cli import schemathesis; sys.exit(schemathesis())";

/// Whether schemathesis is installed; in CI it must be.
fn schemathesis_ready() -> bool {
    let ready = std::process::Command::new("python3")
        .args(["-c", "import schemathesis.cli"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ready {
        assert!(
            std::env::var("CI").is_err(),
            "CI must run this test: `pip install -r tests/schemathesis/requirements.txt` is missing"
        );
        eprintln!(
            "\n!!! SKIPPED: schemathesis is missing (pip install -r tests/schemathesis/requirements.txt) !!!\n"
        );
    }
    ready
}

#[tokio::test]
async fn generated_requests_get_no_5xx_and_answers_match_the_openapi_document() {
    if !schemathesis_ready() {
        return;
    }
    // Thousands of requests from one key: lift the plan's per-minute limit so they reach the
    // handlers instead of all being answered 429.
    let server =
        Server::start_with(TestDb::new().await, &[("TIMIX_KEY_RATE_LIMIT", "1000000")]).await;
    let org = server.db.bootstrap("business");
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis");
    let reports = server.db.dir.join("schemathesis");
    let run = tokio::process::Command::new("python3")
        .args(["-c", RUN_CLI, "--config-file"])
        .arg(root.join("schemathesis.toml"))
        .arg("run")
        .arg(server.url(&format!("{BASE}/openapi.json")))
        .args(["--header", &format!("X-Api-Key: {}", org.key)])
        .args(["--checks", CHECKS])
        .args(["--phases", "examples,coverage,fuzzing,stateful"])
        .args(["--max-examples", MAX_EXAMPLES, "--seed", SEED])
        .args(["--workers", "2", "--generation-database", "none"])
        .args(["--request-timeout", "30", "--no-color"])
        .args(["--report", "junit", "--report-dir"])
        .arg(&reports)
        .current_dir(&server.db.dir)
        .kill_on_drop(true)
        .output();
    let run = tokio::time::timeout(Duration::from_secs(600), run)
        .await
        .expect("schemathesis finished within 10 minutes")
        .expect("python3 runs");
    let out = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "schemathesis found problems (replay with the seed {SEED}):\n{out}\n{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(
        out.contains("generated") && !out.contains("Tested: 0"),
        "schemathesis tested nothing:\n{out}"
    );
}
