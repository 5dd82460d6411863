//! `/metrics` render time with 100 containers (target ≤ 1 ms).
//!
//! `cargo bench -p tally-agent --bench render` builds a snapshot of 100
//! containers with every stat present (the worst case) plus a host, then
//! renders the OpenMetrics page repeatedly and reports the median and p99.
//! A plain timing loop keeps criterion's compile cost out of the build.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_agent::exposition::{self, Format};
use tally_agent::snapshot::{ContainerSnapshot, Shared, Snapshot};
use tally_agent::sources::cgroups::discovery::Runtime;
use tally_agent::sources::cgroups::parse::{IoTotals, Pressure};
use tally_agent::sources::cgroups::reader::{CgroupStats, FastSample};
use tally_agent::sources::host::{HostStats, Interface};
use tally_agent::telemetry::SourceHealth;
use tally_schema::identity::{ContainerIdentity, NodeIdentity};

fn container(i: usize) -> ContainerSnapshot {
    let pressure = Some(Pressure {
        some_us: 1234,
        full_us: Some(56),
    });
    ContainerSnapshot {
        identity: ContainerIdentity {
            namespace: format!("team-{}", i % 7),
            pod: format!("inference-server-7f9c8d6b5-{i:05}"),
            container: "server".into(),
            workload_kind: "Deployment".into(),
            workload_name: "inference-server".into(),
            pod_uid: format!("0a1b2c3d-4e5f-4a6b-8c7d-{i:012}"),
            container_id: format!("{i:064x}"),
        },
        runtime: Runtime::Containerd,
        cgroup: format!(
            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{i}.slice/cri-containerd-{i:064x}.scope"
        ),
        cgroup_version: 2,
        stats: CgroupStats {
            fast: FastSample {
                cpu_usage_seconds: Some(12345.678 + i as f64),
                memory_usage_bytes: Some(1 << 30),
                memory_working_set_bytes: Some(900 << 20),
            },
            cpu_user_seconds: Some(10000.5),
            cpu_system_seconds: Some(2345.1),
            cpu_periods: Some(100_000),
            cpu_throttled_periods: Some(1234),
            cpu_throttled_seconds: Some(12.5),
            cpu_limit_cores: Some(4.0),
            cpu_weight: Some(157),
            memory_rss_bytes: Some(800 << 20),
            memory_cache_bytes: Some(200 << 20),
            memory_peak_bytes: Some(2 << 30),
            memory_limit_bytes: Some(4 << 30),
            oom_events: Some(0),
            oom_kills: Some(0),
            io: Some(IoTotals {
                read_bytes: 1 << 20,
                write_bytes: 2 << 20,
                reads: 100,
                writes: 200,
            }),
            pressure_cpu: pressure,
            pressure_memory: pressure,
            pressure_io: pressure,
        },
        requests: BTreeMap::from([("cpu".into(), 2.0), ("memory".into(), 4294967296.0)]),
        limits: BTreeMap::from([("cpu".into(), 4.0), ("nvidia.com/gpu".into(), 1.0)]),
    }
}

fn main() {
    let shared = Arc::new(Shared::new(
        "ip-10-0-1-23.ec2.internal".into(),
        vec![SourceHealth::new("host"), SourceHealth::new("cgroups")],
    ));
    shared.publish(Snapshot {
        taken_at: None,
        node: NodeIdentity::default(),
        host: Some(HostStats {
            cpu_seconds: vec![("user", 1.0), ("system", 2.0), ("idle", 3.0)],
            cpu_count: 16,
            interfaces: (0..4)
                .map(|i| Interface {
                    name: format!("eth{i}"),
                    ..Default::default()
                })
                .collect(),
            ..Default::default()
        }),
        containers: (0..100).map(container).collect(),
        pods: Vec::new(),
        pod_facts: Vec::new(),
        cgroups_by_runtime: BTreeMap::new(),
        volumes: Vec::new(),
        gpu: Default::default(),
        serving: Default::default(),
        logs: Vec::new(),
        egress: Vec::new(),
        egress_status: Vec::new(),
    });
    let registry = exposition::registry(shared);
    let page = exposition::render(&registry, Format::OpenMetrics).unwrap_or_default();
    let series = page.lines().filter(|l| !l.starts_with('#')).count();
    // Warm up, then time.
    for _ in 0..100 {
        black_box(exposition::render(&registry, Format::OpenMetrics).ok());
    }
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| {
            let start = Instant::now();
            black_box(exposition::render(&registry, Format::OpenMetrics).ok());
            start.elapsed()
        })
        .collect();
    times.sort();
    let median = times[runs / 2];
    let p99 = times[runs * 99 / 100];
    println!(
        "render /metrics, 100 containers: {series} series, {} bytes; median {:.1} µs, p99 {:.1} µs over {runs} runs (target ≤ 1000 µs)",
        page.len(),
        median.as_secs_f64() * 1e6,
        p99.as_secs_f64() * 1e6
    );
}
