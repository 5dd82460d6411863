//! The real OpenTelemetry Python SDK (installed by
//! `scripts/install-test-peers.sh` into `.venv-peers`) sends metrics and
//! logs to `tally collector`; the test reads them back through the API,
//! GPU readings named by the OpenTelemetry hardware conventions included.

mod common;

use std::process::Command;

use serde_json::Value;

fn api(port: u16, path: &str) -> Value {
    let (status, body) = common::http_get(&format!("http://127.0.0.1:{port}{path}")).expect("get");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

/// Runs a peer script of `tests/peers/` against the collector on `port`.
fn run_client(python: &std::path::Path, script: &str, port: u16) {
    let output = Command::new(python)
        .arg(format!(
            "{}/tests/peers/{script}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .arg(format!("http://127.0.0.1:{port}"))
        .output()
        .expect("run the SDK client");
    assert!(
        output.status.success(),
        "{script} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

#[test]
fn python_sdk_metrics_and_logs_round_trip() {
    let Some(python) = common::venv_peer("python", "python_sdk_metrics_and_logs_round_trip") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (_collector, port) = common::ready_collector(dir.path());
    run_client(&python, "otel_sdk_client.py", port);

    let agents = api(port, "/api/v1/agents");
    assert_eq!(agents["agents"][0]["service"], "sdk-test", "{agents}");
    // Cumulative 12 then 15: the first is a baseline, the increase is 3.
    let requests = api(
        port,
        "/api/v1/query?metric=requests&stat=increase&window=1h&label.route=/a",
    );
    assert_eq!(requests["results"][0]["value"], 3.0, "{requests}");
    assert_eq!(requests["results"][0]["labels"]["service.name"], "sdk-test");
    assert_eq!(requests["results"][0]["labels"]["k8s.namespace.name"], "ml");
    let latency = api(port, "/api/v1/query?metric=latency&stat=max&window=1h");
    assert_eq!(latency["results"][0]["value"], 0.4, "{latency}");
    let temperature = api(port, "/api/v1/series?metric=temperature");
    assert_eq!(temperature["series"][0]["latest"], 42.5, "{temperature}");
    // The conventions' GPU names are filed under Tally's; another
    // component's hw.power keeps its name.
    let gpu = api(port, "/api/v1/series?metric=tally_gpu_utilization_ratio");
    assert_eq!(gpu["series"][0]["latest"], 0.42, "{gpu}");
    assert_eq!(gpu["series"][0]["labels"]["gpu_uuid"], "GPU-sdk", "{gpu}");
    assert_eq!(
        gpu["series"][0]["labels"]["gpu_model"], "NVIDIA L4",
        "{gpu}"
    );
    let gpu_power = api(port, "/api/v1/series?metric=tally_gpu_power_watts");
    assert_eq!(gpu_power["series"][0]["latest"], 61.5, "{gpu_power}");
    let psu = api(port, "/api/v1/series?metric=hw.power");
    assert_eq!(psu["series"].as_array().map(Vec::len), Some(1), "{psu}");
    assert_eq!(
        psu["series"][0]["labels"]["hw.type"], "power_supply",
        "{psu}"
    );
    let logs = api(port, "/api/v1/logs?limit=10");
    let records = logs["records"].as_array().cloned().unwrap_or_default();
    let record = records
        .iter()
        .find(|r| r["body"] == "disk almost full")
        .unwrap_or_else(|| panic!("log record missing: {logs}"));
    assert!(
        record["severity"]
            .as_str()
            .unwrap_or("")
            .starts_with("WARN"),
        "{record}"
    );
}

/// GenAI histograms from the real SDK (cumulative, as it sends them) land
/// in the models view as a `genai` service: each request counted once, the
/// failures by `error.type`, tokens from the token-usage sums.
#[test]
fn python_sdk_genai_metrics_join_the_models_view() {
    let Some(python) = common::venv_peer("python", "python_sdk_genai_metrics_join_the_models_view")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (_collector, port) = common::ready_collector(dir.path());
    run_client(&python, "otel_genai_client.py", port);
    let models = api(port, "/api/v1/models?window=1h");
    let rows = models["models"].as_array().cloned().unwrap_or_default();
    let row = rows
        .iter()
        .find(|r| r["engine"] == "genai")
        .unwrap_or_else(|| panic!("no genai row: {models}"));
    assert_eq!(row["model"], "llama-3-8b", "{row}");
    assert_eq!(row["namespace"], "ml", "{row}");
    assert_eq!(row["workload_kind"], "Deployment", "{row}");
    assert_eq!(row["workload_name"], "chat-api", "{row}");
    assert_eq!(row["replicas"], 1, "{row}");
    // The rate is between the two exports: 10 successes and 2 timeouts.
    let ratio = row["error_ratio"]
        .as_f64()
        .unwrap_or_else(|| panic!("{row}"));
    assert!((ratio - 2.0 / 12.0).abs() < 1e-9, "{row}");
    // 37 first tokens: 30 at 0.05 s (bucket (0.04, 0.06]), 7 at 0.3 s.
    // Counted twice, the cumulative second export would hold 62.
    let p50 = row["time_to_first_token_seconds_p50"]
        .as_f64()
        .expect("p50");
    let p95 = row["time_to_first_token_seconds_p95"]
        .as_f64()
        .expect("p95");
    assert!((p50 - 0.06).abs() < 0.003, "{row}");
    assert!((p95 - 0.3).abs() < 0.015, "{row}");
    let e2e = row["e2e_request_latency_seconds_p95"]
        .as_f64()
        .expect("e2e");
    assert!((e2e - 2.0).abs() < 0.1, "{row}");
    // Tokens: 10 requests × (40 in + 20 out) between the exports.
    assert!(
        row["tokens_per_second"].as_f64().is_some_and(|t| t > 0.0),
        "{row}"
    );
    let input = api(
        port,
        "/api/v1/query?metric=tally_model_prompt_tokens_total&stat=increase&window=1h",
    );
    assert_eq!(input["results"][0]["value"], 400.0, "{input}");
    let output_tokens = api(
        port,
        "/api/v1/query?metric=tally_model_generation_tokens_total&stat=increase&window=1h",
    );
    assert_eq!(
        output_tokens["results"][0]["value"], 200.0,
        "{output_tokens}"
    );
}
