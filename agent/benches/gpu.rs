//! GPU collection cost (issue #5 targets: ≤ 5 ms of agent CPU per cycle
//! for 8 GPUs with 50 processes; ≤ 3 MiB of RSS for the source).
//!
//! `cargo bench -p tally-agent --bench gpu` replays a generated recording
//! of 8 whole GPUs with every reading present and 50 compute processes
//! (each with utilization samples), whose PIDs map to containers through
//! real `/proc/<pid>/cgroup` files in a temporary proc root, and times
//! `GpuSource::collect` (frame, attribution, every family, dcgm-exporter
//! names on) plus the `/metrics` render of the GPU families. The NVML
//! calls themselves are not in it (no GPU here); `tally gpu-check` times
//! those on a GPU machine. A plain timing loop keeps criterion's compile
//! cost out of the build.

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tally_agent::exposition::{self, Format};
use tally_agent::snapshot::{Shared, Snapshot};
use tally_agent::sources::gpu::GpuSource;
use tally_agent::sources::gpu::readings::{
    Device, FIXTURE_VERSION, Frame, Process, ProcessUtilization, Recording,
};
use tally_agent::sources::gpu::replay::ReplayBackend;
use tally_agent::sources::pods::model::PodStore;
use tally_agent::telemetry::SourceHealth;

const GPUS: u32 = 8;
const PROCESSES: u32 = 50;

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn frame(t: u64) -> Frame {
    let devices = (0..GPUS)
        .map(|index| {
            let pids: Vec<u32> = (0..PROCESSES)
                .filter(|p| p % GPUS == index)
                .map(|p| 10_000 + p)
                .collect();
            Device {
                index,
                uuid: format!("GPU-{index:08x}-0000-4000-8000-000000000000"),
                name: "NVIDIA H100 80GB HBM3".into(),
                pci_bus_id: format!("00000000:{:02X}:00.0", 0x18 + index),
                mig_enabled: Some(false),
                utilization_gpu_percent: Some(60),
                utilization_memory_percent: Some(20),
                memory_used_bytes: Some(40 << 30),
                memory_free_bytes: Some(40 << 30),
                memory_total_bytes: Some(80 << 30),
                power_milliwatts: Some(400_000),
                power_limit_milliwatts: Some(700_000),
                energy_millijoules: Some(1_000_000 + t),
                temperature_celsius: Some(55),
                sm_clock_mhz: Some(1980),
                memory_clock_mhz: Some(2619),
                throttle_reasons: Some(vec!["sw_power_cap".into()]),
                pcie_tx_bytes_per_second: Some(1 << 20),
                pcie_rx_bytes_per_second: Some(1 << 22),
                pcie_replays: Some(0),
                ecc_corrected: Some(0),
                ecc_uncorrected: Some(0),
                retired_pages: None,
                remapped_rows: Some(0),
                remap_pending: Some(false),
                performance_state: Some(0),
                processes: pids
                    .iter()
                    .map(|pid| Process {
                        pid: *pid,
                        used_memory_bytes: Some(2 << 30),
                        ..Process::default()
                    })
                    .collect(),
                process_utilization: pids
                    .iter()
                    .flat_map(|pid| {
                        (0..3).map(move |s| ProcessUtilization {
                            pid: *pid,
                            sm_percent: 10 + s,
                            memory_percent: 5,
                            timestamp_us: t * 1000 + u64::from(s),
                        })
                    })
                    .collect(),
                ..Device::default()
            }
        })
        .collect();
    Frame {
        time_ms: t,
        driver_version: Some("580.82.07".into()),
        devices,
        events: Vec::new(),
    }
}

fn main() {
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let proc = tempfile::tempdir().expect("tempdir");
    for p in 0..PROCESSES {
        let pid = 10_000 + p;
        let dir = proc.path().join(pid.to_string());
        std::fs::create_dir(&dir).expect("pid dir");
        std::fs::write(
            dir.join("cgroup"),
            format!(
                "0::/kubepods.slice/kubepods-pod{:08x}_0000_4000_8000_000000000000.slice/cri-containerd-{:064x}.scope\n",
                p, p
            ),
        )
        .expect("cgroup");
    }
    let recording = Recording {
        version: FIXTURE_VERSION,
        source: "generated".into(),
        description: "bench".into(),
        frames: (0..64).map(|i| frame(1_000 * i)).collect(),
    };
    let json = serde_json::to_string(&recording).expect("json");
    let before = rss_kib();
    let backend =
        ReplayBackend::from_json(std::path::Path::new("bench.json"), &json).expect("recording");
    let health = SourceHealth::new("gpu");
    let mut source = GpuSource::with_backend(
        Box::new(backend),
        proc.path().to_path_buf(),
        Arc::clone(&health),
    )
    .with_dcgm_names("bench-node".into());
    let pods = PodStore::default();
    let first = Instant::now();
    source.collect(&pods);
    let first_sample = first.elapsed();
    assert!(health.is_up());
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let began = Instant::now();
        source.collect(&pods);
        times.push(began.elapsed());
        black_box(source.snapshot());
    }
    let after = rss_kib();
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q) as usize];
    let snapshot = source.snapshot().clone();
    println!(
        "gpu: {GPUS} GPUs, {PROCESSES} processes, {} device points, {} containers, {} dcgm points",
        snapshot.node.len(),
        snapshot.containers.len(),
        snapshot.dcgm.len()
    );
    println!(
        "gpu: collect median {:.1} µs, p99 {:.1} µs over {runs} cycles; first sample {:.1} µs after the source was built",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6,
        first_sample.as_secs_f64() * 1e6,
    );
    // The render of the GPU families on /metrics.
    let shared = Arc::new(Shared::new("bench-node".into(), vec![health]));
    shared.publish(Snapshot {
        gpu: snapshot,
        ..Snapshot::default()
    });
    let registry = exposition::registry(shared);
    let mut renders: Vec<Duration> = (0..200)
        .map(|_| {
            let began = Instant::now();
            black_box(exposition::render(&registry, Format::OpenMetrics).ok());
            began.elapsed()
        })
        .collect();
    renders.sort();
    println!(
        "gpu: /metrics render of the GPU families median {:.1} µs; RSS {} KiB before the source, {} KiB after {runs} cycles ({:+} KiB, recording of 64 frames included)",
        renders[renders.len() / 2].as_secs_f64() * 1e6,
        before,
        after,
        after as i64 - before as i64
    );
}
