//! The `gpu` source end to end over a replayed recording. NVML cannot run
//! on machines without an NVIDIA GPU, so the backend is the replay of
//! `tests/fixtures/gpu/documentation-h100-mig-timesliced.json`, written by
//! hand from the NVML documentation (it says so in its `source`); the PID
//! → container mapping reads real `/proc/<pid>/cgroup` files the test
//! writes into a proc root of its own, and pods come from a real
//! `PodStore`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tally_agent::sources::gpu::backend::GpuBackend;
use tally_agent::sources::gpu::replay::ReplayBackend;
use tally_agent::sources::gpu::{BackendChoice, GpuPoint, GpuSnapshot, GpuSource};
use tally_agent::sources::pods::model::{PodContainer, PodInfo, PodStore};
use tally_agent::telemetry::SourceHealth;

const FIXTURE: &str = "tests/fixtures/gpu/documentation-h100-mig-timesliced.json";
const TRAINER: &str = "1111111111111111111111111111111111111111111111111111111111111111";
const SERVER: &str = "2222222222222222222222222222222222222222222222222222222222222222";
const NOTEBOOK_A: &str = "3333333333333333333333333333333333333333333333333333333333333333";
const NOTEBOOK_B: &str = "4444444444444444444444444444444444444444444444444444444444444444";

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(FIXTURE)
}

fn uid(n: u8) -> String {
    format!("{n:08x}-0000-4000-8000-000000000000")
}

/// A proc root with the cgroup files of the fixture's PIDs: four
/// container processes (systemd and cgroupfs drivers) and a host daemon.
fn proc_root() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let containers = [
        (4100, 1, TRAINER, true),
        (4200, 2, SERVER, false),
        (5100, 3, NOTEBOOK_A, true),
        (5200, 4, NOTEBOOK_B, false),
    ];
    for (pid, pod, id, systemd) in containers {
        let text = if systemd {
            format!(
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{}.slice/cri-containerd-{id}.scope\n",
                uid(pod).replace('-', "_")
            )
        } else {
            format!("12:memory:/kubepods/burstable/pod{}/{id}\n", uid(pod))
        };
        std::fs::create_dir(dir.path().join(pid.to_string())).expect("pid dir");
        std::fs::write(dir.path().join(pid.to_string()).join("cgroup"), text).expect("cgroup");
    }
    std::fs::create_dir(dir.path().join("900")).expect("pid dir");
    std::fs::write(
        dir.path().join("900/cgroup"),
        "0::/system.slice/nvidia-persistenced.service\n",
    )
    .expect("cgroup");
    dir
}

fn pods() -> PodStore {
    let mut store = PodStore::default();
    for (n, name, container, id) in [
        (1, "trainer-0", "train", TRAINER),
        (2, "qwen-1-5b-0", "vllm", SERVER),
        (3, "notebook-a", "jupyter", NOTEBOOK_A),
        (4, "notebook-b", "jupyter", NOTEBOOK_B),
    ] {
        store.upsert(PodInfo {
            uid: uid(n),
            namespace: "ml".into(),
            name: name.into(),
            phase: "Running".into(),
            workload_kind: "Pod".into(),
            workload_name: name.into(),
            containers: vec![PodContainer {
                name: container.into(),
                container_id: id.into(),
                ..PodContainer::default()
            }],
            ..PodInfo::default()
        });
    }
    store
}

fn value(points: &[GpuPoint], family: &str, labels: &[(&str, &str)]) -> Option<f64> {
    points
        .iter()
        .find(|p| {
            p.def.full_name() == family
                && labels
                    .iter()
                    .all(|(k, v)| p.attributes.iter().any(|(pk, pv)| pk == k && pv == v))
        })
        .map(|p| p.value)
}

fn container<'a>(snapshot: &'a GpuSnapshot, pod: &str) -> &'a [GpuPoint] {
    &snapshot
        .containers
        .iter()
        .find(|c| c.identity.pod == pod)
        .unwrap_or_else(|| panic!("{pod} has no GPU points: {snapshot:#?}"))
        .points
}

