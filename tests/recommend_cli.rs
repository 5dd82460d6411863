//! `tally recommend` end to end: the real collector on loopback is filled
//! by `tally simulate` (fixed seed), the analyzer runs on demand, and the
//! CLI prints the planted problems in every format; bad arguments and an
//! unreachable collector get clear errors and their own exit codes.

mod common;

use std::process::{Command, Output};

use serde_json::Value;

fn tally(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(args)
        .output()
        .expect("run tally")
}

#[test]
fn recommend_prints_the_planted_problems() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_collector, port) = common::ready_collector(dir.path());
    let url = format!("http://127.0.0.1:{port}");
    let simulated = tally(&[
        "simulate",
        "--collector",
        &url,
        "--nodes",
        "3",
        "--seed",
        "7",
        "--backfill",
        "2d",
        "--step",
        "30m",
    ]);
    assert!(
        simulated.status.success(),
        "{}",
        String::from_utf8_lossy(&simulated.stderr)
    );
    let output = tally(&[
        "recommend",
        "--collector",
        &url,
        "--refresh",
        "--format",
        "json",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let cards: Vec<Value> = serde_json::from_slice(&output.stdout).expect("json");
    let kinds: Vec<&str> = cards.iter().filter_map(|c| c["kind"].as_str()).collect();
    // Oversized requests and the GPU notebook left idle on the p5 node.
    for planted in ["cpu_request", "memory_request", "gpu_idle"] {
        assert!(kinds.contains(&planted), "{planted} missing: {kinds:?}");
    }
    for card in &cards {
        assert!(
            card["monthly_savings"].as_f64().is_some_and(|s| s >= 0.0),
            "{card}"
        );
        assert!(
            card["explanation"].as_str().is_some_and(|e| e.len() > 40),
            "{card}"
        );
        assert_eq!(card["id"].as_str().map(str::len), Some(16), "{card}");
    }
    // Filters and the other formats.
    let csv = tally(&[
        "recommend",
        "--collector",
        &url,
        "--kind",
        "gpu_idle",
        "--format",
        "csv",
    ]);
    assert!(csv.status.success());
    let text = String::from_utf8_lossy(&csv.stdout);
    let mut lines = text.lines();
    assert!(
        lines
            .next()
            .is_some_and(|h| h.starts_with("id,kind,namespace"))
    );
    assert!(lines.clone().count() >= 1, "{text}");
    assert!(lines.all(|l| l.contains(",gpu_idle,")), "{text}");
    let table = tally(&["recommend", "--collector", &url, "--min-savings", "5"]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.starts_with("SAVINGS/MO"), "{text}");
    assert!(
        text.contains("with overlapping cards counted once"),
        "{text}"
    );
    parquet_reads_back_in_pyarrow(&url, dir.path(), &cards);
    every_format_parses_with_its_standard_parser(&url, dir.path(), &cards);
    patches_gates_and_watch(&url, dir.path());
    let yaml = tally(&["recommend", "--collector", &url, "--format", "yaml"]);
    assert!(String::from_utf8_lossy(&yaml.stdout).contains("kind: "));
    // Bad input: a clear message and exit code 2.
    let bad = tally(&["recommend", "--collector", &url, "--kind", "nonsense"]);
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("unknown kind"));
    let bad = tally(&["recommend", "--collector", &url, "--format", "xml"]);
    assert_eq!(bad.status.code(), Some(2));
    // The same numbers on /metrics.
    let (status, metrics) = common::http_get(&format!("{url}/metrics")).expect("metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("tally_savings_potential_monthly{kind=\"gpu_idle\""),
        "{metrics}"
    );
    assert!(metrics.contains("tally_cost_monthly{level=\"namespace\""));
    assert!(
        metrics.contains("tally_gpu_cost_monthly{node=\"sim-node-0001\""),
        "{metrics}"
    );
    assert!(
        metrics.contains("tally_model_cost_per_million_tokens{"),
        "{metrics}"
    );
    assert!(
        metrics.contains(
            "tally_node_cost_hourly{node=\"sim-node-0001\",instance_type=\"p5.48xlarge\""
        )
    );
}

