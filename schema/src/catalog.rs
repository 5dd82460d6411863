//! The metric catalog: every family Tally emits, in one place.
//!
//! The agent's `/metrics` renderer and OTLP encoder take names, help, units
//! and types from here; `docs/metrics.md` is generated from it (`tally
//! catalog --markdown`) and a test fails when the checked-in file is stale.
//!
//! Names follow Prometheus conventions: base units, the unit as a suffix,
//! `_total` on counters, and `_info` gauges of value 1 (not the OpenMetrics
//! `info` type, so classic-format scrapers also read them). OTLP metric names
//! are the same full names, so a series keeps one name end to end.

use std::fmt::Write as _;

/// How a family behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Monotonic cumulative counter; the name ends in `_total`.
    Counter,
    /// Point-in-time value.
    Gauge,
    /// Constant 1 carrying descriptive labels; the name ends in `_info`.
    Info,
    /// Classic histogram with explicit buckets (agent self-metrics).
    Histogram,
    /// Base-2 exponential histogram, delta temporality, sent over OTLP only.
    ExponentialHistogram,
}

/// The unit of a family, in base units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricUnit {
    /// No unit (counts, ratios of like things, info).
    None,
    /// Seconds.
    Seconds,
    /// Bytes.
    Bytes,
    /// CPU cores (a rate of CPU-seconds per second).
    Cores,
    /// Watts.
    Watts,
    /// Joules.
    Joules,
    /// Degrees Celsius.
    Celsius,
    /// Hertz.
    Hertz,
    /// A share of a whole, 0 to 1 (never percent).
    Ratio,
    /// Model tokens.
    Tokens,
}

impl MetricUnit {
    /// The suffix Prometheus names carry for this unit.
    pub fn suffix(self) -> Option<&'static str> {
        match self {
            MetricUnit::None => None,
            MetricUnit::Seconds => Some("seconds"),
            MetricUnit::Bytes => Some("bytes"),
            MetricUnit::Cores => Some("cores"),
            MetricUnit::Watts => Some("watts"),
            MetricUnit::Joules => Some("joules"),
            MetricUnit::Celsius => Some("celsius"),
            MetricUnit::Hertz => Some("hertz"),
            MetricUnit::Ratio => Some("ratio"),
            MetricUnit::Tokens => Some("tokens"),
        }
    }

    /// The UCUM unit string OTLP carries.
    pub fn ucum(self) -> &'static str {
        match self {
            MetricUnit::None => "1",
            MetricUnit::Seconds => "s",
            MetricUnit::Bytes => "By",
            MetricUnit::Cores => "{cpu}",
            MetricUnit::Watts => "W",
            MetricUnit::Joules => "J",
            MetricUnit::Celsius => "Cel",
            MetricUnit::Hertz => "Hz",
            MetricUnit::Ratio => "1",
            MetricUnit::Tokens => "{token}",
        }
    }
}

/// Where a family is emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exposure {
    /// On `/metrics` and over OTLP.
    Both,
    /// Over OTLP only (exponential histograms have no classic text form).
    OtlpOnly,
}

/// One metric family.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricDef {
    /// Name without the unit suffix and without `_total`; prometheus-client
    /// appends both when it encodes.
    pub base: &'static str,
    /// Type.
    pub kind: MetricKind,
    /// Unit.
    pub unit: MetricUnit,
    /// One-sentence help text.
    pub help: &'static str,
    /// Label names in rendering order.
    pub labels: &'static [&'static str],
    /// Where it is emitted.
    pub exposure: Exposure,
}

impl MetricDef {
    /// Full Prometheus name (unit suffix and `_total` included).
    pub fn full_name(&self) -> String {
        let mut name = self.base.to_owned();
        if let Some(suffix) = self.unit.suffix() {
            name.push('_');
            name.push_str(suffix);
        }
        if self.kind == MetricKind::Counter {
            name.push_str("_total");
        }
        name
    }
}

const C: &[&str] = crate::identity::CONTAINER_LABELS;
const NODE: &[&str] = &["node"];
const GPU: &[&str] = crate::identity::GPU_LABELS;
const GPU_DEVICE: &[&str] = crate::identity::GPU_DEVICE_LABELS;
/// Container labels plus the resource and its unit (requests, limits).
const C_RESOURCE: &[&str] = &concat::<10>(C, &["resource", "unit"]);
/// Container labels plus the GPU device the container's processes use and
/// how that GPU is shared.
const C_GPU: &[&str] = &concat::<14>(
    C,
    &[
        "gpu_uuid",
        "gpu_index",
        "gpu_model",
        "mig_profile",
        "mig_instance",
        "sharing",
    ],
);
/// Container labels of a model server plus its engine and served model.
const C_MODEL: &[&str] = &concat::<10>(C, &["engine", "model"]);
/// A model server the agent scrapes: its URL, engine and pod.
const SCRAPE: &[&str] = &["node", "target", "engine", "namespace", "pod"];
/// Pod labels plus where the traffic went.
const POD_DESTINATION: &[&str] = &concat::<10>(
    crate::identity::POD_LABELS,
    &[
        "destination_class",
        "destination_namespace",
        "destination_workload",
        "destination_service",
    ],
);
/// Pod labels plus which of the pod's volumes, and the persistent volume
/// and claim behind it when there is one.
const POD_VOLUME: &[&str] = &concat::<11>(
    crate::identity::POD_LABELS,
    &[
        "volume",
        "persistentvolume",
        "persistentvolumeclaim",
        "storage_class",
        "plugin",
    ],
);

/// Pod labels plus the PodDisruptionBudget's name.
const POD_PDB: &[&str] = &concat::<7>(crate::identity::POD_LABELS, &["pdb"]);
/// Pod labels plus the resource an autoscaler target is on.
const POD_RESOURCE: &[&str] = &concat::<7>(crate::identity::POD_LABELS, &["resource"]);
/// Pod labels plus which replica bound of an autoscaler.
const POD_BOUND: &[&str] = &concat::<7>(crate::identity::POD_LABELS, &["bound"]);