const GPU0: &str = "GPU-5d1c0e6a-0000-4000-8000-000000000000";
const GPU1: &str = "GPU-7e2d1f7b-0000-4000-8000-000000000001";

#[test]
fn every_family_mig_time_slicing_events_and_a_lost_gpu() {
    let proc = proc_root();
    let health = SourceHealth::new("gpu");
    let backend = ReplayBackend::open(&fixture()).expect("fixture");
    let mut source = GpuSource::with_backend(
        Box::new(backend),
        proc.path().to_path_buf(),
        Arc::clone(&health),
    );
    let pods = pods();
    source.collect(&pods);
    assert!(health.is_up());
    let first = source.snapshot().clone();
    let node = &first.node;

    // Whole GPU 1: every reading in the catalog's units.
    let gpu1 = [("gpu_uuid", GPU1)];
    assert_eq!(
        value(node, "tally_gpu_utilization_ratio", &gpu1),
        Some(0.64)
    );
    assert_eq!(
        value(node, "tally_gpu_memory_utilization_ratio", &gpu1),
        Some(0.23)
    );
    assert_eq!(value(node, "tally_gpu_power_watts", &gpu1), Some(250.0));
    assert_eq!(
        value(node, "tally_gpu_power_limit_watts", &gpu1),
        Some(700.0)
    );
    assert_eq!(
        value(node, "tally_gpu_energy_joules_total", &gpu1),
        Some(800_000.0)
    );
    assert_eq!(
        value(node, "tally_gpu_temperature_celsius", &gpu1),
        Some(47.0)
    );
    assert_eq!(
        value(
            node,
            "tally_gpu_clock_hertz",
            &[("gpu_uuid", GPU1), ("clock", "sm")]
        ),
        Some(1.98e9)
    );
    assert_eq!(
        value(
            node,
            "tally_gpu_throttled",
            &[("gpu_uuid", GPU1), ("reason", "sw_power_cap")]
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            node,
            "tally_gpu_throttled",
            &[("gpu_uuid", GPU1), ("reason", "hw_slowdown")]
        ),
        Some(0.0)
    );
    assert_eq!(
        value(
            node,
            "tally_gpu_pcie_throughput_bytes",
            &[("gpu_uuid", GPU1), ("direction", "rx")]
        ),
        Some(2_097_152.0)
    );
    assert_eq!(
        value(node, "tally_gpu_pcie_replays_total", &gpu1),
        Some(2.0)
    );
    assert_eq!(
        value(
            node,
            "tally_gpu_ecc_errors_total",
            &[("gpu_uuid", GPU0), ("type", "corrected")]
        ),
        Some(3.0)
    );
    assert_eq!(value(node, "tally_gpu_performance_state", &gpu1), Some(0.0));
    assert_eq!(value(node, "tally_gpu_lost", &gpu1), Some(0.0));
    assert_eq!(
        value(
            node,
            "tally_gpu_info",
            &[("gpu_uuid", GPU0), ("mig_mode", "enabled")]
        ),
        Some(1.0)
    );

    // MIG GPU 0: no device utilization (NVML refuses it), the instances'
    // GPM readings instead.
    let whole_gpu0 = node.iter().any(|p| {
        p.def.base == "tally_gpu_utilization"
            && p.attributes
                .iter()
                .any(|(k, v)| *k == "gpu_uuid" && v == GPU0)
            && !p.attributes.iter().any(|(k, _)| *k == "mig_instance")
    });
    assert!(
        !whole_gpu0,
        "a MIG-enabled GPU has no utilization of its own"
    );
    let instance = [
        ("gpu_uuid", GPU0),
        ("mig_instance", "9"),
        ("mig_profile", "1g.10gb"),
    ];
    assert_eq!(
        value(node, "tally_gpu_utilization_ratio", &instance),
        Some(0.12)
    );
    assert_eq!(
        value(node, "tally_gpu_tensor_activity_ratio", &instance),
        Some(0.05)
    );
    assert_eq!(
        value(node, "tally_gpu_memory_total_bytes", &instance),
        Some(10_200_000_000.0)
    );

    // A GPU whose getters all answered NotSupported: identity and `lost`
    // only, no made-up zeros.
    let bare: Vec<&str> = node
        .iter()
        .filter(|p| {
            p.attributes
                .iter()
                .any(|(_, v)| v == "GPU-00000000-0000-4000-8000-0000000000ff")
        })
        .map(|p| p.def.base)
        .collect();
    assert_eq!(bare, ["tally_gpu_info", "tally_gpu_lost"]);

    // Attribution: MIG, time-sliced, and no host process.
    let trainer = container(&first, "trainer-0");
    let on_gi1 = [
        ("gpu_uuid", GPU0),
        ("mig_instance", "1"),
        ("sharing", "mig"),
    ];
    assert_eq!(
        value(trainer, "tally_container_gpu_memory_used_bytes", &on_gi1),
        Some(30_064_771_072.0)
    );
    assert_eq!(
        value(trainer, "tally_container_gpu_utilization_ratio", &on_gi1),
        Some(0.82)
    );
    let server = container(&first, "qwen-1-5b-0");
    assert_eq!(
        value(
            server,
            "tally_container_gpu_utilization_ratio",
            &[("mig_profile", "1g.10gb")]
        ),
        Some(0.12)
    );
    let a = container(&first, "notebook-a");
    let shared = [("gpu_uuid", GPU1), ("sharing", "time_sliced")];
    // The newest of its two samples.
    assert_eq!(
        value(a, "tally_container_gpu_utilization_ratio", &shared),
        Some(0.40)
    );
    assert_eq!(
        value(a, "tally_container_gpu_memory_used_bytes", &shared),
        Some(12_884_901_888.0)
    );
    let b = container(&first, "notebook-b");
    assert_eq!(
        value(b, "tally_container_gpu_utilization_ratio", &shared),
        Some(0.20)
    );
    assert_eq!(
        first.containers.len(),
        4,
        "the host daemon is not a container"
    );
    let identity = &first
        .containers
        .iter()
        .find(|c| c.identity.pod == "notebook-b")
        .expect("notebook-b")
        .identity;
    assert_eq!(
        (identity.namespace.as_str(), identity.container.as_str()),
        ("ml", "jupyter")
    );

    // Frame 2: the XID event is counted with its number; notebook B had
    // no new utilization sample, so only its memory is reported.
    source.collect(&pods);
    let second = source.snapshot().clone();
    assert_eq!(
        value(
            &second.node,
            "tally_gpu_events_total",
            &[("gpu_uuid", GPU1), ("kind", "xid"), ("xid", "79")]
        ),
        Some(1.0)
    );
    let b = container(&second, "notebook-b");
    assert_eq!(value(b, "tally_container_gpu_utilization_ratio", &[]), None);
    assert!(value(b, "tally_container_gpu_memory_used_bytes", &[]).is_some());

    // Frame 3: GPU 1 fell off the bus; reported, the rest goes on, the
    // event count stays.
    source.collect(&pods);
    let third = source.snapshot().clone();
    assert_eq!(value(&third.node, "tally_gpu_lost", &gpu1), Some(1.0));
    assert_eq!(value(&third.node, "tally_gpu_power_watts", &gpu1), None);
    assert_eq!(
        value(
            &third.node,
            "tally_gpu_energy_joules_total",
            &[("gpu_uuid", GPU0)]
        ),
        Some(901_874.567)
    );
    assert_eq!(
        value(&third.node, "tally_gpu_events_total", &[("kind", "xid")]),
        Some(1.0)
    );
    assert!(third.containers.is_empty());
    assert!(health.is_up());
}

