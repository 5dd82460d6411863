//! What the analyzer reads: one snapshot of the fleet over a window, as
//! the collector extracts it from its store (or a test builds it). Every
//! figure is already a statistic over the window, so an analysis is
//! O(containers), never O(raw points).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::rightsizing::UsageHistory;

/// The fleet over `[from_ns, to_ns]`.
#[derive(Debug, Clone, Default)]
pub struct FleetSnapshot {
    /// Window start, ns since the epoch.
    pub from_ns: u64,
    /// Window end.
    pub to_ns: u64,
    /// Nodes seen in the window.
    pub nodes: Vec<Node>,
    /// Containers seen in the window.
    pub containers: Vec<Container>,
    /// Whole GPUs and MIG instances.
    pub gpu_devices: Vec<GpuDevice>,
    /// Model-serving containers.
    pub model_servers: Vec<ModelServer>,
    /// Pod traffic by destination.
    pub flows: Vec<Flow>,
    /// Persistent volumes and pod volumes with their use.
    pub volumes: Vec<Volume>,
    /// What the Kubernetes API says of workloads (controller replicas,
    /// rollout, disruption budgets, pod start-up).
    pub workload_specs: Vec<WorkloadSpec>,
}

/// A workload's controller settings and pod start-up, from the agent's pod
/// source (`tally_workload_*`, `tally_pod_disruption_budget_*`,
/// `tally_pod_startup_seconds`). Each field is `None` when no source
/// reported it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkloadSpec {
    /// The workload.
    pub workload: WorkloadKey,
    /// Desired replicas of its controller.
    pub replicas: Option<f64>,
    /// Pods a rolling update may take down at once (Recreate: all).
    pub rollout_max_unavailable: Option<f64>,
    /// The strictest PodDisruptionBudget covering its pods: the pods it
    /// keeps available, and its name.
    pub pdb_min_available: Option<(f64, String)>,
    /// Slowest pod start-up in the window, scheduled to ready, seconds
    /// (image pull, model load, readiness probes).
    pub startup_seconds_max: Option<f64>,
    /// The target CPU utilization (0..1) of the HorizontalPodAutoscaler
    /// scaling the workload, when one scales it on CPU.
    pub hpa_cpu_target: Option<f64>,
    /// Its replica bounds, (min, max).
    pub hpa_replicas: Option<(f64, f64)>,
}

impl FleetSnapshot {
    /// Window length in hours.
    pub fn hours(&self) -> f64 {
        self.to_ns.saturating_sub(self.from_ns) as f64 / 3.6e12
    }
}

/// A workload: namespace, controller kind and name (a bare pod is its own
/// workload of kind `Pod`).
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct WorkloadKey {
    /// Namespace.
    pub namespace: String,
    /// Controller kind (`Deployment`, `StatefulSet`, `Job`, …).
    pub kind: String,
    /// Controller name.
    pub name: String,
}

impl std::fmt::Display for WorkloadKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}/{}", self.namespace, self.kind, self.name)
    }
}

/// A node.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Node {
    /// Node name.
    pub name: String,
    /// Cloud instance type (empty when unknown).
    pub instance_type: String,
    /// Zone.
    pub zone: String,
    /// Region.
    pub region: String,
    /// `spot` or `on-demand` (as the agent reports it).
    pub capacity_type: String,
    /// Logical CPUs.
    pub cpus: f64,
    /// Memory, bytes.
    pub memory_bytes: f64,
    /// GPU product name as NVML reports it, when the node has GPUs.
    pub gpu_model: Option<String>,
    /// Physical GPUs.
    pub gpu_count: u32,
    /// Hours the node was seen in the window.
    pub hours: f64,
}

/// A container with its spec and its usage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Container {
    /// Its workload.
    pub workload: WorkloadKey,
    /// Pod name.
    pub pod: String,
    /// Pod UID.
    pub pod_uid: String,
    /// Container name.
    pub container: String,
    /// Node it runs on.
    pub node: String,
    /// CPU request, cores (0 when unset).
    pub cpu_request: f64,
    /// CPU limit, cores.
    pub cpu_limit: Option<f64>,
    /// Memory request, bytes (0 when unset).
    pub memory_request: f64,
    /// Memory limit, bytes.
    pub memory_limit: Option<f64>,
    /// Extended resources requested (`nvidia.com/gpu`,
    /// `nvidia.com/mig-3g.40gb`, …), in devices.
    pub devices: BTreeMap<String, f64>,
    /// Mean CPU use over the window, cores.
    pub cpu_mean: f64,
    /// Mean working set over the window, bytes.
    pub memory_mean: f64,
    /// Hours the container was seen in the window.
    pub hours: f64,
    /// CPU core-seconds used in each of the last hours the store keeps
    /// hour by hour (48), `(hour start ns, core-seconds)`: daily cycles.
    pub cpu_hourly: Vec<(u64, f64)>,
    /// CPU core-seconds used on each whole day the container ran inside the
    /// window, `(day start ns UTC, core-seconds)`: weekly cycles.
    pub cpu_daily: Vec<(u64, f64)>,
    /// The right-sizer's view of its history.
    pub usage: UsageHistory,
}

