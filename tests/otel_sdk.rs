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

#[test]
fn python_sdk_metrics_and_logs_round_trip() {
    let Some(python) = common::venv_peer("python", "python_sdk_metrics_and_logs_round_trip") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let (_collector, port) = common::ready_collector(dir.path());
    let output = Command::new(&python)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/peers/otel_sdk_client.py"
        ))
        .arg(format!("http://127.0.0.1:{port}"))
        .output()
        .expect("run the SDK client");
    assert!(
        output.status.success(),
        "SDK client failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );

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