#[test]
fn a_process_gone_before_its_cgroup_is_read_is_counted_not_fatal() {
    let empty = tempfile::tempdir().expect("tempdir");
    let health = SourceHealth::new("gpu");
    let backend = ReplayBackend::open(&fixture()).expect("fixture");
    let mut source = GpuSource::with_backend(
        Box::new(backend),
        empty.path().to_path_buf(),
        Arc::clone(&health),
    );
    source.collect(&PodStore::default());
    assert!(health.is_up());
    assert!(
        health.error_count("pid_lookup") >= 5,
        "every PID missed is counted"
    );
    assert!(source.snapshot().containers.is_empty());
    assert!(!source.snapshot().node.is_empty());
}

#[test]
fn a_broken_fixture_leaves_the_source_down_and_counted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("truncated.json");
    let text = std::fs::read_to_string(fixture()).expect("fixture");
    std::fs::write(&path, &text[..text.len() / 2]).expect("write");
    let health = SourceHealth::new("gpu");
    let mut source = GpuSource::new(
        BackendChoice::Replay(path),
        dir.path().to_path_buf(),
        Arc::clone(&health),
    );
    source.collect(&PodStore::default());
    assert!(!health.is_up());
    assert_eq!(health.error_count("fixture"), 1);
    assert!(!source.is_running());
    // Not retried: a second collection changes nothing.
    source.collect(&PodStore::default());
    assert_eq!(health.error_count("fixture"), 1);
}

