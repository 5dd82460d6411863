//! schemathesis (installed by `scripts/install-test-peers.sh`) generates
//! requests from the collector's served OpenAPI document and checks every
//! response: no 5xx, responses conform, schema-valid requests are accepted
//! and schema-violating ones refused. A small simulated fleet fills the
//! collector first, so the views' rows are checked against their schemas
//! too, not only empty lists.

mod common;

use std::process::Command;

#[test]
fn the_api_matches_its_openapi_document() {
    let Some(schemathesis) =
        common::venv_peer("schemathesis", "the_api_matches_its_openapi_document")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (_collector, port) = common::ready_collector(dir.path());
    let base = format!("http://127.0.0.1:{port}");
    let simulate = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["simulate", "--collector", &base, "--nodes", "3"])
        .args(["--backfill", "2h", "--step", "10m"])
        .output()
        .expect("simulate");
    assert!(
        simulate.status.success(),
        "{}",
        String::from_utf8_lossy(&simulate.stderr)
    );
    let output = Command::new(&schemathesis)
        .args([
            "run",
            &format!("{base}/api/v1/openapi.json"),
            "--url",
            &base,
        ])
        .args(["--checks", "all", "--max-examples", "50", "--seed", "1"])
        .env("SCHEMATHESIS_HOOKS", "")
        // Its example cache goes into the working directory: keep it out of
        // the repository.
        .current_dir(dir.path())
        .output()
        .expect("run schemathesis");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success(),
        "schemathesis found problems:\n{report}"
    );
    assert!(report.contains("passed"), "{report}");
}
