//! The Helm chart (`helm/tally`), checked with the real Helm library
//! (helm-python-sdk: Helm's Go code, rendering offline) and the real
//! validators: strict lint, renders for eight value sets, every manifest
//! valid for two Kubernetes versions (`kubernetes-validate --strict`), the
//! security properties and RBAC verbs of docs/install.md on every
//! workload, the rendered config files loaded by the real binary, the
//! PrometheusRule through promtool, the dashboards' ConfigMaps as JSON,
//! and values.schema.json refusing bad values. The checks live in
//! `tests/peers/check_chart.py`; this test runs it and shows its report.

mod common;

use std::path::Path;
use std::process::Command;

#[test]
fn the_chart_lints_renders_validates_and_is_locked_down() {
    let test = "the_chart_lints_renders_validates_and_is_locked_down";
    let Some(python) = common::venv_peer("python", test) else {
        return;
    };
    let Some(promtool) = common::peer("promtool", test) else {
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let helm_sdk = Command::new(&python)
        .args(["-c", "import helm_python, kubernetes_validate"])
        .status()
        .expect("python");
    if !helm_sdk.success() {
        common::missing_peer(test, "helm-python-sdk or kubernetes-validate");
        return;
    }
    let out = tempfile::tempdir().expect("dir");
    let run = Command::new(&python)
        .arg(root.join("tests/peers/check_chart.py"))
        .arg("--chart")
        .arg(root.join("helm/tally"))
        .args(["--tally", env!("CARGO_BIN_EXE_tally")])
        .arg("--promtool")
        .arg(&promtool)
        .arg("--out")
        .arg(out.path())
        .arg("--docs")
        .arg(root.join("docs/install.md"))
        .output()
        .expect("run check_chart.py");
    let report = String::from_utf8_lossy(&run.stdout);
    let failed: Vec<&str> = report.lines().filter(|l| l.starts_with("FAIL")).collect();
    assert!(
        run.status.success() && failed.is_empty(),
        "chart checks failed:\n{}\n{}",
        failed.join("\n"),
        String::from_utf8_lossy(&run.stderr)
    );
    let passed = report.lines().filter(|l| l.starts_with("ok")).count();
    assert!(passed > 300, "only {passed} checks ran:\n{report}");
    eprintln!("{passed} chart checks passed");
}
