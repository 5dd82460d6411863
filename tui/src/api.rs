//! What the dashboard reads from the collector's JSON API
//! (`/api/v1/openapi.json`), as client-side types.
//!
//! Every field has a default so a collector one version ahead or behind
//! (a field added or dropped) still renders; `null` figures stay `None`
//! and show as "–", never as 0.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// `/api/v1/status`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Status {
    pub version: String,
    pub series: u64,
    pub samples: u64,
    pub log_records: u64,
    pub analyzer: Option<AnalyzerStatus>,
}

/// The analyzer's last run, inside [`Status`].
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct AnalyzerStatus {
    pub status: String,
    pub runs: u64,
    pub errors: u64,
    pub last_run_ns: Option<u64>,
    pub monthly_cost: Option<f64>,
    pub monthly_savings: Option<f64>,
    pub recommendations: u64,
}

/// `/api/v1/agents`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Agents {
    pub agents: Vec<Agent>,
}

/// One agent (or simulator) pushing to the collector.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Agent {
    pub node: String,
    pub service: String,
    pub version: String,
    pub simulated: bool,
    pub batches: u64,
    pub lag_seconds: Option<f64>,
    pub last_push_seconds_ago: Option<f64>,
}

/// `/api/v1/nodes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Nodes {
    pub nodes: Vec<Node>,
}

/// One node's capacity and placement.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Node {
    pub node: String,
    pub instance_type: Option<String>,
    pub capacity_type: Option<String>,
    pub zone: Option<String>,
    pub region: Option<String>,
    pub cpus: Option<f64>,
    pub memory_bytes: Option<f64>,
    /// CPU its containers use now, cores.
    pub cpu_cores_used: Option<f64>,
    /// Its containers' working set now, bytes.
    pub working_set_bytes: Option<f64>,
    pub last_seen_seconds_ago: Option<f64>,
    pub simulated: bool,
}

/// `/api/v1/workloads`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Workloads {
    pub window: String,
    pub simulated: bool,
    pub workloads: Vec<Workload>,
}

/// Requests against usage for one workload (sums over its containers).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Workload {
    pub namespace: String,
    pub workload_kind: String,
    pub workload_name: String,
    pub replicas: u64,
    pub containers: u64,
    pub cpu_request_cores: Option<f64>,
    pub cpu_limit_cores: Option<f64>,
    pub cpu_cores: Option<f64>,
    pub cpu_cores_p50: Option<f64>,
    pub cpu_cores_p95: Option<f64>,
    pub cpu_cores_max: Option<f64>,
    pub memory_request_bytes: Option<f64>,
    pub memory_limit_bytes: Option<f64>,
    pub working_set_bytes: Option<f64>,
    pub working_set_bytes_p50: Option<f64>,
    pub working_set_bytes_p95: Option<f64>,
    pub working_set_bytes_max: Option<f64>,
    pub oom_kills: Option<f64>,
    pub cpu_throttled_seconds: Option<f64>,
    pub device_requests: BTreeMap<String, f64>,
}

/// `/api/v1/gpus`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Gpus {
    pub gpus: Vec<Gpu>,
}

/// One GPU or MIG instance and the pods using it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Gpu {
    pub node: String,
    pub gpu_index: Option<u32>,
    pub gpu_uuid: String,
    pub gpu_model: Option<String>,
    pub mig_profile: Option<String>,
    pub mig_instance: Option<String>,
    pub sharing: Option<String>,
    pub utilization: Option<f64>,
    pub utilization_p95: Option<f64>,
    pub utilization_max: Option<f64>,
    pub memory_used_bytes: Option<f64>,
    pub memory_total_bytes: Option<f64>,
    pub power_watts: Option<f64>,
    pub power_limit_watts: Option<f64>,
    pub energy_joules: Option<f64>,
    pub temperature_celsius: Option<f64>,
    pub pods: Vec<GpuPod>,
}

/// A pod's use of one GPU, from per-process attribution.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct GpuPod {
    pub namespace: String,
    pub pod: String,
    pub container: String,
    pub workload_kind: Option<String>,
    pub workload_name: Option<String>,
    pub sharing: Option<String>,
    pub utilization: Option<f64>,
    pub memory_used_bytes: Option<f64>,
}

/// `/api/v1/models`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Models {
    pub models: Vec<Model>,
}

/// One model service's serving figures.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Model {
    pub namespace: String,
    pub workload_name: String,
    pub model: String,
    pub engine: String,
    pub replicas: u64,
    pub gpus: u64,
    pub time_to_first_token_seconds_p50: Option<f64>,
    pub time_to_first_token_seconds_p95: Option<f64>,
    pub inter_token_latency_seconds_p50: Option<f64>,
    pub inter_token_latency_seconds_p95: Option<f64>,
    pub tokens_per_second: Option<f64>,
    pub requests_per_second: Option<f64>,
    pub queue_depth: Option<f64>,
    pub kv_cache_usage: Option<f64>,
    pub error_ratio: Option<f64>,
}

/// `/api/v1/egress`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Egress {
    pub window: String,
    pub transmit_bytes: f64,
    pub receive_bytes: f64,
    pub by_class: BTreeMap<String, Bytes>,
    pub workloads: Vec<EgressWorkload>,
    pub pairs: Vec<EgressPair>,
}

/// Bytes both ways.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(default)]
pub struct Bytes {
    pub transmit_bytes: f64,
    pub receive_bytes: f64,
}

