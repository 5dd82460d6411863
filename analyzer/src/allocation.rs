//! Cost allocation: OpenCost's model first, so totals reconcile with what
//! users already see, then the GPU parts it lacks.
//!
//! - Each container is charged `max(request, mean usage)` of CPU and
//!   memory × the node's unit prices (OpenCost `getContainerAllocation`).
//! - GPUs are charged from what NVML saw each container hold: a whole GPU,
//!   a MIG instance (its compute slices / the GPU's slices of the
//!   physical GPU's price), or an equal share of a time-sliced GPU (every
//!   replica of a shared GPU gets the same time slots). OpenCost has no
//!   MIG; Kubecost shows shared GPUs at $0. A GPU request with no device
//!   seen (no NVML on the node) is charged by the request, as OpenCost.
//! - What the containers of a node do not use is the node's idle line,
//!   per resource; when allocations pass capacity (usage above requests on
//!   a full node), that resource's allocations are scaled to the capacity,
//!   so a node's lines always sum to its price.
//! - Efficiency is cost-weighted over CPU, memory, GPU compute and GPU
//!   memory (OpenCost leaves GPUs out of total efficiency).

use std::collections::{BTreeMap, HashMap};

use polars::prelude::*;
use serde::Serialize;

use crate::HOURS_PER_MONTH;
use crate::input::{Container, FleetSnapshot, GpuDevice, Node, WorkloadKey};
use crate::pricing::{CapacityType, NodeFacts, NodePrice, PriceBook, canonical_gpu_model};

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// The frame's cost columns: costs, then the used part of each.
const COST_COLUMNS: [&str; 7] = [
    "cpu_cost",
    "memory_cost",
    "gpu_cost",
    "cpu_used_cost",
    "memory_used_cost",
    "gpu_compute_used_cost",
    "gpu_memory_used_cost",
];

/// Name of the idle line of a node (OpenCost's `__idle__`).
pub const IDLE: &str = "__idle__";

/// One container's cost over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerCost {
    /// Its workload.
    pub workload: WorkloadKey,
    /// Pod.
    pub pod: String,
    /// Container.
    pub container: String,
    /// Node.
    pub node: String,
    /// Served model, for model-serving containers.
    pub model: Option<String>,
    /// Allocated cores: max(request, mean usage), after scaling to the
    /// node's capacity.
    pub cpu_cores: f64,
    /// Allocated bytes.
    pub memory_bytes: f64,
    /// Physical GPUs' worth allocated (a 3g MIG instance is 3/7).
    pub gpus: f64,
    /// CPU cost over the window.
    pub cpu_cost: f64,
    /// Memory cost.
    pub memory_cost: f64,
    /// GPU cost.
    pub gpu_cost: f64,
    /// Mean CPU use / allocated (0..1).
    pub cpu_efficiency: f64,
    /// Mean working set / allocated.
    pub memory_efficiency: f64,
    /// Mean share of GPU time its kernels ran, when it holds GPUs.
    pub gpu_compute_efficiency: Option<f64>,
    /// Mean device memory held / device memory allocated.
    pub gpu_memory_efficiency: Option<f64>,
}

impl ContainerCost {
    /// CPU + memory + GPU.
    pub fn total(&self) -> f64 {
        self.cpu_cost + self.memory_cost + self.gpu_cost
    }

    /// Cost-weighted efficiency; GPU cost weighs compute and memory
    /// equally.
    pub fn efficiency(&self) -> f64 {
        weighted_efficiency(
            self.cpu_cost,
            self.cpu_efficiency,
            self.memory_cost,
            self.memory_efficiency,
            self.gpu_cost,
            self.gpu_compute_efficiency,
            self.gpu_memory_efficiency,
        )
    }
}

fn weighted_efficiency(
    cpu_cost: f64,
    cpu: f64,
    memory_cost: f64,
    memory: f64,
    gpu_cost: f64,
    gpu_compute: Option<f64>,
    gpu_memory: Option<f64>,
) -> f64 {
    let total = cpu_cost + memory_cost + gpu_cost;
    if total <= 0.0 {
        return 0.0;
    }
    let gpu = gpu_cost / 2.0 * (gpu_compute.unwrap_or(0.0) + gpu_memory.unwrap_or(0.0));
    (cpu_cost * cpu + memory_cost * memory + gpu) / total
}

