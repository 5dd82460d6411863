//! Nodes and GPUs: per node CPU, memory, GPU utilization and GPU memory,
//! with sparklines; per GPU (and MIG instance) its use, power and energy,
//! and, on Enter, its processes joined to pods and workloads.

use std::collections::BTreeMap;

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};

use super::ratio;
use crate::api::{Gpu, Node, Snapshot};
use crate::format;
use crate::state::{State, TableId, ViewId};
use crate::table::{Cell, Column, Row};
use crate::theme::Tone;

/// The nodes panel.
pub const NODE_COLUMNS: &[Column] = &[
    Column::text("NODE", 18, 0),
    Column::text("TYPE", 13, 2),
    Column::text("ZONE", 11, 5),
    Column::number("CPU", 5, 0),
    Column::text("CPU TREND", 12, 3),
    Column::number("MEM", 5, 1),
    Column::text("MEM TREND", 12, 4),
    Column::number("GPUS", 4, 1),
    Column::number("GPU UTIL", 8, 0),
    Column::text("GPU TREND", 12, 3),
    Column::number("GPU MEM", 7, 1),
];

/// A node's GPUs (whole GPUs and MIG-enabled parents, not instances).
#[derive(Debug, Clone, Copy, Default)]
pub struct NodeGpus {
    pub count: usize,
    utilization_sum: f64,
    measured: usize,
    memory_used: f64,
    memory_total: f64,
}

impl NodeGpus {
    /// Mean utilization of the GPUs that report one.
    pub fn utilization(&self) -> Option<f64> {
        (self.measured > 0).then(|| self.utilization_sum / self.measured as f64)
    }

    /// GPU memory used over the total.
    pub fn memory(&self) -> Option<f64> {
        (self.memory_total > 0.0).then(|| self.memory_used / self.memory_total)
    }
}

/// Per node, its GPUs summed.
pub fn gpus_by_node(snapshot: &Snapshot) -> BTreeMap<&str, NodeGpus> {
    let mut by_node: BTreeMap<&str, NodeGpus> = BTreeMap::new();
    for gpu in snapshot
        .gpus
        .gpus
        .iter()
        .filter(|g| g.mig_instance.is_none())
    {
        let entry = by_node.entry(gpu.node.as_str()).or_default();
        entry.count += 1;
        if let Some(u) = gpu.utilization {
            entry.utilization_sum += u;
            entry.measured += 1;
        }
        entry.memory_used += gpu.memory_used_bytes.unwrap_or(0.0);
        entry.memory_total += gpu.memory_total_bytes.unwrap_or(0.0);
    }
    by_node
}

/// The GPU table.
pub const GPU_COLUMNS: &[Column] = &[
    Column::text("NODE", 16, 0),
    Column::text("GPU", 9, 0),
    Column::text("MODEL", 22, 3),
    Column::number("UTIL", 5, 0),
    Column::text("TREND", 12, 2),
    Column::number("P95", 5, 4),
    Column::text("MEMORY", 17, 1),
    Column::text("POWER", 11, 3),
    Column::number("TEMP", 5, 5),
    Column::number("ENERGY", 8, 5),
    Column::text("PODS", 24, 1),
];

/// A GPU's processes.
pub const PROCESS_COLUMNS: &[Column] = &[
    Column::text("NAMESPACE", 14, 0),
    Column::text("POD", 28, 0),
    Column::text("CONTAINER", 12, 2),
    Column::text("WORKLOAD", 26, 1),
    Column::text("SHARING", 10, 3),
    Column::number("UTIL", 5, 0),
    Column::number("MEMORY", 9, 0),
];

/// A GPU row's key: node, UUID and MIG instance.
pub fn gpu_key(gpu: &Gpu) -> String {
    format!(
        "{}/{}/{}",
        gpu.node,
        gpu.gpu_uuid,
        gpu.mig_instance.as_deref().unwrap_or("")
    )
}

