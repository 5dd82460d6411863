//! dcgm-exporter-compatible families (`gpu.dcgm_compatible: true`), so
//! existing DCGM dashboards and alert rules keep working: the same names,
//! units (percent, MiB, MHz, mJ) and labels (`gpu`, `UUID`, `pci_bus_id`,
//! `device`, `modelName`, `GPU_I_PROFILE`, `GPU_I_ID`, `Hostname`,
//! `DCGM_FI_DRIVER_VERSION`, then `container`, `namespace`, `pod` where a
//! container uses the GPU).
//!
//! Differences, on purpose: dcgm-exporter's two counters
//! (`DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`, `DCGM_FI_DEV_PCIE_REPLAY_COUNTER`)
//! are typed gauge, because OpenMetrics would rename a counter to
//! `…_total` and the dashboards query the bare name; the values are the
//! same running totals. Pod labels come from per-process attribution, so a
//! time-sliced GPU has one `DCGM_FI_DEV_GPU_UTIL` and `DCGM_FI_DEV_FB_USED`
//! series per pod (dcgm-exporter does this only with
//! `--kubernetes-virtual-gpus`), and MIG instances carry their own pods.

use std::collections::BTreeMap;

use tally_schema::catalog::{Exposure, MetricDef, MetricKind, MetricUnit};

use super::{GpuPoint, GpuSnapshot};

const fn gauge(base: &'static str, help: &'static str) -> MetricDef {
    MetricDef {
        base,
        kind: MetricKind::Gauge,
        unit: MetricUnit::None,
        help,
        labels: &[],
        exposure: Exposure::Both,
    }
}

/// `DCGM_FI_DEV_GPU_UTIL`.
pub const GPU_UTIL: MetricDef = gauge("DCGM_FI_DEV_GPU_UTIL", "GPU utilization (in %).");
/// `DCGM_FI_DEV_MEM_COPY_UTIL`.
pub const MEM_COPY_UTIL: MetricDef =
    gauge("DCGM_FI_DEV_MEM_COPY_UTIL", "Memory utilization (in %).");
/// `DCGM_FI_DEV_FB_USED`.
pub const FB_USED: MetricDef = gauge("DCGM_FI_DEV_FB_USED", "Framebuffer memory used (in MiB).");
/// `DCGM_FI_DEV_FB_FREE`.
pub const FB_FREE: MetricDef = gauge("DCGM_FI_DEV_FB_FREE", "Framebuffer memory free (in MiB).");
/// `DCGM_FI_DEV_POWER_USAGE`.
pub const POWER_USAGE: MetricDef = gauge("DCGM_FI_DEV_POWER_USAGE", "Power draw (in W).");
/// `DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION`.
pub const TOTAL_ENERGY: MetricDef = gauge(
    "DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION",
    "Total energy consumption since boot (in mJ).",
);
/// `DCGM_FI_DEV_GPU_TEMP`.
pub const GPU_TEMP: MetricDef = gauge("DCGM_FI_DEV_GPU_TEMP", "GPU temperature (in C).");
/// `DCGM_FI_DEV_SM_CLOCK`.
pub const SM_CLOCK: MetricDef = gauge("DCGM_FI_DEV_SM_CLOCK", "SM clock frequency (in MHz).");
/// `DCGM_FI_DEV_MEM_CLOCK`.
pub const MEM_CLOCK: MetricDef = gauge("DCGM_FI_DEV_MEM_CLOCK", "Memory clock frequency (in MHz).");
/// `DCGM_FI_DEV_PCIE_REPLAY_COUNTER`.
pub const PCIE_REPLAY: MetricDef = gauge(
    "DCGM_FI_DEV_PCIE_REPLAY_COUNTER",
    "Total number of PCIe retries.",
);
/// `DCGM_FI_PROF_GR_ENGINE_ACTIVE`.
pub const GR_ENGINE_ACTIVE: MetricDef = gauge(
    "DCGM_FI_PROF_GR_ENGINE_ACTIVE",
    "Ratio of time the graphics engine is active.",
);
/// `DCGM_FI_PROF_PIPE_TENSOR_ACTIVE`.
pub const PIPE_TENSOR_ACTIVE: MetricDef = gauge(
    "DCGM_FI_PROF_PIPE_TENSOR_ACTIVE",
    "Ratio of cycles the tensor (HMMA) pipe is active.",
);
/// `DCGM_FI_DEV_XID_ERRORS`.
pub const XID_ERRORS: MetricDef = gauge(
    "DCGM_FI_DEV_XID_ERRORS",
    "Value of the last XID error encountered.",
);
/// `DCGM_FI_PROF_DRAM_ACTIVE`.
pub const DRAM_ACTIVE: MetricDef = gauge(
    "DCGM_FI_PROF_DRAM_ACTIVE",
    "Ratio of cycles the device memory interface is active sending or receiving data.",
);