/// A node's price and what nobody used.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct NodeCost {
    /// Node.
    pub node: String,
    /// Instance type.
    pub instance_type: String,
    /// `spot` or `on-demand`.
    pub capacity_type: String,
    /// Zone.
    pub zone: String,
    /// Its price and the split.
    pub price: NodePrice,
    /// Hours seen.
    pub hours: f64,
    /// Price × hours.
    pub total: f64,
    /// CPU nobody was allocated.
    pub cpu_idle: f64,
    /// Memory nobody was allocated.
    pub memory_idle: f64,
    /// GPUs (and MIG instances) nobody held.
    pub gpu_idle: f64,
}

impl NodeCost {
    /// Idle total.
    pub fn idle(&self) -> f64 {
        self.cpu_idle + self.memory_idle + self.gpu_idle
    }
}

/// The fleet's allocation over the window.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Allocation {
    /// Window hours.
    pub hours: f64,
    /// Per container.
    pub containers: Vec<ContainerCost>,
    /// Per node.
    pub nodes: Vec<NodeCost>,
    /// Per GPU device (whole GPU or MIG instance).
    pub devices: Vec<DeviceCost>,
}

/// A GPU device's cost over the window and who held it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceCost {
    /// Node.
    pub node: String,
    /// Physical GPU UUID.
    pub gpu_uuid: String,
    /// Product name.
    pub gpu_model: String,
    /// MIG profile, for an instance.
    pub mig_profile: Option<String>,
    /// The device's share of the GPU's price × hours.
    pub cost: f64,
    /// Containers that held it (0: idle capacity).
    pub users: usize,
    /// Mean utilization.
    pub utilization_mean: f64,
}

/// A cost line of a roll-up.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CostLine {
    /// The group's key parts (namespace; or namespace, kind, name; node;
    /// model), `__idle__` for idle lines.
    pub key: Vec<String>,
    /// CPU cost a month.
    pub cpu_monthly: f64,
    /// Memory cost a month.
    pub memory_monthly: f64,
    /// GPU cost a month.
    pub gpu_monthly: f64,
    /// Total a month.
    pub total_monthly: f64,
    /// Cost-weighted efficiency (idle lines: 0).
    pub efficiency: f64,
}

/// How to group cost lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// By namespace, plus one idle line.
    Namespace,
    /// By namespace, kind and workload name, plus one idle line.
    Workload,
    /// By node, idle included in each node's line... and a line per
    /// node's idle.
    Node,
    /// By served model (serving containers only).
    Model,
}

impl Level {
    /// Parses `namespace`, `workload`, `node`, `model`.
    pub fn parse(text: &str) -> Option<Level> {
        match text {
            "namespace" => Some(Level::Namespace),
            "workload" => Some(Level::Workload),
            "node" => Some(Level::Node),
            "model" => Some(Level::Model),
            _ => None,
        }
    }
}

