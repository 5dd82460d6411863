//! The collector end to end: the real `tally agent` pushes to the real
//! `tally collector` on loopback and the API shows the agent's containers;
//! the collector is SIGKILLed repeatedly and everything it acknowledged is
//! still there after each restart; hostile input gets clear 4xx answers and
//! the collector keeps serving.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::fixture;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use prost::Message as _;
use serde_json::Value;
use tally_schema::catalog;
use tally_schema::otlp;

fn api(port: u16, path: &str) -> Value {
    let (status, body) = common::http_get(&format!("http://127.0.0.1:{port}{path}")).expect("get");
    assert_eq!(status, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"))
}

fn post(port: u16, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, Vec<u8>) {
    common::http_post(port, path, headers, body)
}

/// Pushes a metrics request as protobuf; returns the status.
fn push(port: u16, request: &ExportMetricsServiceRequest) -> u16 {
    post(
        port,
        "/v1/metrics",
        &[("Content-Type", "application/x-protobuf")],
        &request.encode_to_vec(),
    )
    .0
}

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64
}

/// A request with one gauge point per value, all on series `{test=tag}`.
fn gauge_request(tag: &str, values: &[f64], time_ns: u64) -> ExportMetricsServiceRequest {
    let points = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            otlp::number_point(
                vec![otlp::string_attribute("i", i.to_string())],
                0,
                time_ns,
                *v,
            )
        })
        .collect();
    ExportMetricsServiceRequest {
        resource_metrics: vec![otlp::resource_metrics(
            otlp::resource([("test", tag.to_owned()), ("service.name", "e2e".to_owned())]),
            vec![otlp::gauge(&catalog::NODE_MEMORY_TOTAL, points)],
            "test",
        )],
    }
}