/// One DCGM series.
#[derive(Debug, Clone, PartialEq)]
pub struct DcgmPoint {
    /// The family.
    pub def: &'static MetricDef,
    /// Labels in dcgm-exporter's order.
    pub labels: Vec<(&'static str, String)>,
    /// Value in DCGM's unit.
    pub value: f64,
}

const MIB: f64 = 1024.0 * 1024.0;

fn attribute<'a>(point: &'a GpuPoint, key: &str) -> &'a str {
    point
        .attributes
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("", |(_, v)| v.as_str())
}

/// The device (GPU or MIG instance) a point is about.
fn device_key(point: &GpuPoint) -> DeviceKey {
    (
        attribute(point, "gpu_uuid").to_owned(),
        attribute(point, "mig_instance").to_owned(),
    )
}

/// A device: GPU UUID and MIG instance (empty for a whole GPU).
type DeviceKey = (String, String);
/// A container: name, namespace, pod.
type Who<'a> = (&'a str, &'a str, &'a str);

/// The DCGM families of `snapshot` on node `hostname`; `last_xid` is the
/// last XID number seen per GPU UUID since the agent started.
pub fn translate(
    snapshot: &GpuSnapshot,
    hostname: &str,
    last_xid: &BTreeMap<String, u64>,
) -> Vec<DcgmPoint> {
    // Identity of each GPU from its info point: PCI bus id and driver.
    let info: Vec<&GpuPoint> = snapshot
        .node
        .iter()
        .filter(|p| p.def.base == "tally_gpu_info")
        .collect();
    let labels_of = |point: &GpuPoint, pod: Option<Who<'_>>| {
        let uuid = attribute(point, "gpu_uuid");
        let gpu_info = info.iter().find(|i| attribute(i, "gpu_uuid") == uuid);
        let from_info = |key| gpu_info.map_or("", |i| attribute(i, key)).to_owned();
        let index = attribute(point, "gpu_index");
        let mut labels = vec![
            ("gpu", index.to_owned()),
            ("UUID", uuid.to_owned()),
            ("pci_bus_id", from_info("pci_bus_id")),
            ("device", format!("nvidia{index}")),
            ("modelName", attribute(point, "gpu_model").to_owned()),
        ];
        let instance = attribute(point, "mig_instance");
        if !instance.is_empty() {
            labels.push(("GPU_I_PROFILE", attribute(point, "mig_profile").to_owned()));
            labels.push(("GPU_I_ID", instance.to_owned()));
        }
        labels.push(("Hostname", hostname.to_owned()));
        labels.push(("DCGM_FI_DRIVER_VERSION", from_info("driver_version")));
        if let Some((container, namespace, pod)) = pod {
            labels.push(("container", container.to_owned()));
            labels.push(("namespace", namespace.to_owned()));
            labels.push(("pod", pod.to_owned()));
        }
        labels
    };
    // Who uses each device: per-container points by device.
    let mut users: Vec<(DeviceKey, Who<'_>, &GpuPoint)> = Vec::new();
    for container in &snapshot.containers {
        let who = (
            container.identity.container.as_str(),
            container.identity.namespace.as_str(),
            container.identity.pod.as_str(),
        );
        for point in &container.points {
            users.push((device_key(point), who, point));
        }
    }
    // The containers on each device, once (not a scan per point).
    let mut pods_on: BTreeMap<&DeviceKey, Vec<Who<'_>>> = BTreeMap::new();
    for (key, who, _) in &users {
        let pods = pods_on.entry(key).or_default();
        if pods.last() != Some(who) {
            pods.push(*who);
        }
    }
    let used = |key: &DeviceKey| pods_on.contains_key(key);
    let sole_user = |key: &DeviceKey| {
        pods_on
            .get(key)
            .filter(|pods| pods.len() == 1)
            .map(|pods| pods[0])
    };
    let mut out = Vec::new();
    let mut push = |def: &'static MetricDef, labels, value: f64| {
        out.push(DcgmPoint { def, labels, value });
    };
    let total_of = |key: &DeviceKey| {
        snapshot
            .node
            .iter()
            .find(|p| p.def.base == "tally_gpu_memory_total" && device_key(p) == *key)
            .map(|p| p.value)
    };
    for point in &snapshot.node {
        let key = device_key(point);
        let pod = sole_user(&key);
        let labels = || labels_of(point, pod);
        let v = point.value;
        match point.def.base {
            "tally_gpu_utilization" => {
                let shared = pod.is_none() && used(&key);
                if !shared && key.1.is_empty() {
                    push(&GPU_UTIL, labels(), v * 100.0);
                }
                push(&GR_ENGINE_ACTIVE, labels(), v);
            }
            "tally_gpu_memory_utilization" => {
                if key.1.is_empty() {
                    push(&MEM_COPY_UTIL, labels(), v * 100.0);
                } else {
                    push(&DRAM_ACTIVE, labels(), v);
                }
            }
            "tally_gpu_memory_used" => {
                let shared = pod.is_none() && used(&key);
                if !shared {
                    push(&FB_USED, labels(), v / MIB);
                }
                if let Some(total) = total_of(&key) {
                    push(&FB_FREE, labels(), (total - v).max(0.0) / MIB);
                }
            }
            "tally_gpu_power" => push(&POWER_USAGE, labels(), v),
            "tally_gpu_energy" => push(&TOTAL_ENERGY, labels(), v * 1000.0),
            "tally_gpu_temperature" => push(&GPU_TEMP, labels(), v),
            "tally_gpu_clock" => match attribute(point, "clock") {
                "sm" => push(&SM_CLOCK, labels(), v / 1e6),
                "memory" => push(&MEM_CLOCK, labels(), v / 1e6),
                _ => {}
            },
            "tally_gpu_pcie_replays" => push(&PCIE_REPLAY, labels(), v),
            "tally_gpu_tensor_activity" => push(&PIPE_TENSOR_ACTIVE, labels(), v),
            // Every GPU's last XID (0: none seen), as DCGM keeps it.
            "tally_gpu_info" => {
                let xid = last_xid.get(&key.0).copied().unwrap_or(0);
                push(&XID_ERRORS, labels_of(point, None), xid as f64);
            }
            _ => {}
        }
    }
    // A device shared by several containers: their own utilization and
    // memory, one series per pod (dcgm-exporter's virtual-GPU mode).
    for (key, who, point) in &users {
        if sole_user(key).is_some() {
            continue;
        }
        let labels = labels_of(point, Some(*who));
        match point.def.base {
            "tally_container_gpu_utilization" if key.1.is_empty() => {
                push(&GPU_UTIL, labels, point.value * 100.0)
            }
            "tally_container_gpu_memory_used" => push(&FB_USED, labels, point.value / MIB),
            _ => {}
        }
    }
    out
}