/// `--format parquet --output FILE`, read by pyarrow (the real reader):
/// typed columns and the same cards as the JSON output.
fn parquet_reads_back_in_pyarrow(url: &str, dir: &std::path::Path, cards: &[Value]) {
    let path = dir.join("cards.parquet");
    let output = tally(&[
        "recommend",
        "--collector",
        url,
        "--format",
        "parquet",
        "--output",
        path.to_str().expect("UTF-8 path"),
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.stdout.is_empty());
    let Some(python) = common::venv_peer("python", "parquet_reads_back_in_pyarrow") else {
        return;
    };
    let read = Command::new(python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/peers/read_parquet.py"
        ))
        .arg(&path)
        .output()
        .expect("run python");
    assert!(
        read.status.success(),
        "pyarrow could not read the file: {}",
        String::from_utf8_lossy(&read.stderr)
    );
    let table: Value = serde_json::from_slice(&read.stdout).expect("json");
    assert_eq!(table["types"]["monthly_savings"], "double");
    assert_eq!(table["types"]["confidence"], "double");
    assert_eq!(table["types"]["explanation"], "string");
    assert_eq!(table["created_by"], "tally");
    let rows = table["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), cards.len());
    for (row, card) in rows.iter().zip(cards) {
        assert_eq!(row["id"], card["id"]);
        assert_eq!(row["kind"], card["kind"]);
        assert_eq!(row["namespace"], card["workload"]["namespace"]);
        assert_eq!(row["explanation"], card["explanation"]);
        let savings = |v: &Value| v.as_f64().expect("number");
        assert!(
            (savings(&row["monthly_savings"]) - savings(&card["monthly_savings"])).abs() < 1e-9
        );
        let proposed: Value =
            serde_json::from_str(row["proposed"].as_str().expect("text")).expect("JSON map");
        assert_eq!(proposed, card["proposed"]);
    }
}

#[test]
fn an_unreachable_collector_is_a_clear_error() {
    let port = common::free_port();
    let output = tally(&[
        "recommend",
        "--collector",
        &format!("http://127.0.0.1:{port}"),
    ]);
    assert_eq!(output.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cannot reach the collector"), "{stderr}");
}

/// JSON, YAML, CSV and Parquet outputs, each read by its format's
/// standard parser (json, PyYAML, csv, polars), hold the same cards.
fn every_format_parses_with_its_standard_parser(url: &str, dir: &std::path::Path, cards: &[Value]) {
    let Some(python) = common::venv_peer("python", "every_format_parses") else {
        return;
    };
    let expected: Vec<&str> = cards.iter().filter_map(|c| c["id"].as_str()).collect();
    for format in ["json", "yaml", "csv", "parquet"] {
        let path = dir.join(format!("cards.{format}"));
        let output = tally(&[
            "recommend",
            "--collector",
            url,
            "--format",
            format,
            "--output",
            path.to_str().expect("UTF-8 path"),
        ]);
        assert!(
            output.status.success(),
            "{format}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let read = Command::new(&python)
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/peers/read_formats.py"
            ))
            .arg(format)
            .arg(&path)
            .output()
            .expect("run python");
        assert!(
            read.status.success(),
            "{format} does not parse: {}",
            String::from_utf8_lossy(&read.stderr)
        );
        let rows: Vec<Value> = serde_json::from_slice(&read.stdout).expect("json");
        let ids: Vec<&str> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
        assert_eq!(ids, expected, "{format}");
        // CSV carries cents; the others the full figure.
        for (row, card) in rows.iter().zip(cards) {
            let (a, b) = (
                row["monthly_savings"].as_f64(),
                card["monthly_savings"].as_f64(),
            );
            assert!(
                a.zip(b)
                    .is_some_and(|(a, b)| (a - b).abs() <= 0.005 + 1e-9 * b),
                "{format}: {row} vs {card}"
            );
        }
    }
}

/// `--patch` prints a valid strategic-merge patch per patchable card,
/// `--fail-above` gates on the de-duplicated savings with exit code 4,
/// and `--watch` rewrites its output every interval until stopped.
fn patches_gates_and_watch(url: &str, dir: &std::path::Path) {
    let output = tally(&[
        "recommend",
        "--collector",
        url,
        "--kind",
        "cpu_request",
        "--patch",
    ]);
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let commands: Vec<&str> = text.lines().filter(|l| l.starts_with("kubectl ")).collect();
    assert!(!commands.is_empty(), "{text}");
    for command in &commands {
        assert!(
            command.contains(" patch ") && command.contains("--type=strategic"),
            "{command}"
        );
        let start = command.find("-p '").expect("patch") + 4;
        let patch: Value =
            serde_json::from_str(&command[start..command.len() - 1]).expect("patch JSON");
        let containers = patch["spec"]["template"]["spec"]["containers"]
            .as_array()
            .or_else(|| {
                patch["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"].as_array()
            })
            .expect("containers");
        assert!(
            containers[0]["resources"]["requests"]["cpu"].is_string(),
            "{command}"
        );
    }
    // Every card is introduced by a comment with its savings.
    let comments = text
        .lines()
        .filter(|l| l.starts_with("# cpu_request "))
        .count();
    assert!(comments >= commands.len(), "{text}");

    let json = tally(&["recommend", "--collector", url, "--format", "json"]);
    let cards: Vec<Value> = serde_json::from_slice(&json.stdout).expect("json");
    let largest = cards
        .iter()
        .filter_map(|c| c["monthly_savings"].as_f64())
        .fold(0.0, f64::max);
    assert!(largest > 1.0);
    let gate = tally(&[
        "recommend",
        "--collector",
        url,
        "--fail-above",
        "1",
        "--format",
        "json",
    ]);
    assert_eq!(
        gate.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&gate.stderr)
    );
    assert!(String::from_utf8_lossy(&gate.stderr).contains("above --fail-above 1"));
    // The report is still printed when the gate fails.
    assert!(serde_json::from_slice::<Vec<Value>>(&gate.stdout).is_ok());
    let pass = tally(&["recommend", "--collector", url, "--fail-above", "100000000"]);
    assert_eq!(pass.status.code(), Some(0));
    let bad = tally(&["recommend", "--collector", url, "--fail-above", "-3"]);
    assert_eq!(bad.status.code(), Some(2));

    let path = dir.join("watched.json");
    let mut watch = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "recommend",
            "--collector",
            url,
            "--format",
            "json",
            "--watch",
            "1",
            "--output",
        ])
        .arg(&path)
        .spawn()
        .expect("watch");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let mut versions = std::collections::HashSet::new();
    while versions.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "--watch wrote {} versions",
            versions.len()
        );
        if let Ok(meta) = std::fs::metadata(&path) {
            let text = std::fs::read_to_string(&path).unwrap_or_default();
            assert!(
                serde_json::from_str::<Vec<Value>>(&text).is_ok(),
                "half-written: {text}"
            );
            versions.insert(meta.modified().expect("mtime"));
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // SIGTERM ends the watch cleanly.
    let status = Command::new("kill")
        .arg(watch.id().to_string())
        .status()
        .expect("kill");
    assert!(status.success());
    let exit = watch.wait().expect("wait");
    assert_eq!(exit.code(), Some(0), "{exit:?}");
}
