//! End to end with a real Prometheus (Debian's 2.42) scraping `tally agent`
//! on loopback: the target is up (OpenMetrics parsed strictly, `# EOF`
//! included), PromQL returns the container series with exact values, and
//! the metadata API shows the catalog's type, help and unit for every
//! family the agent serves, GPU families of a replayed recording included.
//! promtool lints the classic-format rendering.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::fixture;
use serde_json::Value;

const GPU_FIXTURE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/agent/tests/fixtures/gpu/documentation-h100-mig-timesliced.json"
);

fn query(prometheus: &str, promql: &str) -> Value {
    common::prom_query(prometheus, promql)
}

#[test]
fn prometheus_scrapes_the_agent() {
    let Some(prometheus_bin) = common::peer("prometheus", "prometheus_scrapes_the_agent") else {
        return;
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cgroups = dir.path().join("cgroup");
    fixture::write_tree(&cgroups);
    let agent_port = common::free_port();
    let listen = format!("127.0.0.1:{agent_port}");
    let log = dir.path().join("agent.log");
    let started = Instant::now();
    let _agent = common::start_agent(
        &["--listen", &listen],
        &[
            ("TALLY_CGROUPS_ROOT", cgroups.to_str().expect("utf8")),
            ("TALLY_SAMPLING_INTERVAL", "200ms"),
            ("TALLY_SAMPLING_EXPORT_INTERVAL", "1s"),
            // The GPU source replays a recording (no GPU here).
            ("TALLY_GPU_MODE", "replay"),
            ("TALLY_GPU_REPLAY_FILE", GPU_FIXTURE),
        ],
        &log,
    );
    assert!(
        common::wait_ready(&format!("http://{listen}/readyz"), Duration::from_secs(10)),
        "agent not ready; log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    eprintln!("agent ready after {:?} (debug build)", started.elapsed());
    let (status, _) = common::http_get(&format!("http://{listen}/healthz")).expect("healthz");
    assert_eq!(status, 200);

    // promtool lints the classic rendering (it cannot read OpenMetrics).
    if let Some(promtool) = common::peer("promtool", "prometheus_scrapes_the_agent/promtool") {
        let (_, classic) = common::http_get_with(
            &format!("http://{listen}/metrics"),
            &[("Accept", "text/plain")],
        )
        .expect("metrics");
        assert!(
            !classic.contains("# EOF"),
            "classic format has no EOF marker"
        );
        let mut child = Command::new(promtool)
            .args(["check", "metrics"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("promtool");
        use std::io::Write as _;
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(classic.as_bytes())
            .expect("write");
        let output = child.wait_with_output().expect("promtool output");
        let findings = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success(),
            "promtool check metrics: {findings}"
        );
    }

    let (_prometheus, prom) =
        common::start_prometheus(&prometheus_bin, dir.path(), "tally", &listen);

    // The target is up and the container series are queryable.
    let deadline = Instant::now() + Duration::from_secs(30);
    let series = loop {
        let result = query(&prom, "tally_container_cpu_usage_seconds_total");
        let series = result["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if !series.is_empty() {
            break series;
        }
        assert!(
            Instant::now() < deadline,
            "no container series; targets: {:?}",
            common::http_get(&format!("{prom}/api/v1/targets"))
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let up = query(&prom, "up{job=\"tally\"}");
    assert_eq!(up["data"]["result"][0]["value"][1], "1", "{up}");
    let ours = series
        .iter()
        .find(|s| s["metric"]["container_id"] == fixture::CONTAINER_ID)
        .unwrap_or_else(|| panic!("fixture container missing from {series:?}"));
    assert_eq!(ours["metric"]["pod_uid"], fixture::POD_UID);
    assert_eq!(ours["value"][1], fixture::CPU_SECONDS.to_string());
    let working_set = query(
        &prom,
        &format!(
            "tally_container_memory_working_set_bytes{{container_id=\"{}\"}}",
            fixture::CONTAINER_ID
        ),
    );
    assert_eq!(
        working_set["data"]["result"][0]["value"][1],
        fixture::WORKING_SET.to_string()
    );
    let info = query(&prom, "tally_container_info");
    assert!(
        info.to_string().contains("\"runtime\":\"containerd\""),
        "{info}"
    );

    // The replayed GPUs (the recording ends with GPU 1 off the bus, and
    // its last frame repeats), and the source up.
    let deadline = Instant::now() + Duration::from_secs(30);
    let lost = loop {
        let lost = query(&prom, "tally_gpu_lost == 1");
        if lost["data"]["result"]
            .as_array()
            .is_some_and(|r| !r.is_empty())
        {
            break lost;
        }
        assert!(Instant::now() < deadline, "no lost GPU: {lost}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(
        lost["data"]["result"][0]["metric"]["gpu_uuid"], "GPU-7e2d1f7b-0000-4000-8000-000000000001",
        "{lost}"
    );
    let energy = query(&prom, "tally_gpu_energy_joules_total");
    assert!(
        energy
            .to_string()
            .contains("GPU-5d1c0e6a-0000-4000-8000-000000000000"),
        "{energy}"
    );
    let gpu_up = query(&prom, "tally_agent_source_up{source=\"gpu\"}");
    assert_eq!(gpu_up["data"]["result"][0]["value"][1], "1", "{gpu_up}");

    // Metadata for every family the agent serves matches the catalog.
    let (_, page) = common::http_get(&format!("http://{listen}/metrics")).expect("metrics");
    let families: Vec<&str> = page
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert!(families.len() > 30, "{families:?}");
    let (_, metadata) = common::http_get(&format!("{prom}/api/v1/metadata")).expect("metadata");
    let metadata: Value = serde_json::from_str(&metadata).expect("json");
    for family in families {
        let def = tally_schema::catalog::CATALOG
            .iter()
            .find(|d| {
                let full = d.full_name();
                full == family || full.strip_suffix("_total") == Some(family)
            })
            .unwrap_or_else(|| panic!("{family} is not in the catalog"));
        let entry = &metadata["data"][family][0];
        let expected_type = match def.kind {
            tally_schema::catalog::MetricKind::Counter => "counter",
            tally_schema::catalog::MetricKind::Histogram => "histogram",
            _ => "gauge",
        };
        assert_eq!(entry["type"], expected_type, "{family}: {entry}");
        assert_eq!(entry["help"], def.help, "{family}");
        assert_eq!(entry["unit"], def.unit.suffix().unwrap_or(""), "{family}");
    }

    // Outside a cluster the agent says once that pod identity is missing.
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    // The recording's XID 79 is a structured log record of its own.
    let xid = log_text
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|r| r["message"] == "gpu event")
        .unwrap_or_else(|| panic!("no gpu event record: {log_text}"));
    assert_eq!(xid["level"], "WARN", "{xid}");
    assert_eq!(xid["kind"], "xid", "{xid}");
    assert_eq!(xid["data"], 79, "{xid}");
    assert_eq!(
        xid["gpu_uuid"], "GPU-7e2d1f7b-0000-4000-8000-000000000001",
        "{xid}"
    );
    assert_eq!(
        log_text.matches("pod identity unavailable").count(),
        1,
        "{log_text}"
    );
}
