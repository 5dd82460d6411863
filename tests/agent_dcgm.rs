//! dcgm-exporter compatibility end to end: a real Prometheus scrapes
//! `tally agent` with `gpu.dcgm_compatible` on, and the PromQL of
//! dcgm-exporter's own Grafana dashboard (12239, "NVIDIA DCGM Exporter
//! Dashboard", its template variables set to match everything) returns
//! data, with dcgm-exporter's label names. The GPUs are a replayed
//! recording written from the NVML documentation (no GPU on CI machines).

mod common;

use std::time::{Duration, Instant};

use serde_json::Value;

const STEADY: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/agent/tests/fixtures/gpu/documentation-h100-steady.json"
);

/// Dashboard 12239's panel queries with `$instance` and `$gpu` = `.*`.
const DASHBOARD: &[(&str, &str)] = &[
    (
        "GPU Temperature",
        "DCGM_FI_DEV_GPU_TEMP{instance=~\".*\", gpu=~\".*\"}",
    ),
    (
        "GPU Avg. Temp",
        "avg(DCGM_FI_DEV_GPU_TEMP{instance=~\".*\", gpu=~\".*\"})",
    ),
    (
        "GPU Power Usage",
        "DCGM_FI_DEV_POWER_USAGE{instance=~\".*\", gpu=~\".*\"}",
    ),
    (
        "GPU Power Total",
        "sum(DCGM_FI_DEV_POWER_USAGE{instance=~\".*\", gpu=~\".*\"})",
    ),
    (
        "GPU SM Clocks",
        "DCGM_FI_DEV_SM_CLOCK{instance=~\".*\", gpu=~\".*\"} * 1000000",
    ),
    (
        "GPU Utilization",
        "DCGM_FI_DEV_GPU_UTIL{instance=~\".*\", gpu=~\".*\"}",
    ),
    (
        "GPU Framebuffer Mem Used",
        "DCGM_FI_DEV_FB_USED{instance=~\".*\", gpu=~\".*\"}",
    ),
    (
        "Tensor Core Utilization",
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{instance=~\".*\", gpu=~\".*\"}",
    ),
];

fn query(prometheus: &str, promql: &str) -> Value {
    common::prom_query(prometheus, promql)
}

fn results(answer: &Value) -> Vec<Value> {
    answer["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

#[test]
fn dcgm_dashboard_queries_return_data() {
    let Some(prometheus_bin) = common::peer("prometheus", "dcgm_dashboard_queries_return_data")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let agent_port = common::free_port();
    let listen = format!("127.0.0.1:{agent_port}");
    let log = dir.path().join("agent.log");
    let _agent = common::start_agent(
        &["--listen", &listen],
        &[
            ("TALLY_SAMPLING_INTERVAL", "200ms"),
            ("TALLY_SAMPLING_EXPORT_INTERVAL", "1s"),
            ("TALLY_GPU_MODE", "replay"),
            ("TALLY_GPU_REPLAY_FILE", STEADY),
            ("TALLY_GPU_DCGM_COMPATIBLE", "true"),
        ],
        &log,
    );
    assert!(
        common::wait_ready(&format!("http://{listen}/readyz"), Duration::from_secs(10)),
        "agent not ready; log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    let (_prometheus, prom) =
        common::start_prometheus(&prometheus_bin, dir.path(), "dcgm", &listen);
    let deadline = Instant::now() + Duration::from_secs(30);
    for (panel, promql) in DASHBOARD {
        let answer = loop {
            let answer = query(&prom, promql);
            if !results(&answer).is_empty() {
                break answer;
            }
            assert!(
                Instant::now() < deadline,
                "{panel}: no data for {promql}: {answer}"
            );
            std::thread::sleep(Duration::from_millis(200));
        };
        eprintln!("{panel}: {} series", results(&answer).len());
    }
    // dcgm-exporter's labels and units on a whole GPU.
    let temp = results(&query(&prom, "DCGM_FI_DEV_GPU_TEMP{gpu=\"1\"}"));
    let labels = &temp[0]["metric"];
    for name in [
        "gpu",
        "UUID",
        "pci_bus_id",
        "device",
        "modelName",
        "Hostname",
        "DCGM_FI_DRIVER_VERSION",
    ] {
        assert!(labels.get(name).is_some(), "{name} missing: {labels}");
    }
    assert_eq!(labels["device"], "nvidia1");
    assert_eq!(labels["modelName"], "NVIDIA H100 80GB HBM3");
    assert_eq!(labels["DCGM_FI_DRIVER_VERSION"], "580.82.07");
    assert_eq!(temp[0]["value"][1], "47");
    let clock = results(&query(&prom, "DCGM_FI_DEV_SM_CLOCK{gpu=\"1\"}"));
    assert_eq!(clock[0]["value"][1], "1980", "MHz, as DCGM reports");
    // MIG instances carry GPU_I_PROFILE and GPU_I_ID.
    let tensor = results(&query(
        &prom,
        "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE{GPU_I_ID=\"9\"}",
    ));
    assert_eq!(
        tensor[0]["metric"]["GPU_I_PROFILE"], "1g.10gb",
        "{tensor:?}"
    );
    // The agent's own families are still there.
    assert!(!results(&query(&prom, "tally_gpu_power_watts")).is_empty());
}