/// Error from the tabular roll-up.
#[derive(Debug, thiserror::Error)]
#[error("cost roll-up failed: {0}")]
pub struct RollupError(#[from] PolarsError);

/// Node facts for pricing.
pub fn facts(node: &Node) -> NodeFacts {
    NodeFacts {
        instance_type: node.instance_type.clone(),
        region: node.region.clone(),
        capacity_type: CapacityType::parse(&node.capacity_type),
        vcpus: node.cpus,
        memory_gib: node.memory_bytes / GIB,
        gpu_model: node.gpu_model.clone(),
        gpu_count: node.gpu_count,
    }
}

/// Compute slices of a MIG profile (`3g.40gb` → 3) over the GPU's slices
/// (7; 4 on an A30).
pub fn mig_fraction(gpu_model: &str, profile: &str) -> Option<f64> {
    let slices: f64 = profile.split_once('g')?.0.parse().ok()?;
    let total = if canonical_gpu_model(gpu_model) == Some("A30-24GB") {
        4.0
    } else {
        7.0
    };
    Some((slices / total).min(1.0))
}

/// The share of its physical GPU a device is: 1 for a whole GPU, the
/// profile's slices for a MIG instance.
pub fn device_share(device: &GpuDevice) -> f64 {
    device
        .mig_profile
        .as_deref()
        .and_then(|p| mig_fraction(&device.gpu_model, p))
        .unwrap_or(1.0)
}

/// (namespace, pod, container).
type ContainerId = (String, String, String);

/// GPU use attributed to one container: devices' worth, cost over the
/// window, utilization × share, memory held, memory allocated.
#[derive(Default)]
struct GpuShare {
    gpus: f64,
    cost: f64,
    busy: f64,
    memory_held: f64,
    memory_allocated: f64,
}

/// Allocates the snapshot's costs.
pub fn allocate(snapshot: &FleetSnapshot, prices: &PriceBook) -> Allocation {
    let node_prices: HashMap<&str, (&Node, NodePrice)> = snapshot
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), (n, prices.node_price(&facts(n)))))
        .collect();
    // GPUs first: what each container held, and each node's GPU use.
    let mut gpu_by_container: HashMap<ContainerId, GpuShare> = HashMap::new();
    let mut devices = Vec::with_capacity(snapshot.gpu_devices.len());
    for device in &snapshot.gpu_devices {
        let Some((_, price)) = node_prices.get(device.node.as_str()) else {
            continue;
        };
        let share = device_share(device);
        let cost = price.gpu_hourly * share * device.hours;
        devices.push(DeviceCost {
            node: device.node.clone(),
            gpu_uuid: device.gpu_uuid.clone(),
            gpu_model: device.gpu_model.clone(),
            mig_profile: device.mig_profile.clone(),
            cost,
            users: device.users.len(),
            utilization_mean: device.utilization_mean,
        });
        if device.users.is_empty() {
            continue;
        }
        let users = device.users.len() as f64;
        for user in &device.users {
            let entry = gpu_by_container
                .entry((
                    user.workload.namespace.clone(),
                    user.pod.clone(),
                    user.container.clone(),
                ))
                .or_default();
            entry.gpus += share / users;
            entry.cost += cost / users;
            entry.busy += user.utilization_mean * share / users;
            entry.memory_held += user.memory_mean;
            entry.memory_allocated += device.memory_total / users;
        }
    }
    let models: HashMap<(&str, &str), &str> = snapshot
        .model_servers
        .iter()
        .map(|m| {
            (
                (m.workload.namespace.as_str(), m.pod.as_str()),
                m.model.as_str(),
            )
        })
        .collect();
    let mut containers: Vec<ContainerCost> = snapshot
        .containers
        .iter()
        .map(|c| {
            let node = node_prices.get(c.node.as_str());
            let price = node.map_or_else(
                || prices.node_price(&NodeFacts::default()),
                |(_, p)| p.clone(),
            );
            let gpu_model = node.and_then(|(n, _)| n.gpu_model.as_deref()).unwrap_or("");
            let id = (
                c.workload.namespace.clone(),
                c.pod.clone(),
                c.container.clone(),
            );
            let gpu = gpu_by_container.remove(&id);
            let model = models
                .get(&(c.workload.namespace.as_str(), c.pod.as_str()))
                .copied();
            container_cost(c, &price, gpu_model, gpu, model)
        })
        .collect();
    // Scale each node's over-allocated resources to its capacity, then
    // what is left is idle.
    let mut nodes = Vec::new();
    let mut by_node: HashMap<String, Vec<usize>> = HashMap::new();
    for (i, c) in containers.iter().enumerate() {
        by_node.entry(c.node.clone()).or_default().push(i);
    }
    for node in &snapshot.nodes {
        let Some((_, price)) = node_prices.get(node.name.as_str()) else {
            continue;
        };
        let on_node = by_node.get(&node.name).map(Vec::as_slice).unwrap_or(&[]);
        let capacity_cpu = price.cpu_core_hourly * node.cpus * node.hours;
        let capacity_memory = price.memory_gib_hourly * node.memory_bytes / GIB * node.hours;
        let capacity_gpu = price.gpu_hourly * f64::from(node.gpu_count) * node.hours;
        let (mut cpu, mut memory, mut gpu) = (0.0, 0.0, 0.0);
        for c in on_node.iter().map(|i| &containers[*i]) {
            cpu += c.cpu_cost;
            memory += c.memory_cost;
            gpu += c.gpu_cost;
        }
        let scale = |used: f64, capacity: f64| {
            if used > capacity && used > 0.0 {
                capacity / used
            } else {
                1.0
            }
        };
        let (cpu_scale, memory_scale, gpu_scale) = (
            scale(cpu, capacity_cpu),
            scale(memory, capacity_memory),
            scale(gpu, capacity_gpu),
        );
        for i in on_node {
            let c = &mut containers[*i];
            c.cpu_cost *= cpu_scale;
            c.cpu_cores *= cpu_scale;
            c.memory_cost *= memory_scale;
            c.memory_bytes *= memory_scale;
            c.gpu_cost *= gpu_scale;
            c.gpus *= gpu_scale;
        }
        nodes.push(NodeCost {
            node: node.name.clone(),
            instance_type: node.instance_type.clone(),
            capacity_type: node.capacity_type.clone(),
            zone: node.zone.clone(),
            price: price.clone(),
            hours: node.hours,
            total: price.hourly * node.hours,
            cpu_idle: (capacity_cpu - cpu * cpu_scale).max(0.0),
            memory_idle: (capacity_memory - memory * memory_scale).max(0.0),
            gpu_idle: (capacity_gpu - gpu * gpu_scale).max(0.0),
        });
    }
    Allocation {
        hours: snapshot.hours(),
        containers,
        nodes,
        devices,
    }
}