/// A container's use of one GPU device.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuUser {
    /// The user's workload.
    pub workload: WorkloadKey,
    /// Pod name.
    pub pod: String,
    /// Container name.
    pub container: String,
    /// Mean share of the device's time its kernels ran.
    pub utilization_mean: f64,
    /// p95 of that share.
    pub utilization_p95: f64,
    /// Mean device memory it held, bytes.
    pub memory_mean: f64,
    /// p99 of the device memory it held, bytes.
    pub memory_p99: f64,
    /// Largest device memory it held, bytes.
    pub memory_max: f64,
}

/// A whole GPU or one MIG instance.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuDevice {
    /// Node.
    pub node: String,
    /// The physical GPU's UUID.
    pub gpu_uuid: String,
    /// Product name as NVML reports it.
    pub gpu_model: String,
    /// MIG profile (`3g.40gb`), `None` for a whole GPU.
    pub mig_profile: Option<String>,
    /// `exclusive`, `mig` or `time_sliced`.
    pub sharing: String,
    /// Device memory, bytes.
    pub memory_total: f64,
    /// Mean utilization (0..1).
    pub utilization_mean: f64,
    /// Highest utilization over the idle window (the most recent
    /// `idle_window` of the analysis window).
    pub recent_utilization_max: Option<f64>,
    /// Mean power of the physical GPU over the idle window, watts.
    pub recent_power_mean: Option<f64>,
    /// Hours the device was seen.
    pub hours: f64,
    /// Containers that used it.
    pub users: Vec<GpuUser>,
}

/// A model-serving container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ModelServer {
    /// Its workload.
    pub workload: WorkloadKey,
    /// Pod name.
    pub pod: String,
    /// Engine (`vllm`, `sglang`, `tgi`, `triton`, `genai`).
    pub engine: String,
    /// Served model.
    pub model: String,
    /// Prompt tokens processed in the window.
    pub prompt_tokens: f64,
    /// Tokens generated in the window.
    pub generation_tokens: f64,
    /// Tokens served over the idle window (prompt and generated).
    pub recent_tokens: Option<f64>,
    /// Requests finished in the window.
    pub requests: f64,
    /// p95 time to first token, seconds.
    pub ttft_p95: Option<f64>,
    /// p95 inter-token latency, seconds.
    pub itl_p95: Option<f64>,
    /// p95 queue time, seconds.
    pub queue_p95: Option<f64>,
    /// Time spent to first tokens (prefill and queue), summed over
    /// requests, seconds: splits cost between input and output tokens.
    pub prefill_seconds: Option<f64>,
    /// Time spent between output tokens, summed, seconds.
    pub decode_seconds: Option<f64>,
    /// Hours seen.
    pub hours: f64,
}

/// Bytes between a pod and one destination over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Flow {
    /// Sending workload.
    pub workload: WorkloadKey,
    /// Node of the sending pod.
    pub node: String,
    /// `same_node`, `same_zone`, `cross_zone`, `cross_region`,
    /// `internet` or `service`.
    pub class: String,
    /// Destination workload (`namespace/name`) inside the cluster.
    pub destination_workload: Option<String>,
    /// Destination service for class `service` (`s3`, …).
    pub destination_service: Option<String>,
    /// Bytes sent.
    pub transmit_bytes: f64,
    /// Bytes received.
    pub receive_bytes: f64,
}

/// A volume: a persistent volume (claimed or not) or a pod's volume
/// mount, with its capacity and use over the window.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Volume {
    /// Namespace of the claim or pod (empty for an unclaimed PV).
    pub namespace: String,
    /// Persistent volume claim, when the volume has one.
    pub claim: Option<String>,
    /// Persistent volume name, when known.
    pub volume: Option<String>,
    /// Workload of the pod that mounts it, when one does.
    pub workload: Option<WorkloadKey>,
    /// Pod that mounts it, when one does.
    pub pod: Option<String>,
    /// Node it was seen on.
    pub node: String,
    /// Storage class (`gp3`, `pd-balanced`, …), when known.
    pub storage_class: Option<String>,
    /// Capacity, bytes.
    pub capacity_bytes: f64,
    /// Bytes used, latest.
    pub used_bytes: f64,
    /// Largest bytes used over the window.
    pub used_max_bytes: f64,
    /// Hours since the used bytes last changed (stale data: old
    /// checkpoints, model versions).
    pub unchanged_hours: Option<f64>,
    /// Whether any pod mounted it in the window.
    pub mounted: bool,
    /// Hours seen in the window.
    pub hours: f64,
}