#[test]
fn agent_to_collector_and_the_api() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cgroups = dir.path().join("cgroup");
    fixture::write_tree(&cgroups);
    let (_collector, port) = common::ready_collector(dir.path());
    let listen = format!("127.0.0.1:{}", common::free_port());
    let _agent = common::start_agent(
        &[
            "--listen",
            &listen,
            "--collector",
            &format!("http://127.0.0.1:{port}"),
        ],
        &[
            ("TALLY_CGROUPS_ROOT", cgroups.to_str().expect("utf8")),
            (
                "TALLY_SPOOL_DIR",
                dir.path().join("spool").to_str().expect("utf8"),
            ),
            ("TALLY_SAMPLING_INTERVAL", "100ms"),
            ("TALLY_SAMPLING_EXPORT_INTERVAL", "500ms"),
            ("TALLY_NODE_NAME", "e2e-node"),
        ],
        &dir.path().join("agent.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let container = loop {
        let containers = api(port, "/api/v1/containers?window=1h");
        let found = containers["containers"].as_array().and_then(|rows| {
            rows.iter()
                .find(|r| r["container_id"] == fixture::CONTAINER_ID)
                .cloned()
        });
        if let Some(row) = found.filter(|r| !r["cpu_cores_p95"].is_null()) {
            break row;
        }
        assert!(
            Instant::now() < deadline,
            "container never appeared: {containers}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(container["node"], "e2e-node");
    assert_eq!(container["pod_uid"], fixture::POD_UID);
    assert_eq!(container["runtime"], "containerd");
    assert_eq!(container["working_set_bytes"], fixture::WORKING_SET as f64);
    assert_eq!(
        container["working_set_bytes_max"],
        fixture::WORKING_SET as f64
    );
    // The fixture's CPU counter never moves: p95 of sampled cores is 0.
    assert_eq!(container["cpu_cores_p95"], 0.0);

    let nodes = api(port, "/api/v1/nodes");
    let node = &nodes["nodes"][0];
    assert_eq!(node["node"], "e2e-node", "{nodes}");
    assert!(
        node["memory_bytes"].as_f64().unwrap_or(0.0) > 0.0,
        "{nodes}"
    );
    assert!(node["cpus"].as_f64().unwrap_or(0.0) >= 1.0, "{nodes}");
    let status = api(port, "/api/v1/status");
    assert!(
        status["store_bytes_estimate"].as_u64().unwrap_or(0) > 0,
        "{status}"
    );

    let agents = api(port, "/api/v1/agents");
    let agent = &agents["agents"][0];
    assert_eq!(agent["service"], "tally-agent");
    assert_eq!(agent["node"], "e2e-node");
    assert!(agent["batches"].as_u64().unwrap_or(0) >= 1);

    let query = api(
        port,
        &format!(
            "/api/v1/query?metric=tally_container_memory_working_set_bytes&stat=max&window=1h&label.container.id={}",
            fixture::CONTAINER_ID
        ),
    );
    assert_eq!(
        query["results"][0]["value"],
        fixture::WORKING_SET as f64,
        "{query}"
    );
    let openapi = api(port, "/api/v1/openapi.json");
    assert_eq!(openapi["openapi"], "3.0.3");
    // An analysis on demand sees what the agent sent.
    let (status, body) = post(port, "/api/v1/analyze", &[], b"");
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let recommendations = api(port, "/api/v1/recommendations");
    assert_eq!(recommendations["status"], "ok", "{recommendations}");
    assert!(recommendations["items"].is_array(), "{recommendations}");
    let costs = api(port, "/api/v1/costs?by=namespace");
    assert!(
        costs["monthly_cost"].as_f64().is_some_and(|c| c > 0.0),
        "{costs}"
    );
}

/// The agent names its GPU families by the OpenTelemetry hardware
/// conventions (`export.gpu_names: semconv`, `hw.gpu.utilization` with
/// `hw.id`…); the collector files them under Tally's names and labels, so
/// the API and the analyzer see the same series as with Tally's names. The
/// GPUs are a replayed recording written from the NVML documentation (no
/// GPU on CI machines).
#[test]
fn semconv_gpu_names_land_as_tally_families() {
    const GPU1: &str = "GPU-7e2d1f7b-0000-4000-8000-000000000001";
    let dir = tempfile::tempdir().expect("tempdir");
    let (_collector, port) = common::ready_collector(dir.path());
    let listen = format!("127.0.0.1:{}", common::free_port());
    let _agent = common::start_agent(
        &[
            "--listen",
            &listen,
            "--collector",
            &format!("http://127.0.0.1:{port}"),
        ],
        &[
            ("TALLY_CGROUPS_ROOT", dir.path().to_str().expect("utf8")),
            (
                "TALLY_SPOOL_DIR",
                dir.path().join("spool").to_str().expect("utf8"),
            ),
            ("TALLY_SAMPLING_INTERVAL", "100ms"),
            ("TALLY_SAMPLING_EXPORT_INTERVAL", "500ms"),
            ("TALLY_NODE_NAME", "gpu-node"),
            ("TALLY_GPU_MODE", "replay"),
            (
                "TALLY_GPU_REPLAY_FILE",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/agent/tests/fixtures/gpu/documentation-h100-steady.json"
                ),
            ),
            ("TALLY_EXPORT_GPU_NAMES", "semconv"),
        ],
        &dir.path().join("agent.log"),
    );
    let query = |metric: &str, labels: &str| {
        api(
            port,
            &format!("/api/v1/query?metric={metric}&stat=max&window=1h{labels}"),
        )
    };
    let gpu1 = format!("&label.gpu_uuid={GPU1}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let utilization = loop {
        let answer = query("tally_gpu_utilization_ratio", &gpu1);
        if !answer["results"][0]["value"].is_null() {
            break answer;
        }
        assert!(
            Instant::now() < deadline,
            "no GPU utilization: {answer}; agent log: {}",
            std::fs::read_to_string(dir.path().join("agent.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // The recording's 64 % under Tally's name, labels and units.
    let labels = &utilization["results"][0]["labels"];
    assert_eq!(utilization["results"][0]["value"], 0.64, "{utilization}");
    assert_eq!(labels["gpu_model"], "NVIDIA H100 80GB HBM3", "{labels}");
    assert_eq!(labels["gpu_index"], "1", "{labels}");
    assert_eq!(labels["k8s.node.name"], "gpu-node", "{labels}");
    for convention in ["hw.id", "hw.type", "hw.gpu.task", "hw.model"] {
        assert!(labels[convention].is_null(), "{convention} kept: {labels}");
    }
    let power = query("tally_gpu_power_watts", &gpu1);
    assert_eq!(power["results"][0]["value"], 250.0, "{power}");
    let memory = query("tally_gpu_memory_total_bytes", &gpu1);
    assert!(
        memory["results"][0]["value"]
            .as_f64()
            .is_some_and(|v| v > 0.0),
        "{memory}"
    );
    // A counter: `hw.errors` with `error.type` is Tally's ECC counter by type.
    let ecc = api(
        port,
        "/api/v1/series?metric=tally_gpu_ecc_errors_total&label.gpu_uuid=GPU-5d1c0e6a-0000-4000-8000-000000000000&label.type=corrected",
    );
    assert_eq!(ecc["series"][0]["kind"], "counter", "{ecc}");
    // Families without a convention keep Tally's name on the wire.
    let clock = query("tally_gpu_clock_hertz", &gpu1);
    assert!(!clock["results"][0].is_null(), "{clock}");
    // Nothing is left under the conventions' names.
    for name in ["hw.gpu.utilization", "hw.power", "hw.gpu.memory.limit"] {
        let left = api(port, &format!("/api/v1/series?metric={name}"));
        assert_eq!(
            left["series"].as_array().map(Vec::len),
            Some(0),
            "{name}: {left}"
        );
    }
}

#[test]
fn acknowledged_data_survives_sigkill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let port = common::free_port();
    let mut acknowledged = 0usize;
    for round in 0..20 {
        // Snapshots every second: some kills land before, some during and
        // some after a snapshot, so recovery runs both from the log alone
        // and from a snapshot plus the log written since.
        let mut collector = common::start_collector_with_env(
            port,
            &data,
            &dir.path().join(format!("collector-{round}.log")),
            &[("TALLY_COLLECTOR_SNAPSHOT_INTERVAL", "1s")],
        );
        assert!(
            common::wait_ready(
                &format!("http://127.0.0.1:{port}/readyz"),
                Duration::from_secs(10)
            ),
            "round {round}: collector did not come back"
        );
        // Everything acknowledged in earlier rounds is still there.
        let series = api(
            port,
            "/api/v1/series?metric=tally_node_memory_total_bytes&label.test=crash",
        );
        let stored = series["series"].as_array().map(|s| s.len()).unwrap_or(0);
        assert_eq!(
            stored, acknowledged,
            "round {round}: acknowledged {acknowledged} series, found {stored}"
        );
        // Push a few acknowledged requests, each adding new series.
        for _ in 0..(1 + round % 3) {
            let request = gauge_request("crash", &vec![1.0; acknowledged + 5], now_ns());
            assert_eq!(push(port, &request), 200);
            acknowledged += 5;
        }
        // SIGKILL at a moment that varies from round to round, sometimes
        // with a request in flight.
        let in_flight = (round % 2 == 1).then(|| {
            let request = gauge_request("inflight", &[1.0; 3], now_ns());
            std::thread::spawn(move || {
                post(
                    port,
                    "/v1/metrics",
                    &[("Content-Type", "application/x-protobuf")],
                    &request.encode_to_vec(),
                )
            })
        });
        let pause = if round % 3 == 2 { 1000 } else { 0 } + (round as u64 * 37) % 200;
        std::thread::sleep(Duration::from_millis(pause));
        collector.child.kill().expect("SIGKILL");
        let _ = collector.child.wait();
        if let Some(handle) = in_flight {
            let _ = handle.join();
        }
    }
}

/// A clean stop writes a snapshot and trims the log; the next start loads
/// it and replays nothing, with every series and value intact.
#[test]
fn clean_stop_snapshots_and_restart_replays_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (mut collector, port) = common::ready_collector(dir.path());
    let request = gauge_request("snap", &[1.0, 2.0, 3.0], now_ns());
    assert_eq!(push(port, &request), 200);
    let before = api(
        port,
        "/api/v1/query?metric=tally_node_memory_total_bytes&stat=max&window=1h&label.test=snap",
    );
    assert!(
        collector.stop().success(),
        "the collector did not stop cleanly"
    );
    let data = dir.path().join("data");
    assert!(
        data.join("snapshot.bin").is_file(),
        "no snapshot written on stop"
    );
    let segments: Vec<_> = std::fs::read_dir(data.join("wal"))
        .expect("wal dir")
        .filter_map(|e| e.ok())
        .collect();
    assert_eq!(segments.len(), 1, "covered log segments were not removed");
    let port = common::free_port();
    let _collector = common::start_collector(port, &data, &dir.path().join("again.log"));
    assert!(common::wait_ready(
        &format!("http://127.0.0.1:{port}/readyz"),
        Duration::from_secs(10)
    ));
    let after = api(
        port,
        "/api/v1/query?metric=tally_node_memory_total_bytes&stat=max&window=1h&label.test=snap",
    );
    assert_eq!(after["results"], before["results"]);
    assert_eq!(after["results"].as_array().map(Vec::len), Some(3));
    let (_, metrics) =
        common::http_get(&format!("http://127.0.0.1:{port}/metrics")).expect("metrics");
    assert!(
        metrics.contains("tally_collector_wal_replayed_records 0\n"),
        "{metrics}"
    );
}

/// Beyond `max_series` the points of new series are refused in a partial
/// success that says why, existing series keep accepting, and the refusal
/// is counted.
#[test]
fn the_series_limit_gives_a_partial_success() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = common::free_port();
    let _collector = common::start_collector_with_env(
        port,
        &dir.path().join("data"),
        &dir.path().join("collector.log"),
        &[("TALLY_COLLECTOR_MAX_SERIES", "4")],
    );
    assert!(common::wait_ready(
        &format!("http://127.0.0.1:{port}/readyz"),
        Duration::from_secs(10)
    ));
    let request = gauge_request("limit", &[1.0; 6], now_ns());
    let (status, body) = post(
        port,
        "/v1/metrics",
        &[("Content-Type", "application/json")],
        &serde_json::to_vec(&request).expect("json"),
    );
    assert_eq!(status, 200);
    let response: Value = serde_json::from_slice(&body).expect("json response");
    assert_eq!(
        response["partialSuccess"]["rejectedDataPoints"], "2",
        "{response}"
    );
    assert!(
        response["partialSuccess"]["errorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("series limit")),
        "{response}"
    );
    let series = api(
        port,
        "/api/v1/series?metric=tally_node_memory_total_bytes&label.test=limit",
    );
    assert_eq!(series["series"].as_array().map(Vec::len), Some(4));
    let (_, metrics) =
        common::http_get(&format!("http://127.0.0.1:{port}/metrics")).expect("metrics");
    assert!(
        metrics.contains("tally_collector_series_limited_points_total 2\n"),
        "{metrics}"
    );
}

/// (name, headers, body, expected status)
type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16);

#[test]
fn hostile_input_gets_clear_4xx() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_collector, port) = common::ready_collector(dir.path());
    let protobuf = [("Content-Type", "application/x-protobuf")];
    let good = gauge_request("ok", &[1.0], now_ns()).encode_to_vec();

    let cases: Vec<Case<'_>> = vec![
        (
            "truncated protobuf",
            protobuf.to_vec(),
            good[..good.len() / 2].to_vec(),
            400,
        ),
        (
            "huge declared length",
            protobuf.to_vec(),
            vec![0x0a, 0xff, 0xff, 0xff, 0xff, 0x07, 1, 2],
            400,
        ),
        (
            "wrong content type",
            vec![("Content-Type", "text/plain")],
            good.clone(),
            415,
        ),
        (
            "unknown encoding",
            vec![
                ("Content-Type", "application/x-protobuf"),
                ("Content-Encoding", "br"),
            ],
            good.clone(),
            415,
        ),
        (
            "broken gzip",
            vec![
                ("Content-Type", "application/x-protobuf"),
                ("Content-Encoding", "gzip"),
            ],
            b"garbage".to_vec(),
            400,
        ),
        (
            "deeply nested JSON",
            vec![("Content-Type", "application/json")],
            format!("{}{}", "[".repeat(5000), "]".repeat(5000)).into_bytes(),
            400,
        ),
        (
            "invalid UTF-8 in an attribute",
            protobuf.to_vec(),
            {
                let mut bytes = good.clone();
                let at = bytes
                    .windows(2)
                    .position(|w| w == b"ok")
                    .expect("attribute value");
                bytes[at] = 0xff;
                bytes
            },
            400,
        ),
        (
            "only NaN values",
            protobuf.to_vec(),
            gauge_request("nan", &[f64::NAN, f64::INFINITY], now_ns()).encode_to_vec(),
            400,
        ),
        (
            "far future",
            protobuf.to_vec(),
            gauge_request("future", &[1.0], now_ns() + 10 * 86_400 * 1_000_000_000).encode_to_vec(),
            400,
        ),
        (
            "far past",
            protobuf.to_vec(),
            gauge_request("past", &[1.0], 1_000_000_000).encode_to_vec(),
            400,
        ),
    ];
    for (name, headers, body, expected) in cases {
        let (status, reply) = post(port, "/v1/metrics", &headers, &body);
        assert_eq!(
            status,
            expected,
            "{name}: {}",
            String::from_utf8_lossy(&reply)
        );
        assert!(!reply.is_empty(), "{name}: a reason is given");
    }
    // Over the size limit (16 MiB default).
    let (status, _) = post(port, "/v1/metrics", &protobuf, &vec![0u8; 17 << 20]);
    assert_eq!(status, 413);

    // Some NaN among good points: partial success with a count and reason.
    let mixed = gauge_request("mixed", &[1.0, f64::NAN, 2.0], now_ns());
    let (status, reply) = post(port, "/v1/metrics", &protobuf, &mixed.encode_to_vec());
    assert_eq!(status, 200);
    let response = otlp::decode_metrics_response(&reply).expect("response");
    let partial = response.partial_success.expect("partial success");
    assert_eq!(partial.rejected_data_points, 1);
    assert!(
        partial.error_message.contains("NaN"),
        "{}",
        partial.error_message
    );

    // JSON works too, and nothing from the refused requests was stored.
    let json = r#"{"resourceMetrics":[{"resource":{"attributes":[{"key":"test","value":{"stringValue":"json"}}]},"scopeMetrics":[{"metrics":[{"name":"json_gauge","gauge":{"dataPoints":[{"timeUnixNano":"TIME","asDouble":3.5}]}}]}]}]}"#
        .replace("TIME", &now_ns().to_string());
    let (status, _) = post(
        port,
        "/v1/metrics",
        &[("Content-Type", "application/json")],
        json.as_bytes(),
    );
    assert_eq!(status, 200);
    let series = api(port, "/api/v1/series?metric=json_gauge");
    assert_eq!(series["series"][0]["latest"], 3.5);
    let names = api(port, "/api/v1/metrics");
    assert_eq!(
        names["metrics"]["tally_node_memory_total_bytes"], 2,
        "only the mixed request's 2 good points: {names}"
    );
    let (_, metrics) =
        common::http_get(&format!("http://127.0.0.1:{port}/metrics")).expect("metrics");
    assert!(
        metrics.contains("tally_collector_requests_total{outcome=\"rejected\"} 11"),
        "{metrics}"
    );
}