fn container_cost(
    c: &Container,
    price: &NodePrice,
    gpu_model: &str,
    gpu: Option<GpuShare>,
    model: Option<&str>,
) -> ContainerCost {
    let cpu_cores = c.cpu_request.max(c.cpu_mean);
    let memory_bytes = c.memory_request.max(c.memory_mean);
    let ratio = |used: f64, allocated: f64| {
        if allocated > 0.0 {
            (used / allocated).min(1.0)
        } else {
            0.0
        }
    };
    let (gpus, gpu_cost, gpu_compute, gpu_memory) = match gpu {
        Some(g) => (
            g.gpus,
            g.cost,
            Some(if g.gpus > 0.0 {
                (g.busy / g.gpus).min(1.0)
            } else {
                0.0
            }),
            Some(ratio(g.memory_held, g.memory_allocated)),
        ),
        // Requested, never seen on a device: charged by the request.
        None => {
            let requested: f64 = c
                .devices
                .iter()
                .map(
                    |(resource, count)| match resource.strip_prefix("nvidia.com/mig-") {
                        Some(profile) => count * mig_fraction(gpu_model, profile).unwrap_or(1.0),
                        None if resource == "nvidia.com/gpu" => *count,
                        None => 0.0,
                    },
                )
                .sum();
            if requested > 0.0 {
                (
                    requested,
                    requested * price.gpu_hourly * c.hours,
                    Some(0.0),
                    Some(0.0),
                )
            } else {
                (0.0, 0.0, None, None)
            }
        }
    };
    ContainerCost {
        workload: c.workload.clone(),
        pod: c.pod.clone(),
        container: c.container.clone(),
        node: c.node.clone(),
        model: model.map(str::to_owned),
        cpu_cores,
        memory_bytes,
        gpus,
        cpu_cost: cpu_cores * price.cpu_core_hourly * c.hours,
        memory_cost: memory_bytes / GIB * price.memory_gib_hourly * c.hours,
        gpu_cost,
        cpu_efficiency: ratio(c.cpu_mean, cpu_cores),
        memory_efficiency: ratio(c.memory_mean, memory_bytes),
        gpu_compute_efficiency: gpu_compute,
        gpu_memory_efficiency: gpu_memory,
    }
}

impl Allocation {
    /// Monthly factor: 730 h over the window's hours.
    pub fn monthly_factor(&self) -> f64 {
        if self.hours > 0.0 {
            HOURS_PER_MONTH / self.hours
        } else {
            0.0
        }
    }

    /// Total cost of the nodes over the window.
    pub fn total(&self) -> f64 {
        self.nodes.iter().map(|n| n.total).sum()
    }

    /// The containers as a polars frame: one row per container, plus one
    /// row per node's idle (namespace and workload `__idle__`).
    pub fn frame(&self) -> Result<DataFrame, RollupError> {
        let idle = self.nodes.iter();
        let rows = self.containers.len() + self.nodes.len();
        let mut text: [Vec<String>; 6] = Default::default();
        let mut numbers: [Vec<f64>; 7] = Default::default();
        for c in &self.containers {
            for (column, value) in text.iter_mut().zip([
                &c.workload.namespace,
                &c.workload.kind,
                &c.workload.name,
                &c.node,
                c.model.as_deref().unwrap_or(""),
                &c.pod,
            ]) {
                column.push(value.to_owned());
            }
            let g = c.gpu_cost / 2.0;
            for (column, value) in numbers.iter_mut().zip([
                c.cpu_cost,
                c.memory_cost,
                c.gpu_cost,
                c.cpu_cost * c.cpu_efficiency,
                c.memory_cost * c.memory_efficiency,
                g * c.gpu_compute_efficiency.unwrap_or(0.0),
                g * c.gpu_memory_efficiency.unwrap_or(0.0),
            ]) {
                column.push(value);
            }
        }
        for n in idle {
            for (column, value) in text.iter_mut().zip([IDLE, IDLE, IDLE, &n.node, "", IDLE]) {
                column.push(value.to_owned());
            }
            for (column, value) in
                numbers
                    .iter_mut()
                    .zip([n.cpu_idle, n.memory_idle, n.gpu_idle, 0.0, 0.0, 0.0, 0.0])
            {
                column.push(value);
            }
        }
        debug_assert!(text.iter().all(|c| c.len() == rows));
        let names_text = [
            "namespace",
            "workload_kind",
            "workload_name",
            "node",
            "model",
            "pod",
        ];
        let names_numbers = COST_COLUMNS;
        let mut columns: Vec<Column> = Vec::new();
        for (name, values) in names_text.iter().zip(text) {
            columns.push(Column::new((*name).into(), values));
        }
        for (name, values) in names_numbers.iter().zip(numbers) {
            columns.push(Column::new((*name).into(), values));
        }
        Ok(DataFrame::new(rows, columns)?)
    }