/// The real NVML path on this machine: no NVIDIA driver, so the node is a
/// non-GPU node; the source is down, says so once, and counts no error.
#[test]
fn without_nvml_the_node_is_a_non_gpu_node() {
    let health = SourceHealth::new("gpu");
    let mut source = GpuSource::new(
        BackendChoice::Nvml,
        PathBuf::from("/proc"),
        Arc::clone(&health),
    );
    source.collect(&PodStore::default());
    if source.is_running() {
        eprintln!(
            "SKIP without_nvml_the_node_is_a_non_gpu_node: this machine has an NVIDIA driver"
        );
        return;
    }
    assert!(!health.is_up());
    let errors: BTreeMap<String, u64> = health.snapshot().errors;
    assert!(errors.is_empty(), "{errors:?}");
    assert!(source.snapshot().node.is_empty());
    source.collect(&PodStore::default());
    assert!(!health.is_up());
}

/// The recording's frames are what the replay backend serves.
#[test]
fn the_fixture_replays_in_order() {
    let mut backend = ReplayBackend::open(&fixture()).expect("fixture");
    let times: Vec<u64> = (0..4)
        .map(|_| backend.read().expect("frame").time_ms)
        .collect();
    assert_eq!(
        times,
        [
            1_795_996_800_000,
            1_795_996_801_000,
            1_795_996_802_000,
            1_795_996_803_000
        ]
    );
}

