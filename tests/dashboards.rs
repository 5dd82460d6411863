//! The dashboards and alert rules, checked with the real tools: the
//! generator regenerates every dashboard and lints it (descriptions,
//! units, templated datasource, unique ids, known metrics); the
//! TypeScript compiler checks them against `@grafana/schema`; promtool
//! parses every panel query, checks the rule file and runs its unit
//! tests. The end-to-end run against live data is `dashboards_e2e.rs`.

mod common;

use std::path::Path;
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn dashboards_are_generated_and_lint_clean() {
    let Some(python) = common::peer("python3", "dashboards_are_generated") else {
        return;
    };
    let out = Command::new(python)
        .arg(root().join("dashboards/generate.py"))
        .arg("--check")
        .output()
        .expect("run generate.py");
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The real TypeScript compiler checks each dashboard against the
/// `Dashboard` type Grafana publishes in `@grafana/schema` (installed by
/// `scripts/install-test-peers.sh` into `.peers/npm`); a planted typo must
/// fail the same check, so the check itself is proven to bite.
#[test]
fn dashboards_match_grafanas_published_schema() {
    let npm = root().join(".peers/npm");
    let tsc = npm.join("node_modules/.bin/tsc");
    if !tsc.is_file() {
        common::missing_peer(
            "dashboards_match_grafanas_published_schema",
            "tsc with @grafana/schema",
        );
        return;
    }
    // Inside the npm folder, so `@grafana/schema` resolves.
    let dir = tempfile::Builder::new()
        .prefix("check-")
        .tempdir_in(&npm)
        .expect("dir");
    let as_typescript = |json: &str| {
        format!(
            "import type {{ Dashboard }} from '@grafana/schema';\nexport const dashboard = ({json}) satisfies Dashboard;\n"
        )
    };
    let tsc_on = |files: &[std::path::PathBuf]| {
        Command::new(&tsc)
            .args([
                "--noEmit",
                "--strict",
                "--skipLibCheck",
                "--target",
                "es2022",
                "--module",
                "nodenext",
                "--moduleResolution",
                "nodenext",
            ])
            .args(files)
            .current_dir(&npm)
            .output()
            .expect("run tsc")
    };
    let mut files = Vec::new();
    let mut first = None;
    for entry in std::fs::read_dir(root().join("dashboards")).expect("dashboards") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let json = std::fs::read_to_string(&path).expect("read");
        let stem = path
            .file_stem()
            .expect("stem")
            .to_string_lossy()
            .into_owned();
        let file = dir.path().join(format!("{stem}.ts"));
        std::fs::write(&file, as_typescript(&json)).expect("write");
        first.get_or_insert(json);
        files.push(file);
    }
    assert_eq!(files.len(), 6, "six dashboards");
    let out = tsc_on(&files);
    assert!(
        out.status.success(),
        "dashboards do not match @grafana/schema:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let broken = first
        .expect("a dashboard")
        .replacen("\"title\"", "\"titel\"", 1);
    let file = dir.path().join("broken.ts");
    std::fs::write(&file, as_typescript(&broken)).expect("write");
    let out = tsc_on(&[file]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        !out.status.success() && text.contains("titel"),
        "a misspelt key passed the schema check: {text}"
    );
}

#[test]
fn every_panel_query_parses_and_the_rules_pass_their_unit_tests() {
    let Some(promtool) = common::peer("promtool", "every_panel_query_parses") else {
        return;
    };
    // Each panel query as a recording rule, the variables matching all.
    let dir = tempfile::tempdir().expect("dir");
    let mut rules = String::from("groups:\n  - name: panels\n    rules:\n");
    let mut count = 0;
    for entry in std::fs::read_dir(root().join("dashboards")).expect("dashboards") {
        let path = entry.expect("entry").path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let board: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        for panel in board["panels"].as_array().expect("panels") {
            for target in panel["targets"].as_array().expect("targets") {
                let mut expr = target["expr"].as_str().expect("expr").to_owned();
                for var in ["$cluster", "$namespace", "$node", "$model"] {
                    expr = expr.replace(var, ".*");
                }
                rules.push_str(&format!(
                    "      - record: panel:query_{count}\n        expr: {}\n",
                    serde_json::to_string(&expr).expect("quote")
                ));
                count += 1;
            }
        }
    }
    assert!(count > 50, "only {count} queries");
    let file = dir.path().join("panels.yml");
    std::fs::write(&file, rules).expect("write");
    let run = |args: &[&std::ffi::OsStr]| {
        let out = Command::new(&promtool)
            .args(args)
            .output()
            .expect("promtool");
        assert!(
            out.status.success(),
            "promtool {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(&["check".as_ref(), "rules".as_ref(), file.as_os_str()]);
    let alerts = root().join("dashboards/alerts");
    run(&[
        "check".as_ref(),
        "rules".as_ref(),
        alerts.join("tally.rules.yml").as_os_str(),
    ]);
    run(&[
        "test".as_ref(),
        "rules".as_ref(),
        alerts.join("tally.rules.test.yml").as_os_str(),
    ]);
}

/// Every alert has severity, summary, description and a runbook link to
/// its own section of `docs/dashboards.md`, and every section an alert.
#[test]
fn every_alert_has_its_annotations_and_runbook() {
    let rules: serde_yaml_ng::Value = serde_yaml_ng::from_str(
        &std::fs::read_to_string(root().join("dashboards/alerts/tally.rules.yml")).expect("rules"),
    )
    .expect("yaml");
    let docs = std::fs::read_to_string(root().join("docs/dashboards.md")).expect("docs");
    let mut alerts = Vec::new();
    for group in rules["groups"].as_sequence().expect("groups") {
        for rule in group["rules"].as_sequence().expect("rules") {
            let Some(name) = rule["alert"].as_str() else {
                continue;
            };
            alerts.push(name.to_owned());
            let severity = rule["labels"]["severity"].as_str().unwrap_or_default();
            assert!(
                ["critical", "warning", "info"].contains(&severity),
                "{name}: severity {severity:?}"
            );
            for key in ["summary", "description"] {
                assert!(
                    rule["annotations"][key]
                        .as_str()
                        .is_some_and(|t| !t.is_empty()),
                    "{name}: no {key}"
                );
            }
            assert_eq!(
                rule["annotations"]["runbook"].as_str(),
                Some(format!("docs/dashboards.md#{}", name.to_lowercase()).as_str()),
                "{name}: runbook link"
            );
            assert!(
                docs.contains(&format!("\n### {name}\n")),
                "{name}: no runbook section in docs/dashboards.md"
            );
        }
    }
    let sections = docs.matches("\n### Tally").count();
    assert_eq!(sections, alerts.len(), "runbook sections without an alert");
    assert!(
        docs.contains(&format!("| {} alerts and", alerts.len())),
        "docs/dashboards.md states another number of alerts than {}",
        alerts.len()
    );
}