/// `base` followed by `extra`, at compile time, so a family's labels
/// extend an identity list instead of repeating it (`N` is the total;
/// a wrong `N` fails the build).
const fn concat<const N: usize>(
    base: &[&'static str],
    extra: &[&'static str],
) -> [&'static str; N] {
    assert!(base.len() + extra.len() == N, "N must be the total length");
    let mut out = [""; N];
    let mut i = 0;
    while i < base.len() {
        out[i] = base[i];
        i += 1;
    }
    while i < N {
        out[i] = extra[i - base.len()];
        i += 1;
    }
    out
}

macro_rules! def {
    ($ident:ident, $base:literal, $kind:ident, $unit:ident, $labels:expr, $help:literal) => {
        def!($ident, $base, $kind, $unit, $labels, $help, Both);
    };
    ($ident:ident, $base:literal, $kind:ident, $unit:ident, $labels:expr, $help:literal, $exp:ident) => {
        #[doc = $help]
        pub const $ident: MetricDef = MetricDef {
            base: $base,
            kind: MetricKind::$kind,
            unit: MetricUnit::$unit,
            help: $help,
            labels: $labels,
            exposure: Exposure::$exp,
        };
    };
}

// === Node ===
def!(
    NODE_INFO,
    "tally_node_info",
    Info,
    None,
    &[
        "node",
        "zone",
        "region",
        "instance_type",
        "capacity_type",
        "boot_id",
        "kernel_version",
        "os"
    ],
    "Node identity: cloud placement, capacity type and boot id."
);
def!(
    NODE_CPU,
    "tally_node_cpu",
    Counter,
    Seconds,
    &["node", "mode"],
    "CPU time spent in each mode, summed over all CPUs."
);
def!(
    NODE_CPU_COUNT,
    "tally_node_cpus",
    Gauge,
    None,
    NODE,
    "Logical CPUs on the node."
);
def!(
    NODE_LOAD1,
    "tally_node_load1",
    Gauge,
    None,
    NODE,
    "1-minute load average."
);
def!(
    NODE_LOAD5,
    "tally_node_load5",
    Gauge,
    None,
    NODE,
    "5-minute load average."
);
def!(
    NODE_LOAD15,
    "tally_node_load15",
    Gauge,
    None,
    NODE,
    "15-minute load average."
);
def!(
    NODE_MEMORY_TOTAL,
    "tally_node_memory_total",
    Gauge,
    Bytes,
    NODE,
    "Physical memory."
);
def!(
    NODE_MEMORY_AVAILABLE,
    "tally_node_memory_available",
    Gauge,
    Bytes,
    NODE,
    "Memory available for new work without swapping (MemAvailable)."
);
def!(
    NODE_MEMORY_FREE,
    "tally_node_memory_free",
    Gauge,
    Bytes,
    NODE,
    "Unused memory (MemFree)."
);
def!(
    NODE_SWAP_TOTAL,
    "tally_node_swap_total",
    Gauge,
    Bytes,
    NODE,
    "Swap space."
);
def!(
    NODE_SWAP_FREE,
    "tally_node_swap_free",
    Gauge,
    Bytes,
    NODE,
    "Unused swap space."
);
def!(
    NODE_FILESYSTEM_SIZE,
    "tally_node_filesystem_size",
    Gauge,
    Bytes,
    &["node", "device", "mountpoint", "fstype"],
    "Filesystem size."
);
def!(
    NODE_FILESYSTEM_AVAIL,
    "tally_node_filesystem_avail",
    Gauge,
    Bytes,
    &["node", "device", "mountpoint", "fstype"],
    "Filesystem space available to unprivileged users."
);
def!(
    NODE_DISK_READ,
    "tally_node_disk_read",
    Counter,
    Bytes,
    &["node", "device"],
    "Bytes read from a block device."
);
def!(
    NODE_DISK_WRITTEN,
    "tally_node_disk_written",
    Counter,
    Bytes,
    &["node", "device"],
    "Bytes written to a block device."
);
def!(
    NODE_DISK_READS,
    "tally_node_disk_reads_completed",
    Counter,
    None,
    &["node", "device"],
    "Reads completed on a block device."
);
def!(
    NODE_DISK_WRITES,
    "tally_node_disk_writes_completed",
    Counter,
    None,
    &["node", "device"],
    "Writes completed on a block device."
);
def!(
    NODE_NET_RX_BYTES,
    "tally_node_network_receive",
    Counter,
    Bytes,
    &["node", "interface"],
    "Bytes received on a network interface."
);
def!(
    NODE_NET_TX_BYTES,
    "tally_node_network_transmit",
    Counter,
    Bytes,
    &["node", "interface"],
    "Bytes transmitted on a network interface."
);
def!(
    NODE_NET_RX_PACKETS,
    "tally_node_network_receive_packets",
    Counter,
    None,
    &["node", "interface"],
    "Packets received on a network interface."
);
def!(
    NODE_NET_TX_PACKETS,
    "tally_node_network_transmit_packets",
    Counter,
    None,
    &["node", "interface"],
    "Packets transmitted on a network interface."
);
def!(
    NODE_NET_RX_ERRORS,
    "tally_node_network_receive_errors",
    Counter,
    None,
    &["node", "interface"],
    "Receive errors on a network interface."
);
def!(
    NODE_NET_TX_ERRORS,
    "tally_node_network_transmit_errors",
    Counter,
    None,
    &["node", "interface"],
    "Transmit errors on a network interface."
);
def!(
    NODE_NET_RX_DROPS,
    "tally_node_network_receive_drops",
    Counter,
    None,
    &["node", "interface"],
    "Received packets dropped on a network interface."
);
def!(
    NODE_NET_TX_DROPS,
    "tally_node_network_transmit_drops",
    Counter,
    None,
    &["node", "interface"],
    "Transmitted packets dropped on a network interface."
);
def!(
    NODE_BOOT_TIME,
    "tally_node_boot_time",
    Gauge,
    Seconds,
    NODE,
    "Boot time, in seconds since the Unix epoch."
);
def!(
    NODE_UPTIME,
    "tally_node_uptime",
    Gauge,
    Seconds,
    NODE,
    "Seconds since boot."
);

// === Pods ===
def!(
    POD_INFO,
    "tally_pod_info",
    Info,
    None,
    &[
        "node",
        "namespace",
        "pod",
        "pod_uid",
        "workload_kind",
        "workload_name",
        "qos_class",
        "phase"
    ],
    "Pod identity from the node-scoped pod watch."
);
def!(
    POD_STARTUP,
    "tally_pod_startup",
    Gauge,
    Seconds,
    crate::identity::POD_LABELS,
    "Seconds from the pod's PodScheduled condition to its Ready condition (image pull, container start, model load, readiness probes); absent until the pod is Ready."
);
def!(
    WORKLOAD_REPLICAS,
    "tally_workload_replicas",
    Gauge,
    None,
    crate::identity::POD_LABELS,
    "Desired replicas (spec.replicas) of the pod's top controller: the Deployment owning its ReplicaSet, a ReplicaSet without one, or a StatefulSet; absent for other kinds."
);
def!(
    WORKLOAD_ROLLOUT_MAX_UNAVAILABLE,
    "tally_workload_rollout_max_unavailable",
    Gauge,
    None,
    crate::identity::POD_LABELS,
    "Pods a rollout of the pod's Deployment may take down at once: strategy.rollingUpdate.maxUnavailable resolved as Kubernetes does (a percent of the replicas rounded down, 25 % when unset, 1 when it and maxSurge both resolve to 0), or the replica count for strategy Recreate; absent for other kinds."
);
def!(
    POD_DISRUPTION_BUDGET_MIN_AVAILABLE,
    "tally_pod_disruption_budget_min_available",
    Gauge,
    None,
    POD_PDB,
    "Pods a PodDisruptionBudget selecting the pod keeps available, one series per budget (pdb): minAvailable (a percent of the controller's replicas rounded up), or the replicas minus maxUnavailable (a percent rounded up), floored at 0; no series when no budget covers the pod."
);
def!(
    WORKLOAD_HPA_TARGET_UTILIZATION,
    "tally_workload_hpa_target_utilization",
    Gauge,
    Ratio,
    POD_RESOURCE,
    "Target average utilization of the HorizontalPodAutoscaler scaling the pod's top controller (the Deployment owning its ReplicaSet, a ReplicaSet without one, or a StatefulSet), per resource (cpu or memory): averageUtilization / 100 of its Resource metrics with a Utilization target (the lowest when several name one resource; CPU 0.8 when it lists no metrics, as the API server defaults it); ContainerResource, Pods, Object and External metrics and AverageValue targets are not reported; no series without an autoscaler."
);
def!(
    WORKLOAD_HPA_REPLICAS,
    "tally_workload_hpa_replicas",
    Gauge,
    None,
    POD_BOUND,
    "Replica bounds of the HorizontalPodAutoscaler scaling the pod's top controller: bound=min is spec.minReplicas (1 when unset), bound=max spec.maxReplicas; no series without an autoscaler."
);

// === Containers ===
def!(
    CONTAINER_INFO,
    "tally_container_info",
    Info,
    None,
    &concat::<11>(C, &["runtime", "cgroup", "cgroup_version"]),
    "Container identity: runtime and cgroup path. runtime=\"unknown\" marks cgroups Tally could not map to a container."
);
def!(
    CONTAINER_CPU_USAGE,
    "tally_container_cpu_usage",
    Counter,
    Seconds,
    C,
    "CPU time consumed by the container."
);
def!(
    CONTAINER_CPU_USER,
    "tally_container_cpu_user",
    Counter,
    Seconds,
    C,
    "CPU time the container spent in user mode."
);
def!(
    CONTAINER_CPU_SYSTEM,
    "tally_container_cpu_system",
    Counter,
    Seconds,
    C,
    "CPU time the container spent in kernel mode."
);
def!(
    CONTAINER_CPU_PERIODS,
    "tally_container_cpu_cfs_periods",
    Counter,
    None,
    C,
    "Elapsed CFS enforcement periods."
);
def!(
    CONTAINER_CPU_THROTTLED_PERIODS,
    "tally_container_cpu_cfs_throttled_periods",
    Counter,
    None,
    C,
    "CFS periods in which the container was throttled."
);
def!(
    CONTAINER_CPU_THROTTLED,
    "tally_container_cpu_cfs_throttled",
    Counter,
    Seconds,
    C,
    "Time the container was throttled by its CPU limit."
);
def!(
    CONTAINER_CPU_LIMIT,
    "tally_container_cpu_limit",
    Gauge,
    Cores,
    C,
    "CPU limit (CFS quota / period); absent when unlimited."
);
def!(
    CONTAINER_CPU_WEIGHT,
    "tally_container_cpu_weight",
    Gauge,
    None,
    C,
    "CPU weight in cgroup v2 units (1-10000); v1 shares are converted as runc does."
);
def!(
    CONTAINER_MEMORY_USAGE,
    "tally_container_memory_usage",
    Gauge,
    Bytes,
    C,
    "Memory charged to the container, page cache included."
);
def!(
    CONTAINER_MEMORY_WORKING_SET,
    "tally_container_memory_working_set",
    Gauge,
    Bytes,
    C,
    "Working set: usage minus inactive file cache, floored at 0, as kubelet computes it."
);
def!(
    CONTAINER_MEMORY_RSS,
    "tally_container_memory_rss",
    Gauge,
    Bytes,
    C,
    "Anonymous memory (v2 anon, v1 total_rss)."
);
def!(
    CONTAINER_MEMORY_CACHE,
    "tally_container_memory_cache",
    Gauge,
    Bytes,
    C,
    "Page cache (v2 file, v1 total_cache)."
);
def!(
    CONTAINER_MEMORY_PEAK,
    "tally_container_memory_peak",
    Gauge,
    Bytes,
    C,
    "Highest memory usage the kernel recorded (v2 memory.peak, v1 max_usage_in_bytes)."
);
def!(
    CONTAINER_MEMORY_LIMIT,
    "tally_container_memory_limit",
    Gauge,
    Bytes,
    C,
    "Memory limit; absent when unlimited."
);
def!(
    CONTAINER_MEMORY_OOM_EVENTS,
    "tally_container_memory_oom_events",
    Counter,
    None,
    C,
    "Times the container hit its memory limit and the OOM path ran (cgroup v2 only)."
);
def!(
    CONTAINER_MEMORY_OOM_KILLS,
    "tally_container_memory_oom_kills",
    Counter,
    None,
    C,
    "Processes in the container killed by the OOM killer."
);
def!(
    CONTAINER_IO_READ,
    "tally_container_io_read",
    Counter,
    Bytes,
    C,
    "Bytes read from block devices."
);
def!(
    CONTAINER_IO_WRITTEN,
    "tally_container_io_written",
    Counter,
    Bytes,
    C,
    "Bytes written to block devices."
);
def!(
    CONTAINER_IO_READS,
    "tally_container_io_reads",
    Counter,
    None,
    C,
    "Read operations on block devices."
);
def!(
    CONTAINER_IO_WRITES,
    "tally_container_io_writes",
    Counter,
    None,
    C,
    "Write operations on block devices."
);
def!(
    CONTAINER_PRESSURE_CPU_WAITING,
    "tally_container_pressure_cpu_waiting",
    Counter,
    Seconds,
    C,
    "PSI: time some task waited for CPU."
);
def!(
    CONTAINER_PRESSURE_CPU_STALLED,
    "tally_container_pressure_cpu_stalled",
    Counter,
    Seconds,
    C,
    "PSI: time all non-idle tasks were stalled on CPU."
);
def!(
    CONTAINER_PRESSURE_MEMORY_WAITING,
    "tally_container_pressure_memory_waiting",
    Counter,
    Seconds,
    C,
    "PSI: time some task waited for memory."
);
def!(
    CONTAINER_PRESSURE_MEMORY_STALLED,
    "tally_container_pressure_memory_stalled",
    Counter,
    Seconds,
    C,
    "PSI: time all non-idle tasks were stalled on memory."
);
def!(
    CONTAINER_PRESSURE_IO_WAITING,
    "tally_container_pressure_io_waiting",
    Counter,
    Seconds,
    C,
    "PSI: time some task waited for IO."
);
def!(
    CONTAINER_PRESSURE_IO_STALLED,
    "tally_container_pressure_io_stalled",
    Counter,
    Seconds,
    C,
    "PSI: time all non-idle tasks were stalled on IO."
);
def!(
    CONTAINER_RESOURCE_REQUESTS,
    "tally_container_resource_requests",
    Gauge,
    None,
    C_RESOURCE,
    "Resource requests from the pod spec (cpu in cores, memory in bytes, GPUs and MIG slices in devices)."
);
def!(
    CONTAINER_RESOURCE_LIMITS,
    "tally_container_resource_limits",
    Gauge,
    None,
    C_RESOURCE,
    "Resource limits from the pod spec (cpu in cores, memory in bytes, GPUs and MIG slices in devices)."
);
def!(
    CONTAINER_CPU_USAGE_SAMPLED,
    "tally_container_cpu_usage_sampled",
    ExponentialHistogram,
    Cores,
    C,
    "Distribution of per-sample CPU usage between exports (default 1 s samples).",
    OtlpOnly
);
def!(
    CONTAINER_MEMORY_WORKING_SET_SAMPLED,
    "tally_container_memory_working_set_sampled",
    ExponentialHistogram,
    Bytes,
    C,
    "Distribution of per-sample working set between exports (default 1 s samples).",
    OtlpOnly
);

// === GPUs (agent source `gpu`, issue #5) ===
def!(
    GPU_INFO,
    "tally_gpu_info",
    Info,
    None,
    &concat::<7>(GPU, &["pci_bus_id", "driver_version", "mig_mode"]),
    "GPU identity: PCI bus id, driver version and MIG mode (enabled or disabled)."
);
def!(
    GPU_UTILIZATION,
    "tally_gpu_utilization",
    Gauge,
    Ratio,
    GPU_DEVICE,
    "Share of time kernels ran on the GPU (NVML utilization.gpu), on a MIG instance its SM activity (GPM); absent on a MIG-enabled GPU itself."
);
def!(
    GPU_MEMORY_UTILIZATION,
    "tally_gpu_memory_utilization",
    Gauge,
    Ratio,
    GPU_DEVICE,
    "Share of time device memory was read or written (NVML utilization.memory), on a MIG instance its DRAM bandwidth use (GPM)."
);
def!(
    GPU_MEMORY_USED,
    "tally_gpu_memory_used",
    Gauge,
    Bytes,
    GPU_DEVICE,
    "Framebuffer memory in use on the GPU or MIG instance."
);
def!(
    GPU_MEMORY_TOTAL,
    "tally_gpu_memory_total",
    Gauge,
    Bytes,
    GPU_DEVICE,
    "Framebuffer memory of the GPU or MIG instance."
);
def!(
    GPU_POWER,
    "tally_gpu_power",
    Gauge,
    Watts,
    GPU,
    "Power draw."
);
def!(
    GPU_POWER_LIMIT,
    "tally_gpu_power_limit",
    Gauge,
    Watts,
    GPU,
    "Enforced power limit."
);
def!(
    GPU_ENERGY,
    "tally_gpu_energy",
    Counter,
    Joules,
    GPU,
    "Energy used since the driver loaded, from the GPU's own energy counter (not integrated from sampled power)."
);
def!(
    GPU_TEMPERATURE,
    "tally_gpu_temperature",
    Gauge,
    Celsius,
    GPU,
    "GPU die temperature."
);
def!(
    GPU_CLOCK,
    "tally_gpu_clock",
    Gauge,
    Hertz,
    &concat::<5>(GPU, &["clock"]),
    "Current clock frequency, by clock (sm, memory)."
);
def!(
    GPU_THROTTLED,
    "tally_gpu_throttled",
    Gauge,
    None,
    &concat::<5>(GPU, &["reason"]),
    "1 while the clocks are held down for the reason (NVML throttle reasons in snake case: gpu_idle, sw_power_cap, hw_slowdown, sw_thermal_slowdown, hw_thermal_slowdown, …), else 0."
);
def!(
    GPU_TENSOR_ACTIVITY,
    "tally_gpu_tensor_activity",
    Gauge,
    Ratio,
    GPU_DEVICE,
    "Share of time the tensor pipes were busy on a MIG instance (NVML GPM, Hopper and newer; DCGM_FI_PROF_PIPE_TENSOR_ACTIVE)."
);
def!(
    GPU_PCIE_THROUGHPUT,
    "tally_gpu_pcie_throughput",
    Gauge,
    Bytes,
    &concat::<5>(GPU, &["direction"]),
    "PCIe throughput in bytes per second over NVML's last 20 ms, by direction (tx, rx)."
);
def!(
    GPU_PCIE_REPLAYS,
    "tally_gpu_pcie_replays",
    Counter,
    None,
    GPU,
    "PCIe replays since the driver loaded (link errors corrected by retransmission)."
);
def!(
    GPU_ECC_ERRORS,
    "tally_gpu_ecc_errors",
    Counter,
    None,
    &concat::<5>(GPU, &["type"]),
    "ECC errors since the driver loaded, by type (corrected, uncorrected)."
);
def!(
    GPU_RETIRED_PAGES,
    "tally_gpu_retired_pages",
    Gauge,
    None,
    GPU,
    "Memory pages retired for ECC errors (before Ampere)."
);
def!(
    GPU_REMAPPED_ROWS,
    "tally_gpu_remapped_rows",
    Gauge,
    None,
    GPU,
    "Memory rows remapped for ECC errors (Ampere and newer)."
);
def!(
    GPU_REMAP_PENDING,
    "tally_gpu_remap_pending",
    Gauge,
    None,
    GPU,
    "1 while a row remapping waits for a GPU reset."
);
def!(
    GPU_PERFORMANCE_STATE,
    "tally_gpu_performance_state",
    Gauge,
    None,
    GPU,
    "Performance state, 0 (P0, fastest) to 15."
);
def!(
    GPU_LOST,
    "tally_gpu_lost",
    Gauge,
    None,
    GPU,
    "1 when the GPU fell off the bus (NVML GpuLost); nothing else is read from it until the agent restarts."
);
def!(
    GPU_EVENTS,
    "tally_gpu_events",
    Counter,
    None,
    &concat::<6>(GPU, &["kind", "xid"]),
    "NVML events since the agent started, by kind (xid, ecc_single_bit, ecc_double_bit, pstate, clock, power_source) and XID number for xid."
);
def!(
    CONTAINER_GPU_UTILIZATION,
    "tally_container_gpu_utilization",
    Gauge,
    Ratio,
    C_GPU,
    "Share of the GPU's (or MIG instance's) time the container's processes ran kernels; sharing is exclusive, mig or time_sliced."
);
def!(
    CONTAINER_GPU_MEMORY_USED,
    "tally_container_gpu_memory_used",
    Gauge,
    Bytes,
    C_GPU,
    "GPU memory held by the container's processes on the GPU or MIG instance (NVML host PIDs mapped to the container by cgroup)."
);

// === Container logs (agent source `logs`, issue #7) ===
def!(
    CONTAINER_LOG_LINES,
    "tally_container_log_lines",
    Counter,
    None,
    &concat::<9>(C, &["severity"]),
    "Log messages the container wrote, by severity (trace, debug, info, warn, error, fatal, unknown; from the message's level field, else unknown)."
);
def!(
    CONTAINER_LOG_TEXT_LINES,
    "tally_container_log_text_lines",
    Counter,
    None,
    C,
    "Log messages of the container that were not JSON objects, kept as text records (no fields read from them, except Gin's request lines)."
);
def!(
    CONTAINER_LOG_RATE_LIMITED,
    "tally_container_log_rate_limited_lines",
    Counter,
    None,
    C,
    "Log lines of the container dropped by the agent's per-container rate limit (logs.rate_limit_lines); not sent, their offsets committed."
);
def!(
    CONTAINER_LOG_BYTES,
    "tally_container_log_message",
    Counter,
    Bytes,
    &concat::<9>(C, &["severity"]),
    "Bytes of log messages the container wrote, by severity."
);
def!(
    CONTAINER_LOG_TOKENS,
    "tally_container_log_reported",
    Counter,
    Tokens,
    &concat::<9>(C, &["direction"]),
    "Tokens the container's log messages report (prompt or completion fields), by direction."
);
def!(
    CONTAINER_LOG_REQUEST_TOKENS,
    "tally_container_log_request",
    ExponentialHistogram,
    Tokens,
    &concat::<9>(C, &["direction"]),
    "Distribution of the tokens per message the container's log messages report (prompt_tokens, completion_tokens, … fields), by direction.",
    OtlpOnly
);
def!(
    CONTAINER_LOG_LATENCY,
    "tally_container_log_latency",
    ExponentialHistogram,
    Seconds,
    C,
    "Distribution of the request latency the container's log messages report (latency_ms, duration, … fields).",
    OtlpOnly
);

// === Model serving (agent scrapes and OTel GenAI, issue #6) ===
def!(
    MODEL_INFO,
    "tally_model_info",
    Info,
    None,
    &concat::<11>(C_MODEL, &["engine_version"]),
    "Model server identity: engine (vllm, sglang, tgi, triton, ollama, genai), served model and engine version (unknown until the engine's info endpoint answers)."
);
def!(
    MODEL_REQUESTS_RUNNING,
    "tally_model_requests_running",
    Gauge,
    None,
    C_MODEL,
    "Requests in the engine's running batch."
);
def!(
    MODEL_REQUESTS_WAITING,
    "tally_model_requests_waiting",
    Gauge,
    None,
    C_MODEL,
    "Requests queued for a batch slot (queue depth)."
);
def!(
    MODEL_KV_CACHE_USAGE,
    "tally_model_kv_cache_usage",
    Gauge,
    Ratio,
    C_MODEL,
    "Share of the KV cache in use (engines that report percent are converted)."
);
def!(
    MODEL_GPU_MEMORY,
    "tally_model_gpu_memory",
    Gauge,
    Bytes,
    C_MODEL,
    "GPU memory the loaded model holds, where the engine says (Ollama's size_vram); other engines' memory is on the per-container GPU families."
);
def!(
    MODEL_REQUESTS,
    "tally_model_requests",
    Counter,
    None,
    &concat::<12>(C_MODEL, &["outcome", "reason"]),
    "Finished requests by outcome (success, failure) and the engine's reason (stop, length, abort, error, …)."
);
def!(
    MODEL_PROMPT_TOKENS,
    "tally_model_prompt",
    Counter,
    Tokens,
    C_MODEL,
    "Prompt (prefill) tokens processed."
);
def!(
    MODEL_GENERATION_TOKENS,
    "tally_model_generation",
    Counter,
    Tokens,
    C_MODEL,
    "Tokens generated."
);
def!(
    MODEL_TIME_TO_FIRST_TOKEN,
    "tally_model_time_to_first_token",
    ExponentialHistogram,
    Seconds,
    C_MODEL,
    "Distribution of time to first token per request.",
    OtlpOnly
);
def!(
    MODEL_INTER_TOKEN_LATENCY,
    "tally_model_inter_token_latency",
    ExponentialHistogram,
    Seconds,
    C_MODEL,
    "Distribution of the time between consecutive output tokens.",
    OtlpOnly
);
def!(
    MODEL_TIME_PER_OUTPUT_TOKEN,
    "tally_model_time_per_output_token",
    ExponentialHistogram,
    Seconds,
    C_MODEL,
    "Distribution of each request's mean time per output token after the first (all TGI reports).",
    OtlpOnly
);
def!(
    MODEL_E2E_REQUEST_LATENCY,
    "tally_model_e2e_request_latency",
    ExponentialHistogram,
    Seconds,
    C_MODEL,
    "Distribution of end-to-end request latency, queueing included.",
    OtlpOnly
);
def!(
    MODEL_REQUEST_QUEUE_TIME,
    "tally_model_request_queue_time",
    ExponentialHistogram,
    Seconds,
    C_MODEL,
    "Distribution of the time requests waited in the queue.",
    OtlpOnly
);

def!(
    MODEL_DERIVED,
    "tally_model_derived_info",
    Info,
    None,
    &concat::<12>(C_MODEL, &["family", "method"]),
    "A distribution this model server's figures derive instead of reading (family), and how (method): window_mean_of_duration_counters (Triton's microsecond counters) or window_mean_queue_plus_prefill (TGI's time to first token)."
);

// === Pod network by destination (agent source `egress`, issue #8) ===
/// Values of `destination_class`, nearest first.
pub const DESTINATION_CLASSES: &[&str] = &[
    "same_node",
    "same_zone",
    "cross_zone",
    "cross_region",
    "internet",
    "service",
    "private_unmapped",
];
def!(
    POD_NETWORK_TRANSMIT,
    "tally_pod_network_transmit",
    Counter,
    Bytes,
    POD_DESTINATION,
    "Bytes the pod sent (IP bytes, headers included, from connection tracking), by destination class (same_node, same_zone, cross_zone, cross_region, internet, service, private_unmapped), destination workload in the cluster and destination_service for class service. Traffic of host processes and host-network pods has workload_kind Node."
);
def!(
    POD_NETWORK_RECEIVE,
    "tally_pod_network_receive",
    Counter,
    Bytes,
    POD_DESTINATION,
    "Bytes the pod received, labelled by the other end as for transmit."
);

// === Volumes (agent source `volumes`, issue #4) ===
def!(
    POD_VOLUME_CAPACITY,
    "tally_pod_volume_capacity",
    Gauge,
    Bytes,
    POD_VOLUME,
    "Size of the filesystem holding a pod's volume (statfs of its mount under the kubelet's pod directory); for a volume on the node's own disk, such as an emptyDir, that disk's size."
);
def!(
    POD_VOLUME_USED,
    "tally_pod_volume_used",
    Gauge,
    Bytes,
    POD_VOLUME,
    "Bytes used on a pod volume that is a filesystem of its own (a persistent volume, a tmpfs emptyDir), from statfs; absent for a volume sharing the node's disk, whose use statfs cannot tell apart."
);
def!(
    PERSISTENTVOLUME_CAPACITY,
    "tally_persistentvolume_capacity",
    Gauge,
    Bytes,
    &[
        "node",
        "persistentvolume",
        "persistentvolumeclaim",
        "claim_namespace",
        "storage_class"
    ],
    "Declared capacity of a persistent volume of the cluster, from a cluster-scoped volume list (node: the reporter); a volume no pod mounts has no tally_pod_volume series."
);

// === Agent self-observability ===
def!(
    AGENT_BUILD_INFO,
    "tally_agent_build_info",
    Info,
    None,
    &["node", "version"],
    "The running agent's version."
);
def!(
    AGENT_SOURCE_UP,
    "tally_agent_source_up",
    Gauge,
    None,
    &["node", "source"],
    "1 when the source's last collection succeeded, else 0."
);
def!(
    AGENT_SOURCE_DURATION,
    "tally_agent_source_collection_duration",
    Histogram,
    Seconds,
    &["node", "source"],
    "Time one collection of the source took."
);
def!(
    AGENT_SOURCE_ERRORS,
    "tally_agent_source_errors",
    Counter,
    None,
    &["node", "source", "kind"],
    "Errors met by a source, by kind. Each kind is logged once."
);
def!(
    AGENT_CGROUPS,
    "tally_agent_cgroups_discovered",
    Gauge,
    None,
    &["node", "runtime"],
    "Cgroups the last discovery found, by runtime (unknown included)."
);
def!(
    AGENT_OTLP_EXPORTS,
    "tally_agent_otlp_exports",
    Counter,
    None,
    &["node", "outcome"],
    "OTLP export attempts by outcome: success, partial, retryable, rejected, unreachable."
);
def!(
    AGENT_OTLP_REJECTED_POINTS,
    "tally_agent_otlp_rejected_points",
    Counter,
    None,
    NODE,
    "Data points the collector rejected in partial-success responses."
);
def!(
    AGENT_SPOOL_BATCHES,
    "tally_agent_spool_batches",
    Gauge,
    None,
    NODE,
    "Batches waiting in the disk spool."
);
def!(
    AGENT_SPOOL_SIZE,
    "tally_agent_spool_size",
    Gauge,
    Bytes,
    NODE,
    "Bytes held by the disk spool."
);
def!(
    AGENT_SPOOL_LIMIT,
    "tally_agent_spool_limit",
    Gauge,
    Bytes,
    NODE,
    "The disk spool's bound (spool.max_bytes); past it the oldest batches are evicted."
);
def!(
    AGENT_SPOOL_EVICTED,
    "tally_agent_spool_evicted_batches",
    Counter,
    None,
    NODE,
    "Batches the spool's size bound forced out, oldest first."
);
def!(
    AGENT_SPOOL_CORRUPT,
    "tally_agent_spool_corrupt_batches",
    Counter,
    None,
    NODE,
    "Spool segments that failed their checksum and were set aside."
);
def!(
    AGENT_SCRAPE_UP,
    "tally_agent_scrape_up",
    Gauge,
    None,
    SCRAPE,
    "1 when the model server's last scrape answered 200 within the timeout, else 0."
);
def!(
    AGENT_SCRAPE_DURATION,
    "tally_agent_scrape_duration",
    Gauge,
    Seconds,
    SCRAPE,
    "How long the model server's last scrape took, the page read and parsed."
);
def!(
    AGENT_SCRAPE_SAMPLES,
    "tally_agent_scrape_samples",
    Gauge,
    None,
    SCRAPE,
    "Samples on the model server's last page."
);
def!(
    AGENT_SCRAPE_ERRORS,
    "tally_agent_scrape_errors",
    Counter,
    None,
    &concat::<6>(SCRAPE, &["kind"]),
    "Failed scrapes (timeout, connect, http_status, body_too_large) and rejected page lines (the parser's kinds: label, value, utf8, line_too_long, …) of a model server."
);

def!(
    AGENT_CONNTRACK_ACCOUNTING,
    "tally_agent_conntrack_accounting",
    Gauge,
    None,
    &["node", "state", "reader"],
    "1 for the egress source's connection-accounting state: on, enabled_by_agent (connections opened before have no counters) or off (no byte figures are reported); reader is netlink or procfs."
);
def!(
    AGENT_CONNTRACK_FLOWS,
    "tally_agent_conntrack_flows",
    Gauge,
    None,
    &["node", "state"],
    "Connections in the egress source's last table read: tracked (all), uncounted (no byte counters), unattributed (no end on this node)."
);
def!(
    AGENT_CONNTRACK_ENTRIES,
    "tally_agent_conntrack_entries",
    Gauge,
    None,
    NODE,
    "Entries in the kernel's connection-tracking table (nf_conntrack_count)."
);
def!(
    AGENT_CONNTRACK_LIMIT,
    "tally_agent_conntrack_limit",
    Gauge,
    None,
    NODE,
    "Size limit of the connection-tracking table (nf_conntrack_max); entries at the limit make the kernel drop new connections."
);
def!(
    AGENT_CONNTRACK_DROPPED,
    "tally_agent_conntrack_dropped",
    Counter,
    None,
    NODE,
    "Connections the kernel dropped or evicted because its table was full (drop plus early_drop, all CPUs)."
);
def!(
    AGENT_CONNTRACK_EVENTS,
    "tally_agent_conntrack_events",
    Counter,
    None,
    &["node", "outcome"],
    "Ends of connections: destroyed (a DESTROY event carried the final counters), lost (event socket overflows) and missed (a connection left the table with no event read; its last bytes are missing)."
);
def!(
    AGENT_CONNTRACK_READ_DURATION,
    "tally_agent_conntrack_read_duration",
    Gauge,
    Seconds,
    NODE,
    "How long the egress source's last table read and classification took."
);
def!(
    AGENT_CONNTRACK_READ_CPU,
    "tally_agent_conntrack_read_cpu",
    Gauge,
    Seconds,
    NODE,
    "CPU time (user and kernel) the egress source's last table read and classification took; the read interval stretches to keep it under 1 % of a core."
);

/// Every family, in documentation order.
pub const CATALOG: &[MetricDef] = &[
    NODE_INFO,
    NODE_CPU,
    NODE_CPU_COUNT,
    NODE_LOAD1,
    NODE_LOAD5,
    NODE_LOAD15,
    NODE_MEMORY_TOTAL,
    NODE_MEMORY_AVAILABLE,
    NODE_MEMORY_FREE,
    NODE_SWAP_TOTAL,
    NODE_SWAP_FREE,
    NODE_FILESYSTEM_SIZE,
    NODE_FILESYSTEM_AVAIL,
    NODE_DISK_READ,
    NODE_DISK_WRITTEN,
    NODE_DISK_READS,
    NODE_DISK_WRITES,
    NODE_NET_RX_BYTES,
    NODE_NET_TX_BYTES,
    NODE_NET_RX_PACKETS,
    NODE_NET_TX_PACKETS,
    NODE_NET_RX_ERRORS,
    NODE_NET_TX_ERRORS,
    NODE_NET_RX_DROPS,
    NODE_NET_TX_DROPS,
    NODE_BOOT_TIME,
    NODE_UPTIME,
    POD_INFO,
    POD_STARTUP,
    WORKLOAD_REPLICAS,
    WORKLOAD_ROLLOUT_MAX_UNAVAILABLE,
    POD_DISRUPTION_BUDGET_MIN_AVAILABLE,
    WORKLOAD_HPA_TARGET_UTILIZATION,
    WORKLOAD_HPA_REPLICAS,
    CONTAINER_INFO,
    CONTAINER_CPU_USAGE,
    CONTAINER_CPU_USER,
    CONTAINER_CPU_SYSTEM,
    CONTAINER_CPU_PERIODS,
    CONTAINER_CPU_THROTTLED_PERIODS,
    CONTAINER_CPU_THROTTLED,
    CONTAINER_CPU_LIMIT,
    CONTAINER_CPU_WEIGHT,
    CONTAINER_MEMORY_USAGE,
    CONTAINER_MEMORY_WORKING_SET,
    CONTAINER_MEMORY_RSS,
    CONTAINER_MEMORY_CACHE,
    CONTAINER_MEMORY_PEAK,
    CONTAINER_MEMORY_LIMIT,
    CONTAINER_MEMORY_OOM_EVENTS,
    CONTAINER_MEMORY_OOM_KILLS,
    CONTAINER_IO_READ,
    CONTAINER_IO_WRITTEN,
    CONTAINER_IO_READS,
    CONTAINER_IO_WRITES,
    CONTAINER_PRESSURE_CPU_WAITING,
    CONTAINER_PRESSURE_CPU_STALLED,
    CONTAINER_PRESSURE_MEMORY_WAITING,
    CONTAINER_PRESSURE_MEMORY_STALLED,
    CONTAINER_PRESSURE_IO_WAITING,
    CONTAINER_PRESSURE_IO_STALLED,
    CONTAINER_RESOURCE_REQUESTS,
    CONTAINER_RESOURCE_LIMITS,
    CONTAINER_CPU_USAGE_SAMPLED,
    CONTAINER_MEMORY_WORKING_SET_SAMPLED,
    GPU_INFO,
    GPU_UTILIZATION,
    GPU_MEMORY_UTILIZATION,
    GPU_MEMORY_USED,
    GPU_MEMORY_TOTAL,
    GPU_POWER,
    GPU_POWER_LIMIT,
    GPU_ENERGY,
    GPU_TEMPERATURE,
    GPU_CLOCK,
    GPU_THROTTLED,
    GPU_TENSOR_ACTIVITY,
    GPU_PCIE_THROUGHPUT,
    GPU_PCIE_REPLAYS,
    GPU_ECC_ERRORS,
    GPU_RETIRED_PAGES,
    GPU_REMAPPED_ROWS,
    GPU_REMAP_PENDING,
    GPU_PERFORMANCE_STATE,
    GPU_LOST,
    GPU_EVENTS,
    CONTAINER_GPU_UTILIZATION,
    CONTAINER_GPU_MEMORY_USED,
    CONTAINER_LOG_LINES,
    CONTAINER_LOG_BYTES,
    CONTAINER_LOG_TOKENS,
    CONTAINER_LOG_TEXT_LINES,
    CONTAINER_LOG_RATE_LIMITED,
    CONTAINER_LOG_REQUEST_TOKENS,
    CONTAINER_LOG_LATENCY,
    MODEL_INFO,
    MODEL_REQUESTS_RUNNING,
    MODEL_REQUESTS_WAITING,
    MODEL_KV_CACHE_USAGE,
    MODEL_GPU_MEMORY,
    MODEL_REQUESTS,
    MODEL_PROMPT_TOKENS,
    MODEL_GENERATION_TOKENS,
    MODEL_TIME_TO_FIRST_TOKEN,
    MODEL_INTER_TOKEN_LATENCY,
    MODEL_TIME_PER_OUTPUT_TOKEN,
    MODEL_E2E_REQUEST_LATENCY,
    MODEL_REQUEST_QUEUE_TIME,
    MODEL_DERIVED,
    POD_NETWORK_TRANSMIT,
    POD_NETWORK_RECEIVE,
    POD_VOLUME_CAPACITY,
    POD_VOLUME_USED,
    PERSISTENTVOLUME_CAPACITY,
    AGENT_BUILD_INFO,
    AGENT_SOURCE_UP,
    AGENT_SOURCE_DURATION,
    AGENT_SOURCE_ERRORS,
    AGENT_CGROUPS,
    AGENT_OTLP_EXPORTS,
    AGENT_OTLP_REJECTED_POINTS,
    AGENT_SPOOL_BATCHES,
    AGENT_SPOOL_SIZE,
    AGENT_SPOOL_LIMIT,
    AGENT_SPOOL_EVICTED,
    AGENT_SPOOL_CORRUPT,
    AGENT_SCRAPE_UP,
    AGENT_SCRAPE_DURATION,
    AGENT_SCRAPE_SAMPLES,
    AGENT_SCRAPE_ERRORS,
    AGENT_CONNTRACK_ACCOUNTING,
    AGENT_CONNTRACK_FLOWS,
    AGENT_CONNTRACK_ENTRIES,
    AGENT_CONNTRACK_LIMIT,
    AGENT_CONNTRACK_DROPPED,
    AGENT_CONNTRACK_EVENTS,
    AGENT_CONNTRACK_READ_DURATION,
    AGENT_CONNTRACK_READ_CPU,
];

/// Looks a family up by its full Prometheus name.
pub fn by_full_name(name: &str) -> Option<&'static MetricDef> {
    CATALOG.iter().find(|def| def.full_name() == name)
}

/// Renders the catalog as the Markdown page checked in at `docs/metrics.md`.
pub fn markdown() -> String {
    let mut out = String::new();
    out.push_str("# Metric catalog\n\n");
    out.push_str("Generated by `tally catalog --markdown` from `schema/src/catalog.rs`; ");
    out.push_str("a test fails when this file is stale. Do not edit by hand.\n\n");
    out.push_str("Container families carry the labels `");
    out.push_str(&crate::identity::CONTAINER_LABELS.join("`, `"));
    out.push_str("`. OTLP metric names equal the full Prometheus names. Over OTLP the ");
    out.push_str("identity labels are resource attributes (node, pod or container, ");
    out.push_str("`schema/src/identity.rs`); the other labels (`mode`, `resource`, the GPU ");
    out.push_str(
        "device's `gpu_*` and `mig_*`, `engine`, `model`, `destination_*`, `pdb`, `bound`, …) are ",
    );
    out.push_str("data-point attributes under the label's own name.\n\n");
    out.push_str("| Name | Type | Unit | Labels | Exposure | Help |\n");
    out.push_str("|---|---|---|---|---|---|\n");
    for def in CATALOG {
        let kind = match def.kind {
            MetricKind::Counter => "counter",
            MetricKind::Gauge => "gauge",
            MetricKind::Info => "gauge (info)",
            MetricKind::Histogram => "histogram",
            MetricKind::ExponentialHistogram => "exponential histogram (delta)",
        };
        let labels = match def.labels.strip_prefix(C) {
            Some([]) => "container labels".to_owned(),
            Some(extra) => format!("container labels, {}", extra.join(", ")),
            None => def.labels.join(", "),
        };
        let exposure = match def.exposure {
            Exposure::Both => "/metrics, OTLP",
            Exposure::OtlpOnly => "OTLP",
        };
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "| `{}` | {} | {} | {} | {} | {} |",
            def.full_name(),
            kind,
            def.unit.suffix().unwrap_or("-"),
            labels,
            exposure,
            def.help
        );
    }
    out.push_str("\n## OpenTelemetry semantic-convention names\n\n");
    out.push_str("With `export.gpu_names: semconv` the agent sends these GPU families under ");
    out.push_str("the OpenTelemetry hardware conventions' names (`schema/src/semconv.rs`); ");
    out.push_str("the collector files such points, from the agent or any other producer, ");
    out.push_str("under the Tally name. Labels `");
    for (i, (tally, semconv)) in crate::semconv::ATTRIBUTE_NAMES.iter().enumerate() {
        let sep = if i == 0 { "" } else { "`, `" };
        let _ = write!(out, "{sep}{tally}` ↔ `{semconv}");
    }
    out.push_str("` are renamed; the others keep their names.\n\n");
    out.push_str("| Tally name | Convention name | Instrument | Unit | Attributes added |\n");
    out.push_str("|---|---|---|---|---|\n");
    for name in crate::semconv::GPU_NAMES {
        let added: Vec<String> = name
            .implied
            .iter()
            .chain(name.required)
            .map(|(k, v)| format!("`{k}={v}`"))
            .collect();
        let instrument = match name.instrument {
            crate::semconv::Instrument::Gauge => "gauge",
            crate::semconv::Instrument::Counter => "counter",
            crate::semconv::Instrument::UpDownCounter => "up-down counter",
        };
        let _ = writeln!(
            out,
            "| `{}` | `{}` | {} | `{}` | {} |",
            name.def.full_name(),
            name.name,
            instrument,
            name.unit,
            added.join(", ")
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn names_are_unique_and_follow_conventions() {
        let mut seen = HashSet::new();
        for def in CATALOG {
            let name = def.full_name();
            assert!(seen.insert(name.clone()), "duplicate {name}");
            assert!(name.starts_with("tally_"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert!(
                !def.help.is_empty() && def.help.ends_with('.'),
                "{name} help"
            );
            assert_eq!(
                def.kind == MetricKind::Info,
                name.ends_with("_info"),
                "{name}"
            );
            assert_eq!(
                def.kind == MetricKind::Counter,
                name.ends_with("_total"),
                "{name}"
            );
            assert!(
                def.labels.first() == Some(&"node"),
                "{name} must carry node"
            );
            // Every family starts with the identity labels of what it
            // measures (pod_info predates the pod order and keeps the
            // agent's).
            if name.starts_with("tally_container_") || name.starts_with("tally_model_") {
                assert_eq!(&def.labels[..C.len()], C, "{name}");
            }
            if name.starts_with("tally_gpu_") {
                assert_eq!(&def.labels[..GPU.len()], GPU, "{name}");
            }
            let pod_scoped = name.starts_with("tally_pod_") || name.starts_with("tally_workload_");
            if pod_scoped && def.kind != MetricKind::Info {
                let pod = crate::identity::POD_LABELS;
                assert_eq!(&def.labels[..pod.len()], pod, "{name}");
            }

            if let Some(suffix) = def.unit.suffix() {
                let doubled = format!("_{suffix}_{suffix}");
                assert!(!name.contains(&doubled), "{name} repeats its unit");
            }
            let unique: HashSet<_> = def.labels.iter().collect();
            assert_eq!(unique.len(), def.labels.len(), "{name} repeats a label");
        }
    }

    #[test]
    fn composite_label_sets_extend_the_identity_labels() {
        assert_eq!(concat::<3>(&["a"], &["b", "c"]), ["a", "b", "c"]);
        assert_eq!(C_GPU[..C.len()], *C);
        assert_eq!(C_GPU[C.len()..C.len() + 5], GPU_DEVICE[1..]);
        assert_eq!(MODEL_REQUESTS.labels.last(), Some(&"reason"));
        let pod = crate::identity::POD_LABELS;
        for def in [
            POD_STARTUP,
            WORKLOAD_REPLICAS,
            WORKLOAD_ROLLOUT_MAX_UNAVAILABLE,
        ] {
            assert_eq!(def.labels, pod, "{}", def.full_name());
        }
        assert_eq!(
            POD_DISRUPTION_BUDGET_MIN_AVAILABLE.labels[..pod.len()],
            *pod
        );
        assert_eq!(
            POD_DISRUPTION_BUDGET_MIN_AVAILABLE.labels[pod.len()..],
            ["pdb"]
        );
        for (def, extra) in [
            (WORKLOAD_HPA_TARGET_UTILIZATION, "resource"),
            (WORKLOAD_HPA_REPLICAS, "bound"),
        ] {
            assert_eq!(def.labels[..pod.len()], *pod, "{}", def.full_name());
            assert_eq!(def.labels[pod.len()..], [extra], "{}", def.full_name());
        }
        assert_eq!(
            WORKLOAD_HPA_TARGET_UTILIZATION.full_name(),
            "tally_workload_hpa_target_utilization_ratio"
        );
    }

    #[test]
    fn lookup_by_full_name() {
        let def = by_full_name("tally_container_cpu_usage_seconds_total");
        assert_eq!(def.map(|d| d.base), Some("tally_container_cpu_usage"));
        assert!(by_full_name("tally_container_cpu_usage").is_none());
    }
}