/// dcgm-exporter's names from the same frame: DCGM units, dcgm-exporter's
/// labels, pod labels where one container uses a GPU or MIG instance, one
/// series per pod on the time-sliced GPU.
#[test]
fn dcgm_names_carry_dcgm_units_and_pods() {
    let proc = proc_root();
    let health = SourceHealth::new("gpu");
    let backend = ReplayBackend::open(&fixture()).expect("fixture");
    let mut source = GpuSource::with_backend(Box::new(backend), proc.path().to_path_buf(), health)
        .with_dcgm_names("gpu-node-1".into());
    source.collect(&pods());
    let dcgm = &source.snapshot().dcgm;
    let find = |name: &str, labels: &[(&str, &str)]| -> Vec<f64> {
        dcgm.iter()
            .filter(|p| {
                p.def.base == name
                    && labels
                        .iter()
                        .all(|(k, v)| p.labels.iter().any(|(pk, pv)| pk == k && pv == v))
            })
            .map(|p| p.value)
            .collect()
    };
    // Units: °C, W, MHz, mJ, MiB, percent.
    assert_eq!(find("DCGM_FI_DEV_GPU_TEMP", &[("gpu", "1")]), [47.0]);
    assert_eq!(find("DCGM_FI_DEV_POWER_USAGE", &[("gpu", "1")]), [250.0]);
    assert_eq!(find("DCGM_FI_DEV_SM_CLOCK", &[("gpu", "1")]), [1980.0]);
    assert_eq!(
        find("DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION", &[("gpu", "1")]),
        [800_000_000.0]
    );
    // The time-sliced GPU: per-pod utilization and memory, no device-wide
    // series of those two.
    assert_eq!(
        find(
            "DCGM_FI_DEV_GPU_UTIL",
            &[("gpu", "1"), ("pod", "notebook-a")]
        ),
        [40.0]
    );
    assert_eq!(find("DCGM_FI_DEV_GPU_UTIL", &[("gpu", "1")]).len(), 2);
    assert_eq!(
        find(
            "DCGM_FI_DEV_FB_USED",
            &[("gpu", "1"), ("pod", "notebook-b")]
        ),
        [8_053_063_680.0 / 1_048_576.0]
    );
    // MIG instance 1 belongs to the trainer alone: its pod on every series.
    let tensor = dcgm
        .iter()
        .find(|p| {
            p.def.base == "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE"
                && p.labels.iter().any(|(k, v)| *k == "GPU_I_ID" && v == "1")
        })
        .expect("tensor activity of GI 1");
    let names: Vec<&str> = tensor.labels.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        names,
        [
            "gpu",
            "UUID",
            "pci_bus_id",
            "device",
            "modelName",
            "GPU_I_PROFILE",
            "GPU_I_ID",
            "Hostname",
            "DCGM_FI_DRIVER_VERSION",
            "container",
            "namespace",
            "pod"
        ]
    );
    assert!(tensor.labels.contains(&("pod", "trainer-0".to_owned())));
    assert!(
        tensor
            .labels
            .contains(&("Hostname", "gpu-node-1".to_owned()))
    );
    assert_eq!(tensor.value, 0.55);
    // No GPU_UTIL for a MIG-enabled GPU (NVML has none); its instances
    // report DCGM_FI_PROF_GR_ENGINE_ACTIVE.
    assert!(find("DCGM_FI_DEV_GPU_UTIL", &[("gpu", "0")]).is_empty());
    assert_eq!(
        find("DCGM_FI_PROF_GR_ENGINE_ACTIVE", &[("GPU_I_ID", "9")]),
        [0.12]
    );
    // The last XID per GPU: none yet, then frame 2's 79 on GPU 1.
    assert_eq!(find("DCGM_FI_DEV_XID_ERRORS", &[("gpu", "1")]), [0.0]);
    source.collect(&pods());
    let dcgm = &source.snapshot().dcgm;
    let xid: Vec<f64> = dcgm
        .iter()
        .filter(|p| {
            p.def.base == "DCGM_FI_DEV_XID_ERRORS"
                && p.labels.iter().any(|(k, v)| *k == "gpu" && v == "1")
        })
        .map(|p| p.value)
        .collect();
    assert_eq!(xid, [79.0]);
}

/// One collection of the fixture's first frame after `edit`.
fn collect_edited(edit: impl FnOnce(&mut serde_json::Value)) -> (GpuSnapshot, Arc<SourceHealth>) {
    let text = std::fs::read_to_string(fixture()).expect("fixture");
    let mut recording: serde_json::Value = serde_json::from_str(&text).expect("json");
    let first = recording["frames"][0].clone();
    recording["frames"] = serde_json::json!([first]);
    // Pre-Ampere retired pages too, so that reading has a series to lose.
    recording["frames"][0]["devices"][1]["retired_pages"] = serde_json::json!(0);
    edit(&mut recording);
    let backend = ReplayBackend::from_json(&fixture(), &recording.to_string()).expect("replay");
    let proc = proc_root();
    let health = SourceHealth::new("gpu");
    let mut source = GpuSource::with_backend(
        Box::new(backend),
        proc.path().to_path_buf(),
        Arc::clone(&health),
    );
    source.collect(&pods());
    (source.snapshot().clone(), health)
}