    /// Cost lines at `level`, most expensive first; monthly figures.
    pub fn rollup(&self, level: Level) -> Result<Vec<CostLine>, RollupError> {
        self.rollup_frame(&self.frame()?, level)
    }

    /// [`Self::rollup`] over a frame already built by [`Self::frame`]
    /// (one frame serves every level).
    pub fn rollup_frame(
        &self,
        frame: &DataFrame,
        level: Level,
    ) -> Result<Vec<CostLine>, RollupError> {
        let keys: &[&str] = match level {
            Level::Namespace => &["namespace"],
            Level::Workload => &["namespace", "workload_kind", "workload_name"],
            Level::Node => &["node", "namespace"],
            Level::Model => &["model"],
        };
        let mut lazy = frame.clone().lazy();
        if level == Level::Model {
            lazy = lazy.filter(col("model").neq(lit("")));
        }
        if level == Level::Node {
            // A node's line and its idle line: idle rows keep their
            // namespace, the rest fold into one "allocated" line.
            lazy = lazy.with_column(
                when(col("namespace").eq(lit(IDLE)))
                    .then(lit(IDLE))
                    .otherwise(lit("allocated"))
                    .alias("namespace"),
            );
        }
        let sums = COST_COLUMNS.map(|c| col(c).sum());
        let frame = lazy
            .group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
            .agg(sums)
            .collect()?;
        let factor = self.monthly_factor();
        let text = |name: &str| -> Result<Vec<String>, RollupError> {
            Ok(frame
                .column(name)?
                .str()?
                .iter()
                .map(|v| v.unwrap_or_default().to_owned())
                .collect())
        };
        let number = |name: &str| -> Result<Vec<f64>, RollupError> {
            Ok(frame
                .column(name)?
                .f64()?
                .iter()
                .map(|v| v.unwrap_or(0.0))
                .collect())
        };
        let key_columns: Vec<Vec<String>> =
            keys.iter().map(|k| text(k)).collect::<Result<_, _>>()?;
        let [
            cpu,
            memory,
            gpu,
            cpu_used,
            memory_used,
            gpu_compute,
            gpu_memory,
        ] = [
            "cpu_cost",
            "memory_cost",
            "gpu_cost",
            "cpu_used_cost",
            "memory_used_cost",
            "gpu_compute_used_cost",
            "gpu_memory_used_cost",
        ]
        .map(number);
        let (cpu, memory, gpu) = (cpu?, memory?, gpu?);
        let (cpu_used, memory_used, gpu_compute, gpu_memory) =
            (cpu_used?, memory_used?, gpu_compute?, gpu_memory?);
        let mut lines: Vec<CostLine> = (0..frame.height())
            .map(|i| {
                let total = cpu[i] + memory[i] + gpu[i];
                let used = cpu_used[i] + memory_used[i] + gpu_compute[i] + gpu_memory[i];
                CostLine {
                    key: key_columns.iter().map(|k| k[i].clone()).collect(),
                    cpu_monthly: cpu[i] * factor,
                    memory_monthly: memory[i] * factor,
                    gpu_monthly: gpu[i] * factor,
                    total_monthly: total * factor,
                    efficiency: if total > 0.0 { used / total } else { 0.0 },
                }
            })
            .collect();
        lines.sort_by(|a, b| {
            b.total_monthly
                .total_cmp(&a.total_monthly)
                .then_with(|| a.key.cmp(&b.key))
        });
        Ok(lines)
    }

    /// GPU cost per workload a month (for GPU cards).
    pub fn gpu_monthly_by_workload(&self) -> BTreeMap<WorkloadKey, f64> {
        let mut out = BTreeMap::new();
        for c in &self.containers {
            *out.entry(c.workload.clone()).or_insert(0.0) += c.gpu_cost * self.monthly_factor();
        }
        out
    }
}
