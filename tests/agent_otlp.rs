//! End to end over OTLP/HTTP: `tally agent` pushes to a receiver in this
//! test, which decodes every batch with opentelemetry-proto. Checks the
//! semantic-convention resource attributes and the exponential-histogram
//! contents, then stops the receiver for a while (the agent keeps
//! sampling and spools to disk) and restarts it: every batch produced
//! during the outage must arrive, in order, none twice.

mod common;

use std::io::Read as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use common::fixture;
use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
use opentelemetry_proto::tonic::metrics::v1::metric::Data;
use prost::Message as _;
use tally_schema::otlp::find_string;

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<ExportMetricsServiceRequest>>>);

async fn receive(State(received): State<Received>, headers: HeaderMap, body: Bytes) -> StatusCode {
    assert_eq!(headers["content-type"], "application/x-protobuf");
    assert_eq!(headers["content-encoding"], "gzip");
    let mut raw = Vec::new();
    flate2::read::GzDecoder::new(&body[..])
        .read_to_end(&mut raw)
        .expect("gzip");
    let request = ExportMetricsServiceRequest::decode(&raw[..]).expect("protobuf");
    received.0.lock().expect("lock").push(request);
    StatusCode::OK
}

/// Serves the receiver on `port` until the returned sender fires.
async fn start_receiver(port: u16, received: Received) -> tokio::sync::oneshot::Sender<()> {
    let app = Router::new()
        .route("/v1/metrics", post(receive))
        .with_state(received);
    let listener = loop {
        // The port may take a moment to be free again after a stop.
        match tokio::net::TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => break listener,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await;
    });
    stop
}

