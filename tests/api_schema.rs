//! schemathesis (installed by `scripts/install-test-peers.sh`) generates
//! requests from the collector's served OpenAPI document and checks every
//! response: no 5xx, responses conform, schema-valid requests are accepted
//! and schema-violating ones refused.

mod common;

use std::process::Command;
use std::time::Duration;

#[test]
fn the_api_matches_its_openapi_document() {
    let schemathesis =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv-peers/bin/schemathesis");
    if !schemathesis.is_file() {
        if std::env::var("TALLY_REQUIRE_PEERS").as_deref() == Ok("1") {
            panic!("schemathesis is not installed (run scripts/install-test-peers.sh)");
        }
        eprintln!(
            "SKIP the_api_matches_its_openapi_document: run scripts/install-test-peers.sh to install schemathesis"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let _collector = common::Running {
        child: Command::new(env!("CARGO_BIN_EXE_tally"))
            .args([
                "collector",
                "--listen",
                &format!("127.0.0.1:{port}"),
                "--data-dir",
            ])
            .arg(dir.path().join("data"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("collector"),
        name: "tally collector",
    };
    let base = format!("http://127.0.0.1:{port}");
    assert!(common::wait_ready(
        &format!("{base}/readyz"),
        Duration::from_secs(10)
    ));
    let output = Command::new(&schemathesis)
        .args([
            "run",
            &format!("{base}/api/v1/openapi.json"),
            "--url",
            &base,
        ])
        .args(["--checks", "all", "--max-examples", "50", "--seed", "1"])
        .env("SCHEMATHESIS_HOOKS", "")
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
