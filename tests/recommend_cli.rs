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