/// Time of the node resource's points in each batch: one per export.
fn export_times(batches: &[ExportMetricsServiceRequest]) -> Vec<u64> {
    batches
        .iter()
        .filter_map(|b| {
            b.resource_metrics
                .iter()
                .flat_map(|rm| &rm.scope_metrics)
                .flat_map(|sm| &sm.metrics)
                .find(|m| m.name == "tally_node_memory_total_bytes")
                .and_then(|m| match &m.data {
                    Some(Data::Gauge(g)) => g.data_points.first().map(|p| p.time_unix_nano),
                    _ => None,
                })
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_survives_a_collector_outage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cgroups = dir.path().join("cgroup");
    fixture::write_tree(&cgroups);
    let port = common::free_port();
    let received = Received::default();
    let stop = start_receiver(port, received.clone()).await;

    let listen = format!("127.0.0.1:{}", common::free_port());
    let collector = format!("http://127.0.0.1:{port}");
    let spool = dir.path().join("spool");
    let log = dir.path().join("agent.log");
    let _agent = common::start_agent(
        &["--listen", &listen, "--collector", &collector],
        &[
            ("TALLY_CGROUPS_ROOT", cgroups.to_str().expect("utf8")),
            ("TALLY_SPOOL_DIR", spool.to_str().expect("utf8")),
            ("TALLY_SAMPLING_INTERVAL", "100ms"),
            ("TALLY_SAMPLING_EXPORT_INTERVAL", "500ms"),
            ("TALLY_EXPORT_MAX_BACKOFF", "200ms"),
            ("TALLY_NODE_NAME", "e2e-node"),
        ],
        &log,
    );
    let wait_for = |count: usize, limit: Duration| {
        let received = received.clone();
        async move {
            let deadline = Instant::now() + limit;
            while received.0.lock().expect("lock").len() < count && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            received.0.lock().expect("lock").len()
        }
    };
    assert!(
        wait_for(3, Duration::from_secs(20)).await >= 3,
        "no batches; log: {}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );

    // Resource attributes and histogram contents.
    {
        let batches = received.0.lock().expect("lock");
        let last = batches.last().expect("a batch");
        let node = last
            .resource_metrics
            .iter()
            .find(|rm| {
                find_string(
                    &rm.resource.as_ref().expect("resource").attributes,
                    "container.id",
                )
                .is_none()
            })
            .expect("node resource");
        let node_attrs = &node.resource.as_ref().expect("resource").attributes;
        assert_eq!(find_string(node_attrs, "k8s.node.name"), Some("e2e-node"));
        let container = last
            .resource_metrics
            .iter()
            .find(|rm| {
                find_string(
                    &rm.resource.as_ref().expect("resource").attributes,
                    "container.id",
                ) == Some(fixture::CONTAINER_ID)
            })
            .expect("fixture container resource");
        let attrs = &container.resource.as_ref().expect("resource").attributes;
        assert_eq!(find_string(attrs, "k8s.pod.uid"), Some(fixture::POD_UID));
        assert_eq!(find_string(attrs, "k8s.node.name"), Some("e2e-node"));
        assert_eq!(find_string(attrs, "container.runtime"), Some("containerd"));
        let metrics = &container.scope_metrics[0].metrics;
        let cpu = metrics
            .iter()
            .find(|m| m.name == "tally_container_cpu_usage_seconds_total")
            .expect("cpu");
        match &cpu.data {
            Some(Data::Sum(sum)) => {
                assert!(sum.is_monotonic);
                assert_eq!(
                    sum.data_points[0].value,
                    Some(
                        opentelemetry_proto::tonic::metrics::v1::number_data_point::Value::AsDouble(
                            fixture::CPU_SECONDS
                        )
                    )
                );
            }
            other => panic!("cpu is not a sum: {other:?}"),
        }
        let working_set = metrics
            .iter()
            .find(|m| m.name == "tally_container_memory_working_set_sampled_bytes")
            .unwrap_or_else(|| {
                panic!(
                    "working set distribution missing: {:?}",
                    metrics.iter().map(|m| &m.name).collect::<Vec<_>>()
                )
            });
        assert_eq!(working_set.unit, "By");
        match &working_set.data {
            Some(Data::ExponentialHistogram(h)) => {
                assert_eq!(h.aggregation_temporality, 1, "delta");
                let point = &h.data_points[0];
                // 100 ms samples in a 500 ms window; the fixture never changes.
                assert!(point.count >= 3, "{point:?}");
                assert_eq!(point.min, Some(fixture::WORKING_SET as f64));
                assert_eq!(point.max, Some(fixture::WORKING_SET as f64));
                assert_eq!(
                    point.sum,
                    Some(fixture::WORKING_SET as f64 * point.count as f64)
                );
                let positive = point.positive.as_ref().expect("buckets");
                assert_eq!(positive.bucket_counts.iter().sum::<u64>(), point.count);
                assert!(point.start_time_unix_nano < point.time_unix_nano);
            }
            other => panic!("not an exponential histogram: {other:?}"),
        }
    }

    // Outage: the receiver goes away for 3 s while the agent keeps going.
    let _ = stop.send(());
    let before_outage = received.0.lock().expect("lock").len();
    let outage_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stop = start_receiver(port, received.clone()).await;
    let outage = outage_started.elapsed();
    // At one batch per 500 ms, the outage produced about six; all must come.
    let expected = before_outage + (outage.as_millis() / 500) as usize - 1;
    assert!(
        wait_for(expected + 2, Duration::from_secs(20)).await >= expected + 2,
        "batches produced during the outage did not all arrive"
    );

    // Let the spool drain, then compare what the agent says it delivered
    // with what arrived: nothing lost, nothing twice, in order.
    let metric = |page: &str, prefix: &str| -> Option<f64> {
        page.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    let (delivered, page) = loop {
        let (_, page) = common::http_get(&format!("http://{listen}/metrics")).expect("metrics");
        let spooled = metric(&page, "tally_agent_spool_batches{");
        let delivered = metric(
            &page,
            "tally_agent_otlp_exports_total{node=\"e2e-node\",outcome=\"success\"}",
        );
        if spooled == Some(0.0) {
            break (delivered.unwrap_or(0.0) as usize, page);
        }
        assert!(Instant::now() < deadline, "spool never drained: {page}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let _ = stop.send(());
    let batches = received.0.lock().expect("lock").clone();
    let times = export_times(&batches);
    assert_eq!(
        times.len(),
        batches.len(),
        "every batch carries node metrics"
    );
    // The receiver may already hold the batch after the one counted.
    assert!(
        batches.len() == delivered || batches.len() == delivered + 1,
        "agent delivered {delivered}, receiver got {}",
        batches.len()
    );
    assert!(
        times.windows(2).all(|w| w[0] < w[1]),
        "out of order or duplicated: {times:?}"
    );
    assert_eq!(
        metric(&page, "tally_agent_spool_evicted_batches_total{"),
        Some(0.0)
    );
    assert!(
        page.contains("tally_agent_otlp_exports_total{node=\"e2e-node\",outcome=\"unreachable\"}"),
        "outage not counted"
    );
    assert!(
        page.contains("tally_agent_source_up{node=\"e2e-node\",source=\"otlp\"} 1"),
        "otlp source not up again"
    );
}

#[test]
fn bad_config_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("agent.yaml");
    std::fs::write(&config, "version: 1\nsampling:\n  intervall: 1s\n").expect("write");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["agent", "--config", config.to_str().expect("utf8")])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("intervall"), "{stderr}");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["agent", "--print-config", "--collector", "http://c:4318"])
        .env("TALLY_SAMPLING_INTERVAL", "250ms")
        .output()
        .expect("run");
    assert!(output.status.success());
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("collector: http://c:4318"), "{stdout}");
    assert!(stdout.contains("interval: 250ms"), "{stdout}");

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["agent", "--listen", "not-an-address"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn once_prints_an_openmetrics_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    fixture::write_tree(dir.path());
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tally"))
        .args(["agent", "--once"])
        .env("TALLY_CGROUPS_ROOT", dir.path())
        .env("TALLY_NODE_NAME", "n1")
        .output()
        .expect("run");
    assert!(output.status.success());
    let page = String::from_utf8_lossy(&output.stdout);
    assert!(page.ends_with("# EOF\n"), "{page}");
    assert!(page.contains(&format!("container_id=\"{}\"", fixture::CONTAINER_ID)));
    assert!(page.contains("tally_node_memory_total_bytes{node=\"n1\"}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spooled_batches_survive_an_agent_crash() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cgroups = dir.path().join("cgroup");
    fixture::write_tree(&cgroups);
    let port = common::free_port();
    let collector = format!("http://127.0.0.1:{port}");
    let spool = dir.path().join("spool");
    let env = [
        ("TALLY_CGROUPS_ROOT", cgroups.to_str().expect("utf8")),
        ("TALLY_SPOOL_DIR", spool.to_str().expect("utf8")),
        ("TALLY_SAMPLING_INTERVAL", "100ms"),
        ("TALLY_SAMPLING_EXPORT_INTERVAL", "300ms"),
        ("TALLY_EXPORT_MAX_BACKOFF", "200ms"),
    ];
    // No collector: everything the first agent produces stays spooled.
    let listen = format!("127.0.0.1:{}", common::free_port());
    let mut first = common::start_agent(
        &["--listen", &listen, "--collector", &collector],
        &env,
        &dir.path().join("first.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let segments = || {
        std::fs::read_dir(&spool)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "seg"))
                    .count()
            })
            .unwrap_or(0)
    };
    while segments() < 4 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // SIGKILL: no shutdown path runs.
    first.child.kill().expect("kill -9");
    let _ = first.child.wait();
    let spooled = segments();
    assert!(spooled >= 4, "only {spooled} batches spooled");
    let crashed_at = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock")
        .as_nanos() as u64;

    let received = Received::default();
    let stop = start_receiver(port, received.clone()).await;
    let listen = format!("127.0.0.1:{}", common::free_port());
    let _second = common::start_agent(
        &["--listen", &listen, "--collector", &collector],
        &env,
        &dir.path().join("second.log"),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let times = export_times(&received.0.lock().expect("lock"));
        let before_crash = times.iter().filter(|t| **t < crashed_at).count();
        if before_crash >= spooled {
            // Everything from before the crash arrived first, in order.
            assert!(
                times[..spooled].windows(2).all(|w| w[0] < w[1]),
                "{times:?}"
            );
            assert!(times[..spooled].iter().all(|t| *t < crashed_at));
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {before_crash} of {spooled} spooled batches arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
}