/// One workload's traffic by destination class.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EgressWorkload {
    pub namespace: String,
    pub workload_name: String,
    pub workload_kind: String,
    pub transmit_bytes: f64,
    pub receive_bytes: f64,
    pub by_class: BTreeMap<String, Bytes>,
}

/// Bytes from one workload to another.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EgressPair {
    pub namespace: String,
    pub workload_name: String,
    pub destination_namespace: String,
    pub destination_workload: String,
    pub destination_class: String,
    pub transmit_bytes: f64,
}

/// `/api/v1/costs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Costs {
    pub currency: String,
    pub lines: Vec<CostLine>,
    pub inference: Option<Vec<InferenceCost>>,
    pub egress: EgressCosts,
}

/// The month's egress bill.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct EgressCosts {
    pub monthly_cost: f64,
    pub by_class: BTreeMap<String, f64>,
    pub by_workload: Vec<WorkloadEgressCost>,
}

/// One workload's egress bill.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct WorkloadEgressCost {
    pub workload: WorkloadRef,
    pub monthly_cost: f64,
}

/// One allocation line; `key` follows the `by` grouping.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct CostLine {
    pub key: Vec<String>,
    pub cpu_monthly: f64,
    pub memory_monthly: f64,
    pub gpu_monthly: f64,
    pub total_monthly: f64,
    pub efficiency: Option<f64>,
}

/// A model service's cost per token at its latency objective.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct InferenceCost {
    pub model: String,
    pub workload: Option<WorkloadRef>,
    pub monthly_cost: Option<f64>,
    pub per_million_tokens: Option<f64>,
    pub slo_met: Option<bool>,
}

/// `/api/v1/recommendations`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Recommendations {
    pub status: String,
    pub currency: String,
    pub generated_at_ns: Option<u64>,
    pub items: Vec<Recommendation>,
    pub totals: Totals,
    pub price_warnings: Vec<Value>,
}

/// The de-duplicated savings and the fleet's cost.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Totals {
    pub monthly_cost: f64,
    pub monthly_idle: f64,
    /// De-duplicated: two cards on the same resource count once.
    pub monthly_savings: f64,
    pub monthly_savings_sum: f64,
    pub by_kind: BTreeMap<String, f64>,
}

/// One recommendation card.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct Recommendation {
    pub id: String,
    pub kind: String,
    pub target: String,
    pub workload: Option<WorkloadRef>,
    pub monthly_savings: f64,
    pub confidence: f64,
    pub risk: Risk,
    pub current: BTreeMap<String, f64>,
    pub proposed: BTreeMap<String, f64>,
    pub evidence: BTreeMap<String, Value>,
    pub explanation: String,
}

/// Namespace, kind and name of a workload.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct WorkloadRef {
    pub namespace: String,
    pub kind: String,
    pub name: String,
}

/// What could go wrong when the change is applied.
#[derive(Debug, Clone, Default, Deserialize, serde::Serialize)]
#[serde(default)]
pub struct Risk {
    pub level: String,
    pub description: String,
}

/// `/api/v1/logs`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Logs {
    pub records: Vec<LogRecord>,
}

/// One stored log record.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct LogRecord {
    pub time_ns: u64,
    pub severity: String,
    pub body: String,
    pub attributes: Vec<(String, String)>,
}

impl LogRecord {
    /// An attribute's value.
    pub fn attribute(&self, key: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

/// `/api/v1/series`: one metric's recent points.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct Series {
    pub metric: String,
    pub series: Vec<SeriesPoints>,
}

/// One series: labels and `[seconds, value]` points.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(default)]
pub struct SeriesPoints {
    pub labels: BTreeMap<String, String>,
    pub points: Vec<(f64, f64)>,
}

/// One endpoint's answer: a refresh arrives part by part, so the first
/// screen does not wait for the slowest view.
#[derive(Debug, Clone)]
pub enum Part {
    Status(Status),
    Agents(Agents),
    Nodes(Nodes),
    Workloads(Workloads),
    WorkloadCosts(Costs),
    Gpus(Gpus),
    Models(Models),
    ModelCosts(Costs),
    Egress(Egress),
    Recommendations(Recommendations),
    Logs(Logs),
}

/// Everything the views draw from.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub status: Status,
    pub agents: Agents,
    pub nodes: Nodes,
    pub workloads: Workloads,
    pub workload_costs: Costs,
    pub gpus: Gpus,
    pub models: Models,
    pub model_costs: Costs,
    pub egress: Egress,
    pub recommendations: Recommendations,
    pub logs: Logs,
}

impl Snapshot {
    /// Takes one endpoint's answer in.
    pub fn apply(&mut self, part: Part) {
        match part {
            Part::Status(v) => self.status = v,
            Part::Agents(v) => self.agents = v,
            Part::Nodes(v) => self.nodes = v,
            Part::Workloads(v) => self.workloads = v,
            Part::WorkloadCosts(v) => self.workload_costs = v,
            Part::Gpus(v) => self.gpus = v,
            Part::Models(v) => self.models = v,
            Part::ModelCosts(v) => self.model_costs = v,
            Part::Egress(v) => self.egress = v,
            Part::Recommendations(v) => self.recommendations = v,
            Part::Logs(v) => self.logs = v,
        }
    }

    /// Whether any of the data comes from `tally simulate`.
    pub fn simulated(&self) -> bool {
        self.workloads.simulated
            || self.agents.agents.iter().any(|a| a.simulated)
            || self.nodes.nodes.iter().any(|n| n.simulated)
    }
}
