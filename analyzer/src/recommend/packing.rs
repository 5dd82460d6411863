//! Realizable savings: request cards save money only when nodes go away.
//! The pods of each CPU node pool (instance type × capacity type) are
//! packed again, first-fit decreasing, with the requests the cards
//! propose, onto nodes of the same type with 90 % of their capacity
//! allocatable (kubelet and system reserves) less the pool's DaemonSet
//! pods; the node-count change × the node price is what the cards can
//! realize. GPU nodes are left out: their count follows GPUs, not
//! requests. Kubecost's headline sums cards instead, and its docs warn the
//! savings appear only "until you reduce your cluster resources".

use std::collections::{BTreeMap, HashMap};

use serde::Serialize;

use super::Context;
use crate::HOURS_PER_MONTH;
use crate::recommendation::{Kind, Recommendation};

/// Share of a node's capacity pods can be given.
const ALLOCATABLE: f64 = 0.9;

/// One pool's packing.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PoolPacking {
    /// Instance type.
    pub instance_type: String,
    /// `spot` or `on-demand`.
    pub capacity_type: String,
    /// Nodes now.
    pub nodes_now: usize,
    /// Nodes the pods need with the proposed requests.
    pub nodes_needed: usize,
    /// A node's price a month.
    pub node_monthly: f64,
    /// (now − needed) × node price, never negative.
    pub monthly_savings: f64,
}

/// Proposed CPU cores and memory bytes of a container, where a card
/// proposes them.
type Proposed = (Option<f64>, Option<f64>);

/// CPU cores and memory bytes of one pod.
#[derive(Debug, Clone, Copy, Default)]
struct Demand {
    cpu: f64,
    memory: f64,
}

/// Packs every CPU pool with the proposed requests.
pub fn pack(context: &Context<'_>, cards: &[Recommendation]) -> Vec<PoolPacking> {
    // Proposed requests by (workload, container).
    let mut proposed: HashMap<(String, &str), Proposed> = HashMap::new();
    for card in cards {
        let key = (card.workload.to_string(), card.target.as_str());
        let entry = proposed.entry(key).or_default();
        match card.kind {
            Kind::CpuRequest => entry.0 = card.proposed.get("cpu_request_cores").copied(),
            Kind::MemoryRequest => entry.1 = card.proposed.get("memory_request_bytes").copied(),
            _ => {}
        }
    }
    // Pods by node, DaemonSet pods apart.
    let mut pods: HashMap<&str, BTreeMap<&str, Demand>> = HashMap::new();
    let mut daemons: HashMap<&str, Demand> = HashMap::new();
    for c in &context.snapshot.containers {
        let (cpu, memory) = proposed
            .get(&(c.workload.to_string(), c.container.as_str()))
            .copied()
            .unwrap_or_default();
        let demand = Demand {
            cpu: cpu.unwrap_or(c.cpu_request),
            memory: memory.unwrap_or(c.memory_request),
        };
        let slot = if c.workload.kind == "DaemonSet" {
            daemons.entry(c.node.as_str()).or_default()
        } else {
            pods.entry(c.node.as_str())
                .or_default()
                .entry(c.pod_uid.as_str())
                .or_default()
        };
        slot.cpu += demand.cpu;
        slot.memory += demand.memory;
    }
    let mut pools: BTreeMap<(&str, &str), Vec<&crate::input::Node>> = BTreeMap::new();
    for node in &context.snapshot.nodes {
        if node.gpu_count == 0 && node.cpus > 0.0 && node.memory_bytes > 0.0 {
            pools
                .entry((node.instance_type.as_str(), node.capacity_type.as_str()))
                .or_default()
                .push(node);
        }
    }
    let mut out = Vec::new();
    for ((instance_type, capacity_type), nodes) in pools {
        // Every node runs the pool's heaviest DaemonSet set.
        let daemon = nodes.iter().fold(Demand::default(), |top, n| {
            let d = daemons.get(n.name.as_str()).copied().unwrap_or_default();
            Demand {
                cpu: top.cpu.max(d.cpu),
                memory: top.memory.max(d.memory),
            }
        });
        let capacity = Demand {
            cpu: nodes[0].cpus * ALLOCATABLE - daemon.cpu,
            memory: nodes[0].memory_bytes * ALLOCATABLE - daemon.memory,
        };
        let mut demands: Vec<Demand> = nodes
            .iter()
            .filter_map(|n| pods.get(n.name.as_str()))
            .flat_map(|p| p.values().copied())
            .collect();
        let needed = first_fit_decreasing(&mut demands, capacity).max(1);
        let node_monthly = context
            .node_hourly(&nodes[0].name)
            .map_or(0.0, |h| h * HOURS_PER_MONTH);
        let now = nodes.len();
        out.push(PoolPacking {
            instance_type: instance_type.to_owned(),
            capacity_type: capacity_type.to_owned(),
            nodes_now: now,
            nodes_needed: needed,
            node_monthly,
            monthly_savings: now.saturating_sub(needed) as f64 * node_monthly,
        });
    }
    out
}

/// Bins first-fit decreasing by each pod's larger share of a node; a pod
/// larger than a node gets a node of its own.
fn first_fit_decreasing(demands: &mut [Demand], capacity: Demand) -> usize {
    if capacity.cpu <= 0.0 || capacity.memory <= 0.0 {
        return demands.len();
    }
    let size = |d: &Demand| (d.cpu / capacity.cpu).max(d.memory / capacity.memory);
    demands.sort_by(|a, b| size(b).total_cmp(&size(a)));
    let mut bins: Vec<Demand> = Vec::new();
    for d in demands.iter() {
        match bins
            .iter_mut()
            .find(|b| b.cpu + d.cpu <= capacity.cpu && b.memory + d.memory <= capacity.memory)
        {
            Some(bin) => {
                bin.cpu += d.cpu;
                bin.memory += d.memory;
            }
            None => bins.push(*d),
        }
    }
    bins.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_fit_decreasing_fills_bins_by_the_tighter_resource() {
        let capacity = Demand {
            cpu: 4.0,
            memory: 16.0,
        };
        // Six pods of 1.5 cores / 2 GiB: two per node by CPU → 3 nodes.
        let mut pods = vec![
            Demand {
                cpu: 1.5,
                memory: 2.0
            };
            6
        ];
        assert_eq!(first_fit_decreasing(&mut pods, capacity), 3);
        // Memory-bound: 9 GiB pods, one per node.
        let mut pods = vec![
            Demand {
                cpu: 0.1,
                memory: 9.0
            };
            4
        ];
        assert_eq!(first_fit_decreasing(&mut pods, capacity), 4);
        // Big first: 3 + 1 fit one node, 2 + 2 the next.
        let mut pods: Vec<Demand> = [2.0, 3.0, 1.0, 2.0]
            .iter()
            .map(|c| Demand {
                cpu: *c,
                memory: 1.0,
            })
            .collect();
        assert_eq!(first_fit_decreasing(&mut pods, capacity), 2);
        assert_eq!(first_fit_decreasing(&mut [], capacity), 0);
    }
}