/// A node point as (family, sorted labels), for set comparisons.
fn keys(points: &[GpuPoint]) -> std::collections::BTreeSet<(String, Vec<(String, String)>)> {
    points
        .iter()
        .map(|p| {
            let mut labels: Vec<(String, String)> = p
                .attributes
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect();
            labels.sort();
            (p.def.full_name(), labels)
        })
        .collect()
}

/// NVML may answer `NotSupported` (or `NoPermission`) for any getter on
/// some SKU or in MIG mode. Each reading, missing alone, loses exactly its
/// own series: the cycle succeeds, no error is counted, every other
/// series of every GPU is unchanged. Recorded data, edited per case.
#[test]
fn each_unsupported_reading_loses_only_its_own_series() {
    let (baseline, health) = collect_edited(|_| {});
    assert!(health.is_up());
    let baseline_keys = keys(&baseline.node);
    // (GPU index, MIG instance position or none, field, family, labels the
    // lost series carry beyond the GPU's).
    type Case = (
        usize,
        Option<usize>,
        &'static str,
        &'static str,
        &'static [(&'static str, &'static str)],
    );
    let cases: &[Case] = &[
        (
            1,
            None,
            "utilization_gpu_percent",
            "tally_gpu_utilization_ratio",
            &[],
        ),
        (
            1,
            None,
            "utilization_memory_percent",
            "tally_gpu_memory_utilization_ratio",
            &[],
        ),
        (
            1,
            None,
            "memory_used_bytes",
            "tally_gpu_memory_used_bytes",
            &[],
        ),
        (
            1,
            None,
            "memory_total_bytes",
            "tally_gpu_memory_total_bytes",
            &[],
        ),
        (1, None, "power_milliwatts", "tally_gpu_power_watts", &[]),
        (
            1,
            None,
            "power_limit_milliwatts",
            "tally_gpu_power_limit_watts",
            &[],
        ),
        (
            1,
            None,
            "energy_millijoules",
            "tally_gpu_energy_joules_total",
            &[],
        ),
        (
            1,
            None,
            "temperature_celsius",
            "tally_gpu_temperature_celsius",
            &[],
        ),
        (
            1,
            None,
            "sm_clock_mhz",
            "tally_gpu_clock_hertz",
            &[("clock", "sm")],
        ),
        (
            1,
            None,
            "memory_clock_mhz",
            "tally_gpu_clock_hertz",
            &[("clock", "memory")],
        ),
        (1, None, "throttle_reasons", "tally_gpu_throttled", &[]),
        (
            1,
            None,
            "pcie_tx_bytes_per_second",
            "tally_gpu_pcie_throughput_bytes",
            &[("direction", "tx")],
        ),
        (
            1,
            None,
            "pcie_rx_bytes_per_second",
            "tally_gpu_pcie_throughput_bytes",
            &[("direction", "rx")],
        ),
        (1, None, "pcie_replays", "tally_gpu_pcie_replays_total", &[]),
        (
            1,
            None,
            "ecc_corrected",
            "tally_gpu_ecc_errors_total",
            &[("type", "corrected")],
        ),
        (
            1,
            None,
            "ecc_uncorrected",
            "tally_gpu_ecc_errors_total",
            &[("type", "uncorrected")],
        ),
        (1, None, "retired_pages", "tally_gpu_retired_pages", &[]),
        (1, None, "remapped_rows", "tally_gpu_remapped_rows", &[]),
        (1, None, "remap_pending", "tally_gpu_remap_pending", &[]),
        (
            1,
            None,
            "performance_state",
            "tally_gpu_performance_state",
            &[],
        ),
        (
            0,
            Some(1),
            "memory_used_bytes",
            "tally_gpu_memory_used_bytes",
            &[("mig_instance", "9")],
        ),
        (
            0,
            Some(1),
            "memory_total_bytes",
            "tally_gpu_memory_total_bytes",
            &[("mig_instance", "9")],
        ),
        (
            0,
            Some(1),
            "sm_activity",
            "tally_gpu_utilization_ratio",
            &[("mig_instance", "9")],
        ),
        (
            0,
            Some(1),
            "tensor_activity",
            "tally_gpu_tensor_activity_ratio",
            &[("mig_instance", "9")],
        ),
        (
            0,
            Some(1),
            "dram_bandwidth",
            "tally_gpu_memory_utilization_ratio",
            &[("mig_instance", "9")],
        ),
    ];
    let uuids = [GPU0, GPU1];
    for (gpu, mig, field, family, labels) in cases {
        let (snapshot, health) = collect_edited(|recording| {
            let device = &mut recording["frames"][0]["devices"][*gpu];
            let target = match mig {
                Some(i) => &mut device["mig_devices"][*i],
                None => device,
            };
            assert!(!target[*field].is_null(), "{field} is set in the fixture");
            target[*field] = serde_json::Value::Null;
        });
        assert!(health.is_up(), "{field}");
        assert!(
            health.snapshot().errors.is_empty(),
            "{field}: {:?}",
            health.snapshot().errors
        );
        let mut wanted = vec![("gpu_uuid", uuids[*gpu])];
        wanted.extend_from_slice(labels);
        let lost = |key: &(String, Vec<(String, String)>)| {
            key.0 == *family
                && wanted
                    .iter()
                    .all(|(k, v)| key.1.iter().any(|(lk, lv)| lk == k && lv == v))
        };
        let expected: std::collections::BTreeSet<_> =
            baseline_keys.iter().filter(|k| !lost(k)).cloned().collect();
        assert!(
            expected.len() < baseline_keys.len(),
            "{field}: the baseline has no {family} series to lose"
        );
        let got = keys(&snapshot.node);
        let missing: Vec<_> = expected.difference(&got).collect();
        let extra: Vec<_> = got.difference(&expected).collect();
        assert!(
            missing.is_empty() && extra.is_empty(),
            "{field}: lost besides {family}: {missing:?}; unexpected: {extra:?}"
        );
    }
}