/// A node's CPU in use over its capacity.
pub fn node_cpu_ratio(node: &Node) -> Option<f64> {
    ratio(node.cpu_cores_used, node.cpus)
}

/// A node's working set over its memory.
pub fn node_memory_ratio(node: &Node) -> Option<f64> {
    ratio(node.working_set_bytes, node.memory_bytes)
}

/// The nodes panel's rows.
pub fn node_rows(snapshot: &Snapshot, state: &State) -> Vec<Row> {
    let gpus = gpus_by_node(snapshot);
    let t = &state.thresholds;
    let unicode = state.palette.unicode;
    let trend = |values: &crate::state::Trend, node: &str| {
        Cell::text(format::sparkline(values.get(node), unicode)).tone(Tone::Accent)
    };
    snapshot
        .nodes
        .nodes
        .iter()
        .map(|n| {
            let cpu_ratio = node_cpu_ratio(n);
            let memory_ratio = node_memory_ratio(n);
            let node_gpus = gpus.get(n.node.as_str()).copied().unwrap_or_default();
            let (count, gpu_util, gpu_memory) =
                (node_gpus.count, node_gpus.utilization(), node_gpus.memory());
            let node_type = format!(
                "{}{}",
                n.instance_type.as_deref().unwrap_or("–"),
                if n.capacity_type.as_deref() == Some("spot") {
                    " spot"
                } else {
                    ""
                }
            );
            Row {
                key: n.node.clone(),
                cells: vec![
                    Cell::text(n.node.clone()),
                    Cell::text(node_type),
                    Cell::text(n.zone.clone().unwrap_or_default()),
                    Cell::number(format::percent(cpu_ratio), cpu_ratio),
                    trend(&state.node_cpu, &n.node),
                    Cell::number(format::percent(memory_ratio), memory_ratio)
                        .tone(t.memory(memory_ratio)),
                    trend(&state.node_memory, &n.node),
                    Cell::number(count.to_string(), Some(count as f64)),
                    if count == 0 {
                        Cell::number(String::new(), None)
                    } else {
                        Cell::number(format::percent(gpu_util), gpu_util)
                            .tone(t.gpu_utilization(gpu_util))
                    },
                    trend(&state.node_gpu, &n.node),
                    if count == 0 {
                        Cell::number(String::new(), None)
                    } else {
                        Cell::number(format::percent(gpu_memory), gpu_memory)
                            .tone(t.memory(gpu_memory))
                    },
                ],
            }
        })
        .collect()
}