#[test]
fn simulate_backfills_a_marked_fleet() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_collector, port) = common::ready_collector(dir.path());
    let output = Command::new(env!("CARGO_BIN_EXE_tally"))
        .args([
            "simulate",
            "--collector",
            &format!("http://127.0.0.1:{port}"),
        ])
        .args([
            "--nodes",
            "3",
            "--seed",
            "7",
            "--backfill",
            "2h",
            "--step",
            "10m",
        ])
        .output()
        .expect("simulate");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    assert!(stderr.contains("(0 rejected)"), "{stderr}");
    let nodes = api(port, "/api/v1/nodes");
    let nodes = nodes["nodes"].as_array().cloned().unwrap_or_default();
    assert_eq!(nodes.len(), 3);
    assert!(
        nodes
            .iter()
            .all(|n| n["simulated"] == true && n["region"] == "us-east-1")
    );
    let containers = api(port, "/api/v1/containers?window=3h");
    let rows = containers["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(rows.len() >= 12, "{}", rows.len());
    assert!(rows.iter().all(|r| r["simulated"] == true));
    assert!(
        rows.iter().all(|r| r["cpu_cores_p95"].as_f64().is_some()),
        "every container has a CPU distribution"
    );
    let agents = api(port, "/api/v1/agents");
    let agents = agents["agents"].as_array().cloned().unwrap_or_default();
    assert!(agents.iter().all(|a| a["simulated"] == true));
    // Pods report on themselves; only the three nodes push.
    assert_eq!(agents.len(), 3, "{agents:?}");

    // GPUs: an allocated GPU left idle, MIG instances, a time-sliced GPU.
    let gpus = api(port, "/api/v1/gpus?window=3h");
    assert_eq!(gpus["simulated"], true);
    let gpus = gpus["gpus"].as_array().cloned().unwrap_or_default();
    let pods = |g: &Value| g["pods"].as_array().map_or(0, Vec::len);
    assert!(
        gpus.iter()
            .any(|g| pods(g) > 0 && g["utilization_p95"].as_f64().is_some_and(|u| u < 0.02)),
        "an idle allocated GPU: {gpus:?}"
    );
    assert!(
        gpus.iter()
            .any(|g| g["mig_profile"] == "1g.10gb" && g["memory_total_bytes"].is_number()),
        "a MIG instance"
    );
    assert!(
        gpus.iter()
            .any(|g| g["sharing"] == "time_sliced" && pods(g) >= 2)
    );

    // Model services: latency and tokens.
    let models = api(port, "/api/v1/models?window=3h");
    assert_eq!(models["simulated"], true);
    let models = models["models"].as_array().cloned().unwrap_or_default();
    assert!(!models.is_empty());
    for m in &models {
        assert!(
            m["time_to_first_token_seconds_p95"]
                .as_f64()
                .is_some_and(|t| t > 0.0),
            "{m}"
        );
        assert!(
            m["tokens_per_second"].as_f64().is_some_and(|t| t > 0.0),
            "{m}"
        );
    }

    // Workloads: requests against usage.
    let workloads = api(port, "/api/v1/workloads?window=3h");
    let workloads = workloads["workloads"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let containers: u64 = workloads
        .iter()
        .filter_map(|w| w["containers"].as_u64())
        .sum();
    assert_eq!(containers as usize, rows.len());
    assert!(workloads.iter().all(
        |w| w["simulated"] == true && w["cpu_request_cores"].as_f64().is_some_and(|c| c > 0.0)
    ));

    // Egress: cross-zone bytes and chatty pairs.
    let egress = api(port, "/api/v1/egress?window=3h");
    assert_eq!(egress["simulated"], true);
    let cross_zone = egress["by_class"]["cross_zone"]["transmit_bytes"].as_f64();
    assert!(
        cross_zone.is_some_and(|b| b > 0.0),
        "{}",
        egress["by_class"]
    );
    assert!(egress["pairs"].as_array().is_some_and(|p| !p.is_empty()));
}