/// A process whose memory NVML will not give keeps its SM share; one
/// whose GPU gives no utilization samples keeps its memory.
#[test]
fn a_process_reading_missing_loses_only_that_reading() {
    let container_families = |snapshot: &GpuSnapshot, pod: &str| -> Vec<String> {
        let mut names: Vec<String> = container(snapshot, pod)
            .iter()
            .map(|p| p.def.full_name())
            .collect();
        names.sort();
        names.dedup();
        names
    };
    let (baseline, _) = collect_edited(|_| {});
    assert_eq!(
        container_families(&baseline, "notebook-a"),
        [
            "tally_container_gpu_memory_used_bytes",
            "tally_container_gpu_utilization_ratio"
        ]
    );
    let (no_memory, health) = collect_edited(|recording| {
        recording["frames"][0]["devices"][1]["processes"][0]["used_memory_bytes"] =
            serde_json::Value::Null;
    });
    assert!(health.is_up() && health.snapshot().errors.is_empty());
    assert_eq!(
        container_families(&no_memory, "notebook-a"),
        ["tally_container_gpu_utilization_ratio"]
    );
    assert_eq!(
        container(&no_memory, "notebook-b"),
        container(&baseline, "notebook-b")
    );
    let (no_samples, health) = collect_edited(|recording| {
        recording["frames"][0]["devices"][1]["process_utilization"] = serde_json::json!([]);
    });
    assert!(health.is_up() && health.snapshot().errors.is_empty());
    assert_eq!(
        container_families(&no_samples, "notebook-a"),
        ["tally_container_gpu_memory_used_bytes"]
    );
}