/// The GPU table's rows.
pub fn gpu_rows(snapshot: &Snapshot, state: &State) -> Vec<Row> {
    let t = &state.thresholds;
    let unicode = state.palette.unicode;
    snapshot
        .gpus
        .gpus
        .iter()
        .map(|g| {
            let key = gpu_key(g);
            let name = match (&g.mig_profile, &g.mig_instance) {
                (Some(profile), Some(_)) => format!(" {profile}"),
                _ => g
                    .gpu_index
                    .map_or_else(|| "?".to_owned(), |i| i.to_string()),
            };
            let memory_ratio = ratio(g.memory_used_bytes, g.memory_total_bytes);
            let memory = format!(
                "{}/{}",
                format::bytes(g.memory_used_bytes),
                format::bytes(g.memory_total_bytes)
            );
            let power = match (g.power_watts, g.power_limit_watts) {
                (Some(w), Some(l)) => format!("{w:.0}/{l:.0}W"),
                (Some(w), None) => format!("{w:.0}W"),
                _ => format::NONE.to_owned(),
            };
            let pods = if g.pods.is_empty() {
                "(none)".to_owned()
            } else {
                g.pods
                    .iter()
                    .map(|p| format!("{}/{}", p.namespace, p.pod))
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let energy_kwh = g.energy_joules.map(|j| j / 3.6e6);
            Row {
                key: key.clone(),
                cells: vec![
                    Cell::text(g.node.clone()),
                    Cell::text(name),
                    Cell::text(g.gpu_model.clone().unwrap_or_default()),
                    Cell::number(format::percent(g.utilization), g.utilization)
                        .tone(t.gpu_utilization(g.utilization)),
                    Cell::text(format::sparkline(state.gpu_utilization.get(&key), unicode))
                        .tone(Tone::Accent),
                    Cell::number(format::percent(g.utilization_p95), g.utilization_p95)
                        .tone(t.gpu_utilization(g.utilization_p95)),
                    Cell {
                        text: memory,
                        value: memory_ratio,
                        tone: t.memory(memory_ratio),
                    },
                    Cell {
                        text: power,
                        value: g.power_watts,
                        tone: Tone::Normal,
                    },
                    Cell::number(
                        g.temperature_celsius
                            .map_or_else(|| format::NONE.to_owned(), |c| format!("{c:.0}C")),
                        g.temperature_celsius,
                    ),
                    Cell::number(
                        energy_kwh
                            .map_or_else(|| format::NONE.to_owned(), |k| format!("{k:.1}kWh")),
                        energy_kwh,
                    ),
                    Cell::text(pods).tone(if g.pods.is_empty() {
                        Tone::Dim
                    } else {
                        Tone::Normal
                    }),
                ],
            }
        })
        .collect()
}

/// The processes on one GPU.
pub fn process_rows(snapshot: &Snapshot, state: &State, key: &str) -> Vec<Row> {
    let Some(gpu) = snapshot.gpus.gpus.iter().find(|g| gpu_key(g) == key) else {
        return Vec::new();
    };
    let t = &state.thresholds;
    gpu.pods
        .iter()
        .map(|p| Row {
            key: format!("{}/{}/{}", p.namespace, p.pod, p.container),
            cells: vec![
                Cell::text(p.namespace.clone()),
                Cell::text(p.pod.clone()),
                Cell::text(p.container.clone()),
                Cell::text(format!(
                    "{}/{}",
                    p.workload_kind.as_deref().unwrap_or("–"),
                    p.workload_name.as_deref().unwrap_or("–")
                )),
                Cell::text(p.sharing.clone().unwrap_or_default()),
                Cell::number(format::percent(p.utilization), p.utilization)
                    .tone(t.gpu_utilization(p.utilization)),
                Cell::number(format::bytes(p.memory_used_bytes), p.memory_used_bytes),
            ],
        })
        .collect()
}

/// Draws nodes over GPUs.
pub fn draw(state: &State, frame: &mut Frame, area: Rect) {
    let nodes = state.table(TableId::Nodes).rows.len() as u16;
    let [top, bottom] = Layout::vertical([
        Constraint::Length((nodes + 3).min(area.height / 3).max(4)),
        Constraint::Min(4),
    ])
    .areas(area);
    super::draw_table(state, frame, top, TableId::Nodes, "Nodes");
    super::draw_table(state, frame, bottom, TableId::View(ViewId::Gpus), "GPUs");
}

/// Draws one GPU's processes.
pub fn draw_processes(state: &State, frame: &mut Frame, area: Rect, key: &str) {
    let gpu = state
        .snapshot
        .as_ref()
        .and_then(|s| s.gpus.gpus.iter().find(|g| gpu_key(g) == key));
    let title = match gpu {
        Some(g) => format!(
            "{} GPU {} {} · util {} · {}",
            g.node,
            g.gpu_index
                .map_or_else(|| "?".to_owned(), |i| i.to_string()),
            g.mig_profile.as_deref().unwrap_or(""),
            format::percent(g.utilization),
            g.sharing.as_deref().unwrap_or("unshared")
        ),
        None => "GPU gone from the newest data".to_owned(),
    };
    super::draw_table(state, frame, area, TableId::GpuProcesses, &title);
}
